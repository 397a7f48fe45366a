"""Typed client for shipping-service."""

from __future__ import annotations

from common.errors import Conflict
from common.http import ServiceClient
from shipping_service.models import (
    Address,
    Notification,
    NotificationRequest,
    Quote,
    QuoteRequest,
    Shipment,
    ShipmentRequest,
)


class ShippingClient(ServiceClient):
    """::

    shipping = ShippingClient(http_client)
    quote = await shipping.quote(address, item_count=3)
    """

    service = "shipping-service"

    async def quote(self, address: Address, item_count: int) -> Quote:
        body = QuoteRequest(address=address, item_count=item_count)
        response = await self._request(  # a quote commits nothing: a spare one is harmless
            "POST", "/quotes", body=body, idempotent=True
        )
        if response.status_code != 200:
            raise self._unexpected(response)
        return Quote.model_validate_json(response.content)

    async def create_shipment(self, order_id: str, quote_id: str) -> Shipment:
        body = ShipmentRequest(order_id=order_id, quote_id=quote_id)
        response = await self._request(  # keyed by order id
            "POST", "/shipments", body=body, idempotent=True
        )
        if response.status_code == 409:
            raise Conflict(response.json().get("detail", "shipment refused"))
        if response.status_code != 201:
            raise self._unexpected(response)
        return Shipment.model_validate_json(response.content)

    async def cancel_shipment(self, order_id: str) -> Shipment:
        response = await self._request(
            "POST",
            "/shipments/{order_id}/cancel",
            path_params={"order_id": order_id},
            idempotent=True,
        )
        if response.status_code != 200:
            raise self._unexpected(response)
        return Shipment.model_validate_json(response.content)

    async def notify(self, order_id: str) -> Notification:
        """Send the order's confirmation (its shipment must exist)."""
        body = NotificationRequest(order_id=order_id)
        response = await self._request(  # keyed by order id: one notification per order
            "POST", "/notifications", json=body.model_dump(mode="json"), idempotent=True
        )
        if response.status_code != 201:
            raise self._unexpected(response)
        return Notification.model_validate_json(response.content)
