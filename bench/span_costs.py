"""What one span costs, measured apart from the system: the CPU a database span adds to a
SQLite statement, and the CPU the OTLP exporter spends encoding a span.

    .venv/bin/python bench/span_costs.py [--statements 3000] [--rounds 5]

Database: the same parameterised SELECT run ``--statements`` times on an aiosqlite engine,
with and without opentelemetry-instrumentation-sqlalchemy's EngineTracer bound to it (the
way ``common.telemetry`` binds it), spans going to a processor that discards them; CPU
time of this process per statement. Encoding: order-shaped spans (bench/ingest.py's)
through the OTLP exporter's own encoder into protobuf bytes, CPU per span. Medians of the
rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import order_like_spans

# As common.telemetry sets it: the stable database attribute names.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")

QUERY = text("SELECT v FROM t WHERE id = :id")


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def statement_cpu_us(instrumented: bool, statements: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        if instrumented:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(Discard()))
            usage = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("usage")
            EngineTracer(provider.get_tracer("bench"), engine.sync_engine, usage)  # type: ignore[no-untyped-call]
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 'a')"))
        async with engine.connect() as conn:
            for _ in range(200):  # warm SQLAlchemy's compiled cache
                await conn.execute(QUERY, {"id": 1})
            started = time.process_time()
            for _ in range(statements):
                await conn.execute(QUERY, {"id": 1})
            cpu = time.process_time() - started
        await engine.dispose()
    return cpu / statements * 1e6


def encode_cpu_us(spans: list[ReadableSpan], repeats: int = 20) -> float:
    started = time.process_time()
    for _ in range(repeats):
        encode_spans(spans).SerializeToString()
    return (time.process_time() - started) / repeats / len(spans) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5, help="figures are medians of rounds")
    args = parser.parse_args()

    plain, traced, encoded = [], [], []
    spans = order_like_spans(512)
    for _ in range(args.rounds):  # alternating, so drift in the machine's speed hits both
        plain.append(await statement_cpu_us(False, args.statements))
        traced.append(await statement_cpu_us(True, args.statements))
        encoded.append(encode_cpu_us(spans))
    p, t = statistics.median(plain), statistics.median(traced)
    print(f"SQLite statement, CPU: {p:.0f} µs plain, {t:.0f} µs with a DB span (+{t - p:.0f} µs)")
    print(f"OTLP protobuf encoding, CPU: {statistics.median(encoded):.1f} µs per span")


if __name__ == "__main__":
    asyncio.run(main())
