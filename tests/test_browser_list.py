"""The trace list page in headless Chromium driven by Playwright (tests/chromium.py), against
the real viewer: outcomes, real errors apart from injected faults, tag search, sorting, the
duration-over-time plot, full trace ids with a copy button, and the trace-id box. What a page
renders is read from its DOM once it has drawn; what a user's keys and clicks do, with real
key and mouse events. Five order traces are built here, one per outcome, at known starts and
durations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ordersim.testing.processes import poll, running_viewer
from tests.chromium import ARTIFACTS, launched_chromium, load, open_page
from tests.test_browser import Elements, TraceBuilder

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
    Outcome("outage", "1157000000000000000000000000f503", 503, "failed", 200, 190, 0, 1),
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
    errors = outcome.real_errors or outcome.faults  # a fault fails place_order too
    t.span("place", "place_order", ORDER, start + 1, end - 1, "root", error="x" if errors else None)
    place = t.spans["place"]["attributes"]
    place.append(str_attr("shop.order.id", ORDER_ID if outcome.name == "declined" else "ord_1"))
    if outcome.order_status:
        place.append(str_attr("shop.order.status", outcome.order_status))
    t.span("call", "POST /charges", ORDER, start + 2, end - 2, "place", kind=CLIENT)
    t.span("charge", "POST /charges", PAYMENT, start + 3, end - 3, "call", kind=SERVER)
    t.spans["charge"]["attributes"].append(int_attr("http.response.status_code", outcome.status))
    if outcome.faults:  # the payment span's ERROR is the injected fault's, and so its callers'
        t.spans["charge"]["status"] = {"code": 2, "message": "injected fault: error 500"}
        t.spans["charge"]["attributes"].append(
            {"key": "ordersim.fault.injected", "value": {"boolValue": True}}
        )
        t.spans["call"]["status"] = {"code": 2}
    return t


@dataclass(frozen=True)
class ListPage:
    ui: str
    browser: Browser
    reader: Page  # where what a URL renders is read: a fresh page costs a browser context

    def url(self, query: dict[str, str] | None = None) -> str:
        return f"{self.ui}/" + (f"?{urlencode(query)}" if query else "")

    @contextmanager
    def opened(self, query: dict[str, str] | None = None) -> Iterator[Page]:
        """The list at ``/?query`` in a fresh page, drawn, until the block ends; whatever the
        block does, the page threw nothing."""
        page = open_page(self.browser, self.url(query))
        try:
            yield page
            assert not page.errors, f"JavaScript errors: {page.errors}"  # type: ignore[attr-defined]
        finally:
            page.close()

    def dom(self, query: dict[str, str] | None = None) -> Elements:
        """What the list at ``/?query`` renders, once drawn."""
        load(self.reader, self.url(query))
        assert not self.reader.errors, self.reader.errors  # type: ignore[attr-defined]
        return Elements(self.reader.content())

    def rows(self, query: dict[str, str] | None = None) -> list[dict[str, str]]:
        return [a for tag, a in self.dom(query).elements if tag == "tr" and "data-trace-id" in a]

    @property
    def names(self) -> dict[str, str]:
        return {o.trace_id: o.name for o in OUTCOMES}

    def listed(self, query: dict[str, str] | None = None) -> list[str]:
        return [self.names[r["data-trace-id"]] for r in self.rows(query)]


@pytest.fixture(scope="module")
def list_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListPage]:
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        for outcome in OUTCOMES:
            response = httpx.post(viewer.traces_endpoint, json=build(outcome).request(), timeout=10)
            assert response.status_code == 200, response.text
        with launched_chromium() as browser:
            yield ListPage(viewer.ui, browser, open_page(browser, f"{viewer.ui}/"))


def path(page: Page) -> str:
    return urlsplit(page.url).path


def tags_in_url(page: Page) -> object:
    """The search's tags as the page keeps them in its address (JSON, as Jaeger's)."""
    return json.loads(parse_qs(urlsplit(page.url).query)["tags"][0])


def validation_message(page: Page, selector: str) -> str:
    return str(page.locator(selector).evaluate("el => el.validationMessage"))


def navigations(page: Page) -> list[str]:
    """The URLs the page asks for as documents from now on: a navigation shows here when its
    request leaves, before it commits, so "went nowhere" does not depend on how soon one looks.
    """
    urls: list[str] = []
    page.on("request", lambda request: request.is_navigation_request() and urls.append(request.url))
    return urls


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
    # The outage: place_order and the call failed because of the injected fault at payment,
    # so no real error; the declined and rejected orders have one each.
    errors = [a["title"] for a in page.with_class("badge") if "error" in a["class"].split()]
    assert errors == ["1 span(s) with status ERROR that no injected fault caused"] * 2
    assert "has-error" not in rows["outage"]["class"].split()
    faults = [a["title"] for a in page.with_class("fault") if "injected" in a.get("title", "")]
    assert faults == ["1 span(s) an injected fault touched (ordersim.fault.injected)"]
    assert "has-error" not in rows["confirmed"]["class"].split()


def test_the_trace_page_header_counts_errors_as_the_list_does(list_page: ListPage) -> None:
    """The list's ⚠ and ⚡ numbers are the header's; the outage's ERROR spans (payment's
    POST /charges, the call to it, place_order) are its injected fault's, not real errors."""
    page = list_page.reader
    load(page, list_page.url())

    def badge(trace_id: str, kind: str) -> str:
        found = page.locator(f'tr[data-trace-id="{trace_id}"] .badge.{kind}')
        return found.inner_text() if found.count() else ""

    listed = {o.name: (badge(o.trace_id, "error"), badge(o.trace_id, "fault")) for o in OUTCOMES}
    assert listed["outage"] == ("", "⚡ 1") and listed["declined"] == ("⚠ 1", "")
    for outcome in OUTCOMES:
        load(page, f"{list_page.ui}/trace/{outcome.trace_id}")
        errors, faults = page.locator("#error-badge"), page.locator("#fault-badge")
        header = (
            errors.inner_text().removesuffix(" errors").removesuffix(" error")
            if errors.count()
            else "",
            faults.inner_text().removesuffix(" injected") if faults.count() else "",
        )
        assert header == listed[outcome.name], outcome.name
        assert page.locator("#error-count").inner_text() == str(outcome.real_errors)
        caused = page.locator("#fault-error-count")
        if outcome.faults:
            expect(caused).to_have_text(" · 3 caused by ⚡ injected faults")
        else:
            expect(caused).to_have_count(0)
        assert not page.errors, page.errors  # type: ignore[attr-defined]


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
    # Real errors: the outage's are its injected fault's, so it has none.
    assert set(list_page.listed({"sort": "most-errors"})[:2]) == {"rejected", "declined"}


