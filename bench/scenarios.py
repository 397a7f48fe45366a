"""What each planted scenario (docs/scenarios.md) costs, with it off and on, and the figure
in its spans that gives it away: the four apps in this process (``ordersim.testing``), the
same orders placed on a fresh system with the scenario off and then on, round after round.

    .venv/bin/python bench/scenarios.py [--scenario NAME ...] [--orders 40] \
        [--concurrency 8] [--rounds 3]

For each scenario and state, medians over the rounds of:

- the order's latency (``POST /orders``, in process: no network, so a scenario whose cost
  is a round trip shows less here than over a real one), p50 and p99;
- ``sequential_calls``: how long ``quote_shipping`` starts after ``reserve_stock`` (0 when
  they start together);
- ``pool_of_one``: how long each ``check_stock`` waits before its ``SELECT`` starts (the wait
  for the one connection), p50 and p99, with ``--concurrency`` orders at once;
- ``n_plus_one``: the catalogue (``GET /products``, 20 products), its latency and its
  statements;
- ``slow_card_range``: ``authorize_card`` for a card in the slow range (5555…4444) and for
  the default card.

The figures are this machine's, and vary with what else runs on it: compare off with on
within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.scenarios import REGISTRY  # noqa: E402
from ordersim import samples  # noqa: E402
from ordersim.testing import System, in_process_system  # noqa: E402
from payment_service.cards import APPROVED  # noqa: E402

SLOW_CARD = "5555555555554444"
Figures = dict[str, float]


def ms(ns: int) -> float:
    return ns / 1e6


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    span_id = parent.context.span_id
    return [s for s in spans if s.parent is not None and s.parent.span_id == span_id]


async def orders(system: System, count: int, concurrency: int, card: str) -> list[float]:
    """Place ``count`` orders, ``concurrency`` at a time; their latencies in ms."""
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        response = await system.order.post("/orders", json=samples.order_body(card_number=card))
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 201, response.text

    for _ in range(0, count, concurrency):
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return latencies


def sequential_calls(spans: list[ReadableSpan]) -> Figures:
    gaps = [
        ms(quote.start_time - reserve.start_time)  # type: ignore[operator]
        for reserve, quote in zip(
            by_name(spans, "reserve_stock"), by_name(spans, "quote_shipping"), strict=True
        )
    ]
    return {"quote_shipping starts after reserve_stock, p50 ms": quantile(gaps, 0.5)}


def pool_of_one(spans: list[ReadableSpan]) -> Figures:
    waits = []
    for check in by_name(spans, "check_stock"):
        selects = [s for s in children(spans, check) if s.name.startswith("SELECT")]
        if selects:
            first = min(s.start_time for s in selects)  # type: ignore[type-var]
            waits.append(ms(first - check.start_time))  # type: ignore[operator]
    return {
        "check_stock wait before SELECT, p50 ms": quantile(waits, 0.5),
        "check_stock wait before SELECT, p99 ms": quantile(waits, 0.99),
    }


def slow_card_range(spans: list[ReadableSpan]) -> Figures:
    def authorize(last4: str) -> float:
        durations = [
            ms(s.end_time - s.start_time)  # type: ignore[operator]
            for s in by_name(spans, "authorize_card")
            if (s.attributes or {}).get("shop.payment.card_last4") == last4
        ]
        return quantile(durations, 0.5)

    return {
        "authorize_card, 5555…4444, p50 ms": authorize(SLOW_CARD[-4:]),
        "authorize_card, 4242…4242, p50 ms": authorize(APPROVED[-4:]),
    }


async def one_round(scenario: str, on: bool, args: argparse.Namespace) -> Figures:
    exporter = InMemorySpanExporter()
    with tempfile.TemporaryDirectory(prefix="ordersim-bench-") as data:
        async with in_process_system(
            Path(data), exporter, scenarios={scenario} if on else set()
        ) as system:
            await orders(system, 1, 1, APPROVED)  # first-call costs, not measured
            exporter.clear()
            concurrency = args.concurrency if scenario == "pool_of_one" else 1
            latencies = await orders(system, args.orders, concurrency, APPROVED)
            figures = {
                "order p50 ms": quantile(latencies, 0.5),
                "order p99 ms": quantile(latencies, 0.99),
            }
            if scenario == "slow_card_range":
                await orders(system, max(1, args.orders // 4), 1, SLOW_CARD)
            if scenario == "n_plus_one":
                exporter.clear()
                catalogue = []
                for _ in range(args.orders):
                    started = time.perf_counter()
                    (await system.inventory.get("/products")).raise_for_status()
                    catalogue.append((time.perf_counter() - started) * 1000)
                spans = list(exporter.get_finished_spans())
                selects = [
                    select
                    for server in by_name(spans, "GET /products")
                    for select in children(spans, server)
                    if select.name.startswith("SELECT")
                ]
                figures["GET /products (catalogue) p50 ms"] = quantile(catalogue, 0.5)
                figures["SELECTs per catalogue request"] = len(selects) / args.orders
            spans = list(exporter.get_finished_spans())
    telltale: dict[str, Callable[[list[ReadableSpan]], Figures]] = {
        "sequential_calls": sequential_calls,
        "pool_of_one": pool_of_one,
        "slow_card_range": slow_card_range,
    }
    if scenario in telltale:
        figures |= telltale[scenario](spans)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=[str(s) for s in REGISTRY])
    parser.add_argument("--orders", type=int, default=40, help="orders per round and state")
    parser.add_argument("--concurrency", type=int, default=8, help="for pool_of_one")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for scenario in args.scenario or [str(s) for s in REGISTRY]:
        rounds: dict[bool, list[Figures]] = {False: [], True: []}
        for _ in range(args.rounds):
            for on in (False, True):  # back to back, so that both see the same machine
                rounds[on].append(await one_round(scenario, on, args))
        print(f"\n{scenario} ({args.rounds} rounds of {args.orders} orders, medians)")
        print(f"  {'':52} {'off':>10} {'on':>10}")
        for key in rounds[False][0]:
            off, on_ = (statistics.median(r[key] for r in rounds[state]) for state in (False, True))
            print(f"  {key:52} {off:10.2f} {on_:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
