"""``ordersim trace`` and ``ordersim order``: waterfalls of traces read back from a real
trace viewer process, and orders placed on the four services under ``ordersim up``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

import ordersim.viewer
from common import topology
from ordersim import incomplete, order_cmd, trace_cmd
from ordersim.cli import main
from ordersim.testing.processes import (
    Up,
    Viewer,
    clean_env,
    free_port,
    running_viewer,
    wait_until_up,
)
from ordersim.waterfall import Trace, Waterfall, parse_otlp
from payment_service import cards
from tests import ROOT
from tests.helpers import SERVICES, make_order_id

T0 = 1_700_000_000_000_000_000  # ns
WIDE = 200


def ms(value: float) -> str:
    return str(T0 + round(value * 1_000_000))


def otlp_span(
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    kind: int,
    start: float,
    end: float,
    attributes: dict[str, str | int] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": ms(start),
        "endTimeUnixNano": ms(end),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in (attributes or {}).items()
        ],
        "status": {} if error is None else {"code": 2, "message": error},
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def resource_spans(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }


def http_client(method: str, port: int, path: str) -> dict[str, str | int]:
    return {
        "http.request.method": method,
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": f"http://127.0.0.1:{port}{path}",
    }


#: span id → (name, duration in ms as printed)
CHECKOUT = {
    "a000000000000001": ("POST /checkout", "48.00"),
    "a000000000000002": ("place_checkout", "44.75"),
    "a000000000000003": ("GET", "12.50"),
    "a000000000000004": ("POST", "24.00"),
    "b000000000000001": ("GET /stock", "10.25"),
    "b000000000000002": ("SELECT stock", "2.50"),
    "c000000000000001": ("POST /charges", "22.00"),
    "c000000000000002": ("authorize_card", "12.75"),
}
DECLINED = "card declined by issuer"
CHECKOUT_BARS = ("POST /checkout", "POST /charges")


def checkout_trace(trace_id: str) -> dict[str, list[dict[str, Any]]]:
    """Three services: order-service calls inventory (fine) and payment (an ERROR span)."""
    t = trace_id
    order = [  # posted out of order: the waterfall sorts siblings by start time
        otlp_span(t, "a000000000000004", "a000000000000002", "POST", 3, 16, 40,
                  http_client("POST", 18002, "/charges") | {"http.response.status_code": 402},
                  error=""),
        otlp_span(t, "a000000000000001", "", "POST /checkout", 2, 0, 48,
                  {"http.request.method": "POST", "server.port": 18000}),
        otlp_span(t, "a000000000000002", "a000000000000001", "place_checkout", 1, 1.5, 46.25),
        otlp_span(t, "a000000000000003", "a000000000000002", "GET", 3, 2, 14.5,
                  http_client("GET", 18001, "/stock")),
    ]  # fmt: skip
    inventory = [
        otlp_span(t, "b000000000000001", "a000000000000003", "GET /stock", 2, 3, 13.25,
                  {"http.request.method": "GET", "server.port": 18001}),
        otlp_span(t, "b000000000000002", "b000000000000001", "SELECT stock", 3, 4, 6.5),
    ]  # fmt: skip
    payment = [
        otlp_span(t, "c000000000000001", "a000000000000004", "POST /charges", 2, 17, 39,
                  {"http.request.method": "POST", "server.port": 18002}),
        otlp_span(t, "c000000000000002", "c000000000000001", "authorize_card", 1, 18, 30.75,
                  error=DECLINED),
    ]  # fmt: skip
    return {"order-service": order, "inventory-service": inventory, "payment-service": payment}


def document(services: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"resourceSpans": [resource_spans(name, spans) for name, spans in services.items()]}


def table_rows(out: str) -> list[str]:
    """The lines under the waterfall's header rule."""
    lines = out.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("───")) + 1 :]


def row_of(rows: list[str], name: str) -> int:
    """The row of the span called ``name`` (the name column ends in two spaces)."""
    return next(i for i, line in enumerate(rows) if line.lstrip(" ✗⚠⚡").startswith(f"{name}  "))


