"""``ordersim order --follow``: an order's steps as they happen.

The order is placed with ``Prefer: respond-async``; the 202 names it, and its event
stream (``GET /orders/{order_id}/events``, Server-Sent Events read with httpx-sse) gives
each step as it is stored: pending, reserved, charged, shipped, then the final status.
Then the two waterfalls: the request's trace (the order accepted), and the trace of its
steps, which runs after the response and links back to it (found through the viewer's
``GET /api/traces/{id}/linked``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse
from rich.console import Console
from rich.text import Text

from ordersim.calls import reason
from ordersim.waterfall import Trace, Waterfall

#: The stream sends a comment line every 15 s while nothing happens: 30 s of silence is a
#: service that has gone.
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=3.0)
_STEP_STYLE = {
    "confirmed": "bold green",
    "rejected": "bold yellow",
    "payment_failed": "bold red",
    "failed": "bold red",
}


def describe(event: dict[str, Any]) -> str:
    """What a step adds, in a few words."""
    detail = event.get("detail") or {}
    step = event.get("step")
    if "code" in detail:
        return f"{detail['code']}: {detail.get('message', '')}"
    if step == "reserved":
        return f"{detail.get('units', '?')} units"
    if step == "charged":
        return str(detail.get("payment_id", ""))
    if step == "shipped":
        return f"{detail.get('carrier', '')} {detail.get('tracking_id', '')}".strip()
    if step == "confirmed":
        return f"total {detail.get('total', '?')} {detail.get('currency', '')}".strip()
    return ""


def stream_steps(
    client: httpx.Client, url: str, order_id: str, console: Console
) -> dict[str, Any] | None:
    """Print each step of the order as it comes; return the last event (None if none).

    Raises httpx.TransportError or SSEError if the stream cannot be read."""
    last: dict[str, Any] | None = None
    path = f"{url}/orders/{order_id}/events"
    with connect_sse(client, "GET", path, timeout=STREAM_TIMEOUT) as source:
        if source.response.status_code != 200:
            raise SSEError(f"GET {path} answered HTTP {source.response.status_code}")
        for sse in source.iter_sse():
            event = json.loads(sse.data)
            at = datetime.fromisoformat(event["at"]).astimezone()
            line = Text(f"  {at:%H:%M:%S}.{at.microsecond // 1000:03d}  ")
            line.append(f"{event['step']:<15}", style=_STEP_STYLE.get(event["step"], "bold"))
            line.append(describe(event), style="dim")
            console.print(line)
            last = event
    return last


def linked_steps_trace(fetch: Callable[[str], Any | None], trace_id: str) -> str | None:
    """The trace of the order's steps: the one whose ``place_order`` root links back to
    the request's trace (None while the viewer has not received it, or cannot say)."""
    document = fetch(f"/api/traces/{trace_id}/linked")
    for entry in (document or {}).get("data") or []:
        if entry.get("rootName") == "place_order":
            return str(entry["traceID"])
    return None


def stream_failed(errors: Console, url: str, exc: Exception) -> None:
    what = reason(exc) if isinstance(exc, httpx.TransportError) else str(exc)
    errors.print(Text(f"error: following the order at {url} failed: {what}", style="red"))


def waterfall(console: Console, trace: Trace, title: str) -> None:
    console.print()
    console.print(Text(title, style="bold"))
    console.print(Waterfall(trace))
