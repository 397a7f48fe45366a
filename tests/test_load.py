"""The load generator: its schedule and percentile maths against fake servers whose delays
are known, its report schema, and a short real run against the in-test system.

The fake-server tests run on a fast-forwarded event loop clock (``looptime``): a sleep of
50 ms takes no real time and exactly 50 ms of loop time, and the generator schedules and
measures with that clock. So they assert the generator's arithmetic exactly, and no test
here depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ordersim.load import (
    Catalogue,
    Completeness,
    LoadReport,
    LoadTest,
    OrderMix,
    Outcome,
    Recorder,
    build_report,
    check_completeness,
    print_report,
    services_red,
)
from ordersim.viewer import Viewer

CATALOGUE = Catalogue(plentiful=[f"SKU-{i:04d}" for i in range(1, 9)], scarce=[("SKU-0017", 5)])
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class FakeOrders:
    """POST /orders that answers 201 after `delay` s, optionally one at a time, with one stall."""

    def __init__(self, delay: float, serial: bool = False, stall: tuple[int, float] | None = None):
        self.delay = delay
        self.lock = asyncio.Lock() if serial else None
        self.stall = stall
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = Starlette(routes=[Route("/orders", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> JSONResponse:
        self.arrivals.append(asyncio.get_running_loop().time())
        n = len(self.arrivals)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.stall[1] if self.stall and n == self.stall[0] else self.delay
            if self.lock is not None:
                async with self.lock:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        return JSONResponse(
            {"status": "confirmed"},
            status_code=201,
            headers={"traceresponse": f"00-{TRACE}-00f067aa0ba902b7-03"},
        )


def load_test(server: FakeOrders, **kwargs: Any) -> LoadTest:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server.app), base_url="http://orders"
    )
    return LoadTest(client, OrderMix(CATALOGUE, seed=1), Recorder(keep_slowest=5), **kwargs)


def test_percentiles_match_known_latencies() -> None:
    recorder = Recorder(keep_slowest=3)
    for ms in range(1, 1001):  # 1 ms … 1000 ms, once each
        recorder.record(Outcome(float(ms), 201, f"{ms:032x}", True))
    p = recorder.percentiles()
    # HDR keeps 3 significant digits: each value is within 0.1 % of the exact one.
    for got, exact in ((p.p50, 500), (p.p90, 900), (p.p99, 990), (p.p999, 999)):
        assert exact <= got <= exact * 1.001, (got, exact)
    assert p.max == 1000
    assert [o.latency_ms for o in sorted(recorder.slowest, reverse=True)] == [1000, 999, 998]
    assert recorder.status_counts == {"201": 1000}
    assert len(recorder.sampled) == 50


@pytest.mark.looptime
async def test_open_loop_keeps_its_schedule_and_measures_the_server_delay() -> None:
    server = FakeOrders(delay=0.05)
    test = load_test(server, duration=1.0, rate=40)
    measured = await test.run()

    assert test.recorder.count == len(server.arrivals) == 40
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert gaps == pytest.approx([0.025] * 39)
    p = test.recorder.percentiles()
    assert p.p50 == p.max == pytest.approx(50, rel=1e-3)  # the server's delay, nothing else
    report = build_report(test, measured, Completeness(checked=0, complete=0), None, False)
    assert report.target_rate == 40 and report.achieved_rate == pytest.approx(40)
    assert report.generator.max_lag_ms == pytest.approx(0, abs=1e-6)
    # flags 03 = sampled + W3C level-2 "random": still a sampled order
    assert test.recorder.sampled and test.recorder.sampled[0] == TRACE


@pytest.mark.looptime
async def test_a_stall_shows_in_the_tail_instead_of_slowing_the_generator() -> None:
    # One request at a time, 5 ms each, but the 5th takes 600 ms: everything sent during
    # the stall waits behind it. Measured from the *intended* send time, the tail shows it.
    server = FakeOrders(delay=0.005, serial=True, stall=(5, 0.6))
    test = load_test(server, duration=1.5, rate=50)
    await test.run()

    assert test.recorder.count == 75  # the schedule was kept through the stall
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert gaps == pytest.approx([0.02] * 74)
    # The 5th (sent at 80 ms) answers at 680 ms; the 6th, sent at 100 ms, waited behind it
    # and answers 5 ms later: 585 ms from its intended time, and so on down the queue.
    assert test.recorder.max_ms == pytest.approx(600, rel=1e-3)
    latencies = sorted(o.latency_ms for o in test.recorder.slowest)
    assert latencies[-2] == pytest.approx(585, rel=1e-3)
    # Each later one gains 15 ms (20 ms apart, 5 ms each) until the queue is gone.
    assert latencies[-3] == pytest.approx(570, rel=1e-3)
    assert test.recorder.percentile(50) < test.recorder.percentile(90)


@pytest.mark.looptime
async def test_closed_loop_keeps_n_in_flight_and_warmup_is_not_recorded() -> None:
    server = FakeOrders(delay=0.02)
    test = load_test(server, duration=0.5, warmup=0.3, concurrency=3)
    await test.run()

    assert server.max_in_flight == 3
    # Each of the 3 clients sends every 20 ms for 0.8 s; only the last 0.5 s is recorded.
    assert len(server.arrivals) == test.sent == 3 * 40
    assert 3 * 24 <= test.recorder.count <= 3 * 26
    assert test.recorder.percentiles().max == pytest.approx(20, rel=1e-3)


def test_order_mix_is_weighted_and_reproducible() -> None:
    kinds = [OrderMix(CATALOGUE, seed=3).next()[0] for _ in range(1)]
    mix = OrderMix(CATALOGUE, seed=3)
    bodies = [mix.next() for _ in range(2000)]
    assert [k for k, _ in bodies[:1]] == kinds
    counts = {
        k: sum(1 for kind, _ in bodies if kind == k)
        for k in ("normal", "scarce", "declined", "insufficient", "invalid")
    }
    assert 0.75 < counts["normal"] / 2000 < 0.89
    assert all(counts[k] > 20 for k in counts)
    assert all(1 <= len(body["items"]) <= 5 for _, body in bodies)


def test_completeness_polls_until_traces_are_whole() -> None:
    calls: dict[str, int] = {}

    def trace(request: httpx.Request) -> httpx.Response:
        trace_id = request.url.path.removeprefix("/api/v3/traces/")
        calls[trace_id] = calls.get(trace_id, 0) + 1
        if trace_id == "missing":
            return httpx.Response(404, json={})
        # "late" becomes complete on the third look; "never" never does.
        whole = trace_id == "late" and calls[trace_id] >= 3
        return httpx.Response(200, json={"result": {"resourceSpans": [{"whole": whole}]}})

    with httpx.Client(transport=httpx.MockTransport(trace)) as client:
        result = check_completeness(
            Viewer("http://viewer", client),
            ["late", "never", "missing"],
            lambda rs: bool(rs[0]["whole"]),
            wait_s=1.5,
        )
    assert result == Completeness(checked=3, complete=1)


async def test_short_real_run_against_the_in_test_system(start_system: Any) -> None:
    # Generous timeouts: what is checked is the report, not how fast a busy machine is.
    async with start_system() as system:
        products = (await system.inventory.get("/products")).json()
        test = LoadTest(
            system.order,
            OrderMix(Catalogue.from_products(products), seed=5),
            Recorder(keep_slowest=5),
            duration=1.0,
            rate=30,
        )
        measured = await test.run()
        report = build_report(
            test, measured, Completeness(checked=0, complete=0), "http://viewer", False
        )

        # The schema round-trips, and the mix produced several outcomes.
        assert LoadReport.model_validate_json(report.model_dump_json()) == report
        assert sum(report.status_counts.values()) == report.requests >= 25
        assert "201" in report.status_counts and "422" in report.status_counts
        assert set(report.status_counts) <= {"201", "402", "409", "422"}
        slowest = report.slowest[0]
        assert slowest.trace_id and slowest.link == f"http://viewer/trace/{slowest.trace_id}"
        # The slowest order's trace id is a real trace the system recorded.
        assert any(f"{s.context.trace_id:032x}" == slowest.trace_id for s in system.spans())

        # A narrow terminal wraps the slowest orders' links; it never cuts a trace id short.
        console = Console(width=60, record=True)
        print_report(report, console)
        printed = "".join(console.export_text().replace("│", "").split())
        assert all(order.link and order.link in printed for order in report.slowest)


def test_each_services_red_is_read_once_the_runs_metrics_have_arrived() -> None:
    looks: list[int] = []

    def row(service: str, operation: str, requests: int) -> dict[str, Any]:
        return {
            "service": service,
            "operation": operation,
            "rate": requests / 300,  # the API's rate is per second of its lookback
            "error_rate": 0.1,
            "p50_ms": 12.5,
            "p95_ms": 40.0,
            "p99_ms": None,
            "requests": requests,
            "errors": requests // 10,
            "exemplars": [
                {"trace_id": "a" * 32, "span_id": "b" * 16, "value_ms": 41.0, "time_ms": 1}
            ],
            "series": [],
        }

    def red(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/metrics/red"
        looks.append(int(request.url.params["lookback"]))
        # The order service's last export lands on the third look.
        orders = 30 if len(looks) >= 3 else 10
        rows = [
            row("order-service", "POST /orders", orders),
            row("payment-service", "POST /charges", 20),
        ]
        return httpx.Response(200, json={"services": rows})

    with httpx.Client(transport=httpx.MockTransport(red)) as client:
        since = time.time() - 10
        viewer = Viewer("http://viewer", client)
        services = services_red(viewer, since, measured_s=10.0, orders=30, wait_s=30)
    assert services is not None and len(looks) == 3
    assert all(10_000 <= lookback < 40_000 for lookback in looks)  # from the run's start
    orders = next(s for s in services if s.service == "order-service")
    assert (orders.requests, orders.rate, orders.error_rate, orders.p99_ms) == (30, 3.0, 0.1, None)
    assert orders.exemplars[0].trace_id == "a" * 32

    # A viewer without metrics (Jaeger): no services in the report, not an error.
    jaeger = httpx.MockTransport(lambda request: httpx.Response(404, text="404 page not found"))
    with httpx.Client(transport=jaeger) as client:
        assert services_red(Viewer("http://viewer", client), time.time(), 1.0, 5, wait_s=1) is None

    report = LoadReport.model_validate(
        {
            "mode": "open", "target_rate": 3.0, "achieved_rate": 3.0, "concurrency": None,
            "duration_s": 10.0, "requests": 30, "status_counts": {"201": 30},
            "latency_ms": {"p50": 1, "p90": 1, "p99": 1, "p999": 1, "max": 1},
            "slowest": [], "trace_completeness": {"checked": 0, "complete": 0},
            "generator": {"max_lag_ms": 0, "late_sends": 0, "behind_schedule": False},
            "services": [s.model_dump() for s in services],
        }
    )  # fmt: skip
    console = Console(width=120, record=True)
    print_report(report, console)
    text = console.export_text()
    assert "POST /orders" in text and "POST /charges" in text and "≈12.5" in text
    assert "bucket estimates" in text
