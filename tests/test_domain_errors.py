"""Domain errors are mapped to HTTP at the edge only: the order logic raises
:class:`common.errors.InvalidFields`, not FastAPI's RequestValidationError, and
``install_error_handlers`` gives it the same 422 as a schema error."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

import order_service.flow
import order_service.idempotency
from common.errors import InvalidFields, install_error_handlers


async def test_invalid_fields_is_a_422_in_the_validation_shape() -> None:
    app = FastAPI()
    install_error_handlers(app, secret_fields={"payment"})

    @app.post("/things")
    async def things() -> None:
        raise InvalidFields(
            [
                {"type": "unknown_sku", "loc": ("body", "items", 1, "sku"), "msg": "unknown SKU X",
                 "input": "X"},
                {"type": "bad_card", "loc": ("body", "payment", "card_number"), "msg": "no",
                 "input": "4242424242424242"},
            ]
        )  # fmt: skip

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/things")
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"type": "unknown_sku", "loc": ["body", "items", 1, "sku"], "msg": "unknown SKU X",
             "input": "X"},
            # A secret field's input is never echoed, as in a schema error.
            {"type": "bad_card", "loc": ["body", "payment", "card_number"], "msg": "no"},
        ]
    }  # fmt: skip


def test_the_order_logic_does_not_speak_fastapi() -> None:
    for module in (order_service.flow, order_service.idempotency):
        assert "RequestValidationError" not in vars(module)
        assert vars(module)["InvalidFields"] is InvalidFields
