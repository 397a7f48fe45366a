"""Two traces compared at ``/trace/{a}...{b}`` (Jaeger UI's compare URL), in headless Chromium
driven by Playwright: the shared fixtures of ``ordersim trace diff`` give expected.json's rows
on the page too, and real orders compare as the planted bugs say — ``n_plus_one`` on against
off (``SELECT products`` 1 → 3 under ``GET /products``), a declined card against a confirmed
order (the commit and the shipment only in A, the release of the stock only in B, the
decline's errors in B). The trace page's "Compare…" action, the swap, and the page's word on
malformed and unknown ids. Screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import Browser, Page

from ordersim.testing import in_process_system
from ordersim.testing.processes import Viewer, running_viewer
from payment_service import cards
from tests import ROOT, chromium
from tests.chromium import launched_chromium, open_page
from tests.helpers import order_body

FIXTURES = ROOT / "tests" / "fixtures" / "trace_diff"
FIXTURE_A, FIXTURE_B = "a" * 32, "b" * 32
THREE_SKUS = [("SKU-0001", 2), ("SKU-0002", 1), ("SKU-0003", 3)]
UNKNOWN = "0123456789abcdef0123456789abcdef"
MINUS, TIMES = "\u2212", "\u00d7"  # the page's marks: only in A, and a count of spans


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --------------------------------------------------------------------------------------------
# The page's route, without a browser


async def test_the_compare_url_serves_the_comparison_page(query_app: httpx.AsyncClient) -> None:
    one, other = "ab" * 16, "cd" * 16
    for path in (f"/trace/{one}...{other}", f"/trace/{one}...nope", "/trace/x...y"):
        # Any pair: the page itself says which id is malformed or unknown.
        response = await query_app.get(path)
        assert response.status_code == 200, path
        assert "/static/compare/index.js" in response.text
    page = await query_app.get(f"/trace/{one}")
    assert page.status_code == 200 and "/static/trace/index.js" in page.text
    # Neither one id nor two joined by "...": the 422 of every endpoint, as before.
    for bad in ("nope", f"{one}..{other}", f"{one}...", f"...{other}", f"{one}.{other}"):
        assert (await query_app.get(f"/trace/{bad}")).status_code == 422, bad
    assert (await query_app.get("/static/compare/diff.js")).status_code == 200


# --------------------------------------------------------------------------------------------
# Real orders: n_plus_one off and on, a confirmed order and a declined card


@dataclass(frozen=True)
class Orders:
    request: bytes  # every span, OTLP protobuf, as a service's exporter sends it
    span_counts: dict[str, int]
    confirmed: str  # three SKUs, no scenario
    declined: str  # the same order, its card declined (402)
    n_plus_one: str  # three SKUs with n_plus_one planted


async def _place_orders(tmp_path: Path) -> Orders:
    exporter = InMemorySpanExporter()
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    async with in_process_system(tmp_path / "off", exporter) as system:
        confirmed = await system.order.post("/orders", json=order_body(THREE_SKUS))
        declined = await system.order.post(
            "/orders", json=order_body(THREE_SKUS, card=cards.DECLINED)
        )
        await system.drain()
    async with in_process_system(tmp_path / "on", exporter, scenarios={"n_plus_one"}) as system:
        n_plus_one = await system.order.post("/orders", json=order_body(THREE_SKUS))
        await system.drain()
    assert (confirmed.status_code, declined.status_code, n_plus_one.status_code) == (201, 402, 201)
    spans = list(exporter.get_finished_spans())
    counts: dict[str, int] = {}
    for span in spans:
        trace_id = f"{span.context.trace_id:032x}"
        counts[trace_id] = counts.get(trace_id, 0) + 1
    return Orders(
        request=encode_spans(spans).SerializeToString(),
        span_counts=counts,
        confirmed=confirmed.json()["trace_id"],
        declined=declined.json()["trace_id"],
        n_plus_one=n_plus_one.json()["trace_id"],
    )


@dataclass(frozen=True)
class Site:
    viewer: Viewer
    browser: Browser
    orders: Orders

    def open(self, path: str, state: str = "ready") -> Page:
        """A fresh page at ``path``, once it has drawn (or said what is wrong)."""
        return open_page(self.browser, f"{self.viewer.ui}{path}", state)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    orders = asyncio.run(_place_orders(tmp_path_factory.mktemp("apps")))
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        for name in ("a.json", "b.json"):
            request = {"resourceSpans": fixture(name)["result"]["resourceSpans"]}
            assert httpx.post(viewer.traces_endpoint, json=request).status_code == 200
        response = httpx.post(
            viewer.traces_endpoint,
            content=orders.request,
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200, response.text
        with launched_chromium() as browser:
            yield Site(viewer, browser, orders)


def screenshot(page: Page, name: str) -> None:
    chromium.screenshot(page, f"trace-compare-{name}", full_page=True)


def diff_rows(page: Page) -> list[dict[str, Any]]:
    """The table's rows, from what each row says of itself, in expected.json's shape and more."""
    rows: list[dict[str, Any]] = page.eval_on_selector_all(
        "#diff-table tbody tr.diff-row",
        """rows => rows.map(r => ({
            depth: Number(r.dataset.depth), service: r.dataset.service,
            operation: r.dataset.operation, presence: r.dataset.presence,
            countA: Number(r.dataset.countA), countB: Number(r.dataset.countB),
            totalANs: Number(r.dataset.totalANs), totalBNs: Number(r.dataset.totalBNs),
            deltaClass: r.dataset.deltaClass, errorsA: Number(r.dataset.errorsA),
            errorsB: Number(r.dataset.errorsB), classes: r.className,
            name: r.querySelector(".name-cell").textContent,
            a: r.querySelector(".side-a").textContent, b: r.querySelector(".side-b").textContent,
            delta: r.querySelector(".delta").textContent,
            rowBg: getComputedStyle(r).backgroundColor,
            deltaBg: getComputedStyle(r.querySelector(".delta")).backgroundColor,
            errorMarks: [...r.querySelectorAll(".side .err-icon")].map(
                e => e.closest("td").classList.contains("side-a") ? "A" : "B"),
        }))""",
    )
    return rows


SHAPE = ("depth", "service", "operation", "presence", "countA", "countB", "totalANs", "totalBNs")


def css_colour(page: Page, variable: str) -> str:
    """A colour variable of the stylesheet as the browser computes it (``rgb(…)``)."""
    return str(
        page.evaluate(
            """name => { const el = document.createElement("span");
                el.style.backgroundColor = `var(${name})`; document.body.append(el);
                const colour = getComputedStyle(el).backgroundColor; el.remove();
                return colour; }""",
            variable,
        )
    )


def test_the_shared_fixtures_give_expected_json_rows_on_the_page(site: Site) -> None:
    page = site.open(f"/trace/{FIXTURE_A}...{FIXTURE_B}")
    rows = diff_rows(page)
    assert [{k: r[k] for k in SHAPE} for r in rows] == fixture("expected.json")["rows"]
    counts = page.inner_text("#compare-counts")
    assert counts == "6 in both · 1 only in A · 2 only in B"

    by_op = {r["operation"]: r for r in rows}
    only_a, only_b = by_op["quote_shipping"], by_op["charge_payment"]
    # Red only in A, green only in B, with their marks; the colours the legend shows.
    assert only_a["rowBg"] == css_colour(page, "--only-a-bg") and MINUS in only_a["name"]
    assert only_b["rowBg"] == css_colour(page, "--only-b-bg") and "+" in only_b["name"]
    assert only_a["delta"] == "only in A" and only_a["b"] == "—"
    assert only_b["delta"] == "only in B" and only_b["a"] == "—"
    # charge_payment failed in B: its error is marked on B's side.
    assert only_b["errorMarks"] == ["B"]
    # check_stock: 2 -> 3 spans, 22 -> 64 ms, B 2x slower or more: the scale's deepest orange.
    check = by_op["check_stock"]
    assert "2→3" in check["name"]
    assert check["a"] == f"2{TIMES} 22.0 ms" and check["b"] == f"3{TIMES} 64.0 ms"
    assert check["delta"].startswith("+42.0 ms+191 %")
    assert check["deltaClass"] == "slower-3"
    assert check["deltaBg"] == css_colour(page, "--slower-3")
    assert by_op["POST /orders"]["deltaClass"] == "slower-3"
    # The count change is shown only where it differs.
    assert "→" not in by_op["place_order"]["name"]
    # The legend says what each colour means, with the same colours.
    legend = page.inner_text("#compare-legend")
    faster, slower = f"≥2{TIMES} faster", f"≥2{TIMES} slower"
    for words in ("only in A (red)", "only in B (green)", faster, slower, "2→3"):
        assert words in legend
    scale = page.eval_on_selector_all(
        "#compare-legend .scale-step",
        "steps => steps.map(s => [s.dataset.deltaClass, getComputedStyle(s).backgroundColor])",
    )
    assert [cls for cls, _ in scale] == [
        "faster-3", "faster-2", "faster-1", "same", "slower-1", "slower-2", "slower-3"
    ]  # fmt: skip
    assert dict(scale)["slower-3"] == check["deltaBg"]
    assert len({colour for _, colour in scale if _ != "same"}) == 6, "six distinct steps"
    # The header: both ids, linked to their trace pages; roots, durations, span counts.
    a_line, b_line = page.inner_text("#side-a"), page.inner_text("#side-b")
    assert page.get_attribute("#side-a a.trace-link", "href") == f"/trace/{FIXTURE_A}"
    assert page.get_attribute("#side-b a.trace-link", "href") == f"/trace/{FIXTURE_B}"
    assert "POST /orders" in a_line and "100 ms" in a_line and "8 spans" in a_line
    assert "POST /orders" in b_line and "400 ms" in b_line and "10 spans" in b_line
    # A side's time links to that span in its own trace.
    href = page.get_attribute(
        "#diff-table tr[data-operation=check_stock] .side-b a", "href"
    )  # the slowest of B's three: b00000000000000a, 23 ms
    assert href == f"/trace/{FIXTURE_B}#span=b00000000000000a"
    screenshot(page, "fixtures")


def test_n_plus_one_on_against_off_shows_one_select_become_three(site: Site) -> None:
    orders = site.orders
    page = site.open(f"/trace/{orders.confirmed}...{orders.n_plus_one}")
    rows = diff_rows(page)
    # The same flow either way: every path in both, nothing only in one.
    assert {r["presence"] for r in rows} == {"both"}
    assert page.inner_text("#count-only-a") == "0 only in A"
    assert page.inner_text("#count-only-b") == "0 only in B"
    changed = [r for r in rows if r["countA"] != r["countB"]]
    # The N+1: under the GET /products of validate_order, one SELECT per product.
    assert [(r["service"], r["operation"], r["countA"], r["countB"]) for r in changed] == [
        ("inventory-service", "SELECT products", 1, 3)
    ]
    [select] = changed
    assert "1→3" in select["name"]
    index = rows.index(select)
    ancestors = [r["operation"] for r in rows[:index] if r["depth"] < select["depth"]]
    assert ancestors[-4:] == ["place_order", "validate_order", "GET /products", "GET /products"]
    # The header: both spans counts as stored.
    assert page.inner_text("#side-a .span-count") == str(orders.span_counts[orders.confirmed])
    assert page.inner_text("#side-b .span-count") == str(orders.span_counts[orders.n_plus_one])

    # Only the differences: the SELECT stays, with its ancestors; what is left differs or
    # leads to a row that does.
    page.check("#changed-only")
    assert "changed=1" in page.evaluate("location.hash")
    shown = diff_rows(page)
    names = [(r["depth"], r["operation"]) for r in shown]
    assert (select["depth"], "SELECT products") in names
    assert len(shown) <= len(rows)
    for i, row in enumerate(shown):
        differs = row["countA"] != row["countB"] or row["deltaClass"] != "same"
        leads = i + 1 < len(shown) and shown[i + 1]["depth"] > row["depth"]
        assert differs or leads, row
    screenshot(page, "n-plus-one")
    page.uncheck("#changed-only")
    assert len(diff_rows(page)) == len(rows)


def test_a_declined_card_against_a_confirmed_order_and_the_swap(site: Site) -> None:
    orders = site.orders
    page = site.open(f"/trace/{orders.confirmed}...{orders.declined}")
    rows = diff_rows(page)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_op.setdefault(row["operation"], []).append(row)
    presence = {op: {r["presence"] for r in found} for op, found in by_op.items()}
    # The confirmed order went on to capture, commit and ship; the declined one released.
    for op in ("capture_payment", "commit_stock", "create_shipment"):
        assert presence[op] == {"only_a"}, op
    assert presence["release_stock"] == {"only_b"}
    assert presence["authorize_card"] == {"both"}
    [authorize] = by_op["authorize_card"]
    assert (authorize["errorsA"], authorize["errorsB"], authorize["errorMarks"]) == (0, 1, ["B"])
    assert "has-error" in authorize["classes"].split()
    counts = {p: sum(r["presence"] == p for r in rows) for p in ("both", "only_a", "only_b")}
    assert page.inner_text("#compare-counts") == (
        f"{counts['both']} in both · {counts['only_a']} only in A · {counts['only_b']} only in B"
    )
    assert counts["only_a"] > 0 and counts["only_b"] > 0
    for row in rows:
        colour = {"only_a": "--only-a-bg", "only_b": "--only-b-bg"}.get(row["presence"])
        if colour:
            assert row["rowBg"] == css_colour(page, colour), row
    # The roots and their HTTP status: 201 against 402.
    assert "POST /orders" in page.inner_text("#side-a")
    assert page.inner_text("#side-a .http-status") == "201"
    assert page.inner_text("#side-b .http-status") == "402"
    # Each side's error badge counts as the trace list does (real errors, not those an
    # injected fault caused): the declined card's errors, none for the confirmed order.
    listed = httpx.get(
        f"{site.viewer.ui}/api/summaries", params={"traceID": [orders.declined]}
    ).json()["data"]
    errors = listed[0]["errorCount"]
    assert errors > 0 and page.locator("#side-a .badge.error").count() == 0
    assert page.inner_text("#side-b .badge.error") == f"⚠ {errors} error{'s' * (errors > 1)}"
    screenshot(page, "declined")

    page.click("#swap")
    page.wait_for_url(f"**/trace/{orders.declined}...{orders.confirmed}")
    page.wait_for_selector("body[data-state=ready]")
    # The same rows with A and B swapped. Several rows can share a depth, service and
    # operation (UPDATE products under reserve_items and under release_reservation), so
    # they are compared as multisets, not keyed by those three.
    flip = {"both": "both", "only_a": "only_b", "only_b": "only_a"}
    swapped = Counter(
        (r["depth"], r["service"], r["operation"], r["presence"]) for r in diff_rows(page)
    )
    assert swapped == Counter(
        (r["depth"], r["service"], r["operation"], flip[r["presence"]]) for r in rows
    )
    assert page.get_attribute("#side-a a.trace-link", "href") == f"/trace/{orders.declined}"


def test_the_trace_page_compares_with_an_id_or_url_typed_or_suggested(site: Site) -> None:
    orders = site.orders
    page = site.open(f"/trace/{orders.confirmed}")
    page.click("#compare-action summary")
    # Recent traces with the same root are suggested, not this one.
    page.wait_for_function(
        "n => document.querySelectorAll('#compare-suggestions option').length >= n", arg=2
    )
    suggested = page.eval_on_selector_all(
        "#compare-suggestions option", "options => options.map(o => o.value)"
    )
    # (The fixture traces' root is POST /orders of order-service too.)
    assert set(suggested) == {orders.declined, orders.n_plus_one, FIXTURE_A, FIXTURE_B}
    page.fill("#compare-with", "not-a-trace")
    page.click("#compare-go")
    assert page.inner_text("#compare-error") == "Not a trace id (32 hex digits) or a trace URL"
    assert page.url.endswith(f"/trace/{orders.confirmed}")
    screenshot(page, "trace-page-action")
    page.fill("#compare-with", f"{site.viewer.ui}/trace/{orders.n_plus_one.upper()}#span=00ab")
    page.click("#compare-go")
    page.wait_for_url(f"**/trace/{orders.confirmed}...{orders.n_plus_one}")
    page.wait_for_selector("body[data-state=ready]")
    assert any(r["countB"] == 3 for r in diff_rows(page))
    assert not page.errors  # type: ignore[attr-defined]


def test_malformed_and_unknown_ids_are_said_on_the_page_and_can_be_corrected(
    site: Site,
) -> None:
    orders = site.orders
    page = site.open(f"/trace/{orders.confirmed}...nope", state="error")
    assert page.inner_text(".message h2") == "Not a trace id"
    assert page.inner_text("#problem-b") == "B nope is not a trace id (32 hex digits)."
    assert page.get_attribute("#problem-a a", "href") == f"/trace/{orders.confirmed}"
    screenshot(page, "malformed")

    page = site.open(f"/trace/{UNKNOWN}...{orders.confirmed}", state="not-found")
    assert page.inner_text(".message h2") == "Trace not found"
    assert f"A {UNKNOWN} was not found" in page.inner_text("#problem-a")
    assert page.get_attribute("#problem-a", "data-kind") == "not-found"
    assert page.get_attribute("#problem-b", "data-kind") == "ok"
    # Correct A in the form (a pasted trace URL will do) and compare.
    page.fill("#compare-a", "nope")
    page.click("#compare-ids button[type=submit]")
    assert page.inner_text("#compare-error") == "A: not a trace id"
    page.fill("#compare-a", f"/trace/{orders.n_plus_one}")
    page.click("#compare-ids button[type=submit]")
    page.wait_for_url(f"**/trace/{orders.n_plus_one}...{orders.confirmed}")
    page.wait_for_selector("body[data-state=ready]")
    assert {r["presence"] for r in diff_rows(page)} == {"both"}
    assert not page.errors  # type: ignore[attr-defined]
