"""ordersim's four services in one process, as the project's own tests run them.

Public through :mod:`ordersim.testing`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from common.telemetry import setup_telemetry
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from order_service import storage
from order_service.app import create_app as create_order
from order_service.backlog import CompensationWorker
from order_service.settings import OrderSettings
from ordersim.testing._transports import LiveTransport, ProcessBoundary, TransportWrapper
from ordersim.testing._tree import SpanTree
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.app import create_app as create_shipping
from shipping_service.settings import ShippingSettings


class Clock:
    """The order service's clock in tests: real time plus an offset the test moves on, so
    that a backoff elapses without waiting for it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return storage.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class System:
    """ordersim running in this process (:func:`in_process_system`): a client per service,
    the apps, the exporter every service's spans go to::

        async with in_process_system(tmp_path, InMemorySpanExporter()) as system:
            response = await system.order.post("/orders", json=order)
            tree = system.tree(response.json()["trace_id"])
            tree.assert_overlap(tree.find("reserve_stock"), tree.find("quote_shipping"))
    """

    order: httpx.AsyncClient
    inventory: httpx.AsyncClient
    payment: httpx.AsyncClient
    shipping: httpx.AsyncClient
    exporter: InMemorySpanExporter
    apps: dict[str, FastAPI]
    transports: dict[str, httpx.AsyncBaseTransport]
    boundaries: dict[str, ProcessBoundary]
    #: order-service called as over the network, responses streamed (:class:`LiveTransport`).
    live: httpx.AsyncClient
    clock: Clock = field(default_factory=Clock)
    backend: str = "sqlite"
    #: With ``signals=True``: each service's metrics (by service name), everyone's logs.
    metric_readers: dict[str, InMemoryMetricReader] = field(default_factory=dict)
    logs: InMemoryLogRecordExporter | None = None

    def spans(self) -> list[ReadableSpan]:
        """Every span finished so far, of every service."""
        return list(self.exporter.get_finished_spans())

    def tree(self, trace_id: str | None = None) -> SpanTree:
        """The spans finished so far as a :class:`SpanTree`: of one trace, or all of them."""
        tree = SpanTree(self.exporter.get_finished_spans())
        return tree if trace_id is None else tree.trace(trace_id)

    @property
    def compensations(self) -> CompensationWorker:
        """The order service's compensation worker (its own polls are off in tests unless
        ``compensation_poll_interval`` is given)."""
        worker: CompensationWorker = self.apps["order"].state.compensations
        return worker

    async def retry_compensations(self) -> int:
        """Let every backoff elapse, then one round of retries: how many are still pending."""
        self.clock.advance(self.compensations.backlog.backoff.cap)
        return await self.compensations.retry_due()

    async def drain(self) -> None:
        """Wait for order-service's work after its responses (a 202'd order's steps,
        notifications) and its requests still running over ``live``, then for the
        downstream requests still running (their callers may have gone)."""
        await self.apps["order"].state.detached.join()
        await self.live_transport.drain()
        await self.apps["order"].state.detached.join()
        for boundary in self.boundaries.values():
            await boundary.drain()

    @property
    def live_transport(self) -> LiveTransport:
        transport = self.live._transport
        assert isinstance(transport, LiveTransport)
        return transport

    async def stock(self, *skus: str) -> dict[str, int]:
        response = await self.inventory.get("/products", params={"sku": list(skus)})
        return {p["sku"]: p["stock"] for p in response.json()}

    async def order_count(self) -> int:
        async with self.apps["order"].state.engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one())


