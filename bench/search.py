"""Search latency of the embedded trace viewer with its store at the retention cap.

1. Real order traces: ``ordersim up`` on free ports and ``ordersim load`` (its weighted mix:
   confirmed orders, declined cards, out-of-stock, invalid bodies) for ``--capture`` seconds;
   the traces the viewer stored are the templates (kept in ``DIR/capture``).
2. The store: ``python -m trace_viewer`` with ``TRACE_VIEWER_MAX_TRACES`` (20,000) is filled
   through its OTLP/HTTP intake with copies of the templates: each copy a new trace id, a new
   order id (``shop.order.id``), its times moved so that the copies follow each other over
   ``--hours``; 10 % more than the cap, so retention has run. ``TRACE_VIEWER_MAX_BYTES`` is
   raised so that the trace count is the bound (20,000 order traces of ~15 kB do not fit in
   the default 256 MiB). Kept in ``DIR/store``: a second run reuses it (``--refill`` not).
3. Each query over HTTP, as the page and clients send it: ``--warmup`` calls, then
   ``--repeat`` timed ones, one at a time; the median and p99 of each.

    .venv/bin/python bench/search.py [--dir .data/bench-search] [--repeat 200] [--refill]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ordersim.testing.processes import Up, clean_env, free_port, poll, running_viewer, wait_until_up

MAX_TRACES = 20_000
HOUR_NS = 3600 * 10**9
#: (resource, scope, span) of each span of a template trace, serialized.
Template = list[tuple[bytes, bytes, bytes]]


def capture(directory: Path, seconds: float, rate: float) -> Path:
    """Real traces from ``ordersim up`` under ``ordersim load``; the viewer's database."""
    database = directory / "data" / "traces.db"
    if database.exists():
        return database
    directory.mkdir(parents=True, exist_ok=True)
    ports = {
        name: str(free_port())
        for name in (
            "ORDER_SERVICE_PORT",
            "INVENTORY_SERVICE_PORT",
            "PAYMENT_SERVICE_PORT",
            "SHIPPING_SERVICE_PORT",
            "TRACE_VIEWER_OTLP_PORT",
            "TRACE_VIEWER_GRPC_PORT",
            "TRACE_VIEWER_UI_PORT",
        )
    }
    env = clean_env() | ports | {"ORDERSIM_DATA_DIR": str(directory / "data")}
    up = Up(env, directory / "up.log")
    order_url = f"http://127.0.0.1:{ports['ORDER_SERVICE_PORT']}"
    ui = f"http://127.0.0.1:{ports['TRACE_VIEWER_UI_PORT']}"
    try:
        wait_until_up(up, order_url)
        print(f"capturing real traces: ordersim load --rate {rate} for {seconds:g} s …", flush=True)
        load = [sys.executable, "-m", "ordersim", "load", "--rate", str(rate)]
        load += ["--duration", str(seconds), "--url", order_url, "--endpoint", ui]
        asyncio.run(_run(load, env))

        def settled() -> bool:  # no span arrived for a second
            before = httpx.get(f"{ui}/api/stats").json()["spans_stored"]
            time.sleep(1)
            return bool(httpx.get(f"{ui}/api/stats").json()["spans_stored"] == before)

        poll(settled, 60, "the last spans to arrive")
    finally:
        up.stop()
    return database


