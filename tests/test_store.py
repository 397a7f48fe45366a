"""The trace store on its own: batches, duplicates, retention by trace count and bytes."""

from __future__ import annotations

import sqlite3
from array import array
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.old_schemas import SCHEMA_V0, SCHEMA_V1
from trace_viewer.otlp import SpanRecord
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceQuery, TraceStore

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
    (summary,) = store.search()
    assert summary.span_count == 2 and summary.error_count == 1
    assert summary.duration_ns == 20 + 1000 - 10
    assert len(store.trace(f"{1:032x}")) == 2
    assert store.stats()["spans_received"] == 3


def test_errors_an_injected_fault_caused_upstream_are_not_real_errors(tmp_path: Path) -> None:
    """POST /orders → place_order → charge_payment → POST /charges (CLIENT) → POST /charges
    (SERVER, the injected fault), each ERROR because of it; beside them a real ERROR (an
    inventory call that failed on its own), one under a faulted ancestor (a descendant of a
    fault fails for a reason of its own), and a faulted span that is no error."""
    store = TraceStore(tmp_path / "t.db", Limits(100, 10**9))
    chain = [record(1, 1, error=True)] + [
        record(1, span, parent=span - 1, start=span, error=True) for span in range(2, 6)
    ]
    chain[-1].fault = True  # the SERVER span the fault made fail
    real = record(1, 6, parent=2, start=6, error=True)  # under place_order, not on the path
    slow = record(1, 7, parent=6, start=7)
    slow.fault = True  # a latency fault: its ancestors 6, 2 and 1 are in error anyway
    below = record(1, 8, parent=5, start=8, error=True)  # under the faulted span
    # Delivered in two batches, the fault's span last: its ancestors are counted again.
    store.write([*chain[:-1], real])
    (before,) = store.search()
    assert (before.error_count, before.fault_count) == (5, 0)
    store.write([chain[-1], slow, below])
    (summary,) = store.search()
    assert (summary.span_count, summary.fault_count) == (8, 2)
    # 1, 2, 3, 4 are ancestors of the fault at 5 (and 1, 2, 6 of the one at 7): only the
    # span under the faulted one is a real error. Without the latency fault, 6 would be one.
    assert summary.error_count == 1
    other = TraceStore(tmp_path / "u.db", Limits(100, 10**9))
    other.write([*chain, real, below])
    (without_latency_fault,) = other.search()
    assert without_latency_fault.error_count == 2
    other.close()
    store.close()


def test_retention_drops_the_oldest_traces_beyond_the_count(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=5, max_bytes=10**9))
    for trace in range(1, 9):
        store.write([record(trace, 1, start=trace * 1000)])
    kept = sorted(int(s.trace_id, 16) for s in store.search())
    assert kept == [4, 5, 6, 7, 8]
    assert store.trace(f"{1:032x}") == []
    assert store.stats()["traces_evicted"] == 3


def test_retention_bounds_the_bytes(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=1000, max_bytes=50_000))
    for trace in range(1, 41):
        store.write([record(trace, 1, start=trace, padding=5_000)])
    stats = store.stats()
    assert stats["traces_stored"] * 5_000 <= 50_000 + 5_100
    newest = max(int(s.trace_id, 16) for s in store.search(TraceQuery(limit=1000)))
    assert newest == 40  # the newest survive


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
    (summary,) = store.search()
    assert summary.span_count == 2 and summary.fault_count == 1
    assert [row[1::2] for row in store.trace(f"{7:032x}")] == [("", ""), ("", "")]
    # Old blobs are found again (no duplicates), and new spans take schema URLs.
    store.write([record(7, 3, parent=1, start=9)])
    store.write([replace(record(8, 1), resource_schema_url="https://example.com/s/1")])
    with sqlite3.connect(path) as conn:
        # Through every step since (2: the links index; 3: the calls and operations indexes;
        # 4: the attribute index).
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert blobs == 3
    assert store.trace(f"{8:032x}")[0][1] == "https://example.com/s/1"
    (summary,) = [s for s in store.search() if s.trace_id == f"{7:032x}"]
    assert summary.span_count == 3 and summary.fault_count == 1
    store.close()
    # Opening it again changes nothing.
    again = TraceStore(path, Limits(100, 10**9))
    assert {s.fault_count for s in again.search()} == {1, 0}
    again.close()


# --- the attribute index ----------------------------------------------------------------------


