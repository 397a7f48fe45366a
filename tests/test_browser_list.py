"""The trace list page in headless Chromium, against the real viewer: outcomes, real errors
apart from injected faults, tag search, sorting, the duration-over-time plot, full trace ids
with a copy button, and the trace-id box.

What a page renders is read with ``--dump-dom`` (as tests/test_browser.py does); what a click
or a key does, through the DevTools protocol (tests/cdp.py). Five order traces are built
here, one per outcome, at known starts and durations.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.cdp import Page, chromium_page
from tests.processes import running_viewer
from tests.test_browser import ARTIFACTS, CHROMIUM, Elements, TraceBuilder, chromium

ORDER, PAYMENT, INVENTORY = "order-service", "payment-service", "inventory-service"
SERVER, CLIENT = 2, 3


@dataclass(frozen=True)
class Outcome:
    name: str
    trace_id: str
    status: int
    order_status: str | None
    start_ms: float
    duration_ms: float
    real_errors: int
    faults: int


# name, trace id, root status, order status, start ms, duration ms, real errors, faults
OUTCOMES = [
    Outcome("confirmed", "1157000000000000000000000000c201", 201, "confirmed", 0, 40, 0, 0),
    Outcome("declined", "1157000000000000000000000000d402", 402, "payment_failed", 100, 30, 1, 0),
    Outcome("outage", "1157000000000000000000000000f503", 503, "failed", 200, 190, 2, 1),
    Outcome("rejected", "1157000000000000000000000000e409", 409, "rejected", 450, 25, 1, 0),
    Outcome("invalid", "1157000000000000000000000000a422", 422, None, 500, 3, 0, 0),
]
BY_NAME = {o.name: o for o in OUTCOMES}
ORDER_ID = "ord_00000000000000d4"


def int_attr(key: str, value: int) -> dict[str, object]:
    return {"key": key, "value": {"intValue": str(value)}}


def str_attr(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": {"stringValue": value}}


def build(outcome: Outcome) -> TraceBuilder:
    """POST /orders, its place_order (the order's status), and a payment call; ERROR spans
    and an injected fault as each outcome has them."""
    t = TraceBuilder(outcome.trace_id)
    start, end = outcome.start_ms, outcome.start_ms + outcome.duration_ms
    t.span("root", "POST /orders", ORDER, start, end, kind=SERVER)
    t.spans["root"]["attributes"].append(int_attr("http.response.status_code", outcome.status))
    if outcome.status == 422:
        return t
    errors = outcome.real_errors
    t.span("place", "place_order", ORDER, start + 1, end - 1, "root", error="x" if errors else None)
    place = t.spans["place"]["attributes"]
    place.append(str_attr("shop.order.id", ORDER_ID if outcome.name == "declined" else "ord_1"))
    if outcome.order_status:
        place.append(str_attr("shop.order.status", outcome.order_status))
    t.span("call", "POST /charges", ORDER, start + 2, end - 2, "place", kind=CLIENT)
    t.span("charge", "POST /charges", PAYMENT, start + 3, end - 3, "call", kind=SERVER)
    t.spans["charge"]["attributes"].append(int_attr("http.response.status_code", outcome.status))
    if outcome.faults:  # the payment span's ERROR is the injected fault's; the call's is real
        t.spans["charge"]["status"] = {"code": 2, "message": "injected fault: error 500"}
        t.spans["charge"]["attributes"].append(
            {"key": "ordersim.fault.injected", "value": {"boolValue": True}}
        )
        t.spans["call"]["status"] = {"code": 2}
    return t


@dataclass(frozen=True)
class ListPage:
    ui: str
    profiles: Path

    def dom(self, query: dict[str, str] | None = None) -> Elements:
        url = f"{self.ui}/" + (f"?{urlencode(query)}" if query else "")
        profile = Path(tempfile.mkdtemp(dir=self.profiles))
        html = chromium(profile, "--dump-dom", url).stdout
        assert "<body" in html, html[:500]
        return Elements(html)

    def rows(self, query: dict[str, str] | None = None) -> list[dict[str, str]]:
        return [a for tag, a in self.dom(query).elements if tag == "tr" and "data-trace-id" in a]

    @property
    def names(self) -> dict[str, str]:
        return {o.trace_id: o.name for o in OUTCOMES}

    def listed(self, query: dict[str, str] | None = None) -> list[str]:
        return [self.names[r["data-trace-id"]] for r in self.rows(query)]


@pytest.fixture(scope="module")
def list_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListPage]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs it.", pytrace=False)
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        for outcome in OUTCOMES:
            response = httpx.post(viewer.traces_endpoint, json=build(outcome).request(), timeout=10)
            assert response.status_code == 200, response.text
        yield ListPage(viewer.ui, tmp_path_factory.mktemp("chromium"))


@pytest.fixture
def page(list_page: ListPage, tmp_path: Path) -> Iterator[Page]:
    with chromium_page(CHROMIUM, tmp_path / "profile") as opened:
        yield opened


def test_each_trace_shows_its_outcome_and_real_errors_apart_from_faults(
    list_page: ListPage,
) -> None:
    page = list_page.dom()
    rows = {
        list_page.names[a["data-trace-id"]]: a
        for tag, a in page.elements
        if tag == "tr" and "data-trace-id" in a
    }
    assert {name: row["data-outcome"] for name, row in rows.items()} == {
        "confirmed": "ok",
        "declined": "declined",
        "outage": "failed",
        "rejected": "rejected",
        "invalid": "invalid",
    }
    for label in ("201 confirmed", "402 payment_failed", "503 failed", "409 rejected", "422"):
        assert label in page.text
    badges = {a["class"]: a["title"] for a in page.with_class("outcome")}
    assert badges["outcome outcome-declined"] == "payment declined"
    # The outage: two real errors (place_order and the call), one injected fault.
    errors = [a["title"] for a in page.with_class("badge") if "error" in a["class"].split()]
    assert "2 span(s) with status ERROR that no injected fault touched" in errors
    faults = [a["title"] for a in page.with_class("fault") if "injected" in a.get("title", "")]
    assert faults == ["1 span(s) an injected fault touched (ordersim.fault.injected)"]
    assert "has-error" not in rows["confirmed"]["class"].split()


def test_full_trace_ids_each_with_a_copy_button(list_page: ListPage) -> None:
    page = list_page.dom()
    ids = [o.trace_id for o in OUTCOMES]
    for trace_id in ids:
        assert trace_id in page.text, "the whole id, not a prefix"
    copies = [a["data-copy"] for a in page.with_class("copy")]
    assert sorted(copies) == sorted(ids)


def test_the_plot_has_a_dot_per_trace_coloured_by_outcome_linking_it(list_page: ListPage) -> None:
    page = list_page.dom()
    links = {a["data-trace-id"]: a["href"] for a in page.with_class("dot-link")}
    assert links == {o.trace_id: f"/trace/{o.trace_id}" for o in OUTCOMES}
    dots = [a for tag, a in page.elements if tag == "circle"]
    assert sorted(a["class"] for a in dots) == sorted(
        f"dot outcome-{k}" for k in ("ok", "declined", "failed", "rejected", "invalid")
    )
    # Later starts further right, longer traces higher (smaller y).
    by_class = {a["class"].split()[1]: (float(a["cx"]), float(a["cy"])) for a in dots}
    assert (
        by_class["outcome-ok"][0] < by_class["outcome-declined"][0] < by_class["outcome-failed"][0]
    )
    assert (
        by_class["outcome-failed"][1] < by_class["outcome-ok"][1] < by_class["outcome-invalid"][1]
    )
    legend = [a for a in page.with_class("legend-item")]
    assert len(legend) == 5


def test_a_search_in_the_url_fills_the_form_and_filters(list_page: ListPage) -> None:
    tags = json.dumps({"http.response.status_code": "402"})
    page = list_page.dom({"tags": tags})
    rows = [a["data-trace-id"] for tag, a in page.elements if tag == "tr" and "data-trace-id" in a]
    assert rows == [BY_NAME["declined"].trace_id]
    assert list_page.listed({"tags": json.dumps({"shop.order.id": ORDER_ID})}) == ["declined"]
    # Durations are of a span of the chosen service and operation, as in Jaeger.
    slow = {"service": ORDER, "operation": "POST /orders", "minDuration": "100ms"}
    assert list_page.listed(slow) == ["outage"]
    assert list_page.listed({"maxDuration": "5ms", "service": ORDER}) == ["invalid"]
    assert list_page.listed({"error": "true"}) == ["rejected", "outage", "declined"]
    assert list_page.listed({"limit": "2"}) == ["invalid", "rejected"]


def test_sorting_as_jaeger_offers_it(list_page: ListPage) -> None:
    assert list_page.listed() == ["invalid", "rejected", "outage", "declined", "confirmed"]
    assert list_page.listed({"sort": "longest"}) == [
        "outage",
        "confirmed",
        "declined",
        "rejected",
        "invalid",
    ]
    assert list_page.listed({"sort": "shortest"})[0] == "invalid"
    assert list_page.listed({"sort": "most-errors"})[0] == "outage"


def test_screenshot_of_the_trace_list(list_page: ListPage) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "trace-list.png"
    shot.unlink(missing_ok=True)
    profile = Path(tempfile.mkdtemp(dir=list_page.profiles))
    chromium(profile, f"--screenshot={shot}", f"{list_page.ui}/?sort=longest")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000, f"a {len(data)}-byte screenshot is suspiciously plain"


# --- what a user's keys and clicks do ---------------------------------------------------------


def test_the_trace_id_box_opens_the_trace(list_page: ListPage, page: Page) -> None:
    page.open(f"{list_page.ui}/")
    page.type("#trace-id", "nothex")
    page.press_enter()
    assert page.evaluate("document.getElementById('trace-id').validationMessage")
    assert page.evaluate("location.pathname") == "/", "a malformed id goes nowhere"
    page.type("#trace-id", f"  {BY_NAME['outage'].trace_id.upper()} ")
    page.press_enter()
    page.wait_for(f"location.pathname === '/trace/{BY_NAME['outage'].trace_id}'", "the trace page")


def test_typed_tags_search_and_stay_in_the_url(list_page: ListPage, page: Page) -> None:
    # A search in the URL is shown in the form as the key=value pairs one types.
    page.open(f"{list_page.ui}/?{urlencode({'tags': json.dumps({'shop.order.id': ORDER_ID})})}")
    assert page.evaluate("document.getElementById('tags').value") == f"shop.order.id={ORDER_ID}"
    assert page.evaluate("document.querySelectorAll('tr[data-trace-id]').length") == 1
    page.type("#tags", "http.response.status_code=503")
    page.press_enter()
    # One row before the search and one after: wait for the row the search finds (waiting
    # for one row passed at once, and the old row was still there).
    outage = json.dumps(BY_NAME["outage"].trace_id)
    page.wait_for(
        f"[...document.querySelectorAll('tr[data-trace-id]')].map(r => r.dataset.traceId)"
        f".join() === {outage}",
        "the search to run",
    )
    query = page.evaluate("new URLSearchParams(location.search).get('tags')")
    assert json.loads(query) == {"http.response.status_code": "503"}
    # What cannot be read is said on the box, and not searched.
    page.type("#tags", 'shop.order.id="unclosed')
    page.press_enter()
    message = page.evaluate("document.getElementById('tags').validationMessage")
    assert "no closing quote" in message
    assert json.loads(page.evaluate("new URLSearchParams(location.search).get('tags')")) == {
        "http.response.status_code": "503"
    }
    assert page.evaluate("document.querySelectorAll('tr[data-trace-id]').length") == 1


def test_sorting_reorders_without_a_reload_and_keeps_the_order_in_the_url(
    list_page: ListPage, page: Page
) -> None:
    page.open(f"{list_page.ui}/")
    page.evaluate(
        "(() => { const s = document.getElementById('sort'); s.value = 'longest';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    first = page.evaluate("document.querySelector('tr[data-trace-id]').dataset.traceId")
    assert first == BY_NAME["outage"].trace_id
    assert page.evaluate("location.search") == "?sort=longest"


def test_a_dot_opens_its_trace(list_page: ListPage, page: Page) -> None:
    page.open(f"{list_page.ui}/")
    declined = BY_NAME["declined"].trace_id
    page.click(f'a.dot-link[data-trace-id="{declined}"] circle')
    page.wait_for(f"location.pathname === '/trace/{declined}'", "the trace page")


def test_the_copy_button_copies_the_whole_id(list_page: ListPage, page: Page) -> None:
    page.open(f"{list_page.ui}/")
    # The clipboard is the browser's; what our button hands it is ours.
    page.evaluate(
        "navigator.clipboard.writeText = (text) => { window.copied = text;"
        " return Promise.resolve(); }"
    )
    rejected = BY_NAME["rejected"].trace_id
    page.click(f'button.copy[data-copy="{rejected}"]')
    page.wait_for("window.copied", "the copy")
    assert page.evaluate("window.copied") == rejected
    assert page.evaluate("location.pathname") == "/", "the row's click does not also open it"
