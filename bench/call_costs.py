"""What the order flow's building blocks cost, untraced, measured apart from the system:
where the CPU of an order goes once its own work is lean.

    .venv/bin/python bench/call_costs.py [--calls 2000] [--rounds 5]

CPU time per call, medians of the rounds:

- database (this process, all threads): a primary-key SELECT run by
  ``common.db.read`` (on the event loop's thread), the same read through a hop to a
  database thread and back (as reads ran until they moved to the loop), a bare hop to
  the thread pool, and a one-row UPDATE by ``common.db.transaction`` (one hop;
  synchronous=FULL: the commit waits for the disk);
- client (this process, on uvloop as the services): a ``ServiceClient`` call as
  order-service makes them (httpx over the aiohttp transport, a pydantic body, a URL
  template), the same request through a bare aiohttp session, and the ServiceClient call
  over httpx's own transport (httpcore), against a bare ASGI app under uvicorn in
  another process;
- server (that process): the same requests answered by the bare ASGI app, and by a
  service app (``common.app.create_service_app``: our middlewares, FastAPI's routing,
  a pydantic body and response) with one route, under uvicorn with uvloop and httptools;
- a new connection pool, as each service client builds one every 30 s, and the TLS
  context each pool parsed the CA bundle for until they shared one
  (``common.http.tls_context``);
- a log line at INFO in the services' format, to a file (the services log at INFO
  unless told otherwise; bench/cpu_per_order.py runs them at WARNING).

Then what those blocks come to for one confirmed order, before any of the flow's own
work, from the counts in :data:`ORDER` (tests/test_order_cost.py holds them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import uvloop
from fastapi import APIRouter
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy import update as update_

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["OTEL_SDK_DISABLED"] = "true"

from common.app import create_service_app, database_lifespan  # noqa: E402
from common.db import _threaded, create_engine, read, transaction  # noqa: E402
from common.http import LIMITS, Timeouts, create_http_client, default_transport  # noqa: E402
from common.telemetry import setup_telemetry  # noqa: E402
from inventory_service.client import InventoryClient  # noqa: E402
from inventory_service.models import ItemRequest, Reservation, ReserveRequest  # noqa: E402
from inventory_service.settings import InventorySettings  # noqa: E402
from ordersim.testing.processes import free_port  # noqa: E402

WARMUP = 200

#: One confirmed order of the load mix (3 SKUs on average): its server requests (POST
#: /orders and 7 downstream), order-service's client calls (6 in the order's trace, 1
#: for its notification), its database reads (the prices, a check per SKU) and write
#: transactions (order: the order, two steps' events, the confirmation; inventory: the
#: reservation, its commit; shipping: the quote, the shipment, the notification; payment:
#: the capture), and its log lines at INFO (an access line per request, an httpx line per
#: call). tests/test_order_cost.py counts the thread hops and the statements.
ORDER = {
    "server: request to the service app, uvicorn": 8,
    "client: ServiceClient call (service server)": 7,
    "read (on the event loop)": 1 + 3,
    "transaction: UPDATE, synced commit": 4 + 2 + 3 + 1,
    "a log line at INFO, to a file": 8 + 7,
}
TABLE = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", String))
SELECT = select(TABLE.c.v).where(TABLE.c.id == bindparam("id"))
UPDATE = update_(TABLE).where(TABLE.c.id == bindparam("b_id")).values(v=bindparam("b_v"))
BODY = ReserveRequest(
    order_id="ord_0123456789abcdef",
    items=[ItemRequest(sku="SKU-0001", quantity=2), ItemRequest(sku="SKU-0002", quantity=1)],
)

#: The server process: ``python bench/call_costs.py --serve bare|service PORT``.
ANSWER = b'{"order_id":"ord_0123456789abcdef","status":"reserved","items":[]}'


def serve(kind: str, port: int) -> None:
    import uvicorn

    async def bare(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        length = str(len(ANSWER)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    router = APIRouter()

    @router.post("/reservations")
    async def reserve(body: ReserveRequest) -> Reservation:
        return Reservation(order_id=body.order_id, status="reserved", items=[])

    # The service app's lifespan opens a database (its fault rules live there): an empty
    # one, in a directory that goes with the process.
    data = tempfile.mkdtemp(prefix="call-costs-")
    settings = InventorySettings(port=port, data_dir=Path(data))
    telemetry = setup_telemetry(settings.service_name)
    lifespan = database_lifespan(settings, telemetry, MetaData())
    app = (
        bare
        if kind == "bare"
        else create_service_app(
            title="bench",
            settings=settings,
            telemetry=telemetry,
            lifespan=lifespan,
            routers=[router],
        )
    )
    try:
        uvicorn.run(app, port=port, log_level="warning", loop="uvloop", http="httptools")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """This process's CPU per call, in µs."""
    for _ in range(WARMUP):
        await call()
    start = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - start) / calls * 1e6


