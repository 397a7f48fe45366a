from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.topology import DEFAULT_HOST, VIEWER


class ViewerSettings(BaseSettings):
    """``TRACE_VIEWER_*`` variables, e.g. ``TRACE_VIEWER_UI_PORT=16687``."""

    model_config = SettingsConfigDict(
        env_prefix=VIEWER.env_prefix, extra="ignore", frozen=True, validate_by_name=True
    )

    host: str = DEFAULT_HOST
    otlp_port: int = Field(default=VIEWER.otlp_port, ge=0, le=65535)
    grpc_port: int = Field(default=VIEWER.grpc_port, ge=0, le=65535)
    ui_port: int = Field(default=VIEWER.ui_port, ge=0, le=65535)
    data_dir: Path = Field(default=Path(".data"), validation_alias="ORDERSIM_DATA_DIR")
    #: Oldest traces are dropped beyond either bound, so a long load run cannot fill the disk.
    max_traces: int = Field(default=20_000, gt=0)
    max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    #: The same bounds for log records and metric data points.
    max_log_records: int = Field(default=200_000, gt=0)
    max_log_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_metric_points: int = Field(default=200_000, gt=0)
    max_metric_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Largest OTLP request accepted (after decompression too); larger ones get 413
    #: (RESOURCE_EXHAUSTED over gRPC).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    @property
    def database(self) -> Path:
        return self.data_dir / "traces.db"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{self.host}:{self.otlp_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"
