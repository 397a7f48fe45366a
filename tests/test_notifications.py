"""A confirmed order's notification: after the response, in a trace of its own whose root
links to the order's span, never changing the order's outcome."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from common.fault_rules import FaultRule
from ordersim.testing import Gate, SpanTree, System, down
from tests.helpers import DECLINED, order_body


def notification_trace(system: System, order_id: str) -> SpanTree:
    root = next(
        s
        for s in system.spans()
        if s.name == "send_confirmation" and s.attributes["shop.order.id"] == order_id
    )
    return system.tree(f"{root.context.trace_id:032x}")


async def test_a_confirmed_order_is_notified_in_a_trace_linked_to_the_order(
    system: System,
) -> None:
    response = await system.order.post("/orders", json=order_body())
    assert response.status_code == 201
    body = response.json()
    await system.drain()

    order_spans = system.tree(body["trace_id"])
    place = order_spans.find("place_order")
    assert not order_spans.find_all("send_confirmation"), "not in the order's trace"
    spans = notification_trace(system, body["order_id"])
    root = spans.find("send_confirmation")
    assert root.parent is None, "a root of its own, not a child of a span that has ended"
    assert [link.context.span_id for link in root.links] == [place.context.span_id]
    assert root.links[0].context.trace_id == place.context.trace_id
    assert root.attributes["shop.order.trace_id"] == body["trace_id"]
    assert root.status.status_code == StatusCode.UNSET
    assert [e.name for e in root.events] == ["notified"]
    # The sink's side is in the same trace: order-service's call, shipping's server span.
    call = spans.find("POST /notifications", kind=SpanKind.CLIENT)
    server = spans.find("POST /notifications", kind=SpanKind.SERVER)
    assert server.parent.span_id == call.context.span_id
    assert spans.is_ancestor(root, spans.find("notify_customer"))

    sent = (await system.shipping.get(f"/notifications/{body['order_id']}")).json()
    assert body["shipping"]["tracking_id"] in sent["message"]


async def test_the_notification_runs_after_the_response_outside_the_request(
    start_system: Any,
) -> None:
    """Held at the sink, the notification does not hold the request: the POST has its
    answer and its ASGI cycle has returned (httpx's ASGITransport returns only then, and
    the instrumentation records the request's duration just before), and the server span
    has ended, before the notification has."""
    gate = Gate("/notifications")
    async with start_system(wrap={"shipping": gate.wrap}) as system:
        post = asyncio.create_task(system.order.post("/orders", json=order_body()))
        await gate.reached()
        # The notification is held at the sink; the request is answered all the same.
        async with asyncio.timeout(30):
            response = await post
        assert response.status_code == 201
        spans = system.tree(response.json()["trace_id"])
        server = spans.find("POST /orders", kind=SpanKind.SERVER)
        assert not system.tree().find_all("send_confirmation"), "still running"
        gate.open()
        await system.drain()
        root = system.tree().find("send_confirmation")
    assert root.start_time >= server.end_time, "started once the response had gone out"
    assert root.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("failure", ["down", "injected 500"])
async def test_a_failed_notification_leaves_the_order_confirmed(
    start_system: Any, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="order_service.notifications")
    wrap = {"shipping": down("/notifications")} if failure == "down" else {}
    async with start_system(wrap=wrap) as system:
        if failure == "injected 500":
            rule = FaultRule(endpoint="POST /notifications", error_rate=1.0)
            system.apps["shipping"].state.faults.replace([rule])
        response = await system.order.post("/orders", json=order_body())
        await system.drain()
        order_id = response.json()["order_id"]
        assert response.status_code == 201
        assert (await system.order.get(f"/orders/{order_id}")).json()["status"] == "confirmed"
        assert (await system.shipping.get(f"/notifications/{order_id}")).status_code == 404
        root = system.tree().find("send_confirmation")
    assert root.status.status_code == StatusCode.ERROR
    assert [e.name for e in root.events] == ["exception"]
    assert any(
        r.levelno == logging.WARNING and f"confirmation of order {order_id}" in r.getMessage()
        for r in caplog.records
    )


async def test_only_a_confirmed_order_is_notified_and_only_once(system: System) -> None:
    declined = await system.order.post("/orders", json=order_body(card=DECLINED))
    assert declined.status_code == 402
    headers = {"Idempotency-Key": "k-1"}
    first = await system.order.post("/orders", json=order_body(), headers=headers)
    replay = await system.order.post("/orders", json=order_body(), headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["idempotent-replayed"] == "true"
    await system.drain()
    [root] = system.tree().find_all("send_confirmation")
    assert root.attributes["shop.order.id"] == first.json()["order_id"]


async def test_the_sink_sends_once_per_live_shipment(system: System) -> None:
    """POST /notifications straight to shipping-service: a repeat returns the first as it
    was stored; no shipment is a 404, a cancelled one a 409, and neither stores anything."""
    order_id = (await system.order.post("/orders", json=order_body())).json()["order_id"]
    await system.drain()  # its own notification has gone out
    first = (await system.shipping.get(f"/notifications/{order_id}")).json()
    repeat = await system.shipping.post("/notifications", json={"order_id": order_id})
    assert repeat.status_code == 201
    assert repeat.json() == first

    declined = (await system.order.post("/orders", json=order_body(card=DECLINED))).json()
    missing = await system.shipping.post("/notifications", json={"order_id": declined["order_id"]})
    assert missing.status_code == 404
    # A cancel that comes first leaves a cancelled shipment (a tombstone).
    assert (await system.shipping.post("/shipments/ord_0000000000000001/cancel")).is_success
    cancelled = await system.shipping.post(
        "/notifications", json={"order_id": "ord_0000000000000001"}
    )
    assert cancelled.status_code == 409
    for order in (declined["order_id"], "ord_0000000000000001"):
        assert (await system.shipping.get(f"/notifications/{order}")).status_code == 404
