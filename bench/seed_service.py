"""Run one service in the seed tutorial's configuration: a SimpleSpanProcessor, which
exports every span synchronously, on the request path, as it ends, and httpx's stock
transport between services.

    python bench/seed_service.py order_service

Only the benchmark uses this, as its baseline; the services themselves are configured by
the standard OTEL_* variables alone. Public APIs only: ``setup_telemetry(processors=...)``,
``create_app(transports=...)`` and ``serve(..., telemetry=...)``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from common.app import serve
from common.http import LIMITS
from common.telemetry import setup_telemetry
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from order_service.app import create_app as create_order
from order_service.settings import OrderSettings
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from shipping_service.app import create_app as create_shipping
from shipping_service.settings import ShippingSettings

#: order-service's calls go over httpx's own transport (the services use httpx-aiohttp's).
STOCK_TRANSPORTS = {
    name: httpx.AsyncHTTPTransport(limits=LIMITS) for name in ("inventory", "payment", "shipping")
}

SERVICES: dict[str, tuple[Callable[..., Any], Callable[[], Any]]] = {
    "order_service": (functools.partial(create_order, transports=STOCK_TRANSPORTS), OrderSettings),
    "inventory_service": (create_inventory, InventorySettings),
    "payment_service": (create_payment, PaymentSettings),
    "shipping_service": (create_shipping, ShippingSettings),
}


def main(package: str) -> None:
    create_app, settings_class = SERVICES[package]
    settings = settings_class()
    telemetry = setup_telemetry(
        settings.service_name, processors=[SimpleSpanProcessor(OTLPSpanExporter())]
    )
    serve(create_app, settings, telemetry)


if __name__ == "__main__":
    main(sys.argv[1])
