"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

The server needs counters, gauges read at scrape time and histograms with fixed buckets: a
hundred lines, so no client library is added. Every instrument belongs to one
:class:`MetricsRegistry` made per server (no module-level state). Label values are only
names the server knows (served pipelines, models of their ``models`` blocks, HTTP status
codes), never strings taken from a request, so the number of series stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (integers without a fraction)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return name
    pairs = ",".join(f'{k}="{escape_label(v)}"' for k, v in zip(names, values, strict=True))
    return f"{name}{{{pairs}}}"


@dataclass
class Counter:
    """A monotonically increasing value per label set."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    values: dict[Labels, float] = field(default_factory=dict)
    kind = "counter"

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self.values.items()):
            yield f"{_series(self.name, self.labels, key)} {format_value(value)}"


@dataclass
class GaugeFunc:
    """A gauge whose values are read when scraped: ``read() -> [(labels, value), ...]``."""

    name: str
    help: str
    read: Callable[[], Iterable[tuple[Labels, float]]]
    labels: tuple[str, ...] = ()
    kind = "gauge"

    def samples(self) -> Iterable[str]:
        for key, value in self.read():
            yield f"{_series(self.name, self.labels, key)} {format_value(value)}"


@dataclass
class Histogram:
    """Observations counted in cumulative buckets, with their sum and count."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: dict[Labels, list[int]] = field(default_factory=dict)
    sums: dict[Labels, float] = field(default_factory=dict)
    kind = "histogram"

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
                break
        else:
            counts[-1] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def samples(self) -> Iterable[str]:
        names = (*self.labels, "le")
        for key, counts in sorted(self.counts.items()):
            total = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                total += count
                le = format_value(bound) if math.isinf(bound) else repr(float(bound))
                yield f"{_series(self.name + '_bucket', names, (*key, le))} {total}"
            yield f"{_series(self.name + '_sum', self.labels, key)} {format_value(self.sums[key])}"
            yield f"{_series(self.name + '_count', self.labels, key)} {total}"


Metric = Counter | GaugeFunc | Histogram


class MetricsRegistry:
    """The instruments of one server, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[Metric] = []

    def add(self, metric: Metric) -> Metric:
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        """The exposition text of every instrument."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
