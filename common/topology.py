"""The system's topology, declared once: the four services and the trace viewer, their
``service.name``, default ports, the environment variables that move them, and the colour
each is drawn in.

Each service's settings take their variable prefix, name and default port from here, and
every ``ordersim`` command finds a service with :meth:`Service.url`, which reads the same
``<SERVICE>_SERVICE_HOST`` and ``<SERVICE>_SERVICE_PORT`` the service itself listens on
(``ORDER_SERVICE_PORT=9000`` moves the order service for ``ordersim up``, ``order``,
``load``, ``faults`` and ``doctor`` alike). Plain constants: cheap to import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: Where a service listens, and where the tools look for it, unless its HOST variable says.
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Service:
    """One of the four services."""

    key: str  # the short name: "payment", as `ordersim faults` takes it
    name: str  # its OpenTelemetry service.name
    package: str  # `python -m <package>` runs it
    port: int  # the default of <KEY>_SERVICE_PORT
    colour: str  # a rich style: the log prefix in `ordersim up`, the service in a waterfall

    @property
    def env_prefix(self) -> str:
        """``PAYMENT_SERVICE_``: the prefix of all the service's own settings."""
        return f"{self.key.upper()}_SERVICE_"

    @property
    def host_variable(self) -> str:
        return f"{self.env_prefix}HOST"

    @property
    def port_variable(self) -> str:
        return f"{self.env_prefix}PORT"

    @property
    def url_variable(self) -> str:
        """The order service's setting that points it at this service:
        ``ORDER_SERVICE_PAYMENT_URL`` (its default: :meth:`url`)."""
        return f"{ORDER.env_prefix}{self.key.upper()}_URL"

    def url(self, env: Mapping[str, str] | None = None) -> str:
        """``http://<HOST>:<PORT>`` from ``<KEY>_SERVICE_HOST`` and ``<KEY>_SERVICE_PORT``
        (empty counts as unset), else 127.0.0.1 and the default port."""
        env = os.environ if env is None else env
        host = env.get(self.host_variable) or DEFAULT_HOST
        return f"http://{host}:{env.get(self.port_variable) or self.port}"


@dataclass(frozen=True)
class TraceViewer:
    """The embedded trace viewer: OTLP intake over HTTP and gRPC, UI and query API."""

    name: str = "trace-viewer"
    package: str = "trace_viewer"
    env_prefix: str = "TRACE_VIEWER_"
    otlp_port: int = 4318
    grpc_port: int = 4317
    ui_port: int = 16686
    colour: str = "blue"

    def ui_url(self, env: Mapping[str, str] | None = None) -> str:
        """Its UI and query API: ``TRACE_VIEWER_HOST`` and ``TRACE_VIEWER_UI_PORT``, else
        127.0.0.1:16686."""
        env = os.environ if env is None else env
        host = env.get(f"{self.env_prefix}HOST") or DEFAULT_HOST
        return f"http://{host}:{env.get(f'{self.env_prefix}UI_PORT') or self.ui_port}"


ORDER = Service("order", "order-service", "order_service", 8000, "green")
INVENTORY = Service("inventory", "inventory-service", "inventory_service", 8001, "cyan")
PAYMENT = Service("payment", "payment-service", "payment_service", 8002, "magenta")
SHIPPING = Service("shipping", "shipping-service", "shipping_service", 8003, "yellow")
VIEWER = TraceViewer()

#: The four services, the order service first.
SERVICES: tuple[Service, ...] = (ORDER, INVENTORY, PAYMENT, SHIPPING)
#: The services the order service calls, each through its :attr:`Service.url_variable`.
DOWNSTREAM: tuple[Service, ...] = (INVENTORY, PAYMENT, SHIPPING)
BY_KEY: dict[str, Service] = {service.key: service for service in SERVICES}
#: service.name → colour, the trace viewer's included.
COLOURS: dict[str, str] = {s.name: s.colour for s in SERVICES} | {VIEWER.name: VIEWER.colour}
