"""Minimal reproductions for upstream reports: per-span work in the OpenTelemetry SDK, the
OTLP exporter and two instrumentations that does nothing for the span recorded.

    .venv/bin/python bench/upstream_span_costs.py [--calls 20000] [--rounds 5]

Each case counts how often the work happens for one span (or one request), and times one
call of it; CPU µs, medians of the rounds. Only the SDK, the exporter's encoder,
FastAPI, httpx and the instrumentations are imported.

1. opentelemetry-sdk ``Resource.__hash__`` serialises every attribute to JSON; the OTLP
   encoder (``encode_spans``) groups a batch by resource, a dict key, so it hashes the
   resource once per span. (``common.telemetry.HashedOnceResource`` works around it.)
2. opentelemetry-instrumentation-httpx normalises the request's and the response's
   headers (``_normalize_headers``: every header, ``get_list(split_commas=True)``) on
   every sampled request, to capture headers, even when none is to be captured.
3. opentelemetry-instrumentation-asgi's ``ASGIGetter.get`` decodes and lower-cases every
   header of the request for each header it looks up.

(Smaller ones seen in profiles, not worth a report alone: the ASGI middleware builds its
metrics' attributes, parsing the target again with ``urlparse``, when its meter provider
is the no-op one; the batch processor calls ``os.getpid()`` for every span, 0.2 µs.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation import asgi
from opentelemetry.instrumentation import httpx as httpx_instrumentation
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk import resources
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

#: What a request between two services carries (httpx's defaults, a JSON body, the context).
REQUEST_HEADERS = [
    (b"host", b"127.0.0.1:8001"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"content-type", b"application/json"),
    (b"content-length", b"34"),
    (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
]
RESPONSE_HEADERS = [
    (b"date", b"Mon, 30 Nov 2026 12:00:00 GMT"),
    (b"server", b"uvicorn"),
    (b"content-length", b"34"),
    (b"content-type", b"application/json"),
    (b"traceresponse", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
]


def cpu_us(call: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1e6


@contextmanager
def counting(owner: Any, name: str) -> Iterator[list[int]]:
    """``owner.name`` counts its calls meanwhile, in the list yielded (one item)."""
    original = getattr(owner, name)
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield count
    finally:
        setattr(owner, name, original)


def resource_hashes_per_span() -> float:
    provider = TracerProvider(resource=Resource.create({"service.name": "inventory-service"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in range(100):
        with provider.get_tracer("bench").start_as_current_span("step"):
            pass
    with counting(resources, "dumps") as count:
        encode_spans(exporter.get_finished_spans())
    return count[0] / 100


async def httpx_normalisations_per_request() -> float:
    provider = TracerProvider()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"{}"))
    client = httpx.AsyncClient(transport=transport)
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    with counting(httpx_instrumentation, "_normalize_headers") as count:
        async with client:
            for _ in range(10):
                await client.post("http://inventory/reservations", content=b"{}")
    return count[0] / 10


async def asgi_lookups_per_request() -> float:
    app = FastAPI()

    @app.post("/reservations")
    async def reserve() -> dict[str, str]:
        return {}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=TracerProvider())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/reservations",
        "raw_path": b"/reservations",
        "query_string": b"",
        "root_path": "",
        "headers": REQUEST_HEADERS,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    with counting(asgi.ASGIGetter, "get") as count:
        for _ in range(10):
            await app(dict(scope, state={}), receive, send)
    return count[0] / 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    resource = Resource.create({"service.name": "inventory-service", "service.instance.id": "x"})
    request_headers = httpx.Headers(REQUEST_HEADERS)
    response_headers = httpx.Headers(RESPONSE_HEADERS)
    scope = {"headers": REQUEST_HEADERS}
    getter = asgi.ASGIGetter()
    module: Any = httpx  # what the instrumentation passes (its _HTTPXModule protocol)
    cases = {
        "Resource.__hash__": (lambda: hash(resource), resource_hashes_per_span(), "span"),
        "httpx _normalize_headers, a pair (the request's, the response's)": (
            lambda: (
                httpx_instrumentation._normalize_headers(request_headers, module),
                httpx_instrumentation._normalize_headers(response_headers, module),
            ),
            asyncio.run(httpx_normalisations_per_request()) / 2,
            "request",
        ),
        "ASGIGetter.get(scope, 'host')": (
            lambda: getter.get(scope, "host"),
            asyncio.run(asgi_lookups_per_request()),
            "request",
        ),
    }
    figures: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (call, _, _) in cases.items():
            figures[name].append(cpu_us(call, args.calls))
    print(f"CPU µs, medians of {args.rounds} rounds; load {os.getloadavg()[0]:.1f}")
    print("| work | calls | µs per call | µs |")
    print("|---|---|---|---|")
    for name, (_, calls, per) in cases.items():
        each = statistics.median(figures[name])
        print(f"| {name} | {calls:g} per {per} | {each:.2f} | {each * calls:.1f} per {per} |")


if __name__ == "__main__":
    main()
