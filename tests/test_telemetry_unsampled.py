"""Work known to be unsampled skips the instrumentations, and still propagates its context.

The probes count calls into the instrumentations' per-request work: the ASGI
middleware's request attributes, the httpx wrapper's client attributes and the
SQLAlchemy listener's connection attributes, each of which runs only once the
instrumentation has decided to handle the call.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry.context import Context, attach, detach
from opentelemetry.instrumentation import asgi
from opentelemetry.instrumentation import fastapi as fastapi_instrumentation
from opentelemetry.instrumentation import httpx as httpx_instrumentation
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.instrumentation.sqlalchemy import engine as sqlalchemy_engine
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)

from common.telemetry import Telemetry, drops_unsampled_children, known_unsampled
from ordersim.testing import System
from tests.helpers import CALLER_SPAN, CALLER_TRACE, Recorder, order_body


@pytest.fixture
def instrumentation_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()

    def counting(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def probe(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return probe

    for module, attribute, name in (
        (asgi, "collect_request_attributes", "server"),
        (httpx_instrumentation, "_apply_request_client_attributes_to_span", "client"),
        (sqlalchemy_engine, "_get_attributes_from_url", "database"),
    ):
        monkeypatch.setattr(module, attribute, counting(name, getattr(module, attribute)))
    return calls


def spans_made(system: System) -> Counter[str]:
    """The spans each instrumentation made, by the probe that counts its calls."""
    made: Counter[str] = Counter()
    for span in system.spans():
        if span.kind == SpanKind.SERVER:
            made["server"] += 1
        elif span.kind == SpanKind.CLIENT:
            attributes = span.attributes or {}
            made["client" if "http.request.method" in attributes else "database"] += 1
    return made


def sampled(header: str) -> bool:
    """The sampled bit of a traceparent / traceresponse header, or of its flags alone."""
    return bool(int(header[-2:], 16) & 1)


async def place(system: System, flags: str, answered: str | None = None) -> httpx.Response:
    response = await system.order.post(
        "/orders",
        json=order_body(),
        headers={
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}",
            "tracestate": "vendor=opaque",
            "baggage": "tenant=acme",
        },
    )
    assert response.status_code == 201
    assert response.json()["trace_id"] == CALLER_TRACE
    assert response.headers["traceresponse"].startswith(f"00-{CALLER_TRACE}-")
    assert sampled(response.headers["traceresponse"]) == sampled(answered or flags)
    return response


async def test_an_unsampled_caller_skips_every_instrumentation_and_propagates(
    start_system: Any, instrumentation_calls: Counter[str]
) -> None:
    async with start_system(wrap={"inventory": Recorder}) as system:
        await place(system, "00")
        await system.drain()
        assert list(system.tree(CALLER_TRACE)) == []
        # Only the confirmation's notification, a trace of its own (a new root, sampled),
        # went through them.
        assert instrumentation_calls == spans_made(system)
        assert all(span.links for span in system.spans() if span.parent is None)

        recorder: Recorder = system.transports["inventory"]  # type: ignore[assignment]
        assert recorder.headers
        for sent in recorder.headers:
            assert sent["traceparent"].startswith(f"00-{CALLER_TRACE}-")
            assert not sampled(sent["traceparent"])
            assert CALLER_SPAN not in sent["traceparent"]  # order-service's own span id
            assert sent["tracestate"] == "vendor=opaque"
            assert sent["baggage"] == "tenant=acme"


async def test_no_span_is_started_under_an_unsampled_one(
    start_system: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The services' own spans under an unsampled request are the request's span, as the
    API's NoOpTracer makes them: the SDK is not asked for spans its sampler would drop.
    Their log lines still carry the trace id, their calls a ``traceparent`` of that trace
    with flags 00."""
    asked: list[str] = []
    start_span = SdkTracer.start_span

    def asking(self: SdkTracer, name: str, context: Context | None = None, **kw: Any) -> Any:
        if known_unsampled(context):
            asked.append(name)
        return start_span(self, name, context, **kw)

    monkeypatch.setattr(SdkTracer, "start_span", asking)
    services = ("order_service.flow", "inventory_service", "payment_service")
    for name in services:
        caplog.set_level(logging.INFO, logger=name)
    async with start_system(wrap={"payment": Recorder}) as system:
        await place(system, "00")
        await system.drain()
        assert asked == []
        assert list(system.tree(CALLER_TRACE)) == []
        recorder: Recorder = system.transports["payment"]  # type: ignore[assignment]
        assert recorder.headers
        for sent in recorder.headers:
            assert sent["traceparent"].startswith(f"00-{CALLER_TRACE}-")
            assert not sampled(sent["traceparent"])
    lines = [r for r in caplog.records if r.name.startswith(services)]
    assert {r.name.split(".")[0] for r in lines} == {s.split(".")[0] for s in services}
    for line in lines:
        assert getattr(line, "otelTraceID", None) == CALLER_TRACE
        assert getattr(line, "otelTraceSampled", None) is False


