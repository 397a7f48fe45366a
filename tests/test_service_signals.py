"""The services' logs and metrics: each order's log records carry the trace and span they
were written in, and the metrics the issue names are recorded, histograms with exemplars
that point to real spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, Metric

from tests.helpers import DECLINED, order_body


def _metrics(system: Any, service: str) -> dict[str, Metric]:
    data = system.metric_readers[service].get_metrics_data()
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def _points(metric: Metric) -> Iterator[Any]:
    yield from metric.data.data_points


async def test_an_orders_logs_sit_under_the_spans_they_were_written_in(start_system) -> None:
    async with start_system(signals=True) as system:
        response = await system.order.post("/orders", json=order_body())
        assert response.status_code == 201, response.text
        await system.drain()
        trace_id = response.json()["trace_id"]
        spans = {
            format(s.context.span_id, "016x"): s
            for s in system.spans()
            if format(s.context.trace_id, "032x") == trace_id
        }
        records = [
            r.log_record
            for r in system.logs.get_finished_logs()
            if r.log_record.trace_id and format(r.log_record.trace_id, "032x") == trace_id
        ]
    by_body = {str(r.body).split(": ", 1)[-1].split(" ", 1)[0]: r for r in records}
    services = {
        r.resource.attributes["service.name"]
        for r in system.logs.get_finished_logs()
        if r.log_record.trace_id and format(r.log_record.trace_id, "032x") == trace_id
    }
    assert services == {"order-service", "inventory-service", "payment-service", "shipping-service"}
    for record in records:
        span = spans[format(record.span_id, "016x")]
        assert span.start_time <= record.timestamp <= span.end_time, (record.body, span.name)
        assert record.severity_text == "INFO"
    span_of = {str(r.body): spans[format(r.span_id, "016x")].name for r in records}
    order_id = response.json()["order_id"]
    assert span_of[f"order {order_id} confirmed"] == "place_order"
    assert span_of[f"order {order_id}: 2 units reserved"] == "reserve_items"
    assert any(body.startswith(f"order {order_id}: charged") for body in span_of)
    charged = next(b for b in span_of if b.startswith(f"order {order_id}: charged"))
    assert span_of[charged] == "capture_payment"
    assert by_body  # the bodies are plain text, the attributes structured:
    assert all(r.attributes["shop.order.id"] == order_id for r in records)


async def test_requests_database_calls_and_orders_are_measured(start_system) -> None:
    async with start_system(signals=True) as system:
        confirmed = await system.order.post("/orders", json=order_body())
        declined = await system.order.post("/orders", json=order_body(card=DECLINED))
        assert (confirmed.status_code, declined.status_code) == (201, 402)
        await system.drain()
        span_ids = {format(s.context.span_id, "016x") for s in system.spans()}
        order = _metrics(system, "order-service")
        inventory = _metrics(system, "inventory-service")

    server = order["http.server.request.duration"]
    routes = {
        (p.attributes["http.request.method"], p.attributes["http.route"]) for p in _points(server)
    }
    assert ("POST", "/orders") in routes
    client = order["http.client.request.duration"]
    assert sum(p.count for p in _points(client)) >= 2 * 4  # products, reserve, quote, charge…
    database = inventory["db.client.operation.duration"]
    operations = {
        (p.attributes["db.operation.name"], p.attributes.get("db.collection.name"))
        for p in _points(database)
    }
    assert ("SELECT", "products") in operations
    assert all(p.attributes["db.system.name"] == "sqlite" for p in _points(database))

    outcomes = {p.attributes["shop.order.status"]: p.value for p in _points(order["shop.orders"])}
    assert outcomes == {"confirmed": 1, "payment_failed": 1}
    (value,) = _points(order["shop.order.value"])
    assert value.count == 1 and value.sum == float(confirmed.json()["total"]["amount"])

    # Exemplars point to spans that exist (the trace-based filter: every span is sampled).
    histograms = [server, client, database]
    exemplars = [
        e
        for h in histograms
        for p in _points(h)
        if isinstance(p, HistogramDataPoint)
        for e in p.exemplars
    ]
    assert exemplars
    assert {format(e.span_id, "016x") for e in exemplars} <= span_ids


async def test_the_scarce_skus_stock_is_a_gauge(start_system) -> None:
    async with start_system(signals=True) as system:
        response = await system.order.post("/orders", json=order_body([("SKU-0017", 2)]))
        assert response.status_code == 201, response.text
        await system.drain()
        inventory = _metrics(system, "inventory-service")
        (after,) = (await system.stock("SKU-0017")).values()
    stock = {p.attributes["shop.sku"]: p.value for p in _points(inventory["shop.inventory.stock"])}
    assert set(stock) == {"SKU-0017"}  # only scarce SKUs, only those read
    assert stock["SKU-0017"] == after == 3


async def test_the_compensation_backlog_is_a_gauge(start_system) -> None:
    async with start_system(signals=True) as system:
        assert await system.compensations.watch_backlog() == 0
        order = _metrics(system, "order-service")
    (point,) = _points(order["shop.compensation.backlog"])
    assert point.value == 0


def test_ordersim_up_exports_metrics_every_few_seconds_unless_told_otherwise() -> None:
    from ordersim.up import child_env, services_from_env
    from trace_viewer.settings import ViewerSettings

    viewer = ViewerSettings()
    services = services_from_env(viewer)
    order = next(s for s in services if s.package == "order_service")
    assert child_env(order, services, viewer, {})["OTEL_METRIC_EXPORT_INTERVAL"] == "5000"
    given = {"OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "x"}
    env = child_env(order, services, viewer, given)
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "1000"
    assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" not in env  # the viewer takes all three signals
