"""``ordersim compensations``: the deferred-compensation backlog of a running order service,
through its ``GET /admin/compensations`` (see :mod:`order_service.admin`)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from common import topology
from ordersim.calls import AdminError, admin_call, base_url, unexpected

PATH = "/admin/compensations"
SERVICE = "order-service"


def fetch(client: httpx.Client, url: str, limit: int) -> dict[str, Any]:
    """The backlog as the order service at ``url`` reports it."""
    response = admin_call(client, "GET", url, PATH, service=SERVICE, params={"limit": limit})
    if response.status_code != 200:
        raise unexpected(response, SERVICE, url)
    try:
        backlog = response.json()
    except ValueError:
        backlog = None
    if not (
        isinstance(backlog, dict)
        and isinstance(backlog.get("pending"), int)
        and isinstance(backlog.get("items"), list)
    ):
        raise AdminError(
            f"{SERVICE} at {url} answered GET {PATH} with something other than a backlog"
        )
    return backlog


def duration(seconds: float | None) -> str:
    """A short human duration: 850ms, 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{(whole % size) // small_size:02d}{small}"
    return f"{whole}s"


def render(console: Console, url: str, backlog: dict[str, Any]) -> None:
    pending, items, warn_at = backlog["pending"], backlog["items"], backlog.get("warn_at")
    header = Text()
    header.append("order-service", style="bold")
    header.append(f"  {url}  ", style="dim")
    if not pending:
        header.append("no deferred compensations", style="green")
        console.print(header)
        return
    style = "bold red" if warn_at is not None and pending >= warn_at else "yellow"
    header.append(f"{pending} pending", style=style)
    header.append(f", the oldest deferred {duration(backlog.get('oldest_age_seconds'))} ago")
    if warn_at is not None and pending >= warn_at:
        header.append(f" (warning from {warn_at} on)", style="bold red")
    console.print(header)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("order", "undo", "attempts", "age", "next"):
        table.add_column(column, no_wrap=True, justify="right" if column == "attempts" else "left")
    table.add_column("last error", overflow="fold")
    for item in items:
        wait = item.get("next_attempt_in_seconds") or 0
        table.add_row(
            item.get("order_id", "?"),
            item.get("action", "?"),
            str(item.get("attempts", "?")),
            duration(item.get("age_seconds")),
            Text(f"in {duration(wait)}") if wait > 0 else Text("due", style="yellow"),
            Text(str(item.get("last_error", "")), style="red"),
        )
    console.print(table)
    if len(items) < pending:
        console.print(
            Text(f"the oldest {len(items)} of {pending}; --limit lists more", style="dim")
        )


def show(
    *,
    url: str | None = None,
    limit: int = 100,
    as_json: bool = False,
    console: Console | None = None,
    errors: Console | None = None,
    client: httpx.Client | None = None,
) -> int:
    """Print the backlog of the order service at ``url`` (default: this machine's), as a
    table or (``as_json``) as the service's JSON; exit status 0, or 1 if it cannot be read."""
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = max(console.width, 160)  # piped: whole lines, not 80 columns
    errors = errors or Console(stderr=True, highlight=False, soft_wrap=True)
    url = base_url(url or topology.ORDER.url())
    with client or httpx.Client() as http:
        try:
            backlog = fetch(http, url, limit)
        except AdminError as exc:
            errors.print(Text(f"error: {exc}", style="red"))
            return 1
    if as_json:
        print(json.dumps(backlog, indent=2, ensure_ascii=False), flush=True)
    else:
        render(console, url, backlog)
    return 0
