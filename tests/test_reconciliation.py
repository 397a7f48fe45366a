"""Nothing is lost under faults: orders placed while downstream services are down, hung or
erroring all end in a final status, and the books balance across the four databases."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from sqlalchemy import text

from ordersim.testing import FaultyTransport, System
from tests.helpers import APPROVED, DECLINED, INSUFFICIENT_FUNDS, order_body


class Erratic(httpx.AsyncBaseTransport):
    """Fails a seeded random share of requests: refused connections and 500s."""

    def __init__(self, inner: httpx.AsyncBaseTransport, rate: float, seed: int) -> None:
        self.inner, self.rate, self.rng, self.enabled = inner, rate, random.Random(seed), True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.enabled and self.rng.random() < self.rate:
            if self.rng.random() < 0.5:
                raise httpx.ConnectError("connection reset", request=request)
            return httpx.Response(500, json={"detail": "boom"}, request=request)
        return await self.inner.handle_async_request(request)


async def rows(system: System, service: str, sql: str) -> list[Any]:
    async with system.apps[service].state.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


def mix(i: int) -> dict[str, Any]:
    card = DECLINED if i % 7 == 3 else INSUFFICIENT_FUNDS if i % 11 == 5 else APPROVED
    return order_body(
        [("SKU-0001", 1 + i % 3), ("SKU-0017", 1), ("SKU-0019", 1 + i % 2)], card=card
    )


async def test_books_balance_after_load_under_faults(start_system: Any) -> None:
    transports: dict[str, Any] = {}

    def keep(name: str, make: Any) -> Any:
        def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
            transports[name] = make(inner)
            return transports[name]

        return wrap

    wrap = {
        "payment": keep("payment", lambda t: FaultyTransport(t, down=True)),
        "shipping": keep(
            "shipping",
            lambda t: Erratic(
                FaultyTransport(t, delay=2.0, paths=("/shipments",)), rate=0.3, seed=1
            ),
        ),
        "inventory": keep("inventory", lambda t: Erratic(t, rate=0.15, seed=2)),
    }
    async with start_system(wrap=wrap, call_timeout=1.0, order_deadline=6.0) as system:
        seeded = await system.stock("SKU-0001", "SKU-0017", "SKU-0019")
        shipping_hang = transports["shipping"].inner
        payment = transports["payment"]

        # Phase 1: payment down, shipment creation hanging, inventory erratic.
        phase1 = await asyncio.gather(
            *(system.order.post("/orders", json=mix(i)) for i in range(12))
        )
        # Phase 2: payment back, shipping still hangs on create: charges must be refunded.
        payment.enabled = False
        phase2 = await asyncio.gather(
            *(system.order.post("/orders", json=mix(i)) for i in range(12, 24))
        )
        # Phase 3: shipping answers again; only the erratic failures remain.
        shipping_hang.enabled = False
        phase3 = await asyncio.gather(
            *(system.order.post("/orders", json=mix(i)) for i in range(24, 48))
        )
        responses = phase1 + phase2 + phase3
        assert {r.status_code for r in responses} <= {201, 402, 409, 503}
        assert {r.status_code for r in phase1} <= {402, 409, 503}  # nothing could be charged
        assert any(r.status_code == 201 for r in phase3)

        # Heal everything, then let the worker finish the compensations it was owed.
        for transport in transports.values():
            transport.enabled = False
        assert await system.retry_compensations() == 0

        # Every accepted order ended in a final status, and the response said the same.
        orders = {
            r.order_id: r.status
            for r in await rows(system, "order", "SELECT order_id, status FROM orders")
        }
        assert len(orders) == len(responses)
        for response in responses:
            assert orders[response.json()["order_id"]] == response.json()["status"] != "pending"
        confirmed = {o for o, s in orders.items() if s == "confirmed"}

        # Stock on hand plus committed stock equals the seeded stock; nothing stays reserved.
        reservations = await rows(system, "inventory", "SELECT order_id, status FROM reservations")
        assert not [r for r in reservations if r.status == "reserved"]
        assert {r.order_id for r in reservations if r.status == "committed"} == confirmed
        committed = {
            sku: n
            for sku, n in await rows(
                system,
                "inventory",
                "SELECT i.sku, sum(i.quantity) FROM reservation_items i JOIN reservations r "
                "ON r.order_id = i.order_id WHERE r.status = 'committed' GROUP BY i.sku",
            )
        }
        now = await system.stock(*seeded)
        for sku, stock in seeded.items():
            assert now[sku] + committed.get(sku, 0) == stock, sku

        # Every charge belongs to a confirmed order or was refunded.
        payments = await rows(system, "payment", "SELECT order_id, status FROM payments")
        assert {p.order_id for p in payments if p.status == "captured"} == confirmed
        assert all(
            p.status in ("refunded", "voided") for p in payments if p.order_id not in confirmed
        )
        # The faults really bit: charges refunded after a hung shipment, refunds that had to
        # wait for payment to come back (voided), and shipments cancelled.
        assert {"refunded", "voided"} <= {p.status for p in payments}
        shipments = await rows(system, "shipping", "SELECT order_id, status FROM shipments")
        assert "cancelled" in {s.status for s in shipments}
        assert {s.order_id for s in shipments if s.status == "created"} == confirmed
