"""The trace page's views in headless Chromium, driven by Playwright (clicks and drags): the
statistics table, the flame graph, the minimap's zoom, the critical path band, and row details
with links read forward — on the hand-built trace of tests/test_browser.py (its numbers known
by construction) and on real traces of a failed order and its compensation retries. Each view
leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page

from ordersim.testing.processes import Viewer, running_viewer
from tests import chromium
from tests.chromium import launched_chromium, open_page
from tests.linked_traces import LinkedTraces, linked_traces
from tests.test_browser import (
    NOT_CRITICAL,
    SKEW_TRACE_ID,
    TRACE_ID,
    order_trace,
    skew_request,
)

MS = 1_000_000


@dataclass(frozen=True)
class Site:
    viewer: Viewer
    browser: Browser
    linked: LinkedTraces

    def open(self, path: str) -> Page:
        """A fresh page at ``path``, once the trace page has drawn."""
        return open_page(self.browser, f"{self.viewer.ui}{path}")


def screenshot(page: Page, name: str) -> None:
    chromium.screenshot(page, f"trace-view-{name}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    linked = linked_traces(tmp_path_factory.mktemp("apps"))
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        for request in (order_trace().request(), skew_request()):
            assert httpx.post(viewer.traces_endpoint, json=request).status_code == 200
        response = httpx.post(
            viewer.traces_endpoint,
            content=linked.request,
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200, response.text
        with launched_chromium() as browser:
            yield Site(viewer, browser, linked)


def fragment(page: Page) -> str:
    return str(page.evaluate("location.hash"))


def stats_rows(page: Page) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        "#stats-table tbody tr",
        """rows => rows.map(r => ({
            service: r.dataset.service, operation: r.dataset.operation || "",
            count: r.dataset.count, self: r.dataset.selfNs,
            selfText: r.querySelector("td[data-column=selfTotal]").textContent}))""",
    )
    return rows


def test_statistics_point_at_the_bottleneck_by_self_time_and_sort(site: Site) -> None:
    page = site.open(f"/trace/{TRACE_ID}#view=statistics")
    assert page.is_visible("#view-statistics") and not page.is_visible("#view-timeline")
    rows = stats_rows(page)
    # check_stock (3 of them) spends 6 + 10 + 7 ms outside its SELECTs: the most self time of any
    # operation, though authorize_card (24 ms) is the longest span below the root.
    top = rows[0]
    assert (top["service"], top["operation"], top["count"]) == (
        "inventory-service",
        "check_stock",
        "3",
    )
    assert int(top["self"]) == 23 * MS and top["selfText"] == "23.0 ms"
    assert [r["operation"] for r in rows[1:3]] == ["authorize_card", "UPDATE stock"]
    selfs = [int(r["self"]) for r in rows]
    assert selfs == sorted(selfs, reverse=True)
    screenshot(page, "statistics")

    page.click("th button[data-column=count]")
    counts = [int(r["count"]) for r in stats_rows(page)]
    assert counts == sorted(counts, reverse=True) and counts[0] == 5, "UPDATE stock, 5 times"
    page.click("th button[data-column=count]")
    assert [int(r["count"]) for r in stats_rows(page)] == sorted(counts)
    assert "sort=count.asc" in fragment(page)
    page.select_option("#stats-group", "service")
    by_service = {r["service"]: int(r["count"]) for r in stats_rows(page)}
    assert by_service == {"order-service": 12, "inventory-service": 17, "payment-service": 4}

    # A row opens its slowest span in the timeline.
    page.select_option("#stats-group", "operation")
    page.click("#stats-table tbody tr[data-operation=authorize_card]")
    assert page.is_visible("#view-timeline")
    assert page.get_attribute("#details", "data-span-id") == order_trace().id("authorize")


def test_flame_graph_merges_siblings_and_zooms(site: Site) -> None:
    page = site.open(f"/trace/{TRACE_ID}#view=flamegraph")
    nodes = page.eval_on_selector_all(
        ".flame-node",
        "ns => ns.map(n => [n.dataset.name, n.dataset.count, n.dataset.totalNs, n.dataset.key])",
    )
    by_name = {name: (int(count), int(total), key) for name, count, total, key in nodes}
    assert by_name["POST /orders"][:2] == (1, 120 * MS)
    assert by_name["check_stock"][:2] == (3, 35 * MS), "three concurrent checks, one node"
    # The orphan span is a second top-level span: a virtual "trace" node sits above both.
    root = page.locator(".flame-node[data-key='0']").bounding_box()
    assert root is not None
    screenshot(page, "flamegraph")

    key = by_name["reserve_stock"][2]
    page.click(f".flame-node[data-key='{key}']")
    assert f"focus={key}" in fragment(page)
    focused = page.locator(f".flame-node[data-key='{key}']").bounding_box()
    assert focused is not None and abs(focused["width"] - root["width"]) < 2, "fills the width"
    assert page.locator(".flame-node.ancestor").count() == 2, "trace and POST /orders, above"
    assert page.locator(".flame-node[data-name=charge_payment]").count() == 0, "outside it"
    assert "reserve_stock" in page.inner_text("#flame-info")
    page.click("#flame-reset")
    assert "focus=" not in fragment(page)
    assert page.locator(".flame-node[data-name=charge_payment]").count() == 1


def drag(page: Page, selector: str, start: float, end: float) -> None:
    """Press on ``selector`` at ``start`` of its width, move to ``end``, release."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + start * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + (start + end) / 2 * box["width"], y, steps=4)
    page.mouse.move(box["x"] + end * box["width"], y, steps=4)
    page.mouse.up()


