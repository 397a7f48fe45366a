"""docs/scenarios.md's "Find it in the viewer" walkthroughs, walked in headless Chromium as
written: for each planted scenario, the orders the page says are placed with the scenario off
and then on (the four apps in this process, their spans sent to a real trace viewer, off
first), and each numbered step is done on the pages — the list, the comparison, the trace's
views — checking that the page shows what the step says.

The doc is the script: its steps are read from the page (``walkthrough``), their count must be
the one the doc announces, every URL a step gives is the one opened (or, where the step has
the user type a search, the one the page arrives at), and every name the test looks for on
the page must be quoted in that step (``Walkthrough.step``). Edit a step and this test points
at it. What is asserted is what happened — which spans, how many, which are on the critical
path, which ran one after the other — never how long anything took; only ``slow_card_range``
ranks by time (sorting, the largest difference, self time), as its 300 ms is the planted bug.
A screenshot of each walkthrough's last step lands in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import Browser, Page

from ordersim import samples
from ordersim.testing import in_process_system
from ordersim.testing.processes import Viewer, running_viewer
from payment_service import cards
from payment_service.routes import LEGACY_PROCESSOR_DELAY
from tests import ROOT, chromium
from tests.chromium import launched_chromium, open_page

DOC = ROOT / "docs" / "scenarios.md"
ORIGIN = "http://127.0.0.1:16686"  # the viewer the doc's URLs name (ours runs on a free port)
LEGACY_CARD = "5555555555554444"  # the doc's card in the slow BIN range
LEGACY_DELAY_NS = int(LEGACY_PROCESSOR_DELAY * 1e9)  # what authorize_card sleeps for it
AUTHORIZE = ("authorize_card", "payment-service")
#: Percent of the trace's width: bars are placed from nanoseconds, written with some rounding.
EPSILON = 1e-3
TIMES = "\u00d7"  # the pages' mark of a count, as in "3 times 1.22 ms"


# --------------------------------------------------------------------------------------------
# The doc's steps


@dataclass(frozen=True)
class Walkthrough:
    scenario: str
    steps: list[str]

    def step(self, number: int, *quoted: str) -> str:
        """Step ``number`` (from 1), which must quote each of ``quoted`` in backticks: the test
        looks for those names on the page."""
        text = self.steps[number - 1]
        missing = [name for name in quoted if f"`{name}`" not in text]
        assert not missing, f"{self.scenario} step {number} no longer quotes {missing}: {text}"
        return text

    def paths(self, number: int) -> list[str]:
        """The viewer URLs step ``number`` gives, in its order, as paths of our viewer."""
        urls = re.findall(rf"`{re.escape(ORIGIN)}([^`]*)`", self.step(number))
        assert urls, f"{self.scenario} step {number} gives no URL"
        return [str(url) for url in urls]


def walkthrough(scenario: str) -> Walkthrough:
    """The numbered steps under "**Find it in the viewer** (N steps)" in the scenario's section,
    each as one line of text."""
    text = DOC.read_text()
    section = re.search(rf"^## \d+\. `{scenario}`.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, f"docs/scenarios.md has no section for {scenario}"
    head = re.search(
        r"^\*\*Find it in the viewer\*\* \((\d+) steps\)", section.group(), re.MULTILINE
    )
    assert head, f"the {scenario} section has no '**Find it in the viewer** (N steps)'"
    steps: list[str] = []
    for line in section.group()[head.end() :].splitlines()[1:]:
        item = re.match(r"(\d+)\. (.*)", line)
        if item:
            assert int(item.group(1)) == len(steps) + 1, f"{scenario}: steps out of order"
            steps.append(item.group(2))
        elif steps and line.startswith("   "):
            steps[-1] += " " + line.strip()
        elif steps and line.strip():
            break  # the first paragraph after the list
    assert len(steps) == int(head.group(1)), f"{scenario}: {len(steps)} steps, not {head[1]}"
    return Walkthrough(scenario, steps)


# --------------------------------------------------------------------------------------------
# The system and the browser


@dataclass(frozen=True)
class Orders:
    off: list[str]  # trace ids, in the order placed, with the scenario off
    on: list[str]  # the same orders with the scenario on


@dataclass(frozen=True)
class Site:
    viewer: Viewer
    browser: Browser
    tmp: pytest.TempPathFactory

    def place(self, scenario: str, numbers: tuple[str, ...] = (cards.APPROVED,)) -> Orders:
        """The sample order (``ordersim order``) once per card number, with the scenario off
        and then on, each state a fresh system; their spans stored in the viewer, off first."""
        placed = []
        for scenarios in (set(), {scenario}):
            data = self.tmp.mktemp(f"{scenario}-{'on' if scenarios else 'off'}")
            # Playwright's sync API runs an event loop in this thread: the apps get their own.
            with ThreadPoolExecutor(1) as thread:
                ids, request = thread.submit(asyncio.run, _place(data, scenarios, numbers)).result()
            stored = httpx.post(
                self.viewer.traces_endpoint,
                content=request,
                headers={"content-type": "application/x-protobuf"},
            )
            assert stored.status_code == 200, stored.text
            placed.append(ids)
        return Orders(*placed)

    def open(self, path: str) -> Page:
        """A fresh page at ``path`` of our viewer, once it has drawn."""
        return open_page(self.browser, f"{self.viewer.ui}{path}")

    def relative(self, page: Page) -> str:
        """The page's URL as a path, to hold against the doc's."""
        return page.url.removeprefix(self.viewer.ui)


async def _place(
    data: Path, scenarios: set[str], numbers: tuple[str, ...]
) -> tuple[list[str], bytes]:
    """The orders' trace ids, and their spans as an exporter sends them (OTLP protobuf)."""
    exporter = InMemorySpanExporter()
    async with in_process_system(data, exporter, scenarios=scenarios) as system:
        ids = []
        for number in numbers:
            response = await system.order.post(
                "/orders", json=samples.order_body(card_number=number)
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["trace_id"])
        await system.drain()
    return ids, encode_spans(exporter.get_finished_spans()).SerializeToString()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with (
        running_viewer(tmp_path_factory.mktemp("viewer")) as viewer,
        launched_chromium() as browser,
    ):
        yield Site(viewer, browser, tmp_path_factory)


