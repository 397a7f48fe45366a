"""End to end: ``ordersim up`` runs the four services as real uvicorn processes; their spans
travel over OTLP/HTTP to a sink inside the test, and the trace holds across processes."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind

from ordersim.testing import SpanTree, service_of
from ordersim.testing.processes import Up, free_port, poll, start, wait_answering, wait_until_up
from tests import ROOT
from tests.helpers import SERVICES, assert_order_waterfall, order_body
from tests.otlp_sink import OtlpSink
from tests.postgres import create_databases


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


def whole_trace(sink: OtlpSink, trace_id: str, expected: set[str]) -> SpanTree:
    def complete() -> SpanTree | None:
        spans = SpanTree(sink.spans()).trace(trace_id)
        return spans if expected <= {s.name for s in spans} and spans.is_complete() else None

    return poll(complete, 15, f"the whole trace {trace_id} with spans {sorted(expected)}")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_order_trace_across_real_processes(
    up_env: dict[str, str],
    ports: dict[str, int],
    sink: OtlpSink,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    up_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    if backend == "postgres":  # each service on its own database, by its *_DATABASE_URL
        base_url = request.getfixturevalue("postgres_cluster")
        suffix = tmp_path.name.replace("-", "_")[-20:]
        names = {s: f"e2e_{s}_{suffix}" for s in ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")}
        urls = asyncio.run(create_databases(base_url, list(names.values())))
        for service, name in names.items():
            up_env[f"{service}_SERVICE_DATABASE_URL"] = urls[name]
    up = Up(up_env, tmp_path / "up.log", "--no-viewer")
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, order_url)
        for port in ports.values():
            assert f"http://127.0.0.1:{port}" in up.output()

        body = json.loads((ROOT / "examples" / "order.json").read_text())
        response = httpx.post(f"{order_url}/orders", json=body, timeout=10)
        assert response.status_code == 201, response.text
        trace_id = response.json()["trace_id"]
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")

        spans = whole_trace(
            sink,
            trace_id,
            {
                "POST /orders",
                "place_order",
                "reserve_items",
                "authorize_card",
                "rate_shipment",
                "commit_reservation",
                "save_order",
            },
        )
        # Log lines carry the trace id of the request that wrote them.
        poll(lambda: f"trace_id={trace_id}" in up.output(), 5, "a log line with the trace id")
    finally:
        exit_code = up.stop()

    assert_order_waterfall(spans)
    db_system = {"sqlite": "sqlite", "postgres": "postgresql"}[backend]
    db_services = {service_of(s) for s in spans if s.attributes.get("db.system.name") == db_system}
    assert db_services == SERVICES

    # SIGTERM stopped everything cleanly: nothing listens on the ports any more.
    assert exit_code == 0, up.output()
    assert "all stopped" in up.output()
    for port in ports.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_traced_alone_each_request_is_one_server_span(
    up_env: dict[str, str], ports: dict[str, int], sink: OtlpSink, tmp_path: Path
) -> None:
    """Traces without metrics, as the overhead bench runs them: the unsampled fast path
    then wraps the FastAPI instrumentation, and FastAPI's own telemetry, which steps aside
    only when it finds the instrumentation in its stack, must still add nothing: no second
    SERVER span per request, no ``fastapi.*`` operation spans."""
    up_env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    up = Up(up_env, tmp_path / "up.log", "--no-viewer")
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, order_url)
        body = json.loads((ROOT / "examples" / "order.json").read_text())  # 3 SKUs
        response = httpx.post(f"{order_url}/orders", json=body, timeout=10)
        assert response.status_code == 201, response.text
        spans = whole_trace(sink, response.json()["trace_id"], {"POST /orders", "save_order"})
    finally:
        up.stop()

    assert_order_waterfall(spans)
    by_scope = collections.Counter(
        s.instrumentation_scope.name for s in spans if s.instrumentation_scope is not None
    )
    assert "fastapi" not in by_scope, sorted(s.name for s in spans)
    servers = spans.find_all(kind=SpanKind.SERVER)
    assert {s.instrumentation_scope.name for s in servers if s.instrumentation_scope} == {
        "opentelemetry.instrumentation.fastapi"
    }
    assert by_scope["opentelemetry.instrumentation.fastapi"] == len(servers)


def test_up_stops_the_viewer_after_the_services(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path
) -> None:
    """What a service still holds when told to stop (its batch processors flush on
    shutdown) reaches the viewer: ``ordersim up`` stops the viewer last."""
    up_env.update(
        {f"TRACE_VIEWER_{name}_PORT": str(free_port()) for name in ("OTLP", "GRPC", "UI")}
    )
    up_env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"  # nothing leaves a service before it stops
    up = Up(up_env, tmp_path / "up.log")
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, order_url)
        response = httpx.post(f"{order_url}/orders", json=order_body(), timeout=10)
        assert response.status_code == 201, response.text
    finally:
        assert up.stop() == 0, up.output()

    with sqlite3.connect(Path(up_env["ORDERSIM_DATA_DIR"]) / "traces.db") as db:
        services = {
            service
            for (service,) in db.execute(
                "SELECT DISTINCT service FROM spans WHERE trace_id = ?",
                (response.json()["trace_id"],),
            )
        }
    assert services == SERVICES, up.output()


def test_up_refuses_a_port_in_use(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["PAYMENT"]))
        taken.listen()
        up = Up(up_env, tmp_path / "up.log", "--no-viewer")
        code = up.process.wait(timeout=30)
    assert code == 2
    assert f"port {ports['PAYMENT']} (payment-service) is already in use" in up.output()
    assert "PAYMENT_SERVICE_PORT" in up.output()


def test_exporter_down_does_not_disturb_the_services(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path
) -> None:
    up_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nobody there
    up = Up(up_env, tmp_path / "up.log", "--no-viewer")
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, order_url)
        statuses = [
            httpx.post(f"{order_url}/orders", json=order_body(), timeout=10).status_code
            for _ in range(5)
        ]
        assert statuses == [201] * 5
    finally:
        assert up.stop() == 0, up.output()


def test_under_opentelemetry_instrument_nothing_is_doubled(
    up_env: dict[str, str], ports: dict[str, int], sink: OtlpSink, tmp_path: Path
) -> None:
    """Zero-code instrumentation already set a provider and patched the libraries: our setup
    must reuse them, not add a second provider or a second span per request."""
    up_env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="inventory-service",
    )
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    log = tmp_path / "inventory.log"
    process = start([str(instrument), sys.executable, "-m", "inventory_service"], up_env, log)
    url = f"http://127.0.0.1:{ports['INVENTORY']}"
    try:
        wait_answering(process, f"{url}/healthz", log, "inventory-service under the agent")
        response = httpx.get(f"{url}/products", params={"sku": "SKU-0001"})
        trace_id = response.headers["traceresponse"].split("-")[1]
        # The SELECT span ends before the server span, so the batch processor has
        # exported it no later than the server span: waiting for the latter suffices.
        spans = whole_trace(sink, trace_id, {"GET /products"})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    assert len(spans.find_all("GET /products", kind=SpanKind.SERVER)) == 1
    selects = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(selects) == 1, [s.name for s in spans]
    # Its patched create_async_engine bound the EngineTracer; the name is still ours.
    assert selects[0].name == "SELECT products"
    assert {service_of(s) for s in spans} == {"inventory-service"}
    assert "Attempting to instrument" not in log.read_text()


ZERO_CODE_CLIENT = r"""
import asyncio, json
import httpx
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from common.http import Timeouts, create_http_client
from common.telemetry import setup_telemetry
from inventory_service.client import InventoryClient

