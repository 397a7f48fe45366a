"""Ingest rate of the embedded trace viewer, in spans/s.

Starts ``python -m trace_viewer`` on free ports, then POSTs pre-encoded OTLP protobuf
batches (made by the SDK's own encoder from order-shaped traces, unique ids in every
batch) from several concurrent connections for a fixed time, and prints the rate at
which spans were stored (from the viewer's /api/stats) and the viewer's CPU time per span
(from /proc: steadier than the rate on a shared machine), medians of the rounds.

    .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3] [--batch 512] [--connections 4]
                                     [--invalid-utf8] [--by-service]

``--invalid-utf8`` breaks the UTF-8 of one span name in every batch, so every request takes
the lenient decode (trace_viewer/lenient.py) instead of the strict fast path.

``--by-service`` sends each batch as one request per service, its spans of the batch's
traces, one after the other: as the services export, each its own part of a trace, so
that a trace arrives in four requests instead of one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import topology
from ordersim.testing.processes import running_viewer

SERVICES = [service.name for service in topology.SERVICES]


def order_like_spans(
    count: int, resource: Callable[[str], Resource] | None = None
) -> list[ReadableSpan]:
    """Traces shaped like an order: a server span per service with children and attributes;
    each service's resource ``resource(service)``, or its name alone."""
    memory = InMemorySpanExporter()
    providers = []
    for service in SERVICES:
        provider = TracerProvider(
            resource=resource(service) if resource else Resource.create({"service.name": service}),
            id_generator=RandomIdGenerator(),
        )
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(provider)
    while len(memory.get_finished_spans()) < count:
        order = providers[0].get_tracer("bench")
        with (
            order.start_as_current_span(
                "POST /orders",
                attributes={
                    "http.request.method": "POST",
                    "http.route": "/orders",
                    "url.path": "/orders",
                    "http.response.status_code": 201,
                    "server.address": "127.0.0.1",
                    "server.port": 8000,
                },
            ),
            order.start_as_current_span("place_order", attributes={"shop.order.id": "ord_1"}) as s,
        ):
            s.add_event("reserved")
            for provider in providers[1:]:
                tracer = provider.get_tracer("bench")
                with tracer.start_as_current_span(
                    "POST /x",
                    attributes={
                        "http.request.method": "POST",
                        "http.response.status_code": 200,
                    },
                ):
                    for _ in range(3):
                        with tracer.start_as_current_span(
                            "INSERT db",
                            attributes={
                                "db.system.name": "sqlite",
                                "db.query.text": "INSERT INTO t (a, b) VALUES (?, ?)",
                            },
                        ):
                            pass
    return list(memory.get_finished_spans())[:count]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh(bodies: list[bytes], trace_ids: list[bytes]) -> list[bytes]:
    """The same batch (its requests) under new trace ids, so every request stores new spans,
    not duplicates."""
    for trace_id in trace_ids:
        new = random.randbytes(16)
        bodies = [body.replace(trace_id, new) for body in bodies]
    return bodies


async def blast(
    endpoint: str, bodies: list[tuple[list[bytes], list[bytes]]], seconds: float, connections: int
) -> int:
    sent = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections), timeout=30
    ) as client:

        async def worker(offset: int) -> None:
            nonlocal sent
            i = offset
            while time.monotonic() < deadline:
                for body in fresh(*bodies[i % len(bodies)]):
                    response = await client.post(
                        endpoint, content=body, headers={"content-type": "application/x-protobuf"}
                    )
                    response.raise_for_status()
                    sent += 1
                i += connections

        await asyncio.gather(*(worker(n) for n in range(connections)))
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512, help="spans per request (BSP default)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--invalid-utf8", action="store_true", help="one span name per batch not UTF-8"
    )
    parser.add_argument(
        "--by-service", action="store_true", help="a request per service's part of a batch"
    )
    args = parser.parse_args()

    random.seed(1)
    print(f"encoding batches of {args.batch} spans …", flush=True)
    bodies = []
    for _ in range(20):
        spans = order_like_spans(args.batch)
        trace_ids = list({s.context.trace_id.to_bytes(16, "big") for s in spans if s.context})
        parts = [spans]
        if args.by_service:
            by_resource: dict[int, list[ReadableSpan]] = {}
            for span in spans:
                by_resource.setdefault(id(span.resource), []).append(span)
            parts = list(by_resource.values())
        encoded = [encode_spans(part).SerializeToString() for part in parts]
        if args.invalid_utf8:  # the same length: the message stays well formed
            first = next(i for i, body in enumerate(encoded) if b"POST /orders" in body)
            encoded[first] = encoded[first].replace(
                b"POST /orders", b"POST /\xff\xfe\xfd\xfc\xfb\xfa", 1
            )
        bodies.append((encoded, trace_ids))
    rates, costs = [], []
    with tempfile.TemporaryDirectory() as data, running_viewer(Path(data)) as viewer:
        for round_ in range(1, args.rounds + 1):
            before = httpx.get(f"{viewer.ui}/api/stats").json()["spans_received"]
            cpu_before = cpu_seconds(viewer.pid)
            started = time.monotonic()
            requests = asyncio.run(
                blast(viewer.traces_endpoint, bodies, args.seconds, args.connections)
            )
            elapsed = time.monotonic() - started
            received = httpx.get(f"{viewer.ui}/api/stats").json()["spans_received"] - before
            cpu = cpu_seconds(viewer.pid) - cpu_before
            rates.append(received / elapsed)
            costs.append(cpu / received * 1e6)
            print(
                f"round {round_}: {requests} requests, {received} spans in {elapsed:.1f}s "
                f"= {received / elapsed:,.0f} spans/s, {costs[-1]:.1f} µs viewer CPU per span",
                flush=True,
            )
    print(
        f"median ingest rate: {statistics.median(rates):,.0f} spans/s, "
        f"{statistics.median(costs):.1f} µs viewer CPU per span "
        f"(batch {args.batch}{', by service' if args.by_service else ''}, "
        f"{args.connections} connections)"
    )


if __name__ == "__main__":
    main()
