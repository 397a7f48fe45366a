"""Sample data, in one place: the order of the quick start (``examples/order.json``, which a
test keeps equal to :func:`order_body`), and what ``ordersim order``, ``ordersim load`` and
the tests send.

Sample cards do not expire in practice: their expiry is December 2099, the latest the card
model takes (years up to 2100), so the quick start keeps working until 2100
(tests/test_samples.py places every sample order with the clock moved 50 years ahead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from payment_service.cards import APPROVED

#: The quick start's order lines.
DEFAULT_ITEMS: tuple[tuple[str, int], ...] = (("SKU-0001", 2), ("SKU-0002", 1), ("SKU-0003", 3))
EXPIRY = {"expiry_month": 12, "expiry_year": 2099}
#: A card number one digit off the approved card's: it fails the Luhn check (a 422).
LUHN_INVALID = APPROVED[:-1] + "1"
CVC = "123"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Sq",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def card(number: str = APPROVED) -> dict[str, Any]:
    """The ``payment`` object of an order: a sandbox card number that never expires."""
    return {"card_number": number, **EXPIRY, "cvc": CVC}


def order_body(
    items: Sequence[tuple[str, int]] = DEFAULT_ITEMS,
    card_number: str = APPROVED,
    *,
    customer_id: str = "cust-42",
) -> dict[str, Any]:
    """A ``POST /orders`` body: the quick start's order, with these items and card."""
    return {
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        "payment": card(card_number),
        "shipping_address": dict(ADDRESS),
    }