def render(trace: Trace, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(Waterfall(trace))
    return out.getvalue()


@pytest.fixture(autouse=True)
def plain_wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich writes uncoloured, 200 columns wide, into capsys."""
    monkeypatch.setenv("COLUMNS", str(WIDE))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    with running_viewer(tmp_path_factory.mktemp("viewer")) as running:
        yield running


@pytest.fixture(scope="module")
def stored(viewer: Viewer) -> str:
    """The id of the checkout trace, exported to the viewer one service at a time."""
    trace_id = os.urandom(16).hex()
    for service, spans in checkout_trace(trace_id).items():
        response = httpx.post(viewer.traces_endpoint, json=document({service: spans}))
        assert response.status_code == 200, response.text
        assert "partialSuccess" not in response.json(), response.text
    return trace_id


# --- ordersim trace, against the viewer ------------------------------------------------------


def test_trace_prints_the_waterfall(
    viewer: Viewer, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", stored, "--endpoint", viewer.ui]) == 0
    out = capsys.readouterr().out

    title, stats = out.splitlines()[:2]
    assert title.startswith(f"trace {stored}  POST /checkout (order-service)")
    assert stats.startswith("48.00 ms  8 spans  2 errors  3 services: order-service, inventory")
    rows = table_rows(out)
    for name, duration in CHECKOUT.values():
        row = rows[row_of(rows, name)]
        assert duration in row.split(), (name, row)
        assert "█" in row
    for service in ("order-service", "inventory-service", "payment-service"):
        assert service in out
    assert DECLINED in out
    assert "HTTP 402" in out  # the client span's error says what it got

    # Indented under parents, siblings by start time: GET (2 ms) before POST (16 ms).
    position = {name: row_of(rows, name) for name, _ in CHECKOUT.values()}
    assert (
        position["POST /checkout"]
        < position["place_checkout"]
        < position["GET"]
        < position["GET /stock"]
        < position["SELECT stock"]
        < position["POST"]
        < position["POST /charges"]
        < position["authorize_card"]
    )
    indent = {name: len(rows[i]) - len(rows[i].lstrip(" ")) for name, i in position.items()}
    assert indent["POST /checkout"] < indent["place_checkout"] < indent["GET"]
    assert indent["GET"] < indent["GET /stock"] < indent["SELECT stock"]
    assert indent["GET"] == indent["POST"]


def test_trace_bar_spans_the_time_axis(
    viewer: Viewer, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", stored, "--endpoint", viewer.ui]) == 0
    out = capsys.readouterr().out
    axis = next(line for line in out.splitlines() if line.startswith("span"))
    assert axis.rstrip().endswith("48.00 ms")
    rows = table_rows(out)
    bars = {name: rows[row_of(rows, name)].split()[-1] for name in CHECKOUT_BARS}
    root, charges = (bars[name] for name in CHECKOUT_BARS)
    assert len(root) == len(charges) == 40
    assert root == "█" * 40  # the root spans the whole trace
    # 17-39 ms of 48: starts about a third in, ends near the right
    assert charges.index("█") == 14 and charges.rindex("█") == 32


def test_trace_json_is_the_otlp_document(
    viewer: Viewer, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", stored.upper(), "--json", "--endpoint", viewer.ui + "/"]) == 0
    out = capsys.readouterr().out
    received = httpx.get(f"{viewer.ui}/api/v3/traces/{stored}").json()
    assert json.loads(out) == received
    assert out.startswith('{\n  "result": {\n    "resourceSpans": [')
    span_ids = {
        span["spanId"]
        for rs in json.loads(out)["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    assert span_ids == set(CHECKOUT)


def test_trace_jaeger_has_the_same_spans(
    viewer: Viewer, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", stored, "--jaeger", "--endpoint", viewer.ui]) == 0
    (trace,) = json.loads(capsys.readouterr().out)["data"]
    assert trace["traceID"] == stored
    assert {span["spanID"] for span in trace["spans"]} == set(CHECKOUT)


def test_nan_and_infinite_attributes_in_every_output(
    viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id = os.urandom(16).hex()
    span = otlp_span(trace_id, "d000000000000001", "", "measure", 1, 0, 5)
    span["attributes"] = [
        {"key": key, "value": {"doubleValue": value}}
        for key, value in (("ratio", "NaN"), ("ceiling", "Infinity"), ("floor", "-Infinity"))
    ]
    response = httpx.post(viewer.traces_endpoint, json=document({"nan-service": [span]}))
    assert response.status_code == 200, response.text

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    assert main(["trace", trace_id, "--endpoint", viewer.ui]) == 0
    assert "measure" in capsys.readouterr().out
    assert main(["trace", trace_id, "--json", "--endpoint", viewer.ui]) == 0
    (otlp,) = json.loads(capsys.readouterr().out, parse_constant=refuse)["result"]["resourceSpans"]
    values = [kv["value"] for kv in otlp["scopeSpans"][0]["spans"][0]["attributes"]]
    assert values == [{"doubleValue": "NaN"}, {"doubleValue": "+Inf"}, {"doubleValue": "-Inf"}]
    assert main(["trace", trace_id, "--jaeger", "--endpoint", viewer.ui]) == 0
    (trace,) = json.loads(capsys.readouterr().out, parse_constant=refuse)["data"]
    tags = {t["key"]: t["value"] for t in trace["spans"][0]["tags"]}
    assert (tags["ratio"], tags["ceiling"], tags["floor"]) == ("NaN", "+Inf", "-Inf")


def test_unknown_trace_is_exit_1(viewer: Viewer, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = os.urandom(16).hex()
    assert main(["trace", unknown, "--endpoint", viewer.ui]) == 1
    captured = capsys.readouterr()
    assert f"trace {unknown} not found at {viewer.ui}" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("bad", ["xyz", "0" * 31, "g" * 32, "0" * 33])
def test_malformed_trace_id_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", bad, "--endpoint", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "ordersim trace: error: argument TRACE_ID" in capsys.readouterr().err


def test_json_and_jaeger_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["trace", "0" * 32, "--json", "--jaeger"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_unreachable_viewer_is_exit_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert main(["trace", "ab" * 16, "--endpoint", endpoint]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the trace viewer at {endpoint}" in err
    assert "Traceback" not in err


def test_default_endpoint_follows_trace_viewer_ui_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACE_VIEWER_UI_PORT", raising=False)
    assert topology.VIEWER.ui_url() == "http://127.0.0.1:16686"
    monkeypatch.setenv("TRACE_VIEWER_UI_PORT", "17000")
    assert topology.VIEWER.ui_url() == "http://127.0.0.1:17000"


def test_command_line_in_a_narrow_terminal(viewer: Viewer, stored: str) -> None:
    """The real entry point, 60 columns: every line fits, names are cut, nothing breaks."""
    result = subprocess.run(
        [sys.executable, "-m", "ordersim", "trace", stored, "--endpoint", viewer.ui],
        env=clean_env() | {"COLUMNS": "60"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 60 for line in lines), result.stdout
    assert sum("█" in line for line in lines) == len(CHECKOUT)
    assert "authorize_c" in result.stdout and "declined" in result.stdout


# --- the waterfall on its own ----------------------------------------------------------------


def big_trace(count: int) -> Trace:
    """``count`` spans over five services, a chain of nested calls with long names."""
    services = ["order-service", "inventory-service", "payment-service", "shipping-service"]
    services.append("a-service-with-a-much-longer-name-than-usual")
    by_service: dict[str, list[dict[str, Any]]] = {s: [] for s in services}
    for i in range(count):
        parent = "" if i == 0 else f"{(i - 1) // 3 + 1:016x}"
        by_service[services[i % len(services)]].append(
            otlp_span("f" * 32, f"{i + 1:016x}", parent,
                      f"operation_{i}_with_a_fairly_long_descriptive_name", 1 + i % 3,
                      i * 0.7, i * 0.7 + 30 - (i % 30))
        )  # fmt: skip
    return Trace(parse_otlp(document(by_service)))


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_a_hundred_spans_fit_any_width(width: int) -> None:
    trace = big_trace(100)
    out = render(trace, width)
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), out
    assert sum("█" in line for line in lines) == 100
    assert "100 spans" in out.replace("\n", " ")
    if width >= 80:  # each row still says which span it is
        for i in range(100):
            assert f"operation_{i}_" in out


def test_services_keep_their_colour() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, color_system="truecolor", force_terminal=True)
    console.print(Waterfall(Trace(parse_otlp(document(checkout_trace("e" * 32))))))
    text = out.getvalue()
    from ordersim.waterfall import service_colour

    assert service_colour("payment-service") == "magenta"
    assert service_colour("some-other-service") == service_colour("some-other-service")
    assert service_colour("some-other-service") != "red"
    assert "\x1b[" in text  # coloured when the terminal is


def test_orphans_are_top_level_and_flagged() -> None:
    services = checkout_trace("d" * 32)
    del services["order-service"][1:3]  # the root and place_checkout have not arrived
    trace = Trace(parse_otlp(document(services)))
    out = render(trace, 160)
    assert trace.root is None and not trace.is_complete()
    assert "(root span missing)" in out
    assert "2 orphans" in out
    assert "⚠ GET" in out and "parent a000000000000002 missing" in out
    for line in out.splitlines():
        if "⚠" in line:
            assert line.startswith("⚠")  # at the top level, not indented


def test_injected_faults_and_spans_outside_their_parent_are_marked() -> None:
    services = checkout_trace("e" * 32)
    charges = services["payment-service"][0]  # POST /charges, under the CLIENT span POST
    charges["endTimeUnixNano"] = ms(40.42)  # 0.42 ms after the client span ended
    charges["attributes"].append({"key": "ordersim.fault.injected", "value": {"boolValue": True}})
    trace = Trace(parse_otlp(document(services)))
    assert trace.overhang(trace.by_id["c000000000000001"]) == (0, 420_000)
    assert trace.overhang(trace.by_id["c000000000000002"]) == (0, 0)
    out = render(trace, 160)
    assert "1 injected" in out.splitlines()[1]
    rows = table_rows(out)
    charges_row = row_of(rows, "POST /charges")
    assert "⚡ POST /charges" in rows[charges_row]
    notes = " ".join(rows[charges_row : charges_row + 3])
    assert "injected fault" in notes and "⇥ ends 0.42 ms after its parent" in notes


def test_errors_an_injected_fault_caused_are_counted_apart_from_real_errors() -> None:
    """The viewer's rule: an ERROR span a fault touched, or above one, failed because of it."""
    services = checkout_trace("d" * 32)
    charges = services["payment-service"][0]  # POST /charges (SERVER), the fault's
    charges["attributes"].append({"key": "ordersim.fault.injected", "value": {"boolValue": True}})
    by_id = {s["spanId"]: s for spans in services.values() for s in spans}
    client = by_id[charges["parentSpanId"]]  # POST /charges (CLIENT), failed because of it
    real = services["inventory-service"][0]  # a failure of its own, off the fault's path
    for span in (charges, client, real):
        span["status"] = {"code": 2}
    trace = Trace(parse_otlp(document(services)))
    # authorize_card, under the faulted span, declined the card: an error of its own.
    assert {s.span_id for s in trace.real_errors} == {real["spanId"], "c000000000000002"}
    header = render(trace, 160).splitlines()[1]
    assert "2 errors" in header and "2 caused by injected faults" in header
    assert "1 injected" in header


def test_a_parent_cycle_is_still_shown() -> None:
    spans = [
        otlp_span("c" * 32, "0000000000000001", "0000000000000002", "ping", 1, 0, 1),
        otlp_span("c" * 32, "0000000000000002", "0000000000000001", "pong", 1, 0.5, 2),
    ]
    out = render(Trace(parse_otlp(document({"loop-service": spans}))), 120)
    assert "ping" in out and "pong" in out and "in a parent cycle" in out


def test_completeness() -> None:
    services = checkout_trace("a" * 32)
    assert Trace(parse_otlp(document(services))).is_complete()
    payment = services.pop("payment-service")
    partial = Trace(parse_otlp(document(services)))
    assert not partial.is_complete()
    assert [s.name for s in partial.unanswered_calls()] == ["POST"]
    # Only HTTP client spans wait for a child: the database span is no call to a service.
    services["payment-service"] = payment
    del services["inventory-service"][1]
    assert Trace(parse_otlp(document(services))).is_complete()


def test_a_trace_with_two_roots_or_a_parent_cycle_is_not_complete() -> None:
    """One rule (waterfall.Trace.is_complete) for the tests, `ordersim load` and `order`: a
    request starts one root, and a second one never joins the tree however long one waits."""
    services = checkout_trace("a" * 32)
    services["inventory-service"][0]["parentSpanId"] = ""  # GET /stock lost its parent id
    services["order-service"].pop()  # and its CLIENT span, which would be unanswered
    trace = Trace(parse_otlp(document(services)))
    assert len(trace.roots) == 2 and not trace.orphans and not trace.unanswered_calls()
    assert not trace.is_complete()
    assert incomplete.missing_reports(trace) == ["2 spans have no parent (a trace has one root)"]
    # Two spans that name each other as parent hang under no root.
    services = checkout_trace("a" * 32)
    services["payment-service"][0]["parentSpanId"] = "c000000000000002"
    trace = Trace(parse_otlp(document(services)))
    assert len(trace.roots) == 1 and not trace.orphans
    assert [s.name for s in trace.unreachable()] == ["POST /charges", "authorize_card"]
    assert not trace.is_complete()


def test_missing_services_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_SERVICE_PORT", "18002")
    monkeypatch.delenv("ORDER_SERVICE_PAYMENT_URL", raising=False)
    services = checkout_trace("a" * 32)
    del services["payment-service"]
    services["order-service"] += [
        # inventory-service answered on 18001 in this trace, so 18001 is inventory-service
        otlp_span("a" * 32, "a000000000000005", "a000000000000002", "POST", 3, 41, 42,
                  http_client("POST", 18001, "/reservations")),
        otlp_span("a" * 32, "a000000000000006", "a000000000000002", "POST", 3, 42, 43,
                  http_client("POST", 9999, "/elsewhere")),
    ]  # fmt: skip
    reports = incomplete.missing_reports(Trace(parse_otlp(document(services))))
    assert reports == [
        "payment-service never reported (no server span for POST http://127.0.0.1:18002/charges)",
        "inventory-service never reported "
        "(no server span for POST http://127.0.0.1:18001/reservations)",
        "127.0.0.1:9999 never reported (no server span for POST http://127.0.0.1:9999/elsewhere)",
    ]


# --- ordersim order ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def order_url(viewer: Viewer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The four services under ``ordersim up --no-viewer``, exporting to the viewer."""
    tmp = tmp_path_factory.mktemp("up")
    ports = {name: free_port() for name in ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")}
    env = clean_env() | {f"{name}_SERVICE_PORT": str(port) for name, port in ports.items()}
    env |= {
        "ORDERSIM_DATA_DIR": str(tmp / "data"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": viewer.otlp,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    up = Up(env, tmp / "up.log", "--no-viewer")
    url = f"http://127.0.0.1:{ports['ORDER']}"
    try:
        wait_until_up(up, url)
        yield url
    finally:
        assert up.stop() == 0, up.output()


def test_order_prints_outcome_and_complete_waterfall(
    order_url: str, viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["order", "--url", order_url, "--endpoint", viewer.ui])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured
    assert "confirmed  (HTTP 201)" in out
    assert "total     " in out and "tracking  TRK" in out
    trace_id = out.split(f"{viewer.ui}/trace/")[1][:32]
    assert httpx.get(f"{viewer.ui}/trace/{trace_id}").status_code == 200
    for service in SERVICES:
        assert service in out
    for name in ("POST /orders", "reserve_items", "authorize_card", "create_shipment"):
        assert name in out
    assert "never reported" not in out + captured.err
    assert "✗" not in out


def test_order_with_a_declined_card(
    order_url: str, viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["order", "--url", order_url, "--endpoint", viewer.ui, "--card", "declined",
         "--items", "SKU-0004:1", "SKU-0005:2"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "payment_failed  (HTTP 402)" in captured.out
    assert "card_declined: the card was declined" in captured.out
    assert "✗ authorize_card" in captured.out
    assert "PaymentDeclined: the card was declined" in captured.out  # the span's status
    assert "release_stock" in captured.out  # the compensation
    assert "never reported" not in captured.out


def test_order_follow_prints_the_steps_as_they_happen(
    order_url: str, viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["order", "--url", order_url, "--endpoint", viewer.ui, "--follow"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured
    assert "accepted (HTTP 202)" in out
    steps = [
        line.split()[1]
        for line in out.splitlines()
        if re.match(r"^\s+\d\d:\d\d:\d\d\.\d{3}\s", line)
    ]
    assert steps == ["pending", "reserved", "charged", "shipped", "confirmed"]
    assert "confirmed  (HTTP 201)" in out and "tracking  TRK" in out
    request, steps_part = out.split("its steps, after the response: trace ")
    assert "accept_order" in request and "place_order" not in request
    for name in ("place_order", "reserve_items", "authorize_card", "create_shipment"):
        assert name in steps_part
    assert "incomplete" not in out + captured.err


def test_order_rejected_by_validation(
    order_url: str, viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["order", "--url", order_url, "--endpoint", viewer.ui, "--card", "4242424242424241"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "HTTP 422" in captured.err
    assert "body.payment.card_number: Value error, card number fails the Luhn check" in (
        captured.err
    )
    assert "4242424242424241" not in captured.out + captured.err


@pytest.mark.parametrize(
    "args", [["--items", "SKU-0001"], ["--items", "SKU-0001:0"], ["--card", "visa"]]
)
def test_order_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["order", "--url", f"http://127.0.0.1:{free_port()}", *args]) == 2
    assert "ordersim order: error: argument" in capsys.readouterr().err


def test_order_service_down_suggests_starting_it(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["order", "--url", url]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the order service at {url}" in err
    assert "`make up`" in err and "`ordersim up`" in err
    assert "Traceback" not in err


def test_order_names_the_service_that_never_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fake order service (503: payment down) and a fake viewer that only ever has the
    order and inventory spans: after --wait, the waterfall so far and who is missing."""
    monkeypatch.setenv("PAYMENT_SERVICE_PORT", "18002")
    monkeypatch.delenv("ORDER_SERVICE_PAYMENT_URL", raising=False)
    trace_id = os.urandom(16).hex()
    services = checkout_trace(trace_id)
    del services["payment-service"]
    looks = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/orders":
            body = json.loads(request.content)
            assert body["payment"]["card_number"] == cards.APPROVED
            assert [i["quantity"] for i in body["items"]] == [2, 1, 3]
            return httpx.Response(503, json={
                "order_id": make_order_id(1), "status": "failed", "trace_id": trace_id,
                "error": {"code": "payment_unavailable", "message": "payment-service down"},
            })  # fmt: skip
        if request.url.path == "/api/logs":  # a Jaeger: no logs
            return httpx.Response(404, json={"msg": "404 page not found"})
        assert request.url.path == f"/api/v3/traces/{trace_id}"
        looks.append(request)
        return httpx.Response(200, json={"result": document(services)})

    out, err = io.StringIO(), io.StringIO()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    code = order_cmd.order(
        url="http://orders.test",
        endpoint="http://viewer.test",
        wait=0.5,
        console=Console(file=out, width=WIDE),
        errors=Console(file=err, width=WIDE),
        transport=httpx.MockTransport(handler),
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert code == 1
    text = out.getvalue()
    assert "failed  (HTTP 503)" in text
    assert "payment_unavailable: payment-service down" in text
    assert f"http://viewer.test/trace/{trace_id}" in text
    assert "GET /stock" in text  # the waterfall of what arrived
    assert "the trace is incomplete after 0.5s" in text
    assert (
        "payment-service never reported (no server span for POST http://127.0.0.1:18002/charges)"
        in text
    )
    assert len(looks) == 4  # at 0, 0.2, 0.4 s, and once more at the deadline


def test_wait_for_trace_stops_once_complete() -> None:
    trace_id = "ab" * 16
    services = checkout_trace(trace_id)
    partial = {k: v for k, v in services.items() if k != "payment-service"}
    answers = [
        httpx.Response(404, json={"error": {"httpCode": 404}}),
        httpx.Response(200, json={"result": document(partial)}),
        httpx.Response(200, json={"result": document(services)}),
    ]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with httpx.Client(transport=httpx.MockTransport(lambda _: answers.pop(0))) as client:
        viewer = ordersim.viewer.Viewer("http://viewer.test", client)
        found = ordersim.viewer.wait_for_trace(
            viewer, trace_id, 10, clock=lambda: now[0], sleep=sleep
        )
    assert found.is_complete() and len(found.spans) == len(CHECKOUT)
    assert answers == [] and now[0] == pytest.approx(0.4)


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["order", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 if the order reached a final status" in help_text


def test_trace_prints_each_spans_logs_under_it(
    viewer: Viewer, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id = os.urandom(16).hex()
    for service, spans in checkout_trace(trace_id).items():
        httpx.post(viewer.traces_endpoint, json=document({service: spans}))

    def record(span_id: str, at_ms: float, severity: str, body: str) -> dict[str, Any]:
        return {
            "timeUnixNano": ms(at_ms),
            "severityText": severity,
            "body": {"stringValue": body},
            "traceId": trace_id,
            "spanId": span_id,
        }

    logs = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "payment"}}]
                },
                "scopeLogs": [
                    {
                        "logRecords": [
                            record("c000000000000002", 29, "WARN", "card ending 0002 declined"),
                            record("a000000000000002", 45, "INFO", "checkout failed"),
                            record("c000000000000002", 19, "INFO", "authorizing"),
                        ]
                    }
                ],
            }
        ]
    }
    response = httpx.post(f"{viewer.otlp}/v1/logs", json=logs)
    assert response.status_code == 200 and not response.json()
    assert main(["trace", trace_id, "--endpoint", viewer.ui]) == 0
    rows = table_rows(capsys.readouterr().out)
    authorize, place = row_of(rows, "authorize_card"), row_of(rows, "place_checkout")
    under = {
        name: [line.strip() for line in rows[at + 1 :] if "▏" in line][:2]
        for name, at in (("authorize_card", authorize), ("place_checkout", place))
    }
    # authorize_card started at 18 ms: its records at +1 and +11 ms, in time order.
    assert under["authorize_card"][0].startswith("▏INFO +1.00 ms authorizing")
    assert under["authorize_card"][1].startswith("▏WARN +11.00 ms card ending")  # wraps
    lines_under_place = [line for line in rows[place + 1 : row_of(rows, "GET")] if "▏" in line]
    assert [line.split("▏")[1].split()[0:3] for line in lines_under_place] == [
        ["INFO", "+43.50", "ms"]
    ]


def test_a_viewer_without_logs_still_prints_the_waterfall(
    viewer: Viewer, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_logs(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/logs":
            return httpx.Response(404, json={"msg": "Jaeger has no logs"})
        return httpx.Response(
            200, json=httpx.get(f"{viewer.ui}{request.url.raw_path.decode()}").json()
        )

    transport = httpx.MockTransport(no_logs)
    assert trace_cmd.trace(stored, endpoint=viewer.ui, transport=transport) == 0
    assert "▏" not in capsys.readouterr().out
