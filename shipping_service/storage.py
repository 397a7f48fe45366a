"""Quotes and shipments tables, and the rate card."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    Row,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import read, transaction, utc
from common.errors import Conflict, NotFound
from common.ids import new_quote_id, new_tracking_id
from common.money import Money
from shipping_service.models import Address, Notification, Quote, Shipment


class Base(DeclarativeBase):
    pass


class QuoteRow(Base):
    __tablename__ = "quotes"

    quote_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    carrier: Mapped[str] = mapped_column(String(40))
    cost: Mapped[str] = mapped_column(String(20))
    estimated_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShipmentRow(Base):
    __tablename__ = "shipments"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    quote_id: Mapped[str | None] = mapped_column(String(40))
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_id: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotificationRow(Base):
    """A confirmation sent to an order's customer: the notification sink."""

    __tablename__ = "notifications"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message: Mapped[str] = mapped_column(String(500))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


quotes = cast(Table, QuoteRow.__table__)
shipments = cast(Table, ShipmentRow.__table__)
notifications = cast(Table, NotificationRow.__table__)
metadata = Base.metadata

#: (carrier, base cost, per item, days) by destination zone.
_RATES = {
    "domestic": ("Royal Mail", Decimal("3.95"), Decimal("0.50"), 2),
    "europe": ("DHL", Decimal("8.50"), Decimal("0.75"), 4),
    "world": ("FedEx", Decimal("14.00"), Decimal("1.25"), 7),
}
_EUROPE = set(
    [
        "AT",
        "BE",
        "BG",
        "CH",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)


def rate(address: Address, item_count: int) -> tuple[str, Money, int]:
    zone = (
        "domestic"
        if address.country == "GB"
        else ("europe" if address.country in _EUROPE else "world")
    )
    carrier, base, per_item, days = _RATES[zone]
    return carrier, Money.of(base + per_item * item_count), days


def _now() -> datetime:
    return datetime.now(UTC)


# The statements, built once (see inventory_service/storage.py).
_NEW_QUOTE = insert(quotes)
_CARRIER = select(quotes.c.carrier).where(quotes.c.quote_id == bindparam("quote_id"))
_SHIPMENT = select(shipments).where(shipments.c.order_id == bindparam("order_id"))
_EXISTS = select(shipments.c.order_id).where(shipments.c.order_id == bindparam("order_id"))
_NEW_SHIPMENT = insert(shipments)
_CANCEL = (
    update(shipments)
    .where(shipments.c.order_id == bindparam("b_order_id"), shipments.c.status == "created")
    .values(status="cancelled")
)
_NOTIFICATION = select(notifications).where(notifications.c.order_id == bindparam("order_id"))
_NEW_NOTIFICATION = insert(notifications)


async def save_quote(engine: AsyncEngine, carrier: str, cost: Money, days: int) -> Quote:
    quote = Quote(quote_id=new_quote_id(), carrier=carrier, cost=cost, estimated_days=days)
    await transaction(engine, _save_quote, quote)
    return quote


def _save_quote(conn: Connection, quote: Quote) -> None:
    conn.execute(
        _NEW_QUOTE,
        {
            "quote_id": quote.quote_id,
            "carrier": quote.carrier,
            "cost": str(quote.cost.amount),
            "estimated_days": quote.estimated_days,
            "created_at": _now(),
        },
    )


def _shipment(row: object) -> Shipment:
    return Shipment(
        order_id=row.order_id,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        carrier=row.carrier,  # type: ignore[attr-defined]
        tracking_id=row.tracking_id,  # type: ignore[attr-defined]
    )


async def get_shipment(engine: AsyncEngine, order_id: str) -> Shipment:
    return await read(engine, _get_shipment, order_id)


def _get_shipment(conn: Connection, order_id: str) -> Shipment:
    row = conn.execute(_SHIPMENT, {"order_id": order_id}).first()
    if row is None:
        raise NotFound(f"no shipment for order {order_id}")
    return _shipment(row)


async def create_shipment(engine: AsyncEngine, order_id: str, quote_id: str) -> Shipment:
    """Create a shipment from a quote. A repeat returns the first; a cancelled order is a 409."""
    try:
        return await transaction(engine, _create_shipment, order_id, quote_id)
    except IntegrityError:
        existing = await get_shipment(engine, order_id)
        if existing.status != "created":
            raise Conflict(f"shipment for order {order_id} is {existing.status}") from None
        return existing


def _create_shipment(conn: Connection, order_id: str, quote_id: str) -> Shipment:
    carrier = conn.execute(_CARRIER, {"quote_id": quote_id}).scalar_one_or_none()
    if carrier is None:
        raise NotFound(f"unknown quote {quote_id}")
    shipment = Shipment(
        order_id=order_id, status="created", carrier=carrier, tracking_id=new_tracking_id()
    )
    conn.execute(
        _NEW_SHIPMENT,
        {
            "order_id": order_id,
            "status": shipment.status,
            "quote_id": quote_id,
            "carrier": carrier,
            "tracking_id": shipment.tracking_id,
            "updated_at": _now(),
        },
    )
    return shipment  # as stored: no read back


async def cancel_shipment(engine: AsyncEngine, order_id: str) -> Shipment:
    """Cancel an order's shipment. Idempotent; leaves a tombstone when there was none."""
    return await transaction(engine, _cancel_shipment, order_id)


def _cancel_shipment(conn: Connection, order_id: str) -> Shipment:
    now = _now()
    changed = conn.execute(_CANCEL, {"b_order_id": order_id, "updated_at": now}).rowcount
    if not changed and conn.execute(_EXISTS, {"order_id": order_id}).first() is None:
        conn.execute(
            _NEW_SHIPMENT, {"order_id": order_id, "status": "cancelled", "updated_at": now}
        )
    return _get_shipment(conn, order_id)


def _notification(row: Row[Any]) -> Notification:
    return Notification(order_id=row.order_id, message=row.message, sent_at=utc(row.sent_at))


async def get_notification(engine: AsyncEngine, order_id: str) -> Notification:
    return await read(engine, _get_notification, order_id)


def _get_notification(conn: Connection, order_id: str) -> Notification:
    row = conn.execute(_NOTIFICATION, {"order_id": order_id}).first()
    if row is None:
        raise NotFound(f"no notification for order {order_id}")
    return _notification(row)


async def notify(engine: AsyncEngine, order_id: str) -> Notification:
    """Send an order's confirmation, naming its shipment: once per order (a repeat returns
    the first). An order without a live shipment is a 404 or a 409.

    One transaction: the shipment read, the notification stored and returned as stored
    (not read back); only a repeat reads the first one."""
    try:
        return await transaction(engine, _notify, order_id)
    except IntegrityError:  # sent already: the first stands
        return await get_notification(engine, order_id)


def _notify(conn: Connection, order_id: str) -> Notification:
    shipment = _get_shipment(conn, order_id)
    if shipment.status != "created":
        raise Conflict(f"the shipment of order {order_id} is {shipment.status}")
    message = (
        f"Order {order_id} is confirmed: it ships with {shipment.carrier}, "
        f"tracking {shipment.tracking_id}."
    )
    notification = Notification(order_id=order_id, message=message, sent_at=_now())
    conn.execute(_NEW_NOTIFICATION, notification.model_dump())
    return notification