async def test_a_sampled_caller_passes_through_every_instrumentation(
    start_system: Any, instrumentation_calls: Counter[str]
) -> None:
    async with start_system() as system:
        await place(system, "01")
        await system.drain()
        # The probes count the work they stand for: a call per span made.
        assert instrumentation_calls == spans_made(system)
        assert list(system.tree(CALLER_TRACE))
        assert all(instrumentation_calls[name] > 1 for name in ("server", "client", "database"))


async def test_an_unsampled_root_skips_every_instrumentation(
    start_system: Any, instrumentation_calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root sampler decides by trace id alone: order-service's own request is decided
    before the instrumentation, which it then skips too."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    async with start_system(wrap={"payment": Recorder}) as system:
        response = await system.order.post(
            "/orders", json=order_body(), headers={"baggage": "tenant=acme"}
        )
        assert response.status_code == 201
        assert not sampled(response.headers["traceresponse"])
        trace_id = response.json()["trace_id"]
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        await system.drain()
        assert instrumentation_calls == Counter()
        assert system.spans() == []
        recorder: Recorder = system.transports["payment"]  # type: ignore[assignment]
        assert recorder.headers
        for sent in recorder.headers:
            assert sent["traceparent"].startswith(f"00-{trace_id}-")
            assert not sampled(sent["traceparent"])
            assert sent["baggage"] == "tenant=acme"
        # The instrumentation's excluded URLs stay as it leaves them: no traceresponse.
        probe = await system.order.get("/healthz")
        assert probe.status_code == 200
        assert "traceresponse" not in probe.headers


#: Trace ids that TraceIdRatioBased(0.5) samples (its low 64 bits under 2**63) or drops.
KEPT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C & ~(1 << 63)
DROPPED_TRACE = 0x0AF7651916CD43DD8448EB211C80319C | (1 << 63)


async def test_a_new_trace_is_decided_once_on_the_trace_id_it_keeps(
    start_system: Any, instrumentation_calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ratio sampler's root decision is made before the instrumentation, on a trace id
    drawn there; a sampled root's span gets that very trace id (a second draw would sample
    the ratio squared), a dropped one skips the instrumentation."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    draws = iter([KEPT_TRACE])
    monkeypatch.setattr(
        RandomIdGenerator, "generate_trace_id", lambda self: next(draws, DROPPED_TRACE)
    )
    async with start_system() as system:
        kept = await system.order.post("/orders", json=order_body())
        assert kept.status_code == 201
        assert kept.json()["trace_id"] == f"{KEPT_TRACE:032x}"
        assert kept.headers["traceresponse"].startswith(f"00-{KEPT_TRACE:032x}-")
        assert sampled(kept.headers["traceresponse"])
        await system.drain()
        root = system.tree(f"{KEPT_TRACE:032x}").root
        assert root.kind == SpanKind.SERVER and root.name == "POST /orders"
        calls = instrumentation_calls.copy()
        assert calls["server"] > 1

        dropped = await system.order.post("/orders", json=order_body())
        assert dropped.status_code == 201
        assert dropped.json()["trace_id"] == f"{DROPPED_TRACE:032x}"
        assert not sampled(dropped.headers["traceresponse"])
        await system.drain()
        # No request of the dropped trace went through the instrumentations.
        assert instrumentation_calls == calls


async def test_a_sampler_that_ignores_its_parent_gets_every_request(
    start_system: Any, instrumentation_calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not parent-based: a child of an unsampled span may be sampled, so no fast path."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    async with start_system() as system:
        await place(system, "01")  # sampled, but as a new decision in every service
        await system.drain()
        calls = instrumentation_calls.copy()
        instrumentation_calls.clear()
        await place(system, "00", answered="01")
        await system.drain()
        assert instrumentation_calls == calls


def test_only_samplers_that_drop_the_children_of_unsampled_spans_allow_the_fast_path() -> None:
    assert drops_unsampled_children(ParentBased(ALWAYS_ON))
    assert drops_unsampled_children(ParentBased(TraceIdRatioBased(0.01)))
    assert not drops_unsampled_children(TraceIdRatioBased(0.01))
    assert not drops_unsampled_children(ALWAYS_ON)
    assert not drops_unsampled_children(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON))


def test_a_failed_statement_of_an_unsampled_trace_leaves_no_suppression_behind(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/t.db")
    Telemetry(provider).instrument_engine(engine)

    def under(flags: int) -> Context:
        parent = SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), True, TraceFlags(flags))
        return set_span_in_context(NonRecordingSpan(parent))

    with engine.connect() as conn:
        token = attach(under(TraceFlags.DEFAULT))
        try:
            with pytest.raises(sqlalchemy.exc.OperationalError):
                conn.execute(sqlalchemy.text("SELECT * FROM missing"))
            conn.execute(sqlalchemy.text("SELECT 1"))
            assert is_instrumentation_enabled()
        finally:
            detach(token)
        token = attach(under(TraceFlags.SAMPLED))
        try:
            conn.execute(sqlalchemy.text("SELECT 2"))
        finally:
            detach(token)
    # Only the sampled trace's statement made a span.
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None and span.parent.trace_flags.sampled


