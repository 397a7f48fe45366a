"""CPU per order, untraced or traced, by process: this tree alone, or several trees alternated.

    .venv/bin/python bench/cpu_per_order.py [--rate 30] [--seconds 10] [--rounds 5]
    .venv/bin/python bench/cpu_per_order.py --traced --trees /tmp/tree-a,/tmp/tree-b
    .venv/bin/python bench/cpu_per_order.py --trees .,/path/to/other/worktree
    git archive HEAD~1 | tar -x -C /tmp/before && \
        .venv/bin/python bench/cpu_per_order.py --trees /tmp/before,.
    .venv/bin/python bench/cpu_per_order.py --profile /tmp/profiles --rounds 1
    .venv/bin/python bench/cpu_per_order.py --traced \
        --trees .,.+OTEL_TRACES_EXPORTER=none,.+OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy

Each round starts the four services of each tree in turn (``OTEL_SDK_DISABLED=true``,
no viewer; with the tree's own ``.venv`` if it has one, else with this one), warms them
up, then sends orders from the load generator's mix at a fixed rate (open loop) and
reads each process's CPU time (Linux ``/proc``) before and after. CPU time per order is
much steadier than throughput on a machine shared with other work, and alternating the
trees round by round lets drift in the machine's speed hit them alike. Figures are
medians of rounds, with the range; with several trees, also the median of each round's
ratio to the first tree's in the same round (rounds back to back share the machine's load;
every other round runs the trees in the reverse order, so that a load rising or falling
during a round favours none of them).

``--traced`` runs each tree's viewer too and traces at 100 % (``bench/overhead.py``'s
"100% sampled": traces alone, ``OTEL_LOGS_EXPORTER=none``, ``OTEL_METRICS_EXPORTER=none``),
and counts the viewer's CPU with the services'. A tree written ``PATH+NAME=VALUE+…`` runs
with those variables on top: the same tree under other settings is one more variant to
alternate with, which bisects the traced cost by configuration (``.+OTEL_SDK_DISABLED=true``
is untraced with the viewer running idle; ``.+OTEL_TRACES_EXPORTER=none`` records every
span and exports none). The variables go on top of the configuration's: without
``--traced`` that is ``OTEL_SDK_DISABLED=true``, so sampling settings compare only with
``--traced`` (1 % against untraced, the viewer running in both: ``--traced --trees
".+OTEL_SDK_DISABLED=true,.+OTEL_TRACES_SAMPLER=parentbased_traceidratio+OTEL_TRACES_SAMPLER_ARG=0.01"``).

The figures are per order *sent* (the mix: mostly confirmed orders, some out of stock,
declined or invalid), as ``bench/overhead.py`` computes them, and per confirmed order.

``--perf DIR`` records the services' CPU samples with Linux ``perf`` (every thread, the
kernel's work included) and prints the share of each library: the interpreter
(libpython), the kernel, SQLite, uvloop, pydantic-core, httptools.

``--profile DIR`` also records each service with py-spy (``pip install py-spy``) during
the measured run, writes the raw stacks there, and prints each service's top functions by
share of its samples. py-spy samples the thread holding the GIL (``--gil``), without
pausing the process: shares of the time the GIL was held, wall clock, which counts a
system call made while holding it (a socket write that wakes the reader) in full even
when the kernel ran something else meanwhile; the CPU figures say how much it cost. The
samples are also shown by thread (the event loop, the database threads, the span export
thread) and by the part of the code they end in, a standard-library leaf (``contextvars``,
``random``) counting for the package that called it; and tracing's own work (OpenTelemetry's
code and our hooks into it) in ms an order, by the frame it was entered at: a server
span's in ``OpenTelemetryMiddleware.__call__``, the export thread's in
``BatchProcessor.worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.overhead import CONFIGS, WARMUP, System  # noqa: E402
from common import topology  # noqa: E402

SERVICES = tuple(service.name for service in (*topology.DOWNSTREAM, topology.ORDER))
VIEWER = topology.VIEWER.name


@dataclass(frozen=True)
class Variant:
    """A tree, and the variables its processes get on top of the configuration's."""

    tree: Path
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``PATH`` or ``PATH+NAME=VALUE+NAME=VALUE`` (``.+OTEL_TRACES_EXPORTER=none``)."""
        path, *settings = spec.split("+")
        env = tuple(tuple(s.split("=", 1)) for s in settings)
        if any(len(pair) != 2 for pair in env):
            raise ValueError(f"not NAME=VALUE: {spec}")
        return cls(Path(path).resolve(), env)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "+".join([str(self.tree), *(f"{k}={v}" for k, v in self.env)])


@dataclass
class Round:
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per order sent, per service
    loop_ms: dict[str, float] = field(default_factory=dict)  # of which the main thread's
    sent: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    confirmed_share: float = 1.0  # of the orders recorded
    spans: float | None = None  # spans the viewer received per order sent (--traced)


#: Runs ``sys.argv[2]`` as ``__main__`` from the tree ``sys.argv[1]``: on sys.path before
#: anything else (an editable install's finder comes after sys.path), so a tree without its
#: own ``.venv`` (``git archive`` of a commit) runs with this interpreter's packages.
RUN_FROM_TREE = (
    "import runpy, sys; tree, package = sys.argv[1:3]; sys.argv = [package]; "
    "sys.path.insert(0, tree); runpy.run_module(package, run_name='__main__', alter_sys=True)"
)


def python_of(tree: Path) -> Path:
    """The tree's own ``.venv``, else this interpreter."""
    python = tree / ".venv" / "bin" / "python"
    return python if python.exists() else Path(sys.executable)


