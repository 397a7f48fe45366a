"""The service graph page at ``/dependencies`` (Jaeger UI's URL for it), in headless Chromium
driven by Playwright: on real orders — some confirmed, a declined card, charges refused while
payment was down, a shipment answered 500 by an injected fault — the SVG has the services and
exactly the edges ``/api/dependencies`` returns, with their calls, failures and p99, coloured
by the share that failed; a click on a service, an edge or its failures leads to the trace
list filtered to them. A hand-built trace in a window of its own gives a cycle, a self-call and
a call nobody answered; the lookback selector, the empty state and an API error. Screenshots
in test-artifacts/. Without a browser: the page is served, and every module it imports is."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from playwright.sync_api import Browser, Page

from common.fault_rules import FaultRule
from ordersim.testing import FaultyTransport, down, in_process_system
from ordersim.testing.processes import Viewer, running_viewer
from payment_service import cards
from tests import chromium
from tests.chromium import launched_chromium, open_page
from tests.helpers import SERVICES, order_body
from tests.test_browser import BASE_NS, MS, TraceBuilder, string_attr

ORDER, INVENTORY, PAYMENT, SHIPPING = (
    "order-service",
    "inventory-service",
    "payment-service",
    "shipping-service",
)
SERVER, CLIENT = 2, 3
#: The edges' colour steps (graph/model.js ERROR_STEPS): a share of failed calls.
ERROR_STEPS = (0.05, 0.25)

# --------------------------------------------------------------------------------------------
# Without a browser: the page and its modules are served


IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?\bfrom\s+["']([^"']+)["']""", re.M | re.S)


async def test_the_page_and_every_module_it_imports_are_served(
    query_app: httpx.AsyncClient,
) -> None:
    page = await query_app.get("/dependencies")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/graph/index.js" in assets and "/static/graph/graph.css" in assets
    # Walk the module graph from the page's scripts, as the browser would.
    seen: set[str] = set()
    pending = list(assets)
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await query_app.get(path)
        assert response.status_code == 200, path
        if path.endswith(".js"):
            assert "javascript" in response.headers["content-type"], path
            for target in IMPORT.findall(response.text):
                base = httpx.URL(f"http://viewer{path}")
                pending.append(base.join(target).path)
    assert {
        "/static/common.js",
        "/static/graph/model.js",
        "/static/graph/layout.js",
        "/static/graph/location.js",
        "/static/graph/render.js",
    } <= seen


async def test_every_page_links_the_service_graph(query_app: httpx.AsyncClient) -> None:
    one, other = "ab" * 16, "cd" * 16
    for path in ("/", f"/trace/{one}", f"/trace/{one}...{other}", "/dependencies"):
        response = await query_app.get(path)
        assert response.status_code == 200, path
        assert '<a href="/dependencies"' in response.text, path


# --------------------------------------------------------------------------------------------
# Real orders


@dataclass(frozen=True)
class Orders:
    request: bytes  # every span, OTLP protobuf, as a service's exporter sends it
    #: What the spans say each edge from order-service should be: callee -> [calls, failed].
    expected: dict[str, list[int]]
    #: The traces with spans of each service, and those with an error span.
    traces: dict[str, set[str]]
    failed_traces: set[str]


def _expected_edges(spans: list[Any]) -> dict[str, list[int]]:
    """order-service's HTTP CLIENT spans by the port they called: a call each, failed when
    its SERVER child is an error or, unanswered, the CLIENT span is."""
    ports = {8001: INVENTORY, 8002: PAYMENT, 8003: SHIPPING}
    children = {s.parent.span_id: s for s in spans if s.kind == SpanKind.SERVER and s.parent}
    expected: dict[str, list[int]] = {}
    for s in spans:
        attributes = s.attributes or {}
        if s.kind != SpanKind.CLIENT or "http.request.method" not in attributes:
            continue
        assert s.resource.attributes["service.name"] == ORDER
        server = children.get(s.context.span_id)
        failed = (server or s).status.status_code == StatusCode.ERROR
        counts = expected.setdefault(ports[int(attributes["server.port"])], [0, 0])
        counts[0] += 1
        counts[1] += failed
    return expected