def test_a_statement_of_an_unsampled_trace_attaches_no_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decided in the instrumentation's own listener: no suppression attached before the
    statement and detached after it (and no listeners of ours to call)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/t.db")
    Telemetry(provider).instrument_engine(engine)
    attached: list[Context] = []
    real_attach = otel_context.attach

    def attaching(context: Context) -> object:
        attached.append(context)
        return real_attach(context)

    def under(flags: int) -> Context:
        parent = SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), True, TraceFlags(flags))
        return set_span_in_context(NonRecordingSpan(parent))

    with engine.connect() as conn:
        token = attach(under(TraceFlags.DEFAULT))
        monkeypatch.setattr(otel_context, "attach", attaching)
        try:
            conn.execute(sqlalchemy.text("SELECT 1"))
        finally:
            monkeypatch.undo()
            detach(token)
        assert attached == []
        token = attach(under(TraceFlags.SAMPLED))
        try:
            conn.execute(sqlalchemy.text("SELECT 2"))
        finally:
            detach(token)
    (span,) = exporter.get_finished_spans()  # the sampled statement still makes its span
    assert span.parent is not None and span.parent.span_id == int(CALLER_SPAN, 16)


def test_a_transaction_pays_for_no_connection_usage_metric(tmp_path: Path) -> None:
    """The instrumentation's pool listeners feed only a no-op counter: not registered."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/t.db")
    pool_events = ("connect", "close", "checkout", "checkin")
    telemetry = Telemetry(provider)
    telemetry.instrument_engine(engine)
    (tracer,) = telemetry._engine_tracers
    for name in pool_events:
        listener = getattr(tracer, f"_pool_{name}")
        assert not sqlalchemy.event.contains(engine, name, listener)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))
    (span,) = exporter.get_finished_spans()  # statements still make their spans
    assert span.attributes and span.attributes["db.system.name"] == "sqlite"


async def test_an_unsampled_request_that_fails_skips_the_exception_recording_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The FastAPI instrumentation's exception-recording middleware only records on a span
    that records: an unsampled request does not pass through it, and still gets its 500
    and its ``traceresponse``; a sampled one's span still gets the exception."""
    looked_up: list[object] = []
    get_current_span = fastapi_instrumentation.get_current_span

    def probe(*args: Any) -> Any:
        looked_up.append(args)
        return get_current_span(*args)

    monkeypatch.setattr(fastapi_instrumentation, "get_current_span", probe)
    if get_global_response_propagator() is None:  # as setup_telemetry does
        set_global_response_propagator(TraceResponsePropagator())
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("boom")

    Telemetry(provider).instrument_app(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for flags in ("00", "01"):
            response = await client.get(
                "/fails", headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"}
            )
            assert response.status_code == 500
            assert response.headers["traceresponse"].startswith(f"00-{CALLER_TRACE}-")
            assert sampled(response.headers["traceresponse"]) == sampled(flags)
            assert len(looked_up) == int(flags)
    (server,) = exporter.get_finished_spans()
    assert server.events and server.events[0].name == "exception"


async def test_an_unsampled_call_does_not_pass_through_the_httpx_instrumentation(
    start_system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its wrapper is not even entered (suppressed, it still ran and looked the
    suppression up): the call goes out through the client's uninstrumented twin, with
    its context's headers."""
    entered: list[str] = []
    wrapper = HTTPXClientInstrumentor._handle_async_request_wrapper

    async def probe(wrapped: Any, instance: Any, args: Any, kwargs: Any, **kw: Any) -> Any:
        entered.append(str(args[0].url))
        return await wrapper(wrapped, instance, args, kwargs, **kw)

    monkeypatch.setattr(HTTPXClientInstrumentor, "_handle_async_request_wrapper", probe)
    async with start_system(wrap={"inventory": Recorder}) as system:
        await place(system, "00")
        await system.drain()
        # Only the confirmation's notification, a trace of its own, was instrumented.
        assert len(entered) == spans_made(system)["client"] == len(set(entered))
        recorder: Recorder = system.transports["inventory"]  # type: ignore[assignment]
        assert recorder.headers
        for sent in recorder.headers:
            assert sent["traceparent"].startswith(f"00-{CALLER_TRACE}-")
            assert not sampled(sent["traceparent"])


def _under_unsampled_caller() -> object:
    parent = SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), True, TraceFlags(0))
    return attach(set_span_in_context(NonRecordingSpan(parent)))


