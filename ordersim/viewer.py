"""The one client of the trace query API the embedded viewer and Jaeger v2 share:
``GET /api/v3/traces/{id}`` (OTLP JSON), ``GET /api/traces/{id}`` (Jaeger JSON) and the
viewer's ``GET /api/traces/{id}/linked``. ``ordersim trace``, ``trace diff``, ``order``,
``load`` and ``doctor`` all read traces through it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from ordersim.calls import TRACE_ID, reason
from ordersim.console import UsageError
from ordersim.waterfall import LogLine, Span, Trace, parse_otlp, parse_otlp_logs

#: Seconds between two looks at the viewer while a trace arrives.
POLL_INTERVAL = 0.2
#: Seconds one request to the viewer may take.
VIEWER_TIMEOUT = 5.0


class ViewerError(Exception):
    """The viewer could not be asked, or answered something other than a trace."""


class ViewerTimeout(ViewerError):
    """The viewer did not answer in time (it may still, unlike a refused connection)."""


def parse_trace_id(text: str) -> str:
    if not TRACE_ID.match(text):
        raise UsageError(f"argument TRACE_ID: {text!r} is not a trace id (32 hex digits)")
    return text.lower()


def otlp_path(trace_id: str) -> str:
    """Where the query API serves a trace as OTLP JSON."""
    return f"/api/v3/traces/{trace_id}"


class Viewer:
    """The query API of the embedded viewer or of Jaeger v2.

    ::

        with httpx.Client() as client:
            viewer = Viewer("http://127.0.0.1:16686", client)
            document = viewer.otlp(trace_id)  # OTLP JSON, or None while no span is stored
    """

    def __init__(self, endpoint: str, client: httpx.Client) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.client = client

    def link(self, trace_id: str) -> str:
        return f"{self.endpoint}/trace/{trace_id}"

    def fetch(self, path: str, *, timeout: float = VIEWER_TIMEOUT) -> Any | None:
        """The JSON document at ``path``, or None if the viewer says 404 (no such trace)."""
        url = f"{self.endpoint}{path}"
        try:
            response = self.client.get(url, timeout=timeout)
        except httpx.InvalidURL as exc:
            raise ViewerError(f"{self.endpoint} is not a usable URL: {exc}") from None
        except httpx.TimeoutException:
            raise ViewerTimeout(
                f"the trace viewer at {self.endpoint} did not answer within {timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise ViewerError(
                f"cannot reach the trace viewer at {self.endpoint}: {reason(exc)}"
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ViewerError(
                f"the trace viewer at {self.endpoint} answered HTTP {response.status_code} "
                f"for {path}: {response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError:
            raise ViewerError(
                f"the trace viewer at {self.endpoint} answered {path} with something "
                "other than JSON; is that a trace viewer or Jaeger query URL?"
            ) from None

    def otlp(self, trace_id: str, *, timeout: float = VIEWER_TIMEOUT) -> dict[str, Any] | None:
        """The trace as OTLP JSON, or None while no span of it is stored."""
        document = self.fetch(otlp_path(trace_id), timeout=timeout)
        if document is None:
            return None
        if not isinstance(document, dict):
            raise ViewerError(f"{self.endpoint}{otlp_path(trace_id)}: not OTLP JSON")
        return document if parse_otlp(document) else None

    def logs(self, trace_id: str) -> list[LogLine]:
        """The trace's log records; none from a viewer that keeps none (Jaeger) or cannot
        say (the waterfall is worth printing without them)."""
        try:
            document = self.fetch(f"/api/logs?trace_id={trace_id}")
        except ViewerError:
            return []
        return parse_otlp_logs(document) if isinstance(document, dict) else []

    def jaeger(self, trace_id: str) -> dict[str, Any] | None:
        document = self.fetch(f"/api/traces/{trace_id}")
        if document is None:
            return None
        if not isinstance(document, dict) or not document.get("data"):
            return None
        return document


def stored(
    viewer: Viewer, trace_id: str, errors: Console, *, jaeger: bool = False
) -> dict[str, Any] | None:
    """A stored trace's OTLP (or Jaeger) JSON; None once ``errors`` says why there is none
    (the viewer cannot be asked, or holds no such trace)."""
    try:
        document = viewer.jaeger(trace_id) if jaeger else viewer.otlp(trace_id)
    except ViewerError as exc:
        errors.print(Text(f"error: {exc}", style="red"))
        return None
    if document is None:
        errors.print(Text(f"error: trace {trace_id} not found at {viewer.endpoint}", style="red"))
    return document


def wait_for_trace(
    viewer: Viewer,
    trace_id: str,
    wait: float,
    *,
    done: Callable[[Trace], bool] = Trace.is_complete,
    extra: Sequence[Span] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Trace:
    """Poll until ``done`` says the trace (with ``extra`` spans added) is whole, or ``wait``
    seconds have passed; return what came. By default done means complete.

    Raises ViewerError if the viewer cannot be reached or answers nonsense.
    """
    deadline = clock() + wait
    latest = Trace(list(extra))
    while True:
        left = deadline - clock()
        try:
            document = viewer.otlp(trace_id, timeout=max(0.5, min(VIEWER_TIMEOUT, left)))
        except ViewerTimeout:  # busy: look again until the deadline
            document = None
        if document is not None:
            latest = Trace([*extra, *parse_otlp(document)])
            if done(latest):
                return latest
        if clock() >= deadline:
            return latest
        sleep(min(POLL_INTERVAL, max(0.0, deadline - clock())))