def ready(page: Page) -> None:
    page.wait_for_selector("body[data-state]")
    assert page.evaluate("document.body.dataset.state") == "ready"


def screenshot(page: Page, scenario: str) -> None:
    chromium.screenshot(page, f"walkthrough-{scenario.replace('_', '-')}")


# --------------------------------------------------------------------------------------------
# What the pages show


def list_rows(page: Page) -> list[dict[str, Any]]:
    """The trace list's rows, top to bottom: id, span count, outcome."""
    rows: list[dict[str, Any]] = page.evaluate(
        """() => {
            const heads = [...document.querySelectorAll("#traces thead th")].map(
                th => th.textContent.trim());
            return [...document.querySelectorAll("#traces tbody tr[data-trace-id]")].map(r => ({
                id: r.dataset.traceId,
                spans: Number(r.cells[heads.indexOf("Spans")].textContent),
                outcome: r.cells[heads.indexOf("Outcome")].textContent,
            }));
        }"""
    )
    return rows


def compare_ticked(page: Page, a: str, b: str) -> None:
    """Tick the rows of ``a`` and ``b`` and press Compare: the comparison of A against B."""
    for trace_id in (b, a):
        page.check(f"#traces tr[data-trace-id='{trace_id}'] td.pick input")
    page.click("#compare-picked")
    page.wait_for_url(f"**/trace/{a}...{b}")
    ready(page)


def diff_rows(page: Page) -> list[dict[str, Any]]:
    """The comparison's rows as shown (tests/test_trace_compare.py reads more of them)."""
    rows: list[dict[str, Any]] = page.eval_on_selector_all(
        "#diff-table tbody tr.diff-row",
        """rows => rows.map(r => ({
            depth: Number(r.dataset.depth), service: r.dataset.service,
            operation: r.dataset.operation, countA: Number(r.dataset.countA),
            countB: Number(r.dataset.countB), totalANs: Number(r.dataset.totalANs),
            totalBNs: Number(r.dataset.totalBNs), deltaClass: r.dataset.deltaClass,
            name: r.querySelector(".name-cell").textContent,
        }))""",
    )
    return rows


