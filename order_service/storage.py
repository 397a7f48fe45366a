"""Orders (stored as JSON documents beside their indexed status) and pending compensations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    DateTime,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import read, transaction, utc
from common.errors import NotFound
from order_service.models import Order, OrderEvent, OrderStep


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    document: Mapped[str] = mapped_column(Text)  # Order.model_dump_json(): no card number in it
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderEventRow(Base):
    """One step of an order's life (stored, reserved, charged, shipped, its final status),
    in the order in which they happened: what ``GET /orders/{order_id}/events`` streams.
    Kept in the database, so that any order-service process can stream any order."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(40))
    step: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)  # a JSON object of strings
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CompensationRow(Base):
    """A compensation (release, refund, cancel) that failed at once and is retried later.

    Columns added since the first version are nullable: :func:`common.db.create_tables`
    adds them to an existing table, whose rows then hold NULL there.
    """

    __tablename__ = "pending_compensations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(32))
    traceparent: Mapped[str] = mapped_column(String(64))  # to link the retry to the order's trace
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # tries made so far
    last_error: Mapped[str] = mapped_column(String(500), default="")
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    #: When it was deferred; NULL for rows stored before this was recorded.
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When it is retried next; NULL (rows stored before there was a schedule) means now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    #: The worker trying it now (:func:`claim_due`), and until when that claim holds: a
    #: worker that stopped mid-attempt leaves a lease that expires, not a stuck item.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyRow(Base):
    """An Idempotency-Key of POST /orders: the body it came with, then the response."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_digest: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


orders = cast(Table, OrderRow.__table__)
order_events = cast(Table, OrderEventRow.__table__)
compensations = cast(Table, CompensationRow.__table__)
idempotency_keys = cast(Table, IdempotencyRow.__table__)
metadata = Base.metadata


def now() -> datetime:
    return datetime.now(UTC)


# The statements of every order, built once (see inventory_service/storage.py); those of
# the compensation backlog, rare, are built where they run.
_NEW_ORDER = insert(orders)
# Only a pending order changes: one that another process already failed as abandoned (and
# whose undos it queued) must not come back as confirmed.
_UPDATE_ORDER = update(orders).where(
    orders.c.order_id == bindparam("b_order_id"), orders.c.status == "pending"
)
_DOCUMENT = select(orders.c.document).where(orders.c.order_id == bindparam("order_id"))
_NEW_KEY = insert(idempotency_keys)
_KEY = select(idempotency_keys).where(idempotency_keys.c.key == bindparam("key"))
_COMPLETE_KEY = update(idempotency_keys).where(idempotency_keys.c.key == bindparam("b_key"))
_RELEASE_KEY = delete(idempotency_keys).where(idempotency_keys.c.key == bindparam("key"))
_NEW_EVENT = insert(order_events)
_EVENTS_AFTER = (
    select(order_events)
    .where(order_events.c.order_id == bindparam("order_id"), order_events.c.id > bindparam("after"))
    .order_by(order_events.c.id)
    .limit(bindparam("limit"))
)
_ORDER_EXISTS = select(orders.c.order_id).where(orders.c.order_id == bindparam("order_id"))


def _status_event(order: Order) -> dict[str, object]:
    """The event row of an order's status, as it is being stored."""
    detail: dict[str, str] = {}
    if order.error is not None:
        detail = {"code": order.error.code, "message": order.error.message}
    elif order.status == "confirmed" and order.total is not None:
        detail = {"total": str(order.total.amount), "currency": order.total.currency}
    return {
        "order_id": order.order_id,
        "step": order.status,
        "status": order.status,
        "detail": json.dumps(detail),
        "at": order.updated_at,
    }


async def insert_order(engine: AsyncEngine, order: Order) -> None:
    """Store a new order, and its status as the first of its events."""
    await transaction(engine, _insert_order, order)


