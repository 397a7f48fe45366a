"""The command line's calls to running services: the URL a command is given, why a call
failed, in a few words (every command says it the same way), the trace a response names
(``traceresponse``), and calls to a service's ``/admin`` API (``ordersim faults``,
``ordersim compensations``), where what cannot be reached or is not there becomes an
:class:`AdminError` that says what to do about it."""

from __future__ import annotations

import re
from typing import Any

import httpx

#: Seconds one admin request may take (the admin API is never faulted).
TIMEOUT = 5.0


class AdminError(Exception):
    """A service could not be asked, or answered something unexpected: exit status 1."""


#: A trace id as W3C Trace Context writes it: 32 hex digits.
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def base_url(text: str) -> str:
    """A URL from the command line: "host:port" means http://host:port; no trailing slash."""
    text = text.strip().rstrip("/")
    return text if "://" in text else f"http://{text}"


def trace_of(response: httpx.Response) -> tuple[str | None, bool]:
    """Trace id and sampled flag, from the ``traceresponse`` header (any status)."""
    parts = response.headers.get("traceresponse", "").split("-")
    if len(parts) == 4 and TRACE_ID.match(parts[1]):
        try:
            sampled = bool(int(parts[3], 16) & 0x01)  # other bits (e.g. random) may be set
        except ValueError:
            sampled = False
        return parts[1], sampled
    return None, False


def reason(exc: httpx.TransportError) -> str:
    """Why a request failed, in a few words (every command that calls a service says it so)."""
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def admin_call(
    client: httpx.Client,
    method: str,
    url: str,
    path: str,
    *,
    service: str,
    json: Any = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """``method url+path`` on ``service`` (its name, for messages). Any answer but a 404
    is returned; the caller judges it."""
    where = f"{service} at {url}"
    try:
        response = client.request(method, f"{url}{path}", json=json, params=params, timeout=TIMEOUT)
    except httpx.InvalidURL as exc:
        raise AdminError(f"{url} is not a usable URL: {exc}") from None
    except httpx.ConnectError as exc:
        raise AdminError(
            f"cannot reach {where} ({reason(exc)}). Is ordersim running? Start it with "
            "`ordersim up`, or point --url at it."
        ) from None
    except httpx.TimeoutException:
        raise AdminError(f"{where} did not answer within {TIMEOUT:g}s") from None
    except httpx.TransportError as exc:
        raise AdminError(f"{method} {path} on {where} failed: {reason(exc)}") from None
    if response.status_code == 404:
        raise AdminError(f"{where} has no {path} (HTTP 404): is it an ordersim {service}?")
    return response


def unexpected(response: httpx.Response, service: str, url: str) -> AdminError:
    """An answer the command cannot use."""
    request = response.request
    return AdminError(
        f"{service} at {url} answered HTTP {response.status_code} for {request.method} "
        f"{request.url.path}: {response.text[:200]}"
    )
