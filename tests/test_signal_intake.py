"""OTLP intake of logs and metrics (HTTP and gRPC, protobuf and JSON, compression, limits,
bad input, partial success) and the query API that reads them back: ``/api/logs`` and
``/api/metrics/red``."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import zstandard
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ScopeLogs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from ordersim.testing.processes import Viewer, running_viewer

MAX_BODY = 256 * 1024
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    data = tmp_path_factory.mktemp("viewer")
    with running_viewer(data, TRACE_VIEWER_MAX_BODY_BYTES=str(MAX_BODY)) as running:
        yield running


def stats(viewer: Viewer) -> dict[str, int]:
    return httpx.get(f"{viewer.ui}/api/stats").json()  # type: ignore[no-any-return]


def logs_of(viewer: Viewer, trace_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{viewer.ui}/api/logs", params={"trace_id": trace_id})
    assert response.status_code == 200, response.text
    return [
        {**record, "service": _service(rl)}
        for rl in response.json()["result"]["resourceLogs"]
        for sl in rl["scopeLogs"]
        for record in sl["logRecords"]
    ]


def _service(resource_logs: dict[str, Any]) -> str:
    attributes = resource_logs["resource"].get("attributes", [])
    names = (a["value"]["stringValue"] for a in attributes if a["key"] == "service.name")
    return next(names, "")


def log_inside_a_span(exporter: Any, service: str) -> tuple[str, str]:
    """Two records through the logging bridge, one inside a span; (trace id, span id)."""
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log = logging.getLogger(f"tests.signals.{service}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    log.addHandler(handler)
    try:
        tracer = TracerProvider().get_tracer("tests")
        log.info("outside any span")
        with tracer.start_as_current_span("charge") as span:
            log.warning("card %s declined", "4242", extra={"shop.order.id": "ord_1"})
    finally:
        log.removeHandler(handler)
        provider.shutdown()
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@pytest.mark.parametrize("transport", ["http", "http-gzip", "grpc"])
def test_the_sdk_exporters_deliver_logs_found_by_trace(viewer: Viewer, transport: str) -> None:
    exporter = {
        "http": lambda: OTLPLogExporter(endpoint=f"{viewer.otlp}/v1/logs"),
        "http-gzip": lambda: OTLPLogExporter(
            endpoint=f"{viewer.otlp}/v1/logs", compression=Compression.Gzip
        ),
        "grpc": lambda: GrpcLogs(endpoint=viewer.grpc, insecure=True),
    }[transport]()
    trace_id, span_id = log_inside_a_span(exporter, f"logs-{transport}")
    (record,) = logs_of(viewer, trace_id)
    assert (record["traceId"], record["spanId"]) == (trace_id, span_id)
    assert record["body"] == {"stringValue": "card 4242 declined"}
    assert (record["severityNumber"], record["severityText"]) == (13, "WARN")
    assert {"key": "shop.order.id", "value": {"stringValue": "ord_1"}} in record["attributes"]
    assert record["service"] == f"logs-{transport}"


def test_a_trace_without_logs_has_an_empty_list_and_bad_ids_are_4xx(viewer: Viewer) -> None:
    assert logs_of(viewer, "0" * 31 + "1") == []
    for bad in ("xyz", "0" * 33, ""):
        response = httpx.get(f"{viewer.ui}/api/logs", params={"trace_id": bad})
        assert response.status_code == 422
    assert httpx.get(f"{viewer.ui}/api/logs").status_code == 422


def hand_log(trace_id: str, span_id: str, body: str) -> dict[str, Any]:
    return {
        "timeUnixNano": "1700000000000000000",
        "severityNumber": 9,
        "body": {"stringValue": body},
        "traceId": trace_id,
        "spanId": span_id,
    }


def logs_request(*records: Any, service: str = "hand") -> bytes:
    return json.dumps(
        {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeLogs": [{"scope": {"name": "hand"}, "logRecords": list(records)}],
                }
            ]
        }
    ).encode()


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate", "zstd"])
def test_hand_written_json_logs_in_every_encoding(viewer: Viewer, encoding: str) -> None:
    trace_id = zlib.crc32(encoding.encode()).to_bytes(16, "big").hex()
    plain = logs_request(hand_log(trace_id, "00000000000000aa", encoding))
    body = {
        "identity": lambda b: b,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "zstd": zstandard.compress,
    }[encoding](plain)
    response = httpx.post(
        f"{viewer.otlp}/v1/logs", content=body, headers=JSON | {"content-encoding": encoding}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert [r["body"]["stringValue"] for r in logs_of(viewer, trace_id)] == [encoding]


def test_a_bad_log_record_is_refused_alone_with_its_reason(viewer: Viewer) -> None:
    trace_id = "5" * 32
    body = logs_request(
        hand_log(trace_id, "00000000000000a1", "kept"),
        hand_log("not hex", "00000000000000a2", "bad id"),
        {**hand_log(trace_id, "00000000000000a3", "bad time"), "timeUnixNano": "soon"},
        hand_log(trace_id, "00a4", "short span id"),
    )
    before = stats(viewer)
    response = httpx.post(f"{viewer.otlp}/v1/logs", content=body, headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "3"
    assert "not hex" in partial["errorMessage"]
    assert "logRecords[2]" in partial["errorMessage"]
    assert "invalid trace or span id" in partial["errorMessage"]
    assert [r["body"]["stringValue"] for r in logs_of(viewer, trace_id)] == ["kept"]
    after = stats(viewer)
    assert after["log_records_rejected"] - before["log_records_rejected"] == 3


def test_an_undecodable_protobuf_log_record_is_refused_alone(viewer: Viewer) -> None:
    trace_id = bytes.fromhex("6" * 32)
    good = LogRecord(body={"string_value": "kept"}, trace_id=trace_id, span_id=b"\x01" * 8)
    # Append a second record to the scope whose bytes are not a LogRecord (a truncated
    # varint), by rewriting the length prefixes by hand: one bad record, not a bad request.
    bad_record = b"\x08\xff"  # field 1 (time), a varint cut short
    scope = ScopeLogs(log_records=[good]).SerializeToString() + b"\x12" + bytes([len(bad_record)])
    scope += bad_record
    resource = b"\x12" + bytes([len(scope)]) + scope
    body = b"\x0a" + bytes([len(resource)]) + resource
    response = httpx.post(f"{viewer.otlp}/v1/logs", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    reply = ExportLogsServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_log_records == 1
    assert "logRecords" not in reply.partial_success.error_message  # protobuf field names
    assert "log_records[1]" in reply.partial_success.error_message
    assert [r["body"]["stringValue"] for r in logs_of(viewer, "6" * 32)] == ["kept"]


@pytest.mark.parametrize("path", ["/v1/logs", "/v1/metrics"])
@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", JSON),
        (b"[]", JSON),
        (b'{"resourceLogs": 5, "resourceMetrics": 5}', JSON),
        (b"\xff\xff\xff\xff", PROTOBUF),
        (gzip.compress(b"{}")[:-5], JSON | {"content-encoding": "gzip"}),
    ],
)
def test_malformed_requests_are_400_with_a_status(
    viewer: Viewer, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{viewer.otlp}{path}", content=body, headers=headers)
    assert response.status_code == 400, response.text
    if headers["content-type"] == "application/json":
        assert response.json()["message"]
    else:
        assert Status.FromString(response.content).message


@pytest.mark.parametrize("path", ["/v1/logs", "/v1/metrics"])
def test_limits_bombs_and_media_as_for_traces(viewer: Viewer, path: str) -> None:
    url = f"{viewer.otlp}{path}"
    bomb = gzip.compress(b" " * (MAX_BODY * 20))
    response = httpx.post(url, content=bomb, headers=JSON | {"content-encoding": "gzip"})
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["message"]
    assert httpx.post(url, content=b"x" * (MAX_BODY + 1), headers=PROTOBUF).status_code == 413
    assert httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    encoded = JSON | {"content-encoding": "br"}
    assert httpx.post(url, content=b"{}", headers=encoded).status_code == 415


def measure(exporter: Any, service: str, durations: list[tuple[float, int]]) -> list[str]:
    """Server durations (seconds, status) recorded inside spans, exported once; their
    trace ids."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": service})
    )
    histogram = provider.get_meter("tests").create_histogram(
        "http.server.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
    )
    tracer = TracerProvider().get_tracer("tests")
    trace_ids = []
    for seconds, status in durations:
        with tracer.start_as_current_span("POST /orders") as span:
            attributes = {
                "http.request.method": "POST",
                "http.route": "/orders",
                "http.response.status_code": status,
            }
            histogram.record(seconds, attributes)
        trace_ids.append(f"{span.get_span_context().trace_id:032x}")
    provider.shutdown()
    return trace_ids


