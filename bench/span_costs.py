"""What one span costs, measured apart from the system: the CPU a database span adds to a
SQLite statement, what the FastAPI and httpx instrumentations add to a request when it
is sampled and when it is not, the CPU the OTLP exporter spends encoding a span, and how
long the batch processor's export thread keeps an event loop waiting.

    .venv/bin/python bench/span_costs.py [--statements 3000] [--requests 3000] [--rounds 5]
    .venv/bin/python bench/span_costs.py --rounds 5 --untraced-ms 17.56
    .venv/bin/python bench/span_costs.py --export [--rounds 5]
    .venv/bin/python bench/span_costs.py --propagation [--rounds 5]

Each case runs plain (``OTEL_SDK_DISABLED``), then traced as ``common.telemetry`` sets
it up, in three ways: every span sampled; the request's trace known to be unsampled
(what 99 % of an order's requests cost at 1 % sampling: a ``traceparent`` with flags
``00``, or work under an unsampled span); and, for the server, an unsampled root (the
order-service request whose sampler drops it). Spans go to a processor that discards
them. CPU time of this process (all threads) per call:

- database: a primary-key SELECT (a SQLAlchemy Core statement on one table, as the
  services issue them) on a synchronous SQLite engine instrumented by
  ``Telemetry.instrument_engine``, as ``common.db``'s database threads run them;
- server: a FastAPI app shaped like ours (a few routes, a pydantic body), called through
  ASGI directly, instrumented by ``Telemetry.instrument_app``;
- client: ``common.http.create_http_client``'s client over a transport that answers at
  once, each request carrying its URL template as the typed clients send it;
- our own span: ``start_as_current_span`` with two attributes and an event, as the
  routes start theirs, and the same with that work behind ``span.is_recording()``.

Encoding: order-shaped spans (bench/ingest.py's) through the OTLP exporter's own encoder
into protobuf bytes, CPU per span, with a plain ``Resource`` and with the services' own
(``common.telemetry.build_resource``, whose hash the encoder does not recompute for every
span). Medians of the rounds.

Then the floor of tracing an order at 100 % and at 1 %: each of its spans
(``ORDER_SPANS``) at the price measured here, sampled or known unsampled, a sampled one
also encoded, the viewer's share apart. With ``--untraced-ms``
(the untraced CPU per order ``bench/overhead.py`` prints), it also prints the tracing
budget that the throughput targets (0.80x untraced at 100 %, 0.95x at 1 %) leave per
order, against each floor.

``--export`` measures the export thread instead: an event loop ticks every millisecond
while a BatchSpanProcessor, fed 20,000 order-shaped spans a second, hands its batches to
an exporter that encodes them as the OTLP exporter does (and sends nothing). It prints
how late the loop's ticks were (p99, max) and the encoding's CPU per batch, for several
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` / ``OTEL_BSP_SCHEDULE_DELAY`` values and
``sys.setswitchinterval`` settings: a batch is encoded in pure Python holding the GIL,
which the loop gets back only at a switch interval.

``--propagation`` splits what is left of a known-unsampled order (the "known unsampled"
column) into the OpenTelemetry API calls it still makes, each timed apart with the
services' propagators (W3C trace context and baggage, ``traceresponse``): extracting the
caller's context from a request's headers, putting the request's unrecorded span in
it, attaching and detaching it, the ``traceresponse`` header, the look at the current
span that finds a call, statement or span of ours unsampled, and injecting
``traceparent`` into a call's headers. Each step times as many times as a confirmed order
makes it, from ``ORDER_SPANS``, and the steps are summed per order: the part of 1 %
sampling's cost that no skipping removes, short of propagating by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.asgi import asgi_getter, asgi_setter
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracerProvider,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import order_like_spans
from common.http import URL_TEMPLATE, Timeouts, create_http_client
from common.telemetry import PredrawnTraceIds, Telemetry, build_resource, known_unsampled

# As common.telemetry sets it: the stable HTTP and database attribute names.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")

MODES = ("plain", "sampled", "known unsampled", "unsampled root")
WARMUP = 200  # calls before the clock starts (SQLAlchemy's compiled cache, FastAPI's routes)
TABLE = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", String))
QUERY = select(TABLE.c.v).where(TABLE.c.id == bindparam("id"))
BODY = b'{"sku": "SKU-0001", "quantity": 2}'
PATH = "/reservations/ord_0123456789abcdef/commit"
TEMPLATE = "/reservations/{order_id}/commit"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UNSAMPLED_TRACE_ID = (1 << 128) - 1  # above any ratio's bound: every ratio sampler drops it


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def telemetry(mode: str) -> Telemetry:
    """The service's telemetry in ``mode``: its own setup, its sampler from the mode."""
    if mode == "plain":
        return Telemetry(NoOpTracerProvider(), owns_provider=False, enabled=False)
    root = ALWAYS_ON if mode == "sampled" else ALWAYS_OFF
    tracer_provider = TracerProvider(sampler=ParentBased(root), id_generator=PredrawnTraceIds())
    tracer_provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return Telemetry(tracer_provider)


