"""Several processes of one service share its database and nothing else: background work is
claimed there, so each item is done once; an order another process failed as abandoned
stays failed; fault rules set through one replica apply on all of them."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import create_engine, create_tables
from common.http import Recycled, WholeResponses, default_transport
from common.telemetry import Telemetry
from order_service import storage
from order_service.backlog import Backlog, Backoff, CompensationWorker
from ordersim.cli import main as ordersim
from ordersim.testing import Gate, System
from ordersim.testing.processes import free_port
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from tests.helpers import make_order_id, order_body
from tests.postgres import create_databases

T0 = datetime(2030, 1, 1, tzinfo=UTC)
NO_SPAN = trace.INVALID_SPAN_CONTEXT
LEASE = timedelta(minutes=10)
OFF = Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """The order service's database, on SQLite and on PostgreSQL."""
    if request.param == "postgres":
        name = f"replicas_{uuid.uuid4().hex[:8]}"
        url = (await create_databases(request.getfixturevalue("postgres_cluster"), [name]))[name]
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'order-service.db'}"
    engine = create_engine(url, OFF)
    await create_tables(engine, storage.metadata)
    yield engine
    await engine.dispose()


def worker(backlog: Backlog, **actions: Any) -> CompensationWorker:
    return CompensationWorker(
        backlog,
        actions,
        trace.NoOpTracer(),
        abandon_after=60,
        poll_interval=1,
        lease=LEASE.total_seconds(),
    )


async def test_a_compensation_is_claimed_by_one_worker_until_its_lease_ends(
    engine: AsyncEngine,
) -> None:
    await storage.add_compensation(engine, "ord_1", "refund_payment", "", "down", at=T0, due=T0)

    (item,) = await storage.claim_due(engine, "a", T0, LEASE)
    assert (item.order_id, item.attempts) == ("ord_1", 2)  # this attempt counted
    assert await storage.claim_due(engine, "b", T0 + LEASE / 2, LEASE) == []

    # Worker a stopped mid-attempt: once its lease is over, b takes the item over, and a's
    # late outcome is not stored over b's claim.
    (again,) = await storage.claim_due(engine, "b", T0 + LEASE, LEASE)
    assert (again.id, again.attempts) == (item.id, 3)
    assert not await storage.finish_compensation(engine, item.id, "a", error=None, at=T0)
    assert await storage.finish_compensation(engine, item.id, "b", error=None, at=T0)
    assert await storage.claim_due(engine, "a", T0 + 10 * LEASE, LEASE) == []


async def test_two_workers_claiming_at_once_try_the_item_once(engine: AsyncEngine) -> None:
    backlog = Backlog(engine, Backoff(base=5, cap=60), FixedClock(T0 + timedelta(minutes=1)))
    calls: list[str] = []

    async def refund(order_id: str) -> None:
        calls.append(order_id)

    await storage.add_compensation(engine, "ord_1", "refund_payment", "", "down", at=T0, due=T0)
    first, second = worker(backlog, refund_payment=refund), worker(backlog, refund_payment=refund)
    assert await asyncio.gather(first.retry_due(), second.retry_due()) == [0, 0]
    assert calls == ["ord_1"]


