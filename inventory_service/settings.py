from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from common.topology import INVENTORY


class InventorySettings(ServiceSettings):
    """``INVENTORY_SERVICE_*`` variables, e.g. ``INVENTORY_SERVICE_PORT=8001``."""

    model_config = SettingsConfigDict(env_prefix=INVENTORY.env_prefix)
    service_name: ClassVar[str] = INVENTORY.name

    port: int = Field(default=INVENTORY.port, ge=0, le=65535)
    #: Seed the catalogue at start-up when the products table is empty.
    seed_catalogue: bool = True
