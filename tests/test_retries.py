"""Retries: idempotent downstream calls are retried with backoff after a connection error
or a 502-504 (not after a call that timed out), each attempt its own CLIENT span with
http.request.resend_count; the keyed mutations downstream make sure nothing happens twice."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from opentelemetry.trace import SpanKind, StatusCode

from common.http import RetryPolicy
from ordersim.testing import System, service_of
from tests.helpers import order_body


class Flaky(httpx.AsyncBaseTransport):
    """The first `times` requests whose path contains `path` fail: refused, or a status."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        path: str,
        times: int,
        status: int | None = None,
        slow: float = 0.0,
    ) -> None:
        self.inner, self.path, self.left, self.status = inner, path, times, status
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.path in request.url.path and self.left > 0:
            self.left -= 1
            self.seen += 1
            if self.status is None:
                raise httpx.ConnectError("connection reset", request=request)
            return httpx.Response(self.status, json={"detail": "busy"}, request=request)
        return await self.inner.handle_async_request(request)


def charge_spans(spans: Iterable[Any]) -> list[Any]:
    return sorted(
        (
            s
            for s in spans
            if s.kind == SpanKind.CLIENT
            and service_of(s) == "order-service"
            and str(s.attributes.get("url.full", "")).endswith("/charges")
        ),
        key=lambda s: s.start_time,
    )


async def test_a_dropped_connection_is_retried_and_charges_once(start_system: Any) -> None:
    async with start_system(wrap={"payment": lambda t: Flaky(t, "/charges", times=1)}) as system:
        response = await system.order.post("/orders", json=order_body())
        assert response.status_code == 201, response.text
        body = response.json()
        spans = system.tree(body["trace_id"])
        first, second = charge_spans(spans)
        assert first.status.status_code == StatusCode.ERROR
        assert "http.request.resend_count" not in first.attributes
        assert second.attributes["http.request.resend_count"] == 1
        assert second.attributes["http.response.status_code"] == 201
        # Both attempts hang under the one charge_payment step, which succeeded.
        step = spans.find("charge_payment")
        assert first.parent.span_id == second.parent.span_id == step.context.span_id
        assert step.status.status_code != StatusCode.ERROR
        servers = [s for s in spans if s.name == "POST /charges" and s.kind == SpanKind.SERVER]
        assert len(servers) == 1  # one server call
        payment = (await system.payment.get(f"/charges/{body['order_id']}")).json()
        assert payment["status"] == "captured"


async def test_503_is_retried_but_500_is_not(start_system: Any) -> None:
    wrap = {
        "shipping": lambda t: Flaky(t, "/quotes", times=2, status=503),
        "payment": lambda t: Flaky(t, "/charges", times=1, status=500),
    }
    async with start_system(wrap=wrap) as system:
        response = await system.order.post("/orders", json=order_body())
        body = response.json()
        spans = system.tree(body["trace_id"])
        quotes = [
            s
            for s in spans
            if s.kind == SpanKind.CLIENT
            and str(s.attributes.get("url.full", "")).endswith("/quotes")
        ]
        assert [s.attributes.get("http.request.resend_count") for s in quotes] == [None, 1, 2]
        assert len(charge_spans(spans)) == 1  # a 500 may be a bug: not tried again
        assert response.status_code == 503 and body["status"] == "failed"


async def test_retries_give_up_after_the_policy(start_system: Any) -> None:
    flaky: dict[str, Flaky] = {}

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        flaky["t"] = Flaky(inner, "/charges", times=100)
        return flaky["t"]

    async with start_system(wrap={"payment": wrap}, call_retries=3) as system:
        response = await system.order.post("/orders", json=order_body())
        assert response.status_code == 503
        # 1 charge + 3 retries, then the refund (+ its retries) that compensation owes.
        assert len(charge_spans(system.tree(response.json()["trace_id"]))) == 4


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    policy = RetryPolicy(retries=5, base=0.1, cap=0.5)
    for attempt, ceiling in ((1, 0.2), (2, 0.4), (3, 0.5), (4, 0.5)):
        waits = [policy.backoff(attempt) for _ in range(300)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # jitter spreads over the whole range
        assert min(waits) < ceiling * 0.2


async def test_no_retry_for_the_system_fixture_defaults(system: System) -> None:
    """Sanity: a healthy call is made once, without a resend count."""
    response = await system.order.post("/orders", json=order_body())
    spans = system.tree(response.json()["trace_id"])
    assert [s.attributes.get("http.request.resend_count") for s in charge_spans(spans)] == [None]


class LandsThenDrops(httpx.AsyncBaseTransport):
    """The first POST /reservations reaches inventory, but the connection drops before the
    answer comes back (the request was sent: it may have landed)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.armed = inner, True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and request.url.path == "/reservations":
            self.armed = False
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


async def test_a_refusal_after_an_attempt_that_landed_is_not_trusted(start_system: Any) -> None:
    """Attempt 1 reserves the last 5 units but its answer is lost; attempt 2 is refused for
    lack of stock — because of attempt 1. Trusting that 409 would leave 5 units reserved."""
    async with start_system(wrap={"inventory": LandsThenDrops}) as system:
        assert (await system.stock("SKU-0017"))["SKU-0017"] == 5
        response = await system.order.post("/orders", json=order_body([("SKU-0017", 5)]))
        assert response.status_code == 503
        assert response.json()["status"] == "failed"
        assert (await system.stock("SKU-0017"))["SKU-0017"] == 5  # released, not stuck
        spans = system.tree(response.json()["trace_id"])
        assert spans.find("release_stock", service="order-service")


async def test_a_timed_out_call_is_not_retried(start_system: Any) -> None:
    """A hung service costs one call timeout, then a clean 503 with the trace id."""
    from ordersim.testing import slow

    # The other calls get the suite's usual 2 s: a shorter call timeout let a busy machine
    # time out the reservation before the charge was ever sent.
    async with start_system(wrap={"payment": slow(30.0, "/charges")}, call_timeout=2.0) as system:
        response = await system.order.post("/orders", json=order_body())
        assert response.status_code == 503 and len(response.json()["trace_id"]) == 32
        assert response.json()["error"]["message"].endswith("no answer within 2s")
        spans = system.tree(response.json()["trace_id"])
        # One attempt, not 1 + retries: the call used up its deadline once.
        (attempt,) = charge_spans(spans)
        assert "http.request.resend_count" not in (attempt.attributes or {})
        charge = spans.find("charge_payment", service="order-service")
        assert charge.status.status_code == StatusCode.ERROR
        assert str(charge.status.description).endswith("unavailable: no answer within 2s")
