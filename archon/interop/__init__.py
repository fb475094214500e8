"""Interoperability with other formats (the original Archon JSON architecture configs)."""
