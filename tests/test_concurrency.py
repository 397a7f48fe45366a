"""Concurrent orders against scarce stock confirm exactly what the stock allows."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from ordersim.testing import System
from tests.helpers import order_body


async def test_concurrent_orders_never_oversell(any_system: System) -> None:
    system = any_system
    stock = (await system.stock("SKU-0017"))["SKU-0017"]
    assert stock == 5
    orders = [order_body([("SKU-0001", 1), ("SKU-0017", 1)]) for _ in range(30)]

    responses = await asyncio.gather(*(system.order.post("/orders", json=b) for b in orders))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 25}
    assert (await system.stock("SKU-0017"))["SKU-0017"] == 0
    for response in responses:  # every order ended in its final, stored status
        stored = await system.order.get(f"/orders/{response.json()['order_id']}")
        assert stored.json()["status"] == {201: "confirmed", 409: "rejected"}[response.status_code]


async def test_mixed_quantities_conserve_stock(any_system: System) -> None:
    system = any_system
    rng = random.Random(7)
    quantities = [rng.randint(1, 4) for _ in range(24)]
    before = (await system.stock("SKU-0019"))["SKU-0019"]

    responses = await asyncio.gather(
        *(system.order.post("/orders", json=order_body([("SKU-0019", q)])) for q in quantities)
    )

    sold = sum(q for q, r in zip(quantities, responses, strict=True) if r.status_code == 201)
    after = (await system.stock("SKU-0019"))["SKU-0019"]
    assert {r.status_code for r in responses} <= {201, 409}
    assert after >= 0
    assert sold + after == before
    # Every rejection was a real shortage: what it asked for exceeded what was left at the end.
    for q, r in zip(quantities, responses, strict=True):
        if r.status_code == 409:
            assert q > after
