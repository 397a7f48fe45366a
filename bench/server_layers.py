"""What each layer of a service's server stack costs per request, untraced: the same
request through ASGI apps built up a layer at a time, in this process (no socket, no
uvicorn protocol; ``bench/call_costs.py`` measures those).

    .venv/bin/python bench/server_layers.py [--requests 5000] [--rounds 5]

The request is the one ``bench/call_costs.py`` sends: ``POST /reservations`` with a
two-item JSON body (a pydantic model in, a pydantic model out, 201). The stacks, each
the one before plus one layer:

1. a bare ASGI app (reads the body, sends a fixed answer);
2. FastAPI with the route alone (its own middleware: ServerErrorMiddleware, its
   exception-telemetry and body-limit pass-throughs, ExceptionMiddleware,
   AsyncExitStackMiddleware; routing, body parsing and validation, the response model);
3. + the error handlers (``common.errors.install_error_handlers``);
4. + fault injection without rules (``common.faults.FaultMiddleware``);
5. + the strict body (``common.input.StrictBody``): the service app's own layers, as
   ``common.app.create_service_app`` composes them (which adds /healthz and the fault
   admin routes too: the last stack is that app itself);
6. the service app (``create_service_app``) with the route;
7. the same route taking two dependencies (``EngineDep``, ``TracerDep``), as most do;
8. + uvicorn's ProxyHeadersMiddleware, which uvicorn adds unless ``proxy_headers=False``
   (the services add it only when ``FORWARDED_ALLOW_IPS`` says which proxies to trust).

CPU µs per request (this process), medians of the rounds, and what each layer adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from fastapi import APIRouter, FastAPI
from sqlalchemy import MetaData
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["OTEL_SDK_DISABLED"] = "true"

from asgi_lifespan import LifespanManager  # noqa: E402

from bench.span_costs import post_scope  # noqa: E402
from common.app import create_service_app, database_lifespan  # noqa: E402
from common.deps import EngineDep, TracerDep  # noqa: E402
from common.errors import install_error_handlers  # noqa: E402
from common.faults import FaultMiddleware, FaultState  # noqa: E402
from common.input import StrictBody  # noqa: E402
from common.telemetry import FASTAPI_NATIVE_TELEMETRY_OFF, setup_telemetry  # noqa: E402
from inventory_service.models import ItemRequest, Reservation, ReserveRequest  # noqa: E402
from inventory_service.settings import InventorySettings  # noqa: E402

BODY = (
    ReserveRequest(
        order_id="ord_0123456789abcdef",
        items=[ItemRequest(sku="SKU-0001", quantity=2), ItemRequest(sku="SKU-0002", quantity=1)],
    )
    .model_dump_json()
    .encode()
)
ANSWER = b'{"order_id":"ord_0123456789abcdef","status":"reserved","items":[]}'
#: The headers httpx over aiohttp sends (common.http's clients).
HEADERS = [
    (b"host", b"127.0.0.1:8001"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


async def reserve(body: ReserveRequest) -> Reservation:
    return Reservation(order_id=body.order_id, status="reserved", items=[])


async def reserve_with_dependencies(
    body: ReserveRequest, engine: EngineDep, tracer: TracerDep
) -> Reservation:
    return Reservation(order_id=body.order_id, status="reserved", items=[])


def router_of(endpoint: Callable[..., Any]) -> APIRouter:
    router = APIRouter()
    router.post("/reservations", status_code=201)(endpoint)
    return router


def fastapi_app(*layers: str) -> FastAPI:
    """FastAPI with the route, and ``layers`` of ours added as create_service_app does."""
    app = FastAPI(telemetry=FASTAPI_NATIVE_TELEMETRY_OFF)
    app.include_router(router_of(reserve))
    if "errors" in layers:
        install_error_handlers(app)
    if "faults" in layers:
        app.add_middleware(FaultMiddleware, faults=FaultState())
    if "strict body" in layers:
        app.add_middleware(StrictBody, max_bytes=64 * 1024)
    return app


def service_app(endpoint: Callable[..., Any], data: Path) -> FastAPI:
    settings = InventorySettings(port=8001, data_dir=data)
    telemetry = setup_telemetry(settings.service_name)
    return create_service_app(
        title="bench",
        settings=settings,
        telemetry=telemetry,
        lifespan=database_lifespan(settings, telemetry, MetaData()),
        routers=[router_of(endpoint)],
    )


async def cpu_us(app: ASGIApp, requests: int) -> float:
    """CPU µs per request of ``app``, driven through ASGI directly."""
    scope: Scope = post_scope("/reservations", HEADERS) | {"state": {}}
    request: Message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: list[int] = []

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(requests // 10):  # warm up
        await app(dict(scope), receive, send)
    start = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    elapsed = time.process_time() - start
    if set(statuses) != {201}:
        raise RuntimeError(f"unexpected statuses {set(statuses)}")
    return elapsed / requests * 1e6


async def one_round(requests: int, data: Path) -> dict[str, float]:
    figures = {
        "bare ASGI app": await cpu_us(bare, requests),
        "FastAPI, the route alone": await cpu_us(fastapi_app(), requests),
        "+ error handlers": await cpu_us(fastapi_app("errors"), requests),
        "+ FaultMiddleware, no rules": await cpu_us(fastapi_app("errors", "faults"), requests),
        "+ StrictBody": await cpu_us(fastapi_app("errors", "faults", "strict body"), requests),
    }
    app = service_app(reserve, data)
    async with LifespanManager(app) as manager:
        figures["service app (create_service_app)"] = await cpu_us(manager.app, requests)
    app = service_app(reserve_with_dependencies, data)
    async with LifespanManager(app) as manager:
        figures["+ two dependencies (app.state lookups)"] = await cpu_us(manager.app, requests)
        # uvicorn types ASGI apps its own way; the middleware is one all the same.
        proxied = ProxyHeadersMiddleware(manager.app, trusted_hosts="127.0.0.1")  # type: ignore[arg-type]
        figures["+ uvicorn's ProxyHeadersMiddleware"] = await cpu_us(
            cast(ASGIApp, proxied), requests
        )
    return figures


async def measure(requests: int, rounds: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="server-layers-"))
    runs: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for name, us in (await one_round(requests, data)).items():
                runs.setdefault(name, []).append(us)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    print(f"CPU µs per request in this process, medians of {rounds} rounds of {requests}")
    print(f"  {'stack':45s} {'µs':>7s} {'(min-max)':>15s} {'added':>7s}")
    before = None
    for name, values in runs.items():
        median = statistics.median(values)
        added = "" if before is None else f"{median - before:+7.1f}"
        spread = f"({min(values):.1f}-{max(values):.1f})"
        print(f"  {name:45s} {median:7.1f} {spread:>15s} {added}")
        before = median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(args.requests, args.rounds))


if __name__ == "__main__":
    main()
