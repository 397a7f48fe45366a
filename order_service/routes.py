"""order-service endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from common.deps import EngineDep
from common.errors import ErrorBody, error_responses
from common.ids import OrderId
from common.openapi import links
from order_service import idempotency, storage
from order_service.flow import OrderFlow
from order_service.models import HTTP_STATUS, Order, OrderRequest
from order_service.settings import OrderSettings

router = APIRouter(tags=["orders"])


async def _flow(request: Request) -> OrderFlow:
    flow: OrderFlow = request.app.state.flow
    return flow


FlowDep = Annotated[OrderFlow, Depends(_flow)]

# Every outcome but a 422 is stored: GET /orders/{order_id} reads it back.
_STORED = links("order_id", GetOrder=("get", "/orders/{order_id}"))
_OUTCOMES: dict[int | str, dict[str, object]] = {
    status: {"model": Order, "description": f"The order is {name}.", **_STORED}
    for name, status in HTTP_STATUS.items()
}
# A retry whose Idempotency-Key is still in use by the first request is a 409 too.
_OUTCOMES[409] = {
    "model": Order | ErrorBody,
    "description": "The order is rejected (not enough stock); or, with an Idempotency-Key, "
    "the first request with that key is still running (`idempotency_key_in_progress`).",
}


@router.post("/orders", status_code=201, response_model=Order, responses=_OUTCOMES)
async def place_order(
    body: OrderRequest,
    request: Request,
    flow: FlowDep,
    engine: EngineDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> Response:
    """Place an order: 201 confirmed, 409 rejected, 402 payment failed, 503 failed.

    With an `Idempotency-Key` header, a retry with the same key and body returns the first
    response (header `Idempotent-Replayed: true`) and buys nothing twice.
    """
    if idempotency_key is None:
        order = await flow.place(body)
        return Response(
            order.model_dump_json(),
            status_code=HTTP_STATUS[order.status],
            media_type="application/json",
        )
    settings: OrderSettings = request.app.state.settings
    status, response, replayed = await idempotency.once(
        engine,
        idempotency_key,
        idempotency.body_digest(await request.body()),
        lambda: flow.place(body),
        wait=settings.abandon_after,
    )
    headers = {"idempotent-replayed": "true"} if replayed else None
    return Response(response, status_code=status, media_type="application/json", headers=headers)


@router.get("/orders/{order_id}", responses=error_responses({404: "No such order."}))
async def get_order(order_id: OrderId, engine: EngineDep) -> Order:
    """A stored order with its final status."""
    return await storage.get_order(engine, order_id)
