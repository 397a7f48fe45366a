"""Every failure outcome: status code, stored status, ERROR spans, compensation, stock."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from ordersim.testing import FaultyTransport, SpanTree, System, down, slow
from tests.helpers import DECLINED, INSUFFICIENT_FUNDS, make_order_id, order_body

ITEMS = [("SKU-0001", 2), ("SKU-0018", 3)]  # plentiful + scarce
SKUS = [sku for sku, _ in ITEMS]


def names(spans: Iterable[Any]) -> set[str]:
    return {s.name for s in spans}


def is_error(span: Any) -> bool:
    return bool(span.status.status_code == StatusCode.ERROR)


async def place(system: System, body: dict[str, Any]) -> tuple[int, dict[str, Any], SpanTree]:
    response = await system.order.post("/orders", json=body)
    payload = response.json()
    spans = system.tree(payload["trace_id"]) if "trace_id" in payload else SpanTree([])
    return response.status_code, payload, spans


async def stored_status(system: System, order_id: str) -> str:
    response = await system.order.get(f"/orders/{order_id}")
    assert response.status_code == 200
    return str(response.json()["status"])


async def test_not_enough_stock_is_409_rejected_and_reserves_nothing(system: System) -> None:
    before = await system.stock(*SKUS)
    status, body, spans = await place(system, order_body([("SKU-0001", 2), ("SKU-0018", 11)]))

    assert status == 409
    assert body["status"] == "rejected"
    assert body["error"]["code"] == "out_of_stock"
    assert await stored_status(system, body["order_id"]) == "rejected"
    check = next(s for s in spans.find_all("check_stock") if s.attributes["shop.sku"] == "SKU-0018")
    assert is_error(check) and check.events[0].name == "exception"
    assert is_error(spans.find("reserve_stock", service="order-service"))
    assert is_error(spans.find("place_order"))
    # Nothing was reserved, so there is nothing to release and no charge was tried.
    assert not names(spans) & {"release_stock", "charge_payment"}
    assert await system.stock(*SKUS) == before


@pytest.mark.parametrize(
    ("card", "code"), [(DECLINED, "card_declined"), (INSUFFICIENT_FUNDS, "insufficient_funds")]
)
async def test_declined_card_is_402_and_releases_the_stock(
    system: System, card: str, code: str
) -> None:
    before = await system.stock(*SKUS)
    status, body, spans = await place(system, order_body(ITEMS, card=card))

    assert status == 402
    assert body["status"] == "payment_failed"
    assert body["error"]["code"] == code
    assert await stored_status(system, body["order_id"]) == "payment_failed"
    assert is_error(spans.find("authorize_card", service="payment-service"))
    assert is_error(spans.find("charge_payment"))
    release = spans.find("release_stock", service="order-service")
    assert not is_error(release)
    assert spans.find("release_reservation", service="inventory-service")
    # A declined charge changed nothing, so there is no refund to make.
    assert "refund_payment" not in names(spans)
    assert await system.stock(*SKUS) == before
    assert (await system.payment.get(f"/charges/{body['order_id']}")).status_code == 404


async def test_payment_down_is_503_and_compensates(start_system: Any) -> None:
    async with start_system(wrap={"payment": down()}) as system:
        before = await system.stock(*SKUS)
        status, body, spans = await place(system, order_body(ITEMS))

        assert status == 503
        assert body["status"] == "failed"
        assert body["error"]["code"] == "downstream_unavailable"
        assert "payment-service" in body["error"]["message"]
        assert await stored_status(system, body["order_id"]) == "failed"
        charge = spans.find("charge_payment")
        assert is_error(charge) and charge.events[0].name == "exception"
        assert not is_error(spans.find("release_stock"))
        # The charge may have landed before the connection broke, so a refund is owed;
        # payment is still down, so the refund is deferred to the retry worker.
        refund = spans.find("refund_payment", service="order-service")
        assert is_error(refund)
        assert "compensation_deferred" in [e.name for e in refund.events]
        assert await system.stock(*SKUS) == before

        # Once payment is back, the worker's retry lands it as a linked span.
        transport = system.transports["payment"]
        assert isinstance(transport, FaultyTransport)
        transport.enabled = False
        assert await system.retry_compensations() == 0
        assert await system.retry_compensations() == 0  # nothing left to do
        retry = system.tree().find("retry_refund_payment")
        assert retry.links[0].context.span_id == refund.context.span_id
        payment = (await system.payment.get(f"/charges/{body['order_id']}")).json()
        assert payment["status"] == "voided"


async def test_slow_shipping_after_charge_is_503_and_refunds(start_system: Any) -> None:
    async with start_system(
        wrap={"shipping": slow(30.0, "/shipments")}, call_timeout=1.0
    ) as system:
        before = await system.stock(*SKUS)
        status, body, spans = await place(system, order_body(ITEMS))

        assert status == 503
        assert body["status"] == "failed"
        assert "within 1s" in body["error"]["message"]
        assert await stored_status(system, body["order_id"]) == "failed"
        assert is_error(spans.find("create_shipment", service="order-service"))
        assert not is_error(spans.find("commit_stock"))
        for compensation in ("release_stock", "refund_payment"):
            assert not is_error(spans.find(compensation, service="order-service")), compensation
        assert "cancel_shipment" in names(spans)
        assert await system.stock(*SKUS) == before
        payment = (await system.payment.get(f"/charges/{body['order_id']}")).json()
        assert payment["status"] == "refunded"


async def test_commit_failure_after_charge_undoes_everything(start_system: Any) -> None:
    async with start_system(wrap={"inventory": down("/commit")}) as system:
        before = await system.stock(*SKUS)
        status, body, spans = await place(system, order_body(ITEMS))

        assert status == 503
        assert is_error(spans.find("commit_stock"))
        for compensation in ("release_stock", "refund_payment", "cancel_shipment"):
            assert not is_error(spans.find(compensation, service="order-service")), compensation
        assert await system.stock(*SKUS) == before
        order_id = body["order_id"]
        assert (await system.payment.get(f"/charges/{order_id}")).json()["status"] == "refunded"
        shipment = (await system.shipping.get(f"/shipments/{order_id}")).json()
        assert shipment["status"] == "cancelled"


async def test_inventory_down_at_validation_is_503_and_stored(start_system: Any) -> None:
    async with start_system(wrap={"inventory": down()}) as system:
        status, body, spans = await place(system, order_body(ITEMS))
        assert status == 503
        assert body["status"] == "failed"
        assert await stored_status(system, body["order_id"]) == "failed"
        assert is_error(spans.find("validate_order"))
        assert "reserve_stock" not in names(spans)


async def test_order_deadline_fails_the_order_and_compensates(start_system: Any) -> None:
    # Each call is within its own timeout, but together they outlast the order's deadline.
    async with start_system(
        wrap={"payment": slow(0.6, "/charges")}, call_timeout=1.0, order_deadline=0.4
    ) as system:
        before = await system.stock(*SKUS)
        status, body, spans = await place(system, order_body(ITEMS))
        assert status == 503
        assert body["error"]["code"] == "deadline_exceeded"
        assert "release_stock" in names(spans)
        assert await system.stock(*SKUS) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payment": {"card_number": "4242424242424241"}}, ["body", "payment", "card_number"]),
        # Digits of other scripts pass str.isdigit (and int()), not a card network.
        ({"payment": {"card_number": "\u0664\u0662" * 8}}, ["body", "payment", "card_number"]),
        ({"payment": {"card_number": "\uff14\uff12" * 8}}, ["body", "payment", "card_number"]),
        ({"payment": {"cvc": "\u0661\u0662\u0663"}}, ["body", "payment", "cvc"]),
        ({"items": [{"sku": "SKU-9999", "quantity": 1}]}, ["body", "items", 0, "sku"]),
        ({"items": [{"sku": "SKU-0001", "quantity": 0}]}, ["body", "items", 0, "quantity"]),
        ({"items": []}, ["body", "items"]),
        ({"customer_id": None}, ["body", "customer_id"]),
        (
            {"shipping_address": {"country": "United Kingdom"}},
            ["body", "shipping_address", "country"],
        ),
    ],
)
async def test_invalid_input_is_422_naming_the_field_and_stores_nothing(
    system: System, change: dict[str, Any], field: list[Any]
) -> None:
    body = order_body()
    for key, value in change.items():
        if isinstance(value, dict):
            body[key].update(value)
        else:
            body[key] = value
    response = await system.order.post("/orders", json=body)
    assert response.status_code == 422
    assert field in [error["loc"] for error in response.json()["detail"]]
    assert await system.order_count() == 0
    assert "4242424242424241" not in response.text


async def test_oversized_body_is_413(system: System) -> None:
    body = order_body()
    body["customer_id"] = "x" * 100_000
    response = await system.order.post("/orders", json=body)
    assert response.status_code == 413
    assert await system.order_count() == 0


async def test_unknown_order_is_404(system: System) -> None:
    assert (await system.order.get(f"/orders/{make_order_id()}")).status_code == 404


async def test_orders_abandoned_mid_flow_are_failed_and_undone(system: System) -> None:
    """The order service stopped after reserving and charging: the worker fails the order
    and undoes every step, so no stock stays reserved and no card stays charged."""
    from datetime import timedelta

    from order_service import storage
    from order_service.models import Order

    engine = system.apps["order"].state.engine
    before = await system.stock("SKU-0018")
    crashed, fresh = make_order_id(1), make_order_id(2)
    reserve = {"order_id": crashed, "items": [{"sku": "SKU-0018", "quantity": 3}]}
    assert (await system.inventory.post("/reservations", json=reserve)).status_code == 201
    charge = {
        "order_id": crashed,
        "amount": {"amount": "10.00", "currency": "USD"},
        "card": order_body()["payment"],
    }
    assert (await system.payment.post("/charges", json=charge)).status_code == 201
    long_ago = storage.now() - timedelta(hours=1)
    for order_id, at in ((crashed, long_ago), (fresh, storage.now())):
        await storage.insert_order(
            engine,
            Order(
                order_id=order_id,
                status="pending",
                customer_id="c",
                items=[],
                trace_id="ab" * 16,
                created_at=at,
                updated_at=at,
            ),
        )
    assert (await system.stock("SKU-0018"))["SKU-0018"] == before["SKU-0018"] - 3

    assert await system.compensations.recover_abandoned() == 1
    assert await system.compensations.retry_due() == 0  # queued due at once

    crashed_order = (await system.order.get(f"/orders/{crashed}")).json()
    assert crashed_order["status"] == "failed"
    assert crashed_order["error"]["code"] == "abandoned"
    assert (await system.order.get(f"/orders/{fresh}")).json()["status"] == "pending"
    assert await system.stock("SKU-0018") == before
    assert (await system.payment.get(f"/charges/{crashed}")).json()["status"] == "refunded"
    recovery = system.tree().find("recover_order")
    assert recovery.attributes["shop.order.trace_id"] == "ab" * 16
    retries = [s for s in system.spans() if s.name.startswith("retry_")]
    assert {s.name for s in retries} == {
        "retry_release_stock",
        "retry_refund_payment",
        "retry_cancel_shipment",
    }
    assert all(s.links[0].context.span_id == recovery.context.span_id for s in retries)
