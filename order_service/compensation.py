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

from common.errors import DownstreamUnavailable, ServiceError

if TYPE_CHECKING:
    from order_service.backlog import Backlog

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

#: An undo action: called with the order id.
UndoCall = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Undo:
    name: str  # the span name, verb-noun: release_stock, refund_payment, cancel_shipment
    call: UndoCall


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Run two calls concurrently, wait for *both* to settle, then raise the first failure.

    Plain ``asyncio.gather`` raises as soon as one call fails while the other keeps
    running; the saga needs to know what both did before it decides what to undo.
    """
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in (a, b):
        if isinstance(outcome, BaseException):
            raise outcome
    return a, b  # type: ignore[return-value]


class Saga:
    """The steps of one order, each a span, and the undo of each step that may have landed."""

    def __init__(self, order_id: str, tracer: trace.Tracer, backlog: Backlog) -> None:
        self.order_id = order_id
        self._tracer = tracer
        self._backlog = backlog
        self._undo: list[Undo] = []

    async def step(self, name: str, call: Awaitable[T], undo: Undo | None = None) -> T:
        with self._tracer.start_as_current_span(name) as span:
            span.set_attribute("shop.order.id", self.order_id)
            if undo is not None:
                # Registered before the call: one that times out may still have landed.
                self._undo.append(undo)
            try:
                return await call
            except ServiceError as exc:
                if undo is not None and not isinstance(exc, DownstreamUnavailable):
                    self._undo.remove(undo)  # a definite refusal changed nothing
                raise

    async def compensate(self) -> None:
        """Undo every step that may have landed, concurrently, newest first."""
        undo, self._undo = self._undo[::-1], []
        await asyncio.gather(*(self._run(u) for u in undo))

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
                await self._backlog.defer(
                    self.order_id, undo.name, span.get_span_context(), str(exc)
                )
                span.add_event("compensation_deferred")
                logger.warning("%s for order %s deferred: %s", undo.name, self.order_id, exc)
