"""How long the cyclic garbage collector stops a service, with and without freezing the
start-up heap (what ``common.app.serve`` does before it starts serving).

    .venv/bin/python bench/gc_pauses.py [--orders 1000]

Runs the four services in this one process (the tests' in-process system, traced, spans
discarded as they end), places ``--orders`` orders one after another, and times every
collection with ``gc.callbacks``: count, total and longest pause of each generation.
First without freezing, then after ``gc.freeze()``. One process holds all four apps, so
a full collection here walks roughly four services' start-up heaps at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ordersim.samples import order_body
from ordersim.testing import in_process_system

#: One line of one SKU: what the benchmark has always ordered.
ONE_LINE = [("SKU-0001", 2)]
WARMUP = 50  # orders before the clock starts (SQLAlchemy's and FastAPI's caches)


class Pauses:
    """Every collection's duration in ms, by generation, while ``recording``."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = defaultdict(list)
        self.recording = False
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.recording:
            pause = (time.perf_counter() - self._started) * 1000
            self.by_generation[info["generation"]].append(pause)


async def measure(freeze: bool, orders: int) -> Pauses:
    exporter = InMemorySpanExporter()
    pauses = Pauses()
    with tempfile.TemporaryDirectory() as tmp:
        async with in_process_system(Path(tmp), exporter) as system:

            async def place() -> None:
                response = await system.order.post("/orders", json=order_body(ONE_LINE))
                assert response.status_code == 201, response.text
                exporter.clear()  # spans kept in memory would grow the heap being measured

            for _ in range(WARMUP):
                await place()
            if freeze:
                gc.collect()
                gc.freeze()
            gc.callbacks.append(pauses)
            pauses.recording = True
            try:
                for _ in range(orders):
                    await place()
            finally:
                gc.callbacks.remove(pauses)
                gc.unfreeze()
            await system.drain()
    return pauses


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    args = parser.parse_args()
    for freeze in (False, True):
        pauses = await measure(freeze, args.orders)
        print("after gc.freeze():" if freeze else "without freezing:")
        for generation, times in sorted(pauses.by_generation.items()):
            print(
                f"  generation {generation}: {len(times)} collections, "
                f"{sum(times):.0f} ms in all, longest {max(times):.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