def _insert_order(conn: Connection, order: Order) -> None:
    conn.execute(
        _NEW_ORDER,
        {
            "order_id": order.order_id,
            "status": order.status,
            "customer_id": order.customer_id,
            "trace_id": order.trace_id,
            "document": order.model_dump_json(),
            "updated_at": order.updated_at,
        },
    )
    conn.execute(_NEW_EVENT, _status_event(order))


@dataclass(frozen=True)
class Step:
    """A step of a pending order (reserved, charged, shipped), as its event stores it."""

    step: OrderStep
    detail: dict[str, str]
    at: datetime

    def row(self, order_id: str) -> dict[str, object]:
        return {
            "order_id": order_id,
            "step": self.step,
            "status": "pending",
            "detail": json.dumps(self.detail),
            "at": self.at,
        }


async def update_order(engine: AsyncEngine, order: Order, steps: Sequence[Step] = ()) -> bool:
    """Store a pending order's final status and the event that says so, after the events
    of ``steps``, the steps that led to it: one transaction, one INSERT of the events.
    False (nothing stored) when the order is no longer pending: the compensation worker of
    some order-service process failed it as abandoned meanwhile, and queued its undos."""
    return await transaction(engine, _update_order, order, steps)


def _update_order(conn: Connection, order: Order, steps: Sequence[Step]) -> bool:
    changed = conn.execute(
        _UPDATE_ORDER,
        {
            "b_order_id": order.order_id,
            "status": order.status,
            "document": order.model_dump_json(),
            "updated_at": order.updated_at,
        },
    ).rowcount
    if changed:
        conn.execute(_NEW_EVENT, [*(s.row(order.order_id) for s in steps), _status_event(order)])
    return bool(changed)


async def add_order_event(engine: AsyncEngine, order_id: str, step: Step) -> None:
    """A step of a pending order, stored as it happens (the next change of the order's
    status is further off: a call downstream or more)."""
    await transaction(engine, _add_order_event, step.row(order_id))


def _add_order_event(conn: Connection, row: dict[str, object]) -> None:
    conn.execute(_NEW_EVENT, row)


async def events_after(
    engine: AsyncEngine, order_id: str, after: int = 0, limit: int = 100
) -> list[OrderEvent]:
    """An order's events after the one numbered ``after``, oldest first."""
    return await read(engine, _events_after, order_id, after, limit)


def _events_after(conn: Connection, order_id: str, after: int, limit: int) -> list[OrderEvent]:
    rows = conn.execute(_EVENTS_AFTER, {"order_id": order_id, "after": after, "limit": limit}).all()
    return [
        OrderEvent(
            order_id=row.order_id,
            seq=row.id,
            step=row.step,
            status=row.status,
            final=row.status != "pending",
            at=utc(row.at),
            detail=json.loads(row.detail),
        )
        for row in rows
    ]


async def order_exists(engine: AsyncEngine, order_id: str) -> bool:
    return await read(engine, _order_exists, order_id)


def _order_exists(conn: Connection, order_id: str) -> bool:
    return conn.execute(_ORDER_EXISTS, {"order_id": order_id}).first() is not None


async def get_order(engine: AsyncEngine, order_id: str) -> Order:
    return await read(engine, _get_order, order_id)


def _get_order(conn: Connection, order_id: str) -> Order:
    document = conn.execute(_DOCUMENT, {"order_id": order_id}).scalar_one_or_none()
    if document is None:
        raise NotFound(f"no order {order_id}")
    return Order.model_validate_json(document)


async def abandoned_orders(engine: AsyncEngine, cutoff: datetime) -> list[Order]:
    """Orders still pending although their last change is older than ``cutoff``."""
    return await read(engine, _abandoned_orders, cutoff)


def _abandoned_orders(conn: Connection, cutoff: datetime) -> list[Order]:
    documents = conn.execute(
        select(orders.c.document)
        .where(orders.c.status == "pending", orders.c.updated_at < cutoff)
        .order_by(orders.c.updated_at)
        .limit(100)
    ).scalars()
    return [Order.model_validate_json(d) for d in documents]


