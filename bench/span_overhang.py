"""Do server spans end after the client span that called them? Measured on real processes.

    .venv/bin/python bench/span_overhang.py [--rate 20] [--seconds 10] [--rounds 1]
    .venv/bin/python bench/span_overhang.py --concurrency 16      # at saturation instead

Starts the trace viewer and the four services as separate processes (as bench/overhead.py
does), drives orders with the load generator (open loop at ``--rate``, or closed loop with
``--concurrency``), then reads every trace back from the viewer in OTLP JSON (nanosecond
times). For every HTTP call that was answered it compares the end of the callee's SERVER
span with the end of the caller's CLIENT span. All processes share one machine and one
clock, so a SERVER span that ends after its CLIENT parent is not clock skew: the caller
had its answer, and ended its span, before the callee ended its own.

Prints, per round and over all rounds: the share of traces with at least one such
SERVER span, the share of calls, and the median, p99 and maximum of the overhang (over
the calls that overhang), and the calls that overhang most often, by endpoint.

With ``--probe`` the services run under bench/overhang_probe.py, which times uvicorn's
writes of each response's last bytes, and every overhanging call is put in one of three
places: the CLIENT span ended before the server began writing the response's last bytes
(it ended at the head); it ended while the server was inside that write (the write woke
the client, which took the CPU); or it ended after the write and the server span ended
later still (what the server ran between its last byte and the span's end). The last
figure is printed for every call too: the server's tail after its last write.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.overhead import System  # noqa: E402

SERVER, CLIENT = 2, 3  # OTLP span kinds
SETTLE_SECONDS = 6.0
PROBE = ROOT / "bench" / "overhang_probe.py"


@dataclass
class Span:
    span_id: str
    parent_id: str
    name: str
    kind: int
    end_ns: int
    attributes: dict[str, Any]


@dataclass
class Round:
    traces: int = 0
    traces_overhanging: int = 0
    calls: int = 0
    overhangs_ns: list[int] = field(default_factory=list)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    #: --probe: where each overhanging call's CLIENT span ended, and every call's tail.
    where: Counter[str] = field(default_factory=Counter)
    tails_ns: list[int] = field(default_factory=list)

    def add(self, other: Round) -> None:
        self.traces += other.traces
        self.traces_overhanging += other.traces_overhanging
        self.calls += other.calls
        self.overhangs_ns += other.overhangs_ns
        self.by_endpoint.update(other.by_endpoint)
        self.where.update(other.where)
        self.tails_ns += other.tails_ns


def _ns(span: Span, key: str) -> int | None:
    value = span.attributes.get(key)
    return int(value["intValue"]) if value else None


def spans_of(document: dict[str, Any]) -> list[Span]:
    found = []
    for resource in document["result"]["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for raw in scope["spans"]:
                attributes = {a["key"]: a["value"] for a in raw.get("attributes", [])}
                found.append(
                    Span(
                        span_id=raw["spanId"],
                        parent_id=raw.get("parentSpanId", ""),
                        name=raw["name"],
                        kind=int(raw["kind"]),
                        end_ns=int(raw["endTimeUnixNano"]),
                        attributes=attributes,
                    )
                )
    return found


def http_calls(spans: list[Span]) -> list[tuple[Span, Span]] | None:
    """(CLIENT, SERVER) per answered HTTP call; None while a callee's span is missing."""
    by_id = {s.span_id: s for s in spans}
    servers = {s.parent_id: s for s in spans if s.kind == SERVER and s.parent_id}
    calls = []
    for client in by_id.values():
        if client.kind != CLIENT or "http.request.method" not in client.attributes:
            continue
        if "http.response.status_code" not in client.attributes:
            continue  # unanswered (timed out): its server may rightly go on
        server = servers.get(client.span_id)
        if server is None:
            return None
        calls.append((client, server))
    return calls


