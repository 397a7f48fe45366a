from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from common.topology import PAYMENT


class PaymentSettings(ServiceSettings):
    """``PAYMENT_SERVICE_*`` variables, e.g. ``PAYMENT_SERVICE_PORT=8002``."""

    model_config = SettingsConfigDict(env_prefix=PAYMENT.env_prefix)
    service_name: ClassVar[str] = PAYMENT.name

    port: int = Field(default=PAYMENT.port, ge=0, le=65535)