def axis_labels(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(".axis .tick").all_inner_texts()]


def test_dragging_on_the_minimap_zooms_the_timeline_and_reset_undoes_it(site: Site) -> None:
    trace = order_trace()
    page = site.open(f"/trace/{TRACE_ID}")
    assert axis_labels(page)[:2] == ["0 ms", "20 ms"]
    assert not page.is_visible("#reset-zoom")
    drag(page, "#minimap", 0.5, 0.75)  # 60 to 90 ms of the 120 ms trace

    match = re.search(r"range=([\d.]+)-([\d.]+)", fragment(page))
    assert match, fragment(page)
    start, end = float(match.group(1)), float(match.group(2))
    assert abs(start - 0.5) < 0.005 and abs(end - 0.75) < 0.005
    labels = axis_labels(page)
    assert labels[0].startswith("6") and "ms" in labels[0], labels  # about 60 ms
    assert page.is_visible("#minimap-window") and page.is_visible("#reset-zoom")
    assert "showing 60" in page.inner_text("#range-label")

    def lane(key: str) -> str:
        return str(page.inner_html(f".row[data-span-id='{trace.id(key)}'] .lane"))

    assert "offscreen left" in lane("validate"), "before the range: an arrow, no bar"
    assert "cut-end" in lane("charge"), "62-100 ms runs past the range's end"
    assert 'class="bar"' in lane("authorize"), "66-90 ms: inside"
    screenshot(page, "zoomed")

    page.click("#reset-zoom")
    assert "range=" not in fragment(page)
    assert axis_labels(page)[:2] == ["0 ms", "20 ms"]

    # The range is a deep link.
    linked = site.open(f"/trace/{TRACE_ID}#range=0.5000-0.7500")
    assert linked.get_attribute("#waterfall", "data-range") == "0.5-0.75"
    assert linked.is_visible("#minimap-window")


def test_escape_after_a_drag_on_the_minimap_shows_the_whole_trace(site: Site) -> None:
    """Esc, as the README says, right after the drag (the strip took no focus by a click)."""
    page = site.open(f"/trace/{TRACE_ID}")
    drag(page, "#minimap", 0.25, 0.5)
    assert "range=" in fragment(page)
    assert page.get_attribute("#waterfall", "data-range") != "0-1"
    page.keyboard.press("Escape")
    assert "range=" not in fragment(page)
    assert page.get_attribute("#waterfall", "data-range") == "0-1"
    assert not page.is_visible("#minimap-window") and not page.is_visible("#reset-zoom")
    assert axis_labels(page)[:2] == ["0 ms", "20 ms"]


def test_the_critical_path_is_a_band_under_the_bars_and_can_stand_alone(site: Site) -> None:
    trace = order_trace()
    page = site.open(f"/trace/{TRACE_ID}")
    # Under the bar, never across it, and apart from the event marks on its top edge.
    geometry = page.eval_on_selector_all(
        ".row.critical",
        """rows => rows.map(r => {
            const bar = r.querySelector(".bar").getBoundingClientRect();
            const segs = [...r.querySelectorAll(".cp-seg")].map(s => s.getBoundingClientRect());
            const events = [...r.querySelectorAll(".event-mark")].map(
                e => e.getBoundingClientRect());
            return {bar: [bar.top, bar.bottom],
                    segs: segs.map(s => [s.top, s.bottom, s.width]),
                    events: events.map(e => [e.top, e.bottom])};
        })""",
    )
    assert len(geometry) == len(trace.spans) - len(NOT_CRITICAL)
    for row in geometry:
        bar_top, bar_bottom = row["bar"]
        assert row["segs"], row
        assert all(top >= bar_bottom and width >= 2 for top, _, width in row["segs"]), row
        assert all(bottom <= bar_bottom and top < bar_top for top, bottom in row["events"]), row

    page.check("#critical-only")
    shown = page.eval_on_selector_all(
        ".row", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.spanId)"
    )
    assert set(shown) == {trace.id(k) for k in trace.spans if k not in NOT_CRITICAL}
    assert "critical=1" in fragment(page)
    screenshot(page, "critical-path-only")
    # Selecting a span off the path shows it (and every span) again.
    page.goto(f"{site.viewer.ui}/trace/{TRACE_ID}#critical=1&span={trace.id('audit')}")
    page.wait_for_selector("body[data-state=ready]")
    assert page.is_visible(f".row[data-span-id='{trace.id('audit')}']")
    assert not page.is_checked("#critical-only")


