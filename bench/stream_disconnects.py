"""Event streams under load, with clients that hang up at random: does any context get
detached in the wrong place ("Failed to detach context"), does every span end?

    .venv/bin/python bench/stream_disconnects.py [--seconds 120] [--customers 12]

Runs the four services in this one process, each served by its own uvicorn on a free
loopback port (real HTTP and TCP: a client that leaves closes its connection and uvicorn
tells the app ``http.disconnect``), each service's spans counted by a processor that sees
every ``on_start`` and ``on_end`` (``ordersim.testing.SpanBalance``) and then
dropped. ``--customers`` clients, for ``--seconds``: each places an order with
``Prefer: respond-async``, follows its event stream and hangs up after a random number of
events (or reads to its end); one order in ten is given up before its answer, one in ten
placed without the preference. Then the load stops, the orders still running finish, the
services stop, and it prints what happened: orders, streams left, events, spans started
and ended, and every "Failed to detach context" logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.telemetry import setup_telemetry
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from order_service.app import create_app as create_order
from order_service.settings import OrderSettings
from ordersim.samples import order_body
from ordersim.testing import SpanBalance
from ordersim.testing.processes import free_port
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.app import create_app as create_shipping
from shipping_service.settings import ShippingSettings

DETACH_ERROR = "Failed to detach context"

#: One line of one SKU: what the benchmark has always ordered.
ONE_LINE = [("SKU-0001", 2)]


class Detaches(logging.Handler):
    """Counts the log records that say a context was detached in the wrong place."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if DETACH_ERROR in record.getMessage():
            self.count += 1


async def serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why
        await asyncio.sleep(0.05)
    return server, task


async def customer(
    client: httpx.AsyncClient, draw: random.Random, until: float, tally: Counter[str]
) -> None:
    while time.monotonic() < until:
        roll = draw.random()
        if roll < 0.1:  # placed without the preference: a 201 (and its notification)
            response = await client.post("/orders", json=order_body(ONE_LINE))
            tally[f"POST {response.status_code}"] += 1
            continue
        if roll < 0.2:  # a client that gives up before its answer
            post = asyncio.create_task(
                client.post(
                    "/orders", json=order_body(ONE_LINE), headers={"prefer": "respond-async"}
                )
            )
            await asyncio.sleep(draw.uniform(0, 0.02))
            post.cancel()
            await asyncio.wait([post])
            tally["POST given up" if post.cancelled() else f"POST {post.result().status_code}"] += 1
            continue
        response = await client.post(
            "/orders", json=order_body(ONE_LINE), headers={"prefer": "respond-async"}
        )
        tally[f"POST {response.status_code}"] += 1
        order_id = response.json()["order_id"]
        leave_after = draw.choice([1, 2, 3, 4, None])
        seen = 0
        async with client.stream("GET", f"/orders/{order_id}/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    seen += 1
                    tally["events received"] += 1
                    if seen == leave_after:
                        break  # and hang up: the connection is closed
        tally["streams left early" if seen == leave_after else "streams read to the end"] += 1


async def run(seconds: float, customers: int, seed: int) -> int:
    detaches = Detaches()
    logging.getLogger().addHandler(detaches)
    logging.getLogger().setLevel(logging.WARNING)
    balance = SpanBalance()
    ports = {name: free_port() for name in ("order", "inventory", "payment", "shipping")}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)

        def telemetry(name: str) -> Any:
            return setup_telemetry(name, processors=[balance])

        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        apps = {
            "inventory": create_inventory(
                InventorySettings(data_dir=data), telemetry("inventory-service")
            ),
            "payment": create_payment(PaymentSettings(data_dir=data), telemetry("payment-service")),
            "shipping": create_shipping(
                ShippingSettings(data_dir=data), telemetry("shipping-service")
            ),
        }
        servers = [await serve(app, ports[name]) for name, app in apps.items()]
        order_app = create_order(
            OrderSettings(
                data_dir=data,
                inventory_url=url["inventory"],
                payment_url=url["payment"],
                shipping_url=url["shipping"],
            ),
            telemetry("order-service"),
        )
        servers.insert(0, await serve(order_app, ports["order"]))

        tally: Counter[str] = Counter()
        draw = random.Random(seed)
        started = time.monotonic()
        limits = httpx.Limits(max_connections=customers * 2)
        async with httpx.AsyncClient(
            base_url=url["order"], timeout=httpx.Timeout(60.0), limits=limits
        ) as client:
            await asyncio.gather(
                *(
                    customer(client, random.Random(draw.random()), started + seconds, tally)
                    for _ in range(customers)
                )
            )
        loaded = time.monotonic() - started

        # The orders still running finish; then every order must be final.
        engine = order_app.state.engine
        deadline = time.monotonic() + 60
        while True:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(text("SELECT status, count(*) FROM orders GROUP BY status"))
                ).all()
            statuses = {status: count for status, count in rows}
            if not statuses.get("pending") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await order_app.state.detached.join()
        for server, task in servers:  # order-service first: its lifespan drains its work
            server.should_exit = True
            await task

    still_open = balance.still_open()
    print(f"load: {customers} customers for {loaded:.1f} s (seed {seed})")
    for what, count in sorted(tally.items()):
        print(f"  {what:<26} {count}")
    print(f"orders by final status: {dict(sorted(statuses.items()))}")
    print(f"spans started {balance.started}, ended {balance.ended}, still open {len(still_open)}")
    for name in still_open[:20]:
        print(f"  open: {name}")
    print(f'"{DETACH_ERROR}" logged: {detaches.count}')
    ok = not still_open and not detaches.count and not statuses.get("pending")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--customers", type=int, default=12)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    return asyncio.run(run(args.seconds, args.customers, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
