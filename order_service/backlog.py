"""Deferred compensations: when each is retried, the worker that retries them, and the backlog.

An undo that could not run at once (its service was down) is stored with the time of its
next attempt. The order service's background worker (:class:`CompensationWorker`) polls for
the items that are due, tries each once, and schedules the next attempt with exponential
backoff, jitter and a cap (:class:`Backoff`): retried forever, never dropped, never spinning.
Every attempt is a span that links back to the span that deferred it::

    backlog = Backlog(engine, Backoff(base=5, cap=300))
    worker = CompensationWorker(backlog, flow.undo_actions(), tracer, abandon_after=16)
    task = asyncio.create_task(worker.run())

``GET /admin/compensations`` (:mod:`order_service.admin`) shows the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.ext.asyncio import AsyncEngine

from order_service import storage
from order_service.compensation import UndoCall
from order_service.metrics import OrderMetrics
from order_service.models import CompensationBacklog, DeferredCompensation, OrderError

logger = logging.getLogger(__name__)

#: The current time, an aware UTC datetime.
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Backoff:
    """How long a deferred compensation waits after its n-th failed attempt: exponential
    backoff with "equal jitter" and a cap (AWS Architecture Blog, "Exponential Backoff And
    Jitter"). With ``ceiling = min(cap, base * 2**(n-1))``, the wait is a uniform random
    time in ``[ceiling / 2, ceiling]``: never less than half the ceiling, so an outage is
    not hammered (full jitter may draw a wait near zero), and spread over the other half,
    so the refunds one outage deferred together do not all come back at once.

        >>> Backoff(base=5, cap=300, random=lambda: 1.0).delay(3)
        20.0

    ``random`` draws from [0, 1). Hand-written because tenacity and backoff compute waits
    inside a retrying loop with the global random module; here each item's next time is
    stored and the schedule has to be a pure function of its attempt count, testable
    without sleeping.
    """

    base: float = 5.0
    cap: float = 300.0
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"need 0 < base <= cap, got base={self.base} cap={self.cap}")

    def ceiling(self, attempts: int) -> float:
        """The longest wait after ``attempts`` failed attempts."""
        # Attempts count up forever; past 2**64 the product is far above any cap (and a
        # float overflows past 2**1023).
        doublings = min(max(attempts - 1, 0), 64)
        return min(self.cap, self.base * 2.0**doublings)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        ceiling = self.ceiling(attempts)
        return ceiling / 2 + self.random() * ceiling / 2


_W3C = TraceContextTextMapPropagator()


def _traceparent(origin: trace.SpanContext) -> str:
    """The span a retry links back to, as a W3C traceparent; "" when tracing is off.

    Written with the W3C propagator itself, not the global one: this is our own storage
    format, the same whatever OTEL_PROPAGATORS says."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(origin)))
    return carrier.get("traceparent", "")


def _links(traceparent: str) -> list[trace.Link]:
    if not traceparent:
        return []
    origin = trace.get_current_span(_W3C.extract({"traceparent": traceparent}))
    context = origin.get_span_context()
    return [trace.Link(context)] if context.is_valid else []


class Backlog:
    """The deferred compensations of this order service, and when each is tried next.

        backlog = Backlog(engine, Backoff(base=5, cap=300))
        await backlog.defer(order_id, "refund_payment", span.get_span_context(), str(exc))
        (await backlog.summary()).pending

    ``clock`` gives the current time (aware, UTC): tests pass one they move by hand.
    """

    def __init__(
        self, engine: AsyncEngine, backoff: Backoff | None = None, clock: Clock = storage.now
    ) -> None:
        self.engine = engine
        self.backoff = backoff or Backoff()
        self.clock = clock

    async def defer(
        self, order_id: str, action: str, origin: trace.SpanContext, error: str
    ) -> None:
        """Store an undo whose first attempt (from ``origin``, the span that tried it) failed."""
        now = self.clock()
        await storage.add_compensation(
            self.engine,
            order_id,
            action,
            _traceparent(origin),
            error,
            at=now,
            due=now + timedelta(seconds=self.backoff.delay(1)),
        )

    async def summary(self, limit: int = 100, *, warn_at: int | None = None) -> CompensationBacklog:
        """The pending count, the oldest's age, and the ``limit`` oldest items."""
        with suppress_instrumentation():
            count, oldest, items = await storage.compensation_backlog(self.engine, limit)
        now = self.clock()

        def seconds(since: datetime | None, until: datetime | None) -> float | None:
            if since is None or until is None:
                return None
            return round(max(0.0, (until - since).total_seconds()), 3)

        return CompensationBacklog(
            pending=count,
            oldest_age_seconds=seconds(oldest, now),
            warn_at=warn_at,
            items=[
                DeferredCompensation(
                    id=item.id,
                    order_id=item.order_id,
                    action=item.action,
                    attempts=item.attempts,
                    last_error=item.last_error,
                    created_at=item.created_at,
                    age_seconds=seconds(item.created_at, now),
                    next_attempt_at=item.next_attempt_at,
                    next_attempt_in_seconds=seconds(now, item.next_attempt_at) or 0.0,
                )
                for item in items
            ],
        )


class CompensationWorker:
    """The order service's background worker. Every ``poll_interval`` seconds it runs three
    jobs, each on its own, so that one failing never stops the others:

    - fail the orders a stopped process left pending, and queue every undo for them;
    - retry the deferred compensations that are due, each on its own;
    - log a warning when the backlog reaches ``warn_at`` items (once per crossing).

    Every order-service process runs one, over the one database: each abandoned order is
    failed once (only while it is still pending), and each compensation is tried by the
    worker that claimed it (:func:`order_service.storage.claim_due`), once per attempt.
    """

    def __init__(
        self,
        backlog: Backlog,
        actions: Mapping[str, UndoCall],
        tracer: trace.Tracer,
        *,
        abandon_after: float,
        warn_at: int = 100,
        poll_interval: float = 1.0,
        metrics: OrderMetrics | None = None,
        lease: float = 60.0,
    ) -> None:
        self.metrics = metrics
        self.backlog = backlog
        self.actions = actions
        self.tracer = tracer
        self.abandon_after = abandon_after
        self.warn_at = warn_at
        self.poll_interval = poll_interval
        #: Seconds a claimed compensation stays this worker's: longer than one attempt.
        self.lease = lease
        #: Names this worker's claims in the database (several order-service processes,
        #: each with its worker, share one backlog).
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._over_threshold = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self.poll()

    async def poll(self) -> None:
        jobs: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("recovering abandoned orders", self.recover_abandoned),
            ("retrying deferred compensations", self.retry_due),
            ("checking the compensation backlog", self.watch_backlog),
        ]
        for what, job in jobs:
            try:
                await job()
            except Exception:
                logger.exception("%s failed; the next poll tries again", what)

    async def recover_abandoned(self) -> int:
        """Fail the orders left pending by a process that stopped mid-order, and queue every
        undo for them (each is harmless if its step never happened). Returns how many.

        Another worker may be at the same orders: storing one as failed is conditional on
        its still being pending, so one worker fails it and queues its undos, once."""
        cutoff = self.backlog.clock() - timedelta(seconds=self.abandon_after)
        with suppress_instrumentation():
            abandoned = await storage.abandoned_orders(self.backlog.engine, cutoff)
        recovered = 0
        for order in abandoned:
            try:
                with self.tracer.start_as_current_span(
                    "recover_order",
                    attributes={
                        "shop.order.id": order.order_id,
                        "shop.order.trace_id": order.trace_id,
                    },
                ) as span:
                    now = self.backlog.clock()
                    order.status = "failed"
                    order.error = OrderError(
                        code="abandoned",
                        message="the order service stopped before the order finished",
                    )
                    order.updated_at = now
                    if await storage.fail_abandoned(
                        self.backlog.engine,
                        order,
                        list(self.actions),
                        _traceparent(span.get_span_context()),  # the undo retries link here
                        now,
                    ):
                        recovered += 1
                        span.add_event("order_failed")
                        logger.warning(
                            "order %s was abandoned mid-flow; undoing it", order.order_id
                        )
            except Exception:
                logger.exception("recovering abandoned order %s failed", order.order_id)
        return recovered

    async def retry_due(self, now: datetime | None = None) -> int:
        """Claim the compensations due ``now`` (default: the clock's time) that no other
        worker holds, try each once, and return how many of those are still pending."""
        now = now or self.backlog.clock()
        with suppress_instrumentation():  # an idle poll is not worth a trace every second
            claimed = await storage.claim_due(
                self.backlog.engine, self.worker_id, now, timedelta(seconds=self.lease)
            )
        still_pending = 0
        for item in claimed:
            try:
                if not await self._retry(item, now):
                    still_pending += 1
            except Exception:
                still_pending += 1
                logger.exception(
                    "retrying %s for order %s failed; it stays in the backlog",
                    item.action,
                    item.order_id,
                )
        return still_pending

    async def _retry(self, item: storage.PendingCompensation, now: datetime) -> bool:
        """One attempt at ``item``, claimed by this worker; True if it is done."""
        engine, attempt = self.backlog.engine, item.attempts
        with self.tracer.start_as_current_span(
            f"retry_{item.action}",
            links=_links(item.traceparent),
            attributes={
                "shop.order.id": item.order_id,
                "shop.compensation.id": item.id,
                "shop.compensation.attempt": attempt,
            },
        ) as span:
            try:
                action = self.actions.get(item.action)
                if action is None:
                    raise LookupError(f"no undo named {item.action!r} in this order service")
                await action(item.order_id)
            except Exception as exc:
                next_attempt = now + timedelta(seconds=self.backlog.backoff.delay(attempt))
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                span.set_attribute("shop.compensation.next_attempt_at", next_attempt.isoformat())
                await storage.finish_compensation(
                    engine,
                    item.id,
                    self.worker_id,
                    error=str(exc),
                    at=now,
                    next_attempt=next_attempt,
                )
                return False
            await storage.finish_compensation(
                engine, item.id, self.worker_id, error=None, at=self.backlog.clock()
            )
            return True

    async def watch_backlog(self) -> int:
        """Warn once when the pending count reaches ``warn_at``, and say when it is back
        below; return the count."""
        summary = await self.backlog.summary(limit=1)
        if self.metrics is not None:
            self.metrics.backlog(summary.pending)
        if summary.pending >= self.warn_at and not self._over_threshold:
            self._over_threshold = True
            logger.warning(
                "%d compensations are waiting to be retried (warning at %d; the oldest was "
                "deferred %s s ago): is a downstream service down? GET /admin/compensations "
                "or `ordersim compensations` lists them",
                summary.pending,
                self.warn_at,
                summary.oldest_age_seconds,
            )
        elif summary.pending < self.warn_at and self._over_threshold:
            self._over_threshold = False
            logger.info(
                "%d compensations are waiting to be retried, below the warning at %d again",
                summary.pending,
                self.warn_at,
            )
        return summary.pending


def log_unexpected(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background task failed", exc_info=task.exception())
