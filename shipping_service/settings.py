from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from common.topology import SHIPPING


class ShippingSettings(ServiceSettings):
    """``SHIPPING_SERVICE_*`` variables, e.g. ``SHIPPING_SERVICE_PORT=8003``."""

    model_config = SettingsConfigDict(env_prefix=SHIPPING.env_prefix)
    service_name: ClassVar[str] = SHIPPING.name

    port: int = Field(default=SHIPPING.port, ge=0, le=65535)
