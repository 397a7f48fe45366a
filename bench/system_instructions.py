"""Instructions per order of the running system: the four services and the viewer, each
its own process as ``ordersim up`` starts them, counted by valgrind's callgrind.

    .venv/bin/python bench/system_instructions.py [--orders 40]
    .venv/bin/python bench/system_instructions.py --trees \
        ".+OTEL_SDK_DISABLED=true,.+OTEL_TRACES_SAMPLER=parentbased_always_off,."

``bench/overhead.py`` measures throughput and ``bench/cpu_per_order.py`` CPU time; on a
shared two-core machine both swing by 10-15 % from round to round, more than the few per
cent that 1 % sampling costs. ``bench/order_calls.py --instructions`` counts instructions,
which do not swing, but of the four services in one process, without uvicorn, aiohttp or
sockets. Here the real processes are counted. Each runs under ``valgrind
--tool=callgrind`` with counting off while it starts and warms up (about 6 times slower;
50 times with counting on). Once the system is idle, counting is switched on in every
process for :data:`IDLE_COUNTED` seconds of the idle system (dump 1: what an idle system
runs, uvicorn's ticks, the span processor's timer; the order service's compensation
worker, which polls every second, is put off for the count, see :data:`SLOW`); then the
load generator's order mix (seed 0) is sent one order at a time, and the system is left
to go idle again (the confirmations' notifications done, the spans exported and stored
by the viewer; dump 2). A process's count per order is dump 2 less its idle rate over
dump 2's seconds, over the orders.

The count is of user space alone. The kernel's work (sockets, the synced commits) is
about the same with tracing or without, so a ratio here overstates tracing's share of
the CPU; and instructions are not time. What the counts give is exact: which variant
runs more, where, and by how much, whatever else the machine runs.

Each variant (``PATH+NAME=VALUE+…``, as cpu_per_order.py's ``--trees``; the variables go
on top of bench/overhead.py's "100% sampled": traces alone, the viewer running) runs
once: the same count twice gave 24.59 and 24.61 M instructions an order untraced, 25.97
and 25.88 unsampled (with the compensation worker's poll counted, runs differed by up to
0.3 M, see :data:`SLOW`). With the three default variants, 1 % sampling's cost is
computed as 99 orders of the unsampled variant and one of the sampled: what
``parentbased_traceidratio`` at 0.01 does on average, without depending on which few of
40 random trace ids it would sample. When the system's two cores are busy, throughput
goes as 1 / work per order: the last column is the throughput ratio that this work alone
would allow.

About a minute a variant for 40 orders on the two-core machine. ``--keep DIR`` keeps
callgrind's files for ``callgrind_annotate`` (which is how a CA bundle parsed on the event
loop every 30 s showed itself: :func:`common.http.tls_context`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu_per_order import SERVICES, VIEWER, TreeSystem, Variant  # noqa: E402
from bench.order_calls import (  # noqa: E402
    CALLGRIND,
    VALGRIND_MISSING,
    callgrind_control,
    callgrind_totals,
    has_valgrind,
)
from bench.overhead import TIMES  # noqa: E402
from ordersim.load import Catalogue, OrderMix  # noqa: E402

DEFAULT_TREES = ".+OTEL_SDK_DISABLED=true,.+OTEL_TRACES_SAMPLER=parentbased_always_off,."
WARMUP_ORDERS = 30
#: Under callgrind a call takes 50 times as long: the order's deadline and its calls'
#: timeouts are raised so that none fires (a timed-out call would change the work). The
#: compensation worker's poll is put off too: no compensation is deferred here, yet each
#: poll (three statements) is about 5.6 M instructions, nine tenths of an idle order
#: service's count, and taken out as an idle rate over ten polls it moved the order
#: service's count per order by up to 0.3 M from run to run.
SLOW = {
    "ORDER_SERVICE_CALL_TIMEOUT": "60",
    "ORDER_SERVICE_ORDER_DEADLINE": "300",
    "ORDER_SERVICE_COMPENSATION_POLL_INTERVAL": "3600",
}
#: Idle: for this many seconds in a row (longer than the SDK's batch processor waits
#: between exports, OTEL_BSP_SCHEDULE_DELAY's 5 s, so that no span is left to export) …
QUIET = 8
#: … the processes together used less CPU than this a second (under valgrind the five
#: idle processes take 0.1-0.15 s a second; an order or an export keeps a core or two busy
#: for a second or more).
IDLE_CPU = 0.3
#: Seconds of idle system counted, to take what an idle system runs (uvicorn's ticks, the
#: batch processor's timer) out of the orders' count.
IDLE_COUNTED = 10.0


def under_callgrind(system: TreeSystem, out: Path) -> None:
    """Every process of ``system`` under callgrind, counting off, its counts to ``out``."""
    for service in system.services:
        assert service.command is not None
        service.command = [
            *CALLGRIND,
            f"--callgrind-out-file={out / service.name}",
            *service.command,
        ]
    system.env["PYTHONHASHSEED"] = "0"


def control(option: str, pids: dict[str, int]) -> None:
    """``callgrind_control option`` in each of the processes."""
    for pid in pids.values():
        callgrind_control(option, pid)


async def settle(system: TreeSystem, console: Console, limit: float = 300.0) -> None:
    """Wait until the system is idle: :data:`QUIET` seconds in a row under
    :data:`IDLE_CPU` (polled from /proc; a benchmark, not a test). Nothing asks the processes
    anything meanwhile: what they run is what the orders left them to do."""
    deadline = time.monotonic() + limit
    cpu = sum(system.cpu_seconds().values())
    quiet = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = sum(system.cpu_seconds().values())
        busy, cpu = now - cpu, now
        quiet = quiet + 1 if busy < IDLE_CPU else 0
        if quiet >= QUIET:
            return
    console.print(f"[yellow]not idle after {limit:g} s; counting anyway[/]")


async def place(system: TreeSystem, mix: OrderMix, orders: int) -> dict[int, int]:
    """``orders`` orders of the mix, one at a time; their statuses."""
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=600) as client:
        for _ in range(orders):
            _, body = mix.next()
            status = (await client.post(f"{system.order_url}/orders", json=body)).status_code
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


def dumped(path: Path, number: int) -> int:
    """The instructions of callgrind's ``number``-th dump of a process (``PATH.N``)."""
    return callgrind_totals(path.with_name(f"{path.name}.{number}"))


