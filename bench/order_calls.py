"""Where tracing's CPU goes in an order, counted: Python calls per order by function,
instructions and CPU per order, of the four services run in one process, untraced and
traced.

    .venv/bin/python bench/order_calls.py [--orders 300] [--rounds 3] [--top 40]
    .venv/bin/python bench/order_calls.py --rounds 0 --callers "builtins.isinstance"
    .venv/bin/python bench/order_calls.py --orders 100 --rounds 0 --instructions 40
    .venv/bin/python bench/order_calls.py --trees \
        ".+OTEL_SDK_DISABLED=true,.+OTEL_TRACES_SAMPLER=parentbased_always_off"
    git archive HEAD~1 | tar -x -C /tmp/before && .venv/bin/python bench/order_calls.py \
        --trees ".+OTEL_SDK_DISABLED=true,/tmp/before+OTEL_TRACES_SAMPLER=parentbased_always_off,\
.+OTEL_TRACES_SAMPLER=parentbased_always_off"

``bench/cpu_per_order.py`` times the real processes; on a shared two-core machine their
CPU per order swings by 10-15 % from round to round, more than the few per cent that
1 % sampling adds. Here each variant (``PATH+NAME=VALUE+…``, as cpu_per_order.py's
``--trees``; the default: untraced, every trace dropped, 1 % sampled) runs in a process of
its own, with the tree's interpreter: ordersim's four services in that process
(:func:`ordersim.testing.in_process_system`, the tests' system: the same apps, clients,
instrumentation and database code; no sockets, no uvicorn or aiohttp), the load
generator's order mix (``ordersim.load.OrderMix``, seed 0) sent one order at a time, each
one's after-response work (the confirmation's notification) drained before the next.
The warm-up's objects are frozen out of the cyclic GC (``gc.freeze()``), as
``common.app.serve`` does.

Figures per order sent:

- **calls**: Python function calls and C built-in calls, counted by ``cProfile`` over
  ``--orders`` orders: a count, within a tenth of a per cent from run to run (the random
  module is seeded, so are the trace ids a ratio sampler decides on), whatever else the
  machine runs. The
  functions whose count differs most from the first variant's are listed, with the
  difference by package: where the extra work of tracing is, line by line
  (``--callers TEXT``: and who made the extra calls of the functions named so);
- **gen0 GCs**: collections of the cyclic GC's youngest generation, one per 700 container
  objects allocated (net): the allocations tracing adds;
- **instructions** (``--instructions ORDERS``): the instructions the CPU ran for ORDERS
  orders, counted by valgrind's callgrind (switched on for the measured orders alone,
  ``PYTHONHASHSEED=0``): within about 1 % from run to run whatever else the machine
  runs (the untraced variant counted 24.16-24.34 M an order in three runs of the same
  code, and the same code counted about 1 % apart from two directories: compare trees
  from paths of the same length), and, unlike a count of calls, weighted by what each
  call does in C
  (SQLAlchemy's event dispatch is few calls and many instructions). About 40 s a variant
  for 40 orders;
- **CPU µs**: this process's CPU time per order (no profiler), median of ``--rounds``
  rounds of ``--orders`` orders, the variants alternated round by round, and each round's
  ratio to the first variant's in the same round; timing still, in one process with no
  network, but as much at the mercy of the machine's other work (±10 %);
- **spans**: spans recorded per order.

``parentbased_always_off`` is what 99 % of orders cost at 1 %: every trace decided unsampled
exactly as the ratio sampler decides the 99 % it drops; 1 % sampling adds a hundredth of a
sampled order's cost on top.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_TREES = (
    ".+OTEL_SDK_DISABLED=true,"
    ".+OTEL_TRACES_SAMPLER=parentbased_always_off,"
    ".+OTEL_TRACES_SAMPLER=parentbased_traceidratio+OTEL_TRACES_SAMPLER_ARG=0.01"
)
#: Traces alone, as bench/overhead.py's configurations.
TRACES_ONLY = {"OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
WARMUP_ORDERS = 60


# -- the child: one variant, in its own process ----------------------------------------------


def function_name(key: tuple[str, int, str]) -> str:
    """A cProfile key as ``package/module.py:line function`` (``~`` for C built-ins)."""
    filename, line, name = key
    if filename == "~":
        return re.sub(r" at 0x[0-9a-f]+", "", name)  # a type's __new__: its address varies
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in filename:
            filename = filename.rsplit(marker, 1)[1]
            if marker.startswith("/lib"):
                filename = filename.split("/", 1)[1]
            break
    else:
        parts = Path(filename).parts
        for i, part in enumerate(parts):
            if part.endswith("_service") or part in ("common", "ordersim"):
                filename = "/".join(parts[i:])
                break
    return f"{filename}:{line} {name}"


#: A command's prefix: run under callgrind, counting nothing until switched on.
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
VALGRIND_MISSING = "valgrind is not installed (Debian: apt-get install valgrind)"


def has_valgrind() -> bool:
    return bool(shutil.which("valgrind") and shutil.which("callgrind_control"))


def callgrind_control(option: str, pid: int | None = None) -> None:
    """Switch callgrind's counting (``--instr=on``), or dump its counts (``--dump``), in
    process ``pid``, by default this one (it runs under :data:`CALLGRIND`)."""
    target = str(os.getpid() if pid is None else pid)
    subprocess.run(["callgrind_control", option, target], check=True, capture_output=True)


def callgrind_totals(path: Path) -> int:
    """The instructions counted in one of callgrind's output files (a dump, or the end)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


