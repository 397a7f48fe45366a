"""Waterfalls that tell the truth: no span of ours ends after its parent, whatever the outcome.

A fan-out that returns before its calls have finished (plain ``asyncio.gather`` on the
first failure) leaves child bars sticking out of their parent; a deadline that cancels a
reservation or a charge halfway leaves the saga guessing what happened. Each outcome of
``POST /orders`` is placed here and its whole trace checked, once the requests that
callers gave up on have finished too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from common.concurrency import settle_all
from common.fault_rules import FaultRule
from common.http import Timeouts, create_http_client
from common.telemetry import setup_telemetry
from ordersim.testing import SpanTree, System, down, service_of, slow
from tests.helpers import DECLINED, order_body

PLENTIFUL = [("SKU-0001", 1), ("SKU-0002", 1), ("SKU-0003", 1), ("SKU-0004", 1)]
#: Out of stock first: its check fails while the other SKUs' checks are still running.
SHORT_FIRST = [("SKU-0018", 11), *PLENTIFUL]


async def place(system: System, body: dict[str, Any]) -> tuple[int, SpanTree]:
    response = await system.order.post("/orders", json=body)
    await system.drain()  # the server side of calls their caller gave up on
    return response.status_code, system.tree(response.json()["trace_id"])


async def all_checks(system: System, trace_id: str, count: int) -> SpanTree:
    """The trace once its ``count`` check_stock spans have ended (a fan-out that returned
    early leaves some still running after the response): polled, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        spans = system.tree(trace_id)
        if len(spans.find_all("check_stock")) >= count or loop.time() > deadline:
            return spans
        await asyncio.sleep(0.01)


def client_calls(spans: Iterable[ReadableSpan], path: str) -> list[ReadableSpan]:
    """order-service's HTTP CLIENT spans to ``path``."""
    return [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and service_of(s) == "order-service"
        and str(s.attributes.get("url.full", "")).endswith(path)
    ]


async def test_confirmed(system: System) -> None:
    status, spans = await place(system, order_body(PLENTIFUL))
    assert status == 201
    assert spans.outliving() == []


async def test_payment_declined(system: System) -> None:
    status, spans = await place(system, order_body(PLENTIFUL, card=DECLINED))
    assert status == 402
    assert spans.outliving() == []


async def test_out_of_stock_among_several_skus(system: System) -> None:
    response = await system.order.post("/orders", json=order_body(SHORT_FIRST))
    assert response.status_code == 409
    spans = await all_checks(system, response.json()["trace_id"], len(SHORT_FIRST))
    assert len(spans.find_all("check_stock")) == len(SHORT_FIRST)
    assert spans.outliving() == []


async def test_out_of_stock_with_the_checks_queued_for_one_connection(
    start_system: Any,
) -> None:
    """pool_of_one: the short SKU's check fails while the others still wait for the
    connection, so a fan-out that returns on the first failure always leaves them behind."""
    async with start_system(scenarios={"pool_of_one"}) as system:
        response = await system.order.post("/orders", json=order_body(SHORT_FIRST))
        assert response.status_code == 409
        spans = await all_checks(system, response.json()["trace_id"], len(SHORT_FIRST))
    assert len(spans.find_all("check_stock")) == len(SHORT_FIRST)
    assert spans.outliving() == []


async def test_downstream_down(start_system: Any) -> None:
    async with start_system(wrap={"payment": down("/charges")}) as system:
        status, spans = await place(system, order_body(PLENTIFUL))
    assert status == 503
    assert spans.find("refund_payment", service="order-service")
    assert spans.outliving() == []


async def test_downstream_too_slow(start_system: Any) -> None:
    """The shipment call times out; shipping's server span goes on after it, as the work
    really did, and everything else nests."""
    async with start_system(call_timeout=1.0) as system:
        rule = FaultRule(endpoint="POST /shipments", latency_ms=1500)
        system.apps["shipping"].state.faults.replace([rule])
        status, spans = await place(system, order_body(PLENTIFUL))
    assert status == 503
    [call] = client_calls(spans, "/shipments")
    assert "http.response.status_code" not in call.attributes  # no answer within 1 s
    server = next(s for s in spans if s.parent and s.parent.span_id == call.context.span_id)
    assert (server.end_time or 0) > (call.end_time or 0)
    assert spans.outliving() == []


class Deadline:
    """The order's deadline, passing when the test says: the moment a call reaches the
    service that ``on(path)`` wraps, so it passes while that call is in flight whatever the
    steps before took.

        deadline = Deadline()
        async with start_system(wrap={"payment": deadline.on("/charges")}) as system:
            deadline.install(system)
    """

    def __init__(self) -> None:
        self.scopes: list[asyncio.Timeout] = []

    def install(self, system: System) -> None:
        system.apps["order"].state.flow.deadline = self.scope

    def scope(self) -> asyncio.Timeout:
        timeout = asyncio.timeout(None)
        self.scopes.append(timeout)
        return timeout

    def on(self, path: str) -> Any:
        deadline = self

        class PassesOnArrival(httpx.AsyncBaseTransport):
            def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
                self.inner = inner

            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if request.url.path == path:
                    now = asyncio.get_running_loop().time()
                    for timeout in deadline.scopes:
                        timeout.reschedule(now)
                return await self.inner.handle_async_request(request)

        return PassesOnArrival


