"""The trace store on its own: batches, duplicates, retention by trace count and bytes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trace_viewer.otlp import SpanRecord
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceStore

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


# The schema as the first release wrote it (PRAGMA user_version 0), before schema URLs and
# injected-fault counts.
SCHEMA_V0 = """
CREATE TABLE blobs (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL, service TEXT NOT NULL, kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, status_code INTEGER NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES blobs(id),
    scope_id INTEGER NOT NULL REFERENCES blobs(id), data BLOB NOT NULL
);
CREATE UNIQUE INDEX spans_by_id ON spans (trace_id, span_id);
CREATE INDEX spans_by_service ON spans (service, name);
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL, error_count INTEGER NOT NULL, root_name TEXT NOT NULL,
    root_service TEXT NOT NULL, services TEXT NOT NULL, bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX traces_by_start ON traces (start_ns);
"""


def test_a_database_of_the_previous_version_is_migrated_in_place(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    path = tmp_path / "traces.db"
    faulted = Span(
        name="POST /charges",
        trace_id=(7).to_bytes(16, "big"),
        span_id=(1).to_bytes(8, "big"),
        attributes=[KeyValue(key="ordersim.fault.injected", value=AnyValue(bool_value=True))],
    ).SerializeToString()
    plain = record(7, 2, parent=1, start=5).span
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA_V0)
        for blob in (RESOURCE, SCOPE):
            old.execute(
                "INSERT INTO blobs (hash, data) VALUES (?, ?)", (hashlib.sha1(blob).digest(), blob)
            )
        for span_id, parent, start, data in ((1, "", 0, faulted), (2, f"{1:016x}", 5, plain)):
            old.execute(
                "INSERT INTO spans VALUES (?, ?, ?, 'op', 'svc', 2, ?, ?, 0, 1, 2, ?)",
                (f"{7:032x}", f"{span_id:016x}", parent, start, start + 1000, data),
            )
        old.execute(
            "INSERT INTO traces VALUES (?, 0, 1005, 2, 0, 'op', 'svc', 'svc', ?)",
            (f"{7:032x}", len(faulted) + len(plain)),
        )
    old.close()

    store = TraceStore(path, Limits(100, 10**9))
    (summary,) = store.summaries()
    assert summary.span_count == 2 and summary.fault_count == 1
    assert [row[1::2] for row in store.trace(f"{7:032x}")] == [("", ""), ("", "")]
    # Old blobs are found again (no duplicates), and new spans take schema URLs.
    store.write([record(7, 3, parent=1, start=9)])
    store.write([replace(record(8, 1), resource_schema_url="https://example.com/s/1")])
    with sqlite3.connect(path) as conn:
        # Through every step since (2: the links index; 3: the calls and operations indexes).
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert blobs == 3
    assert store.trace(f"{8:032x}")[0][1] == "https://example.com/s/1"
    (summary,) = [s for s in store.summaries() if s.trace_id == f"{7:032x}"]
    assert summary.span_count == 3 and summary.fault_count == 1
    store.close()
    # Opening it again changes nothing.
    again = TraceStore(path, Limits(100, 10**9))
    assert {s.fault_count for s in again.summaries()} == {1, 0}
    again.close()
