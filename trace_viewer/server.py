"""Run the intake (4318) and the query API + UI (16686) in one process, one event loop."""

from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from trace_viewer.intake import create_intake_app
from trace_viewer.query import create_query_app
from trace_viewer.settings import ViewerSettings
from trace_viewer.store import Limits, TraceStore

logger = logging.getLogger("trace_viewer")


class ByPort:
    """Dispatch each connection to the app of the port it arrived on.

    uvicorn serves several sockets from one server, so both ports share one event loop,
    one store and one set of signal handlers.
    """

    def __init__(self, apps: dict[int, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to start: the store is opened before
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        server = scope.get("server") or ("", 0)
        await self.apps[server[1]](scope, receive, send)


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
    except OSError as exc:
        raise SystemExit(f"trace viewer: cannot listen on {settings.host}: {exc}") from None
    otlp_port, ui_port = (s.getsockname()[1] for s in sockets)
    store = TraceStore(settings.database, Limits(settings.max_traces, settings.max_bytes))
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-store-writer")
    app = ByPort(
        {
            otlp_port: create_intake_app(store, writer, settings.max_body_bytes),
            ui_port: create_query_app(store),
        }
    )
    logger.info("OTLP/HTTP intake on http://%s:%d/v1/traces", settings.host, otlp_port)
    logger.info("trace viewer on http://%s:%d", settings.host, ui_port)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        writer.shutdown(wait=True)
        store.close()
