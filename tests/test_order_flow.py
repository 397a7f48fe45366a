"""A confirmed order: the outcome, what was stored, and the shape of its trace."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from common.telemetry import build_resource
from ordersim.testing import System, overlap, service_of
from tests.helpers import SERVICES, order_body


async def test_confirmed_order_is_one_trace_across_four_services(any_system: System) -> None:
    system = any_system
    items = [("SKU-0001", 2), ("SKU-0002", 1), ("SKU-0003", 3)]
    response = await system.order.post("/orders", json=order_body(items))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "confirmed"
    trace_id = body["trace_id"]
    assert len(trace_id) == 32 and trace_id == trace_id.lower()
    assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")

    # Money: decimal strings, items at their unit prices, total = goods + shipping.
    goods = sum(Decimal(i["unit_price"]) * i["quantity"] for i in body["items"])
    assert Decimal(body["total"]["amount"]) == goods + Decimal(body["shipping"]["cost"]["amount"])
    assert body["total"]["currency"] == "USD"
    assert body["shipping"]["tracking_id"]
    assert body["card_last4"] == "4242"

    stored = await system.order.get(f"/orders/{body['order_id']}")
    assert stored.json() == body

    spans = system.tree(trace_id)
    assert {service_of(s) for s in spans} == SERVICES
    assert len({s.context.trace_id for s in spans}) == 1
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["POST /orders"]
    ids = {s.context.span_id for s in spans}
    assert all(s.parent is None or s.parent.span_id in ids for s in spans), "orphan span"

    # A SERVER span in every service, each the child of a CLIENT span in order-service.
    for service in SERVICES - {"order-service"}:
        servers = [s for s in spans if s.kind == SpanKind.SERVER and service_of(s) == service]
        assert servers, f"no SERVER span from {service}"
        for server in servers:
            client = next(s for s in spans if s.context.span_id == server.parent.span_id)
            assert client.kind == SpanKind.CLIENT
            assert service_of(client) == "order-service"

    # The business steps hang under place_order and overlap where the design says so.
    place = spans.find("place_order")
    reserve = spans.find("reserve_stock", service="order-service")
    quote = spans.find("quote_shipping", service="order-service")
    commit = spans.find("commit_stock")
    ship = spans.find("create_shipment", service="order-service")
    charge = spans.find("charge_payment")
    for step in (reserve, quote, commit, ship, charge):
        assert step.parent.span_id == place.context.span_id
    assert overlap(reserve, quote), "reserve and quote must run concurrently"
    assert overlap(commit, ship), "commit and ship must run concurrently"
    assert charge.start_time >= max(reserve.end_time, quote.end_time)
    assert min(commit.start_time, ship.start_time) >= charge.end_time

    # inventory checks each SKU concurrently: overlapping siblings under reserve_items.
    reserve_items = spans.find("reserve_items", service="inventory-service")
    assert spans.is_ancestor(reserve, reserve_items)
    checks = spans.find_all("check_stock", service="inventory-service")
    assert sorted(c.attributes["shop.sku"] for c in checks) == ["SKU-0001", "SKU-0002", "SKU-0003"]
    assert all(c.parent.span_id == reserve_items.context.span_id for c in checks)
    assert all(overlap(a, b) for a in checks for b in checks if a is not b)

    # Attributes and events on the business span; nothing is an error.
    assert place.attributes["shop.order.id"] == body["order_id"]
    assert place.attributes["shop.order.item_count"] == 6
    assert place.attributes["shop.order.total"] == body["total"]["amount"]
    assert [e.name for e in place.events] == ["reserved", "charged", "shipped"]
    assert all(s.status.status_code != StatusCode.ERROR for s in spans)

    # Database spans exist and belong to the service that owns the database.
    db_system = {"sqlite": "sqlite", "postgres": "postgresql"}[system.backend]
    db_spans = [s for s in spans if s.attributes.get("db.system.name") == db_system]
    assert {service_of(s) for s in db_spans} == SERVICES


async def test_spans_follow_stable_semantic_conventions(system: System) -> None:
    response = await system.order.post("/orders", json=order_body())
    order_id = response.json()["order_id"]
    spans = system.tree(response.json()["trace_id"])

    server = spans.find("POST /orders", kind=SpanKind.SERVER)
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 201
    assert server.attributes["http.route"] == "/orders"
    assert "http.method" not in server.attributes  # the deprecated pre-1.0 names

    # HTTP CLIENT spans: METHOD + url.template, the callee's own route, never an id.
    http_clients = [s for s in spans if s.kind == SpanKind.CLIENT and "url.full" in s.attributes]
    assert sorted(s.name for s in http_clients) == [
        "GET /products",
        "POST /charges",
        "POST /quotes",
        "POST /reservations",
        "POST /reservations/{order_id}/commit",
        "POST /shipments",
    ]
    for span in http_clients:
        method, template = span.attributes["http.request.method"], span.attributes["url.template"]
        assert span.name == f"{method} {template}"
        assert span.attributes["http.response.status_code"] in (200, 201)
        callee = next(s for s in spans if s.parent and s.parent.span_id == span.context.span_id)
        assert callee.kind == SpanKind.SERVER
        assert callee.attributes["http.route"] == template
        assert order_id not in span.name

    # Database spans: operation + table, as db.operation.name and db.collection.name.
    db_spans = [s for s in spans if "db.system.name" in s.attributes]
    for span in db_spans:
        assert span.kind == SpanKind.CLIENT
        operation, table = (
            span.attributes["db.operation.name"],
            span.attributes["db.collection.name"],
        )
        assert span.name == f"{operation} {table}"
        # Parameterised SQL only: no card data, no values in the statement text.
        assert "4242" not in span.attributes.get("db.query.text", "")
    assert {(service_of(s), s.name) for s in db_spans} >= {
        ("order-service", "INSERT orders"),
        ("order-service", "UPDATE orders"),
        ("inventory-service", "SELECT products"),
        ("inventory-service", "INSERT reservations"),
        ("inventory-service", "UPDATE products"),
        ("inventory-service", "INSERT reservation_items"),
        ("inventory-service", "UPDATE reservations"),
        ("inventory-service", "SELECT reservation_items"),
        ("payment-service", "INSERT payments"),
        ("shipping-service", "INSERT quotes"),
        ("shipping-service", "SELECT quotes"),
        ("shipping-service", "INSERT shipments"),
    }


async def test_disabled_instrumentation_drops_its_spans_and_nothing_else(
    start_system: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy: no DB spans, the rest intact."""
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", " sqlalchemy ,other")
    async with start_system() as system:
        response = await system.order.post("/orders", json=order_body([("SKU-0001", 1)]))
        assert response.status_code == 201, response.text
        spans = system.tree(response.json()["trace_id"])

    assert not [s for s in spans if s.attributes and "db.system.name" in s.attributes]
    assert {service_of(s) for s in spans} == SERVICES  # one trace: httpx still propagates
    assert spans.find("reserve_items").kind == SpanKind.INTERNAL
    assert spans.find_all("POST /reservations", service="order-service", kind=SpanKind.CLIENT)


async def test_every_service_instance_has_its_own_service_instance_id(system: System) -> None:
    response = await system.order.post("/orders", json=order_body())
    spans = system.tree(response.json()["trace_id"])
    instances: dict[str, set[str]] = {}
    for span in spans:
        instance = str(span.resource.attributes.get("service.instance.id"))
        instances.setdefault(service_of(span), set()).add(instance)
    # One id per service instance, a UUID, and no two instances alike.
    assert all(len(ids) == 1 for ids in instances.values()), instances
    ids = [next(iter(i)) for i in instances.values()]
    assert len(set(ids)) == len(SERVICES)
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_replicas_are_told_apart_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = build_resource("inventory-service"), build_resource("inventory-service")
    assert first.attributes["service.name"] == second.attributes["service.name"]
    assert first.attributes["service.instance.id"] != second.attributes["service.instance.id"]

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=inv-0,team=shop")
    chosen = build_resource("inventory-service").attributes
    assert (chosen["service.instance.id"], chosen["team"]) == ("inv-0", "shop")
    assert chosen["service.name"] == "inventory-service"
