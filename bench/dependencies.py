"""Latency of the service graph, ``GET /api/dependencies``, with the store at its retention
cap (20,000 traces), and what its indexes cost at ingest.

    .venv/bin/python bench/dependencies.py [--traces 20000] [--rounds 7] [--orders 15]

1. Records real order traces: starts the viewer and the four services (as
   bench/overhead.py does), payment failing 10 % of charges, and places orders with the load
   generator (its mix: declined cards, scarce stock, invalid bodies) for ``--orders``
   seconds at 20/s.
2. Fills a fresh store with ``--traces`` copies of them, fresh trace and span ids, start
   times spread over the last hour, written in 512-span batches as the services' batch
   processors would send them (each service's spans in the order they ended).
   It fills a second store the same way with the service graph's index dropped, and
   prints the write time of both, alternating, so the index's ingest cost is a figure.
3. Times the query API in process (``/api/dependencies`` over the whole store, the default
   24 h lookback, and over the last 5 minutes), medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.overhead import System  # noqa: E402
from trace_viewer.otlp import SpanRecord, StoredSpan, records  # noqa: E402
from trace_viewer.query import create_query_app  # noqa: E402
from trace_viewer.store import Limits, TraceQuery, TraceStore  # noqa: E402

BATCH = 512


async def record(orders_seconds: float, data: Path) -> list[list[StoredSpan]]:
    """Real traces from ``ordersim``'s services, as the store keeps them."""
    env = {"PAYMENT_SERVICE_FAULTS": json.dumps([{"error_rate": 0.1, "seed": 7}])}
    async with System("deps", env, data) as system:
        report = await system.load(rate=20, seconds=orders_seconds, check_traces=20)
        print(f"recorded from {report.requests} orders: {dict(report.status_counts)}")
        database = system.viewer.database
    store = TraceStore(database, Limits(10**6, 10**12))
    traces = [store.trace(summary.trace_id) for summary in store.search(TraceQuery(limit=10**6))]
    store.close()
    return [rows for rows in traces if len(rows) > 1]  # whole orders, not stray health checks


def copies(traces: list[list[StoredSpan]], count: int, now_ns: int) -> list[list[SpanRecord]]:
    """``count`` traces cloned from ``traces``: fresh ids, starts spread over the last hour,
    each read by the intake's own :func:`~trace_viewer.otlp.records` (so the records carry
    what the store indexes, as the viewer would have them)."""
    rng = random.Random(1)
    out = []
    for i in range(count):
        template = traces[i % len(traces)]
        spans = [Span.FromString(data) for *_, data in template]
        trace_id = rng.randbytes(16)
        ids = {span.span_id: rng.randbytes(8) for span in spans}
        shift = now_ns - rng.randrange(3600 * 10**9) - min(s.start_time_unix_nano for s in spans)
        request = ExportTraceServiceRequest()
        for (resource, resource_url, scope, scope_url, _), span in zip(
            template, spans, strict=True
        ):
            span.trace_id = trace_id
            span.span_id = ids[span.span_id]
            span.parent_span_id = ids.get(span.parent_span_id, b"")
            span.start_time_unix_nano += shift
            span.end_time_unix_nano += shift
            request.resource_spans.append(
                ResourceSpans(
                    resource=Resource.FromString(resource),
                    schema_url=resource_url,
                    scope_spans=[
                        ScopeSpans(
                            scope=InstrumentationScope.FromString(scope),
                            schema_url=scope_url,
                            spans=[span],
                        )
                    ],
                )
            )
        clone, rejected = records(request)
        assert not rejected, rejected
        out.append(clone)
    return out


class StoreWithoutGraph(TraceStore):
    """The store without what it keeps for the service graph: the calls table and the
    failed-call index (the operations index only gained a small column)."""

    def __init__(self, path: Path, limits: Limits) -> None:
        super().__init__(path, limits)
        self._writer.execute("DROP INDEX spans_by_failed_call")

    def _add_calls(self, spans: Sequence[SpanRecord]) -> None:
        pass