def parent(mode: str) -> Context:
    """The context a call runs in: under a span of a sampled trace, or of one known to be
    unsampled (a root, for the others)."""
    if mode not in ("sampled", "known unsampled"):
        return Context()
    flags = TraceFlags(TraceFlags.SAMPLED if mode == "sampled" else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(int(TRACE, 16), 0x00F067AA0BA902B7, False, flags))
    return set_span_in_context(span)


async def statement_cpu_us(mode: str, calls: int) -> float:
    """A statement as a database thread of ``common.db`` runs it: on a synchronous SQLite
    engine instrumented by ``Telemetry.instrument_engine``, in the caller's context (here
    inline, without the hop, whose cost varies more than a span's)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp}/bench.db")
        telemetry(mode).instrument_engine(engine)
        with engine.begin() as conn:
            TABLE.metadata.create_all(conn)
            conn.execute(insert(TABLE).values(id=1, v="a"))
        token = attach(parent(mode))
        try:
            with engine.connect() as conn:
                for _ in range(WARMUP):
                    conn.execute(QUERY, {"id": 1}).scalar_one()
                started = time.process_time()
                for _ in range(calls):
                    conn.execute(QUERY, {"id": 1}).scalar_one()
                cpu = time.process_time() - started
        finally:
            detach(token)
        engine.dispose()
    return cpu / calls * 1e6


class Line(BaseModel):
    sku: str
    quantity: int


def server_app(mode: str) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/reservations/{order_id}/commit")
    async def commit(order_id: str) -> dict[str, str]:
        return {"order_id": order_id}

    @app.post("/reservations", status_code=201)
    async def reserve(line: Line) -> Line:
        return line

    telemetry(mode).instrument_app(app)
    return app


def traceparent(mode: str) -> list[tuple[bytes, bytes]]:
    if mode not in ("sampled", "known unsampled"):
        return []
    flags = "01" if mode == "sampled" else "00"
    return [(b"traceparent", f"00-{TRACE}-00f067aa0ba902b7-{flags}".encode())]


def post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of an HTTP/1.1 ``POST path`` from a local client, as uvicorn makes it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }


async def server_request_cpu_us(mode: str, calls: int) -> float:
    app = server_app(mode)
    scope = post_scope(
        "/reservations",
        [
            (b"host", b"127.0.0.1:8001"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"user-agent", b"python-httpx/0.28.1"),
            *traceparent(mode),
        ],
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    for _ in range(WARMUP):
        await app(dict(scope, state={}), receive, send)
    started = time.process_time()
    for _ in range(calls):
        await app(dict(scope, state={}), receive, send)
    return (time.process_time() - started) / calls * 1e6


async def client_request_cpu_us(mode: str, calls: int) -> float:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=BODY))
    client = create_http_client(
        "http://inventory", telemetry(mode), timeouts=Timeouts(), transport=transport
    )
    token = attach(parent(mode))
    try:
        async with client:
            for _ in range(WARMUP):
                await client.post(PATH, content=BODY, extensions={URL_TEMPLATE: TEMPLATE})
            started = time.process_time()
            for _ in range(calls):
                await client.post(PATH, content=BODY, extensions={URL_TEMPLATE: TEMPLATE})
            return (time.process_time() - started) / calls * 1e6
    finally:
        detach(token)


async def own_span_cpu_us(mode: str, calls: int, *, guarded: bool = False) -> float:
    """One of our own spans as the routes start them: ``start_as_current_span``, then
    two attributes and an event (a dict each); ``guarded`` skips those when the span is
    not recording."""
    tracer = telemetry(mode).tracer("bench")
    sku, quantity = "SKU-0001", 2
    token = attach(parent(mode))
    try:
        started = time.process_time()
        for _ in range(calls):
            with tracer.start_as_current_span("check_stock") as span:
                if not guarded or span.is_recording():
                    span.set_attributes({"shop.sku": sku, "shop.quantity": quantity})
                    span.add_event("reserved", {"shop.units": quantity})
        return (time.process_time() - started) / calls * 1e6
    finally:
        detach(token)


async def guarded_own_span_cpu_us(mode: str, calls: int) -> float:
    return await own_span_cpu_us(mode, calls, guarded=True)


def encode_cpu_us(spans: list[ReadableSpan], repeats: int = 20) -> float:
    started = time.process_time()
    for _ in range(repeats):
        encode_spans(spans).SerializeToString()
    return (time.process_time() - started) / repeats / len(spans) * 1e6


class Encoding(SpanExporter):
    """Encodes each batch as the OTLP exporter does, on the export thread, and sends nothing."""

    def __init__(self) -> None:
        self.cpu: list[float] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        started = time.thread_time()
        encode_spans(spans).SerializeToString()
        self.cpu.append(time.thread_time() - started)
        return SpanExportResult.SUCCESS


#: (max export batch size, schedule delay ms, switch interval s): no export at all (how
#: late the ticks are on this machine anyway), the SDK's defaults (512 spans, 5 s,
#: CPython's 5 ms), then smaller batches and shorter switch intervals.
EXPORT_SETTINGS = [
    (0, 0, 0.005),
    (512, 5000, 0.005),
    (512, 5000, 0.001),
    (128, 1000, 0.005),
    (128, 1000, 0.001),
]
SPANS_PER_MS = 2  # 2,000 spans/s: order-service's share of ~50 spans an order at 100 orders/s


async def export_stalls(batch: int, delay_ms: int, switch: float, seconds: float) -> list[float]:
    """How late a 1 ms tick of the event loop runs while the export thread works: p99 and
    max lateness in ms, and the encoding's CPU ms per batch."""
    spans = order_like_spans(SPANS_PER_MS * 500)
    exporter = Encoding()
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter, max_export_batch_size=batch, schedule_delay_millis=delay_ms)
        if batch
        else SpanProcessor()  # receives the spans and does nothing
    )
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch)
    late = []
    try:
        deadline = time.perf_counter() + seconds
        i = 0
        while (now := time.perf_counter()) < deadline:
            for _ in range(SPANS_PER_MS):
                processor.on_end(spans[i % len(spans)])
                i += 1
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - now - 0.001) * 1000)
    finally:
        sys.setswitchinterval(previous)
        processor.shutdown()
    late.sort()
    per_batch = statistics.median(exporter.cpu) * 1000 if exporter.cpu else 0.0
    return [late[int(len(late) * 0.99)], late[-1], per_batch]


