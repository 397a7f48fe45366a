"""Build the payment-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import create_service_app, database_lifespan
from common.scenarios import Scenario
from common.telemetry import Telemetry
from payment_service import storage
from payment_service.routes import primary_only, route_by_bin_range, router
from payment_service.settings import PaymentSettings


def create_app(settings: PaymentSettings, telemetry: Telemetry) -> FastAPI:
    app = create_service_app(
        title="payment-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=database_lifespan(settings, telemetry, storage.metadata),
        routers=[router],
        secret_fields={"card"},  # no card number or CVC echoed back in a 422
    )
    # The planted scenario's variant, chosen here once (common/scenarios.py).
    app.state.route_card = (
        route_by_bin_range if settings.planted(Scenario.SLOW_CARD_RANGE) else primary_only
    )
    return app
