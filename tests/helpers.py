"""Trace-shape helpers shared by the tests (find spans, check edges and overlaps)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from common.ids import new_order_id
from ordersim import samples
from payment_service import cards

APPROVED = cards.APPROVED
DECLINED = cards.DECLINED
INSUFFICIENT_FUNDS = cards.INSUFFICIENT_FUNDS


def order_body(
    items: Sequence[tuple[str, int]] = (("SKU-0001", 2),), card: str = APPROVED
) -> dict[str, Any]:
    """The sample order (ordersim.samples) with these items and card."""
    return samples.order_body(items, card)


def make_order_id(n: int | None = None) -> str:
    """An order id in the grammar (``ord_`` + 16 lowercase hex digits): a fresh random one,
    or the ``n``-th of a readable series (``ord_0000000000000001``)."""
    return new_order_id() if n is None else f"ord_{n:016x}"


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name"))


def in_trace(spans: Iterable[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]


def find(
    spans: Iterable[ReadableSpan],
    name: str,
    *,
    service: str | None = None,
    kind: SpanKind | None = None,
) -> ReadableSpan:
    """The one span with this name (and service/kind); fails if there are none or several."""
    matches = find_all(spans, name, service=service, kind=kind)
    assert len(matches) == 1, f"expected one {name!r} span, found {len(matches)}"
    return matches[0]


def find_all(
    spans: Iterable[ReadableSpan],
    name: str,
    *,
    service: str | None = None,
    kind: SpanKind | None = None,
) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.name == name
        and (service is None or service_of(s) == service)
        and (kind is None or s.kind == kind)
    ]


def parent_of(spans: Iterable[ReadableSpan], child: ReadableSpan) -> ReadableSpan:
    assert child.parent is not None, f"{child.name} has no parent"
    return next(s for s in spans if s.context.span_id == child.parent.span_id)


def is_ancestor(spans: Sequence[ReadableSpan], ancestor: ReadableSpan, span: ReadableSpan) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        if current.parent.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False


def overlap(a: ReadableSpan, b: ReadableSpan) -> bool:
    """True when the two spans ran at the same time for some instant."""
    assert a.start_time and a.end_time and b.start_time and b.end_time
    return a.start_time < b.end_time and b.start_time < a.end_time


def outliving(spans: Sequence[ReadableSpan]) -> list[str]:
    """The spans that end after their parent, one line each.

    Every span counts (business spans, HTTP and database CLIENT spans, SERVER spans)
    except one: a SERVER span whose CLIENT parent got no answer (the caller timed out or
    gave up) goes on after it, as the server's work really did.
    """
    by_id = {s.context.span_id: s for s in spans}
    found = []
    for span in spans:
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        if parent is None:
            continue
        assert span.end_time is not None and parent.end_time is not None
        if span.end_time <= parent.end_time:
            continue
        if span.kind == SpanKind.SERVER and "http.response.status_code" not in parent.attributes:
            continue  # an abandoned call: the server did not stop when the caller left
        late_ms = (span.end_time - parent.end_time) / 1e6
        found.append(
            f"{span.name} ({service_of(span)}) ends {late_ms:.3f} ms after its parent "
            f"{parent.name} ({service_of(parent)})"
        )
    return found


def is_complete(spans: Sequence[ReadableSpan]) -> bool:
    """Every span of a cross-process trace has arrived.

    Each process exports its spans in the order they end, so a span's in-process
    descendants arrive no later than it does; what can still be missing is a parent, or
    the callee's side of an HTTP call. So: one root, no orphan, and every HTTP CLIENT span
    has its SERVER child.
    """
    ids = {s.context.span_id for s in spans}
    parents = {s.parent.span_id for s in spans if s.parent is not None}
    roots = [s for s in spans if s.parent is None]
    orphans = [s for s in spans if s.parent is not None and s.parent.span_id not in ids]
    unanswered = [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and "http.request.method" in s.attributes
        and s.context.span_id not in parents
    ]
    return len(roots) == 1 and not orphans and not unanswered


SERVICES = {"order-service", "inventory-service", "payment-service", "shipping-service"}


def assert_order_waterfall(spans: Sequence[ReadableSpan]) -> None:
    """The waterfall of a confirmed 3-SKU order, however it was collected: four services
    under one root, no orphans, each SERVER span the child of an order-service CLIENT
    span, and the concurrent steps overlapping."""
    assert {service_of(s) for s in spans} == SERVICES
    roots = [s for s in spans if s.parent is None]
    assert [(r.name, service_of(r)) for r in roots] == [("POST /orders", "order-service")]
    ids = {s.context.span_id for s in spans}
    assert all(s.parent is None or s.parent.span_id in ids for s in spans), "orphan span"
    for server in (s for s in spans if s.kind == SpanKind.SERVER and s.parent is not None):
        client = next(s for s in spans if s.context.span_id == server.parent.span_id)
        assert client.kind == SpanKind.CLIENT
        assert service_of(client) == "order-service" != service_of(server)
    assert overlap(
        find(spans, "reserve_stock", service="order-service"),
        find(spans, "quote_shipping", service="order-service"),
    )
    assert overlap(
        find(spans, "commit_stock"), find(spans, "create_shipment", service="order-service")
    )
    assert len(find_all(spans, "check_stock")) == 3
