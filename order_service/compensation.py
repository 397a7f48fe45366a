"""Undoing what a failed order did: the saga of steps, and the retry of deferred compensations.

Every compensation (release the reservation, refund the charge, cancel the shipment) is
idempotent downstream and keyed by the order id, so running one twice, or for a step
that never landed, is harmless; the downstream then leaves a tombstone that refuses
the original request if it arrives late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy.ext.asyncio import AsyncEngine

from common.concurrency import settle_all
from common.errors import DownstreamUnavailable, ServiceError
from order_service import storage
from order_service.models import OrderError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: An undo action: called with the order id.
UndoCall = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Undo:
    name: str  # the span name, verb-noun: release_stock, refund_payment, cancel_shipment
    call: UndoCall


async def _uncancelled(call: Awaitable[T]) -> T:
    """Await ``call`` to its end even if the caller is cancelled meanwhile (the order's
    deadline), then pass the cancellation on: a mutation cut off halfway would leave the
    saga guessing whether it landed. The call bounds itself (the per-call timeout)."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):  # a second cancellation too
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # its outcome was recorded by the step; no "never retrieved"
        raise


class Saga:
    """The steps of one order, each a span, and the undo of each step that may have landed."""

    def __init__(self, order_id: str, tracer: trace.Tracer, engine: AsyncEngine) -> None:
        self.order_id = order_id
        self._tracer = tracer
        self._engine = engine
        self._undo: list[Undo] = []

    async def step(
        self, name: str, call: Awaitable[T], undo: Undo | None = None, *, read_only: bool = False
    ) -> T:
        """One step of the order, as a span. A step that changes something downstream
        (every one but a ``read_only`` step) is never cut off halfway: cancelled meanwhile
        (the order's deadline), it waits for its call to settle and records the outcome,
        then passes the cancellation on. A read-only step is simply cancelled."""
        with self._tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("shop.order.id", self.order_id)
            if undo is not None:
                # Registered before the call: one that times out may still have landed.
                self._undo.append(undo)
            outcome = self._outcome(span, call, undo)
            return await (outcome if read_only else _uncancelled(outcome))

    async def _outcome(self, span: trace.Span, call: Awaitable[T], undo: Undo | None) -> T:
        """The call's result; a failure is recorded on the step's span and, when it is a
        definite refusal, takes the step's undo off the list (it changed nothing)."""
        try:
            return await call
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            refused = isinstance(exc, ServiceError) and not isinstance(exc, DownstreamUnavailable)
            if undo is not None and refused:
                self._undo.remove(undo)
            raise

    async def compensate(self) -> None:
        """Undo every step that may have landed, concurrently, newest first."""
        undo, self._undo = self._undo[::-1], []
        await settle_all(*(self._run(u) for u in undo))

    async def _run(self, undo: Undo) -> None:
        with self._tracer.start_as_current_span(undo.name) as span:
            span.set_attribute("shop.order.id", self.order_id)
            try:
                await undo.call(self.order_id)
                return
            except Exception as exc:
                # Not re-raised: the order's outcome is already decided. The retry
                # worker owns it now, and its span links back to this one.
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                carrier: dict[str, str] = {}
                propagate.inject(carrier)
                await storage.add_compensation(
                    self._engine,
                    self.order_id,
                    undo.name,
                    carrier.get("traceparent", ""),
                    str(exc),
                )
                span.add_event("compensation_deferred")
                logger.warning("%s for order %s deferred: %s", undo.name, self.order_id, exc)


async def retry_deferred(
    engine: AsyncEngine,
    actions: dict[str, UndoCall],
    tracer: trace.Tracer,
) -> int:
    """Retry each deferred compensation once; return how many are still pending."""
    with suppress_instrumentation():  # an idle poll is not worth a trace every few seconds
        pending = await storage.pending_compensations(engine)
    still_pending = 0
    for item in pending:
        origin = trace.get_current_span(propagate.extract({"traceparent": item.traceparent}))
        links = (
            [trace.Link(origin.get_span_context())] if origin.get_span_context().is_valid else []
        )
        with tracer.start_as_current_span(
            f"retry_{item.action}",
            links=links,
            attributes={
                "shop.order.id": item.order_id,
                "shop.compensation.attempt": item.attempts + 1,
            },
        ) as span:
            try:
                await actions[item.action](item.order_id)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                await storage.finish_compensation(engine, item.id, str(exc))
                still_pending += 1
            else:
                await storage.finish_compensation(engine, item.id, None)
    return still_pending


async def recover_abandoned(
    engine: AsyncEngine, actions: list[str], tracer: trace.Tracer, older_than: float
) -> int:
    """Fail the orders left pending by a process that stopped mid-order, and queue every
    undo for them (each is harmless if its step never happened). Returns how many."""
    cutoff = storage.now() - timedelta(seconds=older_than)
    with suppress_instrumentation():
        abandoned = await storage.abandoned_orders(engine, cutoff)
    recovered = 0
    for order in abandoned:
        with tracer.start_as_current_span(
            "recover_order",
            attributes={"shop.order.id": order.order_id, "shop.order.trace_id": order.trace_id},
        ) as span:
            order.status = "failed"
            order.error = OrderError(
                code="abandoned", message="the order service stopped before the order finished"
            )
            order.updated_at = storage.now()
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # the undo retries link back to this span
            if await storage.fail_abandoned(engine, order, actions, carrier["traceparent"]):
                recovered += 1
                span.add_event("order_failed")
                logger.warning("order %s was abandoned mid-flow; undoing it", order.order_id)
    return recovered


async def retry_forever(
    engine: AsyncEngine,
    actions: dict[str, UndoCall],
    tracer: trace.Tracer,
    interval: float,
    abandon_after: float,
) -> None:
    """The order service's background worker: fail abandoned orders, and retry deferred
    compensations until each is done."""
    while True:
        await asyncio.sleep(interval)
        try:
            await recover_abandoned(engine, list(actions), tracer, abandon_after)
            await retry_deferred(engine, actions, tracer)
        except Exception:
            logger.exception("recovering orders or compensations failed; will try again")


def log_unexpected(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task failed", exc_info=task.exception())