def attributed(trace: int, span: int, start: int, **attributes: str | int) -> SpanRecord:
    """A span with attributes, as the intake makes its record (index keys included)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from trace_viewer.otlp import records

    values = [
        KeyValue(
            key=key,
            value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v),
        )
        for key, v in attributes.items()
    ]
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add(resource=Resource.FromString(RESOURCE)).scope_spans
    scope_spans.add().spans.append(
        Span(
            name="op",
            trace_id=trace.to_bytes(16, "big"),
            span_id=span.to_bytes(8, "big"),
            start_time_unix_nano=start,
            end_time_unix_nano=start + 1000,
            attributes=values,
        )
    )
    (kept,), _ = records(request)
    return kept


def index_rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM span_attributes").fetchone()[0])


def test_retention_deletes_the_index_rows_of_what_it_drops(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=3, max_bytes=10**9))
    for trace in range(1, 7):
        store.write([attributed(trace, 1, trace * 1000, order=f"ord_{trace}", status=402)])
        store.write([attributed(trace, 1, trace * 1000, order=f"ord_{trace}", status=402)])  # again
    assert index_rows(tmp_path / "t.db") == 3 * 2, "two attributes of each of three spans"
    found = store.search(TraceQuery(attributes={"status": "402"}))
    assert [int(s.trace_id, 16) for s in found] == [6, 5, 4]
    assert store.search(TraceQuery(attributes={"order": "ord_1"})) == []
    assert [s.trace_id for s in store.search(TraceQuery(attributes={"order": "ord_5"}))] == [
        f"{5:032x}"
    ]
    store.close()


def index_of(path: Path) -> set[tuple[int, int]]:
    """The attribute index's rows, (key, span rowid)."""
    with closing(sqlite3.connect(path)) as conn:
        return set(conn.execute("SELECT key, span FROM span_attributes").fetchall())


def keys_by_rowid(path: Path) -> dict[int, set[int]]:
    """Each stored span's own index keys (spans.attribute_keys), by rowid."""
    with closing(sqlite3.connect(path)) as conn:
        return {
            rowid: set(array("q", packed))
            for rowid, packed in conn.execute("SELECT rowid, attribute_keys FROM spans")
        }


def index_of_stored_spans(path: Path) -> set[tuple[int, int]]:
    """The rows the attribute index should hold: each stored span under each of its keys."""
    return {(key, rowid) for rowid, keys in keys_by_rowid(path).items() for key in keys}


def test_the_index_holds_exactly_the_keys_of_the_spans_stored(tmp_path: Path) -> None:
    """A batch of spans with none, one and several indexed attributes, one of them sent
    again beside new ones: the index lists each stored span under each of its keys, once,
    and retention takes exactly the rows of the spans it drops."""
    path = tmp_path / "t.db"
    store = TraceStore(path, Limits(max_traces=2, max_bytes=10**9))
    first = [
        attributed(1, 1, 1000, order="ord_1", status=402, route="/orders"),
        attributed(1, 2, 1001),
        attributed(1, 3, 1002, route="/orders"),
    ]
    store.write(first)
    store.write([attributed(2, 1, 2000, order="ord_2"), first[2], attributed(2, 2, 2001)])
    spans = keys_by_rowid(path)
    assert [len(keys) for _, keys in sorted(spans.items())] == [3, 0, 1, 1, 0]
    assert index_of(path) == index_of_stored_spans(path)
    store.write([attributed(3, 1, 3000, route="/orders")])  # trace 1 goes
    assert len(keys_by_rowid(path)) == 3
    assert index_of(path) == index_of_stored_spans(path)
    found = store.search(TraceQuery(attributes={"route": "/orders"}))
    assert [s.trace_id for s in found] == [f"{3:032x}"]
    store.close()


