"""The "find the bug" scenarios: each one, switched on, changes the shape of the trace.

Every test runs the same order (or request) with the scenario off and on, and asserts
what docs/scenarios.md tells the reader to look for in the waterfall.
"""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from rich.console import Console

from common.scenarios import REGISTRY, Scenario
from common.telemetry import setup_telemetry
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from order_service.flow import in_turn
from order_service.settings import OrderSettings
from ordersim.testing import SpanTree, System, overlap
from ordersim.testing.processes import Up, clean_env, free_port
from payment_service import cards
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.settings import ShippingSettings
from tests import ROOT
from tests.helpers import order_body

THREE_SKUS = [("SKU-0001", 2), ("SKU-0002", 1), ("SKU-0003", 3)]
LEGACY_CARD = "5555555555554444"  # Luhn-valid, in the 5555 BIN range
APPROVED_CARD = cards.APPROVED

StartSystem = Callable[..., AbstractAsyncContextManager[System]]


async def place(system: System, body: dict[str, Any]) -> tuple[int, SpanTree]:
    response = await system.order.post("/orders", json=body)
    return response.status_code, system.tree(response.json()["trace_id"])


def server_span(spans: SpanTree, response: httpx.Response) -> ReadableSpan:
    """The SERVER span of the request that got ``response`` (its ``traceresponse`` header)."""
    _, trace_id, span_id, _ = response.headers["traceresponse"].split("-")
    return next(s for s in spans.trace(trace_id) if f"{s.context.span_id:016x}" == span_id)


def before(a: ReadableSpan, b: ReadableSpan) -> bool:
    """``a`` ended before ``b`` started: one after the other, no overlap."""
    assert a.end_time is not None and b.start_time is not None
    return a.end_time <= b.start_time


