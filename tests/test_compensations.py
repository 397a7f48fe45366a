"""Deferred compensations never give up and never spin: retried by the background worker
whatever tracing does, with exponential backoff, jitter and a cap, each item and each job
on its own; the backlog on ``GET /admin/compensations``; a previous version's database is
upgraded at start-up."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from rich.console import Console
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from common.db import create_engine, create_tables
from common.telemetry import Telemetry
from order_service import storage
from order_service.backlog import Backlog, Backoff, CompensationWorker
from order_service.models import Order
from order_service.settings import OrderSettings
from ordersim import compensations_cmd
from ordersim.cli import main as ordersim
from ordersim.testing import FaultyTransport, System, down
from ordersim.testing.processes import free_port
from tests.helpers import order_body
from tests.postgres import create_databases

ITEMS = [("SKU-0001", 2), ("SKU-0018", 3)]
SKUS = [sku for sku, _ in ITEMS]
T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_SPAN = trace.INVALID_SPAN_CONTEXT
#: Seconds to wait for the background worker (it polls every 0.05 s in those tests).
DEADLINE = 20


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Await ``check`` until it is true, or fail after ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")
        await asyncio.sleep(0.05)


async def charge(system: System, order_id: str) -> None:
    """A charge as the order flow makes it, for undos to undo."""
    body = {
        "order_id": order_id,
        "amount": {"amount": "10.00", "currency": "USD"},
        "card": order_body()["payment"],
    }
    assert (await system.payment.post("/charges", json=body)).status_code == 201


async def charge_status(system: System, order_id: str) -> str | None:
    """The charge's status; None while payment knows nothing of it."""
    response = await system.payment.get(f"/charges/{order_id}")
    return None if response.status_code == 404 else str(response.json()["status"])


async def insert_abandoned(system: System, order_id: str) -> None:
    """An order a stopped process left pending an hour ago."""
    long_ago = storage.now() - timedelta(hours=1)
    order = Order(
        order_id=order_id,
        status="pending",
        customer_id="c",
        items=[],
        trace_id="ab" * 16,
        created_at=long_ago,
        updated_at=long_ago,
    )
    await storage.insert_order(system.apps["order"].state.engine, order)


# --- tracing off ------------------------------------------------------------------------------