async def measure(viewer: str, wait: float) -> Round:
    """Every order's trace in the viewer, each once all its spans have arrived."""
    result = Round()
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http:
        deadline = time.monotonic() + wait
        trace_ids: list[str] = []
        settled_at = time.monotonic()
        # The services export in batches (OTEL_BSP_SCHEDULE_DELAY, 5 s): list the orders
        # once no new one has arrived for longer than that.
        while time.monotonic() - settled_at < SETTLE_SECONDS:
            listed = await http.get(
                "/api/summaries",
                params={"service": "order-service", "operation": "POST /orders", "limit": 1000},
            )
            found = [t["traceID"] for t in listed.raise_for_status().json()["data"]]
            if len(found) != len(trace_ids):
                trace_ids, settled_at = found, time.monotonic()
            await asyncio.sleep(0.5)
        for trace_id in trace_ids:
            while True:
                document = (await http.get(f"/api/v3/traces/{trace_id}")).json()
                calls = http_calls(spans_of(document))
                if calls is not None:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"trace {trace_id} still incomplete after {wait:g}s")
                await asyncio.sleep(0.5)
            result.traces += 1
            result.calls += len(calls)
            late = [(c, s) for c, s in calls if s.end_ns > c.end_ns]
            result.traces_overhanging += bool(late)
            for client, server in late:
                result.overhangs_ns.append(server.end_ns - client.end_ns)
                result.by_endpoint[server.name] += 1
                write, written = (
                    _ns(server, "bench.body_write_ns"),
                    _ns(server, "bench.body_written_ns"),
                )
                if write is None or written is None:
                    continue
                if client.end_ns < write:
                    result.where["before the server wrote its last bytes"] += 1
                elif client.end_ns < written:
                    result.where["while the server was in that write"] += 1
                else:
                    result.where["after that write, before the server span ended"] += 1
            for _, server in calls:
                written = _ns(server, "bench.body_written_ns")
                if written is not None:
                    result.tails_ns.append(server.end_ns - written)
    return result


def report(title: str, r: Round) -> str:
    lines = [title]
    share = 100 * r.traces_overhanging / max(r.traces, 1)
    lines.append(
        f"  traces with a SERVER span ending after its CLIENT parent: "
        f"{r.traces_overhanging} of {r.traces} ({share:.1f} %)"
    )
    lines.append(
        f"  calls: {len(r.overhangs_ns)} of {r.calls} "
        f"({100 * len(r.overhangs_ns) / max(r.calls, 1):.1f} %)"
    )
    if r.overhangs_ns:
        ms = sorted(ns / 1e6 for ns in r.overhangs_ns)
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        lines.append(
            f"  overhang: median {statistics.median(ms):.3f} ms, p99 {p99:.3f} ms, "
            f"max {ms[-1]:.3f} ms"
        )
        common = ", ".join(f"{name} {n}" for name, n in r.by_endpoint.most_common(4))
        lines.append(f"  most often: {common}")
    for where, n in r.where.most_common():
        lines.append(f"  the CLIENT span ended {where}: {n}")
    if r.tails_ns:
        us = sorted(ns / 1e3 for ns in r.tails_ns)
        lines.append(
            f"  server span end after its last write, every call: median "
            f"{statistics.median(us):.1f} µs, p99 {us[int(0.99 * (len(us) - 1))]:.1f} µs, "
            f"max {us[-1]:.1f} µs"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20, help="orders/s, open loop")
    parser.add_argument("--concurrency", type=int, help="closed loop with N clients instead")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="each on a freshly started system")
    parser.add_argument("--wait", type=float, default=30, help="seconds for spans to arrive")
    parser.add_argument(
        "--probe", action="store_true", help="time the servers' last writes (see above)"
    )
    args = parser.parse_args()
    load = f"{args.concurrency} clients" if args.concurrency else f"{args.rate:g} orders/s"
    total = Round()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            data = Path(tmp) / f"round{round_}"
            data.mkdir()
            system = System("100% sampled", {}, data)
            if args.probe:
                for service in system.services[1:]:  # the four services, not the viewer
                    service.command = [sys.executable, str(PROBE), service.package]
            async with system:
                if args.concurrency:
                    await system.load(concurrency=args.concurrency, seconds=args.seconds)
                else:
                    await system.load(rate=args.rate, seconds=args.seconds)
                result = await measure(system.viewer_url, args.wait)
            print(report(f"round {round_} ({load}, {args.seconds:g} s):", result), flush=True)
            total.add(result)
    if args.rounds > 1:
        print(report(f"all {args.rounds} rounds:", total))


if __name__ == "__main__":
    asyncio.run(main())
