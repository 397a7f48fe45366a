"""Idempotency-Key on POST /orders: the first response again, nothing bought twice."""

from __future__ import annotations

import asyncio
import json

from ordersim.testing import System
from tests.helpers import DECLINED, order_body

ITEMS = [("SKU-0001", 1), ("SKU-0018", 2)]


async def test_a_retry_with_the_same_key_returns_the_first_response(system: System) -> None:
    before = await system.stock("SKU-0018")
    body = order_body(ITEMS)
    first = await system.order.post("/orders", json=body, headers={"Idempotency-Key": "k-1"})
    # The same body, differently spaced and ordered, is the same request.
    respaced = json.dumps(dict(reversed(list(body.items()))), indent=3)
    again = await system.order.post(
        "/orders",
        content=respaced,
        headers={"Idempotency-Key": "k-1", "content-type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # same order id, same trace id, same everything
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert (await system.stock("SKU-0018"))["SKU-0018"] == before["SKU-0018"] - 2
    assert await system.order_count() == 1


async def test_the_same_key_with_another_body_is_422(system: System) -> None:
    await system.order.post("/orders", json=order_body(ITEMS), headers={"Idempotency-Key": "k-2"})
    other = await system.order.post(
        "/orders", json=order_body([("SKU-0002", 1)]), headers={"Idempotency-Key": "k-2"}
    )
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await system.order_count() == 1


async def test_concurrent_retries_buy_once(system: System) -> None:
    before = await system.stock("SKU-0018")
    body = order_body(ITEMS)
    responses = await asyncio.gather(
        *(
            system.order.post("/orders", json=body, headers={"Idempotency-Key": "k-3"})
            for _ in range(6)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 5
    assert (await system.stock("SKU-0018"))["SKU-0018"] == before["SKU-0018"] - 2
    assert await system.order_count() == 1


async def test_failed_outcomes_replay_too_and_invalid_input_frees_the_key(system: System) -> None:
    declined = order_body(ITEMS, card=DECLINED)
    first = await system.order.post("/orders", json=declined, headers={"Idempotency-Key": "k-4"})
    again = await system.order.post("/orders", json=declined, headers={"Idempotency-Key": "k-4"})
    assert first.status_code == again.status_code == 402
    assert again.json()["order_id"] == first.json()["order_id"]

    invalid = order_body([("SKU-9999", 1)])  # unknown SKU: 422, nothing stored
    bad = await system.order.post("/orders", json=invalid, headers={"Idempotency-Key": "k-5"})
    assert bad.status_code == 422
    fixed = await system.order.post(
        "/orders", json=order_body(ITEMS), headers={"Idempotency-Key": "k-5"}
    )
    assert fixed.status_code == 201
    too_long = await system.order.post(
        "/orders", json=order_body(ITEMS), headers={"Idempotency-Key": "x" * 300}
    )
    assert too_long.status_code == 422