async def child(tree: Path, orders: int, mode: str) -> dict[str, Any]:
    import cProfile
    import logging
    import pstats
    import random

    random.seed(0)  # trace and span ids, hence the ratio sampler's decisions
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from common.telemetry import configure_logging
    from ordersim.load import Catalogue, OrderMix
    from ordersim.testing import in_process_system

    exporter = InMemorySpanExporter()
    with tempfile.TemporaryDirectory() as data:
        async with in_process_system(Path(data), exporter) as system:
            configure_logging("warning")  # as bench/cpu_per_order.py runs the services
            logging.getLogger("httpx").setLevel(logging.WARNING)
            products = (await system.inventory.get("/products")).json()
            mix = OrderMix(Catalogue.from_products(products), seed=0)

            async def place(n: int) -> collections.Counter[int]:
                statuses: collections.Counter[int] = collections.Counter()
                for _ in range(n):
                    _, body = mix.next()
                    statuses[(await system.order.post("/orders", json=body)).status_code] += 1
                    await system.drain()
                return statuses

            await place(WARMUP_ORDERS)
            gc.collect()
            gc.freeze()
            exporter.clear()
            gcs_before = [g["collections"] for g in gc.get_stats()]
            profiler = cProfile.Profile() if mode == "calls" else None
            cpu = time.process_time()
            if profiler is not None:
                profiler.enable()
            if mode == "instructions":  # under callgrind, which counts from here
                callgrind_control("--instr=on")
            statuses = await place(orders)
            if mode == "instructions":
                callgrind_control("--instr=off")
            if profiler is not None:
                profiler.disable()
            cpu = time.process_time() - cpu
            gcs = [g["collections"] - b for g, b in zip(gc.get_stats(), gcs_before, strict=True)]
            result: dict[str, Any] = {
                "cpu_us": cpu * 1e6 / orders,
                "gcs": [n / orders for n in gcs],
                "spans": len(exporter.get_finished_spans()) / orders,
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
            }
            if profiler is not None:
                stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
                calls: dict[str, float] = collections.defaultdict(float)
                callers: dict[str, dict[str, float]] = collections.defaultdict(
                    lambda: collections.defaultdict(float)
                )
                for key, (_, total, _own, _cumulative, by_caller) in stats.items():
                    function = function_name(key)
                    calls[function] += total / orders
                    for caller, (_, from_caller, *_rest) in by_caller.items():
                        callers[function][function_name(caller)] += from_caller / orders
                result["calls"] = calls
                result["callers"] = callers
            return result


# -- the parent: alternate the variants, compare ---------------------------------------------