@pytest.fixture(params=["OTEL_SDK_DISABLED=true", "OTEL_PROPAGATORS=baggage"])
def tracing_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Nothing injects a traceparent: the SDK is off, or no propagator writes one."""
    variable, value = str(request.param).split("=")
    monkeypatch.setenv(variable, value)
    previous = propagate.get_global_textmap()
    if variable == "OTEL_PROPAGATORS":
        # What that variable configures when the SDK is imported (already done here).
        propagate.set_global_textmap(CompositePropagator([W3CBaggagePropagator()]))
    try:
        yield variable
    finally:
        propagate.set_global_textmap(previous)


async def test_with_tracing_off_the_worker_still_undoes_deferred_and_abandoned_orders(
    start_system: Any, tracing_off: str
) -> None:
    async with start_system(
        wrap={"payment": down()},
        compensation_poll_interval=0.05,
        compensation_backoff_base=0.05,
        compensation_backoff_cap=0.2,
    ) as system:
        before = await system.stock(*SKUS)
        response = await system.order.post("/orders", json=order_body(ITEMS))
        assert response.status_code == 503
        order_id = response.json()["order_id"]  # its refund is owed, and deferred
        # An order the process stopped in the middle of, with stock still reserved.
        crashed = "ord_00000000000000c1"
        reserve = {"order_id": crashed, "items": [{"sku": "SKU-0018", "quantity": 3}]}
        assert (await system.inventory.post("/reservations", json=reserve)).status_code == 201
        await insert_abandoned(system, crashed)

        payment = system.transports["payment"]
        assert isinstance(payment, FaultyTransport)
        payment.enabled = False  # payment is back: the background worker does the rest

        async def undone() -> bool:
            crashed_status = (await system.order.get(f"/orders/{crashed}")).json()["status"]
            return (
                await charge_status(system, order_id) == "voided"
                and crashed_status == "failed"
                and await system.stock(*SKUS) == before
            )

        await eventually(undone, "the deferred refund and the abandoned order to be undone")

        if tracing_off == "OTEL_PROPAGATORS":
            # The retry still links back to the span that deferred it: the backlog stores
            # that span in W3C form itself, whatever the propagators in use.
            refund = system.tree().find("refund_payment", service="order-service")
            retries = [
                s
                for s in system.spans()
                if s.name == "retry_refund_payment" and s.attributes["shop.order.id"] == order_id
            ]
            assert retries
            assert all(s.links[0].context.span_id == refund.context.span_id for s in retries)
        else:
            assert system.spans() == []


async def test_a_failing_job_or_item_does_not_stop_the_others(
    system: System, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def database_down(*_: object) -> list[Order]:
        raise OSError("database is down")

    monkeypatch.setattr(storage, "abandoned_orders", database_down)
    backlog = system.compensations.backlog
    await charge(system, "ord_00000000000000a2")
    # The first item due names an undo this version does not have (a newer one stored it).
    await backlog.defer("ord_00000000000000a1", "notify_customer", NO_SPAN, "mail down")
    await backlog.defer("ord_00000000000000a2", "refund_payment", NO_SPAN, "payment down")

    system.clock.advance(backlog.backoff.cap)
    with caplog.at_level(logging.ERROR, logger="order_service.backlog"):
        await system.compensations.poll()

    assert "recovering abandoned orders failed" in caplog.text
    assert await charge_status(system, "ord_00000000000000a2") == "refunded"
    summary = await backlog.summary()
    assert summary.pending == 1
    (stuck,) = summary.items
    assert (stuck.action, stuck.attempts) == ("notify_customer", 2)
    assert "no undo named 'notify_customer'" in stuck.last_error
    assert stuck.next_attempt_in_seconds > 0  # backing off like any other, not spinning


# --- the schedule ----------------------------------------------------------------------------


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    telemetry = Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'order-service.db'}", telemetry)
    await create_tables(engine, storage.metadata)
    yield engine
    await engine.dispose()


def worker(backlog: Backlog, **actions: Callable[[str], Awaitable[object]]) -> CompensationWorker:
    return CompensationWorker(
        backlog, actions, trace.NoOpTracer(), abandon_after=60, warn_at=3, poll_interval=1
    )


@pytest.mark.parametrize(
    ("draw", "waits"),
    [
        (0.0, [2.5, 5, 10, 20, 30, 30, 30]),  # the shortest jitter allows: half the ceiling
        (1.0, [5, 10, 20, 40, 60, 60, 60]),  # the longest: the ceiling, at most the cap
    ],
)
async def test_a_failing_compensation_backs_off_exponentially_up_to_the_cap(
    engine: AsyncEngine, draw: float, waits: list[float]
) -> None:
    clock = FixedClock(T0)
    backlog = Backlog(engine, Backoff(base=5, cap=60, random=lambda: draw), clock)
    tried_at: list[datetime] = []

    async def refund(order_id: str) -> None:
        tried_at.append(clock())
        raise ConnectionError("payment-service is down")

    retries = worker(backlog, refund_payment=refund)
    await backlog.defer("ord_1", "refund_payment", NO_SPAN, "payment-service is down")

    schedule = []
    for _ in waits:
        (item,) = (await backlog.summary()).items
        assert item.next_attempt_at is not None
        schedule.append((item.attempts, (item.next_attempt_at - T0).total_seconds()))
        clock.now = item.next_attempt_at - timedelta(milliseconds=1)
        assert await retries.retry_due() == 0  # nothing due yet: nothing tried
        clock.now = item.next_attempt_at
        assert await retries.retry_due() == 1  # tried, failed, still pending
        assert tried_at[-1] == item.next_attempt_at

    elapsed = [sum(waits[: i + 1]) for i in range(len(waits))]
    assert schedule == list(zip(range(1, len(waits) + 1), elapsed, strict=True))
    assert len(tried_at) == len(waits)
    (item,) = (await backlog.summary()).items
    assert item.attempts == len(waits) + 1
    assert item.last_error == "payment-service is down"


async def test_nothing_is_dropped_however_many_attempts_fail(engine: AsyncEngine) -> None:
    clock = FixedClock(T0)
    backlog = Backlog(engine, Backoff(base=1, cap=8, random=random.Random(3).random), clock)
    outcomes = iter([ConnectionError("down")] * 40 + [None])

    async def release(order_id: str) -> None:
        failure = next(outcomes)
        if failure is not None:
            raise failure

    retries = worker(backlog, release_stock=release)
    await backlog.defer("ord_1", "release_stock", NO_SPAN, "down")
    for _ in range(40):
        (item,) = (await backlog.summary()).items
        assert item.next_attempt_at is not None
        wait = (item.next_attempt_at - clock.now).total_seconds()
        assert 0.5 * min(8, 2 ** (item.attempts - 1)) <= wait <= min(8, 2 ** (item.attempts - 1))
        clock.now = item.next_attempt_at
        assert await retries.retry_due() == 1
    clock.now += timedelta(seconds=8)
    assert await retries.retry_due() == 0
    assert (await backlog.summary()).pending == 0


def test_backoff_delays_stay_within_jitter_and_cap_forever() -> None:
    backoff = Backoff(base=5, cap=300, random=random.Random(11).random)
    for attempts in [*range(1, 200), 1023, 1024, 10**6]:
        ceiling = min(300, 5 * 2 ** min(attempts - 1, 100))
        assert ceiling / 2 <= backoff.delay(attempts) <= ceiling
    # The jitter really spreads retries that were deferred together (one outage).
    third = [backoff.delay(3) for _ in range(1000)]
    assert min(third) < 11 and max(third) > 19
    # A seeded source gives the same schedule twice.
    again = Backoff(base=5, cap=300, random=random.Random(11).random)
    first = Backoff(base=5, cap=300, random=random.Random(11).random)
    assert [again.delay(n) for n in range(1, 20)] == [first.delay(n) for n in range(1, 20)]
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base=10, cap=5)


def test_the_cap_below_the_base_stops_start_up() -> None:
    with pytest.raises(ValueError, match="ORDER_SERVICE_COMPENSATION_BACKOFF_CAP"):
        OrderSettings(compensation_backoff_base=10, compensation_backoff_cap=5)


async def test_the_backlog_warning_is_logged_once_per_crossing(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FixedClock(T0)
    backlog = Backlog(engine, Backoff(base=5, cap=60), clock)

    async def release(order_id: str) -> None:
        pass

    watcher = worker(backlog, release_stock=release)  # warns at 3
    caplog.set_level(logging.INFO, logger="order_service.backlog")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    for n in range(1, 6):
        await backlog.defer(f"ord_{n}", "release_stock", NO_SPAN, "inventory down")
        assert await watcher.watch_backlog() == n
    await watcher.watch_backlog()
    assert len(warnings()) == 1
    assert "3 compensations are waiting to be retried (warning at 3" in warnings()[0]

    clock.now += timedelta(minutes=1)
    assert await watcher.retry_due() == 0  # inventory is back: all five done
    assert await watcher.watch_backlog() == 0
    assert "below the warning at 3 again" in caplog.text
    for n in range(3):
        await backlog.defer(f"ord_again_{n}", "release_stock", NO_SPAN, "inventory down")
        await watcher.watch_backlog()
    assert len(warnings()) == 2


# --- GET /admin/compensations -----------------------------------------------------------------


async def test_the_backlog_lists_each_deferred_compensation(start_system: Any) -> None:
    async with start_system(wrap={"payment": down()}) as system:
        placed = await system.order.post("/orders", json=order_body(ITEMS))
        assert placed.status_code == 503
        order_id = placed.json()["order_id"]

        response = await system.order.get("/admin/compensations")
        assert response.status_code == 200
        backlog = response.json()
        assert backlog["pending"] == 1
        assert backlog["warn_at"] == 100
        assert backlog["oldest_age_seconds"] >= 0
        (item,) = backlog["items"]
        assert item["order_id"] == order_id
        assert item["action"] == "refund_payment"
        assert item["attempts"] == 1
        assert "payment-service" in item["last_error"]
        created = datetime.fromisoformat(item["created_at"])
        next_attempt = datetime.fromisoformat(item["next_attempt_at"])
        # The first retry comes after half to all of the base wait (5 s by default).
        assert 2.5 <= (next_attempt - created).total_seconds() <= 5
        assert 0 < item["next_attempt_in_seconds"] <= 5

        payment = system.transports["payment"]
        assert isinstance(payment, FaultyTransport)
        payment.enabled = False
        assert await system.retry_compensations() == 0
        backlog = (await system.order.get("/admin/compensations")).json()
        assert backlog == {"pending": 0, "oldest_age_seconds": None, "warn_at": 100, "items": []}
        # The admin API is not traced, like /admin/faults.
        assert not [s for s in system.spans() if "/admin" in s.name]


async def test_the_backlog_lists_at_most_limit_items_and_counts_them_all(system: System) -> None:
    backlog = system.compensations.backlog
    for n in range(3):
        await backlog.defer(f"ord_000000000000000{n}", "release_stock", NO_SPAN, "down")
    body = (await system.order.get("/admin/compensations", params={"limit": 2})).json()
    assert body["pending"] == 3
    assert [i["order_id"] for i in body["items"]] == [
        "ord_0000000000000000",
        "ord_0000000000000001",
    ]
    for bad in ("0", "1001", "many"):
        response = await system.order.get("/admin/compensations", params={"limit": bad})
        assert response.status_code == 422, bad


async def test_the_backlog_is_documented_in_the_openapi(system: System) -> None:
    schema = (await system.order.get("/openapi.json")).json()
    operation = schema["paths"]["/admin/compensations"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/CompensationBacklog"}
    fields = schema["components"]["schemas"]["DeferredCompensation"]["properties"]
    assert {"order_id", "attempts", "last_error", "next_attempt_at", "age_seconds"} <= set(fields)
    assert "422" in operation["responses"]


# --- a previous version's database ------------------------------------------------------------

#: pending_compensations as the previous version created it.
PREVIOUS = MetaData()
Table(
    "pending_compensations",
    PREVIOUS,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(40), index=True),
    Column("action", String(32)),
    Column("traceparent", String(64)),
    Column("attempts", Integer),
    Column("last_error", String(500)),
    Column("done_at", DateTime(timezone=True), index=True),
)


@pytest.fixture(params=["sqlite", "postgres"])
async def previous_database(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The order database of the previous version, with one refund still pending; its URL
    (None: the default SQLite file, ``order-service.db`` under the data directory)."""
    if request.param == "sqlite":
        url, database = None, f"sqlite+aiosqlite:///{tmp_path / 'order-service.db'}"
    else:
        base_url = request.getfixturevalue("postgres_cluster")
        name = f"order_{uuid.uuid4().hex[:8]}"
        url = database = (await create_databases(base_url, [name]))[name]
    engine = create_async_engine(database)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(PREVIOUS.create_all)
            await conn.execute(
                insert(PREVIOUS.tables["pending_compensations"]).values(
                    order_id="ord_00000000000000d1",
                    action="refund_payment",
                    traceparent="",
                    attempts=1,
                    last_error="payment-service is down",
                    done_at=None,
                )
            )
    finally:
        await engine.dispose()
    return url


