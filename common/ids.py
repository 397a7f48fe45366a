"""The grammar of every identifier the services exchange, in paths, queries and bodies.

One type per kind of id, used by the models (bodies) and the routes (path and query
parameters) of every service, and declared in the OpenAPI as a ``pattern``. An id outside
its grammar is a 422 at the edge, never a row in a database or a response model that
then refuses it: that was the 500 of every undo endpoint, which stored a tombstone under
any path id and then failed to build the response from it.

| id | grammar | example |
|---|---|---|
| order | ``ord_`` + 16 lowercase hex digits | ``ord_3f9a0c2b7d1e4a56`` |
| SKU | ``SKU-`` + 4 digits | ``SKU-0001`` |
| quote | ``q_`` + 16 lowercase hex digits | ``q_0b1c2d3e4f5a6b7c`` |
| payment | ``pay_`` (or ``void_``) + 16 lowercase hex digits | ``pay_8e7d6c5b4a392817`` |
| tracking | ``TRK`` + 12 uppercase hex digits | ``TRK4F2A9C01BD3E`` |
| trace | 32 lowercase hex digits (W3C Trace Context) | ``4bf92f3577b34da6a3ce929d0e0e4736`` |
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


@dataclass(frozen=True)
class Grammar:
    """``Annotated[str, Grammar(...)]``: the string must match ``pattern`` whole. A mismatch
    is a validation error that says ``expected`` in words (not the regex), with an example;
    the JSON schema declares the pattern, the words and the example."""

    pattern: str
    expected: str
    example: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def check(self, value: str) -> str:
        if self._regex.fullmatch(value) is None:
            raise PydanticCustomError(
                "grammar",
                "Input should be {expected}, such as {example}",
                {"expected": self.expected, "example": self.example},
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(
            pattern=f"^{self.pattern}$", description=self.expected, examples=[self.example]
        )
        return json_schema


OrderId = Annotated[
    str,
    Grammar(
        r"ord_[0-9a-f]{16}", "`ord_` followed by 16 lowercase hex digits", "ord_3f9a0c2b7d1e4a56"
    ),
]
Sku = Annotated[str, Grammar(r"SKU-[0-9]{4}", "`SKU-` followed by 4 digits", "SKU-0001")]
QuoteId = Annotated[
    str,
    Grammar(r"q_[0-9a-f]{16}", "`q_` followed by 16 lowercase hex digits", "q_0b1c2d3e4f5a6b7c"),
]
PaymentId = Annotated[
    str,
    Grammar(
        r"(?:pay|void)_[0-9a-f]{16}",
        "`pay_` (or `void_`) followed by 16 lowercase hex digits",
        "pay_8e7d6c5b4a392817",
    ),
]
TrackingId = Annotated[
    str,
    Grammar(r"TRK[0-9A-F]{12}", "`TRK` followed by 12 uppercase hex digits", "TRK4F2A9C01BD3E"),
]
TraceId = Annotated[
    str, Grammar(r"[0-9a-f]{32}", "32 lowercase hex digits", "4bf92f3577b34da6a3ce929d0e0e4736")
]


def _hex(digits: int) -> str:
    return secrets.token_hex(digits // 2)


def new_order_id() -> str:
    return f"ord_{_hex(16)}"


def new_quote_id() -> str:
    return f"q_{_hex(16)}"


def new_payment_id(*, voided: bool = False) -> str:
    return f"{'void' if voided else 'pay'}_{_hex(16)}"


def new_tracking_id() -> str:
    return f"TRK{_hex(12).upper()}"