def test_screenshot_of_the_trace_list(list_page: ListPage) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "trace-list.png"
    shot.unlink(missing_ok=True)
    with list_page.opened({"sort": "longest"}) as page:
        page.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 30_000, f"a {len(data)}-byte screenshot is suspiciously plain"


# --- what a user's keys and clicks do ---------------------------------------------------------


def test_the_trace_id_box_opens_the_trace(list_page: ListPage) -> None:
    outage = BY_NAME["outage"].trace_id
    with list_page.opened() as page:
        opened = navigations(page)
        box = page.locator("#trace-id")
        box.fill("nothex")
        box.press("Enter")
        assert validation_message(page, "#trace-id")
        assert path(page) == "/", "a malformed id goes nowhere"
        box.fill(f"  {outage.upper()} ")
        box.press("Enter")
        page.wait_for_url(f"{list_page.ui}/trace/{outage}")
        assert opened == [f"{list_page.ui}/trace/{outage}"], "nowhere before it"


def test_typed_tags_search_and_stay_in_the_url(list_page: ListPage) -> None:
    # A search in the URL is shown in the form as the key=value pairs one types.
    with list_page.opened({"tags": json.dumps({"shop.order.id": ORDER_ID})}) as page:
        page.uncheck("#auto")  # so that only the Enter key searches
        tags, rows = page.locator("#tags"), page.locator("tr[data-trace-id]")
        assert tags.input_value() == f"shop.order.id={ORDER_ID}"
        assert rows.count() == 1
        tags.fill("http.response.status_code=503")
        tags.press("Enter")
        # The declined order's row gives way to the outage's (one row before and after).
        expect(page.locator(f'tr[data-trace-id="{BY_NAME["outage"].trace_id}"]')).to_have_count(1)
        assert rows.count() == 1
        assert tags_in_url(page) == {"http.response.status_code": "503"}
        # What cannot be read is said on the box, and not searched.
        tags.fill('shop.order.id="unclosed')
        tags.press("Enter")
        assert "no closing quote" in validation_message(page, "#tags")
        assert tags_in_url(page) == {"http.response.status_code": "503"}
        assert rows.count() == 1


def test_sorting_reorders_without_a_reload_and_keeps_the_order_in_the_url(
    list_page: ListPage,
) -> None:
    with list_page.opened() as page:
        page.select_option("#sort", "longest")
        first = page.locator("tr[data-trace-id]").first
        assert first.get_attribute("data-trace-id") == BY_NAME["outage"].trace_id
        assert urlsplit(page.url).query == "sort=longest"


def test_a_dot_opens_its_trace(list_page: ListPage) -> None:
    declined = BY_NAME["declined"].trace_id
    with list_page.opened() as page:
        page.click(f'a.dot-link[data-trace-id="{declined}"] circle')
        page.wait_for_url(f"{list_page.ui}/trace/{declined}")


def test_the_copy_button_copies_the_whole_id(list_page: ListPage) -> None:
    rejected = BY_NAME["rejected"].trace_id
    with list_page.opened() as page:
        opened = navigations(page)
        # The browser's own clipboard, which the page may read back once allowed to.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.click(f'button.copy[data-copy="{rejected}"]')
        copied = poll(lambda: page.evaluate("navigator.clipboard.readText()"), 10, "the copy")
        assert copied == rejected
        assert path(page) == "/" and not opened, "the row's click does not also open it"