async def _place_orders(tmp_path: Path) -> Orders:
    exporter = InMemorySpanExporter()
    async with in_process_system(tmp_path, exporter, wrap={"payment": down("/charges")}) as system:
        refusing = system.transports["payment"]
        assert isinstance(refusing, FaultyTransport)
        refusing.enabled = False
        statuses = [(await system.order.post("/orders", json=order_body())).status_code]
        statuses.append((await system.order.post("/orders", json=order_body())).status_code)
        declined = await system.order.post("/orders", json=order_body(card=cards.DECLINED))
        statuses.append(declined.status_code)
        # Payment refuses connections: charges nobody answered.
        refusing.enabled = True
        for _ in range(2):
            statuses.append((await system.order.post("/orders", json=order_body())).status_code)
        refusing.enabled = False
        # Shipping answers every new shipment with an injected 500.
        system.apps["shipping"].state.faults.replace(
            [FaultRule(endpoint="POST /shipments", error_rate=1.0)]
        )
        statuses.append((await system.order.post("/orders", json=order_body())).status_code)
        await system.drain()
        spans = list(exporter.get_finished_spans())
    assert statuses == [201, 201, 402, 503, 503, 503], statuses
    expected = _expected_edges(spans)
    assert set(expected) == {INVENTORY, PAYMENT, SHIPPING}
    assert expected[PAYMENT][1] >= 2 and expected[SHIPPING][1] >= 1
    assert expected[INVENTORY][1] == 0, "inventory never failed"
    traces: dict[str, set[str]] = {}
    for span in spans:
        trace_id = f"{span.context.trace_id:032x}"
        traces.setdefault(span.resource.attributes["service.name"], set()).add(trace_id)
    failed = {
        f"{s.context.trace_id:032x}" for s in spans if s.status.status_code == StatusCode.ERROR
    }
    return Orders(encode_spans(spans).SerializeToString(), expected, traces, failed)


# --------------------------------------------------------------------------------------------
# A hand-built trace in a window of its own (2026-01-01): a caller in front of order-service,
# a self-call, a cycle (payment -> fraud -> payment, the way back failing) and a call nobody
# answered at 10.0.0.9:9.

GRAPH_TRACE = "5eed0000c0ffee000000000000006a9f"
GATEWAY, FRAUD, NOBODY = "gateway", "fraud-service", "10.0.0.9:9"
HAND_START_MS = BASE_NS // MS
# key, operation, service, start ms, end ms, parent key, kind, error
HAND_SPANS: list[tuple[str, str, str, float, float, str | None, int, str | None]] = [
    ("root", "GET /checkout", GATEWAY, 0, 100, None, SERVER, None),
    ("gw.call", "POST", GATEWAY, 1, 90, "root", CLIENT, None),
    ("order", "POST /orders", ORDER, 2, 89, "gw.call", SERVER, None),
    ("order.inv", "POST", ORDER, 3, 20, "order", CLIENT, None),
    ("inv", "POST /reservations", INVENTORY, 4, 19, "order.inv", SERVER, None),
    ("inv.self", "GET", INVENTORY, 5, 10, "inv", CLIENT, None),
    ("inv.self.srv", "GET /products", INVENTORY, 6, 9, "inv.self", SERVER, None),
    ("order.pay", "POST", ORDER, 21, 60, "order", CLIENT, None),
    ("pay", "POST /charges", PAYMENT, 22, 59, "order.pay", SERVER, None),
    ("pay.fraud", "POST", PAYMENT, 23, 40, "pay", CLIENT, None),
    ("fraud", "POST /checks", FRAUD, 24, 39, "pay.fraud", SERVER, None),
    ("fraud.pay", "GET", FRAUD, 25, 35, "fraud", CLIENT, "500"),
    ("pay.history", "GET /history", PAYMENT, 26, 34, "fraud.pay", SERVER, "boom"),
    ("order.ship", "POST", ORDER, 61, 80, "order", CLIENT, "connection refused"),
]
#: parent, child -> calls, failed, kind as drawn.
HAND_EDGES = {
    (GATEWAY, ORDER): (1, 0, "forward"),
    (ORDER, INVENTORY): (1, 0, "forward"),
    (INVENTORY, INVENTORY): (1, 0, "self"),
    (ORDER, PAYMENT): (1, 0, "forward"),
    (PAYMENT, FRAUD): (1, 0, "forward"),
    (FRAUD, PAYMENT): (1, 1, "back"),
    (ORDER, NOBODY): (1, 1, "forward"),
}


def hand_built_request() -> dict[str, Any]:
    t = TraceBuilder(GRAPH_TRACE)
    for key, name, service, start, end, parent, kind, error in HAND_SPANS:
        t.span(key, name, service, start, end, parent, kind=kind, error=error)
    # The call nobody answered names where it went, as the HTTP conventions do.
    t.spans["order.ship"]["attributes"] += [
        string_attr("http.request.method", "POST"),
        string_attr("server.address", "10.0.0.9"),
        {"key": "server.port", "value": {"intValue": "9"}},
    ]
    return t.request()


