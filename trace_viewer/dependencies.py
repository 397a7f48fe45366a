"""The service graph: which service calls which, how often, how many calls fail, how slow.

A call is a CLIENT span of service A whose child is a SERVER span of service B: the edge
A → B. It failed when B's SERVER span is an error (OpenTelemetry's HTTP conventions make
a server span an error for a 5xx, not for a 4xx such as a declined card). A CLIENT span
that is an error and has no SERVER child is a call the callee never answered (refused,
timed out, the service down): it counts on the edge to the service it was addressed to,
as a failed call. That service is its ``peer.service`` attribute, else the service that
answered other calls at the same ``server.address:server.port``, else that address
itself (e.g. ``127.0.0.1:8002`` while a service has been down the whole window). A CLIENT
span that is no remote call (a database query: no HTTP or RPC attributes) is no edge.

Jaeger computes its graph differently (its spark-dependencies job, or the memory store's
``getDependencies``): every span whose parent is in the trace makes an edge from the
parent's service to the span's, whatever their kinds, links (FOLLOWS_FROM) included, so
in-process parent/child pairs are edges from a service to itself and a call the callee
never answered is no edge at all. Jaeger has no error count or latency per edge.

This module is the pure part: the call records in, the edges out, and how a CLIENT span
names its callee. The store finds the calls (:meth:`TraceStore.calls`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from opentelemetry.proto.trace.v1.trace_pb2 import Span


class Call(NamedTuple):
    """One call: the calling service, the called one, whether it failed, the CLIENT span's
    duration. A tuple, so the store's rows (parent, child, failed, duration_ns) are calls
    as they come, without a copy each."""

    parent: str
    child: str
    failed: bool | int
    duration_ns: int


@dataclass(frozen=True)
class Dependency:
    """One edge of the graph."""

    parent: str
    child: str
    call_count: int
    error_count: int
    #: The 99th percentile of the CLIENT spans' durations (nearest rank).
    p99_ns: int


def nearest_rank(ordered: list[int], quantile: float) -> int:
    """The value at rank ceil(quantile * n) of an ascending list (the nearest-rank percentile,
    always a value that occurred)."""
    rank = -(-round(quantile * 1000) * len(ordered) // 1000)  # ceil, in integers
    return ordered[max(rank, 1) - 1]


def dependency_links(calls: Iterable[tuple[str, str, bool | int, int]]) -> list[Dependency]:
    """The edges the calls (:class:`Call`, or rows of the same four fields) make, sorted by
    parent, then child."""
    durations: dict[tuple[str, str], list[int]] = defaultdict(list)
    errors: dict[tuple[str, str], int] = defaultdict(int)
    for parent, child, failed, duration in calls:
        durations[(parent, child)].append(duration)
        errors[(parent, child)] += failed
    return [
        Dependency(
            parent, child, len(values), errors[(parent, child)], nearest_rank(sorted(values), 0.99)
        )
        for (parent, child), values in sorted(durations.items())
    ]


def _attributes(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        field = kv.value.WhichOneof("value")
        if field in ("string_value", "int_value"):
            out.setdefault(kv.key, getattr(kv.value, field))
    return out


def address(span: Span) -> str | None:
    """``host:port`` a CLIENT span called (``server.address``/``server.port``, else the
    older ``net.peer.*``, else its URL), or None when it is no HTTP or RPC call."""
    attributes = _attributes(span)
    if not any(key in attributes for key in ("http.request.method", "http.method", "rpc.system")):
        return None
    host = attributes.get("server.address") or attributes.get("net.peer.name")
    port = attributes.get("server.port") or attributes.get("net.peer.port")
    url = attributes.get("url.full") or attributes.get("http.url")
    if isinstance(url, str) and url:
        try:
            parts = urlsplit(url)
            host = host or parts.hostname
            port = port or parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            pass
    if not host:
        return None
    return f"{host}:{port}" if port else str(host)


def peer_service(span: Span) -> str | None:
    """The callee a CLIENT span names itself (``peer.service``), if any."""
    value = _attributes(span).get("peer.service")
    return value if isinstance(value, str) and value else None
