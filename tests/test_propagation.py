"""W3C headers in and out: valid ones continue the caller's trace, invalid ones never break."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from ordersim.testing import System
from tests.helpers import CALLER_SPAN, CALLER_TRACE, Recorder, order_body


async def test_incoming_traceparent_is_continued_and_forwarded(start_system: Any) -> None:
    async with start_system(wrap={"inventory": Recorder}) as system:
        response = await system.order.post(
            "/orders",
            json=order_body(),
            headers={
                "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                "tracestate": "vendor=opaque",
                "baggage": "tenant=acme",
            },
        )
        assert response.status_code == 201
        assert response.json()["trace_id"] == CALLER_TRACE
        spans = system.tree(CALLER_TRACE)
        server = spans.find("POST /orders", kind=SpanKind.SERVER)
        assert server.parent is not None and server.parent.is_remote
        assert f"{server.parent.span_id:016x}" == CALLER_SPAN

        recorder: Recorder = system.transports["inventory"]  # type: ignore[assignment]
        sent = recorder.headers[0]
        assert sent["traceparent"].startswith(f"00-{CALLER_TRACE}-")
        assert sent["tracestate"] == "vendor=opaque"
        assert sent["baggage"] == "tenant=acme"


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "garbage"},
        {"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"},  # all-zero trace id is invalid
        {"traceparent": f"00-{CALLER_TRACE}-{'0' * 16}-01"},  # all-zero span id is invalid
        {"traceparent": f"ff-{CALLER_TRACE}-{CALLER_SPAN}-01"},  # version ff is forbidden
        {"traceparent": f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}-01"},  # uppercase hex
        {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "@@@,,=="},
        {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "baggage": "=;;%%%"},
    ],
)
async def test_malformed_trace_headers_start_or_continue_a_trace_never_fail(
    system: System, headers: dict[str, str]
) -> None:
    response = await system.order.post("/orders", json=order_body(), headers=headers)
    assert response.status_code == 201
    trace_id = response.json()["trace_id"]
    spans = system.tree(trace_id)
    server = spans.find("POST /orders", kind=SpanKind.SERVER)
    if headers["traceparent"].startswith(f"00-{CALLER_TRACE}-{CALLER_SPAN}"):
        assert trace_id == CALLER_TRACE  # a bad tracestate/baggage does not void traceparent
    else:
        assert trace_id != CALLER_TRACE and server.parent is None  # a fresh trace
    assert len({s.context.trace_id for s in spans}) == 1


async def test_unsampled_caller_is_respected(system: System) -> None:
    """Parent-based sampling: the caller said "not sampled", so nothing is recorded."""
    response = await system.order.post(
        "/orders", json=order_body(), headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
    )
    assert response.status_code == 201
    assert response.json()["trace_id"] == CALLER_TRACE
    assert response.headers["traceresponse"].endswith("-00")
    assert len(system.tree(CALLER_TRACE)) == 0
