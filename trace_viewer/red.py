"""RED (rate, errors, duration) per service and operation, from the services' own
``http.server.request.duration`` histograms: a pure computation over stored data points.

Cumulative series (what the Python SDK exports by default) are differenced point to point
within a series (one process's one attribute set); a series that restarted (a new start
time, a count that went down) counts from zero again. Delta series are summed. Durations
are bucket estimates, as Prometheus's ``histogram_quantile`` makes them: the rank is found
in the buckets and interpolated linearly inside its bucket; a rank in the overflow bucket
is its lower bound. So a p99 is only as fine as the buckets around it (the HTTP
instrumentation's advisory buckets are 5, 10, 25, 50, 75, 100, 250, 500, 750 ms, 1 s, …).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, HistogramDataPoint

from trace_viewer.signal_store import StoredPoint

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
#: Milliseconds per unit of a duration histogram (UCUM units, as the conventions use them).
MS_PER_UNIT = {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 0.000001}
QUANTILES = (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99))
#: Exemplars returned per operation: the slowest ones, then in time order.
MAX_EXEMPLARS = 40


@dataclass
class _Tally:
    """Requests, errors and bucket counts of one operation over some time."""

    count: int = 0
    errors: int = 0
    bounds: tuple[float, ...] | None = None
    buckets: list[int] = field(default_factory=list)

    def add(self, count: int, error: bool, bounds: tuple[float, ...], buckets: list[int]) -> None:
        self.count += count
        if error:
            self.errors += count
        if self.bounds is None:
            self.bounds, self.buckets = bounds, list(buckets)
        elif bounds == self.bounds and len(buckets) == len(self.buckets):
            self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]

    def quantile(self, q: float) -> float | None:
        return quantile(q, self.bounds or (), self.buckets)


def quantile(q: float, bounds: tuple[float, ...], buckets: list[int]) -> float | None:
    """The ``q`` quantile of a histogram, interpolated in its bucket (None when empty)."""
    total = sum(buckets)
    if total <= 0 or len(buckets) != len(bounds) + 1:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i == len(bounds):  # the overflow bucket has no upper bound
                return bounds[-1] if bounds else None
            lower = bounds[i - 1] if i > 0 else min(0.0, bounds[0])
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1] if bounds else None


@dataclass
class _Operation:
    service: str
    operation: str
    unit: float
    total: _Tally = field(default_factory=_Tally)
    steps: dict[int, _Tally] = field(default_factory=dict)
    exemplars: dict[str, dict[str, Any]] = field(default_factory=dict)


def _difference(
    point: HistogramDataPoint, before: HistogramDataPoint | None
) -> tuple[int, list[int]] | None:
    """What a cumulative point adds to the one before it in its series; None when the
    series restarted."""
    if before is None or point.start_time_unix_nano != before.start_time_unix_nano:
        return None
    if point.count < before.count or len(point.bucket_counts) != len(before.bucket_counts):
        return None
    return point.count - before.count, [
        a - b for a, b in zip(point.bucket_counts, before.bucket_counts, strict=True)
    ]


def red(
    points: Iterable[StoredPoint], start_ns: int, end_ns: int, step_ns: int
) -> list[dict[str, Any]]:
    """RED per (service, operation) over [start_ns, end_ns], and per step of ``step_ns``
    (the charts), from points in time order, each series' baseline first."""
    operations: dict[tuple[str, str], _Operation] = {}
    last: dict[bytes, HistogramDataPoint] = {}
    for service, operation, error, unit, temporality, series, _, time_ns, data in points:
        point = HistogramDataPoint.FromString(data)
        before = last.get(series)
        last[series] = point
        if time_ns < start_ns:
            continue  # a baseline
        whole = (point.count, list(point.bucket_counts))
        added = whole if temporality == DELTA else _difference(point, before)
        if added is None:
            if point.start_time_unix_nano < start_ns and before is None:
                continue  # began before the window, and nothing to difference it with
            added = whole
        key = (service, operation)
        entry = operations.get(key)
        if entry is None:
            entry = operations[key] = _Operation(service, operation, MS_PER_UNIT.get(unit, 1.0))
        count, buckets = added
        bounds = tuple(point.explicit_bounds)
        entry.total.add(count, bool(error), bounds, buckets)
        step = (time_ns - start_ns) // step_ns
        entry.steps.setdefault(step, _Tally()).add(count, bool(error), bounds, buckets)
        for exemplar in point.exemplars:
            if exemplar.time_unix_nano < start_ns or not any(exemplar.trace_id):
                continue
            value = exemplar.as_double if exemplar.HasField("as_double") else exemplar.as_int
            entry.exemplars[exemplar.span_id.hex()] = {
                "trace_id": exemplar.trace_id.hex(),
                "span_id": exemplar.span_id.hex(),
                "value_ms": round(value * entry.unit, 3),
                "time_ms": exemplar.time_unix_nano // 1_000_000,
            }
    window_s = max(end_ns - start_ns, 1) / 1e9
    step_s = step_ns / 1e9
    rows = []
    for entry in sorted(operations.values(), key=lambda e: (e.service, e.operation)):
        slowest = sorted(entry.exemplars.values(), key=lambda e: -e["value_ms"])[:MAX_EXEMPLARS]
        rows.append(
            {
                "service": entry.service,
                "operation": entry.operation,
                **_figures(entry.total, window_s, entry.unit),
                "requests": entry.total.count,
                "errors": entry.total.errors,
                "exemplars": sorted(slowest, key=lambda e: e["time_ms"]),
                "series": [
                    {
                        "time_ms": (start_ns + (step + 1) * step_ns) // 1_000_000,
                        **_figures(tally, step_s, entry.unit),
                    }
                    for step, tally in sorted(entry.steps.items())
                ],
            }
        )
    return rows


def _figures(tally: _Tally, seconds: float, unit: float) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "rate": round(tally.count / seconds, 6),
        "error_rate": round(tally.errors / tally.count, 6) if tally.count else 0.0,
    }
    for name, q in QUANTILES:
        value = tally.quantile(q)
        figures[name] = None if value is None or math.isnan(value) else round(value * unit, 3)
    return figures