async def test_deadline_lets_the_charge_in_flight_settle(start_system: Any) -> None:
    """The order's deadline passes while the charge is in flight: the charge is not cut
    off halfway; the order waits for its answer, then refunds it, knowing it landed."""
    deadline = Deadline()
    async with start_system(wrap={"payment": deadline.on("/charges")}) as system:
        deadline.install(system)
        response = await system.order.post("/orders", json=order_body(PLENTIFUL))
        await system.drain()
        body = response.json()
        spans = system.tree(body["trace_id"])
        assert response.status_code == 503
        assert body["error"]["code"] == "deadline_exceeded"
        [charge] = client_calls(spans, "/charges")
        assert charge.attributes["http.response.status_code"] == 201
        assert spans.find("refund_payment", service="order-service")
        payment = (await system.payment.get(f"/charges/{body['order_id']}")).json()
        assert payment["status"] == "refunded"
    assert spans.outliving() == []


async def test_deadline_cancels_a_read_and_settles_the_reservation(start_system: Any) -> None:
    """The deadline passes during step 2 (it starts with it, and the reservation is held
    longer): the shipping quote (a read) is cancelled, the reservation beside it
    finishes, and its stock is released."""
    async with start_system(
        wrap={"shipping": slow(5.0, "/quotes"), "inventory": slow(0.5, "/reservations")},
        call_timeout=8.0,
        order_deadline=0.3,
    ) as system:
        stock = await system.stock("SKU-0001")
        response = await system.order.post("/orders", json=order_body(PLENTIFUL))
        await system.drain()
        spans = system.tree(response.json()["trace_id"])
        assert response.json()["error"]["code"] == "deadline_exceeded"
        [reservation] = client_calls(spans, "/reservations")
        assert reservation.attributes["http.response.status_code"] == 201
        [quote] = client_calls(spans, "/quotes")
        assert "http.response.status_code" not in quote.attributes  # cancelled, unanswered
        assert spans.find("release_stock", service="order-service")
        assert await system.stock("SKU-0001") == stock
    assert spans.outliving() == []


@pytest.mark.parametrize("scenarios", [set(), {"sequential_calls"}])
async def test_deadline_during_the_concurrent_mutations(
    start_system: Any, scenarios: set[str]
) -> None:
    """Commit and shipment in flight when the deadline passes: both settle, all undone."""
    deadline = Deadline()
    async with start_system(
        wrap={"shipping": deadline.on("/shipments")},
        scenarios=scenarios,
    ) as system:
        deadline.install(system)
        response = await system.order.post("/orders", json=order_body(PLENTIFUL))
        await system.drain()
        body = response.json()
        spans = system.tree(body["trace_id"])
        assert body["error"]["code"] == "deadline_exceeded"
        [shipment] = client_calls(spans, "/shipments")
        assert shipment.attributes["http.response.status_code"] == 201
        assert spans.find("cancel_shipment", service="order-service")
        cancelled = (await system.shipping.get(f"/shipments/{body['order_id']}")).json()
        assert cancelled["status"] == "cancelled"
    assert spans.outliving() == []


# --- the helpers themselves --------------------------------------------------------------


async def test_settle_all_waits_for_every_call_then_raises_the_first_failure() -> None:
    finished: list[str] = []
    release, both_failed = asyncio.Event(), asyncio.Event()

    async def fails(name: str) -> None:
        finished.append(name)
        if len(finished) == 2:
            both_failed.set()
        raise ValueError(name)

    async def slow_ok() -> str:
        await release.wait()
        finished.append("slow")
        return "slow"

    task = asyncio.create_task(settle_all(slow_ok(), fails("a"), fails("b")))
    await both_failed.wait()
    await asyncio.sleep(0)  # the failures' tasks finish
    assert not task.done()  # the failures did not end it: "slow" is still running
    release.set()
    with pytest.raises(ValueError, match="a"):
        await task
    assert finished == ["a", "b", "slow"]


async def test_a_cancelled_saga_step_settles_its_mutation_and_a_read_step_does_not(
    exporter: Any,
) -> None:
    """Cancelled (the order's deadline), a mutating step waits for its call and records
    that it landed; a read-only step stops at once. Both then pass the cancellation on."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from order_service.compensation import Saga, Undo

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saga = Saga("ord_0123456789abcdef", provider.get_tracer("test"), backlog=None)  # type: ignore[arg-type]
    started, answer = asyncio.Event(), asyncio.Event()
    done: list[str] = []

    async def mutation() -> str:
        started.set()
        await answer.wait()
        done.append("charged")
        return "charged"

    async def read() -> str:
        await asyncio.Event().wait()  # never answers
        return "quote"

    async def undo(order_id: str) -> None:
        done.append(f"refunded {order_id}")

    refund = Undo("refund_payment", undo)
    steps = asyncio.create_task(
        settle_all(
            saga.step("charge_payment", mutation(), undo=refund),
            saga.step("quote_shipping", read(), read_only=True),
        )
    )
    await started.wait()
    steps.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not steps.done()  # the charge is still in flight: nothing cut it off
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await steps
    await saga.compensate()  # it landed: the refund is owed
    assert done == ["charged", "refunded ord_0123456789abcdef"]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["charge_payment"].end_time >= spans["quote_shipping"].end_time


async def test_a_client_span_ends_after_the_last_byte_of_the_answer() -> None:
    """The transport returns at the headers; the CLIENT span must not end there, before
    the body (and maybe before the server had sent it), but once the body is read."""
    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry("test-service", processors=[SimpleSpanProcessor(exporter)])
    last_byte_ns: list[int] = []

    class TrickledBody(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'{"status":'
            await asyncio.sleep(0)
            last_byte_ns.append(time.time_ns())
            yield b' "ok"}'

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=TrickledBody())

    http = create_http_client(
        "http://inventory", telemetry, timeouts=Timeouts(), transport=httpx.MockTransport(answer)
    )
    async with http:
        response = await http.get("/healthz")
    assert response.json() == {"status": "ok"}
    [span] = exporter.get_finished_spans()
    assert span.end_time is not None and span.end_time >= last_byte_ns[0]
