"""The OTLP/HTTP intake, per the OTLP spec: protobuf and JSON, gzip, limits, bad input,
partial success — and the query API that reads back what it stored."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from tests.processes import Viewer, running_viewer

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
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON),
        (b'{"resourceSpans": "nope"}', JSON),
        (b"\x1f\x8b\x08\x00 truncated gzip", JSON | {"content-encoding": "gzip"}),
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
    assert httpx.get(f"{viewer.ui}/api/v3/traces/not-a-trace-id").status_code == 422
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