def run_child(variant: Any, orders: int, mode: str) -> dict[str, Any]:
    from bench.cpu_per_order import python_of
    from ordersim.testing.processes import clean_env

    env = clean_env() | TRACES_ONLY | {"PYTHONHASHSEED": "0"} | dict(variant.env)
    counts = Path(tempfile.mkdtemp()) / "callgrind.out"
    command = [
        *([*CALLGRIND, f"--callgrind-out-file={counts}"] if mode == "instructions" else []),
        str(python_of(variant.tree)),
        "-I",
        str(Path(__file__).resolve()),
        "--child",
        str(variant.tree),
        "--orders",
        str(orders),
        "--mode",
        mode,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    if mode == "instructions":
        found["instructions"] = callgrind_totals(counts) / orders
        shutil.rmtree(counts.parent)
    return found


def package_of(function: str) -> str:
    where, colon, _ = function.partition(":")
    return where.split("/", 1)[0] if colon else "C built-ins"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=DEFAULT_TREES, help="as bench/cpu_per_order.py's")
    parser.add_argument("--orders", type=int, default=300, help="orders per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (0: calls only)")
    parser.add_argument("--top", type=int, default=40, help="functions listed per variant")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="ORDERS",
        help="also count the instructions the CPU runs for ORDERS orders, under valgrind's "
        "callgrind (about 40 s a variant for 20 orders)",
    )
    parser.add_argument(
        "--callers",
        metavar="TEXT",
        help="also list, for each function whose name contains TEXT, its calls per order "
        "by caller, more than in the first variant",
    )
    parser.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions and not has_valgrind():
        parser.error(VALGRIND_MISSING)
    if args.child:
        sys.path.insert(0, args.child)  # the tree's packages, before an editable install's
        os.chdir(args.child)
        print(json.dumps(asyncio.run(child(Path(args.child), args.orders, args.mode))))
        return

    sys.path.insert(0, str(ROOT))
    from bench.cpu_per_order import Variant

    variants = [Variant.parse(t) for t in args.trees.split(",")]
    first = variants[0]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    counted = {v: run_child(v, args.orders, "calls") for v in variants}
    executed = (
        {v: run_child(v, args.instructions, "instructions") for v in variants}
        if args.instructions
        else {}
    )
    timed: dict[Any, list[dict[str, Any]]] = {v: [] for v in variants}
    for number in range(args.rounds):
        for variant in variants if number % 2 == 0 else variants[::-1]:
            timed[variant].append(run_child(variant, args.orders, "cpu"))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    base = counted[first]["calls"]
    for variant in variants:
        found = counted[variant]
        total = sum(found["calls"].values())
        gen0, gen1, gen2 = found["gcs"]
        line = (
            f"\n{variant}: {total:,.1f} calls/order, gen0/1/2 GCs per 100 orders "
            f"{gen0 * 100:.1f}/{gen1 * 100:.1f}/{gen2 * 100:.1f}, "
            f"spans/order {found['spans']:.2f}, statuses {found['statuses']}"
        )
        if variant in executed:
            instructions = executed[variant]["instructions"]
            line += f"\n  instructions/order {instructions / 1e6:,.2f} M"
            if variant != first:
                ratio = instructions / executed[first]["instructions"]
                line += f", {ratio:.3f} of the first's"
        if timed[variant]:
            cpu = [r["cpu_us"] for r in timed[variant]]
            line += (
                f"\n  CPU µs/order {statistics.median(cpu):,.0f} ({min(cpu):,.0f}-{max(cpu):,.0f})"
            )
            if variant != first:
                ratios = [
                    r["cpu_us"] / f["cpu_us"]
                    for r, f in zip(timed[variant], timed[first], strict=True)
                ]
                line += (
                    f", / first round by round {statistics.median(ratios):.3f} "
                    f"({min(ratios):.3f}-{max(ratios):.3f})"
                )
        print(line)
        if variant == first:
            continue
        calls = found["calls"]
        diff = {f: calls.get(f, 0.0) - base.get(f, 0.0) for f in calls.keys() | base.keys()}
        print(f"  calls/order more than {first}: {total - sum(base.values()):+,.1f}; by package:")
        packages: collections.Counter[str] = collections.Counter()
        for function, more in diff.items():
            packages[package_of(function)] += more
        for package, more in sorted(packages.items(), key=lambda p: -abs(p[1]))[:12]:
            print(f"  {more:+10.1f}  {package}")
        print("  by function:")
        for function, more in sorted(diff.items(), key=lambda d: -abs(d[1]))[: args.top]:
            print(f"  {more:+10.1f}  {function}")
        if args.callers:
            base_callers = counted[first]["callers"]
            for function in sorted(f for f in diff if args.callers in f):
                mine, theirs = found["callers"].get(function, {}), base_callers.get(function, {})
                by_caller = {c: mine.get(c, 0.0) - theirs.get(c, 0.0) for c in mine.keys() | theirs}
                print(f"  {function}, {diff[function]:+.1f} an order, by caller:")
                for caller, more in sorted(by_caller.items(), key=lambda d: -abs(d[1]))[:12]:
                    if abs(more) >= 0.05:
                        print(f"    {more:+10.1f}  {caller}")


if __name__ == "__main__":
    main()