async def export_main(rounds: int) -> None:
    figures: dict[tuple[int, int, float], list[list[float]]] = {s: [] for s in EXPORT_SETTINGS}
    for _ in range(rounds):
        for setting in EXPORT_SETTINGS:
            figures[setting].append(await export_stalls(*setting, seconds=5))
    print(f"event-loop tick lateness while exporting {SPANS_PER_MS * 1000} spans/s, ms")
    print("| batch | delay | switch interval | tick late p99 | max | encoding CPU per batch |")
    print("|---|---|---|---|---|---|")
    for (batch, delay, switch), found in figures.items():
        p99, worst, per_batch = (statistics.median(f[k] for f in found) for k in range(3))
        spread = f"{min(f[0] for f in found):.2f}-{max(f[0] for f in found):.2f}"
        print(
            f"| {batch or 'no export'} | {delay} ms | {switch * 1000:g} ms "
            f"| {p99:.2f} ({spread}) | {worst:.2f} | {per_batch:.2f} ms |"
        )


def spread(values: list[float], digits: int = 0) -> str:
    """The median (min-max) of ``values``."""
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5, help="figures are medians of rounds")
    parser.add_argument("--export", action="store_true", help="the export thread's stalls")
    parser.add_argument(
        "--propagation",
        action="store_true",
        help="what a known-unsampled order still pays, API call by API call",
    )
    parser.add_argument(
        "--untraced-ms",
        type=float,
        help="CPU ms per order untraced (bench/overhead.py's): also print the tracing budget "
        "that the throughput targets leave, against each floor",
    )
    args = parser.parse_args()
    # As setup_telemetry sets it: a traceresponse header on every traced response.
    set_global_response_propagator(TraceResponsePropagator())  # type: ignore[no-untyped-call]
    if args.export:
        await export_main(args.rounds)
        return
    if args.propagation:
        propagation_main(args.rounds, args.requests * 10)
        return

    cases = {
        "SQLite statement (DB span)": (statement_cpu_us, args.statements, MODES[:3]),
        "FastAPI request (server span)": (server_request_cpu_us, args.requests, MODES),
        "httpx request (client span)": (client_request_cpu_us, args.requests, MODES[:3]),
        "our own span, 2 attributes and an event": (own_span_cpu_us, args.requests, MODES[:3]),
        "the same, attributes behind is_recording()": (
            guarded_own_span_cpu_us,
            args.requests,
            MODES[:3],
        ),
    }
    figures: dict[tuple[str, str], list[float]] = {}
    encoded, encoded_hashed_once = [], []
    spans = order_like_spans(512)
    # The services' own resource (common.telemetry.build_resource), whose hash is cached.
    services_spans = order_like_spans(512, resource=build_resource)
    for _ in range(args.rounds):  # alternating, so drift in the machine's speed hits all alike
        for name, (measure, calls, modes) in cases.items():
            for mode in modes:
                figures.setdefault((name, mode), []).append(await measure(mode, calls))
        encoded.append(encode_cpu_us(spans))
        encoded_hashed_once.append(encode_cpu_us(services_spans))
    print(f"CPU µs per call, medians of {args.rounds} rounds (min-max); load {os.getloadavg()}")
    print("| call | " + " | ".join(MODES) + " |")
    print("|---" * (len(MODES) + 1) + "|")
    for name, (_, _, modes) in cases.items():
        plain = statistics.median(figures[name, "plain"])
        cells = [spread(figures[name, "plain"])]
        for mode in modes[1:]:
            added = [f - plain for f in figures[name, mode]]
            cells.append(f"+{spread(added)}")
        cells += ["—"] * (len(MODES) - len(modes))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"OTLP protobuf encoding, CPU: {statistics.median(encoded):.1f} µs per span; "
        f"{statistics.median(encoded_hashed_once):.1f} with the services' resource "
        "(build_resource, hashed once)"
    )
    added_us = {
        (kind, mode): statistics.median(figures[name, mode])
        - statistics.median(figures[name, "plain"])
        for kind, name in ORDER_SPAN_CASES.items()
        for mode in ("sampled", "known unsampled")
    }
    print_floors(added_us, statistics.median(encoded_hashed_once), args.untraced_ms)


