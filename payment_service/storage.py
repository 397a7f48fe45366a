"""Payments table. One row per order: captured, refunded, or voided (refunded before any charge)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Connection, DateTime, String, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import read, transaction
from common.errors import Conflict, NotFound
from common.ids import new_payment_id
from common.money import Money
from payment_service.models import Payment


class Base(DeclarativeBase):
    pass


class PaymentRow(Base):
    __tablename__ = "payments"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


payments = cast(Table, PaymentRow.__table__)
metadata = Base.metadata


def _now() -> datetime:
    return datetime.now(UTC)


# The statements, built once (see inventory_service/storage.py).
_PAYMENT = select(payments).where(payments.c.order_id == bindparam("order_id"))
_EXISTS = select(payments.c.order_id).where(payments.c.order_id == bindparam("order_id"))
_NEW_PAYMENT = insert(payments)
_REFUND = (
    update(payments)
    .where(payments.c.order_id == bindparam("b_order_id"), payments.c.status == "captured")
    .values(status="refunded")
)


def _payment(row: object) -> Payment:
    return Payment(
        payment_id=row.payment_id,  # type: ignore[attr-defined]
        order_id=row.order_id,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        amount=Money(amount=Decimal(row.amount), currency=row.currency),  # type: ignore[attr-defined]
        card_last4=row.card_last4,  # type: ignore[attr-defined]
    )


async def get_payment(engine: AsyncEngine, order_id: str) -> Payment:
    return await read(engine, _get_payment, order_id)


def _get_payment(conn: Connection, order_id: str) -> Payment:
    row = conn.execute(_PAYMENT, {"order_id": order_id}).first()
    if row is None:
        raise NotFound(f"no payment for order {order_id}")
    return _payment(row)


async def capture(engine: AsyncEngine, order_id: str, amount: Money, last4: str) -> Payment:
    """Record a captured charge. A repeat returns the first; a refunded/voided order is a 409."""
    try:
        return await transaction(engine, _capture, order_id, amount, last4)
    except IntegrityError:
        existing = await get_payment(engine, order_id)
        if existing.status != "captured":
            raise Conflict(f"payment for order {order_id} is {existing.status}") from None
        return existing


def _capture(conn: Connection, order_id: str, amount: Money, last4: str) -> Payment:
    payment = Payment(
        payment_id=new_payment_id(),
        order_id=order_id,
        status="captured",
        amount=amount,
        card_last4=last4,
    )
    conn.execute(
        _NEW_PAYMENT,
        {
            "order_id": order_id,
            "payment_id": payment.payment_id,
            "status": payment.status,
            "amount": str(amount.amount),
            "currency": amount.currency,
            "card_last4": last4,
            "updated_at": _now(),
        },
    )
    return payment  # as stored: no read back


async def refund(engine: AsyncEngine, order_id: str) -> Payment:
    """Refund a captured charge. Idempotent.

    Refunding an order that was never charged leaves a ``voided`` tombstone, so a charge
    request that arrives late (after the order gave up on it) is refused, not captured.
    """
    return await transaction(engine, _refund, order_id)


def _refund(conn: Connection, order_id: str) -> Payment:
    changed = conn.execute(_REFUND, {"b_order_id": order_id, "updated_at": _now()}).rowcount
    if not changed and conn.execute(_EXISTS, {"order_id": order_id}).first() is None:
        conn.execute(
            _NEW_PAYMENT,
            {
                "order_id": order_id,
                "payment_id": new_payment_id(voided=True),
                "status": "voided",
                "amount": "0.00",
                "currency": "USD",
                "card_last4": None,
                "updated_at": _now(),
            },
        )
    return _get_payment(conn, order_id)