def red_of(viewer: Viewer, service: str) -> dict[str, Any]:
    response = httpx.get(f"{viewer.ui}/api/metrics/red", params={"service": service})
    assert response.status_code == 200, response.text
    (row,) = response.json()["services"]
    return row  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_red_from_the_sdk_exporters_histograms(viewer: Viewer, transport: str) -> None:
    service = f"red-{transport}"
    exporter = (
        OTLPMetricExporter(endpoint=f"{viewer.otlp}/v1/metrics")
        if transport == "http"
        else GrpcMetrics(endpoint=viewer.grpc, insecure=True)
    )
    durations = [(0.007, 201)] * 8 + [(0.3, 503)] * 2
    trace_ids = measure(exporter, service, durations)
    row = red_of(viewer, service)
    assert (row["service"], row["operation"]) == (service, "POST /orders")
    assert row["requests"] == 10 and row["errors"] == 2 and row["error_rate"] == 0.2
    assert row["rate"] == pytest.approx(10 / 300, rel=1e-3)
    assert 5 < row["p50_ms"] <= 10  # in the (5, 10] ms bucket
    assert 250 < row["p99_ms"] <= 500
    assert row["exemplars"]
    assert {e["trace_id"] for e in row["exemplars"]} <= set(trace_ids)
    assert any(e["value_ms"] == 300 for e in row["exemplars"])
    assert sum(s["rate"] for s in row["series"]) > 0