#: The spans of an order in the bench's mix, by kind: one confirmed order's trace and its
#: notification's (bench/cpu_per_order.py --traced counts them as "spans/order").
ORDER_SPANS = {"server": 8, "client": 7, "database": 23, "own": 19}
ORDER_SPAN_CASES = {
    "server": "FastAPI request (server span)",
    "client": "httpx request (client span)",
    "database": "SQLite statement (DB span)",
    "own": "the same, attributes behind is_recording()",
}
#: bench/overhead.py's sampled configurations and the share of untraced throughput each
#: must keep (issue 13).
TARGETS = {"100 %": (1.0, 0.80), "1 %": (0.01, 0.95)}


def print_floors(
    added_us: dict[tuple[str, str], float], encode_us: float, untraced_ms: float | None
) -> None:
    """The least CPU tracing an order can cost in each sampled configuration: each of its
    spans at its hot-loop price (no cache misses, no other process), a sampled one also
    encoded once, the viewer's share left out. Below it, only dropping a kept
    instrumentation or a span would go. With the untraced CPU per order, the budget each
    configuration's throughput target leaves, against its floor."""
    spans = sum(ORDER_SPANS.values())
    for name, (ratio, target) in TARGETS.items():
        parts = {
            kind: count
            * (ratio * added_us[kind, "sampled"] + (1 - ratio) * added_us[kind, "known unsampled"])
            / 1000
            for kind, count in ORDER_SPANS.items()
        }
        parts["encoding"] = ratio * spans * encode_us / 1000
        floor = sum(parts.values())
        terms = ", ".join(f"{kind} {ms:.2f}" for kind, ms in parts.items())
        print(
            f"{name} sampled, an order's {spans} spans {ORDER_SPANS}: at least {floor:.2f} ms "
            f"of CPU per order in hot loops ({terms}), the viewer's apart"
        )
        if untraced_ms:
            # Saturated throughput goes as 1 / CPU per order: x times untraced's leaves
            # (1/x - 1) times its CPU per order to tracing.
            budget = (1 / target - 1) * untraced_ms
            print(
                f"  {target:.2f}x untraced throughput leaves {budget:.2f} ms per order to "
                f"tracing at {untraced_ms} ms untraced: the floor is {floor / budget:.2f}x that"
            )


