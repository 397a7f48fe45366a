"""inventory-service endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from common.concurrency import settle_all
from common.deps import EngineDep, ScenariosDep, TracerDep
from inventory_service import storage
from inventory_service.errors import OutOfStock
from inventory_service.models import (
    ItemRequest,
    OutOfStockError,
    Product,
    Reservation,
    ReserveRequest,
)

router = APIRouter(tags=["inventory"])


@router.get("/products")
async def list_products(
    engine: EngineDep,
    scenarios: ScenariosDep,
    sku: Annotated[list[str] | None, Query(max_length=50)] = None,
) -> list[Product]:
    """The catalogue, or the products named by repeated `sku` parameters."""
    if "n_plus_one" in scenarios:
        return await storage.list_products_one_by_one(engine, sku or ())
    return await storage.list_products(engine, sku or ())


async def _check_stock(engine: AsyncEngine, tracer: trace.Tracer, item: ItemRequest) -> None:
    with tracer.start_as_current_span("check_stock") as span:
        span.set_attributes({"shop.sku": item.sku, "shop.quantity": item.quantity})
        product = await storage.get_product(engine, item.sku)
        span.set_attribute("shop.stock.available", product.stock)
        if product.stock < item.quantity:
            raise OutOfStock(item.sku, item.quantity, product.stock)


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": OutOfStockError}},
)
async def reserve(body: ReserveRequest, engine: EngineDep, tracer: TracerDep) -> Reservation:
    """Reserve every item for an order, all or nothing (409 when one is short)."""
    with tracer.start_as_current_span("reserve_items") as span:
        span.set_attributes({"shop.order.id": body.order_id, "shop.item.count": len(body.items)})
        # Each SKU is checked concurrently (visible as sibling spans, all ended before this
        # one); the conditional UPDATEs in storage.reserve are what guarantees no oversell.
        await settle_all(*(_check_stock(engine, tracer, item) for item in body.items))
        reservation = await storage.reserve(engine, body.order_id, body.items)
        span.add_event("reserved", {"shop.units": sum(i.quantity for i in reservation.items)})
        return reservation


@router.get("/reservations/{order_id}")
async def get_reservation(order_id: str, engine: EngineDep) -> Reservation:
    """One order's reservation and its status."""
    return await storage.get_reservation(engine, order_id)


@router.post("/reservations/{order_id}/commit")
async def commit(order_id: str, engine: EngineDep, tracer: TracerDep) -> Reservation:
    """Turn the reservation into a sale (idempotent)."""
    with tracer.start_as_current_span("commit_reservation") as span:
        span.set_attribute("shop.order.id", order_id)
        return await storage.commit(engine, order_id)


@router.post("/reservations/{order_id}/release")
async def release(order_id: str, engine: EngineDep, tracer: TracerDep) -> Reservation:
    """Put the stock back (idempotent; also refuses a reservation that arrives later)."""
    with tracer.start_as_current_span("release_reservation") as span:
        span.set_attribute("shop.order.id", order_id)
        reservation = await storage.release(engine, order_id)
        span.add_event("released")
        return reservation
