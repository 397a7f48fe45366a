"""``ordersim load``: a load generator that reports tail latency with the traces behind it.

Open loop (``--rate R --duration S``): order *i* is due at ``start + i/R`` whatever happened
to the ones before it, and its latency is measured from that intended time, so a stall in
the system shows up in the percentiles instead of silently slowing the generator down
(coordinated omission). Closed loop (``--concurrency N``): N clients, each sending its
next order when the previous one answered. Both skip a warm-up before recording.

Latencies go into an HDR histogram (the ``hdrhistogram`` package); the slowest orders are
kept with their trace ids, and a sample of sampled orders is checked in the trace viewer
for complete traces.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hdrh.histogram import HdrHistogram
from pydantic import BaseModel

from ordersim import samples
from ordersim.calls import trace_of
from ordersim.viewer import Viewer, ViewerError, ViewerTimeout, otlp_path
from payment_service import cards

#: The order mix: (kind, weight). Most orders succeed; the rest exercise every outcome.
MIX = [("normal", 82), ("scarce", 6), ("declined", 5), ("insufficient", 3), ("invalid", 4)]


# -- the report (its JSON is ``--out``'s schema) ------------------------------------------


class Percentiles(BaseModel):
    p50: float
    p90: float
    p99: float
    p999: float
    max: float


class SlowOrder(BaseModel):
    trace_id: str | None
    latency_ms: float
    status: int  # 0 when no HTTP response came back
    link: str | None = None


class Completeness(BaseModel):
    checked: int
    complete: int


class Generator(BaseModel):
    """How well the generator itself kept to its schedule (open loop only)."""

    max_lag_ms: float
    late_sends: int  # sends more than 10 ms behind their intended time
    behind_schedule: bool


class Exemplar(BaseModel):
    trace_id: str
    span_id: str
    value_ms: float


class ServiceRed(BaseModel):
    """One service operation's RED over the run, from the services' own
    ``http.server.request.duration`` histograms (the viewer's ``GET /api/metrics/red``):
    percentiles are bucket estimates, server-side, beside the generator's exact client-side
    ``latency_ms``."""

    service: str
    operation: str
    rate: float  # requests per second of the run
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    exemplars: list[Exemplar]


class LoadReport(BaseModel):
    mode: str  # "open" or "closed"
    target_rate: float | None
    achieved_rate: float
    concurrency: int | None
    duration_s: float
    requests: int
    status_counts: dict[str, int]
    latency_ms: Percentiles
    slowest: list[SlowOrder]
    trace_completeness: Completeness
    generator: Generator
    partial: bool = False
    #: Each service's RED for the run (None: no viewer, or it keeps no metrics).
    services: list[ServiceRed] | None = None


# -- the order mix -------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    plentiful: list[str]
    scarce: list[tuple[str, int]]  # sku, stock at start

    @classmethod
    def from_products(cls, products: list[dict[str, Any]]) -> Catalogue:
        plentiful = [p["sku"] for p in products if p["stock"] >= 1000]
        scarce = [(p["sku"], p["stock"]) for p in products if p["stock"] < 1000]
        if not plentiful:
            raise SystemExit("the catalogue has no plentiful SKU to order")
        return cls(plentiful, scarce)


class OrderMix:
    """Weighted, reproducible order bodies: 1-5 items, out-of-stock, declined, invalid."""

    def __init__(self, catalogue: Catalogue, seed: int = 0) -> None:
        self.catalogue = catalogue
        self.rng = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]

    def next(self) -> tuple[str, dict[str, Any]]:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        lines = self.rng.randint(1, min(5, len(self.catalogue.plentiful)))
        items = [
            (sku, self.rng.randint(1, 3))
            for sku in self.rng.sample(self.catalogue.plentiful, lines)
        ]
        card = cards.BY_OUTCOME.get(kind, cards.APPROVED)
        if kind == "scarce" and self.catalogue.scarce:
            sku, stock = self.rng.choice(self.catalogue.scarce)
            items[0] = (sku, self.rng.randint(1, max(1, stock // 4)))
        body = samples.order_body(items, card, customer_id=f"load-{self.rng.randrange(10_000)}")
        if kind == "invalid":
            flaw = self.rng.choice(["luhn", "quantity", "sku"])
            if flaw == "luhn":
                body["payment"]["card_number"] = samples.LUHN_INVALID
            elif flaw == "quantity":
                body["items"][0]["quantity"] = 0
            else:
                body["items"][0]["sku"] = "SKU-9999"
        return kind, body


# -- recording -----------------------------------------------------------------------------


@dataclass(order=True)
class Outcome:
    latency_ms: float
    status: int = field(compare=False)
    trace_id: str | None = field(compare=False)
    sampled: bool = field(compare=False)


class Recorder:
    """Counts, an HDR histogram of latencies (µs, 3 significant digits), the slowest N."""

    def __init__(self, keep_slowest: int = 10, sample_size: int = 50, seed: int = 0) -> None:
        self.histogram = HdrHistogram(1, 3_600_000_000, 3)
        self.status_counts: Counter[str] = Counter()
        self.keep_slowest = keep_slowest
        self.slowest: list[Outcome] = []  # a min-heap of the N largest
        self.max_ms = 0.0
        self.sample_size = sample_size
        self.sampled: list[str] = []  # reservoir of sampled trace ids
        self._seen_sampled = 0
        self._rng = random.Random(seed)
        self.max_lag_ms = 0.0
        self.late_sends = 0

    @property
    def count(self) -> int:
        return int(self.histogram.get_total_count())

    @property
    def errors(self) -> int:
        return sum(
            n
            for status, n in self.status_counts.items()
            if status in ("0",) or status.startswith("5")
        )

    def record(self, outcome: Outcome) -> None:
        self.histogram.record_value(max(1, round(outcome.latency_ms * 1000)))
        self.max_ms = max(self.max_ms, outcome.latency_ms)
        self.status_counts[str(outcome.status)] += 1
        if len(self.slowest) < self.keep_slowest:
            heapq.heappush(self.slowest, outcome)
        else:
            heapq.heappushpop(self.slowest, outcome)
        if outcome.sampled and outcome.trace_id:
            self._seen_sampled += 1
            if len(self.sampled) < self.sample_size:
                self.sampled.append(outcome.trace_id)
            else:  # reservoir sampling: every sampled order equally likely to be checked
                slot = self._rng.randrange(self._seen_sampled)
                if slot < self.sample_size:
                    self.sampled[slot] = outcome.trace_id

    def note_lag(self, lag_s: float) -> None:
        lag_ms = lag_s * 1000
        self.max_lag_ms = max(self.max_lag_ms, lag_ms)
        if lag_ms > 10:
            self.late_sends += 1

    def percentile(self, p: float) -> float:
        if not self.count:
            return 0.0
        # HDR answers with the top of the value's bucket (3 significant digits), which can
        # lie just above the exact maximum; a percentile never exceeds the maximum.
        return min(float(self.histogram.get_value_at_percentile(p)) / 1000, self.max_ms)

    def percentiles(self) -> Percentiles:
        at = {
            name: round(self.percentile(p), 3)
            for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))
        }
        return Percentiles(**at, max=round(self.max_ms, 3))


# -- sending -------------------------------------------------------------------------------


@dataclass
class LoadTest:
    """One run of the generator against an order service."""

    client: httpx.AsyncClient  # base_url = the order service
    mix: OrderMix
    recorder: Recorder
    duration: float
    warmup: float = 0.0
    rate: float | None = None
    concurrency: int | None = None
    max_in_flight: int = 2000
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    started_at: float = 0.0
    measured_from: float = 0.0

    @staticmethod
    def now() -> float:
        """The event loop's clock (monotonic), which schedules every send and timeout here;
        tests run it fast-forwarded (looptime), so the schedule is checked exactly."""
        return asyncio.get_running_loop().time()

    async def _send(self, intended: float) -> None:
        _, body = self.mix.next()
        try:
            response = await self.client.post("/orders", json=body)
            status = response.status_code
            trace_id, sampled = trace_of(response)
        except httpx.HTTPError:
            status, trace_id, sampled = 0, None, False
        done = self.now()
        if intended >= self.measured_from:  # warm-up orders are sent, not recorded
            self.recorder.record(Outcome((done - intended) * 1000, status, trace_id, sampled))

    async def run(self) -> float:
        """Run to the end (or until ``stop`` is set); return the measured seconds."""
        self.started_at = self.now()
        self.measured_from = self.started_at + self.warmup
        end = self.measured_from + self.duration
        if self.rate is not None:
            await self._open_loop(end)
        else:
            await self._closed_loop(end)
        return max(min(self.now(), end) - self.measured_from, 1e-9)

    async def _open_loop(self, end: float) -> None:
        assert self.rate is not None and self.rate > 0
        in_flight: set[asyncio.Task[None]] = set()
        i = 0
        while not self.stop.is_set():
            intended = self.started_at + i / self.rate
            if intended >= end:
                break
            delay = intended - self.now()
            if delay > 0:
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            if intended >= self.measured_from:
                self.recorder.note_lag(self.now() - intended)
            if len(in_flight) >= self.max_in_flight:
                # The system is not keeping up at all; waiting here would hide it, so
                # this order counts as failed at its intended time.
                self.recorder.record(Outcome(0.0, 0, None, False))
            else:
                task = asyncio.create_task(self._send(intended))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            self.sent += 1
            i += 1
        if in_flight:
            await asyncio.wait(in_flight)

    async def _closed_loop(self, end: float) -> None:
        assert self.concurrency is not None and self.concurrency > 0

        async def client() -> None:
            while not self.stop.is_set() and self.now() < end:
                self.sent += 1
                await self._send(self.now())

        await asyncio.gather(*(client() for _ in range(self.concurrency)))


# -- the trace check -----------------------------------------------------------------------


def check_completeness(
    viewer: Viewer,
    trace_ids: list[str],
    is_complete: Callable[[list[dict[str, Any]]], bool],
    wait_s: float,
) -> Completeness:
    """Poll the viewer (with a deadline) until each sampled trace is complete. Raises
    ViewerError if the viewer cannot be asked."""
    pending = set(trace_ids)
    deadline = time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        for trace_id in list(pending):
            try:
                document = viewer.fetch(otlp_path(trace_id))
            except ViewerTimeout:  # busy: look again in the next round
                continue
            if document is not None and is_complete(document["result"]["resourceSpans"]):
                pending.discard(trace_id)
        if pending:
            time.sleep(0.25)
    return Completeness(checked=len(trace_ids), complete=len(trace_ids) - len(pending))


# -- each service's RED ----------------------------------------------------------------------

#: The operation whose request count says the services' metrics of the run have arrived.
ORDERS = ("order-service", "POST /orders")


def services_red(
    viewer: Viewer, since: float, measured_s: float, orders: int, wait_s: float
) -> list[ServiceRed] | None:
    """RED per service and operation since ``since`` (epoch seconds, the measured window's
    start), polling (with a deadline) until the order service's metrics count the ``orders``
    sent: services export them every OTEL_METRIC_EXPORT_INTERVAL. Rates are per second of
    the run. None when the viewer keeps no metrics (Jaeger). Raises ViewerError if the
    viewer cannot be asked."""
    deadline = time.monotonic() + wait_s
    while True:
        lookback_ms = max(1000, int((time.time() - since) * 1000))
        document = viewer.fetch(f"/api/metrics/red?lookback={lookback_ms}")
        if not isinstance(document, dict):
            return None
        rows = document.get("services", [])
        counted = sum(r["requests"] for r in rows if (r["service"], r["operation"]) == ORDERS)
        if counted >= orders or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return [
        ServiceRed(
            **{k: row[k] for k in ServiceRed.model_fields if k not in ("rate", "exemplars")},
            rate=round(row["requests"] / measured_s, 2),
            exemplars=[Exemplar(**e) for e in row["exemplars"][:5]],
        )
        for row in rows
    ]


# -- the command ---------------------------------------------------------------------------


@dataclass
class LoadOptions:
    order_url: str
    inventory_url: str
    viewer_url: str | None
    rate: float | None
    concurrency: int | None
    duration: float
    warmup: float
    slowest: int
    seed: int
    out: str | None
    check_traces: int
    trace_wait: float
    #: Seconds to wait for the services' metrics of the run to reach the viewer.
    metrics_wait: float = 12.0


def build_report(
    test: LoadTest,
    measured_s: float,
    completeness: Completeness,
    viewer_url: str | None,
    partial: bool,
    services: list[ServiceRed] | None = None,
) -> LoadReport:
    recorder = test.recorder
    slowest = sorted(recorder.slowest, reverse=True)
    return LoadReport(
        mode="open" if test.rate is not None else "closed",
        target_rate=test.rate,
        achieved_rate=round(recorder.count / measured_s, 2),
        concurrency=test.concurrency,
        duration_s=round(measured_s, 3),
        requests=recorder.count,
        status_counts=dict(sorted(recorder.status_counts.items())),
        latency_ms=recorder.percentiles(),
        slowest=[
            SlowOrder(
                trace_id=o.trace_id,
                latency_ms=round(o.latency_ms, 3),
                status=o.status,
                link=f"{viewer_url}/trace/{o.trace_id}" if viewer_url and o.trace_id else None,
            )
            for o in slowest
        ],
        trace_completeness=completeness,
        generator=Generator(
            max_lag_ms=round(recorder.max_lag_ms, 3),
            late_sends=recorder.late_sends,
            behind_schedule=test.rate is not None and recorder.late_sends > recorder.count * 0.01,
        ),
        partial=partial,
        services=services,
    )


def print_report(report: LoadReport, console: Any) -> None:
    from rich.table import Table

    rate = (
        f"{report.achieved_rate:.1f}/s achieved of {report.target_rate:g}/s target"
        if report.target_rate is not None
        else f"{report.achieved_rate:.1f}/s with {report.concurrency} concurrent clients"
    )
    title = "load report" + (" (partial: interrupted)" if report.partial else "")
    console.print(
        f"\n[bold]{title}[/]: {report.requests} orders in {report.duration_s:.1f}s, {rate}"
    )
    console.print("status: " + ", ".join(f"{k}: {v}" for k, v in report.status_counts.items()))
    lat = report.latency_ms
    console.print(
        f"latency ms: p50 {lat.p50:.1f}  p90 {lat.p90:.1f}  p99 {lat.p99:.1f}  "
        f"p99.9 {lat.p999:.1f}  max {lat.max:.1f}"
    )
    if report.generator.behind_schedule:
        console.print(
            f"[yellow]the generator fell behind its schedule: {report.generator.late_sends} "
            f"sends over 10 ms late (max {report.generator.max_lag_ms:.0f} ms); the rate it "
            "reached is a limit of this machine, not only of the system[/]"
        )
    table = Table("latency ms", "status", title="slowest orders")
    table.add_column("trace", overflow="fold")  # a narrow terminal wraps the link, never cuts it
    for slow in report.slowest:
        table.add_row(f"{slow.latency_ms:.1f}", str(slow.status), slow.link or slow.trace_id or "-")
    console.print(table)
    if report.services:
        red = Table(
            "service",
            "operation",
            "req/s",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            title="each service's RED (its own metrics; percentiles are bucket estimates)",
        )
        for row in report.services:
            red.add_row(
                row.service,
                row.operation,
                f"{row.rate:.1f}",
                f"{row.error_rate * 100:.1f} %",
                *(
                    f"≈{v:.1f}" if v is not None else "-"
                    for v in (row.p50_ms, row.p95_ms, row.p99_ms)
                ),
            )
        console.print(red)
    tc = report.trace_completeness
    console.print(
        f"trace completeness: {tc.complete}/{tc.checked} sampled orders' traces "
        "complete in the viewer"
        if tc.checked
        else "trace completeness: not checked (no viewer, or no sampled orders)"
    )


def trace_complete(resource_spans: list[dict[str, Any]]) -> bool:
    """The one rule for a complete trace (:meth:`ordersim.waterfall.Trace.is_complete`): one
    root, every span under it, every HTTP call answered."""
    from ordersim.waterfall import Trace, parse_otlp

    return Trace(parse_otlp({"resourceSpans": resource_spans})).is_complete()


async def run_load(
    options: LoadOptions,
    console: Any,
    is_complete: Callable[[list[dict[str, Any]]], bool] = trace_complete,
) -> LoadReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.text import Text

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30) as plain:
        try:
            products = (await plain.get(f"{options.inventory_url}/products")).json()
        except httpx.HTTPError as exc:
            raise SystemExit(
                f"cannot read the catalogue at {options.inventory_url}/products ({exc}); "
                "is the system up (make up)?"
            ) from None
    mix = OrderMix(Catalogue.from_products(products), options.seed)
    recorder = Recorder(options.slowest, options.check_traces, options.seed)
    async with httpx.AsyncClient(base_url=options.order_url, limits=limits, timeout=30) as client:
        test = LoadTest(
            client,
            mix,
            recorder,
            options.duration,
            options.warmup,
            options.rate,
            options.concurrency,
        )
        loop = asyncio.get_running_loop()
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            test.stop.set()

        loop.add_signal_handler(signal.SIGINT, interrupt)
        total = options.warmup + options.duration
        with Progress(
            TextColumn("[bold]load[/]"),
            BarColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=True,
        ) as progress:
            task_id = progress.add_task("load", total=total, stats="warming up")

            async def refresh() -> None:
                while True:
                    await asyncio.sleep(0.25)
                    elapsed = test.now() - test.started_at
                    measured = max(test.now() - test.measured_from, 1e-9)
                    stats = (
                        "warming up"
                        if measured < 0 or elapsed < options.warmup
                        else f"{recorder.count / measured:6.1f}/s  "
                        f"errors {recorder.errors}  p99 {recorder.percentile(99):.0f} ms"
                    )
                    progress.update(task_id, completed=min(elapsed, total), stats=stats)

            refresher = asyncio.create_task(refresh())
            try:
                measured_s = await test.run()
            finally:
                refresher.cancel()
                loop.remove_signal_handler(signal.SIGINT)

    # The measured window's start on the wall clock, for the metrics' lookback.
    since = time.time() - (test.now() - test.measured_from)
    completeness = Completeness(checked=0, complete=0)
    services: list[ServiceRed] | None = None
    if options.viewer_url and not interrupted:
        with httpx.Client() as http:
            viewer = Viewer(options.viewer_url, http)
            try:
                if recorder.sampled:
                    console.print(
                        f"checking {len(recorder.sampled)} sampled traces in the viewer …"
                    )
                    completeness = await asyncio.to_thread(
                        check_completeness,
                        viewer,
                        recorder.sampled,
                        is_complete,
                        options.trace_wait,
                    )
                services = await asyncio.to_thread(
                    services_red, viewer, since, measured_s, recorder.count, options.metrics_wait
                )
            except ViewerError as exc:
                console.print(Text(f"trace check skipped: {exc}", style="yellow"))
    report = build_report(test, measured_s, completeness, options.viewer_url, interrupted, services)
    print_report(report, console)
    if options.out:
        Path(options.out).write_text(report.model_dump_json(indent=2))  # noqa: ASYNC240
        console.print(f"results written to {options.out}")
    return report
