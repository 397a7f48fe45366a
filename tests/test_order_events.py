"""``Prefer: respond-async`` (202, the steps in a trace linked to the request's) and
``GET /orders/{order_id}/events`` (Server-Sent Events from the database, a span per
event, a client that leaves halfway)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse
from opentelemetry.trace import SpanKind, StatusCode

from common.cancellation import ATTR_REASON
from ordersim.testing import Gate, System
from tests.helpers import DECLINED, order_body

ASYNC = {"Prefer": "respond-async"}
CONFIRMED_STEPS = ["pending", "reserved", "charged", "shipped", "confirmed"]


async def events(client: httpx.AsyncClient, order_id: str, **kwargs: Any) -> list[ServerSentEvent]:
    """Every event of the order's stream, up to its end."""
    async with aconnect_sse(client, "GET", f"/orders/{order_id}/events", **kwargs) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in source.aiter_sse()]


async def test_respond_async_answers_202_and_runs_the_steps_in_a_linked_trace(
    system: System,
) -> None:
    response = await system.order.post("/orders", json=order_body(), headers=ASYNC)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending" and body["items"]
    assert response.headers["location"] == f"/orders/{body['order_id']}"
    assert response.headers["preference-applied"] == "respond-async"
    assert response.headers["traceresponse"].startswith(f"00-{body['trace_id']}-")
    await system.drain()
    order = (await system.order.get(response.headers["location"])).json()
    assert order["status"] == "confirmed"
    assert order["trace_id"] == body["trace_id"], "the order names the response's trace"

    request = system.tree(body["trace_id"])
    server = request.find("POST /orders", kind=SpanKind.SERVER)
    accept = request.find("accept_order")
    assert accept.parent.span_id == server.context.span_id
    assert server.attributes["http.response.status_code"] == 202
    assert not request.find_all("place_order")
    # The steps: a root of their own, linked to the request's span, found from its trace.
    root = system.tree().find("place_order")
    assert root.parent is None
    assert [link.context.span_id for link in root.links] == [accept.context.span_id]
    assert root.attributes["shop.order.trace_id"] == body["trace_id"]
    assert root.attributes["shop.order.status"] == "confirmed"
    assert root.start_time >= server.end_time, "started once the 202 had gone out"
    steps = system.tree(f"{root.context.trace_id:032x}")
    for name in ("reserve_stock", "charge_payment", "create_shipment", "save_order"):
        assert steps.find(name, service="order-service").parent.span_id == root.context.span_id
    # Its notification links to it in turn.
    [notification] = system.tree().find_all("send_confirmation")
    assert notification.links[0].context.span_id == root.context.span_id


async def test_respond_async_still_refuses_an_invalid_order_at_once(system: System) -> None:
    body = order_body([("SKU-9999", 1)])
    response = await system.order.post("/orders", json=body, headers=ASYNC)
    assert response.status_code == 422
    assert await system.order_count() == 0


async def test_the_stream_of_a_202_order_follows_it_live(system: System) -> None:
    """Opened right after the 202: each step as it is stored, each event a span under the
    request's span, the stream ending after the final status."""
    response = await system.live.post("/orders", json=order_body(), headers=ASYNC)
    order_id = response.json()["order_id"]
    received = await events(system.live, order_id)
    assert [e.event for e in received] == CONFIRMED_STEPS
    data = [json.loads(e.data) for e in received]
    assert [d["step"] for d in data] == CONFIRMED_STEPS
    assert [d["final"] for d in data] == [False] * 4 + [True]
    assert (
        [int(e.id) for e in received] == [d["seq"] for d in data] == sorted(d["seq"] for d in data)
    )
    assert (
        data[-1]["detail"]["total"]
        == (await system.order.get(f"/orders/{order_id}")).json()["total"]["amount"]
    )
    await system.drain()

    get = next(
        s
        for s in system.spans()
        if s.kind == SpanKind.SERVER and s.name == "GET /orders/{order_id}/events"
    )
    spans = system.tree(f"{get.context.trace_id:032x}")
    stream = spans.find("stream_order_events")
    assert stream.parent.span_id == get.context.span_id
    sent = spans.find_all("send_order_event")
    assert [s.attributes["shop.order.step"] for s in sent] == CONFIRMED_STEPS
    assert all(s.parent.span_id == stream.context.span_id for s in sent)
    assert stream.attributes["shop.events.sent"] == 5
    assert stream.status.status_code == StatusCode.UNSET and not stream.events