def ancestors(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows above ``row`` in its tree, from the root down (rows are depth first)."""
    found: list[dict[str, Any]] = []
    for earlier in reversed(rows[: rows.index(row)]):
        if earlier["depth"] == (found[0] if found else row)["depth"] - 1:
            found.insert(0, earlier)
    return found


def timeline_rows(page: Page) -> list[dict[str, Any]]:
    """The timeline's rows: span, parent, name, service, on the critical path, shown, and its
    bar's place (percent of the trace's width)."""
    rows: list[dict[str, Any]] = page.eval_on_selector_all(
        "#waterfall .row",
        """rows => rows.map(r => {
            const bar = r.querySelector(".bar");
            return {
                id: r.dataset.spanId, parent: r.dataset.parentSpanId || null,
                name: r.querySelector(".op").textContent, service: r.dataset.service,
                critical: r.dataset.critical === "true", shown: !r.hidden,
                left: parseFloat(bar.style.left), width: parseFloat(bar.style.width),
            };
        })""",
    )
    return rows


def one(rows: list[dict[str, Any]], name: str, service: str) -> dict[str, Any]:
    [found] = [r for r in rows if r["name"] == name and r["service"] == service]
    return found


def children(rows: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rows if r["parent"] == parent["id"]]


def one_after_another(bars: list[dict[str, Any]]) -> bool:
    """Each bar (in the order they start) ends before the next one starts."""
    bars = sorted(bars, key=lambda r: r["left"])
    return all(a["left"] + a["width"] <= b["left"] + EPSILON for a, b in pairwise(bars))


def overlapping(bars: list[dict[str, Any]]) -> bool:
    """Every two bars share some time."""
    return all(
        a["left"] < b["left"] + b["width"] and b["left"] < a["left"] + a["width"]
        for a in bars
        for b in bars
        if a is not b
    )


def no_count_changes(page: Page) -> None:
    """The comparison's header and rows: no path only in one trace, no count that changed."""
    assert page.inner_text("#count-only-a") == "0 only in A"
    assert page.inner_text("#count-only-b") == "0 only in B"
    assert page.locator("#diff-table .count-change").count() == 0
    assert all(r["countA"] == r["countB"] for r in diff_rows(page))


def the_two_newest(page: Page, orders: Orders, spans: tuple[int, int]) -> None:
    """The list's two newest rows are the order with the scenario on, then the one without."""
    rows = list_rows(page)[:2]
    assert [r["id"] for r in rows] == [orders.on[-1], orders.off[-1]]
    assert [r["spans"] for r in rows] == list(spans)
    assert all(r["outcome"] == "201 confirmed" for r in rows)


# --------------------------------------------------------------------------------------------
# The walkthroughs, one per scenario, step by step as the doc numbers them


def test_sequential_calls_walkthrough(site: Site) -> None:
    doc = walkthrough("sequential_calls")
    orders = site.place("sequential_calls")
    off, on = orders.off[0], orders.on[0]

    # Step 1: the list; the two newest rows are the two orders.
    doc.step(1, "51")
    [url] = doc.paths(1)
    page = site.open(url)
    the_two_newest(page, orders, (51, 51))

    # Step 2: tick both, Compare: the same paths, the same counts.
    doc.step(2, "⇄ Compare", "0 only in A", "0 only in B")
    compare_ticked(page, off, on)
    no_count_changes(page)

    # Step 3: B's trace id in the header opens the order with the scenario on.
    page.click("#side-b a.trace-link")
    page.wait_for_url(f"**/trace/{on}")
    ready(page)

    # Step 4: critical path only: both calls of each pair stay under place_order ...
    doc.step(4, "place_order", "reserve_stock", "quote_shipping", "commit_stock", "create_shipment")
    pairs = (("reserve_stock", "quote_shipping"), ("commit_stock", "create_shipment"))

    def on_the_path(page: Page) -> set[str]:
        page.check("#critical-only")
        assert "critical=1" in page.evaluate("location.hash")
        rows = timeline_rows(page)
        steps = children(rows, one(rows, "place_order", "order-service"))
        return {r["name"] for r in steps if r["shown"] and r["critical"]}

    shown = on_the_path(page)
    assert all(set(pair) <= shown for pair in pairs), shown
    rows = timeline_rows(page)
    for first, second in pairs:  # the second call of each pair starts when the first ended
        assert one_after_another(
            [one(rows, first, "order-service"), one(rows, second, "order-service")]
        )
    screenshot(page, "sequential_calls")
    # ... and in A's trace, the same box keeps one of each pair: the other ran beside it.
    shown = on_the_path(site.open(f"/trace/{off}"))
    assert all(len(set(pair) & shown) == 1 for pair in pairs), shown


