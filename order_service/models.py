"""The order-service contract: the order request and the stored order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from common.ids import OrderId, Sku, TraceId
from common.input import Printable, StrictInput
from common.money import Amount, Money
from inventory_service.models import MAX_ITEMS, MAX_QUANTITY, Quantity
from payment_service.models import Card
from shipping_service.models import Address


class OrderLine(StrictInput):
    sku: Sku
    quantity: Quantity


class OrderRequest(StrictInput):
    """The body of ``POST /orders``."""

    customer_id: Annotated[str, Field(min_length=1, max_length=64), Printable] = Field(
        examples=["cust-42"]
    )
    items: list[OrderLine] = Field(min_length=1, max_length=MAX_ITEMS)
    payment: Card
    shipping_address: Address

    @field_validator("items")
    @classmethod
    def _at_most_max_quantity_per_sku(cls, items: list[OrderLine]) -> list[OrderLine]:
        for line in _merged(items):
            if line.quantity > MAX_QUANTITY:
                raise ValueError(
                    f"{line.sku} is ordered {line.quantity} times in all; at most "
                    f"{MAX_QUANTITY} units per SKU"
                )
        return items

    def merged_lines(self) -> list[OrderLine]:
        """One line per SKU, quantities added up, in first-seen order."""
        return _merged(self.items)


def _merged(items: list[OrderLine]) -> list[OrderLine]:
    quantities: dict[str, int] = {}
    for line in items:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    return [OrderLine.model_construct(sku=sku, quantity=q) for sku, q in quantities.items()]


OrderStatus = Literal["pending", "confirmed", "rejected", "payment_failed", "failed"]

#: HTTP status of ``POST /orders`` for each final order status.
HTTP_STATUS: dict[str, int] = {
    "confirmed": 201,
    "rejected": 409,
    "payment_failed": 402,
    "failed": 503,
}
#: ``POST /orders`` with ``Prefer: respond-async``: accepted, still pending.
ACCEPTED = 202


def http_status(status: OrderStatus) -> int:
    """What ``POST /orders`` answers for an order in this status."""
    return ACCEPTED if status == "pending" else HTTP_STATUS[status]


#: The steps of an order's life, as its event stream names them: stored (pending), then
#: what landed, then its final status.
OrderStep = Literal[
    "pending", "reserved", "charged", "shipped", "confirmed", "rejected", "payment_failed", "failed"
]


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

    order_id: OrderId
    status: OrderStatus
    customer_id: str
    items: list[OrderItem]
    total: Money | None = None
    shipping: ShippingInfo | None = None
    card_last4: str | None = None
    error: OrderError | None = None
    trace_id: TraceId
    created_at: datetime
    updated_at: datetime


class OrderEvent(BaseModel):
    """One step of an order: the `data` of an event of `GET /orders/{order_id}/events`."""

    order_id: OrderId
    seq: int = Field(
        description="the event's id (also its SSE `id`), increasing: sent back as "
        "`Last-Event-ID`, the stream resumes after it"
    )
    step: OrderStep
    status: OrderStatus = Field(description="the order's status after this step")
    final: bool = Field(description="the order's final status: the stream's last event")
    at: datetime
    detail: dict[str, str] = Field(
        default_factory=dict,
        description="what the step adds: units reserved, payment id, carrier and tracking "
        "id, the error's code and message",
    )


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
