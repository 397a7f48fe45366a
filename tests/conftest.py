"""The four services wired together in one process, with one in-memory span exporter.

Each app gets its own TracerProvider (its own service.name) over the shared exporter;
order-service reaches the others through httpx.ASGITransport, optionally wrapped to
make a downstream service down or slow.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
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
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.app import create_app as create_shipping
from shipping_service.settings import ShippingSettings
from tests.postgres import create_databases, throwaway_cluster
from tests.processes import clean_env, free_port

TransportWrapper = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]


class ProcessBoundary(httpx.AsyncBaseTransport):
    """Calls an in-process ASGI app as if it ran in another process.

    ASGITransport runs the app in the caller's task. Two things would leak across that
    boundary that never cross a real one: the caller's contextvars (its current CLIENT
    span, so the server would make an INTERNAL span instead of a SERVER span), and the
    caller's cancellation (a client timing out would cancel the server's handler halfway
    through a database transaction). So each request runs in a task of its own, with an
    empty context, and a caller that gives up is a client that disconnected: the server
    hears ``http.disconnect`` and otherwise finishes its work, as uvicorn's would.
    ``drain`` waits for the requests still running.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.running: set[asyncio.Task[httpx.Response]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gone = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def receive_until_gone() -> Any:
                message = asyncio.ensure_future(receive())
                disconnect = asyncio.ensure_future(gone.wait())
                await asyncio.wait((message, disconnect), return_when=asyncio.FIRST_COMPLETED)
                disconnect.cancel()
                if message.done():
                    return message.result()
                message.cancel()
                return {"type": "http.disconnect"}

            await self.app(scope, receive_until_gone, send)

        transport = httpx.ASGITransport(app=app)
        served = asyncio.create_task(
            transport.handle_async_request(request), context=contextvars.Context()
        )
        self.running.add(served)
        served.add_done_callback(self.running.discard)
        try:
            return await asyncio.shield(served)
        except asyncio.CancelledError:
            gone.set()
            raise

    async def drain(self) -> None:
        if self.running:
            await asyncio.wait(self.running, timeout=30)


class LiveTransport(httpx.AsyncBaseTransport):
    """Calls an in-process ASGI app the way a client over the network does, response
    streamed: ``httpx.ASGITransport`` hands the response over only once the app has
    finished, so an event stream would never return and no client could leave halfway.

    As with :class:`ProcessBoundary`, each request runs in a task of its own with an
    empty context. The response is returned at ``http.response.start`` and its body
    arrives as the app sends it. A client that goes away — it closes the response before
    the end, or is cancelled while waiting for the head — is a disconnect: the app's
    ``receive`` answers ``http.disconnect`` from then on, as uvicorn's does, and what it
    sends after that is dropped. ``drain`` waits for the requests still running.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.running: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
        }
        head: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        gone = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if gone.is_set():
                return
            if message["type"] == "http.response.start":
                head.set_result(message)
            elif message["type"] == "http.response.body":
                chunks.put_nowait(message.get("body", b""))
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def serve() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not head.done():
                    head.set_exception(exc)
                raise
            finally:
                chunks.put_nowait(None)
                if not head.done():
                    head.set_exception(RuntimeError("the app sent no response"))

        served = asyncio.create_task(serve(), context=contextvars.Context())
        self.running.add(served)
        served.add_done_callback(self.running.discard)
        try:
            start = await asyncio.shield(head)
        except asyncio.CancelledError:
            gone.set()
            # The client left: what the app answers (or why it answered nothing) is nobody's.
            head.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_LiveBody(chunks, gone)
        )

    async def drain(self) -> None:
        if self.running:
            await asyncio.wait(self.running, timeout=30)


class _LiveBody(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], gone: asyncio.Event) -> None:
        self._chunks = chunks
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()  # before the end: the client hangs up; after: nothing to hear


class FaultyTransport(httpx.AsyncBaseTransport):
    """A downstream service that is down (connection refused) or slow, on some paths or all.

    ``enabled`` can be flipped to bring the service back.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        down: bool = False,
        delay: float = 0.0,
        paths: tuple[str, ...] = (),
    ) -> None:
        self.inner = inner
        self.down = down
        self.delay = delay
        self.paths = paths
        self.enabled = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.enabled and (not self.paths or any(p in path for p in self.paths)):
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


