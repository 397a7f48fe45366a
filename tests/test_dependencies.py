"""The service graph, ``GET /api/dependencies``: the pure edge maths, a store of crafted
calls whose counts, errors and p99 are known, Jaeger's parameters and envelope, and real
order traces from the in-process system."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.trace import SpanKind, StatusCode

from ordersim.testing import down
from tests.helpers import order_body
from tests.old_schemas import as_version_1
from trace_viewer.dependencies import Call, Dependency, address, dependency_links, nearest_rank
from trace_viewer.otlp import SpanRecord, records
from trace_viewer.query import create_query_app
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceStore

SERVER, CLIENT, INTERNAL = 2, 3, 1
T0 = 1_700_000_000_000_000_000  # ns
MS = 1_000_000
SCOPE = InstrumentationScope(name="test").SerializeToString()


# --- the pure part ------------------------------------------------------------------------------


def test_p99_is_the_nearest_rank() -> None:
    assert nearest_rank(list(range(1, 101)), 0.99) == 99  # rank ceil(99.0) = 99
    assert nearest_rank(list(range(1, 201)), 0.99) == 198
    assert nearest_rank(list(range(1, 102)), 0.99) == 100  # rank ceil(99.99) = 100
    assert nearest_rank([7], 0.99) == 7


def test_edges_count_calls_and_failures_and_sort() -> None:
    calls = [Call("a", "b", False, d * MS) for d in range(1, 101)]
    calls += [Call("a", "b", True, 500 * MS), Call("a", "a", 0, MS), ("0", "x", 1, 2 * MS)]
    assert dependency_links(calls) == [
        Dependency("0", "x", 1, 1, 2 * MS),
        Dependency("a", "a", 1, 0, MS),
        Dependency("a", "b", 101, 1, 100 * MS),  # rank ceil(0.99 * 101) = 100
    ]


def http_client(**attributes: str | int) -> Span:
    return Span(
        kind=CLIENT,
        attributes=[
            KeyValue(
                key=k,
                value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v),
            )
            for k, v in attributes.items()
        ],
    )


def test_a_client_span_names_the_address_it_called() -> None:
    semconv = {"http.request.method": "POST", "server.address": "10.0.0.2", "server.port": 8002}
    assert address(http_client(**semconv)) == "10.0.0.2:8002"
    older = {"http.method": "GET", "http.url": "https://pay.example/x"}
    assert address(http_client(**older)) == "pay.example:443"
    rpc = {"rpc.system": "grpc", "net.peer.name": "inv", "net.peer.port": 50051}
    assert address(http_client(**rpc)) == "inv:50051"
    # A database query is no call to a service.
    query = {"db.system.name": "postgresql", "server.address": "db", "server.port": 5432}
    assert address(http_client(**query)) is None


# --- a store of crafted calls -----------------------------------------------------------------


def resource(service: str) -> bytes:
    attributes = [KeyValue(key="service.name", value=AnyValue(string_value=service))]
    return Resource(attributes=attributes).SerializeToString()


def span(
    trace: int,
    span_id: int,
    service: str,
    kind: int,
    *,
    parent: int = 0,
    start_ms: float = 0,
    duration_ms: float = 1,
    error: bool = False,
    **attributes: str | int,
) -> SpanRecord:
    start = T0 + round(start_ms * MS)
    end = start + round(duration_ms * MS)
    message = http_client(**attributes)
    message.kind = kind  # type: ignore[assignment]
    message.trace_id = trace.to_bytes(16, "big")
    message.span_id = span_id.to_bytes(8, "big")
    message.parent_span_id = parent.to_bytes(8, "big") if parent else b""
    message.start_time_unix_nano, message.end_time_unix_nano = start, end
    message.name = f"{service}-{span_id}"
    message.status.CopyFrom(Status(code=2 if error else 0))
    return SpanRecord(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else "",
        name=message.name,
        service=service,
        kind=kind,
        start_ns=start,
        end_ns=end,
        status_code=2 if error else 0,
        resource=resource(service),
        scope=SCOPE,
        span=message.SerializeToString(),
    )


PAY = {"http.request.method": "POST", "server.address": "127.0.0.1", "server.port": 8002}


def call(
    trace: int, client_ms: float, *, failed: bool = False, start_ms: float = 0
) -> tuple[SpanRecord, SpanRecord]:
    """orders → payments: the CLIENT span (span 2, under the order's SERVER span 1) and the
    SERVER span that answered it (span 3), an error when ``failed``."""
    kwargs: dict[str, Any] = {"start_ms": start_ms, "error": failed}
    client = span(trace, 2, "orders", CLIENT, parent=1, duration_ms=client_ms, **kwargs, **PAY)
    kwargs["start_ms"] += 0.1
    server = span(trace, 3, "payments", SERVER, parent=2, duration_ms=client_ms / 2, **kwargs)
    return client, server


class Graph:
    def __init__(self, store: TraceStore, client: httpx.AsyncClient) -> None:
        self.store = store
        self.client = client

    async def get(self, **params: str) -> list[dict[str, Any]]:
        params.setdefault("endTs", str((T0 + 3600 * 10**9) // MS))
        response = await self.client.get("/api/dependencies", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert {k: body[k] for k in ("total", "limit", "offset", "errors")} == {
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": None,
        }
        return list(body["data"])


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[Graph]:
    store = TraceStore(tmp_path / "traces.db", Limits(10_000, 10**10))
    transport = httpx.ASGITransport(app=create_query_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        yield Graph(store, client)
    store.close()


async def test_counts_errors_and_p99_of_known_calls(graph: Graph) -> None:
    # 100 calls of 1..100 ms, 3 of them answered with an error, written three ways: client
    # and server in one batch, the server first (the usual order: a callee's spans end
    # first), the client first.
    for trace in range(1, 101):
        client, server = call(trace, float(trace), failed=trace in (7, 8, 9))
        root = span(trace, 1, "orders", SERVER, duration_ms=200)
        if trace % 3 == 0:
            graph.store.write([root, client, server])
        elif trace % 3 == 1:
            graph.store.write([server])
            graph.store.write([root, client])
        else:
            graph.store.write([root, client])
            graph.store.write([server])
    # In-process children, a database query and a SERVER span under an INTERNAL one are
    # no calls; a SERVER span whose parent id is all zeros is a root, awaiting nothing.
    graph.store.write(
        [
            replace(span(500, 1, "orders", SERVER), parent_span_id="0" * 16),
            span(500, 2, "orders", INTERNAL, parent=1),
            span(500, 3, "orders", CLIENT, parent=2, error=True, **{"db.system.name": "sqlite"}),
            span(500, 4, "payments", SERVER, parent=2),
        ]
    )
    assert await graph.get() == [
        {"parent": "orders", "child": "payments", "callCount": 100, "errorCount": 3, "p99Ms": 99.0}
    ]
    with sqlite3.connect(graph.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM awaited_calls").fetchone() == (0,)


async def test_a_call_nobody_answered_counts_as_a_failure_of_its_callee(graph: Graph) -> None:
    # Two answered calls teach the address of payments; then three failed CLIENT spans with
    # no SERVER span: two to that address, one to an address no service answered at, one
    # naming its peer.service.
    for trace in (1, 2):
        graph.store.write(list(call(trace, 10)))
    graph.store.write(
        [
            span(3, 2, "orders", CLIENT, duration_ms=3000, error=True, **PAY),
            span(4, 2, "orders", CLIENT, duration_ms=20, error=True, **PAY),
            span(
                5, 2, "orders", CLIENT, duration_ms=5, error=True, **(PAY | {"server.port": 8003})
            ),
            span(
                6,
                2,
                "orders",
                CLIENT,
                duration_ms=7,
                error=True,
                **(PAY | {"peer.service": "fraud-check"}),
            ),
            span(7, 2, "orders", CLIENT, duration_ms=7, **PAY),  # not failed: no call counted
        ]
    )
    edges = {
        (e["parent"], e["child"], e["callCount"], e["errorCount"], e["p99Ms"])
        for e in await graph.get()
    }
    assert edges == {
        ("orders", "127.0.0.1:8003", 1, 1, 5.0),
        ("orders", "fraud-check", 1, 1, 7.0),
        ("orders", "payments", 4, 2, 3000.0),
    }


async def test_the_window_is_the_client_spans_start(graph: Graph) -> None:
    # endTs and lookback in ms, as Jaeger's: calls at 0, 10 and 20 minutes.
    for trace, minute in ((1, 0), (2, 10), (3, 20)):
        graph.store.write(list(call(trace, 1, start_ms=minute * 60_000)))
    end = (T0 + 20 * 60 * 10**9) // MS
    for lookback_min, expected in ((5, 1), (15, 2), (25, 3)):
        edges = await graph.get(endTs=str(end), lookback=str(lookback_min * 60_000))
        assert [e["callCount"] for e in edges] == [expected]
    assert await graph.get(endTs=str(T0 // MS - 1)) == []
    # service= keeps the edges from or to it, as Jaeger's handler does.
    assert len(await graph.get(service="payments")) == 1
    assert await graph.get(service="shipping") == []


async def test_evicted_traces_leave_the_graph(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.db", Limits(max_traces=3, max_bytes=10**9))
    for trace in range(1, 6):
        store.write(list(call(trace, trace, start_ms=trace)))
    store.write([call(99, 1)[1]])  # a SERVER span still waiting, then evicted with its trace
    store.write([span(trace, 9, "x", INTERNAL, start_ms=100 + trace) for trace in (100, 101, 102)])
    assert store.calls(0, 2**63 - 1) == []
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT count(*) FROM awaited_calls").fetchone() == (0,)
    store.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"endTs": "soon"}, "unable to parse param 'endTs': strconv.ParseInt: parsing \"soon\""),
        ({"lookback": "1.5"}, "unable to parse param 'lookback'"),
        ({"endTs": "9" * 20}, "value out of range"),
        ({"endTs": "1" * 5000}, "value out of range"),
        ({"lookback": "-1"}, "lookback -1 is negative"),
    ],
)
async def test_a_malformed_parameter_is_jaegers_400(
    graph: Graph, params: dict[str, str], message: str
) -> None:
    response = await graph.client.get("/api/dependencies", params=params)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == 400 and message in error["msg"]


async def test_the_defaults_are_now_and_a_day(graph: Graph) -> None:
    # A call started now counts without endTs; one 25 hours old does not (Jaeger's 24 h).
    import time

    now = time.time_ns()
    for trace, age_h in ((1, 0), (2, 25)):
        client, server = call(trace, 1)
        for record in (client, server):
            record.start_ns += now - T0 - age_h * 3600 * 10**9
            record.end_ns += now - T0 - age_h * 3600 * 10**9
        graph.store.write([client, server])
    for params in ({}, {"endTs": "", "lookback": ""}):  # empty is absent, as in Jaeger
        response = await graph.client.get("/api/dependencies", params=params)
        assert [e["callCount"] for e in response.json()["data"]] == [1]


# --- migration ------------------------------------------------------------------------------


def test_a_version_1_database_gets_its_links_calls_and_operation_kinds(tmp_path: Path) -> None:
    current, path = tmp_path / "current.db", tmp_path / "traces.db"
    store = TraceStore(current, Limits(100, 10**9))
    store.write([*call(1, 4), span(1, 1, "orders", SERVER, duration_ms=10)])
    store.write([call(2, 8)[1]])  # its CLIENT span has not arrived
    store.close()
    as_version_1(current, path)  # no links or calls tables, the operations index without kinds
    store = TraceStore(path, Limits(100, 10**9))
    assert store.calls(0, 2**63 - 1) == [("orders", "payments", 0, 4 * MS)]
    store.write([call(2, 8)[0]])  # the awaited call completes after the migration
    assert sorted(store.calls(0, 2**63 - 1)) == [
        ("orders", "payments", 0, 4 * MS),
        ("orders", "payments", 0, 8 * MS),
    ]
    assert store.operations("orders") == [("orders-1", SERVER), ("orders-2", CLIENT)]
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "spans_by_service" not in indexes and "spans_by_operation" in indexes
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    store.close()


# --- real order traces ------------------------------------------------------------------------


async def test_the_graph_of_real_orders(start_system: Callable[..., Any], tmp_path: Path) -> None:
    # Three orders, then two while payment refuses connections: those charges are CLIENT
    # spans nobody answered, on the edge to payment-service all the same.
    async with start_system(wrap={"payment": down("/charges")}) as system:
        refusing = system.transports["payment"]
        refusing.enabled = False
        for _ in range(3):
            assert (await system.order.post("/orders", json=order_body())).status_code == 201
        refusing.enabled = True
        for _ in range(2):
            assert (await system.order.post("/orders", json=order_body())).status_code == 503
        spans = list(system.exporter.get_finished_spans())

    store = TraceStore(tmp_path / "real.db", Limits(1000, 10**9))
    # In the order they ended, 64 at a time, as a batch span processor sends them.
    for i in range(0, len(spans), 64):
        kept, rejected = records(encode_spans(spans[i : i + 64]))
        assert not rejected
        store.write(kept)

    # The oracle: order-service's HTTP CLIENT spans by the port they called.
    ports = {8001: "inventory-service", 8002: "payment-service", 8003: "shipping-service"}
    expected: dict[str, list[int]] = {}
    for s in spans:
        attributes = s.attributes or {}
        if s.kind == SpanKind.CLIENT and "http.request.method" in attributes:
            assert s.resource.attributes["service.name"] == "order-service"
            counts = expected.setdefault(ports[int(attributes["server.port"])], [0, 0])
            counts[0] += 1
            counts[1] += s.status.status_code == StatusCode.ERROR
    assert expected["payment-service"][1] >= 2  # every refused charge failed

    transport = httpx.ASGITransport(app=create_query_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        body = (await client.get("/api/dependencies")).json()
    store.close()
    got = {e["child"]: e for e in body["data"]}
    assert {e["parent"] for e in body["data"]} == {"order-service"}
    assert set(got) == set(expected)
    for child, (count, failures) in expected.items():
        # A refused call failed; an answered one did not (the callee never erred).
        assert (got[child]["callCount"], got[child]["errorCount"]) == (count, failures), child
        assert got[child]["p99Ms"] > 0
