"""OpenTelemetry setup shared by every service, configured only by the standard OTEL_* variables.

:func:`setup_telemetry` *returns* a :class:`Telemetry` instead of mutating globals, so
four services can live in one process (the tests) each under its own ``service.name``::

    telemetry = setup_telemetry("inventory-service")
    app = create_app(settings, telemetry)

Defaults (each overridable by its standard variable):

- ``service.name`` is the service's own; ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` win.
- ``service.instance.id`` is a random UUID per service instance (a process, or each
  service of an in-process system), so replicas of one service are told apart;
  ``OTEL_RESOURCE_ATTRIBUTES=service.instance.id=…`` wins.
- Export: BatchSpanProcessor → OTLP/HTTP to http://localhost:4318 (``OTEL_EXPORTER_OTLP_*``,
  ``OTEL_BSP_*``); ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``)
  ``grpc`` exports OTLP/gRPC instead (to http://localhost:4317 unless an endpoint is set);
  ``OTEL_TRACES_EXPORTER=console|none`` for debugging.
- Sampling: parent-based always-on (``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``).
- Propagation: W3C tracecontext + baggage (``OTEL_PROPAGATORS``).
- HTTP and database spans follow the *stable* semantic conventions
  (``OTEL_SEMCONV_STABILITY_OPT_IN`` defaults to ``http,database`` here).
- ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (``fastapi``, ``httpx``, ``sqlalchemy``,
  ``logging``, or ``*``) skips those libraries' instrumentation, as it does for
  ``opentelemetry-instrument``; the order flow's own spans stay.
- ``OTEL_SDK_DISABLED=true`` turns everything into no-ops.
- Logs and metrics: :mod:`common.signals` (``OTEL_LOGS_EXPORTER``, ``OTEL_METRICS_EXPORTER``,
  ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_METRICS_EXEMPLAR_FILTER``), under the same resource.

A request already known to be unsampled (its caller's ``traceparent`` says so, it runs
under an unsampled span, or it starts a trace that a ratio sampler drops, which depends on
the trace id alone) skips the HTTP and database instrumentations: its context is still
propagated and every response still carries ``traceresponse``, but no span object,
attribute or metric attribute is built for it. See :class:`UnsampledFastPath`.

Under ``opentelemetry-instrument`` the global SDK provider and the globally patched
libraries are reused: no second provider, no duplicate spans.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from httpx import AsyncBaseTransport, AsyncClient, AsyncHTTPTransport
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.asgi import (
    OpenTelemetryMiddleware,
    asgi_getter,
    asgi_setter,
    get_host_port_url_tuple,
)
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]  # mypy does not resolve it
    BaseInstrumentor,
)
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import get_meter_provider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
)
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.resources import Attributes as ResourceAttributes
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.semconv.attributes.db_attributes import DB_COLLECTION_NAME, DB_OPERATION_NAME
from opentelemetry.semconv.attributes.service_attributes import SERVICE_INSTANCE_ID
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import TableClause
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.signals import (
    Signals,
    disabled_signals,
    global_signals,
    record_operation_durations,
    setup_signals,
)

logger = logging.getLogger(__name__)

#: URLs whose server spans are noise in every waterfall: health probes and the fault admin API.
EXCLUDED_URLS = "healthz,/admin/"

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"
)


def sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "false").strip().lower() == "true"


def disabled_instrumentations() -> frozenset[str]:
    """The entry-point names in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS ("*": all), read as
    opentelemetry-instrument reads them."""
    value = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


@dataclass
class Telemetry:
    """The tracer provider of one service and the instrumentation bound to it."""

    tracer_provider: trace.TracerProvider
    #: False under ``opentelemetry-instrument`` (the provider is global and not ours to shut down).
    owns_provider: bool = True
    enabled: bool = True
    #: Libraries not to instrument (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS).
    disabled: frozenset[str] = frozenset()
    _engine_tracers: list[object] = field(default_factory=list)
    #: Its logs and metrics (common/signals.py).
    signals: Signals = field(default_factory=disabled_signals)

    def tracer(self, name: str) -> trace.Tracer:
        tracer = self.tracer_provider.get_tracer(name)
        return UnsampledSpansAreTheirParent(tracer) if self.skips_unsampled else tracer

    def instruments(self, library: str, instrumentor: BaseInstrumentor) -> bool:
        """Whether to instrument ``library`` here: tracing is on, the library is not in
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, and ``opentelemetry-instrument`` has not
        already patched it for the whole process."""
        return (
            self.enabled
            and not {library, "*"} & self.disabled
            and not instrumentor.is_instrumented_by_opentelemetry
        )

    @cached_property
    def skips_unsampled(self) -> bool:
        """Whether work known to be unsampled may skip the HTTP and database
        instrumentations: this provider's sampler drops every child of an unsampled span
        (the parent-based samplers, OTEL_TRACES_SAMPLER's default), and no SDK meter
        provider, ours (OTEL_METRICS_EXPORTER) or a global one, records the
        instrumentations' HTTP metrics, which every request owes."""
        sampler = getattr(self.tracer_provider, "sampler", None)
        return (
            self.enabled
            and isinstance(sampler, Sampler)
            and drops_unsampled_children(sampler)
            and not self.signals.metrics_enabled
            and not isinstance(get_meter_provider(), SdkMeterProvider)
        )

    @cached_property
    def root_sampler(self) -> Sampler | None:
        """This provider's sampler, when a request with no parent may be decided before
        the instrumentation sees it: the sampler's decision for a root is a function of
        the trace id alone (:func:`decides_roots_by_trace_id`), and the provider draws its
        trace ids from a :class:`PredrawnTraceIds`, so that a root decided "sampled" gets
        its span under the very trace id the decision was made on."""
        sampler = getattr(self.tracer_provider, "sampler", None)
        ids = getattr(self.tracer_provider, "id_generator", None)
        if (
            self.skips_unsampled
            and isinstance(sampler, Sampler)
            and isinstance(ids, PredrawnTraceIds)
            and decides_roots_by_trace_id(sampler)
        ):
            return sampler
        return None

    def instrument_app(self, app: FastAPI) -> None:
        if not self.instruments("fastapi", FastAPIInstrumentor()):
            return
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.tracer_provider,
            meter_provider=self.signals.meter_provider,
            excluded_urls=EXCLUDED_URLS,
            # One SERVER span per request; the ASGI receive/send spans double the span
            # count of every hop and say nothing the server span does not.
            exclude_spans=["receive", "send"],
        )
        if self.skips_unsampled:
            ids = getattr(self.tracer_provider, "id_generator", None) or RandomIdGenerator()
            roots = self.root_sampler
            build_instrumented = app.build_middleware_stack

            def build_middleware_stack() -> ASGIApp:
                stack = build_instrumented()
                # FastAPIInstrumentor's stack: ServerErrorMiddleware(OpenTelemetryMiddleware(
                # the app's own stack)); any other shape is left as it is.
                instrumented = getattr(stack, "app", None)
                if not isinstance(instrumented, OpenTelemetryMiddleware):
                    return stack
                return UnsampledFastPath(stack, instrumented, ids, roots)

            app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]

    def instrument_client(
        self,
        client: AsyncClient,
        transport: AsyncBaseTransport,
        request_hook: Callable[[Span, Any], Awaitable[None]] | None = None,
    ) -> bool:
        """Instrument ``client``, which sends through ``transport``; whether it was
        instrumented here (its own wrapper around its transport object), rather than left
        to ``opentelemetry-instrument``'s patch of the transport's class, or untraced.

        ``opentelemetry-instrument`` patches only httpx's own transport class
        (``AsyncHTTPTransport``); a client over any other (the aiohttp one the services
        use, an in-process ASGI one) is instrumented here even then, or its calls would
        have no CLIENT span and carry no ``traceparent``.
        """
        if not self.enabled or {"httpx", "*"} & self.disabled:
            return False
        patched = HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
        if patched and isinstance(transport, AsyncHTTPTransport):
            return False
        HTTPXClientInstrumentor.instrument_client(
            client,
            tracer_provider=self.tracer_provider,
            meter_provider=self.signals.meter_provider,
            request_hook=request_hook,
        )
        return True

    def instrument_engine(self, engine: Engine | AsyncEngine) -> None:
        if isinstance(engine, AsyncEngine):
            engine = engine.sync_engine
        if self.signals.metrics_enabled:
            meter = self.signals.meter("opentelemetry.instrumentation.sqlalchemy")
            record_operation_durations(engine, meter, statement_target)
        if not self.enabled or {"sqlalchemy", "*"} & self.disabled:
            return
        if not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry:
            # The instrumentor's public entry point also monkey-patches create_engine for
            # the whole process, once, for the first provider only; binding its
            # EngineTracer to this one engine keeps each service's DB spans under its own
            # service.name. (Under opentelemetry-instrument its patched create_async_engine
            # has already bound one, to the global provider.)
            from opentelemetry.metrics import NoOpMeterProvider

            connections_usage = (
                NoOpMeterProvider()
                .get_meter(__name__)
                .create_up_down_counter("db.client.connections.usage")
            )
            tracer = self.tracer("opentelemetry.instrumentation.sqlalchemy")
            self._engine_tracers.append(
                StatementTracer(tracer, engine, connections_usage, self.skips_unsampled)
            )
            return
        # After the EngineTracer's own listener, which has started the statement's span.
        event.listen(engine, "before_cursor_execute", name_statement_span)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Flush pending spans, for at most ``timeout`` seconds (an unreachable collector
        must not hold a stopping service hostage to the exporter's retries); a provider we
        did not create is left alone."""
        if self.owns_provider and isinstance(self.tracer_provider, SdkTracerProvider):
            provider = self.tracer_provider

            def shutdown() -> None:
                provider.shutdown()
                self.signals.shutdown()

            flush = threading.Thread(target=shutdown, name="telemetry-shutdown", daemon=True)
            flush.start()
            flush.join(timeout)


def drops_unsampled_children(sampler: Sampler) -> bool:
    """Whether ``sampler`` drops every span whose parent, remote or local, is unsampled.

    True of the SDK's parent-based samplers with their default delegates (what
    ``OTEL_TRACES_SAMPLER=parentbased_*`` builds); their description is the one public view
    of those delegates.
    """
    description = sampler.get_description()
    return (
        description.startswith("ParentBased{")
        and "remoteParentNotSampled:AlwaysOffSampler" in description
        and "localParentNotSampled:AlwaysOffSampler" in description
    )


def decides_roots_by_trace_id(sampler: Sampler) -> bool:
    """Whether ``sampler`` decides a span without a parent from its trace id alone: the
    SDK's parent-based samplers over ``TraceIdRatioBased`` or ``ALWAYS_OFF``
    (``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` / ``parentbased_always_off``), read
    from their description as :func:`drops_unsampled_children` does. Any other root
    sampler may look at the span's name, kind or attributes, which only the
    instrumentation knows."""
    description = sampler.get_description()
    return description.startswith(
        ("ParentBased{root:TraceIdRatioBased{", "ParentBased{root:AlwaysOffSampler,")
    )


#: A trace id drawn for the next root span started in this context (PredrawnTraceIds).
_PREDRAWN_TRACE_ID: ContextVar[int | None] = ContextVar("predrawn_trace_id", default=None)


class PredrawnTraceIds(IdGenerator):
    """The SDK's random ids, except that a trace id drawn beforehand
    (:meth:`drawn_for_next_root`) is the one the next root span of that context gets,
    once.

    :class:`UnsampledFastPath` asks the sampler about a new request before the FastAPI
    instrumentation does, on a trace id of its own; when the answer is "sample", the
    instrumentation's span must get that trace id, or its own new one would be a second,
    independent draw (a 1 % ratio would then sample 0.01 % of the roots). The SDK's
    ``Tracer`` offers no way to hand a span its trace id, only the provider's id
    generator, hence this one. A drawn id is taken once: any later root of the request
    (the confirmation's notification) gets a fresh one."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self.inner = inner or RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        drawn = _PREDRAWN_TRACE_ID.get()
        if drawn is None:
            return self.inner.generate_trace_id()
        _PREDRAWN_TRACE_ID.set(None)
        return drawn

    def is_trace_id_random(self) -> bool:
        return self.inner.is_trace_id_random()

    @staticmethod
    def drawn_for_next_root(trace_id: int) -> Any:
        """Hand ``trace_id`` to the next root span of the current context; the token to
        pass to :meth:`forget` once the work that should have taken it is over."""
        return _PREDRAWN_TRACE_ID.set(trace_id)

    @staticmethod
    def forget(token: Any) -> None:
        _PREDRAWN_TRACE_ID.reset(token)


def known_unsampled(context: otel_context.Context | None = None) -> bool:
    """Whether the current span (of ``context``) belongs to a trace known to be unsampled."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def _unsampled_span(context: otel_context.Context | None = None) -> Span | None:
    """The current span (of ``context``) if it is known to be unsampled and records
    nothing, else None."""
    span = trace.get_current_span(context)
    span_context = span.get_span_context()
    if span_context.is_valid and not span_context.trace_flags.sampled and not span.is_recording():
        return span
    return None


class UnsampledSpansAreTheirParent(trace.Tracer):
    """The SDK's tracer, except that a span started under a span known to be unsampled
    (that records nothing) is that span, as the API's ``NoOpTracer`` does for every span
    under a non-recording one, and is made current by being current already.

    A parent-based sampler (:attr:`Telemetry.skips_unsampled`) drops every child of an
    unsampled span: the SDK would ask it, draw a span id, build a ``NonRecordingSpan``
    and attach a context, for a span no one records, 17 a confirmed order. What is
    observable is unchanged: log lines carry the trace id, calls downstream a
    ``traceparent`` of that trace with flags ``00`` (and the id of the span that is
    current: the request's), attributes and events set on the span go nowhere. Any
    other parent, and a new trace, go to the SDK's tracer.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Span:
        unsampled = _unsampled_span(context)
        if unsampled is not None:
            return unsampled
        return self.tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(  # type: ignore[override]  # the API's is a generator function
        self,
        name: str,
        context: otel_context.Context | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> AbstractContextManager[Span]:
        if context is None and (unsampled := _unsampled_span()) is not None:
            return nullcontext(unsampled)
        return self.tracer.start_as_current_span(name, context, *args, **kwargs)


#: FastAPI's own telemetry (``FastAPI(telemetry=...)``), off: the services are traced by
#: opentelemetry-instrumentation-fastapi, which is what our users run. FastAPI steps aside
#: for it only when it finds the instrumentation's middleware by walking its stack's
#: ``.app`` chain, which :class:`UnsampledFastPath` leads around; it then added a second
#: SERVER span to every request and three ``fastapi.*`` operation spans under it, 33 of
#: the 84 spans of an order (bench/cpu_per_order.py --traced counted them).
FASTAPI_NATIVE_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class UnsampledFastPath:
    """ASGI middleware around the FastAPI instrumentation's: a request whose trace is
    known not to be sampled goes straight to the app's own stack. It is known when the
    caller's ``traceparent`` flags ``00`` (under a sampler that follows its parent) or,
    for a request with no ``traceparent`` (a new trace), when the sampler decides roots
    by their trace id alone (``root_sampler``, see :attr:`Telemetry.root_sampler`): the
    trace id is drawn here and the sampler asked here, as the instrumentation would.

    The OpenTelemetry ASGI middleware would collect the request's attributes, match the
    routes to name a span, start a span that records nothing, build its metrics'
    attribute dicts and parse the target again at the end: about 0.1 ms of CPU per
    request (bench/span_costs.py), more for a root, spent on a decision already made.
    Here the request gets what the instrumentation would have given it: the caller's
    context (``traceparent``, ``tracestate``, baggage), or a new unsampled trace, under a
    non-recording span of its own id, current while the app runs, and the
    ``traceresponse`` header on its response. The HTTP, database and our own spans
    under it are never started: :class:`~common.http.CookielessClient`,
    ``common.db``'s twin engines (or :class:`StatementTracer`) and
    :class:`UnsampledSpansAreTheirParent` skip that work for them.

    Sampled requests, new traces the sampler samples (under the trace id it decided on,
    see :class:`PredrawnTraceIds`), malformed ``traceparent`` headers and the
    instrumentation's excluded URLs take the instrumented stack, which does as it always
    did.
    """

    def __init__(
        self,
        stack: ASGIApp,
        instrumented: OpenTelemetryMiddleware,
        ids: IdGenerator,
        root_sampler: Sampler | None = None,
    ) -> None:
        self.stack = stack
        self.instrumented = instrumented
        self.app = _without_exception_recording(instrumented.app)
        self.ids = ids
        self.root_sampler = root_sampler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Decided synchronously, then one await: each coroutine level costs every request.
        sampled = _traceparent_sampled(scope["headers"]) if scope["type"] == "http" else True
        decided: otel_context.Context | int | None
        if sampled is False:
            decided = self._unsampled_child(scope)
        elif sampled is None and self.root_sampler is not None and not self._excluded(scope):
            decided = self._root(self.root_sampler, scope)
        else:
            decided = None
        if decided is None:
            await self.stack(scope, receive, send)
        elif isinstance(decided, int):  # a sampled root's trace id, for its span to take
            token = PredrawnTraceIds.drawn_for_next_root(decided)
            try:
                await self.stack(scope, receive, send)
            finally:
                PredrawnTraceIds.forget(token)
        else:
            context = decided
            response_propagator = get_global_response_propagator()  # type: ignore[no-untyped-call]

            async def send_with_traceresponse(message: Message) -> None:
                if message["type"] == "http.response.start" and response_propagator is not None:
                    response_propagator.inject(message, context=context, setter=asgi_setter)
                await send(message)

            token = otel_context.attach(context)
            try:
                await self.app(scope, receive, send_with_traceresponse)
            finally:
                otel_context.detach(token)

    def _unsampled_child(self, scope: Scope) -> otel_context.Context | None:
        """The context of a request whose caller did not sample it (None: it did, or its
        ``traceparent`` is malformed)."""
        # The global propagators, as the instrumentation extracts them (tracestate, baggage).
        extracted = propagate.extract(_propagation_headers(scope), getter=asgi_getter)
        parent = trace.get_current_span(extracted).get_span_context()
        if not parent.is_valid or parent.trace_flags.sampled:
            return None
        return self._unrecorded(parent.trace_id, parent.trace_flags, parent.trace_state, extracted)

    def _root(self, sampler: Sampler, scope: Scope) -> otel_context.Context | int:
        """The context of a new trace the sampler drops, or the trace id of one it samples."""
        # Baggage may come without a traceparent; the instrumentation would keep it.
        extracted = propagate.extract(_propagation_headers(scope), getter=asgi_getter)
        trace_id = self.ids.generate_trace_id()
        decision = sampler.should_sample(extracted, trace_id, scope["method"], SpanKind.SERVER)
        if decision.decision.is_sampled():  # type: ignore[no-untyped-call]
            return trace_id
        flags = TraceFlags(TraceFlags.DEFAULT)
        return self._unrecorded(trace_id, flags, decision.trace_state, extracted)

    def _unrecorded(
        self,
        trace_id: int,
        flags: TraceFlags,
        state: TraceState | None,
        extracted: otel_context.Context,
    ) -> otel_context.Context:
        """``extracted`` under a non-recording span of the request's own id in ``trace_id``."""
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=state,
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context), extracted)

    def _excluded(self, scope: Scope) -> bool:
        """A URL the instrumentation leaves alone (EXCLUDED_URLS): no span, no traceresponse."""
        excluded = self.instrumented.excluded_urls
        if excluded is None:
            return False
        _, _, url = get_host_port_url_tuple(scope)  # type: ignore[no-untyped-call]
        return excluded.url_disabled(url)


def _without_exception_recording(app: ASGIApp) -> ASGIApp:
    """The FastAPI instrumentation's inner stack, ``ServerErrorMiddleware(
    ExceptionHandlerMiddleware(the app's own stack))``, without the middle layer, which
    records an exception on the current span when that span records (an unsampled one
    never does): a coroutine level fewer for each unsampled request. Any other shape is
    left as it is."""
    inner: Any = getattr(app, "app", None)
    if (
        isinstance(app, ServerErrorMiddleware)
        and type(inner).__name__ == "ExceptionHandlerMiddleware"
        and type(inner).__module__ == FastAPIInstrumentor.__module__
    ):
        return ServerErrorMiddleware(inner.app, handler=app.handler, debug=app.debug)
    return app


def _propagation_headers(scope: Scope) -> dict[str, Any]:
    """The request's headers that the global propagators read (``traceparent``,
    ``tracestate``, ``baggage``), alone, as a scope for ``asgi_getter``: it decodes every
    header of the scope it is given at each look-up (three a request, with ~10 headers).
    ASGI servers hand header names lowercased (the ASGI spec requires it)."""
    fields = _field_names(propagate.get_global_textmap())
    if fields is None:
        return dict(scope)  # (another configuration than the default: all headers)
    return {"headers": [(name, value) for name, value in scope["headers"] if name in fields]}


@lru_cache(maxsize=4)
def _field_names(textmap: TextMapPropagator) -> frozenset[bytes] | None:
    """The header names ``textmap`` reads, encoded (a composite propagator builds the set
    anew at each look-up); None unless it is made of W3C trace-context and baggage
    propagators alone, whose ``fields`` are all they read: Jaeger's and OT's also read
    baggage from any header of a prefix (``uberctx-``, ``ot-baggage-``)."""
    parts = getattr(textmap, "_propagators", [textmap])  # a CompositePropagator's
    if not all(isinstance(p, (TraceContextTextMapPropagator, W3CBaggagePropagator)) for p in parts):
        return None
    return frozenset(field.lower().encode() for field in textmap.fields)


def _traceparent_sampled(headers: Sequence[tuple[bytes, bytes]]) -> bool | None:
    """A cheap look at the raw ``traceparent``: its flags' sampled bit (True also for a
    header too malformed to read), None without one. The full extraction (and
    validation) follows only for unsampled ones."""
    for name, value in headers:
        if name == b"traceparent":
            try:
                return len(value) < 55 or bool(int(value[-2:], 16) & 1)
            except ValueError:
                return True
    return None


class StatementTracer(EngineTracer):
    """opentelemetry-instrumentation-sqlalchemy's per-engine listeners (a span per
    statement, named by :func:`name_statement_span`), without its connection-pool ones,
    which only feed the ``db.client.connections.usage`` counter: ours is a no-op (the
    services' database metric is :func:`~common.signals.record_operation_durations`), yet
    each checkout and checkin of a connection, one pair per transaction, looked up the
    context twice and built two attribute dicts for it, 4 µs a transaction, sampled or not.

    With ``skips_unsampled`` (:attr:`Telemetry.skips_unsampled`), a statement of a trace
    known to be unsampled starts no span: the instrumentation would build its attributes
    and a span that records nothing. Decided in the instrumentation's own listener, not
    in listeners of ours around it (instrumentation suppressed before the statement,
    restored after it): those were three more listeners and a context attached and
    detached for every statement."""

    _POOL_EVENTS = frozenset({"connect", "close", "checkout", "checkin"})

    def __init__(
        self, tracer: trace.Tracer, engine: Engine, connections_usage: Any, skips_unsampled: bool
    ) -> None:
        self.skips_unsampled = skips_unsampled  # read by the listeners registered below
        super().__init__(tracer, engine, connections_usage)  # type: ignore[no-untyped-call]

    @classmethod
    def _register_event_listener(
        cls, target: Any, identifier: str, func: Callable[..., Any], *args: Any, **kw: Any
    ) -> None:
        if identifier not in cls._POOL_EVENTS:
            super()._register_event_listener(target, identifier, func, *args, **kw)  # type: ignore[no-untyped-call]

    def _before_cur_exec(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        params: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        if self.skips_unsampled and known_unsampled():
            return statement, params
        found: tuple[str, Any] = super()._before_cur_exec(  # type: ignore[no-untyped-call]
            conn, cursor, statement, params, context, executemany
        )
        name_statement_span(conn, cursor, statement, params, context, executemany)
        return found


def name_statement_span(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """Name a database span ``SELECT products``: operation and table, per the stable
    database semantic conventions (``db.operation.name``, ``db.collection.name``).

    opentelemetry-instrumentation-sqlalchemy names it after the first word of the SQL and
    the database name, which for SQLite is the file path (``SELECT .data/inventory.db``,
    the same on every statement), and puts both words in ``db.operation.name``. SQLAlchemy
    already knows the table: the compiled statement's state holds the DML target or the
    FROM list, so nothing is parsed. A statement on several tables, or raw SQL, keeps the
    instrumentation's name (the conventions' fallback target is the database).
    """
    span = getattr(context, "_otel_span", None)  # where the EngineTracer keeps it
    if span is None or not span.is_recording():
        return
    name, attributes = _statement_naming(statement, context)
    if name is not None:
        span.update_name(name)
    if attributes:
        span.set_attributes(attributes)


#: Where a compiled statement keeps its span's name and attributes (see _statement_naming).
_NAMING = "_ordersim_span_naming"
_StatementNaming = tuple[str | None, dict[str, str]]


def _statement_naming(statement: str, context: Any) -> _StatementNaming:
    """The span name (None: the instrumentation's stays) and attributes of ``statement``,
    worked out once per compiled statement: SQLAlchemy compiles each statement shape once
    and hands every execution of it the same ``context.compiled`` (its compiled cache), so
    the services' statements, all Core constructs, are each named once, not at every
    execution (7 of the 64 µs a statement's span cost, bench/span_costs.py)."""
    compiled = getattr(context, "compiled", None)
    naming: _StatementNaming | None = getattr(compiled, _NAMING, None)
    if naming is not None:
        return naming
    operation, table = statement_target(statement, context)
    if not operation:
        naming = (None, {})
    elif table is None:
        naming = (None, {DB_OPERATION_NAME: operation})
    else:
        naming = (f"{operation} {table}", {DB_OPERATION_NAME: operation, DB_COLLECTION_NAME: table})
    if compiled is not None:
        setattr(compiled, _NAMING, naming)
    return naming


def statement_target(statement: str, context: Any) -> tuple[str, str | None]:
    """The operation (the statement's first word) and the one table it works on, or None
    (several tables, or raw SQL): what names its span and labels its duration."""
    words = statement.split(maxsplit=1)
    operation = words[0] if words else ""
    state = getattr(getattr(context, "compiled", None), "compile_state", None)
    table = getattr(state, "dml_table", None)
    if table is None:
        froms = getattr(state, "froms", None)
        table = froms[0] if froms and len(froms) == 1 else None
    return operation, table.fullname if isinstance(table, TableClause) else None


def _enable_stable_semconv() -> None:
    # Must happen before the first instrumentation call: the opt-in is read once per process.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")


def otlp_protocol(environ: Mapping[str, str] = os.environ, signal: str = "TRACES") -> str:
    """The OTLP transport the environment asks for: ``grpc`` or ``http/protobuf`` (the
    default), the signal's own variable (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` …) first,
    as the specification reads them."""
    value = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or environ.get(
        OTEL_EXPORTER_OTLP_PROTOCOL, ""
    )
    protocol = value.strip().lower() or "http/protobuf"
    if protocol not in ("grpc", "http/protobuf"):
        logger.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported by the Python exporters; "
            "using http/protobuf (or set grpc)",
            value,
        )
        return "http/protobuf"
    return protocol


def _otlp_exporter() -> SpanExporter:
    # Each exporter reads its own OTEL_EXPORTER_OTLP_* endpoint, headers, compression, timeout.
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _exporter_processors() -> Sequence[SpanProcessor]:
    names = {n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    processors: list[SpanProcessor] = []
    for name in sorted(names - {"", "none"}):
        if name == "otlp":
            processors.append(BatchSpanProcessor(_otlp_exporter()))
        elif name == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            logger.warning(
                "OTEL_TRACES_EXPORTER=%s is not supported; use otlp, console or none", name
            )
    return processors


def build_resource(service_name: str) -> Resource:
    """The service's resource: its name and a fresh ``service.instance.id`` (a UUID, as the
    semantic conventions recommend), unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    set them."""
    defaults = {SERVICE_NAME: service_name, SERVICE_INSTANCE_ID: str(uuid.uuid4())}
    from_env = OTELResourceDetector().detect().attributes
    created = Resource.create({k: v for k, v in defaults.items() if k not in from_env})
    return HashedOnceResource(created.attributes, created.schema_url)


class HashedOnceResource(Resource):
    """A resource that computes its hash once: the SDK's serialises every attribute to
    JSON at each ``hash()``, and the OTLP exporter hashes the resource of every span it
    encodes (it groups a batch's spans by resource, a dict key): 3.3 µs a span, a sixth of
    encoding it (bench/span_costs.py, bench/upstream_span_costs.py). Its attributes cannot
    change after it is made; it equals, and hashes like, a plain ``Resource`` of the same
    attributes."""

    def __init__(self, attributes: ResourceAttributes, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def setup_telemetry(
    service_name: str,
    *,
    processors: Sequence[SpanProcessor] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    log_processors: Sequence[LogRecordProcessor] | None = None,
) -> Telemetry:
    """Build the telemetry of one service from the environment.

    ``processors`` replaces the exporters named by the environment (tests pass a
    SimpleSpanProcessor over an InMemorySpanExporter); so do ``metric_readers`` and
    ``log_processors`` for the other two signals. Tests that pass ``processors`` alone
    export no logs and no metrics.
    """
    if sdk_disabled():
        return Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)
    _enable_stable_semconv()
    if get_global_response_propagator() is None:  # type: ignore[no-untyped-call]
        # W3C Trace Context Level 2 `traceresponse` header on every server response.
        set_global_response_propagator(TraceResponsePropagator())  # type: ignore[no-untyped-call]

    disabled = disabled_instrumentations()
    existing = trace.get_tracer_provider()
    if isinstance(existing, SdkTracerProvider):
        # Already configured by opentelemetry-instrument (or the embedding program).
        telemetry = Telemetry(
            existing, owns_provider=False, disabled=disabled, signals=global_signals()
        )
    else:
        resource = build_resource(service_name)
        provider = SdkTracerProvider(resource=resource, id_generator=PredrawnTraceIds())
        for processor in _exporter_processors() if processors is None else processors:
            provider.add_span_processor(processor)
        signals = _signals(resource, processors is not None, metric_readers, log_processors)
        telemetry = Telemetry(provider, disabled=disabled, signals=signals)

    if telemetry.instruments("logging", LoggingInstrumentor()):
        # Adds otelTraceID / otelSpanID to every log record (see LOG_FORMAT); no log export.
        LoggingInstrumentor().instrument(
            tracer_provider=telemetry.tracer_provider,
            inject_trace_context=True,
            enable_log_auto_instrumentation=False,
        )
    return telemetry


def _signals(
    resource: Resource,
    in_test: bool,
    metric_readers: Sequence[MetricReader] | None,
    log_processors: Sequence[LogRecordProcessor] | None,
) -> Signals:
    if in_test:  # spans to the test's processors, and the rest only where it asks
        metric_readers, log_processors = metric_readers or [], log_processors or []
    return setup_signals(resource, metric_readers=metric_readers, log_processors=log_processors)


def configure_logging(level: str) -> None:
    """Log to stderr with the trace and span id of the current span on every line."""
    fmt = (
        LOG_FORMAT
        if LoggingInstrumentor().is_instrumented_by_opentelemetry
        else ("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logging.basicConfig(level=level.upper(), format=fmt, force=True)
    logging.getLogger("uvicorn.access").addFilter(_NotHealthProbe())


class _NotHealthProbe(logging.Filter):
    """Drop access-log lines of health probes (``ordersim up`` and compose poll them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/healthz" not in record.getMessage()
