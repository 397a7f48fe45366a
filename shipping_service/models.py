"""The shipping-service contract."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from common.money import Money

OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Address(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class QuoteRequest(BaseModel):
    address: Address
    item_count: int = Field(ge=1, le=10_000)


class Quote(BaseModel):
    quote_id: str
    carrier: str
    cost: Money
    estimated_days: int


class ShipmentRequest(BaseModel):
    """Create the shipment of an order from a quote. The order id is the idempotency key."""

    order_id: OrderId
    quote_id: str = Field(min_length=1, max_length=64)


ShipmentStatus = Literal["created", "cancelled"]


class Shipment(BaseModel):
    order_id: OrderId
    status: ShipmentStatus
    carrier: str | None
    tracking_id: str | None
