"""``ordersim up`` with the embedded viewer: the services export to it, and its query API
returns the whole waterfall in OTLP JSON and the same spans in Jaeger JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import StatusCode

from common.fault_rules import ATTR_INJECTED
from ordersim.testing import SpanTree, service_of
from ordersim.testing.processes import Up, free_port, poll, wait_until_up
from tests import ROOT
from tests.helpers import SERVICES, assert_order_waterfall
from tests.otlp_sink import from_otlp_json

EXPECTED = {
    "POST /orders",
    "place_order",
    "reserve_items",
    "authorize_card",
    "rate_shipment",
    "commit_reservation",
    "create_shipment",
    "save_order",
}


def fetch_complete(ui: str, trace_id: str) -> tuple[dict[str, Any], SpanTree]:
    def complete() -> tuple[dict[str, Any], SpanTree] | None:
        response = httpx.get(f"{ui}/api/v3/traces/{trace_id}")
        if response.status_code == 404:
            return None
        document = response.json()
        spans = SpanTree(from_otlp_json(document["result"]["resourceSpans"]))
        # Whole: each process exports its spans as they end, so a SERVER span can arrive
        # after its children, and after the CLIENT span that called it.
        whole = {s.name for s in spans} >= EXPECTED and spans.is_complete()
        return (document, spans) if whole else None

    return poll(complete, 15, f"trace {trace_id} in the viewer")


def viewer_ports(env: dict[str, str]) -> int:
    """Free ports for the viewer's three listeners; the UI port."""
    ui_port = free_port()
    env.update(
        TRACE_VIEWER_OTLP_PORT=str(free_port()),
        TRACE_VIEWER_GRPC_PORT=str(free_port()),
        TRACE_VIEWER_UI_PORT=str(ui_port),
    )
    return ui_port


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_up_with_viewer_shows_the_whole_waterfall(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path, protocol: str
) -> None:
    """The services export with the protocol the environment names, to the viewer's port for
    it; the waterfall is the same."""
    ui_port = viewer_ports(up_env)
    up_env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    ui = f"http://127.0.0.1:{ui_port}"
    up = Up(up_env, tmp_path / "up.log")
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, order_url)
        assert f"{ui}/trace/<trace_id>" in up.output()
        intake = up_env[
            "TRACE_VIEWER_GRPC_PORT" if protocol == "grpc" else "TRACE_VIEWER_OTLP_PORT"
        ]
        transport = "OTLP/gRPC" if protocol == "grpc" else "OTLP/HTTP"
        assert f"spans exported to  http://127.0.0.1:{intake} ({transport})" in up.output()
        assert f"http://127.0.0.1:{up_env['TRACE_VIEWER_GRPC_PORT']} (gRPC)" in up.output()
        body = json.loads((ROOT / "examples" / "order.json").read_text())
        response = httpx.post(f"{order_url}/orders", json=body, timeout=10)
        assert response.status_code == 201
        trace_id, order_id = response.json()["trace_id"], response.json()["order_id"]

        document, spans = fetch_complete(ui, trace_id)
        jaeger = httpx.get(f"{ui}/api/traces/{trace_id}").json()["data"][0]
        listing = httpx.get(f"{ui}/api/summaries", params={"service": "payment-service"}).json()
        by_order = httpx.get(
            f"{ui}/api/summaries", params={"tags": json.dumps({"shop.order.id": order_id})}
        ).json()
        page = httpx.get(f"{ui}/trace/{trace_id}")
        if protocol == "http/protobuf":  # once: what the list counts of an injected fault
            faulted = fault_counts(ui, order_url, f"http://127.0.0.1:{ports['PAYMENT']}", body)
    finally:
        assert up.stop() == 0, up.output()

    # The complete waterfall: four services, one root, no orphans, the gathers overlap.
    assert_order_waterfall(spans)

    # Jaeger JSON carries the same spans, parents and timings.
    assert jaeger["traceID"] == trace_id
    by_id = {s["spanID"]: s for s in jaeger["spans"]}
    assert set(by_id) == {f"{s.context.span_id:016x}" for s in spans}
    for span in spans:
        converted = by_id[f"{span.context.span_id:016x}"]
        assert converted["operationName"] == span.name
        parents = [r["spanID"] for r in converted["references"] if r["refType"] == "CHILD_OF"]
        assert parents == ([f"{span.parent.span_id:016x}"] if span.parent else [])
        assert converted["startTime"] == span.start_time // 1000
        assert jaeger["processes"][converted["processID"]]["serviceName"] == service_of(span)

    # The listing finds it by a service that is not the root's, with its summary.
    row = next(r for r in listing["data"] if r["traceID"] == trace_id)
    assert row["rootName"] == "POST /orders" and row["rootService"] == "order-service"
    assert row["services"] == sorted(SERVICES)
    assert row["spanCount"] == len(spans) and row["errorCount"] == 0
    # Its outcome, from the root span and order-service's place_order span.
    assert (row["rootStatusCode"], row["orderStatus"]) == (201, "confirmed")
    # And a search by the order's id finds it.
    assert trace_id in [r["traceID"] for r in by_order["data"]]
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert document["result"]["resourceSpans"]
    if protocol == "http/protobuf":
        # payment's POST /charges made to fail: its callers fail because of it (the CLIENT
        # call, charge_payment, place_order, POST /orders), which are not real errors.
        errors, faults, row = faulted
        assert errors > faults > 0, (errors, faults)
        assert (row["errorCount"], row["faultCount"]) == (0, faults)