async def test_an_attempt_that_outlasts_its_backoff_is_not_tried_again_meanwhile(
    engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    backlog = Backlog(engine, Backoff(base=5, cap=60), clock)
    calls: list[str] = []
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow_refund(order_id: str) -> None:
        calls.append(order_id)
        if len(calls) == 1:  # the first attempt is held; a second (the bug) is not
            started.set()
            await finish.wait()

    await storage.add_compensation(engine, "ord_1", "refund_payment", "", "down", at=T0, due=T0)
    first = asyncio.create_task(worker(backlog, refund_payment=slow_refund).retry_due())
    await started.wait()
    # Longer than any backoff (the cap), shorter than the lease: still the first worker's.
    clock.now = T0 + timedelta(minutes=2)
    assert await worker(backlog, refund_payment=slow_refund).retry_due() == 0
    assert calls == ["ord_1"]
    finish.set()
    assert await first == 0
    assert (await backlog.summary()).pending == 0


async def test_postgres_claims_skip_the_rows_another_worker_is_claiming(
    engine: AsyncEngine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: nothing to skip")
    await storage.add_compensation(engine, "ord_1", "refund_payment", "", "down", at=T0, due=T0)
    await storage.add_compensation(engine, "ord_2", "release_stock", "", "down", at=T0, due=T0)
    async with engine.connect() as a, engine.connect() as b:
        await a.begin()
        first = await a.run_sync(storage._claim_due, "a", T0, LEASE, 1)  # not committed yet
        await b.begin()
        # Waiting for a's lock would fail here instead of hanging the test.
        await b.execute(text("SET LOCAL lock_timeout = '5s'"))
        second = await b.run_sync(storage._claim_due, "b", T0, LEASE, 10)
        await a.commit()
        await b.commit()
    assert [i.order_id for i in first] == ["ord_1"]
    assert [i.order_id for i in second] == ["ord_2"]


async def test_an_order_failed_as_abandoned_meanwhile_is_not_confirmed(start_system: Any) -> None:
    """Its request was slow, another process's worker took it for abandoned and queued its
    undos: the request's end must not store it as confirmed over that."""
    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        system: System
        stock = await system.stock("SKU-0018")
        placing = asyncio.create_task(
            system.order.post("/orders", json=order_body([("SKU-0018", 2)]))
        )
        await gate.reached()
        system.clock.advance(system.compensations.abandon_after + 1)
        assert await system.compensations.recover_abandoned() == 1
        gate.open()
        response = await placing
        assert response.status_code == 503, response.text
        order = response.json()
        assert (order["status"], order["error"]["code"]) == ("failed", "abandoned")
        stored = await system.order.get(f"/orders/{order['order_id']}")
        assert stored.json()["status"] == "failed"

        # Its undos run, and leave nothing taken.
        assert await system.compensations.retry_due() == 0
        await system.drain()
        assert await system.stock("SKU-0018") == stock
        charge = await system.payment.get(f"/charges/{order['order_id']}")
        assert charge.json()["status"] == "refunded"
        events = await system.order.get(f"/orders/{order['order_id']}/events")
        assert "confirmed" not in events.text


async def test_update_order_stores_only_over_a_pending_order(engine: AsyncEngine) -> None:
    order = storage.Order(
        order_id="ord_0000000000000001",
        status="pending",
        customer_id="c",
        items=[],
        trace_id="ab" * 16,
        created_at=T0,
        updated_at=T0,
    )
    await storage.insert_order(engine, order)
    failed = order.model_copy(update={"status": "failed"})
    assert await storage.fail_abandoned(engine, failed, ["refund_payment"], "", T0)
    confirmed = order.model_copy(update={"status": "confirmed"})
    assert not await storage.update_order(engine, confirmed)
    assert (await storage.get_order(engine, order.order_id)).status == "failed"


@pytest.fixture(params=["sqlite", "postgres"])
async def two_payment_replicas(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two payment-service apps on one database, as two processes would run."""
    url = None
    if request.param == "postgres":
        name = f"payment_{uuid.uuid4().hex[:8]}"
        url = (await create_databases(request.getfixturevalue("postgres_cluster"), [name]))[name]
    settings = PaymentSettings(data_dir=tmp_path, database_url=url)
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_payment(settings, OFF)
            manager = await stack.enter_async_context(LifespanManager(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=manager.app), base_url="http://payment"
                    )
                )
            )
        yield clients[0], clients[1]


async def answers(client: httpx.AsyncClient, status: int) -> None:
    """Poll ``GET /charges/{id}`` (404: no such charge) until it answers ``status``."""
    deadline = time.monotonic() + 20
    while (await client.get(f"/charges/{make_order_id(1)}")).status_code != status:
        assert time.monotonic() < deadline, f"no {status} within 20 s"
        await asyncio.sleep(0.05)


async def test_fault_rules_set_through_one_replica_apply_on_the_other(
    two_payment_replicas: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = two_payment_replicas
    rule = {"endpoint": "GET /charges", "error_rate": 1.0}
    assert (await other.get(f"/charges/{make_order_id(1)}")).status_code == 404
    assert (await one.put("/admin/faults", json=[rule])).status_code == 200

    # The other replica takes the rule up on its own (it looks every second)...
    await answers(other, 500)
    assert (await other.get(f"/charges/{make_order_id(1)}")).json()["code"] == "injected_fault"
    assert [r["endpoint"] for r in (await other.get("/admin/faults")).json()] == ["GET /charges"]
    # ...and a clear through it reaches the first.
    assert (await other.delete("/admin/faults")).json() == []
    await answers(one, 404)
    assert (await one.get("/admin/faults")).json() == []


class Pool(httpx.AsyncBaseTransport):
    """A connection pool that answers each request once the test lets it."""

    def __init__(self) -> None:
        self.requests = 0
        self.closed = False
        self.answer = asyncio.Event()
        self.answer.set()
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert not self.closed
        self.requests += 1
        self.arrived.set()
        await self.answer.wait()
        return httpx.Response(200, request=request)

    async def aclose(self) -> None:
        self.closed = True


async def test_pooled_connections_are_replaced_once_their_lifetime_is_over() -> None:
    pools: list[Pool] = []
    now = 0.0

    def new_pool() -> Pool:
        pools.append(Pool())
        return pools[-1]

    recycled = Recycled(new_pool, lifetime=30, clock=lambda: now)
    request = httpx.Request("GET", "http://inventory/products")
    for _ in range(3):
        await recycled.handle_async_request(request)
    assert [p.requests for p in pools] == [3]

    # A request still waiting for its answer when the lifetime ends keeps its pool open.
    pools[0].answer.clear()
    pools[0].arrived.clear()
    waiting = asyncio.create_task(recycled.handle_async_request(request))
    await pools[0].arrived.wait()
    now = 30.0
    await recycled.handle_async_request(request)
    assert [p.requests for p in pools] == [4, 1]
    assert not pools[0].closed
    pools[0].answer.set()
    assert (await waiting).status_code == 200
    assert pools[0].closed  # closed with its last answer

    now = 75.0  # an idle pool past its lifetime is closed at the next request
    await recycled.handle_async_request(request)
    assert [p.requests for p in pools] == [4, 1, 1]
    assert [p.closed for p in pools] == [True, True, False]
    await recycled.aclose()
    assert pools[2].closed


async def test_a_recycled_pool_does_not_load_the_ca_bundle_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle costs 20-26 ms of CPU on the event loop, and each client
    builds a new pool every ``connection_lifetime`` seconds."""
    now = 0.0
    recycled = Recycled(lambda: WholeResponses(default_transport()), 30, clock=lambda: now)
    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    first = recycled.pool
    nobody = f"http://127.0.0.1:{free_port()}/"  # a port no one listens on
    for _ in range(3):
        now += 30.0
        # The first request of a lifetime builds the new pool, then fails to connect.
        with pytest.raises(httpx.TransportError):
            await recycled.handle_async_request(httpx.Request("GET", nobody))
    assert recycled.pool is not first
    assert loads == []
    await recycled.aclose()


@pytest.mark.parametrize("value", ["0", "-1", "two", "17"])
def test_up_refuses_a_replica_count_out_of_range(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        ordersim(["up", "--replicas", value])
    assert exited.value.code == 2
    assert "--replicas: give a whole number from 1 to 16" in capsys.readouterr().err
