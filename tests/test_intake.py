"""The OTLP/HTTP intake, per the OTLP spec: protobuf and JSON, gzip, limits, bad input,
partial success — and the query API that reads back what it stored."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from ordersim.testing.processes import Viewer, running_viewer

MAX_BODY = 256 * 1024
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    data = tmp_path_factory.mktemp("viewer")
    with running_viewer(data, TRACE_VIEWER_MAX_BODY_BYTES=str(MAX_BODY)) as running:
        yield running


def make_spans(service: str = "checkout") -> list[Any]:
    """A small real trace from the SDK: a server span with a child that failed."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.intake")
    with (
        tracer.start_as_current_span("GET /cart", attributes={"http.route": "/cart"}),
        tracer.start_as_current_span("load_cart") as child,
    ):
        child.add_event("cache_miss", {"cart.size": 3})
        child.set_status(SpanStatus(StatusCode.ERROR, "db timeout"))
    return list(memory.get_finished_spans())


def stored(viewer: Viewer, trace_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{viewer.ui}/api/v3/traces/{trace_id}")
    assert response.status_code == 200, response.text
    return [
        span
        for rs in response.json()["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]


def json_request(trace_id: str, spans: list[dict[str, Any]], service: str = "hand") -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [{"scope": {"name": "by-hand"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def hand_span(trace_id: str, span_id: str, name: str, parent: str = "") -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 2,  # enums are integers in OTLP/JSON
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": 1700000000250000000,  # numbers are accepted as well as strings
        "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
        "status": {"code": 1},
    }


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdk_exporter_delivers_protobuf(viewer: Viewer, compression: Compression) -> None:
    spans = make_spans()
    exporter = OTLPSpanExporter(endpoint=viewer.traces_endpoint, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS

    trace_id = f"{spans[0].context.trace_id:032x}"
    got = {s["name"]: s for s in stored(viewer, trace_id)}
    assert set(got) == {"GET /cart", "load_cart"}
    child, parent = got["load_cart"], got["GET /cart"]
    assert child["parentSpanId"] == parent["spanId"] == f"{spans[1].context.span_id:016x}"
    assert child["status"] == {"code": 2, "message": "db timeout"}
    assert child["events"][0]["name"] == "cache_miss"
    assert {"key": "http.route", "value": {"stringValue": "/cart"}} in parent["attributes"]


def test_hand_written_json_is_accepted_and_answered_in_json(viewer: Viewer) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = json_request(
        trace_id,
        [
            hand_span(trace_id, "eee19b7ec3c1b174", "GET /json"),
            hand_span(trace_id, "eee19b7ec3c1b175", "child", parent="eee19b7ec3c1b174"),
        ],
    )
    response = httpx.post(viewer.traces_endpoint, content=body, headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}  # full success: no partialSuccess

    spans = {s["name"]: s for s in stored(viewer, trace_id)}
    assert spans["child"]["parentSpanId"] == "eee19b7ec3c1b174"
    assert spans["GET /json"]["endTimeUnixNano"] == "1700000000250000000"
    assert spans["GET /json"]["kind"] == 2


def test_gzip_json_and_protobuf_reply_types(viewer: Viewer) -> None:
    trace_id = "6b8efff798038103d269b633813fc60c"
    body = gzip.compress(json_request(trace_id, [hand_span(trace_id, "aee19b7ec3c1b174", "gz")]))
    response = httpx.post(
        viewer.traces_endpoint, content=body, headers=JSON | {"content-encoding": "gzip"}
    )
    assert response.status_code == 200
    assert [s["name"] for s in stored(viewer, trace_id)] == ["gz"]

    empty = httpx.post(viewer.traces_endpoint, content=b"", headers=PROTOBUF)
    assert empty.status_code == 200
    assert empty.headers["content-type"] == "application/x-protobuf"
    reply = ExportTraceServiceResponse()
    reply.ParseFromString(empty.content)
    assert not reply.HasField("partial_success")
    assert httpx.post(viewer.traces_endpoint, content=b"{}", headers=JSON).json() == {}


def test_partial_success_reports_rejected_spans_and_keeps_the_rest(viewer: Viewer) -> None:
    trace_id = "7b8efff798038103d269b633813fc60c"
    body = json_request(
        trace_id,
        [
            hand_span(trace_id, "bee19b7ec3c1b174", "good"),
            hand_span("abcd", "bee19b7ec3c1b175", "short trace id"),
            hand_span(trace_id, "0000000000000000", "zero span id"),
        ],
    )
    response = httpx.post(viewer.traces_endpoint, content=body, headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64 is a string in proto3 JSON
    assert "invalid trace id" in partial["errorMessage"]
    assert [s["name"] for s in stored(viewer, trace_id)] == ["good"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\x0a\xff\xff\xff\x0fgarbage", PROTOBUF),
        (b"{not json", JSON),
        (b"[1, 2]", JSON),
        (b'{"resourceSpans": "nope"}', JSON),
        (b'{"resourceSpans": [{"scopeSpans": {"spans": []}}]}', JSON),
        (b"[" * 100_000, JSON),
        (b"\x1f\x8b\x08\x00 truncated gzip", JSON | {"content-encoding": "gzip"}),
        (zlib.compress(b"{}")[:-3], JSON | {"content-encoding": "deflate"}),
        (zlib.compress(b"{}", wbits=-15), JSON | {"content-encoding": "deflate"}),  # raw deflate
        (zstandard.compress(b"{}" * 100)[:-4], JSON | {"content-encoding": "zstd"}),
        (b"not zstd", JSON | {"content-encoding": "zstd"}),
    ],
)
def test_malformed_requests_are_400_with_a_status(
    viewer: Viewer, body: bytes, headers: dict[str, str]
) -> None:
    before = httpx.get(f"{viewer.ui}/api/stats").json()["spans_stored"]
    response = httpx.post(viewer.traces_endpoint, content=body, headers=headers)
    assert response.status_code == 400
    if headers["content-type"] == "application/json":
        assert response.json()["message"]
    else:
        status = Status()
        status.ParseFromString(response.content)
        assert status.message
    # Nothing already stored was lost, and the intake still takes good data.
    assert httpx.get(f"{viewer.ui}/api/stats").json()["spans_stored"] == before
    assert OTLPSpanExporter(endpoint=viewer.traces_endpoint).export(make_spans()) == (
        SpanExportResult.SUCCESS
    )


def test_oversized_bodies_are_413_even_when_gzip_hides_the_size(viewer: Viewer) -> None:
    trace_id = "8b8efff798038103d269b633813fc60c"
    big = json_request(trace_id, [hand_span(trace_id, "cee19b7ec3c1b174", "x" * (MAX_BODY + 1))])
    assert httpx.post(viewer.traces_endpoint, content=big, headers=JSON).status_code == 413
    bomb = gzip.compress(b" " * (MAX_BODY * 20))  # small on the wire, huge inflated
    assert len(bomb) < MAX_BODY
    response = httpx.post(
        viewer.traces_endpoint, content=bomb, headers=JSON | {"content-encoding": "gzip"}
    )
    assert response.status_code == 413
    assert httpx.get(f"{viewer.ui}/api/v3/traces/{trace_id}").status_code == 404


def test_unsupported_media_is_415(viewer: Viewer) -> None:
    response = httpx.post(
        viewer.traces_endpoint, content=b"x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    response = httpx.post(
        viewer.traces_endpoint, content=b"x", headers=JSON | {"content-encoding": "br"}
    )
    assert response.status_code == 415


def test_query_api_not_found_and_bad_ids(viewer: Viewer) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    assert httpx.get(f"{viewer.ui}/api/v3/traces/{unknown}").status_code == 404
    assert httpx.get(f"{viewer.ui}/api/traces/{unknown}").status_code == 404
    # Jaeger's API v3 gateway: a malformed trace id is a 400 in its error shape.
    bad = httpx.get(f"{viewer.ui}/api/v3/traces/not-a-trace-id")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("malformed parameter trace_id")
    assert (
        httpx.get(f"{viewer.ui}/api/summaries", params={"minDuration": "soon"}).status_code == 400
    )


def test_search_filters(viewer: Viewer, tmp_path: Path) -> None:
    exporter = OTLPSpanExporter(endpoint=viewer.traces_endpoint)
    spans = make_spans(service="search-svc")
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    trace_id = f"{spans[0].context.trace_id:032x}"

    def ids(**params: str) -> set[str]:
        params.setdefault("limit", "1000")
        rows = httpx.get(f"{viewer.ui}/api/summaries", params=params).json()["data"]
        return {r["traceID"] for r in rows}

    assert trace_id in ids(service="search-svc")
    assert trace_id in ids(service="search-svc", operation="load_cart")
    assert trace_id not in ids(service="search-svc", operation="no_such_op")
    assert trace_id in ids(service="search-svc", error="true")
    assert trace_id not in ids(service="search-svc", minDuration="10s")
    assert "search-svc" in httpx.get(f"{viewer.ui}/api/v3/services").json()["services"]
    operations = httpx.get(
        f"{viewer.ui}/api/v3/operations", params={"service": "search-svc"}
    ).json()["operations"]
    assert {o["name"] for o in operations} == {"GET /cart", "load_cart"}
    jaeger = httpx.get(f"{viewer.ui}/api/traces", params={"service": "search-svc"}).json()
    assert trace_id in {t["traceID"] for t in jaeger["data"]}


# --- what real clients send ------------------------------------------------------------------


def strict_json(response: httpx.Response) -> Any:
    """The body as JSON, refusing NaN/Infinity tokens (no browser's JSON.parse takes them)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(response.text, parse_constant=refuse)


def stats(viewer: Viewer) -> dict[str, int]:
    return dict(httpx.get(f"{viewer.ui}/api/stats").json())


def test_nan_and_infinite_attributes_open_in_every_output(viewer: Viewer) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "nan-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    weird = {"ratio": float("nan"), "ceiling": float("inf"), "floor": float("-inf")}
    with provider.get_tracer("tests.nan").start_as_current_span("measure", attributes=weird) as s:
        s.add_event("sampled", {"value": float("nan")})
        s.set_attribute("huge", 2**60)
    spans = memory.get_finished_spans()
    assert OTLPSpanExporter(endpoint=viewer.traces_endpoint).export(spans) == (
        SpanExportResult.SUCCESS
    )
    trace_id = f"{spans[0].context.trace_id:032x}"

    otlp = httpx.get(f"{viewer.ui}/api/v3/traces/{trace_id}")
    assert otlp.status_code == 200
    (span,) = (
        s
        for rs in strict_json(otlp)["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    )
    doubles = {kv["key"]: kv["value"] for kv in span["attributes"]}
    # As Jaeger v2's query API writes them (the Collector's pdata JSON).
    assert doubles["ratio"] == {"doubleValue": "NaN"}
    assert doubles["ceiling"] == {"doubleValue": "+Inf"}
    assert doubles["floor"] == {"doubleValue": "-Inf"}
    assert span["events"][0]["attributes"][0]["value"] == {"doubleValue": "NaN"}

    jaeger = httpx.get(f"{viewer.ui}/api/traces/{trace_id}")
    assert jaeger.status_code == 200, jaeger.text
    (converted,) = strict_json(jaeger)["data"][0]["spans"]
    tags = {t["key"]: t for t in converted["tags"]}
    # Jaeger's own text for a float64 tag (KeyValue.AsString), as its storage keeps it.
    assert tags["ratio"] == {"key": "ratio", "type": "float64", "value": "NaN"}
    assert tags["ceiling"]["value"] == "+Inf" and tags["floor"]["value"] == "-Inf"
    assert tags["huge"] == {"key": "huge", "type": "int64", "value": str(2**60)}
    assert converted["logs"][0]["fields"][1]["value"] == "NaN"

    search = httpx.get(f"{viewer.ui}/api/traces", params={"service": "nan-svc"})
    assert search.status_code == 200
    assert trace_id in {t["traceID"] for t in strict_json(search)["data"]}
    listing = httpx.get(f"{viewer.ui}/api/summaries", params={"service": "nan-svc"})
    assert trace_id in {t["traceID"] for t in strict_json(listing)["data"]}

    # What the viewer writes, it reads back: the OTLP JSON replays into the intake.
    replay = {"resourceSpans": strict_json(otlp)["result"]["resourceSpans"]}
    assert httpx.post(viewer.traces_endpoint, json=replay).status_code == 200


def protobuf_body(*spans: Any) -> bytes:
    """An export request of SDK spans, encoded as the SDK's exporter encodes it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return bytes(encode_spans(list(spans)).SerializeToString())


def test_invalid_utf8_is_repaired_span_by_span_and_counted(viewer: Viewer) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "utf8-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.utf8")
    with tracer.start_as_current_span("parent"):
        with tracer.start_as_current_span("NAME@@@@"):  # its name becomes invalid UTF-8
            pass
        with tracer.start_as_current_span("good", attributes={"note": "VALUE@@@"}):
            pass
    spans = memory.get_finished_spans()
    body = protobuf_body(*spans)
    # The same lengths, so the message stays well formed: only the UTF-8 is broken.
    body = body.replace(b"NAME@@@@", b"NAME\xff\xfe\xc3(").replace(b"VALUE@@@", b"VALUE\xc0\xaf!")
    before = stats(viewer)

    response = httpx.post(viewer.traces_endpoint, content=body, headers=PROTOBUF)
    assert response.status_code == 200, response.content
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 0
    assert "2 span(s) stored after replacing invalid UTF-8" in reply.partial_success.error_message

    trace_id = f"{spans[0].context.trace_id:032x}"
    got = {s["spanId"]: s for s in stored(viewer, trace_id)}
    assert len(got) == 3, "every span of the batch is kept"
    renamed = got[f"{spans[0].context.span_id:016x}"]
    assert renamed["name"] == "invalid-span-name"  # Jaeger's placeholder
    kept = {kv["key"]: kv["value"] for kv in renamed["attributes"]}
    assert base64.b64decode(kept["invalid-span-name"]["bytesValue"]) == b"NAME\xff\xfe\xc3("
    good = got[f"{spans[1].context.span_id:016x}"]
    assert good["name"] == "good"
    note = {kv["key"]: kv["value"] for kv in good["attributes"]}["note"]
    assert base64.b64decode(note["bytesValue"]) == b"VALUE\xc0\xaf!"
    after = stats(viewer)
    assert after["spans_repaired"] - before["spans_repaired"] == 2
    assert after["spans_stored"] - before["spans_stored"] == 3
    assert after["spans_rejected"] == before["spans_rejected"]
    # The Jaeger JSON of the repaired trace opens too, the original bytes as a binary tag.
    jaeger = httpx.get(f"{viewer.ui}/api/traces/{trace_id}")
    assert jaeger.status_code == 200
    tags = {
        t["key"]: t
        for span in jaeger.json()["data"][0]["spans"]
        if span["operationName"] == "invalid-span-name"
        for t in span["tags"]
    }
    assert tags["invalid-span-name"]["type"] == "binary"
    assert base64.b64decode(tags["invalid-span-name"]["value"]) == b"NAME\xff\xfe\xc3("


def test_invalid_utf8_in_json_is_repaired(viewer: Viewer) -> None:
    trace_id = "9b8efff798038103d269b633813fc60c"
    body = json_request(
        trace_id,
        [
            hand_span(trace_id, "dee19b7ec3c1b174", "NAME@@@@"),
            hand_span(trace_id, "dee19b7ec3c1b175", "lone \ud800 surrogate"),
            hand_span(trace_id, "dee19b7ec3c1b176", "fine"),
        ],
    ).replace(b"NAME@@@@", b"NAME\xff\xfe")
    response = httpx.post(viewer.traces_endpoint, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert (
        "2 span(s) stored after replacing invalid UTF-8"
        in (response.json()["partialSuccess"]["errorMessage"])
    )
    names = {s["spanId"]: s["name"] for s in stored(viewer, trace_id)}
    assert names == {
        "dee19b7ec3c1b174": "invalid-span-name",
        "dee19b7ec3c1b175": "invalid-span-name",
        "dee19b7ec3c1b176": "fine",
    }


def test_a_bad_span_is_refused_alone_with_its_reason(viewer: Viewer) -> None:
    trace_id = "ab8efff798038103d269b633813fc60c"
    late = hand_span(trace_id, "fee19b7ec3c1b175", "bad time")
    late["startTimeUnixNano"] = "soon"
    wrong_kind = hand_span(trace_id, "fee19b7ec3c1b176", "bad kind")
    wrong_kind["kind"] = {"not": "an enum"}
    not_hex = hand_span("zz" * 16, "fee19b7ec3c1b177", "bad id")
    overflow = hand_span(trace_id, "fee19b7ec3c1b178", "far future")
    overflow["endTimeUnixNano"] = str(2**64 - 1)
    body = json_request(
        trace_id,
        [hand_span(trace_id, "fee19b7ec3c1b174", "kept"), late, wrong_kind, not_hex, overflow],
    )
    response = httpx.post(viewer.traces_endpoint, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "4"
    message = partial["errorMessage"]
    for name in ("'bad time'", "'bad kind'", "'bad id'", "'far future'"):
        assert name in message, message
    assert "spans[1]" in message and "is not hex" in message and "out of range" in message
    assert [s["name"] for s in stored(viewer, trace_id)] == ["kept"]


def test_an_undecodable_protobuf_span_is_refused_alone(viewer: Viewer) -> None:
    from trace_viewer.lenient import LenientRequest

    spans = make_spans(service="wire-svc")
    good = ExportTraceServiceRequest.FromString(protobuf_body(*spans))
    shallow = LenientRequest.FromString(good.SerializeToString())
    scope_spans = shallow.resource_spans[0].scope_spans[0]
    scope_spans.spans.append(b"\x0a\xff\xff\xff\xff")  # a length that runs off the end
    response = httpx.post(
        viewer.traces_endpoint, content=shallow.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 1
    assert "spans[2]: not a decodable span" in reply.partial_success.error_message
    trace_id = f"{spans[0].context.trace_id:032x}"
    assert {s["name"] for s in stored(viewer, trace_id)} == {"GET /cart", "load_cart"}


@pytest.mark.parametrize("encoding", ["deflate", "zlib", "zstd", "gzip"])
def test_content_encodings_the_collector_accepts(viewer: Viewer, encoding: str) -> None:
    trace_id = hashlib.md5(encoding.encode()).hexdigest()
    plain = json_request(trace_id, [hand_span(trace_id, "aee19b7ec3c1b174", encoding)])
    body = {
        "deflate": zlib.compress,
        "zlib": zlib.compress,
        "zstd": zstandard.compress,
        "gzip": lambda b: gzip.compress(b) + gzip.compress(b"   "),  # two gzip members
    }[encoding](plain)
    response = httpx.post(
        viewer.traces_endpoint, content=body, headers=JSON | {"content-encoding": encoding}
    )
    assert response.status_code == 200, response.text
    assert [s["name"] for s in stored(viewer, trace_id)] == [encoding]


def test_the_sdk_exporter_delivers_deflate(viewer: Viewer) -> None:
    spans = make_spans(service="deflate-svc")
    exporter = OTLPSpanExporter(endpoint=viewer.traces_endpoint, compression=Compression.Deflate)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert len(stored(viewer, f"{spans[0].context.trace_id:032x}")) == 2


@pytest.mark.parametrize("encoding", ["deflate", "zstd"])
def test_decompression_bombs_are_413_naming_the_limit(viewer: Viewer, encoding: str) -> None:
    inflated = b" " * (MAX_BODY * 20)
    bomb = zlib.compress(inflated, 9) if encoding == "deflate" else zstandard.compress(inflated)
    assert len(bomb) < MAX_BODY
    response = httpx.post(
        viewer.traces_endpoint, content=bomb, headers=JSON | {"content-encoding": encoding}
    )
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["message"]


def test_schema_urls_are_kept(viewer: Viewer) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "schema-svc"}, schema_url="https://opentelemetry.io/schemas/1.26.0"
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    old = provider.get_tracer("lib", schema_url="https://opentelemetry.io/schemas/1.11.0")
    new = provider.get_tracer("lib", schema_url="https://opentelemetry.io/schemas/1.21.0")
    with old.start_as_current_span("old"), new.start_as_current_span("new"):
        pass
    spans = memory.get_finished_spans()
    assert OTLPSpanExporter(endpoint=viewer.traces_endpoint).export(spans) == (
        SpanExportResult.SUCCESS
    )
    trace_id = f"{spans[0].context.trace_id:032x}"
    document = httpx.get(f"{viewer.ui}/api/v3/traces/{trace_id}").json()
    (rs,) = document["result"]["resourceSpans"]
    assert rs["schemaUrl"] == "https://opentelemetry.io/schemas/1.26.0"
    by_scope = {ss["schemaUrl"]: [s["name"] for s in ss["spans"]] for ss in rs["scopeSpans"]}
    assert by_scope == {
        "https://opentelemetry.io/schemas/1.11.0": ["old"],
        "https://opentelemetry.io/schemas/1.21.0": ["new"],
    }


def test_injected_faults_are_counted_apart_from_errors(viewer: Viewer) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fault-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.faults")
    with tracer.start_as_current_span("POST /charges") as server:
        server.set_attribute("ordersim.fault.injected", True)  # a latency fault: no error
        with tracer.start_as_current_span("charge") as child:
            child.set_status(SpanStatus(StatusCode.ERROR, "declined"))
    spans = memory.get_finished_spans()
    assert OTLPSpanExporter(endpoint=viewer.traces_endpoint).export(spans) == (
        SpanExportResult.SUCCESS
    )
    trace_id = f"{spans[0].context.trace_id:032x}"
    rows = httpx.get(f"{viewer.ui}/api/summaries", params={"service": "fault-svc"}).json()
    row = next(r for r in rows["data"] if r["traceID"] == trace_id)
    assert row["faultCount"] == 1 and row["errorCount"] == 1