async def database(calls: int) -> dict[str, float]:
    def select_one(conn: Connection) -> object:
        return conn.execute(SELECT, {"id": 1}).scalar_one()

    def update_one(conn: Connection) -> None:
        conn.execute(UPDATE, {"b_id": 1, "b_v": "x"})

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db", setup_telemetry("bench"))
        async with engine.begin() as conn:
            await conn.run_sync(TABLE.metadata.create_all)
            await conn.execute(TABLE.insert().values(id=1, v="a"))
        threaded = _threaded[engine.sync_engine]
        loop = asyncio.get_running_loop()

        def read_here() -> object:  # what read() does on the loop, here in a thread
            with threaded.reader.connect() as conn:
                return select_one(conn)

        def hopped() -> Awaitable[object]:
            return loop.run_in_executor(threaded.threads, read_here)

        try:
            return {
                "read (on the event loop)": await per_call(lambda: read(engine, select_one), calls),
                "the same read through a database thread": await per_call(hopped, calls),
                "a bare hop to the thread pool": await per_call(
                    lambda: loop.run_in_executor(threaded.threads, int), calls
                ),
                "transaction: UPDATE, synced commit": await per_call(
                    lambda: transaction(engine, update_one), calls // 4
                ),
            }
        finally:
            await engine.dispose()


@asynccontextmanager
async def server(kind: str) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", kind, str(port)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(100):
                try:
                    await probe.get(url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        await process.wait()


async def service_calls(
    url: str, calls: int, transport: httpx.AsyncBaseTransport | None = None
) -> float:
    """``ServiceClient`` calls over the services' transport, or over ``transport``."""
    telemetry = setup_telemetry("bench")
    timeouts = Timeouts()
    async with create_http_client(url, telemetry, timeouts=timeouts, transport=transport) as client:
        service = InventoryClient(client)  # its base, ServiceClient, sends

        async def call() -> object:
            return await service._request("POST", "/reservations", body=BODY, idempotent=True)

        return await per_call(call, calls)


async def aiohttp_calls(url: str, calls: int) -> float:
    payload = BODY.model_dump_json().encode()
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(url) as session:

        async def call() -> object:
            async with session.post("/reservations", data=payload, headers=headers) as response:
                return await response.read()

        return await per_call(call, calls)


async def http(calls: int) -> dict[str, float]:
    figures = {}
    for kind in ("bare", "service"):
        async with server(kind) as (url, pid):
            before = process_cpu(pid)
            figures[f"client: ServiceClient call ({kind} server)"] = await service_calls(url, calls)
            server_us = (process_cpu(pid) - before) / (calls + WARMUP) * 1e6
            figures[f"server: request to the {kind} app, uvicorn"] = server_us
            if kind == "bare":
                figures["client: bare aiohttp session (bare server)"] = await aiohttp_calls(
                    url, calls
                )
                figures["client: over httpx's own transport (httpcore)"] = await service_calls(
                    url, calls, httpx.AsyncHTTPTransport(limits=LIMITS)
                )
    return figures


async def pools(calls: int) -> dict[str, float]:
    """A new connection pool, as each service client builds one every
    ``connection_lifetime`` seconds (common.http's ``Recycled``), and the TLS context that
    each pool built for itself before they shared one (httpx's default: certifi's CA
    bundle parsed)."""
    start = time.process_time()
    for _ in range(calls):
        await default_transport().aclose()
    pool = (time.process_time() - start) / calls * 1e6
    start = time.process_time()
    for _ in range(calls):
        httpx.create_ssl_context()
    tls = (time.process_time() - start) / calls * 1e6
    return {"client: a new pool (every 30 s a client)": pool, "client: a new TLS context": tls}


def log_lines(calls: int) -> dict[str, float]:
    """A uvicorn access line, as the services write it at INFO (common.telemetry's
    configure_logging, untraced: no trace ids), to a file."""
    logger = logging.getLogger("bench.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        handler = logging.FileHandler(Path(tmp) / "log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        args = ("127.0.0.1:40000", "POST", "/reservations", "1.1", 201)
        start = time.process_time()
        for _ in range(calls):
            logger.info('%s - "%s %s HTTP/%s" %d', *args)
        handler.close()
        logger.removeHandler(handler)
    return {"a log line at INFO, to a file": (time.process_time() - start) / calls * 1e6}


async def measure(calls: int, rounds: int) -> None:
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        figures = {
            **await database(calls),
            **await http(calls),
            **await pools(max(calls // 100, 5)),
            **log_lines(calls),
        }
        for name, us in figures.items():
            runs.setdefault(name, []).append(us)
    print(f"CPU per call, µs, medians of {rounds} rounds of {calls} calls (min-max)")
    for name, values in runs.items():
        print(
            f"  {name:45s} {statistics.median(values):8.1f}  ({min(values):.1f}-{max(values):.1f})"
        )
    print("One confirmed order's building blocks (ORDER), ms:")
    total = 0.0
    for name, count in ORDER.items():
        ms = count * statistics.median(runs[name]) / 1000
        total += ms
        print(f"  {count:3d} x {name:45s} {ms:6.2f}")
    logs = ORDER["a log line at INFO, to a file"] * statistics.median(
        runs["a log line at INFO, to a file"]
    )
    print(f"  total {total:.2f} ms; at WARNING, without the log lines, {total - logs / 1000:.2f}")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    uvloop.run(measure(args.calls, args.rounds))  # the services' loop (common.app.serve)


if __name__ == "__main__":
    main()
