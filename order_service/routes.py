"""order-service endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from common.deps import EngineDep
from order_service import storage
from order_service.flow import OrderFlow
from order_service.models import HTTP_STATUS, Order, OrderRequest

router = APIRouter(tags=["orders"])


def _flow(request: Request) -> OrderFlow:
    flow: OrderFlow = request.app.state.flow
    return flow


FlowDep = Annotated[OrderFlow, Depends(_flow)]

_OUTCOMES: dict[int | str, dict[str, object]] = {
    status: {"model": Order, "description": f"order {name}"}
    for name, status in HTTP_STATUS.items()
    if status != 201
}


@router.post("/orders", status_code=201, response_model=Order, responses=_OUTCOMES)
async def place_order(body: OrderRequest, flow: FlowDep) -> JSONResponse:
    """Place an order: 201 confirmed, 409 rejected, 402 payment failed, 503 failed."""
    order = await flow.place(body)
    return JSONResponse(order.model_dump(mode="json"), status_code=HTTP_STATUS[order.status])


@router.get("/orders/{order_id}")
async def get_order(order_id: str, engine: EngineDep) -> Order:
    """A stored order with its final status."""
    return await storage.get_order(engine, order_id)
