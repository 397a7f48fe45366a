"""How many retry traces one failed order leaves while payment stays down, with the
default backoff of deferred compensations (base 5 s, cap 300 s, equal jitter).

    .venv/bin/python bench/compensation_retries.py [--orders 20] [--outage 40 600 3600]

Runs the four services in this one process with payment down and places ``--orders``
orders: each fails and defers its refund. Then it moves the order service's clock through
the outage one poll interval (1 s) at a time and runs the worker's poll at every step, as
its loop would, without waiting. Per outage length it prints the retry spans per order
(min, median, max) and the longest wait between two attempts. Without backoff (the
previous version: one retry every 5 s) a 40 s outage meant 8 retries per order.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ordersim.samples import order_body
from ordersim.testing import FaultyTransport, down, in_process_system

#: One line of one SKU: what the benchmark has always ordered.
ONE_LINE = [("SKU-0001", 2)]
POLL = 1.0  # ORDER_SERVICE_COMPENSATION_POLL_INTERVAL's default


async def measure(orders: int, outage: int) -> tuple[list[int], float]:
    """Retry spans per order during ``outage`` seconds, and the longest wait between two."""
    exporter = InMemorySpanExporter()
    with tempfile.TemporaryDirectory() as tmp:
        # No retries inside one attempt: they are CLIENT spans of the same trace, and their
        # real backoff sleeps would only make this run longer.
        async with in_process_system(
            Path(tmp), exporter, wrap={"payment": down()}, call_retries=0
        ) as system:
            for _ in range(orders):
                response = await system.order.post("/orders", json=order_body(ONE_LINE))
                assert response.status_code == 503, response.text
            exporter.clear()
            attempts: dict[str, list[float]] = defaultdict(list)  # order -> outage seconds
            seen = 0
            for step in range(1, int(outage / POLL) + 1):
                system.clock.advance(POLL)
                await system.compensations.poll()
                spans = exporter.get_finished_spans()
                for span in spans[seen:]:
                    if span.name == "retry_refund_payment" and span.attributes:
                        attempts[str(span.attributes["shop.order.id"])].append(step * POLL)
                seen = len(spans)
            assert (await system.compensations.backlog.summary()).pending == orders
            payment = system.transports["payment"]
            assert isinstance(payment, FaultyTransport)
            payment.enabled = False
            assert await system.retry_compensations() == 0  # nothing was dropped
    gaps = [b - a for times in attempts.values() for a, b in pairwise(times)]
    return [len(times) for times in attempts.values()] or [0], max(gaps, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--outage", type=int, nargs="+", default=[40, 600, 3600])
    parser.add_argument("--seed", type=int, default=1, help="seed of the jitter")
    args = parser.parse_args()
    random.seed(args.seed)
    logging.getLogger("order_service").setLevel(logging.ERROR)  # one warning per deferral
    print(f"{args.orders} orders, each deferring a refund; payment down for the whole outage")
    print(f"{'outage':>8}  {'retries per order (min / median / max)':>40}  longest wait")
    for outage in args.outage:
        counts, longest = asyncio.run(measure(args.orders, outage))
        spread = f"{min(counts)} / {statistics.median(counts):g} / {max(counts)}"
        print(f"{outage:>7}s  {spread:>40}  {longest:.0f} s")


if __name__ == "__main__":
    main()
