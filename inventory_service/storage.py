"""Inventory tables and the atomic stock operations.

Stock is only ever changed by conditional UPDATEs (``stock = stock - q WHERE stock >= q``)
inside the reservation's transaction, so concurrent orders can never oversell and stock
never goes negative (the CHECK constraint backs that up). Each write transaction starts
with a write, so on SQLite it takes the write lock up front instead of failing to
upgrade a read lock under contention.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import (
    CheckConstraint,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import read, transaction
from common.errors import Conflict, NotFound
from inventory_service.errors import OutOfStock, UnknownSku
from inventory_service.models import ItemRequest, Product, Reservation, ReservedItem


class Base(DeclarativeBase):
    pass


class ProductRow(Base):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("stock >= 0", name="stock_not_negative"),)

    sku: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[str] = mapped_column(String(20))  # decimal string: exact, portable
    stock: Mapped[int] = mapped_column(Integer)


class ReservationRow(Base):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReservationItemRow(Base):
    __tablename__ = "reservation_items"

    order_id: Mapped[str] = mapped_column(ForeignKey("reservations.order_id"), primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[str] = mapped_column(String(20))


products = cast(Table, ProductRow.__table__)
reservations = cast(Table, ReservationRow.__table__)
reservation_items = cast(Table, ReservationItemRow.__table__)
metadata = Base.metadata


def catalogue() -> list[Product]:
    """The seed: plentiful SKUs so load runs never run dry, and a few scarce ones."""
    names = [
        "Espresso beans 1kg",
        "Pour-over kettle",
        "Ceramic dripper",
        "Paper filters x100",
        "Burr grinder",
        "Milk jug",
        "Tamper",
        "Scale 0.1g",
        "Cold brew jar",
        "Travel mug",
        "Cup set x4",
        "Descaler",
        "Knock box",
        "Cleaning brush",
        "Moka pot",
        "Aeropress",
    ]
    plentiful = [
        Product(
            sku=f"SKU-{i:04d}",
            name=name,
            unit_price=Decimal(f"{4 + (i * 7) % 60}.{(i * 13) % 100:02d}"),
            stock=1_000_000,
        )
        for i, name in enumerate(names, start=1)
    ]
    scarce = [
        Product(sku="SKU-0017", name="Limited roast: Gesha", unit_price=Decimal("89.00"), stock=5),
        Product(sku="SKU-0018", name="Signed barista book", unit_price=Decimal("35.50"), stock=10),
        Product(
            sku="SKU-0019", name="Copper espresso machine", unit_price=Decimal("1299.00"), stock=15
        ),
        Product(sku="SKU-0020", name="Anniversary tin", unit_price=Decimal("24.99"), stock=20),
    ]
    return plentiful + scarce


#: The SKUs seeded with little stock, so that out-of-stock happens naturally.
SCARCE_SKUS = frozenset(p.sku for p in catalogue() if p.stock <= 20)


async def seed_if_empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        count = (await conn.execute(select(func.count()).select_from(products))).scalar_one()
        if count == 0:
            await conn.execute(
                insert(products),
                [
                    {
                        "sku": p.sku,
                        "name": p.name,
                        "unit_price": str(p.unit_price),
                        "stock": p.stock,
                    }
                    for p in catalogue()
                ],
            )


# The statements, built once. Building a statement's expression tree (and its cache key)
# on every call cost more CPU than running it; built once, each compiles once (SQLAlchemy
# caches the SQL) and runs with its parameters. (A parameter named after a column of the
# table an UPDATE sets is SQLAlchemy's own: the others are named ``b_…``.)
_CATALOGUE = select(products).order_by(products.c.sku)
_NAMED_PRODUCTS = _CATALOGUE.where(products.c.sku.in_(bindparam("skus", expanding=True)))
_PRODUCT = select(products).where(products.c.sku == bindparam("sku"))
_SKUS = select(products.c.sku)
_TAKE_STOCK = (
    update(products)
    .where(products.c.sku == bindparam("b_sku"), products.c.stock >= bindparam("b_quantity"))
    .values(stock=products.c.stock - bindparam("b_quantity"))
    .returning(products.c.unit_price)
)
_PUT_BACK = (
    update(products)
    .where(products.c.sku == bindparam("b_sku"))
    .values(stock=products.c.stock + bindparam("b_quantity"))
)
_NEW_RESERVATION = insert(reservations)
_NEW_ITEMS = insert(reservation_items)
_STATUS = select(reservations.c.status).where(reservations.c.order_id == bindparam("order_id"))
_EXISTS = select(reservations.c.order_id).where(reservations.c.order_id == bindparam("order_id"))
_ITEMS = select(reservation_items).where(reservation_items.c.order_id == bindparam("order_id"))
_COMMIT = (
    update(reservations)
    .where(reservations.c.order_id == bindparam("b_order_id"), reservations.c.status == "reserved")
    .values(status="committed")
)
_RELEASE = (
    update(reservations)
    .where(reservations.c.order_id == bindparam("b_order_id"), reservations.c.status != "released")
    .values(status="released")
)


def _product(row: ProductRow | object) -> Product:
    return Product.model_validate(row)


async def list_products(engine: AsyncEngine, skus: Sequence[str] = ()) -> list[Product]:
    return await read(engine, _list_products, skus)


def _list_products(conn: Connection, skus: Sequence[str]) -> list[Product]:
    rows = conn.execute(_NAMED_PRODUCTS, {"skus": list(skus)}) if skus else conn.execute(_CATALOGUE)
    return [_product(row) for row in rows.all()]


async def list_products_one_by_one(engine: AsyncEngine, skus: Sequence[str] = ()) -> list[Product]:
    """:func:`list_products`, one SELECT per product (the "n_plus_one" scenario)."""
    return await read(engine, _list_products_one_by_one, skus)


def _list_products_one_by_one(conn: Connection, skus: Sequence[str]) -> list[Product]:
    if not skus:
        skus = conn.execute(_SKUS).scalars().all()
    found: list[Product] = []
    for sku in sorted(set(skus)):
        row = conn.execute(_PRODUCT, {"sku": sku}).first()
        if row is not None:
            found.append(_product(row))
    return found


async def get_product(engine: AsyncEngine, sku: str) -> Product:
    return await read(engine, _get_product, sku)


def _get_product(conn: Connection, sku: str) -> Product:
    row = conn.execute(_PRODUCT, {"sku": sku}).first()
    if row is None:
        raise UnknownSku(sku)
    return _product(row)


def _read_reservation(conn: Connection, order_id: str) -> Reservation | None:
    status = conn.execute(_STATUS, {"order_id": order_id}).scalar_one_or_none()
    if status is None:
        return None
    return Reservation(order_id=order_id, status=status, items=_items(conn, order_id))


def _items(conn: Connection, order_id: str) -> list[ReservedItem]:
    rows = conn.execute(_ITEMS, {"order_id": order_id}).all()
    return [ReservedItem(sku=r.sku, quantity=r.quantity, unit_price=r.unit_price) for r in rows]


async def get_reservation(engine: AsyncEngine, order_id: str) -> Reservation:
    found = await read(engine, _read_reservation, order_id)
    if found is None:
        raise NotFound(f"no reservation for order {order_id}")
    return found


def _now() -> datetime:
    return datetime.now(UTC)


async def reserve(engine: AsyncEngine, order_id: str, items: Sequence[ItemRequest]) -> Reservation:
    """Reserve all items or none. Repeating a reservation returns the first one."""
    try:
        return await transaction(engine, _reserve, order_id, items)
    except IntegrityError:
        # The order id already has a reservation (a retry) or a release tombstone.
        existing = await get_reservation(engine, order_id)
        if existing.status == "released":
            raise Conflict(
                f"reservation for order {order_id} was released", order_id=order_id
            ) from None
        return existing


def _reserve(conn: Connection, order_id: str, items: Sequence[ItemRequest]) -> Reservation:
    conn.execute(
        _NEW_RESERVATION, {"order_id": order_id, "status": "reserved", "updated_at": _now()}
    )
    reserved: list[ReservedItem] = []
    for item in items:
        taken = {"b_sku": item.sku, "b_quantity": item.quantity}
        price = conn.execute(_TAKE_STOCK, taken).scalar_one_or_none()
        if price is None:  # rolls the whole reservation back
            product = conn.execute(_PRODUCT, {"sku": item.sku}).first()
            if product is None:
                raise UnknownSku(item.sku)
            raise OutOfStock(item.sku, item.quantity, product.stock)
        reserved.append(ReservedItem(sku=item.sku, quantity=item.quantity, unit_price=price))
    conn.execute(
        _NEW_ITEMS,
        [
            {
                "order_id": order_id,
                "sku": r.sku,
                "quantity": r.quantity,
                "unit_price": str(r.unit_price),
            }
            for r in reserved
        ],
    )
    return Reservation(order_id=order_id, status="reserved", items=reserved)


async def commit(engine: AsyncEngine, order_id: str) -> Reservation:
    """Turn a reservation into a sale. Idempotent; a released reservation is a 409."""
    found = await transaction(engine, _commit, order_id)
    if found is None:
        raise NotFound(f"no reservation for order {order_id}")
    if found.status == "released":
        raise Conflict(f"reservation for order {order_id} was released", order_id=order_id)
    return found


def _commit(conn: Connection, order_id: str) -> Reservation | None:
    if conn.execute(_COMMIT, {"b_order_id": order_id, "updated_at": _now()}).rowcount:
        # Committed now: its status is known, its items are what the response needs.
        return Reservation(order_id=order_id, status="committed", items=_items(conn, order_id))
    return _read_reservation(conn, order_id)


async def release(engine: AsyncEngine, order_id: str) -> Reservation:
    """Put reserved or committed stock back. Idempotent.

    Releasing an order that has no reservation leaves a tombstone, so a reservation
    request that arrives late (after the order gave up on it) is refused instead of
    holding stock forever.
    """
    return await transaction(engine, _release, order_id)


def _release(conn: Connection, order_id: str) -> Reservation:
    now = _now()
    changed = conn.execute(_RELEASE, {"b_order_id": order_id, "updated_at": now}).rowcount
    if changed:
        for row in conn.execute(_ITEMS, {"order_id": order_id}).all():
            conn.execute(_PUT_BACK, {"b_sku": row.sku, "b_quantity": row.quantity})
    elif conn.execute(_EXISTS, {"order_id": order_id}).first() is None:
        conn.execute(
            _NEW_RESERVATION, {"order_id": order_id, "status": "released", "updated_at": now}
        )
    found = _read_reservation(conn, order_id)
    assert found is not None
    return found