def test_pool_of_one_walkthrough(site: Site) -> None:
    doc = walkthrough("pool_of_one")
    orders = site.place("pool_of_one")
    off, on = orders.off[0], orders.on[0]

    # Step 1: the list; the two newest rows are the two orders.
    doc.step(1, "51")
    [url] = doc.paths(1)
    page = site.open(url)
    the_two_newest(page, orders, (51, 51))

    # Step 2: tick both, Compare: no statement added or dropped.
    doc.step(2, "⇄ Compare", "0 only in A", "0 only in B")
    compare_ticked(page, off, on)
    no_count_changes(page)

    # Step 3: B's time in the check_stock row opens that span in the order with the scenario on.
    doc.step(3, "check_stock", f"3{TIMES}")
    check_row = page.locator("#diff-table tr[data-operation=check_stock]")
    assert check_row.get_attribute("data-count-b") == "3"
    check_row.locator(".side-b a").click()
    page.wait_for_url(f"**/trace/{on}#span=*")
    ready(page)
    rows = timeline_rows(page)
    selected = page.get_attribute("#details", "data-span-id")
    assert next(r for r in rows if r["id"] == selected)["name"] == "check_stock"

    # Step 4: the three checks start together; their SELECTs take turns, a staircase.
    doc.step(4, "check_stock", "reserve_items", "SELECT products")
    reserve = one(rows, "reserve_items", "inventory-service")
    checks = [r for r in children(rows, reserve) if r["name"] == "check_stock"]
    assert len(checks) == 3 and overlapping(checks)
    selects = [s for c in checks for s in children(rows, c)]
    assert [s["name"] for s in selects] == ["SELECT products"] * 3
    assert one_after_another(selects), selects
    page.locator(f".row[data-span-id='{reserve['id']}']").scroll_into_view_if_needed()
    screenshot(page, "pool_of_one")


def test_n_plus_one_walkthrough(site: Site) -> None:
    doc = walkthrough("n_plus_one")
    orders = site.place("n_plus_one")
    off, on = orders.off[0], orders.on[0]

    # Step 1: the list; the newer order has two spans more.
    doc.step(1, "53", "51")
    [url] = doc.paths(1)
    page = site.open(url)
    the_two_newest(page, orders, (53, 51))

    # Step 2: tick both, Compare.
    doc.step(2, "⇄ Compare")
    compare_ticked(page, off, on)

    # Step 3: one row changed its count, SELECT products 1→3, under the catalogue lookup of
    # validate_order.
    doc.step(3, "SELECT products", "1→3", "validate_order", "GET /products")
    rows = diff_rows(page)
    changed = [r for r in rows if r["countA"] != r["countB"]]
    assert [(r["operation"], r["service"]) for r in changed] == [
        ("SELECT products", "inventory-service")
    ]
    [select] = changed
    assert "1→3" in select["name"]
    assert [(r["operation"], r["service"]) for r in ancestors(rows, select)[-3:]] == [
        ("validate_order", "order-service"),
        ("GET /products", "order-service"),
        ("GET /products", "inventory-service"),
    ]
    screenshot(page, "n_plus_one-compare")

    # Step 4: B's time in that row opens the order with the scenario on at one of the three,
    # and they run one after another under inventory-service's GET /products.
    doc.step(4, f"3{TIMES} …", "SELECT products", "GET /products")
    page.locator("#diff-table tr.diff-row").nth(rows.index(select)).locator(".side-b a").click()
    page.wait_for_url(f"**/trace/{on}#span=*")
    ready(page)
    rows = timeline_rows(page)
    server = one(rows, "GET /products", "inventory-service")
    selects = children(rows, server)
    assert [s["name"] for s in selects] == ["SELECT products"] * 3
    assert page.get_attribute("#details", "data-span-id") in {s["id"] for s in selects}
    assert one_after_another(selects), selects
    screenshot(page, "n_plus_one")


