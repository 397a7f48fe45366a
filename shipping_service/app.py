"""Build the shipping-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import create_service_app, database_lifespan
from common.telemetry import Telemetry
from shipping_service import storage
from shipping_service.routes import router
from shipping_service.settings import ShippingSettings


def create_app(settings: ShippingSettings, telemetry: Telemetry) -> FastAPI:
    return create_service_app(
        title="shipping-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=database_lifespan(settings, telemetry, storage.metadata),
        routers=[router],
    )