async def test_a_closed_client_refuses_an_unsampled_call_as_it_does_a_sampled_one() -> None:
    """The unsampled twin sends through the closed client's transport otherwise."""
    from common.http import Timeouts, create_http_client

    telemetry = Telemetry(TracerProvider(sampler=ParentBased(ALWAYS_ON)))
    assert telemetry.skips_unsampled
    answered = httpx.MockTransport(lambda request: httpx.Response(200))
    client = create_http_client(
        "http://inventory", telemetry, timeouts=Timeouts(), transport=answered
    )
    assert getattr(client, "unsampled", None) is not None  # the twin this is about
    token = _under_unsampled_caller()
    try:
        assert (await client.get("/healthz")).status_code == 200
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.get("/healthz")
    finally:
        detach(token)  # type: ignore[arg-type]


def test_propagators_that_read_headers_by_prefix_are_handed_every_header() -> None:
    """The fast path hands the W3C propagators only the headers they name; Jaeger's and
    OT's also read baggage from any header of a prefix (``uberctx-``), which they do not
    name in ``fields``."""
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from common.telemetry import _propagation_headers

    class PrefixBaggage(TextMapPropagator):  # like Jaeger's: uber-trace-id, uberctx-<key>
        @property
        def fields(self) -> set[str]:
            return {"uber-trace-id"}

        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            return context

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            pass

    headers = [
        (b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-00"),
        (b"uberctx-k", b"v"),
    ]
    scope = {"type": "http", "headers": headers}
    previous = propagate.get_global_textmap()
    try:
        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
        assert _propagation_headers(scope)["headers"] == headers[:1]
        propagate.set_global_textmap(CompositePropagator([PrefixBaggage()]))
        assert _propagation_headers(scope)["headers"] == headers
    finally:
        propagate.set_global_textmap(previous)