def test_slow_card_range_walkthrough(site: Site) -> None:
    doc = walkthrough("slow_card_range")
    orders = site.place("slow_card_range", (cards.APPROVED, LEGACY_CARD))
    off, on = orders.off[1], orders.on[1]  # the orders paid with the 5555 card

    # Step 1: the list searched by the card's last four digits, longest first: the URL the doc
    # gives; the two 5555 orders.
    doc.step(1, "shop.payment.card_last4=4444")
    start, searched = doc.paths(1)
    page = site.open(start)
    page.fill("#tags", "shop.payment.card_last4=4444")
    page.click("#filters button[type=submit]")
    page.wait_for_function(
        "() => document.querySelectorAll('#traces tbody tr[data-trace-id]').length === 2"
    )
    page.select_option("#sort", "longest")
    assert site.relative(page) == searched
    # Which of the two took longer is the machine's to say (a busy one can slow the other
    # order by more than the planted 300 ms): the test holds the page to the durations the
    # API gives, the list longest first and the longer one's dot higher in the plot.
    durations = {
        row["traceID"]: int(row["durationNano"])
        for row in httpx.get(
            f"{site.viewer.ui}/api/summaries", params={"traceID": [on, off]}
        ).json()["data"]
    }
    longest_first = sorted(durations, key=lambda t: -durations[t])
    assert [r["id"] for r in list_rows(page)] == longest_first
    heights = page.eval_on_selector_all(
        "#scatter a.dot-link",
        "links => Object.fromEntries(links.map(a => [a.dataset.traceId,"
        " Number(a.querySelector('circle').getAttribute('cy'))]))",
    )
    assert heights.keys() == {on, off}
    assert heights[longest_first[0]] <= heights[longest_first[1]]

    # Step 2: tick both, Compare: the slow order made no call the other did not.
    doc.step(2, "⇄ Compare", "0 only in A", "0 only in B")
    compare_ticked(page, off, on)
    no_count_changes(page)

    # Step 3: down the orange rows to authorize_card, much slower in B, with no row under it:
    # of the rows with nothing under them, the one whose time grew most.
    doc.step(
        3, "POST /orders", "charge_payment", "POST /charges", "authorize_card", f"≥2{TIMES} slower"
    )
    # The row is found by name: how much slower it is, and whether it is the slowest, is the
    # clock's. The test asserts what the planted delay guarantees: B's call slept through it.
    rows = diff_rows(page)
    [slowest] = [r for r in rows if (r["operation"], r["service"]) == AUTHORIZE]
    assert slowest["countA"] == slowest["countB"] == 1
    assert slowest["totalBNs"] >= LEGACY_DELAY_NS
    above = ancestors(rows, slowest)
    path = ["POST /orders", "place_order", "charge_payment", "POST /charges", "POST /charges"]
    assert [r["operation"] for r in above] == path

    # Step 4: B's time in that row: authorize_card selected, its card and processor in details.
    doc.step(4, "mastercard", "4444", "processor_called", "legacy", "authorized")
    page.locator("#diff-table tr.diff-row").nth(rows.index(slowest)).locator(".side-b a").click()
    page.wait_for_url(f"**/trace/{on}#span=*")
    ready(page)
    selected = page.get_attribute("#details", "data-span-id")
    rows = timeline_rows(page)
    assert next(r for r in rows if r["id"] == selected)["name"] == "authorize_card"
    details = page.inner_text("#details")
    for words in ("shop.payment.card_brand", "mastercard", "shop.payment.card_last4", "4444"):
        assert words in details, words
    for words in ("processor_called", "shop.payment.processor", "legacy", "authorized"):
        assert words in details, words

    # Step 5: the statistics: authorize_card has the most self time of any operation.
    doc.step(5, "authorize_card")
    page.click("#tab-statistics")
    # Sorted by self time, largest first; authorize_card holds the planted delay as its own.
    stats = page.eval_on_selector_all(
        "#stats-table tbody tr",
        "rows => rows.map(r => [r.dataset.service, r.dataset.operation, Number(r.dataset.selfNs)])",
    )
    selves = [self_ns for _, _, self_ns in stats]
    assert selves == sorted(selves, reverse=True)
    [authorize] = [self_ns for service, op, self_ns in stats if (op, service) == AUTHORIZE]
    assert authorize >= LEGACY_DELAY_NS
    screenshot(page, "slow_card_range")


def test_the_doc_walks_every_scenario_it_plants() -> None:
    """Each scenario's section has its walkthrough, and the overview counts their steps."""
    text = DOC.read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (\d+) \|", text, re.MULTILINE))
    from common.scenarios import Scenario

    assert table == {s.value: str(len(walkthrough(s.value).steps)) for s in Scenario}
