"""The order flow, top to bottom: what the waterfall of one ``POST /orders`` shows.

1. validate the order (prices from inventory) and store it as pending;
2. concurrently: inventory reserves the items ‖ shipping quotes the delivery;
3. payment charges items + shipping;
4. concurrently: inventory commits the reservation ‖ shipping creates the shipment;
5. store the order as confirmed.

A failure ends the order as rejected (409), payment_failed (402) or failed (503) and
undoes what was done: release the reservation, refund the charge, cancel the shipment.

Each step that lands (reserved, charged, shipped) and each status is stored as an event of
the order, which ``GET /orders/{order_id}/events`` streams. A confirmed order's
notification goes out after the response, in a trace of its own (:mod:`.notifications`).
With ``Prefer: respond-async`` the request does step 1 only (:meth:`OrderFlow.accept`)
and steps 2-5 run after the 202, in a trace of their own linked to it
(:mod:`.background`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TypeVar

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from common.concurrency import settle_all, uncancelled
from common.errors import DownstreamUnavailable, InvalidFields, ServiceError
from common.ids import new_order_id
from common.money import Money
from inventory_service.client import InventoryClient
from inventory_service.errors import OutOfStock, UnknownSku
from inventory_service.models import ItemRequest
from order_service import storage
from order_service.background import Detached
from order_service.backlog import Backlog
from order_service.compensation import Saga, Undo, UndoCall
from order_service.metrics import OrderMetrics
from order_service.models import (
    Order,
    OrderError,
    OrderItem,
    OrderRequest,
    OrderStatus,
    OrderStep,
    ShippingInfo,
)
from order_service.notifications import Confirmations
from payment_service.client import PaymentClient
from payment_service.errors import PaymentDeclined
from shipping_service.client import ShippingClient

logger = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")

#: Schedules a call for once the response has gone out: ``background.AfterResponse.add``.
AfterResponse = Callable[..., None]


async def in_turn(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """:func:`~common.concurrency.settle_all`, but the second call starts only once the
    first has settled.

    The same failure semantics: both calls settle, then the first failure is raised. A
    cancellation (the order's deadline) goes to the call in flight (a mutation settles
    first, see ``Saga.step``); the second call then never starts.
    """
    outcomes: list[object] = []
    for call in (first, second):
        try:
            outcomes.append(await call)
        except Exception as exc:
            outcomes.append(exc)
        except BaseException:
            if inspect.iscoroutine(second) and call is first:
                with warnings.catch_warnings():
                    # Closing it drops the calls it was given, unstarted, on purpose.
                    warnings.filterwarnings("ignore", "coroutine .* was never awaited")
                    second.close()
            raise
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes[0], outcomes[1]  # type: ignore[return-value]


class OrderFlow:
    """Runs one order at a time through the three downstream services (many concurrently)."""

    def __init__(
        self,
        engine: AsyncEngine,
        inventory: InventoryClient,
        payment: PaymentClient,
        shipping: ShippingClient,
        tracer: trace.Tracer,
        *,
        deadline: float,
        backlog: Backlog,
        detached: Detached,
        sequential_calls: bool = False,
        metrics: OrderMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._backlog = backlog
        self._detached = detached
        self.confirmations = Confirmations(shipping, detached)
        self._inventory = inventory
        self._payment = payment
        self._shipping = shipping
        self._tracer = tracer
        self._deadline = deadline
        self.release_stock = Undo("release_stock", inventory.release)
        self.refund_payment = Undo("refund_payment", payment.refund)
        self.cancel_shipment = Undo("cancel_shipment", shipping.cancel_shipment)
        # Steps 2 and 4 run their two calls concurrently; with the "sequential_calls"
        # scenario planted, one after the other.
        self._both = in_turn if sequential_calls else settle_all

    def undo_actions(self) -> dict[str, UndoCall]:
        """Every undo by name: what a deferred compensation is retried with."""
        return {
            u.name: u.call for u in (self.release_stock, self.refund_payment, self.cancel_shipment)
        }

    async def place(
        self, request: OrderRequest, *, after_response: AfterResponse | None = None
    ) -> Order:
        """Place an order; every outcome but invalid input (422) is stored and returned.

        ``after_response`` schedules the confirmation's notification for once the
        response has gone out (the route passes ``AfterResponse.add``); without it, it
        starts at once."""
        with self._tracer.start_as_current_span("place_order") as span:
            order = self._new_order(request, span)

            # 1. Validate against the catalogue, then store the order as pending.
            try:
                order.items = await self._price(request)
            except DownstreamUnavailable as exc:
                return await self._finish(order, exc, stored=False)
            await storage.insert_order(self._engine, order)
            logger.info(
                "order %s placed: %d lines",
                order.order_id,
                len(order.items),
                extra={"shop.order.id": order.order_id},
            )
            return await self._complete(order, request, span, after_response)

    async def accept(
        self, request: OrderRequest, *, after_response: AfterResponse | None = None
    ) -> Order:
        """Step 1 alone, for ``Prefer: respond-async``: validate the order and store it as
        pending (an unknown SKU is still a 422, inventory down still a failed order), in
        an ``accept_order`` span, and return it; steps 2-5 start once the response has
        gone out (``after_response``, as for :meth:`place`; without it, at once).

        They outlive the request, so they do not hang under its span, which has ended by
        then: they run in a new trace, whose root ``place_order`` span links back to
        ``accept_order`` and carries ``shop.order.trace_id``, the trace of the response
        (:mod:`.background`). If this process stops first, the order stays pending and
        the compensation worker of any order-service process fails it as abandoned.
        """
        with self._tracer.start_as_current_span("accept_order") as span:
            order = self._new_order(request, span)
            try:
                order.items = await self._price(request)
            except DownstreamUnavailable as exc:
                return await self._finish(order, exc, stored=False)
            await storage.insert_order(self._engine, order)
            pending = order.model_copy(deep=True)  # the steps go on changing ``order``
            origin = span.get_span_context()

        async def steps_2_to_5(root: trace.Span) -> None:
            await self._complete(order, request, root)

        def start() -> None:
            self._detached.start(
                "place_order",
                origin,
                steps_2_to_5,
                attributes={"shop.order.id": order.order_id, "shop.order.trace_id": order.trace_id},
            )

        if after_response is None:
            start()
        else:
            after_response(start)
        return pending

    def _new_order(self, request: OrderRequest, span: trace.Span) -> Order:
        now = storage.now()
        order = Order(
            order_id=new_order_id(),
            status="pending",
            customer_id=request.customer_id,
            items=[],
            card_last4=request.payment.last4,
            trace_id=trace.format_trace_id(span.get_span_context().trace_id),
            created_at=now,
            updated_at=now,
        )
        span.set_attributes(
            {"shop.order.id": order.order_id, "shop.order.line_count": len(request.items)}
        )
        return order

    async def _complete(
        self,
        order: Order,
        request: OrderRequest,
        span: trace.Span,
        after_response: AfterResponse | None = None,
    ) -> Order:
        """Steps 2-5 of a stored order, under ``span``, and its confirmation."""
        saga = Saga(order.order_id, self._tracer, self._backlog)
        try:
            async with self.deadline() as deadline:
                saga.deadline = deadline
                shipped = await self._fulfil(order, request, saga, span)
        except Exception as exc:
            if not isinstance(exc, ServiceError | TimeoutError):
                # A bug, not an outcome: keep the evidence on the order's span.
                span.record_exception(exc)
                logger.exception("order %s failed unexpectedly", order.order_id)
            await saga.compensate()
            return await self._finish(order, exc)
        confirmed = await self._finish(order, steps=[shipped])
        if confirmed.status != "confirmed":  # failed as abandoned meanwhile (see _finish)
            return confirmed
        # Its own trace, linked to this span, once the response has gone out.
        if after_response is None:
            self.confirmations.send(confirmed, span.get_span_context())
        else:
            after_response(self.confirmations.send, confirmed, span.get_span_context())
        return confirmed

    def deadline(self) -> asyncio.Timeout:
        """The order's deadline, from the start of step 2 (tests replace it with one they
        fire at the moment they choose)."""
        return asyncio.timeout(self._deadline)

    async def _price(self, request: OrderRequest) -> list[OrderItem]:
        """Look every SKU up in the catalogue; an unknown one is a 422 naming its field."""
        with self._tracer.start_as_current_span("validate_order"):
            lines = request.merged_lines()
            products = {
                p.sku: p for p in await self._inventory.get_products([x.sku for x in lines])
            }
            unknown = [
                {
                    "type": "unknown_sku",
                    "loc": ("body", "items", i, "sku"),
                    "msg": f"unknown SKU {line.sku}",
                    "input": line.sku,
                }
                for i, line in enumerate(request.items)
                if line.sku not in products
            ]
            if unknown:
                raise InvalidFields(unknown)
            return [
                OrderItem(
                    sku=x.sku,
                    name=products[x.sku].name,
                    quantity=x.quantity,
                    unit_price=products[x.sku].unit_price,
                )
                for x in lines
            ]

    async def _fulfil(
        self, order: Order, request: OrderRequest, saga: Saga, span: trace.Span
    ) -> storage.Step:
        """Steps 2-4; the last step's event is left to be stored with the confirmation,
        which follows it at once (one transaction, not two)."""
        order_id = order.order_id
        span.set_attribute("shop.order.item_count", sum(i.quantity for i in order.items))

        # 2. Reserve the stock and quote the delivery, concurrently.
        reservation, quote = await self._both(
            saga.step(
                "reserve_stock",
                self._inventory.reserve(
                    order_id, [ItemRequest(sku=i.sku, quantity=i.quantity) for i in order.items]
                ),
                undo=self.release_stock,
            ),
            saga.step(
                "quote_shipping",
                self._shipping.quote(
                    request.shipping_address, sum(i.quantity for i in order.items)
                ),
                read_only=True,
            ),
        )
        # The reservation's prices are the ones the stock was taken at.
        prices = {r.sku: r.unit_price for r in reservation.items}
        for item in order.items:
            item.unit_price = prices.get(item.sku, item.unit_price)
        goods = sum((i.unit_price * i.quantity for i in order.items), Decimal(0))
        order.shipping = ShippingInfo(carrier=quote.carrier, cost=quote.cost)
        order.total = Money.of(goods + quote.cost.amount)
        span.set_attribute("shop.order.total", str(order.total.amount))
        units = sum(i.quantity for i in order.items)
        span.add_event("reserved", {"shop.order.units": units})
        await self._progress(order_id, "reserved", {"units": str(units)})

        # 3. Charge items + shipping.
        payment = await saga.step(
            "charge_payment",
            self._payment.charge(order_id, order.total, request.payment),
            undo=self.refund_payment,
        )
        span.add_event("charged", {"shop.payment.id": payment.payment_id})
        await self._progress(order_id, "charged", {"payment_id": payment.payment_id})

        # 4. Commit the stock and create the shipment, concurrently.
        _, shipment = await self._both(
            saga.step("commit_stock", self._inventory.commit(order_id)),
            saga.step(
                "create_shipment",
                self._shipping.create_shipment(order_id, quote.quote_id),
                undo=self.cancel_shipment,
            ),
        )
        order.shipping.tracking_id = shipment.tracking_id
        span.add_event("shipped", {"shop.shipping.carrier": quote.carrier})
        detail = {"carrier": quote.carrier, "tracking_id": shipment.tracking_id or ""}
        return storage.Step("shipped", detail, storage.now())

    async def _progress(self, order_id: str, step: OrderStep, detail: dict[str, str]) -> None:
        """Store a step for the order's event stream. Not cut off halfway by the deadline:
        a database connection cancelled mid-transaction is what hung the suite before."""
        event = storage.Step(step, detail, storage.now())
        await uncancelled(storage.add_order_event(self._engine, order_id, event))

    async def _finish(
        self,
        order: Order,
        error: BaseException | None = None,
        *,
        stored: bool = True,
        steps: Sequence[storage.Step] = (),
    ) -> Order:
        """5. Store the final status (confirmed, or what ``error`` makes it), after the
        events of the ``steps`` that led to it, and mark the span."""
        status: OrderStatus = "confirmed"
        if error is not None:
            status, order.error = _outcome(error)
        order.status = status
        order.updated_at = storage.now()
        span = trace.get_current_span()
        span.set_attribute("shop.order.status", status)
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"order {status}"))
        with self._tracer.start_as_current_span("save_order") as save:
            if not stored:
                await storage.insert_order(self._engine, order)
            elif not await storage.update_order(self._engine, order, steps):
                # Too late: a compensation worker failed it as abandoned and queued its
                # undos, which will undo what this request did. What is stored is the outcome.
                save.add_event("order_already_final")
                order = await storage.get_order(self._engine, order.order_id)
                span.set_attribute("shop.order.status", order.status)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"order {order.status}"))
                logger.warning(
                    "order %s was already %s when its request finished",
                    order.order_id,
                    order.status,
                )
                return order
        if self._metrics is not None:
            self._metrics.finished(order)
        log = logger.warning if status == "failed" else logger.info
        log("order %s %s", order.order_id, status, extra={"shop.order.id": order.order_id})
        return order


def _outcome(error: BaseException) -> tuple[OrderStatus, OrderError]:
    """A failed order's status and error, by what went wrong (the one place that says it;
    the status's HTTP code is :data:`order_service.models.HTTP_STATUS`)."""
    if isinstance(error, OutOfStock | UnknownSku):
        return "rejected", OrderError(code=error.code, message=error.message)
    if isinstance(error, PaymentDeclined):
        return "payment_failed", OrderError(code=error.code, message=error.message)
    if isinstance(error, DownstreamUnavailable):
        return "failed", OrderError(code=error.code, message=error.message)
    if isinstance(error, TimeoutError):
        message = "the order did not complete within its deadline"
        return "failed", OrderError(code="deadline_exceeded", message=message)
    # Never leak an unexpected exception's text to the client.
    return "failed", OrderError(
        code=getattr(error, "code", "internal_error"), message="internal error"
    )