def test_a_bad_histogram_point_is_refused_alone(viewer: Viewer) -> None:
    def histogram(name: str, buckets: list[str], count: str) -> dict[str, Any]:
        return {
            "name": name,
            "unit": "s",
            "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [
                    {
                        "startTimeUnixNano": "1",
                        "timeUnixNano": str(2 * 10**18),
                        "count": count,
                        "explicitBounds": [0.1, 0.2],
                        "bucketCounts": buckets,
                        "attributes": [
                            {"key": "http.route", "value": {"stringValue": "/x"}},
                            {"key": "http.request.method", "value": {"stringValue": "GET"}},
                        ],
                    }
                ],
            },
        }

    body = json.dumps(
        {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "hm"}}]
                    },
                    "scopeMetrics": [
                        {
                            "metrics": [
                                histogram("http.server.request.duration", ["1", "1", "0"], "2"),
                                histogram("bad.buckets", ["1", "1"], "2"),
                                histogram("bad.count", ["1", "1", "1"], "7"),
                                {"name": "t", "sum": {"dataPoints": [{"timeUnixNano": "later"}]}},
                            ]
                        }
                    ],
                }
            ]
        }
    )
    response = httpx.post(f"{viewer.otlp}/v1/metrics", content=body, headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "3"
    message = partial["errorMessage"]
    assert "one more entry" in message and "not the sum" in message and "metrics[3]" in message
    reply = httpx.post(
        f"{viewer.otlp}/v1/metrics", content=b"", headers=PROTOBUF
    )  # an empty export is fine
    assert (
        ExportMetricsServiceResponse.FromString(reply.content).partial_success.error_message == ""
    )


def test_red_parameters_are_checked(viewer: Viewer) -> None:
    for params in ({"lookback": "abc"}, {"lookback": "10"}, {"step": "0"}):
        response = httpx.get(f"{viewer.ui}/api/metrics/red", params=params)
        assert response.status_code == 422, params
    assert httpx.get(f"{viewer.ui}/api/metrics/red", params={"service": "nobody"}).json() == {
        "services": []
    }


SPAN = {
    "traceId": "7" * 32,
    "spanId": "00000000000000c1",
    "name": "kept",
    "startTimeUnixNano": "1767225600000000000",
    "endTimeUnixNano": "1767225600001000000",
}


@pytest.mark.parametrize("raw", [False, True], ids=["escaped surrogate", "invalid utf-8"])
@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/v1/metrics"])
def test_a_json_key_that_is_not_text_is_an_unknown_field(
    viewer: Viewer, path: str, raw: bool
) -> None:
    """A key holding a lone surrogate names no OTLP field: ignored as unknown fields are,
    where protobuf's runtime failed on looking it up (a 500, found by the intake fuzzing)."""
    item: dict[str, Any] = {
        "/v1/traces": {**SPAN, "BAD": 1},
        "/v1/logs": {**hand_log("7" * 32, "00000000000000c2", "kept"), "BAD": 1},
        "/v1/metrics": {"name": "kept", "BAD": 1, "gauge": {"dataPoints": [{"asInt": "1"}]}},
    }[path]
    envelope = {
        "/v1/traces": ("resourceSpans", "scopeSpans", "spans"),
        "/v1/logs": ("resourceLogs", "scopeLogs", "logRecords"),
        "/v1/metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    }[path]
    resources, scopes, items = envelope
    text = json.dumps({resources: [{scopes: [{items: [item], "BAD": 2}], "BAD": 3}], "BAD": 4})
    body = text.encode().replace(b'"BAD"', b'"\xff\xfe"' if raw else b'"\\udcf2"')
    response = httpx.post(f"{viewer.otlp}{path}", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json() == {}  # nothing refused
    if path == "/v1/logs":
        assert [r["body"]["stringValue"] for r in logs_of(viewer, "7" * 32)][-1] == "kept"