# --------------------------------------------------------------------------------------------
# The site


@dataclass(frozen=True)
class Site:
    viewer: Viewer
    browser: Browser
    orders: Orders

    def open(self, path: str, state: str = "ready") -> Page:
        """A fresh page at ``path``, once it has drawn (or said what is wrong)."""
        url = f"{self.viewer.ui}{path}"
        return open_page(self.browser, url, state, height=900, failed_requests=True)

    def api(self, query: str = "") -> list[dict[str, Any]]:
        body = httpx.get(f"{self.viewer.ui}/api/dependencies{query}").json()
        data: list[dict[str, Any]] = body["data"]
        return data


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    orders = asyncio.run(_place_orders(tmp_path_factory.mktemp("apps")))
    with running_viewer(tmp_path_factory.mktemp("viewer")) as viewer:
        response = httpx.post(
            viewer.traces_endpoint,
            content=orders.request,
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200, response.text
        response = httpx.post(viewer.traces_endpoint, json=hand_built_request())
        assert response.status_code == 200, response.text
        with launched_chromium() as browser:
            yield Site(viewer, browser, orders)


def screenshot(page: Page, name: str) -> None:
    chromium.screenshot(page, name, full_page=True)


def graph_nodes(page: Page) -> dict[str, dict[str, Any]]:
    nodes: list[dict[str, Any]] = page.eval_on_selector_all(
        "#service-graph g.node",
        """ns => ns.map(n => ({
            name: n.dataset.service, kind: n.dataset.kind, text: n.textContent,
            callsIn: Number(n.dataset.callsIn), link: n.closest("a")?.getAttribute("href") ?? null,
            colour: getComputedStyle(n.querySelector(".node-box")).stroke,
            svc: n.style.getPropertyValue("--svc"),
            box: n.getBoundingClientRect().toJSON()}))""",
    )
    return {n["name"]: n for n in nodes}


def graph_edges(page: Page) -> dict[tuple[str, str], dict[str, Any]]:
    edges: list[dict[str, Any]] = page.eval_on_selector_all(
        "#service-graph g.edge",
        """es => es.map(e => {
            const label = document.querySelector(
                `g.edge-label[data-parent="${e.dataset.parent}"][data-child="${e.dataset.child}"]`);
            const line = e.querySelector(".edge-line");
            return {
              parent: e.dataset.parent, child: e.dataset.child, kind: e.dataset.kind,
              calls: Number(e.dataset.calls), errors: e.dataset.errors,
              p99Ms: e.dataset.p99Ms, classes: e.getAttribute("class"),
              stroke: getComputedStyle(line).stroke,
              width: Number(line.getAttribute("stroke-width")),
              link: line.closest("a").getAttribute("href"),
              lines: [...label.querySelectorAll("text")].map(t => t.textContent),
              errorsLink: label.querySelector("a.errors")?.getAttribute("href") ?? null,
            };
        })""",
    )
    return {(e["parent"], e["child"]): e for e in edges}


def error_class(calls: int, errors: int) -> str:
    """The colour step the page should give an edge: graph/model.js's rule."""
    if not errors:
        return "err-0"
    return f"err-{1 + sum(errors / calls >= step for step in ERROR_STEPS)}"


def rate(errors: int, calls: int) -> str:
    percent = 100 * errors / calls
    return f"{percent:.1f}".removesuffix(".0") + " %"


def test_the_graph_of_real_orders_is_what_the_api_returns(site: Site) -> None:
    page = site.open("/dependencies")
    api = site.api()
    # The API's graph of these orders is the spans' own: three edges from order-service, the
    # database queries no edge (no HTTP or RPC attributes), a declined card no failure.
    assert {(e["parent"], e["child"]) for e in api} == {
        (ORDER, callee) for callee in site.orders.expected
    }
    for link in api:
        assert [link["callCount"], link["errorCount"]] == site.orders.expected[link["child"]]

    nodes = graph_nodes(page)
    assert set(nodes) == SERVICES
    assert all(n["kind"] == "service" for n in nodes.values())
    edges = graph_edges(page)
    assert set(edges) == {(e["parent"], e["child"]) for e in api}
    busiest = max(e["callCount"] for e in api)
    for link in api:
        edge = edges[(link["parent"], link["child"])]
        calls, errors = link["callCount"], link["errorCount"]
        assert (edge["calls"], int(edge["errors"]), float(edge["p99Ms"])) == (
            calls,
            errors,
            link["p99Ms"],
        )
        assert edge["kind"] == "forward"
        expected_lines = [f"{calls} calls", f"{errors} failed · {rate(errors, calls)}"]
        if not errors:
            expected_lines[1] = "none failed"
        assert edge["lines"][:2] == expected_lines, edge["lines"]
        assert re.fullmatch(r"p99 \d+(\.\d+)? m?s", edge["lines"][2]), edge["lines"]
        assert error_class(calls, errors) in edge["classes"].split()
        # From 1.5 px to 6 px for the busiest edge, by the square root of the share.
        assert abs(edge["width"] - (1.5 + 4.5 * math.sqrt(calls / busiest))) <= 0.05 + 1e-9
    # Callers left of callees: order-service's column, then its three callees'.
    order = nodes[ORDER]["box"]
    for callee in (INVENTORY, PAYMENT, SHIPPING):
        assert nodes[callee]["box"]["left"] > order["right"]
    # The edges that failed stand out from the one that did not, in the colour of their step.
    assert edges[(ORDER, PAYMENT)]["stroke"] != edges[(ORDER, INVENTORY)]["stroke"]
    assert edges[(ORDER, SHIPPING)]["stroke"] != edges[(ORDER, INVENTORY)]["stroke"]
    legend = page.eval_on_selector_all(
        "#graph-legend [data-error-class]",
        """items => items.map(i => [i.dataset.errorClass,
            getComputedStyle(i.querySelector(".edge-swatch")).backgroundColor])""",
    )
    colours = dict(legend)
    assert "dashed" not in page.inner_text("#graph-legend"), "no cycle here"
    assert "never answered" not in page.inner_text("#graph-legend")
    assert list(colours) == ["err-0", "err-1", "err-2", "err-3"]
    for link in api:
        edge = edges[(link["parent"], link["child"])]
        assert edge["stroke"] == colours[error_class(link["callCount"], link["errorCount"])]
    # The summary adds it up.
    total = sum(e["callCount"] for e in api)
    failed = sum(e["errorCount"] for e in api)
    assert page.inner_text("#graph-summary").startswith(
        f"4 services · 3 edges · {total} calls · {failed} failed · last hour: "
    )

    # Each service in the colour the trace list gives it.
    listing = site.open("/")
    chips = dict(
        listing.eval_on_selector_all(
            "#traces tbody .chip",
            "cs => cs.map(c => [c.title, c.style.getPropertyValue('--svc')])",
        )
    )
    for name in SERVICES:
        assert nodes[name]["svc"] == chips[name], name
    assert len({nodes[name]["svc"] for name in SERVICES}) == 4
    screenshot(page, "service-graph")


def listed(page: Page) -> set[str]:
    """The trace ids the trace list shows."""
    ids: list[str] = page.eval_on_selector_all(
        "#traces tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)"
    )
    return set(ids)


def test_a_click_on_a_service_or_an_edge_leads_to_its_traces(site: Site) -> None:
    page = site.open("/dependencies")
    page.click(f'#service-graph g.node[data-service="{PAYMENT}"]')
    page.wait_for_url("**/?service=payment-service&lookback=1h")
    page.wait_for_selector("body[data-state=ready]")
    assert page.input_value("#service") == PAYMENT
    assert not page.is_checked("#error")
    # The orders payment-service answered, not those whose charge was refused; in the graph's
    # window, the last hour, so not the hand-built trace of a past window.
    assert listed(page) == site.orders.traces[PAYMENT]
    assert len(site.orders.traces[PAYMENT]) == 4

    # An edge's line: its callee's traces.
    page = site.open("/dependencies")
    # A point on the line, a fifth of the way from order-service (clear of the label).
    point = page.eval_on_selector(
        f'#service-graph g.edge[data-child="{INVENTORY}"] .edge-line',
        """line => {
            const p = line.getPointAtLength(line.getTotalLength() / 5);
            const m = line.getScreenCTM();
            return [p.x * m.a + m.e, p.y * m.d + m.f];
        }""",
    )
    page.mouse.click(*point)
    page.wait_for_url("**/?service=inventory-service&lookback=1h")

    # An edge's failures: its callee's traces with errors.
    page = site.open("/dependencies")
    page.click(f'g.edge-label[data-child="{SHIPPING}"] a.errors')
    page.wait_for_url("**/?service=shipping-service&error=true&lookback=1h")
    page.wait_for_selector("body[data-state=ready]")
    assert page.input_value("#service") == SHIPPING and page.is_checked("#error")
    expected = site.orders.traces[SHIPPING] & site.orders.failed_traces
    assert listed(page) == expected and expected, "the shipment answered 500"
    assert not page.errors  # type: ignore[attr-defined]


def test_a_cycle_a_self_call_and_a_call_nobody_answered(site: Site) -> None:
    end_ms = HAND_START_MS + 3600_000
    query = f"?endTs={end_ms}&lookback=3600000"
    api = {(e["parent"], e["child"]): (e["callCount"], e["errorCount"]) for e in site.api(query)}
    assert api == {edge: (calls, failed) for edge, (calls, failed, _) in HAND_EDGES.items()}

    page = site.open(f"/dependencies?lookback=1h&endTs={end_ms}")
    nodes = graph_nodes(page)
    assert set(nodes) == {GATEWAY, ORDER, INVENTORY, PAYMENT, FRAUD, NOBODY}
    assert nodes[NOBODY]["kind"] == "unanswered" and nodes[NOBODY]["link"] is None
    # Links keep the window: the hour before endTs, in µs as the trace list takes it.
    window = f"lookback=custom&start={(end_ms - 3600_000) * 1000}&end={end_ms * 1000}"
    assert nodes[FRAUD]["kind"] == "service"
    assert nodes[FRAUD]["link"] == f"/?service=fraud-service&{window}"
    edges = graph_edges(page)
    drawn = {key: (e["calls"], int(e["errors"]), e["kind"]) for key, e in edges.items()}
    assert drawn == HAND_EDGES
    # Layers: gateway, order-service, its callees, fraud-service; the way back is drawn back.
    left = {name: n["box"]["left"] for name, n in nodes.items()}
    assert left[GATEWAY] < left[ORDER] < left[INVENTORY] == left[PAYMENT] == left[NOBODY]
    assert left[PAYMENT] < left[FRAUD]
    assert "back" in edges[(FRAUD, PAYMENT)]["classes"].split()
    # The call nobody answered leads to the caller's failed traces.
    assert edges[(ORDER, NOBODY)]["link"] == f"/?service=order-service&error=true&{window}"
    assert edges[(ORDER, NOBODY)]["lines"][1] == "1 failed · 100 %"
    # The self-call's loop sits above inventory-service.
    loop = page.eval_on_selector(
        f'g.edge[data-parent="{INVENTORY}"][data-child="{INVENTORY}"] .edge-line',
        "l => l.getBoundingClientRect().toJSON()",
    )
    assert loop["bottom"] <= nodes[INVENTORY]["box"]["top"] + 1
    legend = page.inner_text("#graph-legend")
    assert "never answered: no spans from it" in legend
    assert "dashed: a call back against the flow" in legend
    screenshot(page, "service-graph-cycles")


def test_the_lookback_selector_the_empty_state_and_until_now(site: Site) -> None:
    end_ms = HAND_START_MS + 3600_000
    page = site.open(f"/dependencies?lookback=5m&endTs={end_ms}", state="empty")
    assert page.inner_text("#graph-empty h2").startswith("No calls in the 5 minutes before ")
    assert "look further back: last 15 minutes" in page.inner_text("#graph-empty")
    assert page.input_value("#lookback") == "5m"
    # The hour before endTs holds the hand-built trace.
    page.select_option("#lookback", "1h")
    page.wait_for_selector("body[data-state=ready]")
    assert page.evaluate("location.search") == f"?endTs={end_ms}"
    assert len(graph_edges(page)) == len(HAND_EDGES)
    # Until now: the real orders.
    page.click("#until-now")
    page.wait_for_function("!location.search")
    page.wait_for_selector(f'#service-graph g.node[data-service="{SHIPPING}"]')
    assert set(graph_nodes(page)) == SERVICES
    screenshot(page, "service-graph-lookback")


def test_what_the_page_cannot_use_is_said(site: Site) -> None:
    page = site.open("/dependencies?lookback=3weeks&endTs=yesterday")
    assert page.input_value("#lookback") == "1h"
    note = page.inner_text("#graph-problems")
    assert 'lookback "3weeks" is none of 5m, 15m, 1h' in note
    assert 'endTs "yesterday" is not a time in ms since the epoch' in note
    assert set(graph_nodes(page)) == SERVICES

    # The API failing: its message on the page, and a retry.
    page = site.browser.new_page()
    page.route(
        "**/api/dependencies?*",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"data": null, "errors": [{"code": 503, "msg": "store unavailable"}]}',
        ),
    )
    page.goto(f"{site.viewer.ui}/dependencies")
    page.wait_for_selector("body[data-state=error]")
    assert "503: store unavailable" in page.inner_text("#graph-error")
    page.unroute("**/api/dependencies?*")
    page.click("#graph-error button")
    page.wait_for_selector("body[data-state=ready]")
    assert set(graph_nodes(page)) == SERVICES
