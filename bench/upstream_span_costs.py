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
4. opentelemetry-exporter-otlp-proto-common's ``encode_spans`` builds every message with
   its children passed to the constructor (``KeyValue(key=k, value=AnyValue(...))``,
   ``Span(attributes=[...])``, ``ScopeSpans(spans=[...])``, ``ResourceSpans(...)``,
   ``ExportTraceServiceRequest(...)``). protobuf's upb runtime copies a message passed
   so by serialising and parsing it (``PyUpb_Message_MergeFrom``), at each of those
   levels: a span's attributes are copied four or five times before the request is
   serialised. Compared with the same bytes built in place (``.add()``, fields set on
   the child the parent owns), which callgrind found (bench/system_instructions.py
   ``--keep``: ``PyUpb_Message_Init`` 9 % of inventory-service's instructions at 100 %).

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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PB2Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PB2Status
from opentelemetry.sdk import resources
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

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


def order_shaped_spans() -> list[ReadableSpan]:
    """57 spans shaped as an order's (8 server, 7 client, 23 statements, 19 of our own), with
    about as many attributes as ordersim's of each kind: a root server span (none), 8 more
    (11 attributes, and a status code each), 7 client (9, and one), 23 statements (6, and
    one), 18 of our own (2, an event and an OK status)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "inventory-service"}))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench", "1.0")
    shapes = [(SpanKind.SERVER, 8, 11), (SpanKind.CLIENT, 7, 9), (SpanKind.CLIENT, 23, 6)]
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        for kind, count, attributes in shapes:
            for n in range(count):
                with tracer.start_as_current_span(f"span {n}", kind=kind) as span:
                    span.set_attributes({f"attribute.{i}": f"value {i}" for i in range(attributes)})
                    span.set_attribute("http.response.status_code", 200)
        for _ in range(18):
            with tracer.start_as_current_span("reserve_item") as span:
                span.set_attributes({"shop.sku": "SKU-0001", "shop.quantity": 2})
                span.add_event("reserved", {"shop.units": 2})
                span.set_status(Status(StatusCode.OK))
    return list(exporter.get_finished_spans())


def _attributes(into: Any, attributes: Any) -> None:
    """``encode_spans``'s attributes (str, bool, int, float values), set in place."""
    for key, value in (attributes or {}).items():
        pair: KeyValue = into.add()
        pair.key = key
        if isinstance(value, bool):
            pair.value.bool_value = value
        elif isinstance(value, str):
            pair.value.string_value = value
        elif isinstance(value, int):
            pair.value.int_value = value
        else:
            pair.value.double_value = value


def encode_in_place(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    """What ``encode_spans`` builds, for spans without links or sequence values, with each
    child set in place rather than passed to its parent's constructor (the comparison of
    case 4; checked byte for byte against ``encode_spans``)."""
    request = ExportTraceServiceRequest()
    grouped: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for span in spans:
        grouped.setdefault(span.resource, {}).setdefault(span.instrumentation_scope, []).append(
            span
        )
    for resource, scopes in grouped.items():
        resource_spans = request.resource_spans.add()
        _attributes(resource_spans.resource.attributes, resource.attributes)
        resource_spans.schema_url = resource.schema_url
        for scope, scope_members in scopes.items():
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope.name
            scope_spans.scope.version = scope.version or ""
            scope_spans.schema_url = scope.schema_url or ""
            for span in scope_members:
                context = span.get_span_context()
                assert context is not None
                encoded = scope_spans.spans.add()
                encoded.trace_id = context.trace_id.to_bytes(16, "big")
                encoded.span_id = context.span_id.to_bytes(8, "big")
                encoded.trace_state = context.trace_state.to_header()
                if span.parent is not None:
                    encoded.parent_span_id = span.parent.span_id.to_bytes(8, "big")
                encoded.name = span.name
                # SpanKind.INTERNAL (0) is SPAN_KIND_INTERNAL (1), and so on.
                encoded.kind = PB2Span.SpanKind.ValueType(span.kind.value + 1)
                encoded.start_time_unix_nano = span.start_time or 0
                encoded.end_time_unix_nano = span.end_time or 0
                _attributes(encoded.attributes, span.attributes)
                for event in span.events:
                    encoded_event = encoded.events.add()
                    encoded_event.name = event.name
                    encoded_event.time_unix_nano = event.timestamp
                    _attributes(encoded_event.attributes, event.attributes)
                encoded.status.code = PB2Status.StatusCode.ValueType(span.status.status_code.value)
                encoded.status.message = span.status.description or ""
                encoded.flags = 0x100 | (0x200 if span.parent and span.parent.is_remote else 0)
    return request


def encoding_per_span(calls: int) -> tuple[float, float]:
    """CPU µs a span: ``encode_spans`` then serialised, and the same bytes built in place."""
    spans = order_shaped_spans()
    assert encode_in_place(spans).SerializeToString() == encode_spans(spans).SerializeToString()
    repeats = max(calls // len(spans), 1)

    def upstream() -> None:
        encode_spans(spans).SerializeToString()

    def in_place() -> None:
        encode_in_place(spans).SerializeToString()

    return cpu_us(upstream, repeats) / len(spans), cpu_us(in_place, repeats) / len(spans)


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
    encodings: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        for name, (call, _, _) in cases.items():
            figures[name].append(cpu_us(call, args.calls))
        encodings.append(encoding_per_span(args.calls // 10))
    print(f"CPU µs, medians of {args.rounds} rounds; load {os.getloadavg()[0]:.1f}")
    print("| work | calls | µs per call | µs |")
    print("|---|---|---|---|")
    for name, (_, calls, per) in cases.items():
        each = statistics.median(figures[name])
        print(f"| {name} | {calls:g} per {per} | {each:.2f} | {each * calls:.1f} per {per} |")
    upstream = statistics.median(e[0] for e in encodings)
    in_place = statistics.median(e[1] for e in encodings)
    print(
        f"encode_spans of an order's 57 spans, serialised: {upstream:.1f} µs a span; the same "
        f"bytes built in place: {in_place:.1f} µs a span ({upstream / in_place:.1f}x)"
    )


if __name__ == "__main__":
    main()
