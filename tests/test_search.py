"""Finding traces: Jaeger's v1 search (/api/traces), its v3 search (/api/v3/traces) and our
listing (/api/summaries), one search behind all three, against traces built here.

The traces are order-shaped and small, each built for what it tells apart: a confirmed order,
a declined card (402, an exception event), an outage with an injected fault (503), and a
catalogue read from a resource with an attribute of its own. The query app runs in-process
over a real store in a temporary directory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from trace_viewer.otlp import JSON, parse_request, records
from trace_viewer.query import create_query_app
from trace_viewer.store import Limits, TraceStore

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MS = 1_000_000
SERVER, CLIENT, INTERNAL = 2, 3, 1
ORDER, PAYMENT, INVENTORY = "order-service", "payment-service", "inventory-service"


def attr(key: str, value: str | int | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


@dataclass
class Trace:
    """An OTLP JSON trace, span by span: ``span(...)`` in parent-first order."""

    number: int
    start_ms: float
    spans: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return f"{self.number:032x}"

    def span(
        self,
        service: str,
        name: str,
        start_ms: float,
        end_ms: float,
        *,
        parent: int | None = None,
        kind: int = INTERNAL,
        attributes: tuple[dict[str, Any], ...] = (),
        error: bool = False,
        events: tuple[dict[str, Any], ...] = (),
    ) -> int:
        index = len(self.spans)
        span: dict[str, Any] = {
            "traceId": self.trace_id,
            "spanId": f"{self.number:08x}{index + 1:08x}",
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(BASE_NS + int((self.start_ms + start_ms) * MS)),
            "endTimeUnixNano": str(BASE_NS + int((self.start_ms + end_ms) * MS)),
            "attributes": list(attributes),
            "events": list(events),
            "status": {"code": 2} if error else {},
        }
        if parent is not None:
            span["parentSpanId"] = self.spans[parent][1]["spanId"]
        self.spans.append((service, span))
        return index

    def request(self) -> dict[str, Any]:
        by_service: dict[str, list[dict[str, Any]]] = {}
        for service, span in self.spans:
            by_service.setdefault(service, []).append(span)
        return {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [attr("service.name", name), *self.resources.get(name, [])]
                    },
                    "scopeSpans": [{"scope": {"name": "tests.search"}, "spans": spans}],
                }
                for name, spans in by_service.items()
            ]
        }


def order(number: int, start_ms: float, status: int, outcome: str, order_id: str) -> Trace:
    """POST /orders → place_order → POST /charges (client) → POST /charges (payment)."""
    t = Trace(number, start_ms)
    failed = status >= 400
    root = t.span(
        ORDER,
        "POST /orders",
        0,
        40,
        kind=SERVER,
        attributes=(attr("http.response.status_code", status),),
    )
    place = t.span(
        ORDER,
        "place_order",
        1,
        39,
        parent=root,
        attributes=(attr("shop.order.id", order_id), attr("shop.order.status", outcome)),
        error=failed,
    )
    call = t.span(
        ORDER,
        "POST /charges",
        5,
        30,
        parent=place,
        kind=CLIENT,
        attributes=(attr("http.response.status_code", 201 if status == 201 else status),),
        error=status >= 500,
    )
    t.span(
        PAYMENT,
        "POST /charges",
        6,
        29,
        parent=call,
        kind=SERVER,
        attributes=(attr("http.response.status_code", 201 if status == 201 else status),),
    )
    return t


def confirmed() -> Trace:
    return order(1, 0, 201, "confirmed", "ord_00000000000000a1")


def declined() -> Trace:
    """The card declined: 402 at the root and on both charge spans; an exception event on
    the payment span; place_order ERROR (a real error)."""
    t = order(2, 100, 402, "payment_failed", "ord_00000000000000b2")
    t.spans[3][1]["events"] = [
        {
            "timeUnixNano": str(BASE_NS + 110 * MS),
            "name": "exception",
            "attributes": [attr("exception.type", "PaymentDeclined")],
        }
    ]
    return t


def outage() -> Trace:
    """The payment service was made to fail (an injected fault: ERROR and faulted) and slow;
    the client span calling it is ERROR because of it, and so is place_order."""
    t = order(3, 200, 503, "failed", "ord_00000000000000c3")
    _, payment = t.spans[3]
    payment["status"] = {"code": 2}
    payment["attributes"] = [
        attr("http.response.status_code", 500),
        attr("ordersim.fault.injected", True),
    ]
    payment["endTimeUnixNano"] = str(BASE_NS + int((200 + 180) * MS))  # a 174 ms span
    t.spans[0][1]["endTimeUnixNano"] = str(BASE_NS + int((200 + 190) * MS))
    return t


def catalogue() -> Trace:
    """A 2 ms read from an inventory-service whose resource says it runs in test."""
    t = Trace(4, 300)
    t.span(
        INVENTORY,
        "GET /products",
        0,
        2,
        kind=SERVER,
        attributes=(attr("http.response.status_code", 200),),
    )
    t.resources[INVENTORY] = [attr("deployment.environment.name", "test")]
    return t


TRACES = {
    "confirmed": confirmed(),
    "declined": declined(),
    "outage": outage(),
    "catalogue": catalogue(),
}
NAMES = {t.trace_id: name for name, t in TRACES.items()}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = TraceStore(tmp_path / "traces.db", Limits(100, 10**9))
    for trace in TRACES.values():
        kept, rejected = records(parse_request(json.dumps(trace.request()).encode(), JSON).request)
        assert not rejected
        store.write(kept)
    app = create_query_app(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as c:
        yield c
    store.close()


async def listed(api: httpx.AsyncClient, **params: Any) -> list[str]:
    """The names of the traces /api/summaries lists, in its order; the same as /api/traces."""
    response = await api.get("/api/summaries", params=params)
    assert response.status_code == 200, response.text
    names = [NAMES[row["traceID"]] for row in response.json()["data"]]
    jaeger = await api.get("/api/traces", params=params)
    assert jaeger.status_code == 200, jaeger.text
    assert [NAMES[t["traceID"]] for t in jaeger.json()["data"]] == names
    return names


def tags(**values: str) -> str:
    return json.dumps({key.replace("_", "."): value for key, value in values.items()})


async def test_a_tag_matches_the_text_of_an_attribute_value(api: httpx.AsyncClient) -> None:
    status = json.dumps({"http.response.status_code": "402"})  # the attribute is an integer
    assert await listed(api, tags=status) == ["declined"]
    assert await listed(api, tags=json.dumps({"shop.order.id": "ord_00000000000000a1"})) == [
        "confirmed"
    ]
    assert await listed(api, tags=json.dumps({"ordersim.fault.injected": "true"})) == ["outage"]
    # Jaeger's other spelling: tag=key:value (the value may hold colons), repeatable.
    assert await listed(api, tag="http.response.status_code:402") == ["declined"]
    assert await listed(api, tag="shop.order.id:ord_nothing") == []


async def test_every_condition_holds_on_one_span_as_in_jaeger(api: httpx.AsyncClient) -> None:
    # 402 is on the root and the charge spans, the order id on place_order: no span has both.
    both = json.dumps({"http.response.status_code": "402", "shop.order.id": "ord_00000000000000b2"})
    assert await listed(api, tags=both) == []
    assert await listed(
        api, service=PAYMENT, tags=json.dumps({"http.response.status_code": "402"})
    ) == ["declined"]
    assert (
        await listed(api, service=INVENTORY, tags=json.dumps({"http.response.status_code": "402"}))
        == []
    )
    on_place_order = {
        "shop.order.status": "payment_failed",
        "shop.order.id": "ord_00000000000000b2",
    }
    assert await listed(api, tags=json.dumps(on_place_order)) == ["declined"]
    assert await listed(
        api, service=ORDER, operation="place_order", tags=json.dumps(on_place_order)
    ) == ["declined"]


async def test_events_resources_and_scopes_are_searched(api: httpx.AsyncClient) -> None:
    assert await listed(api, tags=json.dumps({"exception.type": "PaymentDeclined"})) == ["declined"]
    assert (
        await listed(api, tags=json.dumps({"exception.type": "PaymentDeclined"}), service=ORDER)
        == []
    )
    environment = {"deployment.environment.name": "test"}
    assert await listed(api, tags=json.dumps(environment)) == ["catalogue"]
    assert await listed(api, tags=json.dumps({"resource.deployment.environment.name": "test"})) == [
        "catalogue"
    ]
    # resource.<key> reads the resource only; a span attribute does not answer it.
    assert await listed(api, tags=json.dumps({"resource.http.response.status_code": "200"})) == []
    assert await listed(api, tags=json.dumps({"scope.name": "tests.search"}), limit="2") == [
        "catalogue",
        "outage",
    ]


async def test_the_keys_jaeger_reads_as_span_fields(api: httpx.AsyncClient) -> None:
    assert await listed(api, tags=json.dumps({"error": "true"})) == ["outage", "declined"]
    assert await listed(api, tags=json.dumps({"error": "true"}), service=PAYMENT) == ["outage"]
    assert await listed(api, tags=json.dumps({"error": "maybe"})) == []
    assert await listed(
        api, tags=json.dumps({"span.status": "ERROR"}), operation="POST /charges"
    ) == ["outage"]
    client_402 = {"span.kind": "client", "http.response.status_code": "402"}
    assert await listed(api, tags=json.dumps(client_402)) == ["declined"]
    assert await listed(api, tags=json.dumps({"span.kind": "producer"})) == []


async def test_durations_are_of_a_matching_span(api: httpx.AsyncClient) -> None:
    # The example: no span lasts 1 µs or less, so nothing.
    assert await listed(api, maxDuration="1us") == []
    assert await listed(api, minDuration="150ms") == ["outage"]
    assert await listed(api, minDuration="150ms", service=ORDER) == ["outage"]
    # Of payment-service's spans, only the outage's is that long; order-service has 40 ms roots.
    assert await listed(api, minDuration="100ms", service=PAYMENT) == ["outage"]
    assert await listed(api, maxDuration="30ms", service=PAYMENT) == ["declined", "confirmed"]
    assert await listed(api, maxDuration="2ms") == ["catalogue"]
    assert await listed(api, minDuration="1ms", maxDuration="2.5ms") == ["catalogue"]
    # Go's durations: compound, and other units; a bare number stays µs (as before).
    assert await listed(api, minDuration="0m0.15s") == ["outage"]
    assert await listed(api, minDuration="150000") == ["outage"]


async def test_time_range_lookback_and_limit(api: httpx.AsyncClient) -> None:
    def micros(ms: float) -> str:
        return str((BASE_NS + int(ms * MS)) // 1000)

    assert await listed(api) == ["catalogue", "outage", "declined", "confirmed"]
    assert await listed(api, start=micros(100), end=micros(250)) == ["outage", "declined"]
    # Jaeger's span semantics: a span of the outage starts within 205-210 ms.
    assert await listed(api, start=micros(205), end=micros(210)) == ["outage"]
    # lookback reaches back from end (Jaeger UI sends it beside start; alone, it is the range).
    assert await listed(api, end=micros(250), lookback="0.1s") == ["outage"]
    assert await listed(api, end=micros(250), lookback="custom") == [
        "outage",
        "declined",
        "confirmed",
    ]
    assert await listed(api, limit="2") == ["catalogue", "outage"]
    assert await listed(api, limit="0002") == ["catalogue", "outage"]


async def test_trace_ids_are_answered_whatever_else_is_asked(api: httpx.AsyncClient) -> None:
    wanted = [TRACES["declined"].trace_id, "ab" * 16, TRACES["confirmed"].trace_id[-8:]]
    response = await api.get("/api/traces", params={"traceID": wanted, "service": INVENTORY})
    body = response.json()
    assert [NAMES[t["traceID"]] for t in body["data"]] == ["declined", "confirmed"]
    # An id Jaeger does not find is named in errors; a short one is a 64-bit id, zero-padded.
    assert body["errors"] == [{"msg": "trace not found", "traceID": "ab" * 16}]
    rows = (await api.get("/api/summaries", params={"traceID": wanted[:1]})).json()["data"]
    assert [r["traceID"] for r in rows] == [TRACES["declined"].trace_id]


async def test_v1_answers_in_jaegers_envelope_and_ignores_unknown_parameters(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.get("/api/traces", params={"service": INVENTORY, "prettyPrint": "1"})).json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert (body["total"], body["limit"], body["offset"], body["errors"]) == (0, 0, 0, None)
    assert [t["traceID"] for t in body["data"]] == [TRACES["catalogue"].trace_id]
    assert await listed(api, whatever="x", service=INVENTORY) == ["catalogue"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("tags", "{not json", "malformed 'tags' parameter"),
        ("tags", '{"http.response.status_code": 402}', "malformed 'tags' parameter"),
        ("tags", '["a"]', "malformed 'tags' parameter"),
        ("tag", "no-colon", "malformed 'tag' parameter"),
        ("minDuration", "soon", "'minDuration'"),
        ("maxDuration", "-1s", "'maxDuration'"),
        ("maxDuration", "5d", "'maxDuration'"),
        ("start", "yesterday", "'start'"),
        ("end", "1.5", "'end'"),
        ("lookback", "1y", "'lookback'"),
        ("limit", "0", "'limit'"),
        ("limit", "ten", "'limit'"),
        ("limit", "9" * 5000, "'limit'"),  # more digits than Python reads as an int
        ("traceID", "xyz", "traceID"),
        ("traceID", "a" * 33, "traceID"),
        ("error", "maybe", "'error'"),
    ],
)
async def test_a_malformed_value_is_a_400_in_jaegers_shape(
    api: httpx.AsyncClient, name: str, value: str, says: str
) -> None:
    for path in ("/api/traces", "/api/summaries"):
        response = await api.get(path, params={name: value})
        assert response.status_code == 400, (path, response.text)
        body = response.json()
        assert (body["data"], body["total"], body["limit"], body["offset"]) == (None, 0, 0, 0)
        [error] = body["errors"]
        assert error["code"] == 400 and says in error["msg"], error


async def test_a_maximum_below_the_minimum_is_refused_as_jaeger_refuses_it(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/api/traces", params={"minDuration": "2s", "maxDuration": "1s"})
    assert response.status_code == 400
    assert (
        response.json()["errors"][0]["msg"] == "'maxDuration' should be greater than 'minDuration'"
    )


async def test_summaries_tell_the_outcome_and_real_errors_from_faults(
    api: httpx.AsyncClient,
) -> None:
    rows = {NAMES[r["traceID"]]: r for r in (await api.get("/api/summaries")).json()["data"]}
    outcome = {name: (r["rootStatusCode"], r["orderStatus"]) for name, r in rows.items()}
    assert outcome == {
        "confirmed": (201, "confirmed"),
        "declined": (402, "payment_failed"),
        "outage": (503, "failed"),
        "catalogue": (200, None),
    }
    counts = {name: (r["errorCount"], r["faultCount"]) for name, r in rows.items()}
    # The outage: the payment span's ERROR is the injected fault's, counted as a fault and
    # not as an error, and so are those of its callers (the client span and place_order).
    assert counts == {
        "confirmed": (0, 0),
        "declined": (1, 0),
        "outage": (0, 1),
        "catalogue": (0, 0),
    }
    errors_only = await api.get("/api/summaries", params={"error": "true"})
    assert [NAMES[r["traceID"]] for r in errors_only.json()["data"]] == ["outage", "declined"]


# --- API v3 ----------------------------------------------------------------------------------

WINDOW = {
    "query.startTimeMin": "2026-01-01T00:00:00Z",
    "query.startTimeMax": "2026-01-01T00:00:01Z",
}


async def found_v3(api: httpx.AsyncClient, **params: str) -> list[str]:
    response = await api.get("/api/v3/traces", params=params)
    assert response.status_code == 200, response.text
    ids = {
        span["traceId"]
        for rs in response.json()["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    return sorted(NAMES[i] for i in ids)


async def test_v3_search_with_its_canonical_and_snake_case_names(api: httpx.AsyncClient) -> None:
    assert await found_v3(api, **WINDOW) == ["catalogue", "confirmed", "declined", "outage"]
    assert await found_v3(
        api, **WINDOW, **{"query.serviceName": PAYMENT, "query.durationMin": "100ms"}
    ) == ["outage"]
    snake = {
        "query.start_time_min": "2025-12-31T23:59:59Z",
        "query.start_time_max": "2026-01-01T01:00:00+01:00",
    }
    # 01:00+01:00 is midnight UTC: the range ends as the first trace starts.
    assert await found_v3(api, **snake, **{"query.service_name": ORDER}) == ["confirmed"]
    attributes = json.dumps({"http.response.status_code": "402", "span.kind": "server"})
    assert await found_v3(api, **WINDOW, **{"query.attributes": attributes}) == ["declined"]
    assert await found_v3(
        api,
        **WINDOW,
        **{
            "query.operationName": "place_order",
            "query.searchDepth": "1",
            "query.rawTraces": "true",
        },
    ) == ["outage"]
    # The window is of span starts, to the nanosecond (RFC 3339 with nine digits).
    at = {
        "query.startTimeMin": "2026-01-01T00:00:00.3Z",
        "query.startTimeMax": "2026-01-02T00:00:00Z",
    }
    assert await found_v3(api, **at) == ["catalogue"]
    after = {**at, "query.startTimeMin": "2026-01-01T00:00:00.300000001Z"}
    assert (await api.get("/api/v3/traces", params=after)).status_code == 404
    # Any year RFC 3339 writes is a time, beyond the store's int64 ns (1677 to 2262) too.
    ever = {
        "query.startTimeMin": "0001-01-01T00:00:00Z",
        "query.startTimeMax": "9999-12-31T23:59:59Z",
    }
    assert await found_v3(api, **ever) == sorted(await listed(api))
    late = {
        "query.startTimeMin": "9999-12-31T23:59:59Z",
        "query.startTimeMax": "9999-12-31T23:59:59.5Z",
    }
    assert (await api.get("/api/v3/traces", params=late)).status_code == 404


async def test_v3_wants_its_time_range_and_answers_404_when_nothing_matches(
    api: httpx.AsyncClient,
) -> None:
    cases = [
        ({}, "query.startTimeMin and query.startTimeMax are required"),
        ({"query.startTimeMin": WINDOW["query.startTimeMin"]}, "are required"),
        (
            {**WINDOW, "query.startTimeMin": "2026-01-01 00:00:00"},
            "malformed parameter query.startTimeMin",
        ),
        (
            {**WINDOW, "query.startTimeMax": "2026-02-30T00:00:00Z"},
            "malformed parameter query.startTimeMax",
        ),
        ({**WINDOW, "query.startTimeMin": "2026-01-02T00:00:00Z"}, "must be before"),
        ({**WINDOW, "query.durationMin": "fast"}, "malformed parameter query.durationMin: 'fast'"),
        ({**WINDOW, "query.duration_max": "1"}, ""),  # a bare number is µs: fine
        ({**WINDOW, "query.searchDepth": "0"}, "malformed parameter query.searchDepth"),
        ({**WINDOW, "query.num_traces": "x"}, "malformed parameter query.num_traces"),
        ({**WINDOW, "query.attributes": "[1]"}, "malformed parameter query.attributes"),
        ({**WINDOW, "query.rawTraces": "yes"}, "malformed parameter query.rawTraces"),
    ]
    for params, message in cases:
        response = await api.get("/api/v3/traces", params=params)
        if not message:
            assert response.status_code == 404, response.text
            continue
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert error["httpCode"] == 400 and message in error["message"], (params, error)
    nothing = await api.get("/api/v3/traces", params={**WINDOW, "query.serviceName": "nobody"})
    assert nothing.status_code == 404
    assert nothing.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