async def _run(argv: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    if await process.wait() != 0:
        raise SystemExit(f"{argv} failed")


def templates(database: Path) -> list[Template]:
    """The complete order traces of the capture (their root is POST /orders)."""
    with sqlite3.connect(database) as conn:
        roots = [
            row[0]
            for row in conn.execute(
                "SELECT trace_id FROM traces WHERE root_name = 'POST /orders' ORDER BY start_ns"
            )
        ]
        found = []
        for trace_id in roots:
            found.append(
                conn.execute(
                    "SELECT r.data, sc.data, s.data FROM spans s JOIN blobs r ON r.id = "
                    "s.resource_id JOIN blobs sc ON sc.id = s.scope_id WHERE s.trace_id = ?",
                    (trace_id,),
                ).fetchall()
            )
    return found


def copy(template: Template, start_ns: int, rng: random.Random) -> list[tuple[bytes, bytes, Span]]:
    """The template as a new trace starting at ``start_ns``, with a new order id."""
    spans = [(r, sc, Span.FromString(data)) for r, sc, data in template]
    shift = start_ns - min(s.start_time_unix_nano for _, _, s in spans)
    trace_id = rng.randbytes(16)
    order_id = f"ord_{rng.getrandbits(64):016x}"
    for _, _, span in spans:
        span.trace_id = trace_id
        span.start_time_unix_nano += shift
        span.end_time_unix_nano += shift
        for event in span.events:
            event.time_unix_nano += shift
        for kv in span.attributes:
            if kv.key == "shop.order.id":
                kv.value.string_value = order_id
    return spans


def request(spans: list[tuple[bytes, bytes, Span]]) -> bytes:
    grouped: dict[bytes, dict[bytes, list[Span]]] = defaultdict(lambda: defaultdict(list))
    for resource, scope, span in spans:
        grouped[resource][scope].append(span)
    message = ExportTraceServiceRequest()
    for resource, scopes in grouped.items():
        rs = message.resource_spans.add(resource=Resource.FromString(resource))
        for scope, members in scopes.items():
            rs.scope_spans.add(scope=InstrumentationScope.FromString(scope), spans=members)
    return bytes(message.SerializeToString())


async def fill(endpoint: str, found: list[Template], count: int, hours: float) -> None:
    rng = random.Random(12)
    step = int(hours * HOUR_NS / count)
    first = time.time_ns() - int(hours * HOUR_NS)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)

    async def produce() -> None:
        batch: list[tuple[bytes, bytes, Span]] = []
        for i in range(count):
            batch += copy(found[i % len(found)], first + i * step, rng)
            if len(batch) >= 512 or i == count - 1:
                await queue.put(request(batch))
                batch = []
            if i % 2000 == 0:
                print(f"  {i:,} / {count:,} traces", flush=True)
        for _ in range(4):
            await queue.put(None)

    async def send(client: httpx.AsyncClient) -> None:
        while (body := await queue.get()) is not None:
            response = await client.post(
                endpoint, content=body, headers={"content-type": "application/x-protobuf"}
            )
            response.raise_for_status()

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(produce(), *(send(client) for _ in range(4)))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def queries(ui: str) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path, parameters): the two the target is about first, then others."""
    newest = httpx.get(f"{ui}/api/summaries", params={"limit": "1"}).json()["data"][0]
    end_us = int(newest["startTimeUnixNano"]) // 1000
    some_order = httpx.get(
        f"{ui}/api/summaries",
        params={"service": "order-service", "operation": "place_order", "limit": "500"},
    ).json()["data"][-1]["traceID"]
    spans = httpx.get(f"{ui}/api/v3/traces/{some_order}").json()["result"]["resourceSpans"]
    order_id = next(
        kv["value"]["stringValue"]
        for rs in spans
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
        for kv in span.get("attributes", [])
        if kv["key"] == "shop.order.id"
    )
    v3_window = {
        "query.startTimeMin": _rfc3339(end_us - 60_000_000),
        "query.startTimeMax": _rfc3339(end_us),
        "query.serviceName": "order-service",
        "query.searchDepth": "20",
    }
    return [
        ("default listing (/api/summaries, limit 50)", "/api/summaries", {}),
        (
            "tag http.response.status_code=402",
            "/api/summaries",
            {"tags": json.dumps({"http.response.status_code": "402"})},
        ),
        (
            "tag shop.order.id=<one order>",
            "/api/summaries",
            {"tags": json.dumps({"shop.order.id": order_id})},
        ),
        (
            "tag error=true, service=payment-service",
            "/api/summaries",
            {"tags": json.dumps({"error": "true"}), "service": "payment-service"},
        ),
        ("maxDuration=1us (nothing matches)", "/api/summaries", {"maxDuration": "1us"}),
        (
            "POST /orders, maxDuration=20ms",
            "/api/summaries",
            {"service": "order-service", "operation": "POST /orders", "maxDuration": "20ms"},
        ),
        ("minDuration=100ms", "/api/summaries", {"minDuration": "100ms"}),
        (
            "service+operation payment-service POST /charges",
            "/api/summaries",
            {"service": "payment-service", "operation": "POST /charges"},
        ),
        ("errors only", "/api/summaries", {"error": "true"}),
        ("lookback 15m from the newest", "/api/summaries", {"end": str(end_us), "lookback": "15m"}),
        ("default listing, limit 500 (the plot)", "/api/summaries", {"limit": "500"}),
        (
            "v1 /api/traces service=order-service limit 20 (Jaeger JSON)",
            "/api/traces",
            {"service": "order-service", "limit": "20"},
        ),
        ("v3 /api/traces, 1 min window, searchDepth 20", "/api/v3/traces", v3_window),
    ]


def _rfc3339(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def measure(ui: str, warmup: int, repeat: int) -> None:
    with httpx.Client(base_url=ui, timeout=30) as client:
        for label, path, params in queries(ui):
            for _ in range(warmup):
                client.get(path, params=params).raise_for_status()
            samples = []
            rows = 0
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(path, params=params)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                body = response.json()
                rows = len(body["data"]) if "data" in body else len(body["result"]["resourceSpans"])
            print(
                f"{label:<62} median {statistics.median(samples):7.1f} ms   "
                f"p99 {percentile(samples, 99):7.1f} ms   ({rows} rows)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".data/bench-search"))
    parser.add_argument("--capture", type=float, default=20, help="seconds of ordersim load")
    parser.add_argument("--rate", type=float, default=25, help="orders/s while capturing")
    parser.add_argument("--traces", type=int, default=MAX_TRACES, help="the retention cap")
    parser.add_argument("--hours", type=float, default=3, help="the span of the copies' starts")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--refill", action="store_true", help="build the store again")
    args = parser.parse_args()

    found = templates(capture(args.dir / "capture", args.capture, args.rate))
    store = args.dir / "store"
    filled = (store / "traces.db").exists() and not args.refill
    if args.refill and store.exists():
        for path in store.glob("traces.db*"):
            path.unlink()
    env = {
        "TRACE_VIEWER_MAX_TRACES": str(args.traces),
        "TRACE_VIEWER_MAX_BYTES": str(4 * 2**30),
    }
    with running_viewer(store, **env) as viewer:
        if not filled:
            count = args.traces * 11 // 10
            print(f"filling the store: {count:,} copies of {len(found)} real order traces …")
            started = time.monotonic()
            asyncio.run(fill(viewer.traces_endpoint, found, count, args.hours))
            print(f"  filled in {time.monotonic() - started:.0f} s")
        stats = httpx.get(f"{viewer.ui}/api/stats").json()
        mib = (store / "traces.db").stat().st_size / 2**20
        print(
            f"store: {stats['traces_stored']:,} traces, {stats['spans_stored']:,} spans "
            f"({stats['traces_evicted']:,} evicted so far); traces.db {mib:.0f} MiB"
        )
        measure(viewer.ui, args.warmup, args.repeat)


if __name__ == "__main__":
    main()
