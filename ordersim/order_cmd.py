"""``ordersim order``: place a sample order, print its outcome, then its trace's waterfall
once every service's spans have arrived (``--follow``: its steps as they happen first)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from common import topology
from order_service.models import HTTP_STATUS  # what POST /orders answers, per final status
from ordersim.calls import TRACE_ID, base_url, reason, trace_of
from ordersim.console import UsageError, consoles, usage_error
from ordersim.incomplete import missing_reports
from ordersim.samples import DEFAULT_ITEMS, order_body
from ordersim.viewer import POLL_INTERVAL, Viewer, ViewerError, wait_for_trace
from ordersim.waterfall import Trace, Waterfall
from payment_service import cards

_ITEM = re.compile(r"^(?P<sku>[^:\s]+):(?P<qty>\d+)$")
#: Seconds an order may take: the order service gives up on its own after 10 s.
ORDER_TIMEOUT = httpx.Timeout(30.0, connect=3.0)

_STATUS_STYLE = {
    "confirmed": "bold green",
    "rejected": "bold yellow",
    "payment_failed": "bold red",
    "failed": "bold red",
}


def parse_item(text: str) -> tuple[str, int]:
    match = _ITEM.match(text.strip())
    if not match or int(match["qty"]) < 1:
        raise UsageError(f"argument --items: {text!r} is not SKU:QTY (e.g. SKU-0001:2)")
    return match["sku"], int(match["qty"])


def parse_card(text: str) -> str:
    if text in cards.BY_OUTCOME:
        return cards.BY_OUTCOME[text]
    number = text.replace(" ", "").replace("-", "")
    if not (number.isascii() and number.isdigit()):
        raise UsageError(
            f"argument --card: {text!r} is not {', '.join(cards.BY_OUTCOME)} or a card number"
        )
    return number


@dataclass
class Outcome:
    """What ``POST /orders`` answered."""

    http_status: int
    order: dict[str, Any] | None  # the order, when the body is one
    trace_id: str | None

    @property
    def final(self) -> bool:
        """A finished order, whatever its outcome (201, 409, 402 and 503 all are)."""
        if self.order is None:
            return False
        return HTTP_STATUS.get(str(self.order.get("status"))) == self.http_status


def _print_outcome(console: Console, outcome: Outcome, link: str | None) -> None:
    order = outcome.order or {}
    status = str(order.get("status", "?"))
    line = Text()
    line.append(f"order {order.get('order_id', '?')} ")
    line.append(status, style=_STATUS_STYLE.get(status, "bold"))
    line.append(f"  (HTTP {outcome.http_status})", style="dim")
    console.print(line)
    total = order.get("total")
    if isinstance(total, dict):
        console.print(Text(f"  total     {total.get('amount')} {total.get('currency', '')}"))
    shipping = order.get("shipping")
    if isinstance(shipping, dict) and shipping.get("tracking_id"):
        console.print(Text(f"  tracking  {shipping['tracking_id']} ({shipping.get('carrier')})"))
    error = order.get("error")
    if isinstance(error, dict):
        console.print(Text(f"  error     {error.get('code')}: {error.get('message')}", style="red"))
    if link:
        console.print(Text(f"  trace     {link}"))


def _print_validation_errors(errors: Console, response: httpx.Response) -> None:
    errors.print(Text("the order service rejected the order (HTTP 422):", style="red"))
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if not isinstance(detail, list):
        errors.print(Text(f"  {response.text[:500]}"))
        return
    for item in detail:
        if not isinstance(item, dict):
            errors.print(Text(f"  {item}"))
            continue
        loc = ".".join(str(part) for part in item.get("loc") or [])
        errors.print(Text(f"  {loc}: {item.get('msg', item)}"))


def _place(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    errors: Console,
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    try:
        return client.post(f"{url}/orders", json=body, headers=headers, timeout=ORDER_TIMEOUT)
    except httpx.InvalidURL as exc:
        errors.print(Text(f"error: {url} is not a usable URL: {exc}", style="red"))
    except httpx.ConnectError as exc:
        errors.print(
            Text(
                f"error: cannot reach the order service at {url} ({reason(exc)}).\n"
                "Is ordersim running? Start it with `make up` or `ordersim up`, "
                "or point --url at it.",
                style="red",
            )
        )
    except httpx.TransportError as exc:
        errors.print(Text(f"error: POST {url}/orders failed: {reason(exc)}", style="red"))
    return None


def _outcome(response: httpx.Response) -> Outcome:
    try:
        body = response.json()
    except ValueError:
        body = None
    order = body if isinstance(body, dict) and "order_id" in body and "status" in body else None
    trace_id = order.get("trace_id") if order else None
    if not trace_id:  # a 500 or the like still says which trace it was in
        trace_id, _ = trace_of(response)
    if not (isinstance(trace_id, str) and TRACE_ID.match(trace_id)):
        trace_id = None
    return Outcome(response.status_code, order, trace_id)


def _follow(
    client: httpx.Client,
    url: str,
    accepted: httpx.Response,
    viewer: Viewer,
    wait: float,
    console: Console,
    errors: Console,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    """``order --follow`` after its 202: the steps, the outcome, both waterfalls."""
    from httpx_sse import SSEError

    from ordersim import follow

    outcome = _outcome(accepted)
    order_id = str((outcome.order or {}).get("order_id"))
    console.print(Text(f"order {order_id} accepted (HTTP 202); its steps as they happen:"))
    try:
        last = follow.stream_steps(client, url, order_id, console)
    except (httpx.TransportError, SSEError, ValueError, KeyError) as exc:
        follow.stream_failed(errors, url, exc)
        return 1
    except KeyboardInterrupt:
        errors.print(Text("interrupted", style="yellow"))
        return 130
    if last is None or not last.get("final"):
        errors.print(Text("error: the stream ended before the order's final status", style="red"))
        return 1
    try:
        final = client.get(f"{url}/orders/{order_id}", timeout=ORDER_TIMEOUT)
    except httpx.TransportError as exc:
        follow.stream_failed(errors, url, exc)
        return 1
    order = final.json()
    finished = Outcome(HTTP_STATUS.get(order.get("status"), final.status_code), order, None)
    console.print()
    _print_outcome(console, finished, None)
    if outcome.trace_id is None:
        errors.print(Text("error: the response names no trace id", style="red"))
        return 1
    console.print(Text(f"  trace     {viewer.link(outcome.trace_id)}  (the request)"))

    deadline = clock() + wait
    try:
        with console.status(f"waiting up to {wait:g}s for the traces to arrive…"):
            request = wait_for_trace(viewer, outcome.trace_id, wait, clock=clock, sleep=sleep)
            steps_id = None
            while steps_id is None and clock() < deadline:
                steps_id = follow.linked_steps_trace(viewer.fetch, outcome.trace_id)
                if steps_id is None:
                    sleep(POLL_INTERVAL)
            left = max(0.0, deadline - clock())
            steps = (
                wait_for_trace(viewer, steps_id, left, clock=clock, sleep=sleep)
                if steps_id
                else None
            )
    except ViewerError as exc:
        errors.print(Text(f"error: {exc}", style="red"))
        return 1
    except KeyboardInterrupt:
        errors.print(Text("interrupted", style="yellow"))
        return 130
    follow.waterfall(console, request, f"the request: trace {outcome.trace_id}")
    if steps is None:
        console.print(
            Text(
                f"\nno trace of the order's steps linked to {outcome.trace_id} reached "
                f"{viewer.endpoint} in {wait:g}s",
                style="yellow",
            )
        )
        return 1
    console.print(Text(f"  steps     {viewer.link(steps_id or '')}"))
    follow.waterfall(console, steps, f"its steps, after the response: trace {steps_id}")
    complete = request.is_complete() and steps.is_complete()
    if not complete:
        console.print(Text(f"\na trace is incomplete after {wait:g}s", style="yellow"))
    return 0 if complete else 1


def order(
    *,
    items: Sequence[str] | None = None,
    card: str = "approved",
    url: str | None = None,
    endpoint: str | None = None,
    wait: float = 10.0,
    follow: bool = False,
    console: Console | None = None,
    errors: Console | None = None,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Place an order, print its outcome, then its trace's waterfall once every service's
    spans have arrived. 0 if the order finished (any outcome) and its trace is complete.
    ``follow``: place it with ``Prefer: respond-async`` and print its steps as they happen
    (:mod:`ordersim.follow`). ``clock`` and ``sleep`` time the wait for the trace (tests
    pass fake ones)."""
    console, errors = consoles(console, errors)
    try:
        lines = [parse_item(item) for item in items] if items else list(DEFAULT_ITEMS)
        card_number = parse_card(card)
        if not wait >= 0:  # negative, or NaN
            raise UsageError(f"argument --wait: {wait:g} is not a number of seconds")
    except UsageError as exc:
        return usage_error("order", exc)
    url = base_url(url or topology.ORDER.url())
    endpoint = base_url(endpoint or topology.VIEWER.ui_url())

    with httpx.Client(transport=transport) as client:
        headers = {"prefer": "respond-async"} if follow else None
        response = _place(client, url, order_body(lines, card_number), errors, headers)
        if response is None:
            return 1
        if response.status_code == 422:
            _print_validation_errors(errors, response)
            return 1
        viewer = Viewer(endpoint, client)
        if follow and response.status_code == 202:
            return _follow(client, url, response, viewer, wait, console, errors, clock, sleep)
        outcome = _outcome(response)
        link = viewer.link(outcome.trace_id) if outcome.trace_id else None
        if outcome.order is not None:
            _print_outcome(console, outcome, link)
        else:
            errors.print(
                Text(
                    f"error: POST {url}/orders answered HTTP {response.status_code}: "
                    f"{response.text[:500]}",
                    style="red",
                )
            )
            if link:
                console.print(Text(f"  trace     {link}"))
        if outcome.trace_id is None:
            errors.print(Text("error: the response names no trace id", style="red"))
            return 1

        try:
            with console.status(f"waiting up to {wait:g}s for the trace to arrive…"):
                found = wait_for_trace(viewer, outcome.trace_id, wait, clock=clock, sleep=sleep)
                logs = viewer.logs(outcome.trace_id) if found.spans else []
        except ViewerError as exc:
            errors.print(Text(f"error: {exc}", style="red"))
            return 1
        except KeyboardInterrupt:
            errors.print(Text("interrupted", style="yellow"))
            return 130

    console.print()
    if not found.spans:
        console.print(
            Text(
                f"no span of trace {outcome.trace_id} reached {endpoint} in {wait:g}s; "
                "do the services export there (OTEL_EXPORTER_OTLP_ENDPOINT)?",
                style="yellow",
            )
        )
        return 1
    console.print(Waterfall(Trace(found.spans, logs)))
    complete = found.is_complete()
    if not complete:
        console.print(Text(f"\nthe trace is incomplete after {wait:g}s:", style="yellow"))
        for line in missing_reports(found, f"POST {url}/orders"):
            console.print(Text(f"  {line}", style="yellow"))
    return 0 if outcome.final and complete else 1
