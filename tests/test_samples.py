"""Sample data has one home (ordersim.samples), and it never expires: the quick start,
``ordersim order``, ``ordersim load`` and the tests' orders are still accepted with the
clock set decades ahead.

The clock is moved with ``time-machine``, which patches the wall clock (``time.time``,
``datetime.now``) inside this process and leaves the monotonic clock alone, so timeouts and
sleeps keep working. (Debian's ``faketime`` was tried first: under it, with the monotonic
clock left real, every ``time.sleep`` fails with EINVAL.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import time_machine

from ordersim import order_cmd, samples
from ordersim.load import Catalogue, OrderMix
from ordersim.testing import System
from tests import ROOT
from tests.helpers import order_body

YEARS_AHEAD = 50


def test_the_quick_start_example_is_the_sample_order() -> None:
    example = json.loads((ROOT / "examples" / "order.json").read_text())
    assert example == samples.order_body()


async def sample_orders(system: System) -> list[tuple[dict[str, object], int]]:
    """Every kind of sample order, with the status it must get."""
    quick_start = json.loads((ROOT / "examples" / "order.json").read_text())
    cli = samples.order_body(samples.DEFAULT_ITEMS, order_cmd.parse_card("declined"))
    products = (await system.inventory.get("/products")).json()
    mix = OrderMix(Catalogue.from_products(products), seed=7)
    by_kind: dict[str, dict[str, object]] = {}
    while len(by_kind) < 3:
        kind, body = mix.next()
        if kind in ("normal", "declined", "insufficient"):
            by_kind.setdefault(kind, body)
    return [
        (quick_start, 201),
        (cli, 402),
        (order_body(), 201),
        (by_kind["normal"], 201),
        (by_kind["declined"], 402),
        (by_kind["insufficient"], 402),
    ]


async def test_every_sample_order_is_accepted_today_and_decades_ahead(system: System) -> None:
    orders = await sample_orders(system)
    now = datetime.now(UTC)
    for clock in (now, now.replace(year=now.year + YEARS_AHEAD)):
        with time_machine.travel(clock, tick=True):
            assert datetime.now(UTC).year == clock.year
            for body, status in orders:
                response = await system.order.post("/orders", json=body)
                assert response.status_code == status, (clock.year, response.text)


async def test_the_invalid_sample_card_fails_only_the_luhn_check(system: System) -> None:
    """What ``ordersim load`` sends as its invalid-card order: a 422 on the card number
    alone, so the load's "invalid" share means what it says."""
    body = samples.order_body(card_number=samples.LUHN_INVALID)
    response = await system.order.post("/orders", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [
        ["body", "payment", "card_number"]
    ]