def test_rows_show_http_status_and_a_failed_order_links_forward_to_its_retries(
    site: Site,
) -> None:
    linked = site.linked
    page = site.open(f"/trace/{linked.failed_trace}")
    root = page.locator(".row[data-depth='0']").first
    assert root.locator(".http-status").inner_text() == "503"
    statuses = page.eval_on_selector_all(
        ".row[data-http-status]", "rows => rows.map(r => r.dataset.httpStatus)"
    )
    assert "200" in statuses and "201" in statuses, "client and server spans of the flow"
    refund = page.locator(f".row[data-span-id='{linked.refund_span}']")
    assert refund.locator(".link-mark.in").inner_text() == "↪2"
    assert "2 linked from later traces" in page.inner_text("#linked-badge")

    refund.click()
    details = page.text_content("#links-in") or ""
    assert "Linked from (2)" in details and details.count("retry_refund_payment") == 2
    hrefs = page.eval_on_selector_all("#links-in a", "links => links.map(a => a.pathname + a.hash)")
    assert hrefs == [
        f"/trace/{t}#span={s}" for t, s in zip(linked.retry_traces, linked.retry_spans, strict=True)
    ]
    assert "ERROR" in page.inner_text(f"#links-in [data-trace-id='{linked.retry_traces[0]}']")
    page.locator("#links-in").scroll_into_view_if_needed()
    screenshot(page, "linked-from")

    # Follow it: the retry's row has the backward link mark, its details link back.
    page.click("#links-in a >> nth=1")
    page.wait_for_selector("body[data-state=ready]")
    assert linked.retry_traces[1] in page.url
    retry = page.locator(f".row[data-span-id='{linked.retry_spans[1]}']")
    assert retry.locator(".link-mark.out").count() == 1
    assert page.get_attribute("#details", "data-span-id") == linked.retry_spans[1]
    back = page.eval_on_selector_all("#links-out a", "links => links.map(a => a.pathname + a.hash)")
    assert back == [f"/trace/{linked.failed_trace}#span={linked.refund_span}"]


def test_a_confirmed_order_and_its_notification_link_both_ways(site: Site) -> None:
    """The notification is a trace of its own: the order's ``place_order`` row leads to it
    ("Linked from"), and its root leads back."""
    linked = site.linked
    page = site.open(f"/trace/{linked.confirmed_trace}")
    place = page.locator(f".row[data-span-id='{linked.confirmed_span}']")
    assert place.locator(".link-mark.in").inner_text() == "↪1"
    place.click()
    details = page.text_content("#links-in") or ""
    assert "Linked from (1)" in details and "send_confirmation" in details
    page.click("#links-in a")
    page.wait_for_selector("body[data-state=ready]")
    assert linked.notification_trace in page.url
    root = page.locator(f".row[data-span-id='{linked.notification_span}']")
    assert root.locator(".link-mark.out").count() == 1
    back = page.eval_on_selector_all("#links-out a", "links => links.map(a => a.pathname + a.hash)")
    assert back == [f"/trace/{linked.confirmed_trace}#span={linked.confirmed_span}"]


@pytest.mark.parametrize("view", ["timeline", "statistics", "flamegraph"])
def test_the_skew_note_stays_visible_in_every_view(site: Site, view: str) -> None:
    page = site.open(f"/trace/{SKEW_TRACE_ID}#view={view}")
    assert page.is_visible(f"#view-{view}")
    assert page.is_visible("#overhang-warning")
    assert "2 span(s) run outside their parent's time range" in page.inner_text("#overhang-warning")
    if view == "statistics":
        assert page.locator("#stats-table .overhang-icon").count() == 2
    page.close()


def test_the_views_are_tabs_of_one_page(site: Site) -> None:
    page = site.open(f"/trace/{TRACE_ID}")
    for view in ("statistics", "flamegraph", "timeline"):
        page.click(f"#tab-{view}")
        assert page.is_visible(f"#view-{view}")
        assert page.get_attribute(f"#tab-{view}", "aria-selected") == "true"
        assert (fragment(page) == "") == (view == "timeline"), fragment(page)
    # Typing in the find box from another view goes back to the timeline.
    page.click("#tab-statistics")
    page.fill("#find", "check_stock")
    assert page.is_visible("#view-timeline")
    assert page.inner_text("#find-count") == "3 matches"
    assert not page.errors  # type: ignore[attr-defined]
