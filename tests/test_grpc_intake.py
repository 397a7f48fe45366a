"""OTLP/gRPC intake on the viewer: the SDK's own gRPC exporter end to end, and the same rules
as OTLP/HTTP (lenient decode, partial success, size limit, compression) over a raw channel."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersim.testing.processes import (
    Viewer,
    clean_env,
    free_port,
    poll,
    running_viewer,
    start,
    stop,
    wait_answering,
)
from tests import ROOT
from tests.test_intake import stored

MAX_BODY = 256 * 1024
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    data = tmp_path_factory.mktemp("viewer")
    with running_viewer(data, TRACE_VIEWER_MAX_BODY_BYTES=str(MAX_BODY)) as running:
        yield running


def sdk_spans(
    service: str, names: tuple[str, ...] = ("GET /cart", "load_cart")
) -> list[ReadableSpan]:
    """A parent with nested children, from the SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.grpc")
    with tracer.start_as_current_span(names[0]):
        for name in names[1:]:
            with tracer.start_as_current_span(name):
                pass
    return list(memory.get_finished_spans())


def raw_export(
    viewer: Viewer, body: bytes, compression: grpc.Compression | None = None
) -> ExportTraceServiceResponse:
    """One Export call with these request bytes, as a client that encodes its own would."""
    with grpc.insecure_channel(viewer.grpc.removeprefix("http://")) as channel:
        call = channel.unary_unary(EXPORT)  # bytes in, bytes out
        reply = call(body, timeout=10, compression=compression)
    return ExportTraceServiceResponse.FromString(reply)


@pytest.mark.parametrize(
    "compression", [None, grpc.Compression.Gzip, grpc.Compression.Deflate], ids=str
)
def test_the_sdk_grpc_exporter_delivers(viewer: Viewer, compression: Any) -> None:
    spans = sdk_spans("grpc-svc")
    exporter = OTLPSpanExporter(endpoint=viewer.grpc, insecure=True, compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    got = {s["name"]: s for s in stored(viewer, f"{spans[0].context.trace_id:032x}")}
    assert set(got) == {"GET /cart", "load_cart"}
    assert got["load_cart"]["parentSpanId"] == got["GET /cart"]["spanId"]
    services = httpx.get(f"{viewer.ui}/api/v3/services").json()["services"]
    assert "grpc-svc" in services


def test_grpc_and_http_exports_at_once_are_all_stored(viewer: Viewer) -> None:
    """Both intakes on one event loop: concurrent calls on each, nothing lost."""
    batches = [sdk_spans(f"busy-{n}", ("root", "a", "b", "c")) for n in range(12)]
    results: list[SpanExportResult] = []

    def send(n: int) -> None:
        exporter: Any = (
            OTLPSpanExporter(endpoint=viewer.grpc, insecure=True)
            if n % 2
            else HTTPSpanExporter(endpoint=viewer.traces_endpoint)
        )
        results.append(exporter.export(batches[n]))
        exporter.shutdown()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [SpanExportResult.SUCCESS] * len(batches)
    for spans in batches:
        assert len(stored(viewer, f"{spans[0].context.trace_id:032x}")) == 4


def test_invalid_utf8_over_grpc_is_repaired(viewer: Viewer) -> None:
    spans = sdk_spans("grpc-utf8", ("NAME@@@@", "fine"))
    body = encode_spans(spans).SerializeToString().replace(b"NAME@@@@", b"NAME\xff\xfe\xc3(")
    reply = raw_export(viewer, body)
    assert reply.partial_success.rejected_spans == 0
    assert "1 span(s) stored after replacing invalid UTF-8" in reply.partial_success.error_message
    names = {s["name"] for s in stored(viewer, f"{spans[0].context.trace_id:032x}")}
    assert names == {"invalid-span-name", "fine"}


def test_an_undecodable_span_is_refused_alone_over_grpc(viewer: Viewer) -> None:
    from trace_viewer.lenient import LenientRequest

    spans = sdk_spans("grpc-partial")
    shallow = LenientRequest.FromString(encode_spans(spans).SerializeToString())
    shallow.resource_spans[0].scope_spans[0].spans.append(b"\x0a\xff\xff\xff\xff")
    reply = raw_export(viewer, shallow.SerializeToString(), grpc.Compression.Gzip)
    assert reply.partial_success.rejected_spans == 1
    assert "not a decodable span" in reply.partial_success.error_message
    assert len(stored(viewer, f"{spans[0].context.trace_id:032x}")) == 2


def test_garbage_is_invalid_argument(viewer: Viewer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        raw_export(viewer, b"\x0a\xff\xff\xff\x0fgarbage")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an OTLP protobuf message" in caught.value.details()


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip], ids=str)
def test_oversized_messages_are_resource_exhausted(viewer: Viewer, compression: Any) -> None:
    spans = sdk_spans("grpc-big", ("x" * (MAX_BODY + 1),))
    body = encode_spans(spans).SerializeToString()
    if compression is not None:  # small on the wire, over the limit inflated
        assert len(zlib.compress(body)) < MAX_BODY
    with pytest.raises(grpc.RpcError) as caught:
        raw_export(viewer, body, compression)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_BODY) in caught.value.details()
    assert httpx.get(f"{viewer.ui}/api/v3/traces/{spans[0].context.trace_id:032x}").status_code == (
        404
    )


def test_a_busy_grpc_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env() | {
            "ORDERSIM_DATA_DIR": str(tmp_path),
            "TRACE_VIEWER_OTLP_PORT": str(free_port()),
            "TRACE_VIEWER_UI_PORT": str(free_port()),
            "TRACE_VIEWER_GRPC_PORT": str(port),
        }
        run = subprocess.run(
            [sys.executable, "-m", "trace_viewer"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert run.returncode != 0
    assert "cannot listen on 127.0.0.1" in run.stderr and "in use" in run.stderr


@pytest.mark.parametrize(
    "protocol_env",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        # The traces-specific variable wins over the general one.
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        },
    ],
    ids=["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
)
def test_a_service_exports_over_grpc_when_told_to(
    viewer: Viewer, tmp_path: Path, protocol_env: dict[str, str]
) -> None:
    """A real service process, told only the viewer's gRPC port: its spans arrive."""
    port = free_port()
    instance = f"grpc-{tmp_path.name}"
    env = (
        clean_env()
        | protocol_env
        | {
            "INVENTORY_SERVICE_PORT": str(port),
            "ORDERSIM_DATA_DIR": str(tmp_path),
            "OTEL_EXPORTER_OTLP_ENDPOINT": viewer.grpc,
            "OTEL_SERVICE_NAME": instance,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    log = tmp_path / "inventory.log"
    process = start([sys.executable, "-m", "inventory_service"], env, log)
    try:
        wait_answering(process, f"http://127.0.0.1:{port}/healthz", log, "inventory-service")
        assert httpx.get(f"http://127.0.0.1:{port}/products", timeout=10).status_code == 200

        def arrived() -> list[Any]:
            rows = httpx.get(f"{viewer.ui}/api/summaries", params={"service": instance}).json()
            # The request's trace, once its SERVER span (the last to end) is in.
            return [r for r in rows["data"] if r["rootName"] == "GET /products"]

        (row,) = poll(arrived, 15, f"the GET /products trace of {instance} over OTLP/gRPC")
        assert row["rootService"] == instance and row["spanCount"] >= 2
    finally:
        stop(process)
