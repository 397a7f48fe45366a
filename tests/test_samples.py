"""Sample data has one home (ordersim.samples), and it never expires: the quick start,
``ordersim order``, ``ordersim load`` and the tests' orders are still accepted with the
clock set decades ahead (Debian's ``faketime``, which ``make test`` installs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

from ordersim import samples, trace_cmd
from ordersim.load import Catalogue, OrderMix
from tests.conftest import System
from tests.helpers import order_body
from tests.processes import ROOT

#: Set in the run under faketime: the year its clock must at least show.
FUTURE_YEAR = "ORDERSIM_TEST_FUTURE_YEAR"
YEARS_AHEAD = 50


def test_the_quick_start_example_is_the_sample_order() -> None:
    example = json.loads((ROOT / "examples" / "order.json").read_text())
    assert example == samples.order_body()


async def test_every_sample_order_is_accepted(system: System) -> None:
    if year := os.environ.get(FUTURE_YEAR):
        assert datetime.now(UTC).year >= int(year), "the fake clock is not in force"
    quick_start = json.loads((ROOT / "examples" / "order.json").read_text())
    cli = samples.order_body(samples.DEFAULT_ITEMS, trace_cmd.parse_card("declined"))
    products = (await system.inventory.get("/products")).json()
    mix = OrderMix(Catalogue.from_products(products), seed=7)
    by_kind: dict[str, dict[str, object]] = {}
    while len(by_kind) < 3:
        kind, body = mix.next()
        if kind in ("normal", "declined", "insufficient"):
            by_kind.setdefault(kind, body)

    expected = [
        (quick_start, 201),
        (cli, 402),
        (order_body(), 201),
        (by_kind["normal"], 201),
        (by_kind["declined"], 402),
        (by_kind["insufficient"], 402),
    ]
    for body, status in expected:
        response = await system.order.post("/orders", json=body)
        assert response.status_code == status, response.text


def test_sample_orders_never_expire() -> None:
    """The test above, run again with the clock set years ahead."""
    faketime = shutil.which("faketime")
    assert faketime, "faketime is missing: `make test` installs it (Debian package faketime)"
    env = {
        **os.environ,
        FUTURE_YEAR: str(datetime.now(UTC).year + YEARS_AHEAD),
        # Only the calendar moves; timeouts and sleeps keep the real monotonic clock.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    run = subprocess.run(
        [
            faketime,
            "-f",
            f"+{YEARS_AHEAD}y",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_every_sample_order_is_accepted",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
