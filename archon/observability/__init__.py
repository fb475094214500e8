"""Observability: the run as OpenTelemetry spans (:mod:`archon.observability.otel`, the
``otel`` extra) and as a picture (:mod:`archon.observability.timeline` reads a JSONL trace
into queries, nodes and calls and finds the critical path; :mod:`archon.observability.picture`
draws it as a PNG or an HTML page).

The package builds on the runtime's trace records (:mod:`archon.runtime.trace`,
:mod:`archon.runtime.events`) and never the other way round: the runtime knows only the sink
protocols. The CLI and the server import it.
"""