class TreeSystem(System):
    """``bench/overhead.py``'s system, running the processes of ``tree`` with that tree's
    own interpreter: untraced and without the viewer, or (``traced``) at 100 % with it."""

    def __init__(
        self,
        tree: Path,
        data: Path,
        log_level: str,
        traced: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        data.mkdir(parents=True)
        name = "100% sampled" if traced else "untraced"
        super().__init__(name, CONFIGS[name] | (env or {}), data)
        if not traced:
            self.services = [s for s in self.services if s.package != "trace_viewer"]
        for service in self.services:
            if service.settings is not None:
                prefix = service.settings.model_config.get("env_prefix", "")
                self.env[f"{prefix}LOG_LEVEL"] = log_level
            # -I: neither the working directory nor PYTHONPATH: the tree, then site-packages.
            command = [str(python_of(tree)), "-I", "-c", RUN_FROM_TREE, str(tree)]
            service.command = [*command, service.package]

    async def spans_received(self) -> int | None:
        """What the viewer's ``/api/stats`` counts so far (None: no viewer)."""
        if not any(s.package == "trace_viewer" for s in self.services):
            return None
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.viewer_url}/api/stats")
        return int(response.json()["spans_received"])

    def pids(self) -> dict[str, int]:
        return {s.name: s.process.pid for s in self.services if s.process is not None}

    def main_thread_seconds(self) -> dict[str, float]:
        """CPU time of each process's main thread (its event loop); the rest of the
        process's time is its other threads' (the database threads, one per connection:
        aiosqlite's in older trees, common.db's since)."""
        tick = os.sysconf("SC_CLK_TCK")
        seconds = {}
        for name, pid in self.pids().items():
            stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            seconds[name] = (int(fields[11]) + int(fields[12])) / tick
        return seconds


PROFILE_RATE = 200  # py-spy samples a second


