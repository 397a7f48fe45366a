"""``ordersim doctor`` against deliberately broken setups.

A real trace viewer (a process) stores the spans; the "services" are small Starlette apps
on free ports, each with its own OpenTelemetry SDK exporting OTLP/HTTP to the viewer, and
each broken in one chosen way: another propagator (B3 only), a clock ahead, a SERVER span
made twice, a parent span that is never exported.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordersim.cli import main
from ordersim.doctor import doctor
from ordersim.testing.processes import Viewer, free_port, poll, running_viewer

W3C = TraceContextTextMapPropagator()


@dataclass
class Node:
    """A traced HTTP service: ``GET /work`` makes a SERVER span and, with ``downstream``,
    calls it under a CLIENT span."""

    name: str
    otlp: str
    propagator: str = "w3c"  # or "b3": reads and writes only the single B3 header
    downstream: str | None = None
    skew_ns: int = 0  # its clock runs this far ahead
    duplicate_server: bool = False  # instrumented twice: two SERVER spans per request
    # Instrumented twice, the inner instrumentation seeing the outer's span current (as
    # opentelemetry-instrumentation-fastapi inside FastAPI's own telemetry): INTERNAL.
    nested_server: bool = False
    drop_server: bool = False  # its SERVER span is never exported

    def __post_init__(self) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": self.name}))
        self.provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{self.otlp}/v1/traces"))
        )
        self.tracer = self.provider.get_tracer("test_doctor")

    def now(self) -> int:
        return time.time_ns() + self.skew_ns

    def extract(self, headers: dict[str, str]) -> Context:
        if self.propagator == "w3c":
            return W3C.extract(headers)
        parts = headers.get("b3", "").split("-")
        if len(parts) < 2:
            return Context()
        parent = SpanContext(
            int(parts[0], 16), int(parts[1], 16), is_remote=True, trace_flags=TraceFlags(1)
        )
        return trace.set_span_in_context(NonRecordingSpan(parent))

    def inject(self, span: trace.Span) -> dict[str, str]:
        context = span.get_span_context()
        if self.propagator == "w3c":
            headers: dict[str, str] = {}
            W3C.inject(headers, trace.set_span_in_context(span))
            return headers
        return {"b3": f"{context.trace_id:032x}-{context.span_id:016x}-1"}

    def work(self, request: Request) -> Response:
        parent = self.extract(dict(request.headers))
        server = self.tracer.start_span(
            "GET /work", parent, kind=SpanKind.SERVER, start_time=self.now()
        )
        if self.duplicate_server:
            self.tracer.start_span(
                "GET /work", parent, kind=SpanKind.SERVER, start_time=self.now()
            ).end(end_time=self.now())
        if self.nested_server:
            self.tracer.start_span(
                "GET /work",
                trace.set_span_in_context(server),
                kind=SpanKind.INTERNAL,
                start_time=self.now(),
            ).end(end_time=self.now())
        if self.downstream:
            client = self.tracer.start_span(
                "GET",
                trace.set_span_in_context(server),
                kind=SpanKind.CLIENT,
                start_time=self.now(),
                attributes={"http.request.method": "GET", "url.full": self.downstream},
            )
            answer = httpx.get(self.downstream, headers=self.inject(client), timeout=10)
            client.set_attribute("http.response.status_code", answer.status_code)
            client.end(end_time=self.now())
        context = server.get_span_context()
        if not self.drop_server:
            server.end(end_time=self.now())
        return Response(
            "done",
            headers={"traceresponse": f"00-{context.trace_id:032x}-{context.span_id:016x}-01"},
        )


@dataclass
class Running:
    node: Node
    url: str  # http://127.0.0.1:<port>/work


class Services:
    """Nodes served by uvicorn in threads until the test ends."""

    def __init__(self, otlp: str) -> None:
        self.otlp = otlp
        self.servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(self, name: str, **options: Any) -> Running:
        port = free_port()
        node = Node(name, self.otlp, **options)
        app = Starlette(routes=[Route("/work", node.work)])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self.servers.append((server, thread))
        poll(lambda: server.started, 10, f"{name} to start")
        return Running(node, f"http://127.0.0.1:{port}/work")

    def stop(self) -> None:
        for server, thread in self.servers:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    with running_viewer(tmp_path_factory.mktemp("doctor")) as running:
        yield running


@pytest.fixture
def services(viewer: Viewer) -> Iterator[Services]:
    running = Services(viewer.otlp)
    yield running
    running.stop()


def pair(services: Services, **back: Any) -> tuple[Running, Running]:
    """front-service calling back-service, ``back`` set up as given."""
    callee = services.start("back-service", **back)
    caller = services.start("front-service", downstream=callee.url)
    return caller, callee


def run(
    capsys: pytest.CaptureFixture[str],
    viewer: Viewer,
    *services: Running | str,
    request: Running | None = None,
    wait: float = 3.0,
    env: dict[str, str] | None = None,
    otlp: str | None = None,
    protocol: str | None = None,
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Doctor's exit status and its checks by name (from --json)."""
    code = doctor(
        otlp=otlp or viewer.otlp,
        protocol=protocol,
        endpoint=viewer.ui,
        services=[s if isinstance(s, str) else s.url for s in services],
        request=f"GET {request.url}" if request else None,
        wait=wait,
        as_json=True,
        env=env or {},
    )
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (code == 0)
    return code, {check["name"]: check for check in report["checks"]}


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


