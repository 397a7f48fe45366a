"""Span names say what happened, per the stable semantic conventions: database spans
``OPERATION table``, HTTP client spans ``METHOD /url/{template}``; never an id or a path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)

import common.telemetry
from common.db import create_engine
from common.http import Timeouts, create_http_client
from common.telemetry import Telemetry, setup_telemetry, statement_target
from payment_service.client import PaymentClient

METADATA = MetaData()
ITEMS = Table("items", METADATA, Column("id", Integer, primary_key=True), Column("v", String))
TAGS = Table("tags", METADATA, Column("item_id", Integer), Column("tag", String))


def telemetry(exporter: InMemorySpanExporter) -> Telemetry:
    # setup_telemetry, not a bare provider: it opts in to the stable conventions, which
    # the instrumentations read once per process.
    return setup_telemetry("test-service", processors=[SimpleSpanProcessor(exporter)])


async def test_database_spans_are_named_operation_and_table(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/names.db", telemetry(exporter))
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
        exporter.clear()
        await conn.execute(insert(ITEMS).values(id=1, v="a"))
        await conn.execute(select(ITEMS.c.v).where(ITEMS.c.id.in_([1, 2])))
        await conn.execute(update(ITEMS).where(ITEMS.c.id == 1).values(v="b"))
        await conn.execute(delete(ITEMS).where(ITEMS.c.id == 1))
        # Two tables, or raw SQL: no single collection, so the instrumentation's own name
        # (operation and database) stays, and db.operation.name is the operation alone.
        await conn.execute(select(ITEMS.c.v).join_from(ITEMS, TAGS, ITEMS.c.id == TAGS.c.item_id))
        await conn.execute(text("SELECT 1"))
    await engine.dispose()

    spans = exporter.get_finished_spans()
    assert all(s.kind == SpanKind.CLIENT for s in spans)
    assert [s.name for s in spans[:4]] == [
        "INSERT items",
        "SELECT items",
        "UPDATE items",
        "DELETE items",
    ]
    assert [
        (s.attributes["db.operation.name"], s.attributes["db.collection.name"]) for s in spans[:4]
    ] == [
        ("INSERT", "items"),
        ("SELECT", "items"),
        ("UPDATE", "items"),
        ("DELETE", "items"),
    ]
    for span in spans[4:]:
        assert span.name == f"SELECT {tmp_path}/names.db"
        assert span.attributes["db.operation.name"] == "SELECT"
        assert "db.collection.name" not in span.attributes


async def test_a_statement_is_named_once_however_often_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy compiles a statement's shape once; its span's name and attributes are
    worked out with it, not at each of its executions."""
    exporter = InMemorySpanExporter()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/names.db", telemetry(exporter))
    targets: list[str] = []

    def counted(statement: str, context: Any) -> tuple[str, str | None]:
        targets.append(statement)
        return statement_target(statement, context)

    monkeypatch.setattr(common.telemetry, "statement_target", counted)
    async with engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
        exporter.clear()
        targets.clear()
        for item in range(3):
            await conn.execute(select(ITEMS.c.v).where(ITEMS.c.id == item))
        await conn.execute(text("SELECT 1"))
        await conn.execute(text("SELECT 1"))
    await engine.dispose()

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [*["SELECT items"] * 3, *[f"SELECT {tmp_path}/names.db"] * 2]
    assert [s.attributes["db.collection.name"] for s in spans[:3]] == ["items"] * 3
    assert {s.attributes["db.operation.name"] for s in spans} == {"SELECT"}
    assert len(targets) == 2  # the SELECT's shape, and the raw SQL's


async def test_http_client_spans_are_named_method_and_url_template() -> None:
    exporter = InMemorySpanExporter()
    paths: list[str] = []

    def payment(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        body = {
            "payment_id": "pay_0123456789abcdef",
            "order_id": "ord_0123456789abcdef",
            "status": "refunded",
            "amount": {"amount": "1.00", "currency": "USD"},
            "card_last4": "4242",
        }
        return httpx.Response(200, json=body)

    http = create_http_client(
        "http://payment",
        telemetry(exporter),
        timeouts=Timeouts(),
        transport=httpx.MockTransport(payment),
    )
    async with http:
        await PaymentClient(http).refund("ord/1")

    [span] = exporter.get_finished_spans()
    assert span.name == "POST /charges/{order_id}/refund"
    assert span.attributes["url.template"] == "/charges/{order_id}/refund"
    assert paths == ["/charges/ord%2F1/refund"]  # the id fills one path segment, encoded