async def profile(pids: dict[str, int], seconds: float, out: Path) -> dict[str, Path]:
    """py-spy ``record`` of every process at once, raw (collapsed) stacks, one file each."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    files, procs = {}, []
    for name, pid in pids.items():
        files[name] = out / f"{name}.txt"
        procs.append(
            await asyncio.create_subprocess_exec(
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                str(PROFILE_RATE),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",  # pausing every process 200 times a second stalls orders
                "--gil",  # the thread holding the GIL: Python's work, not a thread's waits
                "--full-filenames",  # not "sqlalchemy/engine.py" for the instrumentation
                "--output",
                str(files[name]),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    for proc in procs:
        await proc.wait()
    return files


async def perf_record(
    pids: dict[str, int], seconds: float, out: Path, number: int, tree: Path
) -> list[tuple[float, str]]:
    """``perf record`` of every service process at once (CPU samples, every thread, kernel
    included), then the share of the samples in each library: how much of the CPU is
    the Python interpreter itself, the kernel, SQLite, uvloop, pydantic-core ... ."""
    data = out / f"round{number}-{tree.name}.perf"
    pid_list = ",".join(str(pid) for pid in pids.values())
    record = await asyncio.create_subprocess_exec(
        "perf", "record", "-F", "1999", "-p", pid_list, "-o", str(data),
        "--", "sleep", str(seconds),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await record.wait()
    report = await asyncio.create_subprocess_exec(
        "perf", "report", "-i", str(data), "--sort", "dso", "--stdio",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    text, _ = await report.communicate()
    shares = []
    for line in text.decode().splitlines():
        share, _, library = line.strip().partition("%")
        if line.startswith("#") or not library:
            continue
        shares.append((float(share) / 100, library.strip()))
    return shares[:12]


#: Leaf frames of a thread that waits, not works: py-spy's ``--nonblocking`` mode cannot
#: ask the OS, so these are told by where the stack ends (aiosqlite's worker waits for its
#: next statement in a C call, ``SimpleQueue.get``, on this line).
IDLE_LEAVES = ("Condition.wait ", "Queue.get ", "Event.wait ", "_worker (", "select (")
AIOSQLITE_WAIT = "_connection_worker_thread (aiosqlite/core.py:59)"


#: The parts of a service, by the top-level package of the frame a sample ends in.
PARTS = {
    "server (uvicorn, Starlette, FastAPI)": ("uvicorn", "starlette", "fastapi", "httptools"),
    "client (httpx over aiohttp)": (
        "httpx",
        "httpx_aiohttp",
        "aiohttp",
        "yarl",
        "multidict",
        "aiohappyeyeballs",
        "http",
    ),
    "database (SQLAlchemy, sqlite3)": ("sqlalchemy", "sqlite3", "aiosqlite"),
    "pydantic": ("pydantic", "pydantic_core"),
    "ordersim's own code": (
        "common",
        "order_service",
        "inventory_service",
        "payment_service",
        "shipping_service",
    ),
    "asyncio and threads": ("asyncio", "concurrent", "threading.py", "queue.py", "uvloop"),
    "OpenTelemetry (API, SDK, instrumentations, exporter)": ("opentelemetry", "google"),
}
OTHER = "standard library, other"
TRACING = "OpenTelemetry (API, SDK, instrumentations, exporter)"
#: Our own hooks into the instrumentations, whose work is tracing's too.
TRACING_HOOKS = "common/telemetry.py"


def part_of(frame: str) -> str:
    """The part a raw py-spy frame (``f (/…/site-packages/fastapi/routing.py:12)``)
    belongs to."""
    top = _module(frame.partition(" (")[2]).split("/", 1)[0]
    for part, packages in PARTS.items():
        if top in packages or any(p.endswith(".py") and top == p for p in packages):
            return part
    return OTHER


def part_of_stack(frames: list[str]) -> str:
    """The part of the innermost frame that is not in the standard library's other
    modules: ``contextvars``, ``random`` or ``re`` count for the code that called them."""
    for frame in reversed(frames):
        if (part := part_of(frame)) != OTHER:
            return part
    return OTHER


def tracing_entry(raw_frames: list[str]) -> str | None:
    """Where the tracing work a sample ends in was entered: None unless its innermost
    frame outside the standard library's other modules is OpenTelemetry's (or one of our
    hooks); then the outermost frame of the run of tracing (and standard-library) frames
    leading to it: ``OpenTelemetryMiddleware.__call__`` for the server span's own work,
    ``BatchProcessor.worker`` for the export thread's, not the app it wraps."""

    def tracing(frame: str) -> bool:
        return part_of(frame) == TRACING or _module(frame.partition(" (")[2]).startswith(
            TRACING_HOOKS
        )

    inner = len(raw_frames) - 1
    while inner >= 0 and part_of(raw_frames[inner]) == OTHER:
        inner -= 1
    if inner < 0 or not tracing(raw_frames[inner]):
        return None
    entry = inner
    while entry > 0 and (tracing(raw_frames[entry - 1]) or part_of(raw_frames[entry - 1]) == OTHER):
        entry -= 1
    while not tracing(raw_frames[entry]):
        entry += 1
    return _short(raw_frames[entry]).rsplit(":", 1)[0] + ")"


def _module(where: str) -> str:
    """A file as its module's path: ``/…/site-packages/starlette/routing.py:71`` →
    ``starlette/routing.py:71``, ``/…/lib/python3.11/asyncio/events.py:80`` →
    ``asyncio/events.py:80``, ``/work/tree/common/db.py:80`` → ``common/db.py:80``."""
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in where:
            where = where.rsplit(marker, 1)[1]
            return where.split("/", 1)[1] if marker.startswith("/lib") else where
    parts = Path(where).parts
    for i, part in enumerate(parts):
        if any(part in packages for packages in PARTS.values()):
            return "/".join(parts[i:])
    return where


@dataclass
class Summary:
    """A py-spy raw file's busy samples: by function, by part, by thread."""

    busy: int = 0
    #: (function, inclusive share, self share), the most frequent first.
    functions: list[tuple[str, float, float]] = field(default_factory=list)
    parts: collections.Counter[str] = field(default_factory=collections.Counter)
    #: By thread name, numbers dropped: ``sqlite`` (all of common.db's database threads),
    #: ``OtelBatchSpanRecordProcessor`` (the export thread), ``MainThread``.
    threads: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Tracing's own work, by the frame it was entered at (see tracing_entry).
    tracing: collections.Counter[str] = field(default_factory=collections.Counter)


