"""The inventory-service contract: what its endpoints accept and return."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.ids import OrderId, Sku
from common.input import StrictInput

#: Items (distinct SKUs) one order or reservation may hold.
MAX_ITEMS = 50
#: Units of one SKU one order may ask for.
MAX_QUANTITY = 1000

Quantity = Annotated[
    int, Field(ge=1, le=MAX_QUANTITY, description=f"Units, 1 to {MAX_QUANTITY}", examples=[2])
]


class Product(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: Sku
    name: str
    unit_price: Decimal = Field(decimal_places=2, description="USD, as a decimal string")
    stock: int = Field(ge=0, description="Units available to reserve")


class ItemRequest(StrictInput):
    sku: Sku
    quantity: Quantity


class ReserveRequest(StrictInput):
    """Reserve every item for one order, all or nothing. The order id is the idempotency key."""

    order_id: OrderId
    items: list[ItemRequest] = Field(min_length=1, max_length=MAX_ITEMS)

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[ItemRequest]) -> list[ItemRequest]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each SKU may appear once; add up the quantities")
        return items


class ReservedItem(BaseModel):
    sku: Sku
    quantity: Quantity
    unit_price: Decimal


ReservationStatus = Literal["reserved", "committed", "released"]


class Reservation(BaseModel):
    order_id: OrderId
    status: ReservationStatus
    items: list[ReservedItem]


class OutOfStockError(BaseModel):
    """409 body when an item cannot be reserved."""

    detail: str
    code: Literal["out_of_stock"] = "out_of_stock"
    sku: Sku
    requested: int
    available: int
