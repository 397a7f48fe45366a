"""What one span costs, measured apart from the system: the CPU a database span adds to a
SQLite statement, what the FastAPI and httpx instrumentations add to a request when it
is sampled and when it is not, and the CPU the OTLP exporter spends encoding a span.

    .venv/bin/python bench/span_costs.py [--statements 3000] [--requests 3000] [--rounds 5]

Each case runs plain, then instrumented as ``common.telemetry`` instruments it, twice:
every span sampled, and none sampled (what 99 % of requests cost at 1 % sampling); spans
go to a processor that discards them. CPU time of this process per call:

- database: the same parameterised SELECT (a SQLAlchemy Core statement on one table, as
  the services issue them) on an aiosqlite engine, instrumented by
  ``Telemetry.instrument_engine``;
- server: a FastAPI app shaped like ours (a few routes, a pydantic body), called through
  ASGI directly, under the FastAPI instrumentation (receive/send spans off);
- client: an httpx client over a transport that answers at once, instrumented by
  ``Telemetry.instrument_client`` with the services' request hook, each request carrying
  its URL template as the typed clients send it.

Encoding: order-shaped spans (bench/ingest.py's) through the OTLP exporter's own encoder
into protobuf bytes, CPU per span. Medians of the rounds.
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
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import order_like_spans
from common import http
from common.telemetry import EXCLUDED_URLS, Telemetry

# As common.telemetry sets it: the stable HTTP and database attribute names.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")

MODES = ("plain", "sampled", "unsampled")
WARMUP = 200  # calls before the clock starts (SQLAlchemy's compiled cache, FastAPI's routes)
TABLE = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", String))
QUERY = select(TABLE.c.v).where(TABLE.c.id == bindparam("id"))
BODY = b'{"sku": "SKU-0001", "quantity": 2}'
PATH = "/reservations/ord_0123456789abcdef/commit"
HOOK = http.describe_request
EXTENSIONS = {http.URL_TEMPLATE: "/reservations/{order_id}/commit"}


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def provider(mode: str) -> TracerProvider:
    root = ALWAYS_ON if mode == "sampled" else ALWAYS_OFF
    tracer_provider = TracerProvider(sampler=ParentBased(root))
    tracer_provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return tracer_provider


async def statement_cpu_us(mode: str, calls: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        if mode != "plain":
            Telemetry(provider(mode)).instrument_engine(engine)
        async with engine.begin() as conn:
            await conn.run_sync(TABLE.metadata.create_all)
            await conn.execute(insert(TABLE).values(id=1, v="a"))
        async with engine.connect() as conn:
            for _ in range(WARMUP):
                await conn.execute(QUERY, {"id": 1})
            started = time.process_time()
            for _ in range(calls):
                await conn.execute(QUERY, {"id": 1})
            cpu = time.process_time() - started
        await engine.dispose()
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

    if mode != "plain":
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider(mode),
            excluded_urls=EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
        )
    return app


async def server_request_cpu_us(mode: str, calls: int) -> float:
    app = server_app(mode)
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
        "headers": [
            (b"host", b"127.0.0.1:8001"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"user-agent", b"python-httpx/0.28.1"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
    }

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
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as client:
        if mode != "plain":
            Telemetry(provider(mode)).instrument_client(client, transport, request_hook=HOOK)
        for _ in range(WARMUP):
            await client.post(PATH, content=BODY, extensions=EXTENSIONS)
        started = time.process_time()
        for _ in range(calls):
            await client.post(PATH, content=BODY, extensions=EXTENSIONS)
        return (time.process_time() - started) / calls * 1e6


def encode_cpu_us(spans: list[ReadableSpan], repeats: int = 20) -> float:
    started = time.process_time()
    for _ in range(repeats):
        encode_spans(spans).SerializeToString()
    return (time.process_time() - started) / repeats / len(spans) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5, help="figures are medians of rounds")
    args = parser.parse_args()

    cases = {
        "SQLite statement (DB span)": (statement_cpu_us, args.statements),
        "FastAPI request (server span)": (server_request_cpu_us, args.requests),
        "httpx request (client span)": (client_request_cpu_us, args.requests),
    }
    figures: dict[tuple[str, str], list[float]] = {}
    encoded = []
    spans = order_like_spans(512)
    for _ in range(args.rounds):  # alternating, so drift in the machine's speed hits all alike
        for name, (measure, calls) in cases.items():
            for mode in MODES:
                figures.setdefault((name, mode), []).append(await measure(mode, calls))
        encoded.append(encode_cpu_us(spans))
    for name in cases:
        plain, on, off = (statistics.median(figures[name, mode]) for mode in MODES)
        print(
            f"{name}, CPU: {plain:.0f} µs plain, {on:.0f} µs sampled (+{on - plain:.0f} µs), "
            f"{off:.0f} µs unsampled (+{off - plain:.0f} µs)"
        )
    print(f"OTLP protobuf encoding, CPU: {statistics.median(encoded):.1f} µs per span")


if __name__ == "__main__":
    asyncio.run(main())