def fault_counts(
    ui: str, order_url: str, payment_url: str, body: dict[str, Any]
) -> tuple[int, int, dict[str, Any]]:
    """An order while payment's ``POST /charges`` answers an injected 500: its ERROR spans and
    faulted spans once its whole trace is in the viewer, and its /api/summaries row."""
    rule = [{"endpoint": "POST /charges", "error_rate": 1}]
    assert httpx.put(f"{payment_url}/admin/faults", json=rule, timeout=10).status_code == 200
    response = httpx.post(f"{order_url}/orders", json=body, timeout=10)
    assert response.status_code == 503, response.text
    trace_id = response.json()["trace_id"]

    def whole() -> tuple[int, int, dict[str, Any]] | None:
        found = httpx.get(f"{ui}/api/v3/traces/{trace_id}")
        if found.status_code == 404:
            return None
        spans = SpanTree(from_otlp_json(found.json()["result"]["resourceSpans"]))
        if not spans.is_complete() or "POST /orders" not in {s.name for s in spans}:
            return None
        rows = httpx.get(f"{ui}/api/summaries", params={"traceID": trace_id}).json()["data"]
        if not rows or rows[0]["spanCount"] != len(spans):
            return None  # a batch stored between the two reads
        errors = sum(s.status.status_code is StatusCode.ERROR for s in spans)
        faults = sum(bool((s.attributes or {}).get(ATTR_INJECTED)) for s in spans)
        return errors, faults, rows[0]

    return poll(whole, 15, f"the faulted order's trace {trace_id} in the viewer")


@pytest.mark.parametrize("variable", ["TRACE_VIEWER_UI_PORT", "TRACE_VIEWER_GRPC_PORT"])
def test_up_names_a_busy_viewer_port(up_env: dict[str, str], tmp_path: Path, variable: str) -> None:
    import socket

    viewer_ports(up_env)
    port = int(up_env[variable])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        up = Up(up_env, tmp_path / "up.log")
        assert up.process.wait(timeout=30) == 2
    assert f"port {port} (trace-viewer) is already in use" in up.output()
    assert variable in up.output()


def test_load_reports_tail_latency_and_complete_traces(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path
) -> None:
    """`ordersim load --rate … --out …` against `ordersim up`: the design's JSON, the slowest
    orders' links open in the viewer, and every checked trace arrived whole."""
    import subprocess
    import sys

    from ordersim.load import LoadReport

    viewer_ports(up_env)
    up = Up(up_env, tmp_path / "up.log")
    out = tmp_path / "r.json"
    try:
        wait_until_up(up, f"http://127.0.0.1:{ports['ORDER']}")
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ordersim",
                "load",
                "--rate",
                "15",
                "--duration",
                "3",
                "--warmup",
                "1",
                "--check-traces",
                "20",
                "--out",
                str(out),
            ],
            env=up_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        report = LoadReport.model_validate_json(out.read_text())
        document = json.loads(out.read_text())
        slowest = report.slowest[0]
        assert slowest.link is not None
        viewed = httpx.get(slowest.link.replace("/trace/", "/api/v3/traces/"))
    finally:
        assert up.stop() == 0, up.output()

    assert set(document) >= {
        "target_rate",
        "achieved_rate",
        "duration_s",
        "requests",
        "status_counts",
        "latency_ms",
        "slowest",
        "trace_completeness",
    }
    assert set(document["latency_ms"]) == {"p50", "p90", "p99", "p999", "max"}
    assert report.target_rate == 15 and 40 <= report.requests <= 50
    assert report.latency_ms.p50 <= report.latency_ms.p99 <= report.latency_ms.max
    assert sum(report.status_counts.values()) == report.requests
    assert report.trace_completeness.checked > 0
    assert report.trace_completeness.complete == report.trace_completeness.checked
    assert viewed.status_code == 200  # the slowest order's trace opens in the viewer
    assert "slowest orders" in run.stdout and "p99" in run.stdout