def propagation_steps() -> dict[str, tuple[int, Any]]:
    """Each step of propagation a known-unsampled order makes, as the services make it
    (``common.telemetry.UnsampledFastPath``, ``common.http.CookielessClient``,
    ``common.db``'s twin engines, ``UnsampledSpansAreTheirParent``), with how many times
    a confirmed order makes it (``ORDER_SPANS``: its server requests, one of them the
    root, its calls, its statements and our own spans)."""
    requests, calls = ORDER_SPANS["server"], ORDER_SPANS["client"]
    # Only the propagators' headers, as UnsampledFastPath hands them to the extraction.
    scope = {"headers": traceparent("known unsampled")}
    extracted = propagate.extract(scope, getter=asgi_getter)
    caller = trace.get_current_span(extracted).get_span_context()
    ids, root_sampler = PredrawnTraceIds(), ParentBased(TraceIdRatioBased(0.01))

    def new_trace() -> None:  # UnsampledFastPath._root, for the order's POST
        found = propagate.extract({"headers": []}, getter=asgi_getter)  # baggage alone
        ids.generate_trace_id()
        # Decided on a trace id the ratio drops, as 99 roots in 100 are.
        root_sampler.should_sample(found, UNSAMPLED_TRACE_ID, "POST", SpanKind.SERVER)

    def unrecorded_span() -> Context:
        own = SpanContext(caller.trace_id, ids.generate_span_id(), False, caller.trace_flags)
        return set_span_in_context(NonRecordingSpan(own), extracted)

    unrecorded = unrecorded_span()
    responses = get_global_response_propagator()  # type: ignore[no-untyped-call]
    message: dict[str, Any] = {"type": "http.response.start", "status": 200}
    headers = httpx.Headers({"content-type": "application/json"})

    def attached() -> None:
        detach(attach(unrecorded))

    def response_header() -> None:
        message["headers"] = []
        responses.inject(message, context=unrecorded, setter=asgi_setter)

    return {
        "extract traceparent (and tracestate, baggage)": (
            requests - 1,
            lambda: propagate.extract(scope, getter=asgi_getter),
        ),
        "a new trace: extract baggage, draw its id, ask the sampler": (1, new_trace),
        "the request's unrecorded span, in that context": (requests, unrecorded_span),
        "attach and detach it": (requests, attached),
        "traceresponse header": (requests, response_header),
        "known_unsampled(): a call, statement or span of ours": (
            calls + ORDER_SPANS["database"] + ORDER_SPANS["own"],
            known_unsampled,
        ),
        "inject traceparent into a call's headers": (calls, lambda: propagate.inject(headers)),
    }


def propagation_main(rounds: int, calls: int) -> None:
    steps = propagation_steps()
    figures: dict[str, list[float]] = {name: [] for name in steps}
    token = attach(parent("known unsampled"))  # the current span, for the looks and the inject
    try:
        for _ in range(rounds):
            for name, (_, step) in steps.items():
                for _ in range(WARMUP):
                    step()
                started = time.process_time()
                for _ in range(calls):
                    step()
                figures[name].append((time.process_time() - started) / calls * 1e6)
    finally:
        detach(token)
    print(
        f"a known-unsampled order's propagation, CPU µs per call, medians of {rounds} rounds "
        f"(min-max); load {os.getloadavg()}"
    )
    print("| step | µs per call | per order | µs per order |")
    print("|---|---|---|---|")
    total = 0.0
    for name, (per_order, _) in steps.items():
        each = statistics.median(figures[name])
        total += each * per_order
        print(f"| {name} | {spread(figures[name], 2)} | {per_order} | {each * per_order:.1f} |")
    print(f"in all, {total:.0f} µs of CPU per order")


if __name__ == "__main__":
    asyncio.run(main())
