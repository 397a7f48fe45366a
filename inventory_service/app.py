"""Build the inventory-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import create_service_app, database_lifespan
from common.telemetry import Telemetry
from inventory_service import storage
from inventory_service.routes import router
from inventory_service.settings import InventorySettings


def create_app(settings: InventorySettings, telemetry: Telemetry) -> FastAPI:
    seed = storage.seed_if_empty if settings.seed_catalogue else None
    return create_service_app(
        title="inventory-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=database_lifespan(settings, telemetry, storage.metadata, on_start=seed),
        routers=[router],
    )
