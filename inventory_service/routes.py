"""inventory-service endpoints."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from common.concurrency import settle_all
from common.deps import EngineDep, TracerDep
from common.errors import ErrorBody, ValidationErrorBody, error_responses
from common.ids import OrderId, Sku
from common.openapi import links
from inventory_service import storage
from inventory_service.errors import OutOfStock
from inventory_service.metrics import StockGauge
from inventory_service.models import (
    MAX_ITEMS,
    ItemRequest,
    OutOfStockError,
    Product,
    Reservation,
    ReserveRequest,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["inventory"])


#: How GET /products lists them: ``storage.list_products``, or the variant of a planted
#: scenario (n_plus_one), chosen when the app is built (``app.state.list_products``).
ListProducts = Callable[[AsyncEngine, Sequence[str]], Awaitable[list[Product]]]


async def _list_products(request: Request) -> ListProducts:
    chosen: ListProducts = request.app.state.list_products
    return chosen


async def _stock(request: Request) -> StockGauge:
    gauge: StockGauge = request.app.state.stock
    return gauge


StockDep = Annotated[StockGauge, Depends(_stock)]


async def _observe_scarce(engine: AsyncEngine, stock: StockGauge, skus: list[str]) -> None:
    """Read again the stock of the scarce SKUs among ``skus``, which has just changed."""
    if scarce := stock.scarce(skus):
        stock.observe(await storage.list_products(engine, scarce))


@router.get("/products")
async def list_products(
    engine: EngineDep,
    stock: StockDep,
    list_products: Annotated[ListProducts, Depends(_list_products)],
    sku: Annotated[list[Sku] | None, Query(max_length=MAX_ITEMS)] = None,
) -> list[Product]:
    """The catalogue, or the products named by repeated `sku` parameters."""
    found = await list_products(engine, sku or ())
    stock.observe(found)
    return found


async def _check_stock(
    engine: AsyncEngine, tracer: trace.Tracer, stock: StockGauge, item: ItemRequest
) -> None:
    with tracer.start_as_current_span("check_stock") as span:
        span.set_attributes({"shop.sku": item.sku, "shop.quantity": item.quantity})
        product = await storage.get_product(engine, item.sku)
        stock.observe([product])
        span.set_attribute("shop.stock.available", product.stock)
        if product.stock < item.quantity:
            logger.info(
                "%s short: %d wanted, %d in stock",
                item.sku,
                item.quantity,
                product.stock,
                extra={"shop.sku": item.sku},
            )
            raise OutOfStock(item.sku, item.quantity, product.stock)


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: links(
            "order_id",
            GetReservation=("get", "/reservations/{order_id}"),
            CommitReservation=("post", "/reservations/{order_id}/commit"),
            ReleaseReservation=("post", "/reservations/{order_id}/release"),
        ),
        409: {
            "model": OutOfStockError | ErrorBody,
            "description": "An item is short (`out_of_stock`), or the order's reservation "
            "was released already.",
        },
        422: {
            "model": ValidationErrorBody | ErrorBody,
            "description": "Invalid body, or a SKU the catalogue does not have (`unknown_sku`).",
        },
    },
)
async def reserve(
    body: ReserveRequest, engine: EngineDep, tracer: TracerDep, stock: StockDep
) -> Reservation:
    """Reserve every item for an order, all or nothing (409 when one is short)."""
    with tracer.start_as_current_span("reserve_items") as span:
        span.set_attributes({"shop.order.id": body.order_id, "shop.item.count": len(body.items)})
        # Each SKU is checked concurrently (visible as sibling spans, all ended before this
        # one); the conditional UPDATEs in storage.reserve are what guarantees no oversell.
        await settle_all(*(_check_stock(engine, tracer, stock, item) for item in body.items))
        reservation = await storage.reserve(engine, body.order_id, body.items)
        await _observe_scarce(engine, stock, [i.sku for i in reservation.items])
        units = sum(i.quantity for i in reservation.items)
        span.add_event("reserved", {"shop.units": units})
        logger.info(
            "order %s: %d units reserved",
            body.order_id,
            units,
            extra={"shop.order.id": body.order_id},
        )
        return reservation


@router.get(
    "/reservations/{order_id}",
    responses=error_responses({404: "The order has no reservation."}),
)
async def get_reservation(order_id: OrderId, engine: EngineDep) -> Reservation:
    """One order's reservation and its status."""
    return await storage.get_reservation(engine, order_id)


@router.post(
    "/reservations/{order_id}/commit",
    responses=error_responses(
        {404: "The order has no reservation.", 409: "The reservation was released."}
    ),
)
async def commit(order_id: OrderId, engine: EngineDep, tracer: TracerDep) -> Reservation:
    """Turn the reservation into a sale (idempotent)."""
    with tracer.start_as_current_span("commit_reservation") as span:
        span.set_attribute("shop.order.id", order_id)
        return await storage.commit(engine, order_id)


@router.post("/reservations/{order_id}/release")
async def release(
    order_id: OrderId, engine: EngineDep, tracer: TracerDep, stock: StockDep
) -> Reservation:
    """Put the stock back (idempotent; also refuses a reservation that arrives later)."""
    with tracer.start_as_current_span("release_reservation") as span:
        span.set_attribute("shop.order.id", order_id)
        reservation = await storage.release(engine, order_id)
        await _observe_scarce(engine, stock, [i.sku for i in reservation.items])
        span.add_event("released")
        logger.info("order %s: reservation released", order_id, extra={"shop.order.id": order_id})
        return reservation
