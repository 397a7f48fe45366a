"""``GET /api/traces/{id}`` against Jaeger v2, one test per rule: a small OTLP trace in
through the intake's decoder and the store, the exact Jaeger JSON fragment out.

Each test names the Jaeger code it follows. The three places (see trace_viewer/jaeger.py):
the ingest sanitizers (``internal/jptrace/sanitizer``), the query adjusters
(``cmd/jaeger/internal/extension/jaegerquery/internal/adjuster``), the translator
(opentelemetry-collector-contrib ``pkg/translator/jaeger/traces_to_jaegerproto.go``) and
the JSON writer (``internal/uimodel/converter/v1/json/from_domain.go``); the handler is
``jaegerquery/internal/http_handler.go``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trace_viewer.otlp import JSON, parse_request, records
from trace_viewer.query import create_query_app
from trace_viewer.store import Limits, TraceStore

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT = "a000000000000001"
CHILD = "a000000000000002"
T0 = 1_700_000_000_000_000_000  # ns, a whole second


class Viewer:
    """The query API over a real store, fed through the intake's own decoding."""

    def __init__(self, client: httpx.AsyncClient, store: TraceStore) -> None:
        self.client = client
        self.store = store

    def post(self, *resource_spans: dict[str, Any]) -> None:
        body = json.dumps({"resourceSpans": list(resource_spans)}).encode()
        kept, rejected = records(parse_request(body, JSON).request)
        assert not rejected, rejected
        self.store.write(kept)

    async def jaeger(self, trace_id: str = TRACE) -> dict[str, Any]:
        response = await self.client.get(f"/api/traces/{trace_id}")
        assert response.status_code == 200, response.text
        (trace,) = response.json()["data"]
        return dict(trace)

    async def span(self, span_id: str = ROOT) -> dict[str, Any]:
        (span,) = [s for s in (await self.jaeger())["spans"] if s["spanID"] == span_id]
        return dict(span)


@pytest.fixture
async def viewer(tmp_path: Path) -> AsyncIterator[Viewer]:
    store = TraceStore(tmp_path / "traces.db", Limits(100, 10**9))
    transport = httpx.ASGITransport(app=create_query_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        yield Viewer(client, store)
    store.close()


def span(span_id: str = ROOT, **fields: Any) -> dict[str, Any]:
    """An OTLP JSON span of TRACE, 2 ms long, SERVER, no attributes unless given."""
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 2_000_000),
        **fields,
    }


