from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class PaymentSettings(ServiceSettings):
    """``PAYMENT_SERVICE_*`` variables, e.g. ``PAYMENT_SERVICE_PORT=8002``."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_SERVICE_")
    service_name: ClassVar[str] = "payment-service"

    port: int = Field(default=8002, ge=0, le=65535)
