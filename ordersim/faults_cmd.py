"""``ordersim faults show|set|clear``: the fault rules of running services, through each
service's ``/admin/faults`` (see :mod:`common.faults`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from common import topology
from common.fault_rules import ADMIN_PATH, FaultRule
from ordersim.calls import AdminError, admin_call, base_url, unexpected
from ordersim.console import UsageError, consoles, usage_error

#: FaultRule field → the ``ordersim faults set`` option that sets it.
OPTIONS = {
    "endpoint": "--endpoint",
    "latency_ms": "--latency-ms",
    "jitter_ms": "--jitter-ms",
    "error_rate": "--error-rate",
    "timeout_rate": "--timeout-rate",
    "timeout_ms": "--timeout-ms",
    "hang": "--hang",
    "seed": "--seed",
}
_INJECTING = ("latency_ms", "jitter_ms", "error_rate", "timeout_rate", "hang")


def default_url(service: str) -> str:
    """Where ``<SERVICE>_SERVICE_HOST`` and ``<SERVICE>_SERVICE_PORT`` put the service (by
    its short name), else 127.0.0.1 and its default port."""
    return topology.BY_KEY[service].url()


@dataclass
class Admin:
    """One service's ``/admin/faults``."""

    service: str
    url: str
    client: httpx.Client

    @property
    def name(self) -> str:
        return topology.BY_KEY[self.service].name

    def get(self) -> list[dict[str, Any]]:
        return self._call("GET")

    def put(self, rules: Sequence[FaultRule]) -> list[dict[str, Any]]:
        return self._call("PUT", [r.model_dump(mode="json") for r in rules])

    def delete(self) -> list[dict[str, Any]]:
        return self._call("DELETE")

    def _call(self, method: str, body: Any = None) -> list[dict[str, Any]]:
        response = admin_call(
            self.client, method, self.url, ADMIN_PATH, service=self.name, json=body
        )
        where = f"{self.name} at {self.url}"
        if response.status_code == 422:
            raise UsageError(f"{where} refused the rules: {response.text[:500]}")
        if response.status_code != 200:
            raise unexpected(response, self.name, self.url)
        try:
            rules = response.json()
        except ValueError:
            rules = None
        if not isinstance(rules, list):
            raise AdminError(f"{where} answered {method} {ADMIN_PATH} with something not a list")
        return rules


def build_rule(
    *,
    endpoint: str | None = None,
    latency_ms: float | None = None,
    jitter_ms: float | None = None,
    error_rate: float | None = None,
    timeout_rate: float | None = None,
    timeout_ms: float | None = None,
    hang: bool = False,
    seed: int | None = None,
) -> FaultRule:
    """The rule the options describe; UsageError naming the option when it is not valid."""
    given: dict[str, Any] = {
        "endpoint": endpoint,
        "latency_ms": latency_ms,
        "jitter_ms": jitter_ms,
        "error_rate": error_rate,
        "timeout_rate": timeout_rate,
        "timeout_ms": timeout_ms,
        "hang": hang or None,
        "seed": seed,
    }
    given = {field: value for field, value in given.items() if value is not None}
    if not any(field in given for field in _INJECTING):
        raise UsageError(
            "nothing to inject: give --latency-ms, --jitter-ms, --error-rate, --timeout-rate "
            "or --hang"
        )
    try:
        return FaultRule(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{OPTIONS.get(field, field)}: {message}" if field else message)
        raise UsageError("; ".join(problems)) from None


def _parse(rules: list[dict[str, Any]]) -> list[FaultRule] | None:
    try:
        return [FaultRule.model_validate(rule) for rule in rules]
    except ValidationError:
        return None  # a service of another version: print what it said


def _print_rules(console: Console, admin: Admin, rules: list[dict[str, Any]], note: str) -> None:
    header = Text()
    header.append(admin.name, style="bold")
    header.append(f"  {admin.url}", style="dim")
    if note:
        header.append(f"  {note}", style="cyan")
    console.print(header)
    parsed = _parse(rules)
    if not rules:
        console.print(Text("  no faults", style="green"))
    elif parsed is None:
        for raw in rules:
            console.print(Text(f"  {raw}"))
    else:
        width = max(len(r.endpoint or "whole service") for r in parsed)
        for rule in parsed:
            line = Text("  ")
            line.append(f"{rule.endpoint or 'whole service':<{width}}", style="bold")
            line.append("  ")
            line.append(rule.describe(), style="red" if rule.error_rate or rule.hang else "yellow")
            console.print(line)


def _admins(services: Sequence[str], url: str | None, client: httpx.Client) -> list[Admin]:
    names = list(dict.fromkeys(services)) or list(topology.BY_KEY)
    if url is not None and len(names) != 1:
        raise UsageError("--url needs exactly one SERVICE")
    return [Admin(name, base_url(url or default_url(name)), client) for name in names]


def show(
    services: Sequence[str] = (),
    *,
    url: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """Print the rules of these services (all four when none is named)."""
    return _each("show", services, url, console, errors, lambda admin: (admin.get(), ""))


def clear(
    services: Sequence[str] = (),
    *,
    url: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """Remove every rule of these services (all four when none is named)."""
    return _each("clear", services, url, console, errors, lambda admin: (admin.delete(), "cleared"))


def set_rule(
    service: str,
    *,
    url: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
    **options: Any,
) -> int:
    """Add the rule the options describe (:func:`build_rule`), or replace the service's rule
    for the same scope; print the resulting rules."""
    try:
        rule = build_rule(**options)
    except UsageError as exc:
        return usage_error("faults set", exc)

    def upsert(admin: Admin) -> tuple[list[dict[str, Any]], str]:
        current = _parse(admin.get())
        if current is None:
            raise AdminError(f"{admin.name} at {admin.url} holds rules this ordersim cannot read")
        rules = [r for r in current if r.scope != rule.scope]
        replaced = len(rules) < len(current)
        rules.append(rule)
        where = rule.endpoint or "whole service"
        return admin.put(rules), f"{'replaced' if replaced else 'set'} the rule for {where}"

    return _each("set", [service], url, console, errors, upsert)


def _each(
    action: str,
    services: Sequence[str],
    url: str | None,
    console: Console | None,
    errors: Console | None,
    call: Callable[[Admin], tuple[list[dict[str, Any]], str]],
) -> int:
    console, errors = consoles(console, errors, highlight=False)
    status = 0
    with httpx.Client() as client:
        try:
            admins = _admins(services, url, client)
        except UsageError as exc:
            return usage_error(f"faults {action}", exc)
        for admin in admins:
            try:
                rules, note = call(admin)
            except UsageError as exc:
                return usage_error(f"faults {action}", exc)
            except AdminError as exc:
                errors.print(Text(f"error: {exc}", style="red"))
                status = 1
                continue
            _print_rules(console, admin, rules, note)
    return status
