"""What tracing costs: the same system, started in each configuration, measured with the
same load generator in one run on this machine.

    .venv/bin/python bench/overhead.py [--seconds 8] [--rounds 5] [--rate 50] [--markdown]

Each round starts every configuration in turn (alternating, so that drift in a shared
machine's speed hits them alike) and measures its throughput at saturation (closed loop,
16 clients) and its p50/p99 and each process's CPU per order at a fixed rate (open loop;
``--rate``, or half the first untraced saturation; the seed configuration, far below any
such rate, gets its saturation only). Ratios to untraced are taken within each round and
their median reported, with the spread over the rounds. In the last round, 100 %
sampling also runs at 80 % of its median saturation so far and checks that no span was
dropped: no "Queue full" from the SDK's batch processor and every sampled trace complete
in the viewer. With --wrk it compares the generator's top rate with wrk's against the
same endpoint. ``--markdown`` prints the README's table.

The defaults (5 rounds, 8 s) take about 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import topology  # noqa: E402
from inventory_service.settings import InventorySettings  # noqa: E402
from order_service.settings import OrderSettings  # noqa: E402
from ordersim.load import LoadOptions, LoadReport, run_load  # noqa: E402
from ordersim.testing.processes import clean_env, free_port  # noqa: E402
from ordersim.up import Service, StartupError, Supervisor  # noqa: E402
from payment_service.settings import PaymentSettings  # noqa: E402
from shipping_service.settings import ShippingSettings  # noqa: E402
from trace_viewer.settings import ViewerSettings  # noqa: E402

#: Traces alone: the services export logs and metrics too unless told not to.
TRACES_ONLY = {"OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
#: The services' INFO lines (each order's steps, the logs exported), as `ordersim up` runs.
INFO = {f"{s}_SERVICE_LOG_LEVEL": "info" for s in ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")}
CONFIGS: dict[str, dict[str, str]] = {
    "untraced": {"OTEL_SDK_DISABLED": "true"},
    "100% sampled": TRACES_ONLY,
    "1% sampled": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        **TRACES_ONLY,
    },
    "seed config": TRACES_ONLY,  # SimpleSpanProcessor, via bench/seed_service.py
    # Not run by default: what the ~20 database spans of an order cost, of the ~50.
    "100% without DB spans": {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "sqlalchemy", **TRACES_ONLY},
    # Not run by default: shorter GIL holds on the export thread (bench/span_costs.py
    # --export), for more export requests.
    "100% in 128-span batches": {
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "128",
        "OTEL_BSP_SCHEDULE_DELAY": "1000",
        **TRACES_ONLY,
    },
    # Not run by default: what logs and metrics add to traces: the same INFO lines on the
    # console in both, then exported (OTLP /v1/logs) and with the metrics every 5 s as
    # `ordersim up` does.
    "100% traces + INFO lines": {**TRACES_ONLY, **INFO},
    "100% all three signals": {**INFO, "OTEL_METRIC_EXPORT_INTERVAL": "5000"},
}
DEFAULT_CONFIGS = ("untraced", "100% sampled", "1% sampled", "seed config")
#: How each configuration is named in the README's table.
LABELS = {
    "untraced": "untraced (`OTEL_SDK_DISABLED=true`)",
    "100% sampled": "100 % sampled",
    "1% sampled": "1 % sampled (`parentbased_traceidratio`)",
    "seed config": "seed config (SimpleSpanProcessor)",
    "100% without DB spans": "100 % without DB spans",
    "100% in 128-span batches": "100 % sampled, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE=128`",
    "100% traces + INFO lines": "100 % sampled, INFO lines on the console",
    "100% all three signals": "100 % sampled, logs and metrics exported too",
}
#: (traces alone, all three signals): the pair whose CPU per order is compared.
SIGNALS_PAIR = ("100% traces + INFO lines", "100% all three signals")


TIMES = "\N{MULTIPLICATION SIGN}"
WARMUP = 2.0  # seconds of load before each measurement


@dataclass
class Figures:
    saturation: float = 0.0
    p50: float | None = None
    p99: float | None = None
    drops: int | None = None
    completeness: str = ""
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per order, per process
    load: float = 0.0  # the machine's 1-minute load average when the round's run ended


class System:
    """Viewer + four services on free ports, in one configuration, logging to a file."""

    def __init__(self, name: str, config_env: dict[str, str], data: Path) -> None:
        self.name = name
        self.log = data / f"{name.replace(' ', '_').replace('%', 'pct')}.log"
        state = data / self.log.stem
        self.viewer = ViewerSettings(
            otlp_port=free_port(), grpc_port=free_port(), ui_port=free_port(), data_dir=state
        )
        settings = [
            (topology.INVENTORY, InventorySettings(port=free_port())),
            (topology.PAYMENT, PaymentSettings(port=free_port())),
            (topology.SHIPPING, ShippingSettings(port=free_port())),
            (topology.ORDER, OrderSettings(port=free_port())),
        ]
        self.services = [
            Service(
                "trace-viewer",
                "trace_viewer",
                self.viewer.host,
                {},
                f"{self.viewer.ui_url}/api/stats",
                "blue",
            )
        ]
        self.env = clean_env() | {
            "ORDERSIM_DATA_DIR": str(state),
            "TRACE_VIEWER_OTLP_PORT": str(self.viewer.otlp_port),
            "TRACE_VIEWER_GRPC_PORT": str(self.viewer.grpc_port),
            "TRACE_VIEWER_UI_PORT": str(self.viewer.ui_port),
            **config_env,
        }
        for node, service_settings in settings:
            self.env[node.port_variable] = str(service_settings.port)
            self.env.setdefault(f"{node.env_prefix}LOG_LEVEL", "warning")
            service = Service.of(node, service_settings)
            if name == "seed config":
                seed_service = str(ROOT / "bench" / "seed_service.py")
                service.command = [sys.executable, seed_service, node.package]
            self.services.append(service)
        self.order_url = settings[-1][1].base_url
        self.inventory_url = settings[0][1].base_url
        self.viewer_url = self.viewer.ui_url

    async def __aenter__(self) -> System:
        self._log_file = self.log.open("w")
        console = Console(file=self._log_file, width=200)
        self.supervisor = Supervisor(self.services, console, self.viewer, self.env)
        try:
            await self.supervisor.start()
        except StartupError as exc:
            await self.supervisor.stop()
            self._log_file.close()
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            raise StartupError(f"{exc}; the end of {self.log.name}:\n{tail}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.supervisor.stop()
        self._log_file.close()

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU time of each process so far (fields 14 and 15 of /proc/PID/stat;
        the standard library has no per-child reading for processes still running)."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = {}
        for service in self.services:
            assert service.process is not None
            stat = Path(f"/proc/{service.process.pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
            seconds[service.name] = (int(fields[11]) + int(fields[12])) / tick
        return seconds

    def queue_full_warnings(self) -> int:
        return self.log.read_text().count("Queue full")

    async def load(
        self,
        *,
        rate: float | None = None,
        concurrency: int | None = None,
        seconds: float,
        check_traces: int = 0,
    ) -> LoadReport:
        options = LoadOptions(
            order_url=self.order_url,
            inventory_url=self.inventory_url,
            viewer_url=self.viewer_url if check_traces else None,
            rate=rate,
            concurrency=concurrency,
            duration=seconds,
            warmup=WARMUP,
            slowest=3,
            seed=1,
            out=None,
            check_traces=check_traces,
            trace_wait=20,
        )
        return await run_load(options, Console(quiet=True))


def wrk_rate(url: str, body: Path, seconds: int, connections: int) -> float | None:
    if not shutil.which("wrk"):
        return None
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{body.read_text()}]]\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), f"{url}/orders"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def median_spread(values: list[float], fmt: str = ".2f") -> str:
    """``median (min-max)`` of the rounds' values."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