def batches(traces: list[list[SpanRecord]]) -> list[list[SpanRecord]]:
    """The spans as the services' batch processors send them: each service its own spans in
    the order they ended, 512 at a time, the batches arriving in the order they filled (so
    a callee's SERVER span usually comes before its caller's CLIENT span)."""
    by_service: dict[str, list[SpanRecord]] = {}
    for trace in traces:
        for record in trace:
            by_service.setdefault(record.service, []).append(record)
    out = []
    for spans in by_service.values():
        spans.sort(key=lambda r: r.end_ns)
        out += [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    out.sort(key=lambda batch: batch[-1].end_ns)
    return out


def fill(path: Path, sent: list[list[SpanRecord]], traces: int, with_graph: bool) -> float:
    """Write the batches; the CPU seconds the writes took (steadier than wall time on a
    shared machine)."""
    store = (TraceStore if with_graph else StoreWithoutGraph)(path, Limits(traces, 10**12))
    took = 0.0
    for batch in sent:
        started = time.process_time()
        store.write(batch)
        took += time.process_time() - started
    store.close()
    return took


async def timed(
    client: httpx.AsyncClient, params: dict[str, str], rounds: int
) -> tuple[float, list[dict[str, object]]]:
    """The median latency in ms, and the edges."""
    times = []
    edges = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = await client.get("/api/dependencies", params=params)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        edges = response.json()["data"]
    return statistics.median(times) * 1000, edges


def ingest_cost(data: Path, clones: list[list[SpanRecord]], fills: int) -> Path:
    """Fill stores with and without the service graph's table, alternating, print the
    write times; the first store with it is kept for the queries."""
    total = sum(len(t) for t in clones)
    sent = batches(clones)
    writes: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(fills):
        for with_graph in (True, False):
            path = data / f"fill-{with_graph}-{round_}.db"
            writes[with_graph].append(fill(path, sent, len(clones), with_graph))
            if not (with_graph and round_ == 0):
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
    for with_graph, label in ((False, "without"), (True, "with")):
        best = min(writes[with_graph])
        print(
            f"write {total:,} spans {label} the service graph's table and index: "
            f"{best:.1f} s of CPU, {best / total * 1e6:.1f} µs per span "
            f"(best of {len(writes[with_graph])})"
        )
    return data / "fill-True-0.db"


async def query_latency(path: Path, traces: int, now_ns: int, rounds: int) -> None:
    store = TraceStore(path, Limits(traces, 10**12))
    stats = store.stats()
    print(f"store: {stats['traces_stored']:,} traces, {stats['spans_stored']:,} spans")
    transport = httpx.ASGITransport(app=create_query_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        end_ms = str(now_ns // 10**6)
        for label, params in (
            ("whole store (default 24 h lookback)", {"endTs": end_ms}),
            ("last 5 minutes", {"endTs": end_ms, "lookback": str(5 * 60 * 1000)}),
        ):
            ms, edges = await timed(client, params, rounds)
            print(f"/api/dependencies, {label}: {ms:.1f} ms (median of {rounds})")
            for edge in edges:
                print(
                    f"  {edge['parent']} → {edge['child']}: {edge['callCount']:,} calls, "
                    f"{edge['errorCount']:,} failed, p99 {edge['p99Ms']} ms"
                )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--orders", type=float, default=15, help="seconds of orders to record")
    parser.add_argument("--fills", type=int, default=2, help="stores filled each way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deps-") as tmp:
        data = Path(tmp)
        traces = asyncio.run(record(args.orders, data))
        spans = sum(len(t) for t in traces)
        print(f"{len(traces)} recorded traces, {spans / len(traces):.1f} spans each")
        now_ns = time.time_ns()
        clones = copies(traces, args.traces, now_ns)
        path = ingest_cost(data, clones, args.fills)
        asyncio.run(query_latency(path, args.traces, now_ns, args.rounds))
    print(f"(load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
