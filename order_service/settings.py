from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings
from common.topology import INVENTORY, ORDER, PAYMENT, SHIPPING


class OrderSettings(ServiceSettings):
    """``ORDER_SERVICE_*`` variables, e.g. ``ORDER_SERVICE_INVENTORY_URL=http://inv:8001``."""

    model_config = SettingsConfigDict(env_prefix=ORDER.env_prefix)
    service_name: ClassVar[str] = ORDER.name

    port: int = Field(default=ORDER.port, ge=0, le=65535)
    #: The services it calls; by default where their own HOST and PORT variables put them.
    inventory_url: str = Field(default_factory=INVENTORY.url)
    payment_url: str = Field(default_factory=PAYMENT.url)
    shipping_url: str = Field(default_factory=SHIPPING.url)
    #: Seconds to open a connection to a downstream service.
    connect_timeout: float = Field(default=1.0, gt=0)
    #: Seconds a pooled connection to a downstream service takes new requests: then the
    #: pool is replaced, so that every replica of that service gets a share of them.
    connection_lifetime: float = Field(default=30.0, gt=0)
    #: Seconds one downstream call may take in all before it counts as failed (503).
    call_timeout: float = Field(default=3.0, gt=0)
    #: Seconds the whole order may take, all calls included.
    order_deadline: float = Field(default=10.0, gt=0)
    #: Retries of a failed idempotent downstream call (connection error, timeout, 502-504),
    #: with exponential backoff and full jitter.
    call_retries: int = Field(default=2, ge=0, le=10)
    #: Compensations that could not run at once are retried forever, with exponential
    #: backoff and jitter: after the n-th failed attempt, the next comes after a random time
    #: between half and all of min(cap, base * 2**(n-1)) seconds (order_service.backlog).
    compensation_backoff_base: float = Field(default=5.0, gt=0)
    compensation_backoff_cap: float = Field(default=300.0, gt=0)
    #: Seconds between two looks for compensations that are due and for abandoned orders.
    compensation_poll_interval: float = Field(default=1.0, gt=0)
    #: From this many pending compensations on, a warning is logged (once per crossing).
    compensation_backlog_warning: int = Field(default=100, ge=1)
    #: Seconds between two looks at the database for an order's new events, per open
    #: event stream (GET /orders/{order_id}/events).
    events_poll_interval: float = Field(default=0.25, gt=0)

    @model_validator(mode="after")
    def _cap_above_base(self) -> Self:
        if self.compensation_backoff_cap < self.compensation_backoff_base:
            raise ValueError(
                "ORDER_SERVICE_COMPENSATION_BACKOFF_CAP must be at least "
                "ORDER_SERVICE_COMPENSATION_BACKOFF_BASE"
            )
        return self

    @property
    def abandon_after(self) -> float:
        """An order still pending this long was abandoned (its request can take at most a
        validation call, the deadline, and a round of compensations)."""
        return self.order_deadline + 3 * self.call_timeout

    @property
    def compensation_lease(self) -> float:
        """Seconds a worker holds a compensation it is trying: twice the longest one attempt
        can take (every retry of the call timing out), and at least a minute; past it, a
        worker of another process may take over the item (its own process stopped)."""
        return max(60.0, 2 * (self.call_retries + 1) * self.call_timeout)
