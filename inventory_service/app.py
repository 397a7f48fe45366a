"""Build the inventory-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from common.app import Lifespan, create_service_app, database_lifespan
from common.db import create_engine
from common.scenarios import Scenario
from common.telemetry import Telemetry
from inventory_service import storage
from inventory_service.metrics import StockGauge
from inventory_service.routes import router
from inventory_service.settings import InventorySettings


def create_app(settings: InventorySettings, telemetry: Telemetry) -> FastAPI:
    seed = storage.seed_if_empty if settings.seed_catalogue else None
    lifespan = database_lifespan(settings, telemetry, storage.metadata, on_start=seed)
    # The planted scenarios' variants, chosen here once (common/scenarios.py).
    if settings.planted(Scenario.POOL_OF_ONE):
        lifespan = _one_connection(lifespan, settings, telemetry)
    app = create_service_app(
        title="inventory-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=lifespan,
        routers=[router],
    )
    app.state.stock = StockGauge(telemetry.signals.meter(settings.service_name))
    app.state.list_products = (
        storage.list_products_one_by_one
        if settings.planted(Scenario.N_PLUS_ONE)
        else storage.list_products
    )
    return app


def _one_connection(
    lifespan: Lifespan, settings: InventorySettings, telemetry: Telemetry
) -> Lifespan:
    """The "pool_of_one" scenario: the requests' engine holds a single connection, so
    every query waits for the one before it to hand the connection back."""

    @asynccontextmanager
    async def one_connection(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):  # tables and seed, on the default engine
            engine = create_engine(
                settings.resolved_database_url, telemetry, pool_size=1, max_overflow=0
            )
            app.state.engine = engine
            try:
                yield
            finally:
                await engine.dispose()

    return one_connection
