from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class ShippingSettings(ServiceSettings):
    """``SHIPPING_SERVICE_*`` variables, e.g. ``SHIPPING_SERVICE_PORT=8003``."""

    model_config = SettingsConfigDict(env_prefix="SHIPPING_SERVICE_")
    service_name: ClassVar[str] = "shipping-service"

    port: int = Field(default=8003, ge=0, le=65535)
