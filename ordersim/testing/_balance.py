"""SpanBalance: every span started is ended.

Public through :mod:`ordersim.testing`.
"""

from __future__ import annotations

import threading

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ordersim.testing._tree import service_of


class SpanBalance(SpanProcessor):
    """A span processor that counts the spans started and ended, and knows which are still
    open: add it to the providers (``in_process_system(..., processors=[balance])``), run
    anything, then ``assert balance.still_open() == []``: no span was left unended."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self._open: dict[int, str] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        with self._lock:
            self.started += 1
            self._open[span.context.span_id] = f"{span.name} ({service_of(span)})"

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1
            self._open.pop(span.context.span_id, None)

    def still_open(self) -> list[str]:
        with self._lock:
            return sorted(self._open.values())
