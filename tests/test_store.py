"""The trace store on its own: batches, duplicates, retention by trace count and bytes."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trace_viewer.otlp import SpanRecord
from trace_viewer.store import Limits, TraceStore

RESOURCE = Resource(
    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="svc"))]
).SerializeToString()
SCOPE = InstrumentationScope(name="test").SerializeToString()


def record(
    trace: int, span: int, parent: int = 0, start: int = 0, padding: int = 0, error: bool = False
) -> SpanRecord:
    message = Span(
        name="op" + "x" * padding,
        trace_id=trace.to_bytes(16, "big"),
        span_id=span.to_bytes(8, "big"),
    )
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{span:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name="op",
        service="svc",
        kind=1,
        start_ns=start,
        end_ns=start + 1000,
        status_code=2 if error else 0,
        resource=RESOURCE,
        scope=SCOPE,
        span=message.SerializeToString(),
    )


def test_a_span_delivered_twice_is_stored_and_counted_once(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(100, 10**9))
    batch = [record(1, 1, start=10), record(1, 2, parent=1, start=20, error=True)]
    store.write(batch)
    store.write(batch[1:])  # an exporter retry
    (summary,) = store.summaries()
    assert summary.span_count == 2 and summary.error_count == 1
    assert summary.duration_ns == 20 + 1000 - 10
    assert len(store.trace(f"{1:032x}")) == 2
    assert store.stats()["spans_received"] == 3


def test_retention_drops_the_oldest_traces_beyond_the_count(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=5, max_bytes=10**9))
    for trace in range(1, 9):
        store.write([record(trace, 1, start=trace * 1000)])
    kept = sorted(int(s.trace_id, 16) for s in store.summaries())
    assert kept == [4, 5, 6, 7, 8]
    assert store.trace(f"{1:032x}") == []
    assert store.stats()["traces_evicted"] == 3


def test_retention_bounds_the_bytes(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=1000, max_bytes=50_000))
    for trace in range(1, 41):
        store.write([record(trace, 1, start=trace, padding=5_000)])
    stats = store.stats()
    assert stats["traces_stored"] * 5_000 <= 50_000 + 5_100
    newest = max(int(s.trace_id, 16) for s in store.summaries(limit=1000))
    assert newest == 40  # the newest survive
