"""Span links read forward: the store's reverse index of links (filled at ingest, deleted with
retention, built for an older ``traces.db`` when it is migrated) and
``GET /api/traces/{id}/linked``, on hand-made spans and on the real traces of a failed order
and its compensation retries."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.linked_traces import LinkedTraces, linked_traces
from tests.old_schemas import SCHEMA_V0, SCHEMA_V1
from tests.test_store import RESOURCE, SCOPE, record
from trace_viewer.otlp import SpanRecord, link_targets, records
from trace_viewer.query import create_query_app
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceStore


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def linking(trace: int, span: int, *targets: tuple[int, int], start: int = 0) -> SpanRecord:
    """A span of ``trace`` linking to each (trace, span) of ``targets``."""
    message = Span(
        name="retry_refund_payment",
        trace_id=trace.to_bytes(16, "big"),
        span_id=span.to_bytes(8, "big"),
        links=[
            Span.Link(trace_id=t.to_bytes(16, "big"), span_id=s.to_bytes(8, "big"))
            for t, s in targets
        ],
    )
    encoded = message.SerializeToString()
    return replace(
        record(trace, span, start=start),
        name=message.name,
        span=encoded,
        links=link_targets(message),
    )


@pytest.fixture
def store(tmp_path: Path) -> TraceStore:
    return TraceStore(tmp_path / "t.db", Limits(100, 10**9))


def linked(store: TraceStore, trace: int) -> list[tuple[str, str, str]] | None:
    found = store.linking_spans(tid(trace))
    return None if found is None else [(s.trace_id, s.span_id, s.linked_span_id) for s in found]


def test_links_are_found_from_the_span_they_point_to(store: TraceStore) -> None:
    store.write([record(1, 1), record(1, 2, parent=1)])
    store.write([linking(2, 7, (1, 2), start=50)])
    store.write([linking(3, 8, (1, 1), (1, 2), start=60)])  # two links, one span
    assert linked(store, 1) == [
        (tid(2), sid(7), sid(2)),
        (tid(3), sid(8), sid(1)),
        (tid(3), sid(8), sid(2)),
    ]
    (first, *_) = store.linking_spans(tid(1)) or []
    assert (first.name, first.service, first.root_name) == (
        "retry_refund_payment",
        "svc",
        "retry_refund_payment",
    )
    assert linked(store, 2) == [], "a trace nothing links to"
    assert linked(store, 99) is None, "an unknown trace"


def test_links_within_a_trace_are_not_forward_links(store: TraceStore) -> None:
    store.write([record(1, 1), linking(1, 2, (1, 1))])
    assert linked(store, 1) == []


def test_a_span_delivered_twice_is_indexed_once(store: TraceStore) -> None:
    store.write([record(1, 1)])
    retry = linking(2, 7, (1, 1))
    store.write([retry])
    store.write([retry])
    # The same span id again with other links: the span stored first stands, and so do its
    # links.
    store.write([linking(2, 7, (1, 1), (1, 5))])
    assert linked(store, 1) == [(tid(2), sid(7), sid(1))]
    assert store.trace(tid(2))[0][4] == retry.span


def test_retention_drops_the_links_of_the_traces_it_drops(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=3, max_bytes=10**9))
    store.write([record(1, 1, start=10_000)])  # the newest: it stays
    store.write([linking(2, 1, (1, 1), start=1)])
    store.write([linking(3, 1, (1, 1), start=2)])
    store.write([linking(4, 1, (1, 1), start=3)])  # the fourth trace: the oldest goes
    assert linked(store, 1) == [(tid(3), sid(1), sid(1)), (tid(4), sid(1), sid(1))]
    with sqlite3.connect(tmp_path / "t.db") as conn:
        rows = conn.execute("SELECT trace_id FROM links ORDER BY 1").fetchall()
    assert rows == [(tid(3),), (tid(4),)]


def test_invalid_link_ids_are_not_indexed() -> None:
    message = Span(
        links=[
            Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8),
            Span.Link(trace_id=b"\x00" * 16, span_id=b"\x02" * 8),
            Span.Link(trace_id=b"\x01" * 8, span_id=b"\x02" * 8),
            Span.Link(trace_id=b"\x01" * 16, span_id=b""),
        ]
    )
    assert link_targets(message) == [("01" * 16, "02" * 8)]
    assert link_targets(Span()) is None


@pytest.mark.parametrize("version", [0, 1])
def test_an_older_database_gets_its_links_indexed_when_migrated(
    tmp_path: Path, version: int
) -> None:
    import hashlib

    path = tmp_path / "traces.db"
    spans = [record(1, 1), linking(2, 7, (1, 1), start=5), linking(3, 8, (1, 1), start=6)]
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA_V0 if version == 0 else SCHEMA_V1)
        assert old.execute("PRAGMA user_version").fetchone() == (version,)
        for blob in (RESOURCE, SCOPE):
            old.execute(
                "INSERT INTO blobs (hash, data) VALUES (?, ?)", (hashlib.sha1(blob).digest(), blob)
            )
        for s in spans:
            old.execute(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, name, service, kind, "
                "start_ns, end_ns, status_code, resource_id, scope_id, data) "
                "VALUES (?, ?, '', 'op', 'svc', 1, ?, ?, 0, 1, 2, ?)",
                (s.trace_id, s.span_id, s.start_ns, s.end_ns, s.span),
            )
            old.execute(
                "INSERT INTO traces (trace_id, start_ns, duration_ns, span_count, error_count, "
                "root_name, root_service, services, bytes) VALUES (?, ?, 1000, 1, 0, 'op', "
                "'svc', 'svc', 10)",
                (s.trace_id, s.start_ns),
            )
    old.close()

    store = TraceStore(path, Limits(100, 10**9))
    assert linked(store, 1) == [(tid(2), sid(7), sid(1)), (tid(3), sid(8), sid(1))]
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    again = TraceStore(path, Limits(100, 10**9))  # opening it again changes nothing
    assert len(linked(again, 1) or []) == 2
    again.close()


# --- the API, on real traces ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[TraceStore, LinkedTraces]:
    traces = linked_traces(tmp_path_factory.mktemp("apps"))
    store = TraceStore(tmp_path_factory.mktemp("store") / "t.db", Limits(1000, 10**9))
    kept, refused = records(ExportTraceServiceRequest.FromString(traces.request))
    assert not refused
    store.write(kept)
    return store, traces


@pytest.fixture
async def api(real: tuple[TraceStore, LinkedTraces]) -> AsyncIterator[httpx.AsyncClient]:
    store, _ = real
    transport = httpx.ASGITransport(app=create_query_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        yield client


async def test_a_failed_order_links_forward_to_its_compensation_retries(
    api: httpx.AsyncClient, real: tuple[TraceStore, LinkedTraces]
) -> None:
    _, traces = real
    response = await api.get(f"/api/traces/{traces.failed_trace.upper()}/linked")
    assert response.status_code == 200
    data = response.json()["data"]
    assert [(d["traceID"], d["spanID"]) for d in data] == list(
        zip(traces.retry_traces, traces.retry_spans, strict=True)
    ), "both retries, oldest first"
    first, second = data
    assert {d["linkedSpanID"] for d in data} == {traces.refund_span}
    assert first["name"] == "retry_refund_payment" and first["service"] == "order-service"
    assert first["statusCode"] == 2, "the first retry failed: payment was still down"
    assert second["statusCode"] != 2
    assert first["rootName"] == "retry_refund_payment", "the retry is its trace's root"
    assert int(first["durationNano"]) > 0 and int(first["startTimeUnixNano"]) > 0

    # Backward, the retry's own trace has no forward links.
    assert (await api.get(f"/api/traces/{traces.retry_traces[0]}/linked")).json() == {"data": []}


async def test_a_confirmed_order_links_forward_to_its_notification(
    api: httpx.AsyncClient, real: tuple[TraceStore, LinkedTraces]
) -> None:
    _, traces = real
    [notification] = (await api.get(f"/api/traces/{traces.confirmed_trace}/linked")).json()["data"]
    assert (notification["traceID"], notification["spanID"]) == (
        traces.notification_trace,
        traces.notification_span,
    )
    assert notification["linkedSpanID"] == traces.confirmed_span
    assert notification["name"] == notification["rootName"] == "send_confirmation"
    assert notification["statusCode"] != 2


async def test_linked_answers_404_for_an_unknown_trace_and_422_for_a_bad_id(
    api: httpx.AsyncClient,
) -> None:
    unknown = await api.get(f"/api/traces/{'ab' * 16}/linked")
    assert unknown.status_code == 404
    assert unknown.json()["errors"] == [{"code": 404, "msg": "trace not found"}]
    assert (await api.get("/api/traces/xyz/linked")).status_code == 422
    assert (await api.get(f"/api/traces/{'ab' * 16}/linked?limit=0")).status_code == 422