async def fail_abandoned(
    engine: AsyncEngine, order: Order, actions: list[str], traceparent: str, at: datetime
) -> bool:
    """Store an abandoned order as failed and queue its undos, due ``at`` once, in one
    transaction. False when the order is no longer pending (its request finished after all).
    """
    return await transaction(engine, _fail_abandoned, order, actions, traceparent, at)


def _fail_abandoned(
    conn: Connection, order: Order, actions: list[str], traceparent: str, at: datetime
) -> bool:
    changed = conn.execute(
        update(orders)
        .where(orders.c.order_id == order.order_id, orders.c.status == "pending")
        .values(status=order.status, document=order.model_dump_json(), updated_at=order.updated_at)
    ).rowcount
    if changed:
        conn.execute(_NEW_EVENT, _status_event(order))
        conn.execute(
            insert(compensations),
            [
                {
                    "order_id": order.order_id,
                    "action": action,
                    "traceparent": traceparent,
                    "attempts": 0,
                    "last_error": "order abandoned",
                    "done_at": None,
                    "created_at": at,
                    "next_attempt_at": at,  # nothing was tried yet
                    "claimed_by": None,
                    "claimed_until": None,
                }
                for action in actions
            ],
        )
    return bool(changed)


@dataclass(frozen=True)
class PendingCompensation:
    id: int
    order_id: str
    action: str
    traceparent: str
    attempts: int
    last_error: str
    created_at: datetime | None
    next_attempt_at: datetime | None


def _pending(row: Row[Any]) -> PendingCompensation:
    return PendingCompensation(
        row.id,
        row.order_id,
        row.action,
        row.traceparent,
        row.attempts,
        row.last_error,
        utc(row.created_at),
        utc(row.next_attempt_at),
    )


async def add_compensation(
    engine: AsyncEngine,
    order_id: str,
    action: str,
    traceparent: str,
    error: str,
    *,
    at: datetime,
    due: datetime,
) -> None:
    """Store a compensation that failed once ``at``, to be retried from ``due`` on."""
    values = {
        "order_id": order_id,
        "action": action,
        "traceparent": traceparent,
        "attempts": 1,
        "last_error": error[:500],
        "done_at": None,
        "created_at": at,
        "next_attempt_at": due,
    }
    await transaction(engine, _insert, compensations, values)


def _insert(conn: Connection, table: Table, values: dict[str, object]) -> None:
    conn.execute(insert(table).values(**values))


_PENDING = compensations.c.done_at.is_(None)


async def claim_due(
    engine: AsyncEngine, worker: str, at: datetime, lease: timedelta, limit: int = 100
) -> list[PendingCompensation]:
    """Claim for ``worker`` the pending compensations due ``at`` that no other worker
    holds, the longest overdue first, until ``at + lease``; count one more attempt of each
    (before trying: an attempt cut short is not repeated before its lease ends). Returns
    them, their ``attempts`` counting this one.

    Each item is claimed by one worker only, whichever order-service process runs it: on
    PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED`` (a second worker passes
    over those the first is claiming instead of waiting for them), and the ``UPDATE``
    checks again that each is free; SQLite runs one write transaction at a time, so the
    same conditional ``UPDATE`` is enough there.
    """
    return await transaction(engine, _claim_due, worker, at, lease, limit)