async def main():
    telemetry = setup_telemetry("order-service")
    exporter = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = []

    def inventory(request):
        sent.append(request.headers.get("traceparent"))
        reservation = {"order_id": "ord_0123456789abcdef", "status": "committed", "items": []}
        return httpx.Response(200, json=reservation)

    http = create_http_client(
        "http://inventory", telemetry, timeouts=Timeouts(), transport=httpx.MockTransport(inventory)
    )
    await InventoryClient(http).commit("ord_0123456789abcdef")
    spans = [(s.name, s.attributes.get("url.template")) for s in exporter.get_finished_spans()]

    # Over httpx's own transport, which the agent patched: its span, not a second one of ours.
    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"order_id": "ord_0123456789abcdef", "status": "committed",
                           "items": []}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    exporter.clear()
    native = create_http_client(
        f"http://127.0.0.1:{port}", telemetry, timeouts=Timeouts(),
        transport=httpx.AsyncHTTPTransport(),
    )
    await InventoryClient(native).commit("ord_0123456789abcdef")
    server.close()
    native_clients = [s.name for s in exporter.get_finished_spans()]
    print(json.dumps({"ours": telemetry.owns_provider, "sent": sent, "spans": spans,
                      "native": native_clients}))

asyncio.run(main())
"""


def test_under_opentelemetry_instrument_the_service_clients_are_traced(
    up_env: dict[str, str],
) -> None:
    """The agent patches httpx's own transport class only; the services' clients send through
    another (aiohttp's), so they are instrumented by the services even then: a CLIENT span
    named after the endpoint's template, and a traceparent on the wire."""
    up_env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    up_env["OTEL_LOGS_EXPORTER"] = "none"
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    result = subprocess.run(
        [str(instrument), sys.executable, "-c", ZERO_CODE_CLIENT],
        env=up_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["ours"] is False  # the agent's provider
    assert seen["spans"] == [
        ["POST /reservations/{order_id}/commit", "/reservations/{order_id}/commit"]
    ]
    assert seen["sent"][0].startswith("00-")
    assert len(seen["native"]) == 1, seen["native"]  # one CLIENT span per call, never two


def test_sigterm_flushes_the_spans_still_queued(
    up_env: dict[str, str], ports: dict[str, int], sink: OtlpSink, tmp_path: Path
) -> None:
    """The batch processor holds spans for OTEL_BSP_SCHEDULE_DELAY; a service stopped before
    that exports them on the way out instead of losing them."""
    up_env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OTEL_BSP_SCHEDULE_DELAY="600000")
    log = tmp_path / "inventory.log"
    process = start([sys.executable, "-m", "inventory_service"], up_env, log)
    url = f"http://127.0.0.1:{ports['INVENTORY']}"
    try:
        wait_answering(process, f"{url}/healthz", log, "inventory-service")
        response = httpx.get(f"{url}/products")
        trace_id = response.headers["traceresponse"].split("-")[1]
        assert len(SpanTree(sink.spans()).trace(trace_id)) == 0  # still queued in the process
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    assert code == 0, log.read_text()
    assert SpanTree(SpanTree(sink.spans()).trace(trace_id)).find_all(
        "GET /products", kind=SpanKind.SERVER
    )