async def count(variant: Variant, orders: int, tmp: Path, console: Console) -> dict[str, float]:
    """Instructions per order of each process of ``variant``, the idle system's taken out."""
    out = tmp / "callgrind"
    out.mkdir(parents=True)
    system = TreeSystem(variant.tree, tmp / "data", "warning", True, dict(variant.env) | SLOW)
    under_callgrind(system, out)
    async with system:
        async with httpx.AsyncClient() as client:
            products = (await client.get(f"{system.inventory_url}/products")).json()
        mix = OrderMix(Catalogue.from_products(products), seed=0)
        await place(system, mix, WARMUP_ORDERS)
        await settle(system, console)
        pids = system.pids()
        control("--instr=on", pids)
        started = time.monotonic()
        await asyncio.sleep(IDLE_COUNTED)
        control("--dump", pids)  # dump 1: idle
        idle_seconds = time.monotonic() - started
        started = time.monotonic()
        statuses = await place(system, mix, orders)
        await settle(system, console)
        control("--dump", pids)  # dump 2: the orders, and idle seconds after them
        busy_seconds = time.monotonic() - started
        control("--instr=off", pids)
    per_order = {}
    for name in (*SERVICES, VIEWER):
        idle_rate = dumped(out / name, 1) / idle_seconds
        per_order[name] = (dumped(out / name, 2) - idle_rate * busy_seconds) / orders
    console.print(
        f"{variant}: {sum(per_order.values()) / 1e6:.2f} M instructions/order, "
        f"statuses {dict(sorted(statuses.items()))}, {busy_seconds:.0f} s counted "
        f"(idle: {sum(dumped(out / n, 1) for n in per_order) / idle_seconds / 1e6:.2f} M/s), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    return per_order


def label(variant: Variant) -> str:
    """The variant's settings, or its tree's name if it has none."""
    return "+".join(f"{k}={v}" for k, v in variant.env) or variant.tree.name


async def measure(args: argparse.Namespace, variants: list[Variant]) -> None:
    console = Console(width=150)
    found: dict[Variant, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, variant in enumerate(variants):
            where = Path(args.keep or tmp) / str(number)
            found[variant] = await count(variant, args.orders, where, console)
    first = sum(found[variants[0]].values())
    rows = {label(v): counts for v, counts in found.items()}
    if len(variants) == 3:  # untraced, unsampled, sampled: 1 % is 99 of one and 1 of the other
        unsampled, sampled = found[variants[1]], found[variants[2]]
        rows[f"1 %: 0.99 {TIMES} the second + 0.01 {TIMES} the third"] = {
            name: 0.99 * unsampled[name] + 0.01 * sampled[name] for name in unsampled
        }
    table = Table(
        title=f"M instructions per order (user space), {args.orders} orders one at a time, "
        "the load generator's mix"
    )
    for column in ("variant", *(s.split("-")[0] for s in (*SERVICES, VIEWER)), "total"):
        table.add_column(column, justify="right")
    table.add_column(f"{TIMES} the first", justify="right")
    table.add_column(f"throughput {TIMES}", justify="right")
    for name, counts in rows.items():
        total = sum(counts.values())
        table.add_row(
            name,
            *(f"{counts[s] / 1e6:.2f}" for s in (*SERVICES, VIEWER)),
            f"{total / 1e6:.2f}",
            f"{total / first:.3f}",
            f"{first / total:.3f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=DEFAULT_TREES, help="as bench/cpu_per_order.py's")
    parser.add_argument("--orders", type=int, default=40, help="orders counted per variant")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep callgrind's files in DIR/N/callgrind (the Nth variant), for "
        "callgrind_annotate: dump 1 is the idle system, dump 2 the orders",
    )
    args = parser.parse_args()
    if not has_valgrind():
        parser.error(VALGRIND_MISSING)
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        parser.error(f"--keep: {args.keep} is not empty")
    try:
        variants = [Variant.parse(t) for t in args.trees.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(measure(args, variants))


if __name__ == "__main__":
    main()