async def test_a_final_order_streams_its_history_and_ends(system: System) -> None:
    confirmed = (await system.order.post("/orders", json=order_body())).json()
    declined = (await system.order.post("/orders", json=order_body(card=DECLINED))).json()
    assert [e.event for e in await events(system.order, confirmed["order_id"])] == CONFIRMED_STEPS
    history = await events(system.order, declined["order_id"])
    assert [e.event for e in history] == ["pending", "reserved", "payment_failed"]
    assert json.loads(history[-1].data)["detail"]["code"] == "card_declined"
    # Last-Event-ID resumes after that event.
    after = history[1].id
    resumed = await events(system.order, declined["order_id"], headers={"Last-Event-ID": after})
    assert [e.event for e in resumed] == ["payment_failed"]


async def test_the_stream_refuses_what_it_cannot_follow(system: System) -> None:
    unknown = await system.order.get("/orders/ord_0000000000000000/events")
    assert unknown.status_code == 404
    order_id = (await system.order.post("/orders", json=order_body())).json()["order_id"]
    bad = await system.order.get(f"/orders/{order_id}/events", headers={"Last-Event-ID": "last"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["header", "last-event-id"]


async def test_a_client_that_leaves_mid_stream_ends_it_marked_and_the_order_goes_on(
    start_system: Any,
) -> None:
    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        response = await system.live.post("/orders", json=order_body(), headers=ASYNC)
        order_id = response.json()["order_id"]
        await gate.reached()  # the order waits at its charge
        async with aconnect_sse(system.live, "GET", f"/orders/{order_id}/events") as source:
            seen = []
            async for event in source.aiter_sse():
                seen.append(event.event)
                if event.event == "reserved":
                    break  # and hang up
        assert seen == ["pending", "reserved"]
        gate.open()
        await system.drain()
        assert (await system.order.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
        stream = system.tree().find("stream_order_events")
    assert stream.status.status_code == StatusCode.ERROR
    [cancelled] = stream.events
    assert (cancelled.name, cancelled.attributes[ATTR_REASON]) == (
        "cancelled",
        "client disconnected",
    )
    assert stream.attributes["shop.events.sent"] == 2


async def test_a_client_that_gives_up_on_post_orders_does_not_cancel_the_order(
    start_system: Any,
) -> None:
    """The client hangs up while the order waits for its charge: uvicorn (here the live
    transport) tells the app ``http.disconnect``, and nothing in the app cancels the
    handler for it, so the order runs to its end."""
    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        post = asyncio.create_task(system.live.post("/orders", json=order_body()))
        await gate.reached()
        post.cancel()  # the client goes away
        await asyncio.wait([post])
        gate.open()
        await system.drain()
        place = system.tree().find("place_order")
        order_id = place.attributes["shop.order.id"]
        assert (await system.order.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
    assert place.attributes["shop.order.status"] == "confirmed"
    assert not [s for s in system.spans() if any(e.name == "cancelled" for e in s.events)]


async def test_a_202_order_cut_short_by_a_stopping_service_is_not_stuck(
    start_system: Any,
) -> None:
    """The service stops while a 202'd order waits for its charge: its detached steps are
    cancelled (the charge in flight settles first), their span says so, and the order
    stays pending; the compensation worker (any order-service process's) then fails it
    as abandoned and undoes what landed, as for any order a stopped process left."""
    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        stock = await system.stock("SKU-0001")
        response = await system.order.post("/orders", json=order_body(), headers=ASYNC)
        order_id = response.json()["order_id"]
        await gate.reached()
        stopping = asyncio.create_task(system.apps["order"].state.detached.close(0))
        gate.open()  # the charge in flight settles, then the cancellation goes on
        await stopping
        assert (await system.order.get(f"/orders/{order_id}")).json()["status"] == "pending"

        worker = system.compensations
        system.clock.advance(worker.abandon_after + 1)
        assert await worker.recover_abandoned() == 1
        assert await worker.retry_due() == 0
        await system.drain()
        order = (await system.order.get(f"/orders/{order_id}")).json()
        assert (order["status"], order["error"]["code"]) == ("failed", "abandoned")
        steps = [e.event for e in await events(system.order, order_id)]
        assert steps == ["pending", "reserved", "failed"]
        assert await system.stock("SKU-0001") == stock
        charge = (await system.payment.get(f"/charges/{order_id}")).json()
        assert charge["status"] == "refunded"
        root = system.tree().find("place_order")
    assert root.status.status_code == StatusCode.ERROR
    assert [(e.name, e.attributes.get(ATTR_REASON)) for e in root.events] == [
        ("reserved", None),
        ("cancelled", "the service is stopping"),
    ]
    charge_step = system.tree().find("charge_payment", service="order-service")
    assert [(e.name, e.attributes[ATTR_REASON]) for e in charge_step.events] == [
        ("cancelled", "order cancelled (the service is stopping)")
    ]