@asynccontextmanager
async def in_process_system(
    data_dir: Path,
    exporter: InMemorySpanExporter,
    wrap: dict[str, TransportWrapper] | None = None,
    databases: dict[str, str] | None = None,
    scenarios: Collection[str] = (),
    processors: Collection[SpanProcessor] = (),
    signals: bool = False,
    **order_settings: Any,
) -> AsyncIterator[System]:
    """ordersim's four apps in this process, each with its own TracerProvider (its own
    resource and ``service.name``) over ``exporter``, their lifespans run; order-service
    reaches the others across a :class:`ProcessBoundary`, wrapped by ``wrap`` (``{"payment":
    down("/charges")}``); ``data_dir`` holds their SQLite databases.

    ``databases`` maps a service ("order", "inventory" …) to its database URL;
    ``scenarios`` names the planted bugs every service gets (none by default, whatever
    ORDERSIM_SCENARIOS says); ``processors`` are added to every provider; ``signals``
    gives each service an in-memory metric reader and its package's logs to one in-memory
    log exporter (``System.metric_readers``, ``System.logs``)."""
    wrap = wrap or {}
    names = frozenset(scenarios)
    urls = databases or {}
    processors = [SimpleSpanProcessor(exporter), *processors]

    readers: dict[str, InMemoryMetricReader] = {}
    logs = InMemoryLogRecordExporter() if signals else None  # type: ignore[no-untyped-call]
    detach_logs: list[Callable[[], None]] = []

    def telemetry(name: str) -> Any:
        if not signals:
            return setup_telemetry(name, processors=processors)
        readers[name] = InMemoryMetricReader()
        made = setup_telemetry(
            name,
            processors=processors,
            metric_readers=[readers[name]],
            log_processors=[SimpleLogRecordProcessor(logs)],  # type: ignore[arg-type]
        )
        package = logging.getLogger(name.replace("-", "_"))
        level = package.level
        package.setLevel(logging.INFO)  # what the services log by default
        detach_logs.append(functools.partial(package.setLevel, level))
        detach_logs.append(made.signals.export_logs_of(package.name))
        return made

    # One process per service here: no other replica stores fault rules, so nobody looks
    # for them every second (a look is a database read the test did not ask for).
    common: dict[str, Any] = {
        "data_dir": data_dir,
        "scenarios": names,
        "fault_sync_interval": 3600.0,
    }
    apps = {
        "inventory": create_inventory(
            InventorySettings(database_url=urls.get("inventory"), **common),
            telemetry("inventory-service"),
        ),
        "payment": create_payment(
            PaymentSettings(database_url=urls.get("payment"), **common),
            telemetry("payment-service"),
        ),
        "shipping": create_shipping(
            ShippingSettings(database_url=urls.get("shipping"), **common),
            telemetry("shipping-service"),
        ),
    }
    boundaries = {name: ProcessBoundary(app) for name, app in apps.items()}
    transports = {
        name: wrap[name](boundary) if name in wrap else boundary
        for name, boundary in boundaries.items()
    }
    # The compensation worker polls only when a test asks (it calls the worker's jobs).
    # Calls and orders get all the time a busy machine needs (at 2 s, a load of 10 timed
    # calls out and failed orders at the wrong step); a test about timeouts or deadlines
    # sets its own, and holds the call it times out far longer.
    settings = {
        "call_timeout": 30.0,
        "order_deadline": 60.0,
        "compensation_poll_interval": 3600.0,
        **order_settings,
    }
    clock = Clock()
    apps["order"] = create_order(
        OrderSettings(database_url=urls.get("order"), **common, **settings),
        telemetry("order-service"),
        transports=transports,
        clock=clock,
    )
    async with AsyncExitStack() as stack:
        for detach in detach_logs:
            stack.callback(detach)
        clients = {}
        for name, app in apps.items():
            if name == "order":
                # Stopping in reverse: order-service first, then the requests its callers
                # gave up on finish, then the services they ran in.
                for boundary in boundaries.values():
                    stack.push_async_callback(boundary.drain)
            manager = await stack.enter_async_context(LifespanManager(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app),
                    base_url=f"http://{name}",
                )
            )
            if name == "order":
                live = LiveTransport(manager.app)
                stack.push_async_callback(live.drain)  # before its lifespan ends
                clients["live"] = await stack.enter_async_context(
                    httpx.AsyncClient(transport=live, base_url="http://order")
                )
        yield System(
            order=clients["order"],
            inventory=clients["inventory"],
            payment=clients["payment"],
            shipping=clients["shipping"],
            exporter=exporter,
            apps=apps,
            transports=transports,
            boundaries=boundaries,
            live=clients["live"],
            clock=clock,
            metric_readers=readers,
            logs=logs,
        )
