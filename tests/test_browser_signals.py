"""Logs and metrics where people look, in a real browser against the real viewer: a span's
logs in its details and the trace's log timeline under the waterfall; the Services page's
RED charts, whose exemplar dots open their traces and whose rows search their traces."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from ordersim.testing.processes import Viewer, running_viewer
from tests.chromium import launched_chromium, load, open_page, screenshot

TRACE_ID = "5e1f0000000000000000000000000001"
ROOT, CHARGE = "00000000000000a1", "00000000000000a2"
MS = 1_000_000


def attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def resource(service: str) -> dict[str, Any]:
    return {"attributes": [attr("service.name", service)]}


def post(viewer: Viewer, path: str, document: dict[str, Any]) -> None:
    response = httpx.post(
        f"{viewer.otlp}{path}",
        content=json.dumps(document),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200 and not response.json(), response.text


def seed(viewer: Viewer) -> None:
    """A two-span trace, three log records inside it, and the histogram of two services'
    requests over the last minute with an exemplar pointing to the trace."""
    now = time.time_ns()
    start = now - 60_000 * MS

    def span(span_id: str, name: str, begin: int, end: int, parent: str = "") -> dict[str, Any]:
        return {
            "traceId": TRACE_ID,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": 2 if not parent else 1,
            "startTimeUnixNano": str(now - 5000 * MS + begin * MS),
            "endTimeUnixNano": str(now - 5000 * MS + end * MS),
        }

    post(
        viewer,
        "/v1/traces",
        {
            "resourceSpans": [
                {
                    "resource": resource("order-service"),
                    "scopeSpans": [
                        {
                            "spans": [
                                span(ROOT, "POST /orders", 0, 100),
                                span(CHARGE, "charge_payment", 20, 80, ROOT),
                            ]
                        }
                    ],
                }
            ]
        },
    )

    def record(span_id: str, at: int, body: str, severity: int) -> dict[str, Any]:
        return {
            "timeUnixNano": str(now - 5000 * MS + at * MS),
            "severityNumber": severity,
            "body": {"stringValue": body},
            "traceId": TRACE_ID,
            "spanId": span_id,
            "attributes": [attr("shop.order.id", "ord_00000000000000a1")],
        }

    post(
        viewer,
        "/v1/logs",
        {
            "resourceLogs": [
                {
                    "resource": resource("order-service"),
                    "scopeLogs": [
                        {
                            "logRecords": [
                                record(ROOT, 95, "order ord_00000000000000a1 confirmed", 9),
                                record(CHARGE, 30, "card ending 4242 retried", 13),
                                record(ROOT, 5, "order ord_00000000000000a1 placed", 9),
                            ]
                        }
                    ],
                }
            ]
        },
    )

    def histogram(service: str, route: str, counts: list[int], exemplar: bool) -> dict[str, Any]:
        points = []
        total = [0, 0, 0, 0]
        for i, count in enumerate(counts):
            total = [total[0] + count, total[1], total[2], total[3]]
            if i == len(counts) - 1:
                total[2] += 2  # two slow ones at the end
            point: dict[str, Any] = {
                "startTimeUnixNano": str(start - 1000 * MS),
                "timeUnixNano": str(start + (i + 1) * 10_000 * MS),
                "count": str(sum(total)),
                "sum": 1.0,
                "explicitBounds": [0.01, 0.1, 1.0],
                "bucketCounts": [str(c) for c in total],
                "attributes": [
                    attr("http.request.method", "POST"),
                    attr("http.route", route),
                    {"key": "http.response.status_code", "value": {"intValue": "201"}},
                ],
            }
            if exemplar and i == len(counts) - 1:
                point["exemplars"] = [
                    {
                        "timeUnixNano": str(now - 5000 * MS),
                        "asDouble": 0.5,
                        "traceId": TRACE_ID,
                        "spanId": ROOT,
                    }
                ]
            points.append(point)
        return {
            "resource": resource(service),
            "scopeMetrics": [
                {
                    "metrics": [
                        {
                            "name": "http.server.request.duration",
                            "unit": "s",
                            "histogram": {"aggregationTemporality": 2, "dataPoints": points},
                        }
                    ]
                }
            ],
        }

    post(
        viewer,
        "/v1/metrics",
        {
            "resourceMetrics": [
                histogram("order-service", "/orders", [20, 20, 20, 20, 20], True),
                histogram("payment-service", "/charges", [10, 10, 10, 10, 10], False),
            ]
        },
    )


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    with running_viewer(tmp_path_factory.mktemp("signals-browser")) as running:
        seed(running)
        yield running


@pytest.fixture(scope="module")
def browser(viewer: Viewer) -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


def test_the_trace_page_shows_the_logs_in_time_order_under_the_waterfall(
    viewer: Viewer, browser: Browser
) -> None:
    page = open_page(browser, f"{viewer.ui}/trace/{TRACE_ID}")
    rows = page.locator("#log-timeline .log-row")
    assert rows.count() == 3
    assert [rows.nth(i).locator(".log-body").inner_text() for i in range(3)] == [
        "order ord_00000000000000a1 placed",
        "card ending 4242 retried",
        "order ord_00000000000000a1 confirmed",
    ]
    assert rows.nth(1).locator(".log-severity").inner_text() == "WARN"
    assert [rows.nth(i).locator(".log-span").inner_text() for i in range(3)] == [
        "POST /orders",
        "charge_payment",
        "POST /orders",
    ]
    # The timeline sits under the waterfall.
    waterfall = page.locator(".waterfall").first.bounding_box()
    timeline = page.locator("#log-timeline").bounding_box()
    assert waterfall is not None and timeline is not None
    assert timeline["y"] >= waterfall["y"] + waterfall["height"] - 1
    screenshot(page, "trace-logs", full_page=True)

    # A record's span link selects the span, whose details list its own records only.
    rows.nth(1).locator(".log-span").click()
    details = page.locator("#details")
    details.wait_for(state="visible")
    assert page.evaluate("location.hash").endswith(f"span={CHARGE}")
    entries = page.locator("#span-logs .log-entry")
    assert entries.count() == 1
    assert entries.first.locator(".log-body").inner_text() == "card ending 4242 retried"
    assert "+10.0 ms from span start" in entries.first.inner_text()
    entries.first.locator("summary").click()
    assert "ord_00000000000000a1" in entries.first.locator("table").inner_text()
    assert not page.errors  # type: ignore[attr-defined]


def test_a_trace_without_logs_hides_the_timeline(viewer: Viewer, browser: Browser) -> None:
    other = "5e1f0000000000000000000000000002"
    post(
        viewer,
        "/v1/traces",
        {
            "resourceSpans": [
                {
                    "resource": resource("x"),
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": other,
                                    "spanId": "00000000000000b1",
                                    "name": "lonely",
                                    "startTimeUnixNano": "1767225600000000000",
                                    "endTimeUnixNano": "1767225600001000000",
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    )
    page = open_page(browser, f"{viewer.ui}/trace/{other}#span=00000000000000b1")
    assert page.locator("#log-timeline").is_hidden()
    assert page.locator("#span-logs").inner_text().endswith("none")


def test_the_services_page_charts_red_with_exemplars_that_open_traces(
    viewer: Viewer, browser: Browser
) -> None:
    page = open_page(browser, f"{viewer.ui}/services")
    services = page.locator(".red-service")
    assert [services.nth(i).get_attribute("data-service") for i in range(services.count())] == [
        "order-service",
        "payment-service",
    ]
    row = page.locator('.red-row[data-service="order-service"]')
    assert row.locator("th").inner_text() == "POST /orders"
    # The series began a minute ago, inside the 5 minutes: all its 102 requests count.
    assert row.locator("td.rate").inner_text() == f"{102 / 300:.2f}/s"
    assert row.locator("td.errors").inner_text() == "0 %"
    assert row.locator("td.p50").inner_text().startswith("≈")
    assert page.locator("#estimate-note").inner_text().count("bucket estimates") == 1
    assert row.locator("path.line.p99").first.get_attribute("d")
    dot = row.locator("a.exemplar")
    assert dot.count() == 1
    assert dot.get_attribute("href") == f"/trace/{TRACE_ID}#span={ROOT}"
    assert not page.locator('.red-row[data-service="payment-service"] a.exemplar').count()
    screenshot(page, "services", full_page=True)

    dot.locator("circle").click()
    page.wait_for_url(f"**/trace/{TRACE_ID}*")
    page.wait_for_selector("body[data-state=ready]")
    assert page.locator("#details").is_visible()
    assert page.locator("#details h2").inner_text().startswith("POST /orders")


def test_an_operation_row_searches_its_traces(viewer: Viewer, browser: Browser) -> None:
    page = open_page(browser, f"{viewer.ui}/services?lookback=15m")
    link = page.locator('.red-row[data-service="order-service"] a.operation')
    assert link.get_attribute("href") == (
        "/?service=order-service&operation=POST+%2Forders&lookback=15m"
    )
    link.click()
    page.wait_for_url("**/?service=order-service*")
    load(page, page.url)
    assert TRACE_ID in page.content()
