"""The embedded local engine: ``local/<name>`` models in-process through llama-cpp-python.

Everything that exists only for local models lives here:

* :mod:`.client` -- :class:`~archon.runtime.clients.local.client.LocalClient`, the
  :class:`~archon.runtime.clients.base.ModelClient` the router sends ``local/...`` models to;
* :mod:`.engine` -- one batched llama.cpp context per GGUF file (with :mod:`.client`, the only
  module that imports ``llama_cpp``);
* :mod:`.batch`, :mod:`.kv`, :mod:`.thread` -- the continuous-batching scheduler, its KV and
  slot bookkeeping, and the thread that runs it (pure Python, no llama.cpp);
* :mod:`.engine_check` -- the guard that checks, in a child process, that the installed
  engine runs on this CPU before the first model load;
* :mod:`.models` -- the known GGUF models and ``pull`` into the archon home
  (``archon models``; the home itself is :mod:`archon.runtime.home`).

Within the runtime only :mod:`archon.runtime.clients.router` imports this package (the CLI's
``archon models`` commands use :mod:`.models` and :mod:`.engine_check` directly). Importing
the package itself imports nothing: import the module you need.
"""
