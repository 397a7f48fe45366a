"""``ordersim trace`` and ``ordersim order``: a trace's waterfall in the terminal.

Both read traces through the query API the embedded viewer and Jaeger v2 share:
``GET /api/v3/traces/{id}`` (OTLP JSON) and ``GET /api/traces/{id}`` (Jaeger JSON).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.text import Text

from ordersim.calls import reason
from ordersim.samples import DEFAULT_ITEMS, order_body
from ordersim.waterfall import (
    KIND_SERVER,
    LogLine,
    Span,
    Trace,
    Waterfall,
    parse_otlp,
    parse_otlp_logs,
    plural,
)
from payment_service import cards

Output = Literal["waterfall", "json", "jaeger"]

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_ITEM = re.compile(r"^(?P<sku>[^:\s]+):(?P<qty>\d+)$")
#: Seconds between two looks at the viewer while an order's trace arrives.
POLL_INTERVAL = 0.2
#: Seconds one request to the viewer may take.
VIEWER_TIMEOUT = 5.0
#: Seconds an order may take: the order service gives up on its own after 10 s.
ORDER_TIMEOUT = httpx.Timeout(30.0, connect=3.0)

#: The status of ``POST /orders`` for each final order status.
FINAL_STATUSES = {"confirmed": 201, "rejected": 409, "payment_failed": 402, "failed": 503}
_STATUS_STYLE = {
    "confirmed": "bold green",
    "rejected": "bold yellow",
    "payment_failed": "bold red",
    "failed": "bold red",
}


class UsageError(Exception):
    """A bad argument: reported the way argparse reports one, exit code 2."""


class ViewerError(Exception):
    """The viewer could not be asked, or answered something other than a trace."""


class ViewerTimeout(ViewerError):
    """The viewer did not answer in time (it may still, unlike a refused connection)."""


def default_viewer_url() -> str:
    """The embedded viewer (or Jaeger) on this machine: TRACE_VIEWER_UI_PORT, else 16686."""
    return f"http://127.0.0.1:{os.environ.get('TRACE_VIEWER_UI_PORT') or 16686}"


def default_order_url() -> str:
    """The order service on this machine: ORDER_SERVICE_PORT, else 8000."""
    return f"http://127.0.0.1:{os.environ.get('ORDER_SERVICE_PORT') or 8000}"


def base_url(text: str) -> str:
    """A URL from the command line: "host:port" means http://host:port; no trailing slash."""
    text = text.strip().rstrip("/")
    return text if "://" in text else f"http://{text}"


def parse_trace_id(text: str) -> str:
    if not _TRACE_ID.match(text):
        raise UsageError(f"argument TRACE_ID: {text!r} is not a trace id (32 hex digits)")
    return text.lower()


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


def _usage_error(command: str, error: UsageError) -> int:
    print(f"ordersim {command}: error: {error}", file=sys.stderr)
    return 2


def _consoles(console: Console | None, errors: Console | None) -> tuple[Console, Console]:
    return (
        console or Console(),
        # Messages are never wrapped: "not found at <endpoint>" stays greppable.
        errors or Console(stderr=True, highlight=False, soft_wrap=True),
    )


class Viewer:
    """The query API of the embedded viewer or of Jaeger v2."""

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
        document = self.fetch(f"/api/v3/traces/{trace_id}", timeout=timeout)
        if document is None:
            return None
        if not isinstance(document, dict):
            raise ViewerError(f"{self.endpoint}/api/v3/traces/{trace_id}: not OTLP JSON")
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


# --- ordersim trace ---------------------------------------------------------------------------


