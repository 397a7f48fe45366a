"""Cancellation leaves nothing open: every span started is ended, whatever the outcome.

A span processor sees each ``on_start`` and ``on_end`` of every service's provider. The
outcomes: confirmed, out of stock, declined, a charge refused while payment was down (its
refund deferred, then retried), a failed notification, the order's deadline cancelling
the shipping quote in flight, 202'd orders followed to the end and left mid-stream, a
client giving up on ``POST /orders``, a service stopping with a 202'd order in flight;
and, last, many of them at once with clients leaving streams at random. After each
system has stopped, the two counts match, and the spans that cancelled work touched end
with ERROR and a ``cancelled`` event. (No "Failed to detach context" either: the
autouse guard of conftest.py checks every test.)
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from common.cancellation import ATTR_REASON
from common.fault_rules import FaultRule
from ordersim.testing import FaultyTransport, Gate, SpanBalance, System, down, slow
from tests.helpers import DECLINED, order_body

ASYNC = {"Prefer": "respond-async"}


def cancelled(span: ReadableSpan) -> str | None:
    """The reason of the span's ``cancelled`` event, if it has one and ERROR status."""
    reasons = [e.attributes[ATTR_REASON] for e in span.events if e.name == "cancelled"]
    if reasons and span.status.status_code == StatusCode.ERROR:
        return str(reasons[0])
    return None


async def follow(client: httpx.AsyncClient, order_id: str, leave_after: int | None = None) -> int:
    """Read the order's events, hanging up after ``leave_after`` of them; how many came."""
    seen = 0
    async with aconnect_sse(client, "GET", f"/orders/{order_id}/events") as source:
        async for _ in source.aiter_sse():
            seen += 1
            if seen == leave_after:
                break
    return seen


async def test_every_span_started_is_ended_whatever_the_outcome(start_system: Any) -> None:
    balance = SpanBalance()

    # Outcomes that end on their own.
    payment = down("/charges")
    async with start_system(processors=[balance], wrap={"payment": payment}) as system:
        refusing = system.transports["payment"]
        assert isinstance(refusing, FaultyTransport)
        refusing.enabled = False
        statuses = [(await system.order.post("/orders", json=order_body())).status_code]
        scarce = order_body([("SKU-0018", 11), ("SKU-0001", 1)])
        statuses.append((await system.order.post("/orders", json=scarce)).status_code)
        declined = order_body(card=DECLINED)
        statuses.append((await system.order.post("/orders", json=declined)).status_code)
        refusing.enabled = True
        statuses.append((await system.order.post("/orders", json=order_body())).status_code)
        refusing.enabled = False
        assert await system.retry_compensations() == 0
        system.apps["shipping"].state.faults.replace(
            [FaultRule(endpoint="POST /notifications", error_rate=1.0)]
        )
        statuses.append((await system.order.post("/orders", json=order_body())).status_code)
        system.apps["shipping"].state.faults.replace([])
        accepted = await system.live.post("/orders", json=order_body(), headers=ASYNC)
        statuses.append(accepted.status_code)
        assert await follow(system.live, accepted.json()["order_id"]) == 5
        assert await follow(system.order, accepted.json()["order_id"]) == 5  # its history
        await system.drain()
    assert statuses == [201, 409, 402, 503, 201, 202]

    # The order's deadline passes while the shipping quote (a read) is in flight.
    async with start_system(
        processors=[balance],
        wrap={"shipping": slow(5.0, "/quotes"), "inventory": slow(0.5, "/reservations")},
        call_timeout=8.0,
        order_deadline=0.3,
    ) as system:
        system.exporter.clear()  # the spans of the systems before are counted already
        response = await system.order.post("/orders", json=order_body())
        assert response.json()["error"]["code"] == "deadline_exceeded"
        await system.drain()
        spans = system.tree()
        quote = spans.find("quote_shipping")
        quote_call = spans.find("POST /quotes", kind=SpanKind.CLIENT)
    assert cancelled(quote) == "order deadline passed"
    assert cancelled(quote_call) == "the caller stopped waiting"

    # Clients that leave, and a service that stops, while an order waits for its charge.
    gate = Gate("/charges")
    async with start_system(processors=[balance], wrap={"payment": gate.wrap}) as system:
        system.exporter.clear()
        left = await system.live.post("/orders", json=order_body(), headers=ASYNC)
        await gate.reached()
        assert await follow(system.live, left.json()["order_id"], leave_after=2) == 2
        post = asyncio.create_task(system.live.post("/orders", json=order_body()))
        await gate.reached(2)  # the second order waits at the gate too
        post.cancel()  # its client goes away
        await asyncio.wait([post])
        stopping = asyncio.create_task(system.apps["order"].state.detached.close(0))
        gate.open()
        await stopping
        await system.drain()
        spans = system.tree()
    streams = spans.find_all("stream_order_events")
    assert [cancelled(s) for s in streams] == ["client disconnected"]
    roots = [s for s in spans.find_all("place_order") if s.parent is None]
    assert [cancelled(r) for r in roots] == ["the service is stopping"]

    assert balance.still_open() == []
    assert balance.started == balance.ended > 0


async def test_random_stream_disconnects_under_load_leave_no_span_open(
    start_system: Any,
) -> None:
    """A smaller sibling of bench/stream_disconnects.py: 24 orders, 8 at a time, each
    202'd and followed by a client that hangs up after 1 to 4 events (or reads to the end);
    some POST clients give up before their answer, after a random wait."""
    balance = SpanBalance()
    draw = random.Random(14)
    results: list[str] = []

    # Each kind of customer in turn, so that every kind comes (how long one who gives up
    # waits is drawn): one who gives up before the 202, then ones who hang up after 1 to 4
    # events, then one who reads to the end.
    plans: list[int | str | None] = ["give up", 1, 2, 3, 4, None]

    async def customer(system: System, number: int) -> None:
        plan = plans[number % len(plans)]
        if plan == "give up":
            post = asyncio.create_task(
                system.live.post("/orders", json=order_body(), headers=ASYNC)
            )
            await asyncio.sleep(draw.uniform(0, 0.01))
            post.cancel()
            await asyncio.wait([post])
            results.append("gave up")
            return
        assert not isinstance(plan, str)
        response = await system.live.post("/orders", json=order_body(), headers=ASYNC)
        order_id = response.json()["order_id"]
        seen = await follow(system.live, order_id, plan)
        results.append("left" if plan and seen == plan else "to the end")

    async with start_system(processors=[balance]) as system:
        queue = list(range(24))

        async def worker() -> None:
            while queue:
                await customer(system, queue.pop())

        await asyncio.gather(*(worker() for _ in range(8)))
        await system.drain()
        async with system.apps["order"].state.engine.connect() as conn:
            still = (
                await conn.execute(text("SELECT count(*) FROM orders WHERE status = 'pending'"))
            ).scalar_one()
        assert still == 0, "every accepted order reached its final status"
    assert {"left", "to the end"} <= set(results)
    assert balance.still_open() == []
    assert balance.started == balance.ended > 0