async def measure(args: argparse.Namespace, names: list[str], console: Console) -> float:
    """Run the rounds; fills ``runs`` and returns the fixed rate used."""
    moderate: float | None = args.rate
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for name in names:
                fig = Figures()
                args.runs[name].append(fig)
                console.print(f"[bold]round {round_}, {name}[/]: starting …")
                async with System(name, CONFIGS[name], Path(tmp)) as system:
                    sat = await system.load(concurrency=args.concurrency, seconds=args.seconds)
                    fig.saturation = sat.achieved_rate
                    moderate = moderate or round(sat.achieved_rate * 0.5, 1)
                    console.print(f"  saturation {fig.saturation:.1f} orders/s")
                    if name != "seed config":
                        before = system.cpu_seconds()
                        fixed = await system.load(rate=moderate, seconds=args.seconds)
                        after = system.cpu_seconds()
                        fig.p50, fig.p99 = fixed.latency_ms.p50, fixed.latency_ms.p99
                        # An open loop sends on schedule: rate x (warm-up + measured seconds).
                        sent = moderate * (WARMUP + args.seconds)
                        fig.cpu_ms = {p: (after[p] - before[p]) * 1000 / sent for p in after}
                        console.print(f"  p50/p99 at {moderate}/s: {fig.p50}/{fig.p99} ms")
                    if name == "100% sampled" and round_ == args.rounds:
                        traced = statistics.median(f.saturation for f in args.runs[name])
                        rate = round(traced * 0.8, 1)
                        console.print(f"  drop check at {rate}/s (80% of {traced:.1f}) …")
                        check = await system.load(rate=rate, seconds=args.seconds, check_traces=100)
                        tc = check.trace_completeness
                        fig.drops = system.queue_full_warnings()
                        fig.completeness = f"{tc.complete}/{tc.checked}"
                        console.print(f"  {fig.drops} queue-full; {fig.completeness} complete")
                    if args.wrk and name == "untraced" and round_ == 1:
                        wrk = wrk_rate(
                            system.order_url,
                            ROOT / "examples" / "order.json",
                            int(args.seconds),
                            args.concurrency,
                        )
                        gen = await system.load(concurrency=args.concurrency, seconds=args.seconds)
                        console.print(
                            f"  wrk: {wrk} req/s; ordersim load: "
                            f"{gen.achieved_rate:.1f} orders/s (same endpoint, "
                            f"{args.concurrency} connections)"
                        )
                fig.load = os.getloadavg()[0]
    assert moderate is not None
    return moderate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--rounds", type=int, default=5, help="figures are medians of rounds")
    parser.add_argument(
        "--rate",
        type=float,
        help="the fixed rate for p50/p99, orders/s, near half the untraced saturation "
        "(default: half the first untraced saturation, which swings with that one run)",
    )
    parser.add_argument("--wrk", action="store_true", help="also measure wrk's top rate")
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args()
    console = Console(width=130)
    names = [name.strip() for name in args.configs.split(",")]
    if unknown := [name for name in names if name not in CONFIGS]:
        parser.error(f"unknown configuration {unknown[0]!r}; choose from: {', '.join(CONFIGS)}")
    if names[0] != "untraced":
        parser.error("the first configuration is the baseline: untraced")
    args.runs = {name: [] for name in names}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    moderate = await measure(args, names, console)
    runs: dict[str, list[Figures]] = args.runs
    base_runs = runs["untraced"]

    def ratios(name: str, attribute: str) -> list[float]:
        """This configuration's figure over untraced's, round by round."""
        pairs = zip(runs[name], base_runs, strict=True)
        return [getattr(f, attribute) / getattr(b, attribute) for f, b in pairs]

    loads = [f.load for found in runs.values() for f in found]
    machine = (
        f"{started}; load average {load_before[0]:.1f} at the start, "
        f"{min(loads):.1f}-{max(loads):.1f} during the rounds"
    )
    table = Table(
        title=f"tracing overhead, medians (min-max) of {args.rounds} rounds (closed loop "
        f"{args.concurrency} clients; open loop at {moderate}/s; {args.seconds:g}s each)"
    )
    for column in (
        "configuration",
        "saturation orders/s",
        "x untraced",
        "p50 ms",
        "p99 ms",
        "p99 x untraced",
        "dropped spans at 80%",
    ):
        table.add_column(column, justify="right")
    rows = []
    for name, found in runs.items():
        timed = found[0].p99 is not None
        drops = next((f for f in found if f.drops is not None), None)
        row = [
            median_spread([f.saturation for f in found], ".1f"),
            median_spread(ratios(name, "saturation")),
            median_spread([f.p50 or 0 for f in found], ".1f") if timed else "-",
            median_spread([f.p99 or 0 for f in found], ".1f") if timed else "-",
            median_spread(ratios(name, "p99")) if timed else "-",
            "-"
            if drops is None
            else f"{drops.drops} queue-full; traces {drops.completeness} complete",
        ]
        rows.append((name, row))
        table.add_row(name, *row)
    console.print(table)
    console.print(f"machine: {machine}")

    processes = list(base_runs[0].cpu_ms)
    cpu = Table(title=f"CPU ms per order at {moderate}/s, by process (medians)")
    for column in ("configuration", *(p.removesuffix("-service") for p in processes)):
        cpu.add_column(column, justify="right")
    for column in ("total", "x untraced"):
        cpu.add_column(column, justify="right")
    base_total = statistics.median(sum(f.cpu_ms.values()) for f in base_runs)
    for name, found in runs.items():
        if not found[0].cpu_ms:
            continue
        if statistics.median(f.saturation for f in found) < moderate:
            # Orders queue up and the run lasts until they drain: no per-order figure.
            cpu.add_row(name, *("-" for _ in processes), "over its saturation", "-")
            continue
        total = statistics.median(sum(f.cpu_ms.values()) for f in found)
        cpu.add_row(
            name,
            *(f"{statistics.median(f.cpu_ms[p] for f in found):.2f}" for p in processes),
            median_spread([sum(f.cpu_ms.values()) for f in found]),
            f"{total / base_total:.2f}",
        )
    console.print(cpu)
    if all(name in runs for name in SIGNALS_PAIR):
        traces, signals = ([sum(f.cpu_ms.values()) for f in runs[name]] for name in SIGNALS_PAIR)
        added = statistics.median(signals) / statistics.median(traces) - 1
        console.print(
            f"logs + metrics add {added:+.1%} CPU per order beyond traces alone "
            f"(totals per round, ms: traces {', '.join(f'{t:.2f}' for t in traces)}; "
            f"all three {', '.join(f'{t:.2f}' for t in signals)})"
        )

    if args.markdown:
        print()
        print(
            f"| configuration | orders/s at saturation | {TIMES} untraced "
            f"| p99 ms at {moderate:g}/s | p99 {TIMES} untraced "
            "| dropped spans at 80 % of traced saturation |"
        )
        print("|---|---|---|---|---|---|")
        for name, row in rows:
            cells = [c if c != "-" else "\N{EM DASH}" for c in (row[0], row[1], *row[3:])]
            print(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
        print()
        print(
            f"Medians (min-max) of {args.rounds} rounds of {args.seconds:g} s, ratios taken "
            f"within each round; {machine}."
        )


if __name__ == "__main__":
    asyncio.run(main())
