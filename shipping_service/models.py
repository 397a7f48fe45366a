"""The shipping-service contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from common.ids import Grammar, OrderId, QuoteId, TrackingId
from common.input import Printable, StrictInput
from common.money import Money

Country = Annotated[
    str, Grammar(r"[A-Z]{2}", "a two-letter ISO 3166-1 country code in capitals", "GB")
]
Line = Annotated[str, Field(min_length=1, max_length=200), Printable]


class Address(StrictInput):
    name: Line = Field(examples=["Ada Lovelace"])
    line1: Line = Field(examples=["12 St James's Sq"])
    line2: Annotated[str, Field(max_length=200), Printable] | None = None
    city: Annotated[str, Field(min_length=1, max_length=100), Printable] = Field(
        examples=["London"]
    )
    postal_code: Annotated[str, Field(min_length=1, max_length=20), Printable] = Field(
        examples=["SW1Y 4JH"]
    )
    country: Country


class QuoteRequest(StrictInput):
    address: Address
    item_count: int = Field(ge=1, le=10_000)


class Quote(BaseModel):
    quote_id: QuoteId
    carrier: str
    cost: Money
    estimated_days: int


class ShipmentRequest(StrictInput):
    """Create the shipment of an order from a quote. The order id is the idempotency key."""

    order_id: OrderId
    quote_id: QuoteId


ShipmentStatus = Literal["created", "cancelled"]


class Shipment(BaseModel):
    order_id: OrderId
    status: ShipmentStatus
    carrier: str | None
    tracking_id: TrackingId | None


class NotificationRequest(StrictInput):
    """Tell an order's customer that it is confirmed and on its way. The order id is the
    idempotency key: one notification per order."""

    order_id: OrderId


class Notification(BaseModel):
    """A notification as the sink keeps it (no mail server: ordersim stores what it sends)."""

    order_id: OrderId
    message: str
    sent_at: datetime
