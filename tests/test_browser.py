"""The trace viewer's web UI in a real browser: headless Chromium against the real viewer.

The trace is built here (no files outside the repository): three services, 33 spans, a failed
payment with an exception event, concurrent spans, a span link and an orphan span. Its critical
path is known by construction, so the test checks the UI's path span by span.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersim.testing.processes import Viewer, running_viewer
from tests import ROOT
from tests.chromium import ARTIFACTS
from tests.system_tools import system_tool

TRACE_ID = "5eed0000c0ffee0000000000000b0a7d"
LINKED_TRACE_ID = "11111111111111111111111111111111"
BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MS = 1_000_000

# --------------------------------------------------------------------------------------------
# The trace: hand-built OTLP JSON (the export request body of POST /v1/traces)


@dataclass
class TraceBuilder:
    trace_id: str
    spans: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> OTLP span
    services: dict[str, str] = field(default_factory=dict)  # key -> service name

    def span(
        self,
        key: str,
        name: str,
        service: str,
        start_ms: float,
        end_ms: float,
        parent: str | None = None,
        *,
        kind: int = 1,
        error: str | None = None,
        parent_id: str | None = None,
    ) -> None:
        span_id = hashlib.sha256(f"{self.trace_id}/{key}".encode()).hexdigest()[:16]
        span: dict[str, Any] = {
            "traceId": self.trace_id,
            "spanId": span_id,
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(BASE_NS + int(start_ms * MS)),
            "endTimeUnixNano": str(BASE_NS + int(end_ms * MS)),
            "attributes": [string_attr("test.key", key)],
            "status": {"code": 2, "message": error} if error is not None else {},
        }
        if parent is not None or parent_id is not None:
            span["parentSpanId"] = parent_id or self.spans[parent or ""]["spanId"]
        self.spans[key] = span
        self.services[key] = service

    def id(self, key: str) -> str:
        return str(self.spans[key]["spanId"])

    def request(self) -> dict[str, Any]:
        by_service: dict[str, list[dict[str, Any]]] = {}
        for key, span in self.spans.items():
            by_service.setdefault(self.services[key], []).append(span)
        return {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": name}}]
                    },
                    "scopeSpans": [{"scope": {"name": "tests.browser"}, "spans": spans}],
                }
                for name, spans in by_service.items()
            ]
        }


ORDER, INVENTORY, PAYMENT = "order-service", "inventory-service", "payment-service"
INTERNAL, SERVER, CLIENT = 1, 2, 3

# key, operation, service, start ms, end ms, parent key, kind
SPANS: list[tuple[str, str, str, float, float, str | None, int]] = [
    ("root", "POST /orders", ORDER, 0, 120, None, SERVER),
    # validate: a synchronous chain, all of it on the critical path
    ("validate", "validate_order", ORDER, 2, 20, "root", INTERNAL),
    ("validate.get", "GET", ORDER, 3, 18, "validate", CLIENT),
    ("products", "GET /products", INVENTORY, 4, 17, "validate.get", SERVER),
    ("products.select", "SELECT products", INVENTORY, 5, 15, "products", CLIENT),
    # reserve: three concurrent stock checks; only the one finishing last is critical
    ("reserve", "reserve_stock", ORDER, 22, 60, "root", INTERNAL),
    ("reserve.post", "POST", ORDER, 23, 58, "reserve", CLIENT),
    ("reservations", "POST /reservations", INVENTORY, 24, 57, "reserve.post", SERVER),
    ("check0", "check_stock", INVENTORY, 25, 35, "reservations", INTERNAL),
    ("check0.select", "SELECT stock", INVENTORY, 26, 30, "check0", CLIENT),
    ("check1", "check_stock", INVENTORY, 26, 40, "reservations", INTERNAL),
    ("check1.select", "SELECT stock", INVENTORY, 27, 31, "check1", CLIENT),
    ("check2", "check_stock", INVENTORY, 27, 38, "reservations", INTERNAL),
    ("check2.select", "SELECT stock", INVENTORY, 28, 32, "check2", CLIENT),
    ("reservations.insert", "INSERT reservations", INVENTORY, 41, 45, "reservations", CLIENT),
    ("update0", "UPDATE stock", INVENTORY, 46, 48, "reservations", CLIENT),
    ("update1", "UPDATE stock", INVENTORY, 48.5, 50.5, "reservations", CLIENT),
    ("update2", "UPDATE stock", INVENTORY, 51, 53, "reservations", CLIENT),
    ("update3", "UPDATE stock", INVENTORY, 53.5, 55.5, "reservations", CLIENT),
    # charge: the card is declined (three ERROR spans); an audit span runs beside it
    ("charge", "charge_payment", ORDER, 62, 100, "root", INTERNAL),
    ("charge.post", "POST", ORDER, 63, 98, "charge", CLIENT),
    ("charges", "POST /charges", PAYMENT, 64, 97, "charge.post", SERVER),
    ("authorize", "authorize_card", PAYMENT, 66, 90, "charges", INTERNAL),
    ("authorize.select", "SELECT cards", PAYMENT, 67, 70, "authorize", CLIENT),
    ("charges.insert", "INSERT payments", PAYMENT, 91, 95, "charges", CLIENT),
    ("audit", "audit_order", ORDER, 62, 75, "root", INTERNAL),
    # compensation, then the final save
    ("release", "release_stock", ORDER, 101, 115, "root", INTERNAL),
    ("release.post", "POST", ORDER, 102, 114, "release", CLIENT),
    ("released", "POST /reservations/{id}/release", INVENTORY, 103, 113, "release.post", SERVER),
    ("released.update", "UPDATE stock", INVENTORY, 105, 110, "released", CLIENT),
    ("save", "save_order", ORDER, 116, 119, "root", INTERNAL),
    ("save.update", "UPDATE orders", ORDER, 117, 118, "save", CLIENT),
]
ORPHAN_PARENT = "00000000deadbeef"
DECLINED = "PaymentDeclined: the card was declined"


def string_attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def order_trace() -> TraceBuilder:
    t = TraceBuilder(TRACE_ID)
    for key, name, service, start, end, parent, kind in SPANS:
        error = {"charge": "PaymentDeclined", "charge.post": "", "authorize": DECLINED}.get(key)
        t.span(key, name, service, start, end, parent, kind=kind, error=error)
    t.spans["authorize"]["events"] = [
        {
            "timeUnixNano": str(BASE_NS + 89 * MS),
            "name": "exception",
            "attributes": [
                string_attr("exception.type", "payment_service.errors.PaymentDeclined"),
                string_attr("exception.message", "the card was declined"),
                string_attr(
                    "exception.stacktrace",
                    'Traceback (most recent call last):\n  File "routes.py", line 26\n'
                    f"{DECLINED}\n",
                ),
            ],
        }
    ]
    t.spans["authorize"]["links"] = [
        {"traceId": LINKED_TRACE_ID, "spanId": "2222222222222222", "attributes": []}
    ]
    # a span whose parent never arrived
    t.span("orphan", "late_callback", INVENTORY, 30, 35, parent_id=ORPHAN_PARENT)
    return t


SKEW_TRACE_ID = "5eed0000c0ffee0000000000000005c0"
FAULTED = "POST /charges"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.26.0"


def skew_trace() -> TraceBuilder:
    """A trace whose bars do not nest: the SERVER span of a call ends 0.42 ms after the CLIENT
    span that made it (scheduling), and a child outlives its parent by 3 ms. An injected fault
    touched the server span; another span has NaN and infinite attributes."""
    t = TraceBuilder(SKEW_TRACE_ID)
    t.span("root", "POST /orders", ORDER, 0, 50, kind=SERVER)
    t.span("call", "POST", ORDER, 5, 30, "root", kind=CLIENT)
    t.span("charges", FAULTED, PAYMENT, 6, 30.42, "call", kind=SERVER)
    t.span("step", "reserve_items", INVENTORY, 32, 40, "root")
    t.span("late", "check_stock", INVENTORY, 33, 43, "step")
    charges = t.spans["charges"]
    charges["attributes"].append({"key": "ordersim.fault.injected", "value": {"boolValue": True}})
    charges["events"] = [
        {
            "timeUnixNano": str(BASE_NS + 7 * MS),
            "name": "fault.injected",
            "attributes": [
                string_attr("ordersim.fault.kind", "latency"),
                {"key": "ordersim.fault.delay_ms", "value": {"doubleValue": 200.0}},
            ],
        }
    ]
    t.spans["late"]["attributes"] += [
        {"key": "ratio", "value": {"doubleValue": "NaN"}},
        {"key": "ceiling", "value": {"doubleValue": "Infinity"}},
    ]
    return t


def skew_request() -> dict[str, Any]:
    request = skew_trace().request()
    for rs in request["resourceSpans"]:
        rs["schemaUrl"] = SCHEMA_URL
    return request


# Walking back from the root's end, the child finishing last before the cut-off is on the path.
NOT_CRITICAL = {"check0", "check0.select", "check2", "check2.select", "audit", "orphan"}
ERRORS = {"charge", "charge.post", "authorize"}

# --------------------------------------------------------------------------------------------
# The browser


def chromium(profile: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run; JS runs for up to 5 s of virtual time (fetches pause it)."""
    command = [
        system_tool("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"chromium failed ({result.returncode}):\n{result.stderr}"
    console_errors = [line for line in result.stderr.splitlines() if "Uncaught" in line]
    assert not console_errors, f"JavaScript errors: {console_errors}"
    return result


class Elements(HTMLParser):
    """Attributes of every element, in document order, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a.get("class", "").split()]

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


@dataclass(frozen=True)
class Browser:
    viewer: Viewer
    profile_root: Path
    trace: TraceBuilder

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return chromium(Path(tempfile.mkdtemp(dir=self.profile_root)), *args)

    def dom(self, path: str) -> Elements:
        html = self.run("--dump-dom", f"{self.viewer.ui}{path}").stdout
        assert "<body" in html, html[:500]
        return Elements(html)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    system_tool("chromium")
    trace = order_trace()
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        for request in (trace.request(), skew_request()):
            response = httpx.post(viewer.traces_endpoint, json=request, timeout=10)
            assert response.status_code == 200, response.text
        stored = httpx.get(f"{viewer.ui}/api/v3/traces/{TRACE_ID}", timeout=10)
        assert stored.status_code == 200, stored.text
        yield Browser(viewer, tmp_path_factory.mktemp("chromium"), trace)


# --------------------------------------------------------------------------------------------
# The tests


def test_waterfall_shows_every_span_nested_with_errors_and_critical_path(browser: Browser) -> None:
    trace = browser.trace
    page = browser.dom(f"/trace/{TRACE_ID}")
    rows = {a["data-span-id"]: a for a in page.with_class("row") if "data-span-id" in a}

    assert set(rows) == {trace.id(key) for key in trace.spans}, "a row per span, nothing else"
    depth = {key: int(rows[trace.id(key)]["data-depth"]) for key in trace.spans}
    assert depth["root"] == 0
    assert depth["products.select"] == 4
    assert depth["authorize"] == 4
    assert depth["orphan"] == 0, "an orphan is shown at top level"
    assert rows[trace.id("orphan")].get("data-orphan") == "true"
    assert [a for a in page.with_class("orphan-icon") if ORPHAN_PARENT in a.get("title", "")]

    errors = {key for key in trace.spans if rows[trace.id(key)].get("data-error") == "true"}
    assert errors == ERRORS
    assert all("error" in rows[trace.id(key)]["class"].split() for key in ERRORS)

    critical = {key for key in trace.spans if rows[trace.id(key)].get("data-critical") == "true"}
    assert critical == set(trace.spans) - NOT_CRITICAL
    assert len(page.with_class("cp-seg")) >= len(critical)
    assert any(a.get("id") == "legend-critical" for _, a in page.elements), "legend for the path"

    header = page.text
    assert TRACE_ID in header
    assert "120 ms" in header, "total duration"
    for service in (ORDER, INVENTORY, PAYMENT):
        assert service in header


def test_details_panel_shows_the_exception_and_link(browser: Browser) -> None:
    span_id = browser.trace.id("authorize")
    page = browser.dom(f"/trace/{TRACE_ID}#span={span_id}")
    panel = [a for _, a in page.elements if a.get("id") == "details"]
    assert panel, "details panel"
    assert panel[0].get("data-span-id") == span_id
    assert "hidden" not in panel[0]
    assert span_id in page.with_class("selected")[0]["data-span-id"]

    text = page.text
    assert f"ERROR — {DECLINED}" in text
    assert "payment_service.errors.PaymentDeclined" in text
    assert "Traceback (most recent call last):" in text
    assert "+23.0 ms from span start" in text, "event offset from the span's start"
    assert "+66.0 ms from trace start" in text
    assert "test.key" in text, "the attributes table"
    links = [a["href"] for tag, a in page.elements if tag == "a" and "href" in a]
    assert f"/trace/{LINKED_TRACE_ID}#span=2222222222222222" in links


def test_trace_list_links_the_trace(browser: Browser) -> None:
    page = browser.dom("/")
    rows = [a for tag, a in page.elements if tag == "tr" and a.get("data-trace-id") == TRACE_ID]
    assert rows, "the trace is listed"
    assert "has-error" in rows[0]["class"].split()
    links = [a["href"] for tag, a in page.elements if tag == "a" and "href" in a]
    assert f"/trace/{TRACE_ID}" in links
    assert "POST /orders" in page.text


def test_unknown_trace_says_not_found(browser: Browser) -> None:
    page = browser.dom(f"/trace/{'0' * 31}1")
    assert "Trace not found" in page.text
    assert "refresh" in page.text.lower()


def test_screenshot_of_the_waterfall(browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"trace-{TRACE_ID}.png"
    shot.unlink(missing_ok=True)
    span_id = browser.trace.id("authorize")
    browser.run(f"--screenshot={shot}", f"{browser.viewer.ui}/trace/{TRACE_ID}#span={span_id}")
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000, f"a {len(data)}-byte screenshot is suspiciously plain"


def test_overhanging_spans_and_injected_faults_are_marked(browser: Browser) -> None:
    skew = skew_trace()
    page = browser.dom(f"/trace/{SKEW_TRACE_ID}")
    rows = {a["data-span-id"]: a for a in page.with_class("row") if "data-span-id" in a}
    overhanging = {key for key in skew.spans if "data-overhang-ns" in rows[skew.id(key)]}
    assert overhanging == {"charges", "late"}
    assert rows[skew.id("charges")]["data-overhang-ns"] == str(420_000)
    assert rows[skew.id("late")]["data-overhang-ns"] == str(3 * MS)
    assert "overhang" in rows[skew.id("late")]["class"].split()
    assert len(page.with_class("overhang-seg")) == 2, "the part outside the parent is drawn"
    assert "0.420 ms outside parent" in page.text and "3.00 ms outside parent" in page.text
    notes = [a["title"] for a in page.with_class("overhang-note")]
    assert any(t.startswith("ends 0.420 ms after its parent. A SERVER span") for t in notes)
    assert "2 span(s) run outside their parent's time range" in page.text

    faulted = {key for key in skew.spans if rows[skew.id(key)].get("data-fault") == "true"}
    assert faulted == {"charges"}
    assert "fault" in rows[skew.id("charges")]["class"].split()
    icons = page.with_class("fault-icon")
    assert any("injected fault: latency 200 ms" in a.get("title", "") for a in icons)
    assert "⚡ 1 injected" in page.text
    assert not rows[skew.id("charges")].get("data-error"), "a latency fault is not an error"


def test_details_explain_the_overhang_and_show_schema_and_nan(browser: Browser) -> None:
    skew = skew_trace()
    page = browser.dom(f"/trace/{SKEW_TRACE_ID}#span={skew.id('charges')}")
    text = page.text
    assert "ends 0.420 ms after its parent (POST)" in text
    assert "A SERVER span outliving the CLIENT span that called it" in text
    assert "injected fault: latency 200 ms (ordersim.fault.injected)" in text
    assert SCHEMA_URL in text

    late = browser.dom(f"/trace/{SKEW_TRACE_ID}#span={skew.id('late')}").text
    assert "A child outliving its parent" in late
    assert "ratio NaN" in late and "ceiling +Inf" in late


def test_trace_list_counts_injected_faults_apart_from_errors(browser: Browser) -> None:
    page = browser.dom("/")
    rows = {
        a["data-trace-id"]: a for tag, a in page.elements if tag == "tr" and "data-trace-id" in a
    }
    assert "has-fault" in rows[SKEW_TRACE_ID]["class"].split()
    assert "has-error" not in rows[SKEW_TRACE_ID]["class"].split()
    assert "has-fault" not in rows[TRACE_ID]["class"].split()
    badges = [a for a in page.with_class("fault") if "injected fault" in a.get("title", "")]
    assert [a["title"] for a in badges] == [
        "1 span(s) an injected fault touched (ordersim.fault.injected)"
    ]


def test_model_unit_tests_pass_in_node() -> None:
    """The pure parts of the pages (static/trace/: the model, critical path, statistics,
    flame graph, minimap range, rows; static/compare/; static/search.js) against small
    fixtures: every test in tests/js runs, and passes."""
    node = system_tool("node")
    result = subprocess.run(
        [node, "--test", str(ROOT / "tests" / "js")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    written = sum(
        len(re.findall(r"^test\(", path.read_text(), re.MULTILINE))
        for path in (ROOT / "tests" / "js").rglob("*.test.mjs")
    )
    assert written >= 39
    assert "# fail 0" in result.stdout and f"# pass {written}\n" in result.stdout