def test_a_healthy_setup_passes(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    front, back = pair(services)
    code, checks = run(capsys, viewer, front, back, request=front, wait=10)
    found = statuses(checks)
    assert code == 0, checks
    for name in (
        "environment: SDK",
        "environment: exporter",
        "OTLP endpoint",
        "query API",
        f"propagation: {front.url}",
        f"propagation: {back.url}",
        "one trace",
        "dropped spans",
        "clock skew",
        "double instrumentation",
    ):
        assert found[name] == "ok", checks[name]
    assert "from 2 service(s)" in checks["one trace"]["detail"]
    # What the inputs cannot show is listed as skipped, with where to look.
    assert found["export errors in the services"] == "skipped"
    assert "log" in checks["export errors in the services"]["detail"]


def test_no_otlp_endpoint_listening(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, checks = run(capsys, viewer, otlp=nowhere)
    assert code == 1
    assert checks["OTLP endpoint"]["status"] == "problem"
    assert "connection refused" in checks["OTLP endpoint"]["detail"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in checks["OTLP endpoint"]["fix"]


def test_no_otlp_grpc_endpoint_listening(
    capsys: pytest.CaptureFixture[str], viewer: Viewer
) -> None:
    code, checks = run(capsys, viewer, otlp=f"127.0.0.1:{free_port()}", protocol="grpc")
    assert code == 1
    assert checks["OTLP endpoint"]["status"] == "problem"
    assert "UNAVAILABLE" in checks["OTLP endpoint"]["detail"]


def test_the_grpc_intake_passes(capsys: pytest.CaptureFixture[str], viewer: Viewer) -> None:
    code, checks = run(capsys, viewer, otlp=viewer.grpc, protocol="grpc")
    assert checks["OTLP endpoint"]["status"] == "ok", checks["OTLP endpoint"]
    assert checks["query API"]["status"] == "ok", checks["query API"]
    assert code == 0


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("OTEL_SDK_DISABLED", "TRUE", "environment: SDK"),
        ("OTEL_TRACES_EXPORTER", "none", "environment: exporter"),
        ("OTEL_TRACES_EXPORTER", "console", "environment: exporter"),
    ],
)
def test_sdk_disabled_or_no_exporter(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, variable: str, value: str, check: str
) -> None:
    code, checks = run(capsys, viewer, env={variable: value})
    assert code == 1
    assert checks[check]["status"] == "problem"
    assert f"{variable}={value}" in checks[check]["detail"]
    assert "environment ordersim doctor runs in" in checks[check]["detail"]


def test_a_b3_only_service_splits_the_trace(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    front, back = pair(services, propagator="b3")
    code, checks = run(capsys, viewer, front, back, request=front)
    assert code == 1
    assert checks[f"propagation: {front.url}"]["status"] == "ok"
    assert checks[f"propagation: {back.url}"]["status"] == "problem"
    assert "only B3" in checks[f"propagation: {back.url}"]["detail"]
    assert "OTEL_PROPAGATORS" in checks[f"propagation: {back.url}"]["fix"]
    # front sends a traceparent back ignores: back's span starts a trace of its own.
    assert checks["one trace"]["status"] == "problem"
    assert "never reported" in checks["one trace"]["detail"]


def test_a_missing_parent(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    back = services.start("back-service")
    front = services.start("front-service", downstream=back.url, drop_server=True)
    code, checks = run(capsys, viewer, request=front)
    assert code == 1
    assert checks["one trace"]["status"] == "problem"
    assert "a parent that has not arrived" in checks["one trace"]["detail"]
    assert checks["dropped spans"]["status"] == "problem"
    assert "GET (front-service)" in checks["dropped spans"]["detail"]
    assert "OTEL_BSP_MAX_QUEUE_SIZE" in checks["dropped spans"]["fix"]


def test_clock_skew(capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services) -> None:
    front, _ = pair(services, skew_ns=500_000_000)
    code, checks = run(capsys, viewer, request=front, wait=10)
    assert code == 1
    assert checks["one trace"]["status"] == "ok", checks["one trace"]
    assert checks["clock skew"]["status"] == "problem"
    detail = checks["clock skew"]["detail"]
    assert "GET /work (back-service) ends" in detail and "after its caller's GET" in detail
    assert "NTP" in checks["clock skew"]["fix"]


def test_a_duplicated_server_span(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    front, _ = pair(services, duplicate_server=True)
    code, checks = run(capsys, viewer, request=front, wait=10)
    assert code == 1
    assert checks["clock skew"]["status"] == "ok"
    assert checks["double instrumentation"]["status"] == "problem"
    assert "2 SERVER spans of back-service" in checks["double instrumentation"]["detail"]


def test_a_server_span_traced_again_inside_itself(
    capsys: pytest.CaptureFixture[str], viewer: Viewer, services: Services
) -> None:
    front, _ = pair(services, nested_server=True)
    code, checks = run(capsys, viewer, request=front, wait=10)
    assert code == 1
    check = checks["double instrumentation"]
    assert check["status"] == "problem"
    assert "GET /work (back-service) traced twice" in check["detail"]
    assert "FastAPI(telemetry=" in check["fix"]


def test_a_service_that_is_not_traced(capsys: pytest.CaptureFixture[str], viewer: Viewer) -> None:
    # A URL that answers without traceresponse and makes no span: the viewer's statistics.
    plain = f"{viewer.ui}/api/stats"
    code, checks = run(capsys, viewer, plain, wait=1)
    assert code == 1
    check = checks[f"propagation: {plain}"]
    assert check["status"] == "problem"
    assert "no traceresponse header" in check["detail"]


@pytest.mark.parametrize(
    "argv",
    [
        ["doctor", "--request", "nonsense"],
        ["doctor", "--body", "{}"],
        ["doctor", "--request", "POST http://x/orders", "--body", "{not json"],
        ["doctor", "--wait", "-1"],
        ["doctor", "--protocol", "thrift"],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own
        code = int(exit.code or 0)
    assert code == 2


def test_the_table(viewer: Viewer, services: Services) -> None:
    from rich.console import Console

    _, back = pair(services, propagator="b3")
    console = Console(width=160, record=True)
    code = doctor(
        otlp=viewer.otlp,
        endpoint=viewer.ui,
        services=[back.url],
        wait=1,
        console=console,
        env={},
    )
    text = console.export_text()
    assert code == 1
    assert "✗ problem" in text and "✓ ok" in text and "- skipped" in text
    assert "fix: give every service the same OTEL_PROPAGATORS" in text
    assert "1 problem(s) found" in text
