"""The pieces of a service app that are the same for all four: health, limits, errors, tracing."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import at_start_up, create_engine, create_tables
from common.errors import error_responses, install_error_handlers
from common.faults import FaultState, install_faults
from common.input import StrictBody
from common.settings import ServiceSettings
from common.telemetry import (
    FASTAPI_NATIVE_TELEMETRY_OFF,
    Telemetry,
    configure_logging,
    setup_telemetry,
)

S = TypeVar("S", bound=ServiceSettings)
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    title: str,
    settings: ServiceSettings,
    telemetry: Telemetry,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    secret_fields: Collection[str] = (),
) -> FastAPI:
    """A FastAPI app with /healthz, strict JSON bodies (415) of bounded size (413), typed
    errors, fault injection (``app.state.faults``, /admin/faults), and tracing."""
    limit = settings.max_body_bytes
    faults = FaultState(settings.faults)
    app = FastAPI(
        title=title,
        telemetry=FASTAPI_NATIVE_TELEMETRY_OFF,
        lifespan=_sharing_faults(lifespan, faults, settings.fault_sync_interval),
        description=f"Request bodies are JSON (`Content-Type: application/json`) of at most "
        f"{limit} bytes.",
    )
    app.state.settings = settings
    app.state.telemetry = telemetry

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str | int]:
        """Liveness: the process is up and its lifespan has started; ``pid`` says which
        process of the service answered (``ordersim up --replicas`` waits for each)."""
        return {"status": "ok", "service": settings.service_name, "pid": os.getpid()}

    # Any request may carry a body, so any route may answer these two.
    body_errors = error_responses(
        {
            413: f"The body is larger than {limit} bytes (`limit_bytes` in the body).",
            415: "The body is not JSON: send `Content-Type: application/json`.",
        }
    )
    for router in routers:
        app.include_router(router, responses=body_errors)
    install_error_handlers(app, secret_fields=secret_fields)
    install_faults(app, faults)  # inside the server span: instrumented after
    app.add_middleware(StrictBody, max_bytes=limit)
    telemetry.instrument_app(app)
    return app


def _sharing_faults(lifespan: Lifespan, faults: FaultState, interval: float) -> Lifespan:
    """``lifespan``, and in it the fault rules kept in the service's database, shared by
    all its replicas (the lifespan puts the engine on ``app.state.engine``)."""

    @asynccontextmanager
    async def sharing(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app), faults.shared(app.state.engine, interval=interval):
            yield

    return sharing


def database_lifespan(
    settings: ServiceSettings,
    telemetry: Telemetry,
    metadata: MetaData,
    *,
    on_start: Callable[[AsyncEngine], Awaitable[None]] | None = None,
) -> Lifespan:
    """The lifespan of a service whose only resource is its database.

    It puts ``app.state.engine`` and ``app.state.tracer`` in place for
    :mod:`common.deps`.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url, telemetry)
        with suppress_instrumentation():  # start-up DDL is not part of any request's trace
            await create_tables(engine, metadata)
            if on_start is not None:
                await at_start_up(lambda: on_start(engine))
        app.state.engine = engine
        app.state.tracer = telemetry.tracer(settings.service_name)
        try:
            yield
        finally:
            await engine.dispose()

    return lifespan


def serve(
    app_factory: Callable[[S, Telemetry], FastAPI],
    settings: S,
    telemetry: Telemetry | None = None,
) -> None:
    """Run one service alone (``python -m <package>``) until SIGINT/SIGTERM; ``telemetry``
    is built from the OTEL_* variables unless given (bench/seed_service.py gives its own)."""
    if telemetry is None:
        telemetry = setup_telemetry(settings.service_name)
    if telemetry.owns_provider:
        # One service per process here, so user code calling trace.get_tracer() gets ours.
        trace.set_tracer_provider(telemetry.tracer_provider)
        metrics.set_meter_provider(telemetry.signals.meter_provider)
    configure_logging(settings.log_level)
    telemetry.signals.export_logs_of()  # every logger's records, with their trace context
    app = app_factory(settings, telemetry)
    logging.getLogger(settings.service_name).info("listening on %s", settings.base_url)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; with the default
    # handler that kills the process before the spans still queued are flushed below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Everything built so far (modules, the app, its routes and pydantic schemas, the SDK)
    # lives as long as the process. Frozen, the cyclic GC no longer walks it: a full
    # collection under load then takes well under a millisecond instead of pausing the
    # event loop, and every request in flight, for 60-90 ms (bench/gc_pauses.py). Tracing
    # allocates more, so it met those pauses twice as often; they were most of the p99
    # that bench/overhead.py measured at 100 % sampling.
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(server_config(app, settings))
    try:
        server.run(
            sockets=[shared_socket(settings.host, settings.port)] if settings.reuse_port else None
        )
    finally:
        telemetry.shutdown()
    if not server.started:
        sys.exit(3)  # as uvicorn.run does: start-up failed (the log says why)


def server_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """How uvicorn serves a service: uvloop and httptools (both C), no log configuration
    of its own, and proxy headers only from the proxies ``FORWARDED_ALLOW_IPS`` names."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep configure_logging's format (with trace ids)
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
        # X-Forwarded-For/-Proto say who the client was only when a trusted proxy set
        # them; without FORWARDED_ALLOW_IPS (uvicorn's own variable) no proxy is trusted,
        # and the middleware that would read them (on every request) is left out.
        proxy_headers="FORWARDED_ALLOW_IPS" in os.environ,
        # Requests still open then (a hung client, an injected hang) are cancelled, so
        # a service stops within `ordersim up`'s 5 s grace.
        timeout_graceful_shutdown=3,
    )


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT: every process of the service binds
    its own, and the kernel spreads new connections over them (uvicorn's own workers share
    one socket, which a process that stopped cannot leave behind). Only processes of the
    same user share a port this way."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
