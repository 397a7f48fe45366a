"""shipping-service endpoints."""

from __future__ import annotations

import logging

from fastapi import APIRouter, status

from common.deps import EngineDep, TracerDep
from common.errors import error_responses
from common.ids import OrderId
from common.openapi import links
from shipping_service import storage
from shipping_service.models import (
    Notification,
    NotificationRequest,
    Quote,
    QuoteRequest,
    Shipment,
    ShipmentRequest,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["shipping"])


@router.post("/quotes")
async def quote(body: QuoteRequest, engine: EngineDep, tracer: TracerDep) -> Quote:
    """Price the delivery of `item_count` items to an address."""
    with tracer.start_as_current_span("rate_shipment") as span:
        carrier, cost, days = storage.rate(body.address, body.item_count)
        span.set_attributes(
            {
                "shop.shipping.country": body.address.country,
                "shop.shipping.carrier": carrier,
                "shop.shipping.cost": str(cost.amount),
                "shop.item.count": body.item_count,
            }
        )
    return await storage.save_quote(engine, carrier, cost, days)


@router.post(
    "/shipments",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: links(
            "order_id",
            GetShipment=("get", "/shipments/{order_id}"),
            CancelShipment=("post", "/shipments/{order_id}/cancel"),
        ),
        **error_responses(
            {404: "No such quote.", 409: "The order's shipment was cancelled already."}
        ),
    },
)
async def create_shipment(body: ShipmentRequest, engine: EngineDep, tracer: TracerDep) -> Shipment:
    """Create an order's shipment from a quote (idempotent per order)."""
    with tracer.start_as_current_span("create_shipment") as span:
        span.set_attribute("shop.order.id", body.order_id)
        shipment = await storage.create_shipment(engine, body.order_id, body.quote_id)
        span.add_event("shipped", {"shop.shipping.carrier": shipment.carrier or ""})
        logger.info(
            "order %s: shipment %s with %s",
            body.order_id,
            shipment.tracking_id,
            shipment.carrier,
            extra={"shop.order.id": body.order_id},
        )
        return shipment


@router.get("/shipments/{order_id}", responses=error_responses({404: "The order has no shipment."}))
async def get_shipment(order_id: OrderId, engine: EngineDep) -> Shipment:
    """One order's shipment and its status."""
    return await storage.get_shipment(engine, order_id)


@router.post("/shipments/{order_id}/cancel")
async def cancel_shipment(order_id: OrderId, engine: EngineDep, tracer: TracerDep) -> Shipment:
    """Cancel an order's shipment (idempotent; also refuses one that arrives later)."""
    with tracer.start_as_current_span("cancel_shipment") as span:
        span.set_attribute("shop.order.id", order_id)
        shipment = await storage.cancel_shipment(engine, order_id)
        logger.info("order %s: shipment cancelled", order_id, extra={"shop.order.id": order_id})
        return shipment


@router.post(
    "/notifications",
    status_code=status.HTTP_201_CREATED,
    tags=["notifications"],
    responses={
        201: links("order_id", GetNotification=("get", "/notifications/{order_id}")),
        **error_responses(
            {404: "The order has no shipment.", 409: "The order's shipment was cancelled."}
        ),
    },
)
async def notify_customer(
    body: NotificationRequest, engine: EngineDep, tracer: TracerDep
) -> Notification:
    """Send an order's confirmation to its customer (idempotent per order: a repeat
    returns the first). The notification sink: nothing leaves ordersim."""
    with tracer.start_as_current_span("notify_customer") as span:
        span.set_attribute("shop.order.id", body.order_id)
        return await storage.notify(engine, body.order_id)


@router.get(
    "/notifications/{order_id}",
    tags=["notifications"],
    responses=error_responses({404: "No notification was sent for the order."}),
)
async def get_notification(order_id: OrderId, engine: EngineDep) -> Notification:
    """The confirmation sent for an order."""
    return await storage.get_notification(engine, order_id)
