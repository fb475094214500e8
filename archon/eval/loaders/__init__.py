"""Loaders, one module per dataset family; :func:`archon.eval.load_dataset` picks one."""