def summarise(raw: Path, top: int) -> Summary:
    """Busy samples, (function, inclusive share, self share) of them, samples by part and
    by thread, from a py-spy raw file; samples whose leaf is a wait are left out."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    tracing: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        thread, *rest = stack.split(";")  # "thread (16596): sqlite_0"
        raw_frames = [f for f in rest if " (" in f]
        frames = [_short(f) for f in raw_frames]
        if not frames:  # the GIL held outside any Python frame
            frames = ["no Python frame (uvloop, httptools: C holding the GIL) (:0)"]
        leaf = frames[-1]
        if leaf.startswith(IDLE_LEAVES) or leaf == AIOSQLITE_WAIT:
            continue
        busy += count
        threads[thread.partition(": ")[2].rstrip("_0123456789") or thread] += count
        parts[part_of_stack(raw_frames) if raw_frames else "uvloop, httptools (C)"] += count
        if (entry := tracing_entry(raw_frames)) is not None:
            tracing[entry] += count
        for frame in {f.rsplit(":", 1)[0] + ")" for f in frames[:-1]}:
            inclusive[frame] += count
        leaf_function = leaf.rsplit(":", 1)[0] + ")"
        if leaf.startswith("_connection_worker_thread"):  # in sqlite3's C code
            leaf_function = "sqlite3 (C, in aiosqlite's thread)"
        elif leaf.startswith("Runner.run "):  # in uvloop's C code: I/O, or waiting for it
            leaf_function = "uvloop (C: I/O, parsing, or epoll wait)"
        inclusive[leaf_function] += count
        own[leaf_function] += count
    shares = [(f, n / busy, own[f] / busy) for f, n in inclusive.most_common(top)]
    return Summary(busy, shares, parts, threads, tracing)


def _short(frame: str) -> str:
    """``Router.__call__ (…/site-packages/starlette/routing.py:71)`` →
    ``Router.__call__ (starlette/routing.py:71)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({_module(where.rstrip(')'))})"