def db_spans_under(spans: SpanTree, ancestor: ReadableSpan) -> list[ReadableSpan]:
    """The database statements run on behalf of ``ancestor``, in the order they started."""
    found = [
        s for s in spans if "db.system.name" in s.attributes and spans.is_ancestor(ancestor, s)
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def in_sequence(spans: list[ReadableSpan]) -> bool:
    """Each span (ordered by start) ended before the next one started."""
    return all(before(a, b) for a, b in pairwise(spans))


# --- sequential_calls (order-service) ---------------------------------------------------


async def test_sequential_calls_runs_the_concurrent_steps_one_after_the_other(
    start_system: StartSystem,
) -> None:
    shapes = {}
    for scenarios in (set(), {"sequential_calls"}):
        async with start_system(scenarios=scenarios) as system:
            status, spans = await place(system, order_body(THREE_SKUS))
        assert status == 201
        steps = {
            name: spans.find(name, service="order-service")
            for name in ("reserve_stock", "quote_shipping", "commit_stock", "create_shipment")
        }
        shapes[frozenset(scenarios)] = sorted((s.name, s.kind.value) for s in spans)
        reserve, quote = steps["reserve_stock"], steps["quote_shipping"]
        commit, ship = steps["commit_stock"], steps["create_shipment"]
        if scenarios:
            # The same steps, one bar after the other: quote waits for the reservation.
            assert before(reserve, quote) and before(commit, ship)
        else:
            assert overlap(reserve, quote) and overlap(commit, ship)
    # The same spans, by name and kind: only their timing tells the two apart.
    assert shapes[frozenset()] == shapes[frozenset({"sequential_calls"})]


async def test_sequential_calls_still_settles_both_calls_before_failing(
    start_system: StartSystem,
) -> None:
    async with start_system(scenarios={"sequential_calls"}) as system:
        stock = await system.stock("SKU-0001", "SKU-0018")
        status, spans = await place(system, order_body([("SKU-0001", 2), ("SKU-0018", 11)]))
        assert status == 409
        # The reservation was refused; the quote still ran, after it, and nothing is held.
        reserve = spans.find("reserve_stock", service="order-service")
        quote = spans.find("quote_shipping", service="order-service")
        assert before(reserve, quote)
        assert not spans.find_all("charge_payment")
        assert await system.stock("SKU-0001", "SKU-0018") == stock


async def test_in_turn_raises_the_first_failure_after_both_settle() -> None:
    ran: list[str] = []

    async def fail(name: str) -> None:
        ran.append(name)
        raise ValueError(name)

    with pytest.raises(ValueError, match="first"):
        await in_turn(fail("first"), fail("second"))
    assert ran == ["first", "second"]


async def test_in_turn_cancelled_never_starts_the_second_call() -> None:
    started = asyncio.Event()
    ran: list[str] = []

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    async def call(name: str) -> None:
        ran.append(name)

    async def step(call: Awaitable[None]) -> None:  # like Saga.step: it is given a coroutine
        await call

    # pytest-asyncio (1.5) leaves an unclosed event loop for the garbage collector when an
    # async test runs after sync ones: collect it first, so only what this test drops counts.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(in_turn(step(hang()), step(call("second"))))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
    assert ran == []
    assert [str(w.message) for w in caught] == []  # no "coroutine … was never awaited"


# --- pool_of_one (inventory-service) ----------------------------------------------------


async def test_pool_of_one_queues_the_stock_checks_database_statements(
    start_system: StartSystem,
) -> None:
    async with start_system(scenarios={"pool_of_one"}) as system:
        status, spans = await place(system, order_body(THREE_SKUS))
    assert status == 201
    checks = spans.find_all("check_stock", service="inventory-service")
    assert len(checks) == 3
    # The three checks still start together (sibling bars that overlap) ...
    assert all(overlap(a, b) for a in checks for b in checks if a is not b)
    # ... but their SELECTs take turns on the one connection: a staircase, no overlap.
    selects = [s for c in checks for s in db_spans_under(spans, c)]
    assert len(selects) == 3
    assert in_sequence(sorted(selects, key=lambda s: s.start_time or 0))
    # Each check waits for the statements before it: the bars end one after the other.
    ends = sorted(checks, key=lambda c: c.end_time or 0)
    waits = sorted(checks, key=lambda c: db_spans_under(spans, c)[0].start_time or 0)
    assert ends == waits


# --- n_plus_one (inventory-service) -----------------------------------------------------


@pytest.mark.parametrize("scenarios", [set(), {"n_plus_one"}], ids=["off", "n_plus_one"])
async def test_n_plus_one_lists_products_with_one_select_each(
    start_system: StartSystem, scenarios: set[str]
) -> None:
    skus = ["SKU-0003", "SKU-0001", "SKU-0002", "SKU-0001", "SKU-9999"]
    async with start_system(scenarios=scenarios) as system:
        response = await system.inventory.get("/products", params={"sku": skus})
        catalogue = await system.inventory.get("/products")
        status, order_spans = await place(system, order_body(THREE_SKUS))
        spans = system.tree()
    assert response.status_code == 200 and status == 201
    # The same answer either way: known SKUs once each, in SKU order.
    assert [p["sku"] for p in response.json()] == ["SKU-0001", "SKU-0002", "SKU-0003"]
    assert [p["sku"] for p in catalogue.json()] == [f"SKU-{i:04d}" for i in range(1, 21)]

    selects = db_spans_under(spans, server_span(spans, response))
    catalogue_selects = db_spans_under(spans, server_span(spans, catalogue))
    validate = order_spans.find("validate_order")
    server = order_spans.find("GET /products", kind=SpanKind.SERVER)
    assert order_spans.is_ancestor(validate, server)
    order_selects = db_spans_under(order_spans, server)
    if scenarios:
        # One SELECT per distinct SKU asked for (4, one of them unknown), one after the other.
        assert len(selects) == 4 and in_sequence(selects)
        # The whole catalogue: one SELECT for the SKUs, then one per product.
        assert len(catalogue_selects) == 1 + 20 and in_sequence(catalogue_selects)
        # The order's validation shows the same staircase: one SELECT per SKU.
        assert len(order_selects) == 3 and in_sequence(order_selects)
    else:
        assert len(selects) == len(catalogue_selects) == len(order_selects) == 1
    assert all(s.attributes["db.query.text"].startswith("SELECT") for s in selects)


# --- slow_card_range (payment-service) --------------------------------------------------


async def test_slow_card_range_sends_one_bin_range_to_the_slow_processor(
    start_system: StartSystem,
) -> None:
    processors: dict[tuple[bool, str], list[object]] = {}
    for on in (False, True):
        async with start_system(scenarios={"slow_card_range"} if on else set()) as system:
            for card in (APPROVED_CARD, LEGACY_CARD):
                status, spans = await place(system, order_body(card=card))
                assert status == 201
                authorize = spans.find("authorize_card", service="payment-service")
                assert not [
                    s for s in spans if s.parent and s.parent.span_id == authorize.context.span_id
                ]
                processors[on, card] = [
                    e.attributes.get("shop.payment.processor")
                    for e in authorize.events
                    if e.name == "processor_called" and e.attributes
                ]
    # Only the 5555 range, only with the scenario on, goes to the slow legacy processor:
    # the time is the span's own (no child span shows it). How slow it makes the span is
    # timing, which tests do not assert; bench/scenarios.py measures it.
    # Its event names the processor the authorization went to.
    assert processors[True, LEGACY_CARD] == ["legacy"]
    assert processors[True, APPROVED_CARD] == ["primary"]
    assert processors[False, LEGACY_CARD] == processors[False, APPROVED_CARD] == []


# --- the registry ---------------------------------------------------------------------------


def test_an_unknown_scenario_stops_settings_naming_the_valid_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERSIM_SCENARIOS", "n_plus_one, sequental_calls")
    for settings in (OrderSettings, InventorySettings, PaymentSettings, ShippingSettings):
        with pytest.raises(ValidationError) as raised:
            settings()
        message = str(raised.value)
        assert "ORDERSIM_SCENARIOS" in message
        assert "unknown scenario 'sequental_calls'" in message
        assert "sequential_calls, pool_of_one, n_plus_one, slow_card_range" in message


def test_scenarios_from_the_environment_are_the_registrys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERSIM_SCENARIOS", " n_plus_one,slow_card_range ,")
    assert InventorySettings().scenarios == {Scenario.N_PLUS_ONE, Scenario.SLOW_CARD_RANGE}
    monkeypatch.setenv("ORDERSIM_SCENARIOS", "")
    assert InventorySettings().scenarios == frozenset()


def test_a_service_asks_only_for_its_own_scenarios() -> None:
    settings = PaymentSettings(scenarios={"slow_card_range", "n_plus_one"})
    assert settings.planted(Scenario.SLOW_CARD_RANGE)
    with pytest.raises(ValueError, match="n_plus_one is planted in inventory-service"):
        settings.planted(Scenario.N_PLUS_ONE)


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_each_variant_is_chosen_when_the_app_is_built(tmp_path: Path, on: bool) -> None:
    from inventory_service import storage
    from payment_service import routes as payment_routes

    telemetry = setup_telemetry("x", processors=[])
    inventory = create_inventory(
        InventorySettings(data_dir=tmp_path, scenarios={"n_plus_one"} if on else set()),
        telemetry,
    )
    payment = create_payment(
        PaymentSettings(data_dir=tmp_path, scenarios={"slow_card_range"} if on else set()),
        telemetry,
    )
    assert inventory.state.list_products is (
        storage.list_products_one_by_one if on else storage.list_products
    )
    assert payment.state.route_card is (
        payment_routes.route_by_bin_range if on else payment_routes.primary_only
    )


def test_docs_list_every_scenario_with_its_service() -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", text, re.MULTILINE)
    assert {name: f"{service}-service" for name, service in rows} == {
        scenario.value: planted.service for scenario, planted in REGISTRY.items()
    }
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{scenario}`" in readme for scenario in Scenario)


def test_ordersim_up_refuses_an_unknown_scenario_and_starts_nothing(tmp_path: Path) -> None:
    env = clean_env() | {
        "ORDERSIM_SCENARIOS": "sequental_calls",
        "ORDERSIM_DATA_DIR": str(tmp_path / "data"),
    }
    up = Up(env, tmp_path / "up.log", "--no-viewer")
    try:
        returncode = up.process.wait(timeout=60)
    finally:
        up.stop()  # SIGTERM: had it started the services, it stops them too
    output = up.output()
    assert returncode == 2, output
    assert "ORDERSIM_SCENARIOS: unknown scenario 'sequental_calls'" in output
    assert "sequential_calls, pool_of_one, n_plus_one, slow_card_range" in output
    assert "ordersim is up" not in output
    assert not (tmp_path / "data").exists()  # no service started, so no database either


def test_a_service_refuses_to_start_with_an_unknown_scenario(tmp_path: Path) -> None:
    env = clean_env() | {
        "ORDERSIM_SCENARIOS": "sequental_calls",
        "ORDERSIM_DATA_DIR": str(tmp_path),
        "INVENTORY_SERVICE_PORT": str(free_port()),
        "OTEL_TRACES_EXPORTER": "none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "inventory_service"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "unknown scenario 'sequental_calls'" in done.stderr
    assert "sequential_calls, pool_of_one, n_plus_one, slow_card_range" in done.stderr


def test_the_up_banner_prints_the_scenarios_and_faults_in_force(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ordersim.up import Supervisor, services_from_env

    monkeypatch.setenv("ORDERSIM_SCENARIOS", "slow_card_range,n_plus_one")
    monkeypatch.setenv(
        "PAYMENT_SERVICE_FAULTS", '[{"endpoint": "POST /charges", "error_rate": 0.3}]'
    )
    monkeypatch.delenv("INVENTORY_SERVICE_FAULTS", raising=False)
    lines = Supervisor(services_from_env(None), Console())._planted()
    assert lines == [
        "  scenarios          n_plus_one (inventory-service): one SELECT per product where one "
        "query would do",
        "                     slow_card_range (payment-service): orders paid with one range of "
        "card numbers take about 300 ms longer",
        "  faults             payment-service POST /charges: 30% errors (HTTP 500)",
    ]
    monkeypatch.delenv("ORDERSIM_SCENARIOS")
    monkeypatch.delenv("PAYMENT_SERVICE_FAULTS")
    lines = Supervisor(services_from_env(None), Console())._planted()
    assert lines == ["  scenarios          none", "  faults             none"]
