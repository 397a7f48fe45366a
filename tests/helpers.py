"""ordersim-specific helpers shared by the tests: sample orders and the order waterfall's shape.

Finding spans and asserting a trace's shape is :class:`ordersim.testing.SpanTree`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from common import topology
from common.ids import new_order_id
from ordersim import samples
from ordersim.testing import SpanTree, service_of
from payment_service import cards

#: A caller's trace and span, as an upstream service's ``traceparent`` would name them.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Recorder(httpx.AsyncBaseTransport):
    """Keeps the headers order-service sends downstream."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        return await self.inner.handle_async_request(request)


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


SERVICES = {service.name for service in topology.SERVICES}


def assert_order_waterfall(spans: Iterable[ReadableSpan]) -> None:
    """The waterfall of a confirmed 3-SKU order, however it was collected: four services
    under one root, no orphans, each SERVER span the child of an order-service CLIENT
    span, and the concurrent steps overlapping."""
    tree = SpanTree(spans)
    assert tree.services == SERVICES
    root = tree.root
    assert (root.name, service_of(root)) == ("POST /orders", "order-service")
    assert all(s.parent is None or tree.parent(s) is not None for s in tree), "orphan span"
    for server in tree.find_all(kind=SpanKind.SERVER):
        if server.parent is None:
            continue
        client = tree.parent(server)
        assert client is not None and client.kind == SpanKind.CLIENT
        assert service_of(client) == "order-service" != service_of(server)
    tree.assert_overlap(
        tree.find("reserve_stock", service="order-service"),
        tree.find("quote_shipping", service="order-service"),
    )
    tree.assert_overlap(
        tree.find("commit_stock"), tree.find("create_shipment", service="order-service")
    )
    assert len(tree.find_all("check_stock")) == 3


class FailingCommit:
    """The store's writer connection, whose COMMIT fails (a full disk, say)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)