async def one_round(
    variant: Variant, args: argparse.Namespace, tmp: Path, console: Console, number: int
) -> Round:
    result = Round()
    tree = variant.tree
    system = TreeSystem(tree, tmp, args.log_level, args.traced, dict(variant.env))
    async with system:
        await system.load(rate=args.rate, seconds=WARMUP)  # warm caches, pools, code paths
        before, loop_before = system.cpu_seconds(), system.main_thread_seconds()
        spans_before = await system.spans_received()
        spy = perf = None
        if args.perf:
            perf = asyncio.create_task(
                perf_record(system.pids(), args.seconds + WARMUP, Path(args.perf), number, tree)
            )
        if args.profile:
            out = Path(args.profile) / f"round{number}-{tmp.name}-{tree.name}"
            out.mkdir(parents=True, exist_ok=True)
            spy = asyncio.create_task(profile(system.pids(), args.seconds + WARMUP, out))
        report = await system.load(rate=args.rate, seconds=args.seconds)
        after, loop_after = system.cpu_seconds(), system.main_thread_seconds()
        spans_after = await system.spans_received()
        if perf is not None:
            console.print(f"[bold]{tree}[/]: CPU samples of the services by library (perf)")
            for share, library in await perf:
                console.print(f"  {share:6.1%}  {escape(library)}")  # [kernel.kallsyms]
        if spy is not None:
            for name, raw in (await spy).items():
                console.print(f"[bold]{variant} {name}[/] ({raw})")
                found = summarise(raw, args.top)
                busy = max(found.busy, 1)
                console.print(f"  {found.busy} samples holding the GIL; by thread:")
                for thread, n in found.threads.most_common():
                    console.print(f"  {n / busy:6.1%}  {thread}")
                console.print("  by the part they end in (the standard library: its caller's):")
                for part, n in found.parts.most_common():
                    console.print(f"  {n / busy:6.1%}  {part}")
                ms = 1000 / PROFILE_RATE / (args.rate * (args.seconds + WARMUP))
                console.print(
                    f"  tracing's own work: {sum(found.tracing.values()) * ms:.2f} ms an order"
                    " (GIL held, wall clock), by the frame it was entered at:"
                )
                for entry, n in found.tracing.most_common(args.top):
                    console.print(f"  {n * ms:6.3f} ms  {entry}")
                console.print("  functions, inclusive and self shares:")
                for frame, incl, own in found.functions:
                    console.print(f"  {incl:6.1%} {own:6.1%}  {frame}")
    result.sent = args.rate * (WARMUP + args.seconds)
    result.cpu_ms = {p: (after[p] - before[p]) * 1000 / result.sent for p in after}
    result.loop_ms = {p: (loop_after[p] - loop_before[p]) * 1000 / result.sent for p in loop_after}
    result.statuses = dict(report.status_counts)
    if spans_before is not None and spans_after is not None:
        # The services export every few seconds: the spans of the warm-up's last orders
        # arrive in the window and those of its own last orders after it, about as many.
        result.spans = (spans_after - spans_before) / result.sent
    result.confirmed_share = report.status_counts.get("201", 0) / max(report.requests, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trees",
        default=".",
        help="comma-separated worktrees to alternate, each PATH or PATH+NAME=VALUE+…: "
        "the same tree under other OTEL_* settings is a variant too",
    )
    parser.add_argument("--rate", type=float, default=30, help="orders/s, open loop")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", default="warning", help="the services' log level")
    parser.add_argument(
        "--traced", action="store_true", help="100 %% sampled, with the viewer (its CPU too)"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy each service into DIR")
    parser.add_argument(
        "--perf", metavar="DIR", help="perf record the services into DIR (Linux perf, root)"
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed per profile")
    args = parser.parse_args()
    try:
        trees = [Variant.parse(t) for t in args.trees.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    if missing := [v for v in trees if not (v.tree / "inventory_service").is_dir()]:
        parser.error(f"not an ordersim tree: {missing[0].tree}")
    if len(set(trees)) != len(trees):
        parser.error("a variant is listed twice")
    if args.perf:
        Path(args.perf).mkdir(parents=True, exist_ok=True)
    asyncio.run(measure(args, trees))


async def measure(args: argparse.Namespace, trees: list[Variant]) -> None:
    console = Console(width=150)
    processes = (*SERVICES, VIEWER) if args.traced else SERVICES
    runs: dict[Variant, list[Round]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(1, args.rounds + 1):
            # A B, then B A: the machine's load drifting during a round hits both alike.
            for tree in trees if number % 2 else trees[::-1]:
                data = Path(tmp) / f"{number}-{trees.index(tree)}"
                found = await one_round(tree, args, data, console, number)
                runs[tree].append(found)
                total = sum(found.cpu_ms[s] for s in processes)
                console.print(
                    f"round {number} {tree}: {total:.2f} ms/order "
                    + " ".join(
                        f"{s.split('-')[0]} {found.cpu_ms[s]:.2f} (loop {found.loop_ms[s]:.2f})"
                        for s in processes
                    )
                    + (f"  spans/order {found.spans:.1f}" if found.spans is not None else "")
                    + f"  statuses {found.statuses}  load {os.getloadavg()[0]:.1f}"
                )

    table = Table(
        title=f"CPU ms per order, {'100 % sampled' if args.traced else 'untraced'}, "
        f"at {args.rate:g}/s: medians of {args.rounds} "
        f"rounds (min-max), {args.seconds:g} s each"
    )
    for column in ("tree", *(s.split("-")[0] for s in processes), "total", "per confirmed"):
        table.add_column(column, justify="right")
    for tree, rounds in runs.items():

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        totals = [sum(r.cpu_ms[s] for s in processes) for r in rounds]
        per_confirmed = [
            t / max(r.confirmed_share, 1e-9) for t, r in zip(totals, rounds, strict=True)
        ]
        table.add_row(
            str(tree),
            *(cell([r.cpu_ms[s] for r in rounds]) for s in processes),
            cell(totals),
            cell(per_confirmed),
        )
    console.print(table)
    # Rounds run back to back share the machine's load of the moment: the ratio of each
    # round to the first tree's in the same round is steadier than either figure alone.
    first = runs[trees[0]]

    def ratio(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

    for tree in trees[1:]:
        pairs = list(zip(runs[tree], first, strict=True))
        by_service = {
            s.split("-")[0]: ratio([r.cpu_ms[s] / f.cpu_ms[s] for r, f in pairs]) for s in processes
        }
        total_ratio = ratio(
            [
                sum(r.cpu_ms[s] for s in processes) / sum(f.cpu_ms[s] for s in processes)
                for r, f in pairs
            ]
        )
        console.print(
            f"{tree} / {trees[0]}, round by round, median (min-max): total {total_ratio}; "
            + ", ".join(f"{name} {figure}" for name, figure in by_service.items())
        )


if __name__ == "__main__":
    main()
