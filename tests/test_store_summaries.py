"""The traces' summaries, merged batch by batch, against their recomputation from all the
spans at once (the statement the store ran for every batch before schema version 6)."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.helpers import FailingCommit
from tests.old_schemas import as_version_5
from tests.test_store import RESOURCE, SCOPE
from trace_viewer.otlp import SpanRecord
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceStore

# The oracle: a trace's summary from all its spans (?1), as the store computed it up to
# schema version 5, with the root key it sorted the spans by.
ORACLE = """
SELECT t.trace_id, t.start_ns, t.duration_ns, t.span_count, t.error_count, root.name,
       root.service, t.services, t.bytes, t.fault_count, t.real_error_count,
       root.http_status, t.order_status, t.min_span_ns, t.root_key
FROM (
    SELECT s.trace_id, min(s.start_ns) AS start_ns,
           max(s.end_ns) - min(s.start_ns) AS duration_ns, count(*) AS span_count,
           sum(s.status_code = 2) AS error_count, group_concat(DISTINCT s.service) AS services,
           sum(length(s.data)) AS bytes, sum(s.fault) AS fault_count,
           CASE WHEN sum(s.fault) = 0 THEN sum(s.status_code = 2) ELSE (
               WITH RECURSIVE caused (span_id) AS (
                   SELECT f.span_id FROM spans f WHERE f.trace_id = ?1 AND f.fault
                   UNION
                   SELECT p.parent_span_id FROM caused c
                   JOIN spans p ON p.trace_id = ?1 AND p.span_id = c.span_id
               )
               SELECT count(*) FROM spans e WHERE e.trace_id = ?1 AND e.status_code = 2
                   AND e.span_id NOT IN caused
           ) END AS real_error_count,
           max(s.order_status) AS order_status, min(s.end_ns - s.start_ns) AS min_span_ns,
           min(printf('%d%020d%020d', s.parent_span_id != '', s.start_ns, s.rowid)) AS root_key
    FROM spans s WHERE s.trace_id = ?1
) t
JOIN spans root ON root.rowid = CAST(substr(t.root_key, 22) AS INTEGER)
"""
COLUMNS = (
    "trace_id, start_ns, duration_ns, span_count, error_count, root_name, root_service, "
    "services, bytes, fault_count, real_error_count, root_status, order_status, min_span_ns, "
    "root_key"
)


def rows(path: Path, query: str, trace_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Summary rows by trace id, the services as a set (their order is not kept)."""
    found = {}
    with sqlite3.connect(path) as conn:
        for trace_id in trace_ids:
            for row in conn.execute(query, (trace_id,)):
                found[row[0]] = (*row[:7], frozenset(row[7].split(",")), *row[8:])
    conn.close()
    return found


def merged_and_recomputed(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summaries the store wrote, and the oracle's from the spans it holds."""
    with sqlite3.connect(path) as conn:
        traces = [row[0] for row in conn.execute("SELECT DISTINCT trace_id FROM spans")]
    conn.close()
    stored = rows(path, f"SELECT {COLUMNS} FROM traces WHERE trace_id = ?", traces)
    return stored, rows(path, ORACLE, traces)


def span(
    trace: int,
    number: int,
    parent: int | None,
    start: int,
    length: int,
    service: str,
    *,
    error: bool = False,
    fault: bool = False,
    http_status: int | None = None,
    order_status: str | None = None,
    padding: int = 0,
) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{number:016x}",
        parent_span_id="" if parent is None else f"{parent:016x}",
        name=f"op{number}",
        service=service,
        kind=1,
        start_ns=start,
        end_ns=start + length,
        status_code=2 if error else 0,
        resource=RESOURCE,
        scope=SCOPE,
        span=Span(name="x" * padding, span_id=number.to_bytes(8, "big")).SerializeToString(),
        fault=fault,
        http_status=http_status,
        order_status=order_status,
    )


@st.composite
def spans(draw: st.DrawFn) -> SpanRecord:
    """A span of one of three traces; its parent any span of the trace, sent or not (one
    sent later, one never sent, itself: a cycle), or none. Ids repeat: a span is also sent
    again with other content."""
    number = draw(st.integers(1, 8))
    return span(
        draw(st.integers(1, 3)),
        number,
        draw(st.none() | st.integers(1, 9)),
        draw(st.integers(0, 40)),
        draw(st.integers(0, 30)),
        draw(st.sampled_from(["order-service", "payment-service", "shipping-service"])),
        error=draw(st.booleans()),
        fault=draw(st.integers(0, 5)) == 0,
        http_status=draw(st.sampled_from([None, 201, 402])),
        order_status=draw(st.sampled_from([None, None, "confirmed", "payment_failed"])),
        padding=draw(st.integers(0, 3)),
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(
        st.lists(spans(), max_size=8),
        min_size=1,
        max_size=5,
    ),
    again=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 7)), max_size=4),
    max_traces=st.sampled_from([1, 2, 100]),
)
def test_a_summary_merged_batch_by_batch_is_the_one_of_all_its_spans(
    batches: list[list[SpanRecord]], again: list[tuple[int, int]], max_traces: int
) -> None:
    """Any split of the spans of one or several traces into batches, in any order, with
    spans sent again in the same batch or a later one (the same or other content), parents
    after their children, and retention dropping traces between batches."""
    for batch, position in again:  # a span of one batch in a later one too
        if batch < len(batches) and position < len(batches[batch]):
            batches[min(batch + 1, len(batches) - 1)].append(batches[batch][position])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.db"
        store = TraceStore(path, Limits(max_traces, 10**9))
        for batch in batches:
            store.write(batch)
        # What retention weighs, kept up to date batch by batch: as counted afresh.
        with sqlite3.connect(path) as conn:
            counted = conn.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM traces")
            assert (store.trace_count, store._trace_bytes) == counted.fetchone()
        conn.close()
        assert store.trace_count <= max_traces
        store.close()
        stored, recomputed = merged_and_recomputed(path)
    assert stored == recomputed


