"""``GET /orders/{order_id}/events``: an order's steps as Server-Sent Events.

The events come from the database (:func:`order_service.storage.events_after`), polled,
so any order-service process streams any order, whichever process runs its flow. Each
event's SSE ``id`` is its sequence number: a client that reconnects with ``Last-Event-ID``
resumes after it. The stream ends after the order's final status; while nothing happens
a comment line keeps the connection alive.

How it is traced, and why so (docs/async-context.md, "async generators"):

- :func:`order_event_stream` is an async generator. A span made *current* across a
  ``yield`` would stay attached in the consumer's context while the generator is
  suspended (the consumer's own spans would hang under it), and a generator left
  suspended and finalized later, from another task, would detach it in the wrong
  ``contextvars.Context``: "Failed to detach context". So no span is current across a
  yield: the stream's span (``stream_order_events``) and one span per event sent
  (``send_order_event``, from the hand-over to the end of its write) are started with
  an explicit parent and ended by hand; none of them is ever attached.
- :class:`EventStream` closes the generator in the task that iterates it
  (``contextlib.aclosing``), at once, whether the stream ends, fails or is cancelled,
  and tells it why it stopped early: a client that disconnected is marked on the
  stream's span (and on the event in flight) with a ``cancelled`` event and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi.sse import format_sse_event
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import StreamingResponse
from starlette.types import Receive, Send

from common.cancellation import mark_cancelled, marked_cancellation
from order_service import storage

#: Seconds without an event after which a comment line goes out (proxies close idle
#: connections; the SSE specification suggests about 15 s).
KEEPALIVE = 15.0
MEDIA_TYPE = "text/event-stream"


@dataclass
class StreamEnd:
    """Why a stream stopped before the order's final status: :class:`EventStream` sets it,
    the generator reads it when it is closed."""

    reason: str = "the stream was closed before the order's final status"


async def order_event_stream(
    engine: AsyncEngine,
    order_id: str,
    *,
    after: int,
    tracer: trace.Tracer,
    parent: otel_context.Context,
    poll_interval: float,
    end: StreamEnd,
) -> AsyncGenerator[bytes, None]:
    """The SSE bytes of ``order_id``'s events after number ``after``, up to its final
    status; spans under ``parent`` (the request's)."""
    stream = tracer.start_span(
        "stream_order_events",
        context=parent,
        attributes={"shop.order.id": order_id, "shop.events.after": after},
    )
    inside = trace.set_span_in_context(stream, parent)
    sent, idle = 0, 0.0
    try:
        while True:
            # A look every poll_interval is not worth a database span each.
            with suppress_instrumentation():
                events = await storage.events_after(engine, order_id, after)
            for event in events:
                span = tracer.start_span(
                    "send_order_event",
                    context=inside,
                    attributes={
                        "shop.order.id": order_id,
                        "shop.order.step": event.step,
                        "shop.event.seq": event.seq,
                    },
                )
                try:
                    with marked_cancellation(span, lambda: end.reason):
                        yield format_sse_event(
                            data_str=event.model_dump_json(), event=event.step, id=str(event.seq)
                        )
                finally:
                    # The consumer asks for the next event once this one is written.
                    span.end()
                after, sent = event.seq, sent + 1
                if event.final:
                    return
            idle = 0.0 if events else idle + poll_interval
            if idle >= KEEPALIVE:
                idle = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(poll_interval)
    except (asyncio.CancelledError, GeneratorExit):
        mark_cancelled(stream, end.reason)
        raise
    finally:
        stream.set_attribute("shop.events.sent", sent)
        stream.end()


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response over an async generator of SSE bytes, which it
    closes in the task that iterates it, and which ``end`` tells when the client has gone.

        end = StreamEnd()
        return EventStream(order_event_stream(..., end=end), end)

    Starlette's StreamingResponse leaves the generator suspended when the client
    disconnects (the task iterating it is cancelled at a ``send``): it is then closed
    whenever it is garbage collected, by the event loop's finalizer, in another task.
    """

    media_type = MEDIA_TYPE

    def __init__(self, events: AsyncGenerator[bytes, None], end: StreamEnd) -> None:
        super().__init__(
            events,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},  # no proxy buffer
        )
        self._events = events
        self._end = end

    async def listen_for_disconnect(self, receive: Receive) -> None:
        await super().listen_for_disconnect(receive)
        # Said before Starlette cancels the stream, so that its spans know why.
        self._end.reason = "client disconnected"

    async def stream_response(self, send: Send) -> None:
        async with contextlib.aclosing(self._events):
            try:
                await super().stream_response(send)
            except OSError:  # an ASGI 2.4 server's send to a client that has gone
                self._end.reason = "client disconnected"
                raise
