"""Run the intakes (OTLP/HTTP 4318, OTLP/gRPC 4317) and the query API + UI (16686) in one
process, one event loop."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from grpc import aio
from starlette.types import ASGIApp, Receive, Scope, Send

from trace_viewer.grpc_intake import create_grpc_server
from trace_viewer.intake import create_intake_app
from trace_viewer.query import create_query_app
from trace_viewer.settings import ViewerSettings
from trace_viewer.signal_store import SignalLimits
from trace_viewer.store import Limits, TraceStore

logger = logging.getLogger("trace_viewer")


class ByPort:
    """Dispatch each connection to the app of the port it arrived on.

    uvicorn serves several sockets from one server, so both ports share one event loop,
    one store and one set of signal handlers. The OTLP/gRPC server lives in the same loop:
    the ASGI lifespan starts it and stops it (after uvicorn has stopped taking HTTP
    requests, before uvicorn returns).
    """

    def __init__(
        self,
        apps: dict[int, ASGIApp],
        startup: Callable[[], Awaitable[None]] | None = None,
        shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.apps = apps
        self.startup = startup
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        server = scope.get("server") or ("", 0)
        await self.apps[server[1]](scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            if self.startup is not None:
                await self.startup()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        if self.shutdown is not None:
            await self.shutdown()
        await send({"type": "lifespan.shutdown.complete"})


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run(settings: ViewerSettings) -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sockets = [bind(settings.host, settings.otlp_port), bind(settings.host, settings.ui_port)]
        # gRPC binds its own socket when the loop starts; a busy port is said here, at once.
        bind(settings.host, settings.grpc_port).close()
    except OSError as exc:
        raise SystemExit(f"trace viewer: cannot listen on {settings.host}: {exc}") from None
    otlp_port, ui_port = (s.getsockname()[1] for s in sockets)
    signals = SignalLimits(
        settings.max_log_records,
        settings.max_log_bytes,
        settings.max_metric_points,
        settings.max_metric_bytes,
    )
    store = TraceStore(settings.database, Limits(settings.max_traces, settings.max_bytes, signals))
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-store-writer")
    grpc_server: list[aio.Server] = []

    async def start_grpc() -> None:
        server, port = create_grpc_server(
            store, writer, settings.max_body_bytes, settings.host, settings.grpc_port
        )
        await server.start()
        grpc_server.append(server)
        logger.info("OTLP/gRPC intake on %s:%d", settings.host, port)

    async def stop_grpc() -> None:
        for server in grpc_server:
            await server.stop(grace=2)

    app = ByPort(
        {
            otlp_port: create_intake_app(store, writer, settings.max_body_bytes),
            ui_port: create_query_app(store),
        },
        startup=start_grpc,
        shutdown=stop_grpc,
    )
    logger.info(
        "OTLP/HTTP intake on http://%s:%d/v1/{traces,logs,metrics}", settings.host, otlp_port
    )
    logger.info("trace viewer on http://%s:%d", settings.host, ui_port)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        writer.shutdown(wait=True)
        store.close()