def test_a_version_6_database_gets_its_index_by_generation_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 7 keys the attribute index by the span's generation first: a version-6
    database's index is copied over, row for row, and searches and retention go on."""
    from tests.old_schemas import as_version_6
    from trace_viewer import store as module

    monkeypatch.setattr(module, "GENERATION_BITS", 1)  # two spans a generation
    path = tmp_path / "traces.db"
    first = TraceStore(path, Limits(max_traces=4, max_bytes=10**9))
    for trace in range(1, 5):
        first.write(
            [attributed(trace, span, trace * 1000 + span, order=f"ord_{trace}") for span in (1, 2)]
        )
    first.close()
    as_version_6(path)
    v6_rows = index_of(path)
    assert len(v6_rows) == 8

    store = TraceStore(path, Limits(max_traces=4, max_bytes=10**9))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (7,)
        rows = conn.execute("SELECT gen, key, span FROM span_attributes").fetchall()
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'span_attributes_v6'"
        ).fetchall()
    conn.close()
    assert {(key, span) for _, key, span in rows} == v6_rows
    assert {gen for gen, _, span in rows} == {span >> 1 for _, _, span in rows} == {0, 1, 2, 3, 4}
    for weight in (0, 10**9):  # walking the traces, and starting from the index
        monkeypatch.setattr(module, "_WALK_COST_PER_ROW", weight)
        found = store.search(TraceQuery(attributes={"order": "ord_3"}))
        assert [s.trace_id for s in found] == [f"{3:032x}"]
    store.write([attributed(5, 1, 5000, order="ord_3")])  # trace 1 goes, its rows too
    assert index_of(path) == index_of_stored_spans(path)
    found = store.search(TraceQuery(attributes={"order": "ord_3"}))
    assert [s.trace_id for s in found] == [f"{5:032x}", f"{3:032x}"]
    store.close()


def test_both_plans_find_the_same_traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search starts from the index when its condition is rare, and walks the traces when
    it is common: the answer is the same either way."""
    from trace_viewer import store as module

    store = TraceStore(tmp_path / "t.db", Limits(max_traces=1000, max_bytes=10**9))
    for trace in range(1, 61):
        status = 402 if trace % 7 == 0 else 201
        spans = [attributed(trace, 1, trace * 10_000, status=status)]
        child = record(trace, 2, parent=1, start=trace * 10_000 + 5, error=trace % 5 == 0)
        spans.append(replace(child, name="child"))
        store.write(spans)
    queries = [
        TraceQuery(attributes={"status": "402"}, limit=5),
        TraceQuery(attributes={"status": "201"}, limit=100),
        TraceQuery(attributes={"status": "402"}, start_max_ns=300_000, limit=100),
        TraceQuery(service="svc", operation="child", limit=7),
        TraceQuery(service="svc", operation="child", min_duration_ns=2000, limit=7),
        TraceQuery(operation="child", attributes={"error": "true"}, limit=100),
        TraceQuery(attributes={"span.status": "ERROR", "status": "402"}, limit=100),
    ]
    answers = {}
    for weight in (0, 10**9):  # never the index; the index whenever it can
        monkeypatch.setattr(module, "_WALK_COST_PER_ROW", weight)
        answers[weight] = [[s.trace_id for s in store.search(q)] for q in queries]
    assert answers[0] == answers[10**9]
    assert [len(a) for a in answers[0]] == [5, 52, 4, 7, 0, 12, 0]
    store.close()


def test_a_version_1_database_gets_its_index_and_outcomes_in_place(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    path = tmp_path / "traces.db"
    root = attributed(9, 1, 0, **{"http.response.status_code": 402, "shop.order.id": "ord_9"})
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA_V1)
        for blob in (RESOURCE, SCOPE):
            old.execute(
                "INSERT INTO blobs (hash, data) VALUES (?, ?)", (hashlib.sha1(blob).digest(), blob)
            )
        old.execute(
            "INSERT INTO spans VALUES (?, ?, '', 'POST /orders', 'svc', 2, 0, 1000, 2, 1, 2, ?, 0)",
            (root.trace_id, root.span_id, root.span),
        )
        old.execute(
            "INSERT INTO traces VALUES (?, 0, 1000, 1, 1, 'POST /orders', 'svc', 'svc', ?, 0)",
            (root.trace_id, len(root.span)),
        )
    old.close()
    assert "schema_url" in SCHEMA_V1 and "fault_count" in SCHEMA_V1

    store = TraceStore(path, Limits(100, 10**9))
    (found,) = store.search(TraceQuery(attributes={"shop.order.id": "ord_9"}))
    assert found.root_status == 402 and found.error_count == 1
    assert store.search(TraceQuery(attributes={"service.name": "svc"})) == [found]
    store.write([attributed(10, 1, 5000, **{"shop.order.id": "ord_10"})])
    assert len(store.search(TraceQuery(attributes={"shop.order.id": "ord_10"}))) == 1
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    again = TraceStore(path, Limits(100, 10**9))  # opening it again changes nothing
    assert index_rows(path) == 3
    assert len(again.search()) == 2
    again.close()
