"""inventory-service's business metric: the stock of the scarce SKUs."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics

from inventory_service.models import Product
from inventory_service.storage import SCARCE_SKUS


class StockGauge:
    """``shop.inventory.stock`` of each scarce SKU (``shop.sku``), as the service last read
    it: the catalogue look-ups and stock checks read it, and a reservation or release of a
    scarce SKU reads it again, so the gauge follows the stock as orders take it.

        gauge = StockGauge(telemetry.signals.meter("inventory-service"))
        gauge.observe(products)
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self._gauge = meter.create_gauge(
            "shop.inventory.stock",
            unit="{item}",
            description="Units in stock of the scarce SKUs, as last read.",
        )

    @staticmethod
    def scarce(skus: Iterable[str]) -> list[str]:
        """Those of ``skus`` the gauge follows (a reservation of them is read again)."""
        return [sku for sku in skus if sku in SCARCE_SKUS]

    def observe(self, products: Iterable[Product]) -> None:
        for product in products:
            if product.sku in SCARCE_SKUS:
                self._gauge.set(product.stock, {"shop.sku": product.sku})
