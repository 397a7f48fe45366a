"""The order-service contract: the order request and the stored order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from common.money import Amount, Money
from payment_service.models import Card
from shipping_service.models import Address

Sku = Annotated[str, Field(pattern=r"^SKU-\d{4}$", examples=["SKU-0001"])]


class OrderLine(BaseModel):
    sku: Sku
    quantity: int = Field(ge=1, le=1000)


class OrderRequest(BaseModel):
    """The body of ``POST /orders``."""

    customer_id: str = Field(min_length=1, max_length=64, examples=["cust-42"])
    items: list[OrderLine] = Field(min_length=1, max_length=50)
    payment: Card
    shipping_address: Address

    def merged_lines(self) -> list[OrderLine]:
        """One line per SKU, quantities added up, in first-seen order."""
        quantities: dict[str, int] = {}
        for line in self.items:
            quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
        return [OrderLine(sku=sku, quantity=q) for sku, q in quantities.items()]


OrderStatus = Literal["pending", "confirmed", "rejected", "payment_failed", "failed"]

#: HTTP status of ``POST /orders`` for each final order status.
HTTP_STATUS: dict[str, int] = {
    "confirmed": 201,
    "rejected": 409,
    "payment_failed": 402,
    "failed": 503,
}


class OrderItem(BaseModel):
    sku: Sku
    name: str
    quantity: int
    unit_price: Amount


class ShippingInfo(BaseModel):
    carrier: str
    cost: Money
    tracking_id: str | None = None


class OrderError(BaseModel):
    code: str
    message: str


class Order(BaseModel):
    """An order as stored; ``POST /orders`` and ``GET /orders/{id}`` return it."""

    order_id: str
    status: OrderStatus
    customer_id: str
    items: list[OrderItem]
    total: Money | None = None
    shipping: ShippingInfo | None = None
    card_last4: str | None = None
    error: OrderError | None = None
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    created_at: datetime
    updated_at: datetime


class DeferredCompensation(BaseModel):
    """One compensation waiting to be retried (``GET /admin/compensations``)."""

    id: int
    order_id: str
    action: str = Field(description="release_stock, refund_payment or cancel_shipment")
    attempts: int = Field(description="attempts made so far, the first (in the order) included")
    last_error: str
    created_at: datetime | None = Field(description="when it was deferred (null: not recorded)")
    age_seconds: float | None
    next_attempt_at: datetime | None = Field(description="null: due at the next poll")
    next_attempt_in_seconds: float = Field(description="0 when due")


class CompensationBacklog(BaseModel):
    """The deferred compensations still pending: retried with backoff until each is done."""

    pending: int = Field(description="how many are pending (all of them, not only those listed)")
    oldest_age_seconds: float | None = Field(description="how long ago the oldest was deferred")
    warn_at: int | None = Field(description="the order service logs a warning from this many on")
    items: list[DeferredCompensation] = Field(description="the oldest first, up to `limit`")
