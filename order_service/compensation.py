"""Undoing what a failed order did: the saga of steps, each with its undo.

Every compensation (release the reservation, refund the charge, cancel the shipment) is
idempotent downstream and keyed by the order id, so running one twice, or for a step
that never landed, is harmless; the downstream then leaves a tombstone that refuses
the original request if it arrives late. An undo that fails is deferred to the backlog
(:mod:`order_service.backlog`), whose worker retries it until it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace

from common.cancellation import marked_cancellation
from common.concurrency import settle_all, uncancelled
from common.errors import DownstreamUnavailable, ServiceError

if TYPE_CHECKING:
    from order_service.backlog import Backlog

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: An undo action: called with the order id.
UndoCall = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Undo:
    name: str  # the span name, verb-noun: release_stock, refund_payment, cancel_shipment
    call: UndoCall


class Saga:
    """The steps of one order, each a span, and the undo of each step that may have landed."""

    def __init__(self, order_id: str, tracer: trace.Tracer, backlog: Backlog) -> None:
        self.order_id = order_id
        self._tracer = tracer
        self._backlog = backlog
        self._undo: list[Undo] = []
        #: The order's deadline, once the flow has set it: whether it passed is why a step
        #: was cancelled (otherwise the service is stopping).
        self.deadline: asyncio.Timeout | None = None

    async def step(
        self, name: str, call: Awaitable[T], undo: Undo | None = None, *, read_only: bool = False
    ) -> T:
        """One step of the order, as a span. A step that changes something downstream
        (every one but a ``read_only`` step) is never cut off halfway: cancelled meanwhile
        (the order's deadline), it waits for its call to settle and records the outcome,
        then passes the cancellation on. A read-only step is simply cancelled. Either way
        its span is marked cancelled, with the reason."""
        with self._tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("shop.order.id", self.order_id)
            if undo is not None:
                # Registered before the call: one that times out may still have landed.
                self._undo.append(undo)
            outcome = self._outcome(span, call, undo)
            with marked_cancellation(span, self.cancel_reason):
                return await (outcome if read_only else uncancelled(outcome))

    def cancel_reason(self) -> str:
        if self.deadline is not None and self.deadline.expired():
            return "order deadline passed"
        return "order cancelled (the service is stopping)"

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
                with marked_cancellation(span, self.cancel_reason):
                    await undo.call(self.order_id)
                return
            except Exception as exc:
                # Not re-raised: the order's outcome is already decided. The retry
                # worker owns it now, and its span links back to this one.
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                await self._backlog.defer(
                    self.order_id, undo.name, span.get_span_context(), str(exc)
                )
                span.add_event("compensation_deferred")
                logger.warning("%s for order %s deferred: %s", undo.name, self.order_id, exc)
