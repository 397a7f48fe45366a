"""Domain errors are mapped to HTTP at the edge only: the order logic raises
:class:`common.errors.InvalidFields`, not FastAPI's RequestValidationError, and
``install_error_handlers`` gives it the same 422 as a schema error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine, text

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


async def test_a_database_that_stays_locked_is_a_503_to_retry_not_a_500(tmp_path: Path) -> None:
    """Under overload SQLite's write lock may not come free within the busy timeout (seen
    at 20 orders/s on a loaded machine: the order's final UPDATE, a 500). The service
    answers 503 with Retry-After; the recovery of abandoned orders ends the order."""
    database = tmp_path / "locked.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock for the whole test
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 0})
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    def things() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/things")
    finally:
        holder.execute("ROLLBACK")
        engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_busy"
    assert "sqlite" not in response.text.lower()  # no driver message leaks out
