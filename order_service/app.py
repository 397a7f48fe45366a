"""Build the order-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress

import httpx
from fastapi import FastAPI
from opentelemetry.instrumentation.utils import suppress_instrumentation

from common.app import create_service_app
from common.db import create_engine, create_tables
from common.http import RetryPolicy, Timeouts, create_http_client
from common.scenarios import Scenario
from common.telemetry import Telemetry
from inventory_service.client import InventoryClient
from order_service import admin, storage
from order_service.background import Detached
from order_service.backlog import Backlog, Backoff, Clock, CompensationWorker, log_unexpected
from order_service.flow import OrderFlow
from order_service.metrics import OrderMetrics
from order_service.routes import router
from order_service.settings import OrderSettings
from payment_service.client import PaymentClient
from shipping_service.client import ShippingClient

#: Seconds a stopping order service waits for its detached work (a 202'd order's steps,
#: notifications) before cancelling it. A 202'd order cut short stays pending, and the
#: compensation worker fails it as abandoned and undoes it.
DETACHED_GRACE = 2.0


def create_app(
    settings: OrderSettings,
    telemetry: Telemetry,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    clock: Clock = storage.now,
) -> FastAPI:
    """``transports`` maps "inventory", "payment", "shipping" to a transport, and ``clock``
    is the compensation backlog's (tests)."""
    transports = transports or {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.resolved_database_url, telemetry)
            stack.push_async_callback(engine.dispose)
            with suppress_instrumentation():
                await create_tables(engine, storage.metadata)

            timeouts = Timeouts(connect=settings.connect_timeout, call=settings.call_timeout)

            def http(name: str, url: str) -> httpx.AsyncClient:
                client = create_http_client(
                    url,
                    telemetry,
                    timeouts=timeouts,
                    transport=transports.get(name),
                    connection_lifetime=settings.connection_lifetime,
                )
                stack.push_async_callback(client.aclose)
                return client

            timeout, retry = settings.call_timeout, RetryPolicy(retries=settings.call_retries)
            inventory = InventoryClient(
                http("inventory", settings.inventory_url), call_timeout=timeout, retry=retry
            )
            payment = PaymentClient(
                http("payment", settings.payment_url), call_timeout=timeout, retry=retry
            )
            shipping = ShippingClient(
                http("shipping", settings.shipping_url), call_timeout=timeout, retry=retry
            )
            tracer = telemetry.tracer(settings.service_name)
            metrics = OrderMetrics(telemetry.signals.meter(settings.service_name))
            # Closed first (the stack unwinds in reverse): its jobs still use the clients.
            detached = Detached(tracer)
            stack.push_async_callback(detached.close, DETACHED_GRACE)
            backlog = Backlog(
                engine,
                Backoff(
                    base=settings.compensation_backoff_base, cap=settings.compensation_backoff_cap
                ),
                clock,
            )
            flow = OrderFlow(
                engine,
                inventory,
                payment,
                shipping,
                tracer,
                deadline=settings.order_deadline,
                backlog=backlog,
                detached=detached,
                sequential_calls=settings.planted(Scenario.SEQUENTIAL_CALLS),
                metrics=metrics,
            )
            compensations = CompensationWorker(
                backlog,
                flow.undo_actions(),
                tracer,
                abandon_after=settings.abandon_after,
                warn_at=settings.compensation_backlog_warning,
                poll_interval=settings.compensation_poll_interval,
                metrics=metrics,
                lease=settings.compensation_lease,
            )
            app.state.engine = engine
            app.state.tracer = tracer
            app.state.flow = flow
            app.state.backlog = backlog
            app.state.detached = detached
            app.state.compensations = compensations

            worker = asyncio.create_task(compensations.run(), name="retry-compensations")
            worker.add_done_callback(log_unexpected)
            try:
                yield
            finally:
                worker.cancel()
                with suppress(asyncio.CancelledError):
                    await worker

    return create_service_app(
        title="order-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=lifespan,
        routers=[router, admin.router],
        secret_fields={"payment"},  # no card number or CVC echoed back in a 422
    )
