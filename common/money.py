"""Money as exact decimal strings on the wire ("12.34"), never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

CENT = Decimal("0.01")

Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2),
    PlainSerializer(lambda d: str(d.quantize(CENT, ROUND_HALF_UP)), return_type=str),
]


class Money(BaseModel):
    amount: Amount
    currency: Literal["USD"] = "USD"

    @classmethod
    def of(cls, amount: Decimal | str) -> Money:
        return cls(amount=Decimal(amount).quantize(CENT, ROUND_HALF_UP))