def resource(
    *spans: dict[str, Any],
    service: Any = "cart",
    attributes: list[dict[str, Any]] | None = None,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    attrs = list(attributes or [])
    if service is not None:
        value = {"stringValue": service} if isinstance(service, str) else service
        attrs.insert(0, {"key": "service.name", "value": value})
    return {
        "resource": {"attributes": attrs},
        "scopeSpans": [{"scope": scope or {"name": "shop"}, "spans": list(spans)}],
    }


def attr(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def tag(key: str, kind: str, value: Any) -> dict[str, Any]:
    return {"key": key, "type": kind, "value": value}


def values(*items: dict[str, Any]) -> dict[str, Any]:
    return {"arrayValue": {"values": list(items)}}


# --- attribute values ---------------------------------------------------------------------------


async def test_arrays_and_maps_are_plain_json_text(viewer: Viewer) -> None:
    # pdata Value.AsString for Slice/Map: Go's encoding/json of AsRaw without HTML escaping
    # (collector PR #15108): compact, map keys sorted, floats as Go writes them (ES6: 1, not
    # 1.0; 1e+21; 1e-7), bytes base64, an empty value null, U+2028 escaped.
    kvlist = {"kvlistValue": {"values": [attr("z", {"intValue": "1"}), attr("a", values())]}}
    viewer.post(
        resource(
            span(
                attributes=[
                    attr("tags", values({"stringValue": "a"}, {"stringValue": "<b>&"})),
                    attr(
                        "numbers",
                        values(
                            {"doubleValue": 1.0},
                            {"doubleValue": 1e21},
                            {"doubleValue": 1e-7},
                            {"doubleValue": 0.000015},
                            {"intValue": "9007199254740993"},
                            {"boolValue": True},
                            {},
                        ),
                    ),
                    attr("nested", {"kvlistValue": {"values": [attr("m", kvlist)]}}),
                    attr("raw", values({"bytesValue": "AAE="}, {"stringValue": "x\u2028y"})),
                ]
            )
        )
    )
    tags = {t["key"]: t for t in (await viewer.span())["tags"]}
    assert tags["tags"] == tag("tags", "string", '["a","<b>&"]')
    assert tags["numbers"] == tag(
        "numbers", "string", "[1,1e+21,1e-7,0.000015,9007199254740993,true,null]"
    )
    assert tags["nested"] == tag("nested", "string", '{"m":{"a":[],"z":1}}')
    assert tags["raw"] == tag("raw", "string", '["AAE=","x\\u2028y"]')


async def test_nan_and_infinity_keep_jaegers_float_text(viewer: Viewer) -> None:
    # Jaeger's KeyValue.AsString for a float64 (its own query service answers a 500 for
    # these, jaeger-ui#3047). Inside an array Go's encoder fails and Jaeger writes ""; we
    # write the same text as strings, so the value survives (README, trace_viewer/jaeger.py).
    viewer.post(
        resource(
            span(
                attributes=[
                    attr("ratio", {"doubleValue": "NaN"}),
                    attr("ceiling", {"doubleValue": "Infinity"}),
                    attr("floors", values({"doubleValue": "-Infinity"}, {"doubleValue": 2.5})),
                ]
            )
        )
    )
    tags = {t["key"]: t for t in (await viewer.span())["tags"]}
    assert tags["ratio"] == tag("ratio", "float64", "NaN")
    assert tags["ceiling"] == tag("ceiling", "float64", "+Inf")
    assert tags["floors"] == tag("floors", "string", '["-Inf",2.5]')


async def test_bytes_are_a_binary_tag_in_base64(viewer: Viewer) -> None:
    # contrib attributeToJaegerProtoTag: ValueTypeBytes -> BINARY; from_domain writes
    # kv.Binary(), which encoding/json writes as standard base64.
    viewer.post(resource(span(attributes=[attr("blob", {"bytesValue": "AAAwOQ=="})])))
    assert tag("blob", "binary", "AAAwOQ==") in (await viewer.span())["tags"]


async def test_integers_beyond_2_53_are_strings(viewer: Viewer) -> None:
    # from_domain convertKeyValues: an int64 beyond jsMaxSafeInteger/jsMinSafeInteger
    # (±(2^53 - 1)) is written with %d.
    limit = 2**53 - 1
    viewer.post(
        resource(
            span(
                attributes=[
                    attr("a_max", {"intValue": str(limit)}),
                    attr("b_over", {"intValue": str(limit + 1)}),
                    attr("c_min", {"intValue": str(-limit)}),
                    attr("d_under", {"intValue": str(-limit - 1)}),
                ]
            )
        )
    )
    tags = (await viewer.span())["tags"]
    assert tags[1:5] == [
        tag("a_max", "int64", limit),
        tag("b_over", "int64", str(limit + 1)),
        tag("c_min", "int64", -limit),
        tag("d_under", "int64", str(-limit - 1)),
    ]


async def test_an_empty_value_is_an_empty_string_tag(viewer: Viewer) -> None:
    # contrib attributeToJaegerProtoTag has no case for ValueTypeEmpty: the tag keeps its
    # zero VType, STRING, and an empty VStr.
    viewer.post(resource(span(attributes=[attr("nothing", {})])))
    assert tag("nothing", "string", "") in (await viewer.span())["tags"]


async def test_attributes_are_sorted_by_key(viewer: Viewer) -> None:
    # The SortCollections adjuster (sort.go) sorts resource, span and event attributes by
    # key, and events by time, before the translator runs.
    viewer.post(
        resource(
            span(
                attributes=[attr("zeta", {"intValue": "1"}), attr("alpha", {"intValue": "2"})],
                events=[
                    {"timeUnixNano": str(T0 + 2000), "name": "late"},
                    {
                        "timeUnixNano": str(T0 + 1000),
                        "name": "early",
                        "attributes": [attr("y", {"intValue": "1"}), attr("b", {"intValue": "2"})],
                    },
                ],
            ),
            attributes=[attr("z.host", {"stringValue": "h"}), attr("a.pid", {"intValue": "7"})],
        )
    )
    trace = await viewer.jaeger()
    (converted,) = trace["spans"]
    assert [t["key"] for t in converted["tags"]][1:3] == ["alpha", "zeta"]
    assert [log["fields"] for log in converted["logs"]] == [
        [tag("event", "string", "early"), tag("b", "int64", 2), tag("y", "int64", 1)],
        [tag("event", "string", "late")],
    ]
    assert [t["key"] for t in trace["processes"]["p1"]["tags"]] == ["a.pid", "z.host"]


# --- tags made from span fields ---------------------------------------------------------------


async def test_scope_name_and_version_lead_the_tags(viewer: Viewer) -> None:
    # contrib getTagsFromInstrumentationLibrary: otel.scope.name, otel.scope.version (when
    # not empty), then the attributes.
    viewer.post(
        resource(
            span(attributes=[attr("a", {"intValue": "1"})]),
            scope={"name": "opentelemetry.instrumentation.fastapi", "version": "0.59b0"},
        )
    )
    assert (await viewer.span())["tags"][:3] == [
        tag("otel.scope.name", "string", "opentelemetry.instrumentation.fastapi"),
        tag("otel.scope.version", "string", "0.59b0"),
        tag("a", "int64", 1),
    ]


async def test_status_and_tracestate_follow_the_attributes(viewer: Viewer) -> None:
    # contrib getJaegerProtoSpanTags: span.kind, otel.status_code, error, the status
    # message, then w3c.tracestate (getTagsFromTraceState), in that order.
    viewer.post(
        resource(
            span(
                attributes=[attr("a", {"intValue": "1"})],
                status={"code": 2, "message": "card declined"},
                traceState="vendor=abc,other=1",
            ),
            scope={"name": "shop"},
        )
    )
    assert (await viewer.span())["tags"] == [
        tag("otel.scope.name", "string", "shop"),
        tag("a", "int64", 1),
        tag("span.kind", "string", "server"),
        tag("otel.status_code", "string", "ERROR"),
        tag("error", "bool", True),
        tag("otel.status_description", "string", "card declined"),
        tag("w3c.tracestate", "string", "vendor=abc,other=1"),
    ]


async def test_an_unspecified_span_kind_has_no_tag(viewer: Viewer) -> None:
    # contrib getTagFromSpanKind: the default case (UNSPECIFIED) returns no tag.
    viewer.post(resource(span(ROOT, kind=0), span(CHILD, kind=1, parentSpanId=ROOT)))
    spans = {s["spanID"]: s for s in (await viewer.jaeger())["spans"]}
    assert [t["key"] for t in spans[ROOT]["tags"]] == ["otel.scope.name"]
    assert tag("span.kind", "string", "internal") in spans[CHILD]["tags"]


# --- times --------------------------------------------------------------------------------------


async def test_duration_is_whole_microseconds_of_the_span(viewer: Viewer) -> None:
    # contrib: Duration = end.Sub(start); from_domain: DurationAsMicroseconds(max(0, d)),
    # StartTime TimeAsEpochMicroseconds: both truncate. 1.001 µs from x.999 µs is 1 µs (not
    # 1.002 - 0.999 rounded apart = 2); an end before the start is 0.
    start = T0 + 999
    viewer.post(
        resource(
            span(ROOT, startTimeUnixNano=str(start), endTimeUnixNano=str(start + 1001)),
            span(CHILD, startTimeUnixNano=str(T0 + 5000), endTimeUnixNano=str(T0 + 4000)),
        )
    )
    spans = {s["spanID"]: s for s in (await viewer.jaeger())["spans"]}
    assert (spans[ROOT]["startTime"], spans[ROOT]["duration"]) == (start // 1000, 1)
    assert (spans[CHILD]["startTime"], spans[CHILD]["duration"]) == ((T0 + 5000) // 1000, 0)


async def test_an_event_named_by_an_attribute_gets_no_second_event_field(viewer: Viewer) -> None:
    # contrib spanEventsToJaegerProtoLogs: the name becomes an `event` field only when it is
    # not empty and no attribute is already called `event`.
    viewer.post(
        resource(
            span(
                events=[
                    {
                        "timeUnixNano": str(T0 + 1000),
                        "name": "exception",
                        "attributes": [attr("event", {"stringValue": "error"})],
                    },
                    {"timeUnixNano": str(T0 + 2000), "attributes": [attr("n", {"intValue": "1"})]},
                    {"timeUnixNano": str(T0 + 3000), "name": "retry"},
                ]
            )
        )
    )
    assert (await viewer.span())["logs"] == [
        {"timestamp": (T0 + 1000) // 1000, "fields": [tag("event", "string", "error")]},
        {"timestamp": (T0 + 2000) // 1000, "fields": [tag("n", "int64", 1)]},
        {"timestamp": (T0 + 3000) // 1000, "fields": [tag("event", "string", "retry")]},
    ]


# --- references and flags -------------------------------------------------------------------------


async def test_links_are_follows_from_unless_their_ref_type_says_child_of(viewer: Viewer) -> None:
    # contrib refTypeFromLink: a link's `opentracing.ref_type` attribute `child_of` makes a
    # CHILD_OF reference; any other link is FOLLOWS_FROM. The parent comes first.
    other = "0af7651916cd43dd8448eb211c80319c"
    viewer.post(
        resource(
            span(
                CHILD,
                parentSpanId=ROOT,
                links=[
                    {"traceId": other, "spanId": "b7ad6b7169203331"},
                    {
                        "traceId": other,
                        "spanId": "b7ad6b7169203332",
                        "attributes": [attr("opentracing.ref_type", {"stringValue": "child_of"})],
                    },
                ],
            )
        )
    )
    assert (await viewer.span(CHILD))["references"] == [
        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": ROOT},
        {"refType": "FOLLOWS_FROM", "traceID": other, "spanID": "b7ad6b7169203331"},
        {"refType": "CHILD_OF", "traceID": other, "spanID": "b7ad6b7169203332"},
    ]


async def test_a_link_to_the_parent_merges_into_the_parent_reference(viewer: Viewer) -> None:
    # contrib makeJaegerProtoReferences: a link to the parent span of the same trace only
    # overrides the parent reference's type ("We already added a reference to this span").
    viewer.post(
        resource(
            span(
                CHILD,
                parentSpanId=ROOT,
                links=[
                    {
                        "traceId": TRACE,
                        "spanId": ROOT,
                        "attributes": [
                            attr("opentracing.ref_type", {"stringValue": "follows_from"})
                        ],
                    }
                ],
            )
        )
    )
    assert (await viewer.span(CHILD))["references"] == [
        {"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": ROOT}
    ]


async def test_an_all_zero_parent_is_no_reference(viewer: Viewer) -> None:
    # contrib spanToJaegerProto: the parent id as a uint64 is 0, and
    # makeJaegerProtoReferences adds a parent only `if parentSpanID != 0`: a root.
    viewer.post(resource(span(parentSpanId="0" * 16)))
    assert (await viewer.span())["references"] == []


async def test_a_link_to_an_all_zero_trace_is_dropped_with_a_warning(viewer: Viewer) -> None:
    # The RemoveEmptySpanLinks adjuster (spanlinks.go) removes links whose trace id is
    # empty and adds "Invalid span link removed" to the span's warnings.
    viewer.post(resource(span(links=[{"traceId": "0" * 32, "spanId": CHILD}])))
    converted = await viewer.span()
    assert converted["references"] == []
    assert converted["warnings"] == ["Invalid span link removed"]


async def test_flags_are_the_sampled_bit(viewer: Viewer) -> None:
    # contrib PR #49568 maps bit 0 of OTLP Span.flags (W3C sampled) to Jaeger's SampledFlag
    # (1) and nothing else (the is-remote bits 8, 9 have no Jaeger flag); uimodel writes
    # `flags,omitempty`, so an unsampled span has no key.
    viewer.post(resource(span(ROOT, flags=0x301), span(CHILD, flags=0x300)))
    spans = {s["spanID"]: s for s in (await viewer.jaeger())["spans"]}
    assert spans[ROOT]["flags"] == 1
    assert "flags" not in spans[CHILD]


# --- ids, envelope, errors --------------------------------------------------------------------


async def test_a_64_bit_trace_id_finds_its_trace(viewer: Viewer) -> None:
    # http_handler parseTraceID: model.TraceIDFromString takes 1 to 32 hex digits and
    # left-pads a shorter (64-bit) id; the writer gives all 32 digits (from_domain's
    # fixtures/ui_01.json: "00000000000000000000000000000001"). API v3 reads ids the same.
    short = "00f067aa0ba902b7"
    trace = "0" * 16 + short
    viewer.post(resource(span(traceId=trace), span(CHILD, traceId=trace, parentSpanId=ROOT)))
    for asked in (short, short.upper(), "f067aa0ba902b7", trace):
        found = await viewer.jaeger(asked)
        assert found["traceID"] == trace
        assert {s["traceID"] for s in found["spans"]} == {trace}
    v3 = await viewer.client.get(f"/api/v3/traces/{short}")
    assert v3.status_code == 200, v3.text
    assert {
        s["traceId"]
        for rs in v3.json()["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    } == {trace}


async def test_the_envelope_is_jaegers_structured_response(viewer: Viewer) -> None:
    # http_handler structuredResponse: data, total, limit, offset, errors (null, not []).
    viewer.post(resource(span()))
    body = (await viewer.client.get(f"/api/traces/{TRACE}")).json()
    assert {k: v for k, v in body.items() if k != "data"} == {
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
    (trace,) = body["data"]
    assert (trace["traceID"], trace["warnings"]) == (TRACE, None)


@pytest.mark.parametrize(
    ("trace_id", "status", "message"),
    [
        # spanstore.ErrTraceNotFound
        ("ab" * 16, 404, "trace not found"),
        # model.TraceIDFromString's errors, from Go's strconv.ParseUint
        ("ab" * 17, 400, f"TraceID cannot be longer than 32 hex characters: {'ab' * 17}"),
        ("xyz", 400, 'strconv.ParseUint: parsing "xyz": invalid syntax'),
        ("g" + "0" * 31, 400, 'strconv.ParseUint: parsing "g000000000000000": invalid syntax'),
    ],
)
async def test_errors_are_jaegers_shape(
    viewer: Viewer, trace_id: str, status: int, message: str
) -> None:
    # http_handler handleError: the envelope with data null and one {code, msg}.
    response = await viewer.client.get(f"/api/traces/{trace_id}")
    assert response.status_code == status
    assert response.json() == {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": status, "msg": message}],
    }
    # API v3 (http_gateway tryParamError / returnTraces): its own error shape.
    v3 = await viewer.client.get(f"/api/v3/traces/{trace_id}")
    assert v3.status_code == status
    expected = "No traces found" if status == 404 else f"malformed parameter trace_id: {message}"
    assert v3.json() == {"error": {"httpCode": status, "message": expected}}


# --- names and processes --------------------------------------------------------------------------


async def test_placeholders_for_service_and_span_names(viewer: Viewer) -> None:
    # The ingest sanitizers: emptyservicename.go (missing, empty, not a string) and
    # emptyspanname.go. The placeholder service.name is the process's name, not a tag.
    ids = [f"b00000000000000{n}" for n in range(4)]
    viewer.post(
        resource(span(ids[0]), service=None, attributes=[attr("host.name", {"stringValue": "h"})]),
        resource(span(ids[1]), service=""),
        resource(span(ids[2]), service={"intValue": "7"}),
        resource(span(ids[3], name="")),
    )
    trace = await viewer.jaeger()
    names = {
        s["spanID"]: (trace["processes"][s["processID"]]["serviceName"], s["operationName"])
        for s in trace["spans"]
    }
    assert names == {
        ids[0]: ("missing-service-name", "GET /cart"),
        ids[1]: ("empty-service-name", "GET /cart"),
        ids[2]: ("service-name-wrong-type", "GET /cart"),
        ids[3]: ("cart", "empty-span-name"),
    }
    assert [p["tags"] for p in trace["processes"].values()] == [
        [tag("host.name", "string", "h")],
        [],
        [],
        [],
    ]
    # The store names them alike, so a search by service finds what the JSON shows.
    services = (await viewer.client.get("/api/v3/services")).json()["services"]
    assert {"missing-service-name", "empty-service-name", "service-name-wrong-type"} <= set(
        services
    )


async def test_identical_processes_share_one_id(viewer: Viewer) -> None:
    # from_domain processHashtable: one key per distinct process (service name and tags),
    # numbered p1, p2... in span order.
    # Two resources the store keeps apart (another schema URL), one process for Jaeger.
    pod = [attr("k8s.pod.name", {"stringValue": "cart-1"})]
    later = resource(
        span(CHILD, parentSpanId=ROOT, startTimeUnixNano=str(T0 + 1000)), attributes=pod
    )
    later["schemaUrl"] = "https://opentelemetry.io/schemas/1.26.0"
    viewer.post(resource(span(ROOT), attributes=pod), later)
    trace = await viewer.jaeger()
    assert [s["processID"] for s in trace["spans"]] == ["p1", "p1"]
    assert trace["processes"] == {
        "p1": {"serviceName": "cart", "tags": [tag("k8s.pod.name", "string", "cart-1")]}
    }


# --- /api/v3/operations ---------------------------------------------------------------------------


async def test_operations_have_jaegers_span_kinds(viewer: Viewer) -> None:
    # Jaeger v2's HTTP gateway (apiv3/http_gateway.go getOperations): `spanKind` (or the
    # deprecated `span_kind`) filters, each operation carries its kind in lower case, and
    # one of unspecified kind is listed as internal (jaeger PR #7997), so the internal
    # filter lists it too.
    kinds = {"GET /cart": 2, "legacy": 0, "load_cart": 1, "publish": 4, "consume": 5}
    viewer.post(
        resource(
            *[
                span(f"c00000000000000{i}", name=n, kind=k)
                for i, (n, k) in enumerate(kinds.items())
            ],
            span("c000000000000009", name="GET /cart", kind=3),
        )
    )

    async def operations(**params: str) -> Any:
        response = await viewer.client.get("/api/v3/operations", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert await operations(service="cart") == {
        "operations": [
            {"name": "GET /cart", "spanKind": "server"},
            {"name": "GET /cart", "spanKind": "client"},
            {"name": "consume", "spanKind": "consumer"},
            {"name": "legacy", "spanKind": "internal"},
            {"name": "load_cart", "spanKind": "internal"},
            {"name": "publish", "spanKind": "producer"},
        ]
    }
    server = {"operations": [{"name": "GET /cart", "spanKind": "server"}]}
    assert await operations(service="cart", spanKind="server") == server
    assert await operations(service="cart", span_kind="server") == server
    internal = await operations(service="cart", spanKind="internal")
    assert [o["name"] for o in internal["operations"]] == ["legacy", "load_cart"]
    assert await operations(service="cart", spanKind="") == await operations(service="cart")
    assert await operations(service="nobody") == {"operations": []}
    assert await operations() == {"operations": []}
    bad = await viewer.client.get("/api/v3/operations", params={"service": "cart", "spanKind": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("malformed parameter spanKind")
