"""Build the payment-service app: ``create_app(settings, telemetry)``."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import create_service_app, database_lifespan
from common.telemetry import Telemetry
from payment_service import storage
from payment_service.routes import router
from payment_service.settings import PaymentSettings


def create_app(settings: PaymentSettings, telemetry: Telemetry) -> FastAPI:
    return create_service_app(
        title="payment-service",
        settings=settings,
        telemetry=telemetry,
        lifespan=database_lifespan(settings, telemetry, storage.metadata),
        routers=[router],
        secret_fields={"card"},  # no card number or CVC echoed back in a 422
    )
