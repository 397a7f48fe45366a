"""Spans that a cancellation cuts short say so: ERROR status and a ``cancelled`` event.

The SDK's ``start_as_current_span`` records an exception and sets ERROR only for an
``Exception`` (opentelemetry-python#4484). ``asyncio.CancelledError`` and ``GeneratorExit``
are ``BaseException``s, so a span that a deadline, a client that went away or a stopping
service ends halfway closes with status UNSET and no event: in the waterfall it passes for
a success. Wherever our work can be cancelled, its span is marked::

    with tracer.start_as_current_span("quote_shipping") as span:
        with marked_cancellation(span, "order deadline passed"):
            await shipping.quote(address, item_count)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace

#: The event a cancelled span carries, and its attribute saying why.
EVENT = "cancelled"
ATTR_REASON = "ordersim.cancel.reason"


def mark_cancelled(span: trace.Span, reason: str) -> None:
    """ERROR status and a ``cancelled`` event with ``reason`` (a span already ended, or not
    recording, is left alone)."""
    if not span.is_recording():
        return
    span.add_event(EVENT, {ATTR_REASON: reason})
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"cancelled: {reason}"))


@contextmanager
def marked_cancellation(span: trace.Span, reason: str | Callable[[], str]) -> Iterator[None]:
    """Mark ``span`` (:func:`mark_cancelled`) if a cancellation or a generator's close
    passes through the block; ``reason`` may be a function, asked only then."""
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        mark_cancelled(span, reason() if callable(reason) else reason)
        raise
