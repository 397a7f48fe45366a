"""Money as exact decimal strings on the wire ("12.34"), never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

CENT = Decimal("0.01")
_DECIMAL_STRING = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")


def _decimal_string(value: Any) -> Any:
    """On the wire an amount is a decimal string; in code it may also be a Decimal."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _DECIMAL_STRING.fullmatch(value):
        return value
    raise PydanticCustomError(
        "decimal_string",
        'Input should be a decimal string with at most two decimal places, such as "12.34"',
    )


Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(ge=0, max_digits=14, decimal_places=2),
    PlainSerializer(lambda d: str(d.quantize(CENT, ROUND_HALF_UP)), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{_DECIMAL_STRING.pattern}$",
            "description": "a decimal string, at most two decimal places",
            "examples": ["12.34"],
        }
    ),
]


class Money(BaseModel):
    amount: Amount
    currency: Literal["USD"] = "USD"

    @classmethod
    def of(cls, amount: Decimal | str) -> Money:
        return cls(amount=Decimal(amount).quantize(CENT, ROUND_HALF_UP))
