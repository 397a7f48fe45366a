"""The payment-service contract. Card numbers and CVCs are SecretStr: they never print."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from common.ids import OrderId, PaymentId
from common.input import StrictInput
from common.money import Money


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check every card number carries."""
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char)
        if i % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


#: ASCII digits only: ``str.isdigit`` also takes Arabic-Indic and full-width digits, which no
#: card network does.
_CARD_NUMBER = re.compile(r"[0-9]{12,19}")
_CVC = re.compile(r"[0-9]{3,4}")


class Card(StrictInput):
    card_number: SecretStr = Field(
        description="12-19 digits (spaces between them allowed), Luhn-valid",
        examples=["4242424242424242"],
        json_schema_extra={"pattern": "^[0-9 ]{12,}$"},
    )
    expiry_month: int = Field(ge=1, le=12, examples=[12])
    expiry_year: int = Field(ge=2000, le=2100, examples=[2099])
    cvc: SecretStr = Field(
        description="3 or 4 digits", examples=["123"], json_schema_extra={"pattern": "^[0-9]{3,4}$"}
    )

    @field_validator("card_number")
    @classmethod
    def _valid_number(cls, value: SecretStr) -> SecretStr:
        number = value.get_secret_value().replace(" ", "")
        if not _CARD_NUMBER.fullmatch(number):
            raise ValueError("card number must be 12 to 19 digits")
        if not luhn_valid(number):
            raise ValueError("card number fails the Luhn check")
        return SecretStr(number)

    @field_validator("cvc")
    @classmethod
    def _valid_cvc(cls, value: SecretStr) -> SecretStr:
        cvc = value.get_secret_value()
        if not _CVC.fullmatch(cvc):
            raise ValueError("cvc must be 3 or 4 digits")
        return value

    @model_validator(mode="after")
    def _not_expired(self) -> Card:
        now = datetime.now(UTC)
        if (self.expiry_year, self.expiry_month) < (now.year, now.month):
            raise ValueError("card has expired")
        return self

    @property
    def last4(self) -> str:
        return self.card_number.get_secret_value()[-4:]

    @property
    def brand(self) -> str:
        first = self.card_number.get_secret_value()[0]
        return {"4": "visa", "5": "mastercard", "3": "amex"}.get(first, "other")

    def wire(self) -> dict[str, object]:
        """The JSON sent to payment-service: the only place the secrets are revealed."""
        return {
            "card_number": self.card_number.get_secret_value(),
            "expiry_month": self.expiry_month,
            "expiry_year": self.expiry_year,
            "cvc": self.cvc.get_secret_value(),
        }


class ChargeRequest(StrictInput):
    """Charge a card for an order. The order id is the idempotency key."""

    order_id: OrderId
    amount: Money
    card: Card


PaymentStatus = Literal["captured", "refunded", "voided"]


class Payment(BaseModel):
    payment_id: PaymentId
    order_id: OrderId
    status: PaymentStatus
    amount: Money
    card_last4: str | None = None


class PaymentDeclinedError(BaseModel):
    """402 body."""

    detail: str
    code: Literal["card_declined", "insufficient_funds"]
