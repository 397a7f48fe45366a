"""Typed client for payment-service."""

from __future__ import annotations

from common.errors import Conflict
from common.http import ServiceClient
from common.money import Money
from payment_service.errors import PaymentDeclined
from payment_service.models import Card, Payment


class PaymentClient(ServiceClient):
    """::

    payments = PaymentClient(http_client)
    payment = await payments.charge("ord_3f9a0c2b7d1e4a56", Money.of("12.34"), card)
    """

    service = "payment-service"

    async def charge(self, order_id: str, amount: Money, card: Card) -> Payment:
        """Raises PaymentDeclined (402), Conflict (order refunded) or DownstreamUnavailable."""
        body = {"order_id": order_id, "amount": amount.model_dump(mode="json"), "card": card.wire()}
        response = await self._request(  # keyed by order id: never charged twice
            "POST", "/charges", json=body, idempotent=True
        )
        if response.status_code == 402:
            error = response.json()
            raise PaymentDeclined(error.get("code", "card_declined"), error.get("detail", ""))
        if response.status_code == 409:
            raise Conflict(response.json().get("detail", "charge refused"))
        if response.status_code != 201:
            raise self._unexpected(response)
        return Payment.model_validate_json(response.content)

    async def refund(self, order_id: str) -> Payment:
        response = await self._request(
            "POST",
            "/charges/{order_id}/refund",
            path_params={"order_id": order_id},
            idempotent=True,
        )
        if response.status_code != 200:
            raise self._unexpected(response)
        return Payment.model_validate_json(response.content)
