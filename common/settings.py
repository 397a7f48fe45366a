"""Settings shared by every service, read from the environment with pydantic-settings.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``ORDER_SERVICE_``, ``INVENTORY_SERVICE_`` ...), so ``INVENTORY_SERVICE_PORT=9001``
moves one service and ``ORDERSIM_DATA_DIR`` moves all their state at once.
Telemetry is *not* configured here: the standard ``OTEL_*`` variables do that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, ValidatorFunctionWrapHandler, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common import scenarios
from common.fault_rules import FaultRule, FaultRules, validate_rules_setting
from common.scenarios import Scenario
from common.topology import DEFAULT_HOST


class ServiceSettings(BaseSettings):
    """Host, port and storage of one service."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_by_name=True)

    #: The OpenTelemetry ``service.name`` (OTEL_SERVICE_NAME overrides it) and the
    #: default database file name.
    service_name: ClassVar[str]

    host: str = DEFAULT_HOST
    port: int = Field(ge=0, le=65535)
    data_dir: Path = Field(default=Path(".data"), validation_alias="ORDERSIM_DATA_DIR")
    #: Listen with SO_REUSEPORT, so that several processes of the service share its port
    #: (``ordersim up --replicas N`` sets ORDERSIM_REUSE_PORT): the kernel spreads the
    #: incoming connections over them. Off, a second process on the port fails to start.
    reuse_port: bool = Field(default=False, validation_alias="ORDERSIM_REUSE_PORT")
    #: SQLAlchemy async URL; defaults to a SQLite file under ``data_dir``.
    database_url: str | None = None
    #: Larger request bodies get 413 before the handler runs.
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    log_level: str = "info"
    #: Planted performance bugs to find in the waterfall ("find the bug" scenarios), by
    #: name, comma-separated in ORDERSIM_SCENARIOS (:mod:`common.scenarios`); an unknown
    #: name is an error. Each service plants its own: see :meth:`planted`.
    scenarios: Annotated[frozenset[Scenario], NoDecode] = Field(
        default=frozenset(), validation_alias="ORDERSIM_SCENARIOS"
    )

    #: Fault injection rules (:class:`common.fault_rules.FaultRule`) in force at start-up, a JSON
    #: list in <SERVICE>_SERVICE_FAULTS; changed at run time through /admin/faults.
    faults: Annotated[FaultRules, NoDecode] = Field(default_factory=list)
    #: Seconds between two looks at the fault rules other replicas stored in the database.
    fault_sync_interval: float = Field(default=1.0, gt=0)

    @field_validator("faults", mode="wrap")
    @classmethod
    def _faults_json(cls, value: object, handler: ValidatorFunctionWrapHandler) -> list[FaultRule]:
        variable = f"{cls.model_config.get('env_prefix', '')}FAULTS"
        return validate_rules_setting(value, handler, variable)

    @field_validator("scenarios", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return scenarios.parse(value) if isinstance(value, str) else value

    def planted(self, scenario: Scenario) -> bool:
        """Whether this service's ``scenario`` is switched on: asked once, when the app is
        built. Asking for another service's scenario is a bug."""
        owner = scenarios.REGISTRY[scenario].service
        if owner != self.service_name:
            raise ValueError(f"{scenario} is planted in {owner}, not {self.service_name}")
        return scenario in self.scenarios

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / self.service_name}.db"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
