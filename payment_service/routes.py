"""payment-service endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from opentelemetry import trace

from common.deps import EngineDep, TracerDep
from common.errors import error_responses
from common.ids import OrderId
from common.openapi import links
from payment_service import cards, storage
from payment_service.errors import PaymentDeclined
from payment_service.models import (
    Card,
    ChargeRequest,
    Payment,
    PaymentDeclinedError,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["payment"])

#: Cards whose number starts with this (a BIN range) go to the legacy processor when the
#: "slow_card_range" scenario is on; it answers after this many seconds.
LEGACY_BIN_RANGE = "5555"
LEGACY_PROCESSOR_DELAY = 0.3

#: Sends an authorization to a card processor: :func:`primary_only`, or the variant of a
#: planted scenario (:func:`route_by_bin_range`), chosen when the app is built
#: (``app.state.route_card``).
RouteCard = Callable[[Card, trace.Span], Awaitable[None]]


def _authorize(card: Card) -> None:
    """The simulated card network: test-mode numbers decide the outcome."""
    number = card.card_number.get_secret_value()
    if number == cards.DECLINED:
        raise PaymentDeclined("card_declined", "the card was declined")
    if number == cards.INSUFFICIENT_FUNDS:
        raise PaymentDeclined("insufficient_funds", "insufficient funds")


async def primary_only(card: Card, span: trace.Span) -> None:
    """Every card goes to the one primary processor, in process: nothing to wait for."""


async def route_by_bin_range(card: Card, span: trace.Span) -> None:
    """Send the authorization to the processor of the card's BIN range."""
    legacy = card.card_number.get_secret_value().startswith(LEGACY_BIN_RANGE)
    processor = "legacy" if legacy else "primary"
    span.add_event("processor_called", {"shop.payment.processor": processor})
    if legacy:
        await asyncio.sleep(LEGACY_PROCESSOR_DELAY)  # the legacy processor's round trip


async def _route_card(request: Request) -> RouteCard:
    chosen: RouteCard = request.app.state.route_card
    return chosen


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: links(
            "order_id",
            GetCharge=("get", "/charges/{order_id}"),
            RefundCharge=("post", "/charges/{order_id}/refund"),
        ),
        402: {"model": PaymentDeclinedError, "description": "The card was declined."},
        **error_responses({409: "The order's payment was refunded or voided already."}),
    },
)
async def charge(
    body: ChargeRequest,
    engine: EngineDep,
    tracer: TracerDep,
    route_card: Annotated[RouteCard, Depends(_route_card)],
) -> Payment:
    """Authorize and capture a charge (idempotent per order; 402 when declined)."""
    with tracer.start_as_current_span("authorize_card") as span:
        span.set_attributes(
            {
                "shop.order.id": body.order_id,
                "shop.payment.amount": str(body.amount.amount),
                "shop.payment.currency": body.amount.currency,
                "shop.payment.card_brand": body.card.brand,
                "shop.payment.card_last4": body.card.last4,
            }
        )
        await route_card(body.card, span)
        try:
            _authorize(body.card)
        except PaymentDeclined as exc:
            logger.info(
                "order %s: card ending %s not authorized (%s)",
                body.order_id,
                body.card.last4,
                exc.code,
                extra={"shop.order.id": body.order_id},
            )
            raise
        span.add_event("authorized")
    with tracer.start_as_current_span("capture_payment") as span:
        span.set_attribute("shop.order.id", body.order_id)
        payment = await storage.capture(engine, body.order_id, body.amount, body.card.last4)
        span.set_attribute("shop.payment.id", payment.payment_id)
        span.add_event("charged")
        logger.info(
            "order %s: charged %s %s",
            body.order_id,
            body.amount.amount,
            body.amount.currency,
            extra={"shop.order.id": body.order_id, "shop.payment.id": payment.payment_id},
        )
        return payment


@router.get("/charges/{order_id}", responses=error_responses({404: "The order has no payment."}))
async def get_charge(order_id: OrderId, engine: EngineDep) -> Payment:
    """One order's payment and its status."""
    return await storage.get_payment(engine, order_id)


@router.post("/charges/{order_id}/refund")
async def refund(order_id: OrderId, engine: EngineDep, tracer: TracerDep) -> Payment:
    """Refund the order's charge (idempotent; also refuses a charge that arrives later)."""
    with tracer.start_as_current_span("refund_payment") as span:
        span.set_attribute("shop.order.id", order_id)
        payment = await storage.refund(engine, order_id)
        span.add_event("refunded", {"shop.payment.status": payment.status})
        logger.info(
            "order %s: payment %s", order_id, payment.status, extra={"shop.order.id": order_id}
        )
        return payment
