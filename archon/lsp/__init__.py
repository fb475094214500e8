"""The ``.pipe`` language server (``archon lsp``).

The editor features are pure functions of a document's text and a cursor position, so they
unit-test without the protocol:

* :mod:`archon.lsp.text`: positions, a tolerant tokenizer and the cursor's context (it works
  on text that does not parse, which is what a document being typed is);
* :mod:`archon.lsp.analysis`: loads and compiles a document exactly as ``archon check`` does
  (:func:`archon.compiler.load.load_source` then :func:`archon.compiler.compile_program`)
  and indexes the definitions it and its imports make;
* :mod:`archon.lsp.diagnostics`, :mod:`~archon.lsp.hover`, :mod:`~archon.lsp.completion`,
  :mod:`~archon.lsp.definition`, :mod:`~archon.lsp.symbols`, :mod:`~archon.lsp.formatting`:
  one feature each;
* :mod:`archon.lsp.server`: the pygls wiring (the only module that imports pygls).

``pygls`` is optional: install the ``lsp`` extra (``pip install 'archon-pipe[lsp]'``).
"""

from __future__ import annotations
