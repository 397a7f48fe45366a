"""order-service endpoints."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from opentelemetry import context as otel_context

from common.deps import EngineDep, TracerDep
from common.errors import ErrorBody, NotFound, error_responses
from common.ids import OrderId
from common.openapi import links
from order_service import idempotency, storage
from order_service.background import AfterResponse
from order_service.deps import FlowDep, SettingsDep
from order_service.events import MEDIA_TYPE, EventStream, StreamEnd, order_event_stream
from order_service.models import (
    ACCEPTED,
    HTTP_STATUS,
    Order,
    OrderEvent,
    OrderRequest,
    http_status,
)

router = APIRouter(tags=["orders"])


# Every outcome but a 422 is stored: GET /orders/{order_id} reads it back.
_STORED = links(
    "order_id",
    GetOrder=("get", "/orders/{order_id}"),
    GetOrderEvents=("get", "/orders/{order_id}/events"),
)
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
_OUTCOMES[ACCEPTED] = {
    "model": Order,
    "description": "With `Prefer: respond-async`: the order is valid and stored as pending; "
    "its steps run after this response. Follow it at `Location` or its event stream.",
    "headers": {
        "Location": {"description": "`/orders/{order_id}`", "schema": {"type": "string"}},
        "Preference-Applied": {"description": "`respond-async`", "schema": {"type": "string"}},
    },
    **_STORED,
}


def prefers_async(values: Sequence[str]) -> bool:
    """Whether ``Prefer`` headers ask for ``respond-async`` (RFC 7240: comma-separated
    preferences, each a case-insensitive token with an optional ``=value`` and
    ``;parameters``, in one header or several)."""
    return any(
        preference.split(";", 1)[0].split("=", 1)[0].strip().lower() == "respond-async"
        for value in values
        for preference in value.split(",")
    )


@router.post("/orders", status_code=201, response_model=Order, responses=_OUTCOMES)
async def place_order(
    body: OrderRequest,
    request: Request,
    flow: FlowDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
    prefer: Annotated[
        str | None,
        Header(
            max_length=1000,
            description="`respond-async` (RFC 7240): answer 202 once the order is valid and "
            "stored, and run its steps after the response",
        ),
    ] = None,
) -> Response:
    """Place an order: 201 confirmed, 409 rejected, 402 payment failed, 503 failed; with
    `Prefer: respond-async`, 202 and the pending order at once.

    With an `Idempotency-Key` header, a retry with the same key and body returns the first
    response (header `Idempotent-Replayed: true`) and buys nothing twice.
    """
    # What runs after the response (steps 2-5 of a 202, a confirmation's notification)
    # starts once it has gone out, detached (order_service/background.py).
    after = AfterResponse()
    place: Callable[[], Awaitable[Order]]
    if prefers_async(request.headers.getlist("prefer")):
        place = functools.partial(flow.accept, body, after_response=after.add)
    else:
        place = functools.partial(flow.place, body, after_response=after.add)
    headers: dict[str, str] = {}
    if idempotency_key is None:
        order = await place()
        status, content = http_status(order.status), order.model_dump_json()
    else:
        status, content, replayed = await idempotency.once(
            engine,
            idempotency_key,
            idempotency.body_digest(await request.body()),
            place,
            wait=settings.abandon_after,
        )
        if replayed:
            headers["idempotent-replayed"] = "true"
    if status == ACCEPTED:
        headers["location"] = f"/orders/{json.loads(content)['order_id']}"
        headers["preference-applied"] = "respond-async"
    return after.response(content, status_code=status, headers=headers)


@router.get("/orders/{order_id}", responses=error_responses({404: "No such order."}))
async def get_order(order_id: OrderId, engine: EngineDep) -> Order:
    """A stored order with its final status."""
    return await storage.get_order(engine, order_id)


@router.get(
    "/orders/{order_id}/events",
    response_model=None,
    responses={
        200: {
            "description": "Server-Sent Events, one per step (`event`: the step, `id`: its "
            "sequence number, `data`: an OrderEvent as JSON), ending after the final status.",
            # As FastAPI declares its own SSE routes (OpenAPI 3.2's itemSchema): one event.
            "content": {
                MEDIA_TYPE: {
                    "itemSchema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": OrderEvent.model_json_schema(),
                            },
                            "event": {"type": "string"},
                            "id": {"type": "string"},
                            "retry": {"type": "integer", "minimum": 0},
                        },
                    }
                }
            },
        },
        **error_responses({404: "No such order."}),
    },
)
async def order_events(
    order_id: OrderId,
    engine: EngineDep,
    tracer: TracerDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=r"^[0-9]{1,18}$",
            description="resume after this event (the `id` of the last one received)",
        ),
    ] = None,
) -> EventStream:
    """The order's steps as they happen (stored, reserved, charged, shipped, its final
    status), as `text/event-stream`; an order already final gives its history and the
    stream ends."""
    if not await storage.order_exists(engine, order_id):
        raise NotFound(f"no order {order_id}")
    end = StreamEnd()
    events = order_event_stream(
        engine,
        order_id,
        after=int(last_event_id or 0),
        tracer=tracer,
        parent=otel_context.get_current(),
        poll_interval=settings.events_poll_interval,
        end=end,
    )
    return EventStream(events, end)
