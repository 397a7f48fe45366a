"""Why a trace is not complete, in words: the root missing, orphans, and the services that
never reported, each named by the port it was called on (the ports this shell's variables
give the services, as :mod:`common.topology` reads them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from common import topology
from ordersim.waterfall import KIND_SERVER, Span, Trace, plural


def service_ports(trace: Trace, env: Mapping[str, str] | None = None) -> dict[int, str]:
    """Port → service name: the ports this shell's variables give the services (as ``ordersim
    up`` wires them: ``<SERVICE>_SERVICE_PORT``, and ``ORDER_SERVICE_<SERVICE>_URL`` where
    set), overridden by what the trace's own SERVER spans say they listened on."""
    env = os.environ if env is None else env
    ports: dict[int, str] = {}
    for service in (*topology.DOWNSTREAM, topology.ORDER):
        urls = [service.url(env)]
        if service is not topology.ORDER and env.get(service.url_variable):
            urls.append(env[service.url_variable])  # the order service calls it there
        for url in urls:
            try:
                listens = urlsplit(url).port
            except ValueError:  # odd settings: the trace may still tell
                continue
            if listens:
                ports[listens] = service.name
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
    elif len(trace.roots) > 1:
        lines.append(f"{len(trace.roots)} spans have no parent (a trace has one root)")
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