class Gate:
    """Holds every request to ``path`` until the test opens the gate::

    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        ...
        await gate.reached()  # a charge is being held
        gate.open()
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.arrivals = 0
        self._arrived = asyncio.Event()
        self._opened = asyncio.Event()

    def wrap(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        gate = self

        class Held(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if request.url.path == gate.path:
                    gate.arrivals += 1
                    gate._arrived.set()
                    await gate._opened.wait()
                return await inner.handle_async_request(request)

        return Held()

    async def reached(self, count: int = 1) -> None:
        """Wait (at most 30 s, then fail) until ``count`` requests have reached the gate."""
        async with asyncio.timeout(30):
            while self.arrivals < count:
                self._arrived.clear()
                await self._arrived.wait()

    def open(self) -> None:
        self._opened.set()


def down(*paths: str) -> TransportWrapper:
    return lambda inner: FaultyTransport(inner, down=True, paths=paths)


def slow(delay: float, *paths: str) -> TransportWrapper:
    return lambda inner: FaultyTransport(inner, delay=delay, paths=paths)


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
        return list(self.exporter.get_finished_spans())

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


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@asynccontextmanager
async def in_process_system(
    tmp_path: Path,
    exporter: InMemorySpanExporter,
    wrap: dict[str, TransportWrapper] | None = None,
    databases: dict[str, str] | None = None,
    scenarios: Collection[str] = (),
    processors: Collection[SpanProcessor] = (),
    signals: bool = False,
    **order_settings: Any,
) -> AsyncIterator[System]:
    """The four apps in this process, each with its own provider over ``exporter``.

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
    logs = InMemoryLogRecordExporter() if signals else None
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

    apps = {
        "inventory": create_inventory(
            InventorySettings(
                data_dir=tmp_path, database_url=urls.get("inventory"), scenarios=names
            ),
            telemetry("inventory-service"),
        ),
        "payment": create_payment(
            PaymentSettings(data_dir=tmp_path, database_url=urls.get("payment"), scenarios=names),
            telemetry("payment-service"),
        ),
        "shipping": create_shipping(
            ShippingSettings(data_dir=tmp_path, database_url=urls.get("shipping"), scenarios=names),
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
        OrderSettings(
            data_dir=tmp_path, database_url=urls.get("order"), scenarios=names, **settings
        ),
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
            exporter=exporter,
            apps=apps,
            transports=transports,
            boundaries=boundaries,
            clock=clock,
            metric_readers=readers,
            logs=logs,
            **clients,
        )


@pytest.fixture
def start_system(tmp_path: Path, exporter: InMemorySpanExporter) -> Callable[..., Any]:
    """``async with start_system(wrap={"payment": down("/charges")}) as system: ...``"""
    return functools.partial(in_process_system, tmp_path, exporter)


@pytest.fixture
async def system(start_system: Callable[..., Any]) -> AsyncIterator[System]:
    async with start_system() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the whole run (``make test`` installs it)."""
    try:
        with throwaway_cluster() as base_url:
            yield base_url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(params=["sqlite", "postgres"])
async def any_system(
    request: pytest.FixtureRequest, start_system: Callable[..., Any]
) -> AsyncIterator[System]:
    """The in-process system on SQLite and again on PostgreSQL: one code path for both."""
    databases = None
    if request.param == "postgres":
        base_url = request.getfixturevalue("postgres_cluster")
        suffix = uuid.uuid4().hex[:8]
        names = {s: f"{s}_{suffix}" for s in ("order", "inventory", "payment", "shipping")}
        urls = await create_databases(base_url, list(names.values()))
        databases = {service: urls[name] for service, name in names.items()}
    # These tests are about what concurrent orders do to the data, not about timeouts: on a
    # busy 2-core machine 30 orders at once can take longer than the 2 s call timeout the
    # other tests use, and a 503 there would be the machine's speed, not a finding.
    async with start_system(databases=databases) as running:
        running.backend = request.param
        yield running


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")}


@pytest.fixture
def up_env(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    env = clean_env()
    env.update({f"{name}_SERVICE_PORT": str(port) for name, port in ports.items()})
    env["ORDERSIM_DATA_DIR"] = str(tmp_path / "data")
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    return env


@pytest.fixture(autouse=True)
def no_context_detach_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A context token reset in the wrong task logs "Failed to detach context": never allowed."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    yield
    detach_errors = [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert not detach_errors, detach_errors[0].getMessage()


@pytest.fixture
def query_app(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    """The viewer's query API and pages over an empty store, in process."""
    from trace_viewer.query import create_query_app
    from trace_viewer.store import Limits, TraceStore

    store = TraceStore(tmp_path / "traces.db", Limits(100, 10**9))
    app = create_query_app(store)
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer")
    store.close()