async def test_a_previous_versions_database_is_upgraded_at_start(
    start_system: Any, previous_database: str | None
) -> None:
    async with start_system(databases={"order": previous_database}) as system:
        engine = system.apps["order"].state.engine
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("pending_compensations")}
            )
        assert {"created_at", "next_attempt_at"} <= columns

        backlog = (await system.order.get("/admin/compensations")).json()
        assert backlog["pending"] == 1
        (item,) = backlog["items"]
        assert item["attempts"] == 1
        assert item["created_at"] is None and item["next_attempt_at"] is None  # not recorded
        assert item["next_attempt_in_seconds"] == 0  # due at once

        # The old row is retried like any other, and new ones are stored beside it.
        await charge(system, "ord_00000000000000d1")
        assert await system.compensations.retry_due() == 0
        assert await charge_status(system, "ord_00000000000000d1") == "refunded"
        await system.compensations.backlog.defer(
            "ord_00000000000000d2", "release_stock", NO_SPAN, "x"
        )
        assert (await system.order.get("/admin/compensations")).json()["pending"] == 1


async def test_a_column_that_cannot_be_added_stops_start_up(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    old, new = MetaData(), MetaData()
    Table("t", old, Column("id", Integer, primary_key=True))
    Table(
        "t",
        new,
        Column("id", Integer, primary_key=True),
        Column("note", String(10), index=True),
        Column("size", Integer, nullable=False),
    )
    try:
        await create_tables(engine, old)
        with pytest.raises(RuntimeError, match="table t lacks column size, which is NOT NULL"):
            await create_tables(engine, new)
        async with engine.connect() as conn:
            assert (await conn.execute(select(old.tables["t"]))).all() == []
    finally:
        await engine.dispose()


# --- ordersim compensations -------------------------------------------------------------------


def backlog_client(answer: httpx.Response, seen: list[httpx.Request]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return httpx.Client(transport=httpx.MockTransport(handle))


async def test_cli_prints_what_the_order_service_serves(
    start_system: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with start_system(wrap={"payment": down()}) as system:
        placed = await system.order.post("/orders", json=order_body(ITEMS))
        order_id = placed.json()["order_id"]
        served = (await system.order.get("/admin/compensations")).json()

    seen: list[httpx.Request] = []
    out = io.StringIO()
    client = backlog_client(httpx.Response(200, json=served), seen)
    assert (
        compensations_cmd.show(
            url="127.0.0.1:9", console=Console(file=out, width=200), client=client
        )
        == 0
    )
    assert str(seen[0].url) == "http://127.0.0.1:9/admin/compensations?limit=100"
    text = out.getvalue()
    assert "1 pending, the oldest deferred" in text
    row = next(line for line in text.splitlines() if order_id in line).split()
    assert row[1:3] == ["refund_payment", "1"]  # the undo, its attempts
    assert row[4:6] == [
        "in",
        compensations_cmd.duration(served["items"][0]["next_attempt_in_seconds"]),
    ]
    assert "payment-service" in text

    client = backlog_client(httpx.Response(200, json=served), seen)
    assert compensations_cmd.show(url="127.0.0.1:9", limit=5, as_json=True, client=client) == 0
    assert json.loads(capsys.readouterr().out) == served
    assert seen[-1].url.params["limit"] == "5"


def test_cli_says_when_the_backlog_is_empty_or_longer_than_listed() -> None:
    item = {
        "id": 1,
        "order_id": "ord_00000000000000e1",
        "action": "cancel_shipment",
        "attempts": 9,
        "last_error": "shipping-service unavailable: ConnectError",
        "created_at": "2030-01-01T00:00:00Z",
        "age_seconds": 3725.0,
        "next_attempt_at": None,
        "next_attempt_in_seconds": 0,
    }
    for backlog, expected in (
        ({"pending": 0, "oldest_age_seconds": None, "warn_at": 100, "items": []}, ["no deferred"]),
        (
            {"pending": 120, "oldest_age_seconds": 3725.0, "warn_at": 100, "items": [item]},
            ["120 pending", "1h02m", "(warning from 100 on)", "due", "the oldest 1 of 120"],
        ),
    ):
        out = io.StringIO()
        client = backlog_client(httpx.Response(200, json=backlog), [])
        assert (
            compensations_cmd.show(url="x:1", console=Console(file=out, width=200), client=client)
            == 0
        )
        for text in expected:
            assert text in out.getvalue(), (text, out.getvalue())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(404, json={"detail": "Not Found"}), "has no /admin/compensations"),
        (httpx.Response(500, text="boom"), "answered HTTP 500"),
        (httpx.Response(200, json=["not", "a", "backlog"]), "something other than a backlog"),
    ],
)
def test_cli_refuses_an_unexpected_answer_with_exit_1(answer: httpx.Response, message: str) -> None:
    errors = io.StringIO()
    client = backlog_client(answer, [])
    status = compensations_cmd.show(
        url="x:1", console=Console(file=io.StringIO()), errors=Console(file=errors), client=client
    )
    assert status == 1
    assert message in errors.getvalue()


def test_cli_unreachable_order_service_exits_1_naming_the_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("ORDER_SERVICE_PORT", str(port))  # the default URL follows it
    assert ordersim(["compensations"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach order-service at http://127.0.0.1:{port}" in err
    assert "ordersim up" in err
    for bad in ("0", "1001", "ten"):
        with pytest.raises(SystemExit) as exited:
            ordersim(["compensations", "--limit", bad])
        assert exited.value.code == 2


def test_cli_durations_read_like_a_person_wrote_them() -> None:
    duration = compensations_cmd.duration
    assert [duration(s) for s in (None, 0.25, 42, 185, 7620, 273600)] == [
        "?",
        "250ms",
        "42s",
        "3m05s",
        "2h07m",
        "3d04h",
    ]