def test_the_root_is_the_span_without_a_parent_else_the_earliest(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = TraceStore(path, Limits(100, 10**9))
    store.write([span(1, 3, 2, 30, 5, "shipping-service")])
    (first,) = store.search()
    assert (first.root_name, first.root_service) == ("op3", "shipping-service")
    store.write([span(1, 2, 1, 20, 20, "payment-service")])
    (earlier,) = store.search()
    assert (earlier.root_name, earlier.root_status) == ("op2", None)
    store.write([span(1, 1, None, 25, 10, "order-service", http_status=402)])
    (rooted,) = store.search()
    assert (rooted.root_name, rooted.root_service, rooted.root_status) == (
        "op1",
        "order-service",
        402,
    )
    assert rooted.services == ["order-service", "payment-service", "shipping-service"]
    assert (rooted.start_ns, rooted.duration_ns, rooted.span_count) == (20, 40 - 20, 3)
    # An earlier span with a parent does not take the place of the root.
    store.write([span(1, 4, 1, 0, 1, "order-service")])
    (still,) = store.search()
    assert (still.root_name, still.start_ns) == ("op1", 0)
    store.close()


def test_a_version_5_database_gets_its_root_keys_in_place(tmp_path: Path) -> None:
    """Version 6 keeps each trace's root key; a version-5 database has none, and its
    traces merge later spans only once the migration has found them."""
    path = tmp_path / "traces.db"
    first = TraceStore(path, Limits(100, 10**9))
    # Trace 1's root has not arrived: its earliest span stands in. Trace 2 has a fault.
    first.write(
        [
            span(1, 3, 2, 30, 5, "shipping-service"),
            span(2, 1, None, 0, 50, "order-service", error=True),
            span(2, 2, 1, 5, 10, "payment-service", error=True, fault=True),
            span(2, 3, None, 9, 1, "order-service", error=True),
        ]
    )
    first.close()
    as_version_5(path)
    with sqlite3.connect(path) as conn:
        assert "root_key" not in {row[1] for row in conn.execute("PRAGMA table_info(traces)")}
    conn.close()

    store = TraceStore(path, Limits(100, 10**9))
    assert [(s.root_name, s.error_count) for s in store.search()] == [("op3", 0), ("op1", 1)]
    store.write([span(1, 2, 1, 20, 5, "payment-service")])  # earlier than the stand-in
    store.write([span(2, 4, 3, 1, 1, "order-service", error=True)])
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (7,)
    conn.close()
    stored, recomputed = merged_and_recomputed(path)
    assert stored == recomputed
    assert stored[f"{1:032x}"][5] == "op2"
    assert stored[f"{2:032x}"][10] == 2, "the spans 3 and 4 are real errors"


def test_a_batch_that_fails_leaves_the_summaries_and_totals_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.db"
    store = TraceStore(path, Limits(100, 10**9))
    store.write([span(1, 1, None, 0, 10, "order-service")])
    (before,) = store.search()

    def broken(spans: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_add_calls", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.write([span(1, 2, 1, 5, 10, "payment-service"), span(2, 1, None, 9, 1, "x")])
    monkeypatch.undo()
    assert store.search() == [before]
    assert (store.trace_count, store._trace_bytes) == (1, before_bytes(path))
    store.write([span(1, 2, 1, 5, 10, "payment-service")])
    (after,) = store.search()
    assert after.span_count == 2 and after.services == ["order-service", "payment-service"]
    store.close()


def test_a_batch_whose_commit_fails_evicts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(1, 10**9))
    store.write([span(1, 1, None, 0, 10, "order-service")])
    monkeypatch.setattr(store, "_writer", FailingCommit(store._writer))
    with pytest.raises(sqlite3.OperationalError):
        store.write([span(2, 1, None, 20, 10, "order-service")])  # evicts trace 1, uncommitted
    monkeypatch.undo()
    assert [t.span_count for t in store.search()] == [1]
    assert (store.trace_count, store.stats()["traces_evicted"]) == (1, 0)
    store.write([span(2, 1, None, 20, 10, "order-service")])
    assert (store.trace_count, store.stats()["traces_evicted"]) == (1, 1)
    store.close()


def before_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (size,) = conn.execute("SELECT sum(bytes) FROM traces").fetchone()
    conn.close()
    return int(size)