def trace(
    trace_id: str,
    *,
    output: Output = "waterfall",
    endpoint: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print a stored trace: its waterfall, its OTLP JSON or its Jaeger JSON."""
    console, errors = _consoles(console, errors)
    try:
        trace_id = parse_trace_id(trace_id)
    except UsageError as exc:
        return _usage_error("trace", exc)
    endpoint = base_url(endpoint or default_viewer_url())
    logs: list[LogLine] = []
    with httpx.Client(transport=transport) as client:
        viewer = Viewer(endpoint, client)
        document = stored(viewer, trace_id, errors, jaeger=output == "jaeger")
        if document is not None and output == "waterfall":
            logs = viewer.logs(trace_id)
    if document is None:
        return 1
    try:
        if output == "waterfall":
            console.print(Waterfall(Trace(parse_otlp(document), logs)))
        else:
            # As received, pretty-printed; plain text, so it pipes into jq unchanged.
            print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)
    except BrokenPipeError:  # `ordersim trace ID --json | head`: the reader has gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


# --- ordersim order ---------------------------------------------------------------------------


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
        return FINAL_STATUSES.get(str(self.order.get("status"))) == self.http_status


def service_ports(trace: Trace) -> dict[int, str]:
    """Port → service name: the ports this shell's settings give the services (as ``ordersim
    up`` wires them), overridden by what the trace's own SERVER spans say they listened on."""
    # Imported here: the settings modules pull in FastAPI and OpenTelemetry, a second's work
    # that only an incomplete trace needs.
    from pydantic import ValidationError

    from inventory_service.settings import InventorySettings
    from order_service.settings import OrderSettings
    from payment_service.settings import PaymentSettings
    from shipping_service.settings import ShippingSettings

    ports: dict[int, str] = {}
    try:
        order_settings = OrderSettings()
        for settings, field in (
            (InventorySettings(), "inventory_url"),
            (PaymentSettings(), "payment_url"),
            (ShippingSettings(), "shipping_url"),
        ):
            ports[settings.port] = settings.service_name
            if field in order_settings.model_fields_set:  # ORDER_SERVICE_*_URL wins, as in up
                port = urlsplit(getattr(order_settings, field)).port
                if port:
                    ports[port] = settings.service_name
        ports[order_settings.port] = order_settings.service_name
    except (ValidationError, ValueError):  # odd settings: the trace may still tell
        pass
    for span in trace.spans:
        port = span.attributes.get("server.port")
        if span.kind == KIND_SERVER and isinstance(port, int):
            ports[port] = span.service
    return ports


def callee(span: Span, ports: dict[int, str]) -> str:
    """The service a CLIENT span called: by port, else the host:port it called."""
    url = str(span.attributes.get("url.full") or "")
    parts = urlsplit(url) if url else None
    attribute = span.attributes.get("server.port")
    port: int | None = attribute if isinstance(attribute, int) else None
    if port is None and parts is not None:
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            port = None
    if port is not None and port in ports:
        return ports[port]
    host = span.attributes.get("server.address") or (parts.hostname if parts else None)
    return f"{host or '?'}:{port if port is not None else '?'}"


def missing_reports(trace: Trace, root: str = "") -> list[str]:
    """Why the trace is not complete, one line each; ``root`` says what the root span is."""
    lines: list[str] = []
    if trace.root is None:
        lines.append(f"the root span{f' ({root})' if root else ''} has not arrived")
    if trace.orphans:
        count = len(trace.orphans)
        lines.append(
            f"{plural(count, 'span')} {'references' if count == 1 else 'reference'} "
            "a parent that has not arrived"
        )
    unanswered = trace.unanswered_calls()
    if unanswered:
        ports = service_ports(trace)
        calls: dict[str, list[str]] = {}
        for span in unanswered:
            method = span.attributes.get("http.request.method", span.name)
            target = span.attributes.get("url.full") or span.name
            calls.setdefault(callee(span, ports), []).append(f"{method} {target}")
        for service, requests in calls.items():
            lines.append(f"{service} never reported (no server span for {', '.join(requests)})")
    return lines


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
        parts = response.headers.get("traceresponse", "").split("-")
        trace_id = parts[1] if len(parts) == 4 else None
    if not (isinstance(trace_id, str) and _TRACE_ID.match(trace_id)):
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
    finished = Outcome(FINAL_STATUSES.get(order.get("status"), final.status_code), order, None)
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


def wait_for_trace(
    viewer: Viewer,
    trace_id: str,
    wait: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Trace:
    """Poll until the trace is complete or ``wait`` seconds have passed; return what came.

    Raises ViewerError if the viewer cannot be reached or answers nonsense.
    """
    deadline = clock() + wait
    latest = Trace([])
    while True:
        left = deadline - clock()
        try:
            document = viewer.otlp(trace_id, timeout=max(0.5, min(VIEWER_TIMEOUT, left)))
        except ViewerTimeout:  # busy: look again until the deadline
            document = None
        if document is not None:
            latest = Trace(parse_otlp(document))
            if latest.is_complete():
                return latest
        if clock() >= deadline:
            return latest
        sleep(min(POLL_INTERVAL, max(0.0, deadline - clock())))


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
    console, errors = _consoles(console, errors)
    try:
        lines = [parse_item(item) for item in items] if items else list(DEFAULT_ITEMS)
        card_number = parse_card(card)
        if not wait >= 0:  # negative, or NaN
            raise UsageError(f"argument --wait: {wait:g} is not a number of seconds")
    except UsageError as exc:
        return _usage_error("order", exc)
    url = base_url(url or default_order_url())
    endpoint = base_url(endpoint or default_viewer_url())

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