def _claim_due(
    conn: Connection, worker: str, at: datetime, lease: timedelta, limit: int
) -> list[PendingCompensation]:
    c = compensations.c
    claimable = (
        _PENDING,
        or_(c.next_attempt_at.is_(None), c.next_attempt_at <= at),
        or_(c.claimed_until.is_(None), c.claimed_until <= at),
    )
    # A CTE, evaluated once: as a subquery of the UPDATE, PostgreSQL may run the SELECT
    # again for each row and, skipping the rows this statement has just locked, take
    # more than ``limit``.
    chosen = (
        select(c.id)
        .where(*claimable)
        .order_by(c.next_attempt_at.asc().nulls_first(), c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("chosen")
        .prefix_with("MATERIALIZED")
    )
    rows = conn.execute(
        update(compensations)
        .where(c.id.in_(select(chosen.c.id)), *claimable)
        .values(claimed_by=worker, claimed_until=at + lease, attempts=c.attempts + 1)
        .returning(*compensations.columns)
    ).all()
    claimed = [_pending(r) for r in rows]
    return sorted(claimed, key=lambda i: (i.next_attempt_at is not None, i.next_attempt_at, i.id))


async def finish_compensation(
    engine: AsyncEngine,
    id_: int,
    worker: str,
    *,
    error: str | None,
    at: datetime,
    next_attempt: datetime | None = None,
) -> bool:
    """End ``worker``'s claim on a compensation: done ``at``, or failed with ``error`` and
    due again ``next_attempt``. False when the claim was no longer ``worker``'s (its lease
    ran out and another worker claimed the item)."""
    values: dict[str, object] = {"claimed_by": None, "claimed_until": None}
    if error is None:
        values["done_at"] = at
    else:
        values.update(last_error=error[:500], next_attempt_at=next_attempt)
    return await transaction(engine, _finish_compensation, id_, worker, values)


def _finish_compensation(
    conn: Connection, id_: int, worker: str, values: dict[str, object]
) -> bool:
    ended = conn.execute(
        update(compensations)
        .where(compensations.c.id == id_, compensations.c.claimed_by == worker)
        .values(**values)
    ).rowcount
    return bool(ended)


async def compensation_backlog(
    engine: AsyncEngine, limit: int
) -> tuple[int, datetime | None, list[PendingCompensation]]:
    """How many compensations are pending, when the oldest (of those with a recorded time)
    was deferred, and the ``limit`` oldest of them."""
    return await read(engine, _compensation_backlog, limit)


def _compensation_backlog(
    conn: Connection, limit: int
) -> tuple[int, datetime | None, list[PendingCompensation]]:
    count, oldest = conn.execute(
        select(func.count(), func.min(compensations.c.created_at)).where(_PENDING)
    ).one()
    rows = conn.execute(
        select(compensations).where(_PENDING).order_by(compensations.c.id).limit(limit)
    ).all()
    return int(count), utc(oldest), [_pending(r) for r in rows]


@dataclass(frozen=True)
class IdempotencyRecord:
    body_digest: str
    status_code: int | None  # None while the first request is still running
    response: str | None
    updated_at: datetime


async def claim_key(engine: AsyncEngine, key: str, digest: str) -> IdempotencyRecord | None:
    """Claim an Idempotency-Key for a new request: None if claimed, else what is stored."""
    values = {"key": key, "body_digest": digest, "updated_at": now()}
    try:
        await transaction(engine, _claim_key, values)
        return None
    except IntegrityError:
        return await read_key(engine, key)


def _claim_key(conn: Connection, values: dict[str, object]) -> None:
    conn.execute(_NEW_KEY, values)


async def read_key(engine: AsyncEngine, key: str) -> IdempotencyRecord | None:
    return await read(engine, _read_key, key)


def _read_key(conn: Connection, key: str) -> IdempotencyRecord | None:
    row = conn.execute(_KEY, {"key": key}).first()
    if row is None:
        return None
    return IdempotencyRecord(row.body_digest, row.status_code, row.response, row.updated_at)


async def complete_key(engine: AsyncEngine, key: str, status_code: int, response: str) -> None:
    await transaction(engine, _complete_key, key, status_code, response)


def _complete_key(conn: Connection, key: str, status_code: int, response: str) -> None:
    conn.execute(
        _COMPLETE_KEY,
        {"b_key": key, "status_code": status_code, "response": response, "updated_at": now()},
    )


async def release_key(engine: AsyncEngine, key: str) -> None:
    """Forget a key whose request stored nothing (invalid input), so it can be used again."""
    await transaction(engine, _release_key, key)


def _release_key(conn: Connection, key: str) -> None:
    conn.execute(_RELEASE_KEY, {"key": key})
