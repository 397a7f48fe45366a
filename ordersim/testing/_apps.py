"""Any set of FastAPI apps in one process, calling each other over httpx, traced.

Public through :mod:`ordersim.testing`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersim.testing._transports import ProcessBoundary, TransportWrapper
from ordersim.testing._tree import SpanTree


class AppContext:
    """What an app factory given to :func:`traced_apps` gets: its service name, its own
    tracer provider, and the way to the other apps::

        def create_front(ctx: AppContext) -> FastAPI:
            app = FastAPI()
            stock = ctx.client("stock")  # traced; base_url http://stock

            @app.get("/quote")
            async def quote() -> dict[str, int]:
                return (await stock.get("/stock")).json()

            return app
    """

    def __init__(self, name: str, apps: TracedApps) -> None:
        self.name = name
        #: A provider of this app's own (``service.name`` = its name) over the exporter.
        self.tracer_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(apps.exporter))
        self._apps = apps

    def transport(self, service: str) -> httpx.AsyncBaseTransport:
        """An httpx transport to ``service``, across a :class:`ProcessBoundary` (for an app
        that builds and instruments its own client)."""
        return _Route(self._apps, service)

    def client(self, service: str, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client to ``service`` (``base_url`` ``http://<service>``), its calls
        traced with this app's provider; closed when the apps stop. ``kwargs`` go to
        :class:`httpx.AsyncClient`."""
        client = httpx.AsyncClient(
            transport=self.transport(service), base_url=f"http://{service}", **kwargs
        )
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.tracer_provider)
        self._apps._clients.append(client)
        return client


class TracedApps:
    """The apps :func:`traced_apps` runs: a client per app for the test, and their spans."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter
        self.apps: dict[str, Any] = {}
        self.contexts: dict[str, AppContext] = {}
        self.boundaries: dict[str, ProcessBoundary] = {}
        self.transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._clients: list[httpx.AsyncClient] = []

    def client(self, service: str, **kwargs: Any) -> httpx.AsyncClient:
        """An (untraced) httpx client to ``service``, as the test's own caller, across a
        process boundary; closed when the apps stop."""
        client = httpx.AsyncClient(
            transport=_Route(self, service, wrapped=False),
            base_url=f"http://{service}",
            **kwargs,
        )
        self._clients.append(client)
        return client

    def spans(self) -> list[ReadableSpan]:
        """Every span finished so far, of every app."""
        return list(self.exporter.get_finished_spans())

    def tree(self, trace_id: str | None = None) -> SpanTree:
        """The spans finished so far as a :class:`SpanTree`: of one trace, or all of them."""
        tree = SpanTree(self.exporter.get_finished_spans())
        return tree if trace_id is None else tree.trace(trace_id)

    async def drain(self) -> None:
        """Wait for the requests still running in the apps (their callers may have left)."""
        for boundary in self.boundaries.values():
            await boundary.drain()


class _Route(httpx.AsyncBaseTransport):
    """Resolves the target app when the request is sent: a factory may ask for the way to
    an app that is created after it."""

    def __init__(self, apps: TracedApps, service: str, *, wrapped: bool = True) -> None:
        self._apps = apps
        self._service = service
        self._wrapped = wrapped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        routes = self._apps.transports if self._wrapped else self._apps.boundaries
        try:
            transport = routes[self._service]
        except KeyError:
            raise httpx.ConnectError(
                f"no app named {self._service!r} (there are {sorted(routes)})", request=request
            ) from None
        return await transport.handle_async_request(request)


AppFactory = Callable[[AppContext], Any]


@asynccontextmanager
async def traced_apps(
    factories: Mapping[str, AppFactory],
    *,
    exporter: InMemorySpanExporter | None = None,
    wrap: Mapping[str, TransportWrapper] | None = None,
) -> AsyncIterator[TracedApps]:
    """Run FastAPI (or any ASGI) apps in this process, wired to each other over httpx, each
    traced under its own ``service.name`` into one in-memory exporter::

        async with traced_apps({"front": create_front, "stock": create_stock}) as apps:
            response = await apps.client("front").get("/quote")
            tree = apps.tree()
            call = tree.find("GET", service="front", kind=SpanKind.CLIENT)
            tree.assert_child(call, tree.find("GET /stock", kind=SpanKind.SERVER))

    ``factories`` maps each service name to a function that takes an :class:`AppContext`
    and returns the app; its calls to another app go through ``ctx.client(name)`` or
    ``ctx.transport(name)``. A FastAPI app the factory has not instrumented is instrumented
    here with the app's own provider (one SERVER span per request, without the ASGI
    ``receive``/``send`` spans). Each request crosses a :class:`ProcessBoundary`: it runs in
    a task of its own with an empty context, so the callee starts a SERVER span from the
    ``traceparent`` header alone, as in another process. ``wrap`` breaks the way to an app
    from the others (``{"stock": down("/stock")}``); the test's own ``apps.client(name)``
    still reaches it. Lifespans run in the order given and stop in reverse,
    after the requests still running have finished.
    """
    running = TracedApps(exporter if exporter is not None else InMemorySpanExporter())
    wrap = wrap or {}
    for name, factory in factories.items():
        context = AppContext(name, running)
        app = factory(context)
        if isinstance(app, FastAPI) and not getattr(
            app, "_is_instrumented_by_opentelemetry", False
        ):
            FastAPIInstrumentor.instrument_app(
                app, tracer_provider=context.tracer_provider, exclude_spans=["receive", "send"]
            )
        running.contexts[name] = context
        running.apps[name] = app
    async with AsyncExitStack() as stack:
        # Exits run last first: the requests still running end, then the lifespans (in
        # reverse), then the clients the apps were using close.
        stack.push_async_callback(_close, running._clients)
        for name, app in running.apps.items():
            manager = await stack.enter_async_context(LifespanManager(app))
            boundary = ProcessBoundary(manager.app)
            running.boundaries[name] = boundary
            running.transports[name] = wrap[name](boundary) if name in wrap else boundary
        stack.push_async_callback(running.drain)
        yield running


async def _close(clients: list[httpx.AsyncClient]) -> None:
    for client in clients:
        await client.aclose()
