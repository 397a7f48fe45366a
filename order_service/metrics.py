"""order-service's business metrics: orders by outcome, order value, the compensation
backlog."""

from __future__ import annotations

from opentelemetry import metrics

from order_service.models import Order


class OrderMetrics:
    """The instruments, made once per service from its meter.

    metrics = OrderMetrics(telemetry.signals.meter("order-service"))
    metrics.finished(order)
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self._orders = meter.create_counter(
            "shop.orders",
            unit="{order}",
            description="Orders placed, by final status (shop.order.status).",
        )
        self._value = meter.create_histogram(
            "shop.order.value",
            unit="{USD}",
            description="Total of each confirmed order (goods and shipping).",
            explicit_bucket_boundaries_advisory=(10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
        )
        self._backlog = meter.create_gauge(
            "shop.compensation.backlog",
            unit="{compensation}",
            description="Deferred compensations waiting to be retried.",
        )

    def finished(self, order: Order) -> None:
        """An order reached its final status (inside its ``place_order`` span, which the
        value's exemplar then points to)."""
        self._orders.add(1, {"shop.order.status": order.status})
        if order.status == "confirmed" and order.total is not None:
            self._value.record(
                float(order.total.amount), {"shop.order.currency": order.total.currency}
            )

    def backlog(self, pending: int) -> None:
        self._backlog.set(pending)
