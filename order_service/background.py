"""Work that outlives the request that started it: :class:`Detached`, and
:class:`AfterResponse`, which starts it once the response has gone out.

A span cannot be the child of one that has already ended: a task started from a request
handler copies the request's context, so its spans would hang under the request's span
after that span (and the response) have finished, and a span current in that copy is
one the waterfall already closed. Starlette's ``BackgroundTasks`` is no way out either:
they run inside the request's ASGI cycle, after the response body but before the
instrumentation records the request's duration, with the request's span (ended) still
current; and opentelemetry-instrumentation-fastapi wraps each in a span of its own,
``BackgroundTask <name>``, a child of that ended span, made by the tracer of the first
app it instrumented in the process (in a process running several apps, another
service's). So ordersim does not use them: :class:`AfterResponse` starts the work
itself, once the response is sent.

So each job runs in an asyncio task of its own, in an *empty* ``contextvars.Context``
(nothing of the request leaks into it, neither its span nor a suppressed instrumentation),
under a root span of a new trace that carries a **span link** back to the span that
started it: the pattern the OpenTelemetry specification gives for work that outlives
its trigger. The viewer reads the link both ways (``GET /api/traces/{id}/linked``)::

    detached = Detached(tracer)
    detached.start("send_confirmation", origin=span.get_span_context(), work=send)
    ...
    await detached.close(grace=2.0)  # at shutdown: wait, then cancel what is left

A job's failure is recorded on its span and logged; it never reaches the request, which
has been answered. A job cancelled at shutdown ends its span marked ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import Attributes
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from common.cancellation import marked_cancellation

logger = logging.getLogger(__name__)

#: A job: given its root span, does the work.
Job = Callable[[trace.Span], Awaitable[object]]


class Detached:
    """The detached jobs of one service (see the module's docstring)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def start(
        self,
        name: str,
        origin: trace.SpanContext,
        work: Job,
        attributes: Attributes = None,
    ) -> asyncio.Task[None]:
        """Run ``work`` in a task of its own, under a new root span ``name`` linked to
        ``origin``. Returns at once."""
        links = [trace.Link(origin)] if origin.is_valid else []

        async def job() -> None:
            with (
                self._tracer.start_as_current_span(
                    name, links=links, attributes=attributes
                ) as span,
                marked_cancellation(span, "the service is stopping"),
            ):
                await work(span)

        task = asyncio.get_running_loop().create_task(
            job(), name=f"detached-{name}", context=contextvars.Context()
        )
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Recorded on the job's span already; here it reaches the log.
            logger.error("detached %s failed", task.get_name(), exc_info=task.exception())

    @property
    def running(self) -> int:
        return len(self._running)

    async def join(self) -> None:
        """Wait until no job is running, those the running ones start included."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def close(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the jobs to finish, then cancel the others and
        wait for them to end (their spans marked cancelled)."""
        try:
            async with asyncio.timeout(grace):
                await self.join()
        except TimeoutError:
            for task in self._running:
                task.cancel()
            if self._running:
                await asyncio.wait(set(self._running))


class AfterResponse:
    """Calls to make once the response has gone out; each only *starts* detached work
    (:meth:`Detached.start`), so the request's ASGI cycle, which the instrumentation times
    as its duration, ends a few microseconds after its last byte::

        after = AfterResponse()
        order = await flow.place(body, after_response=after.add)
        return after.response(order.model_dump_json(), status_code=201)
    """

    def __init__(self) -> None:
        self._calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def add(self, call: Callable[..., object], *args: Any) -> None:
        self._calls.append((call, args))

    def run(self) -> None:
        calls, self._calls = self._calls, []
        for call, args in calls:
            call(*args)

    def response(
        self, content: bytes | str, *, status_code: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A JSON response that makes the calls once it is sent, or once sending it failed
        (a client that has gone): what was placed goes on either way."""
        return _ThenStart(content, status_code, headers, self)


class _ThenStart(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: bytes | str,
        status_code: int,
        headers: Mapping[str, str] | None,
        after: AfterResponse,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self._after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._after.run()
