"""``ordersim up``: the four services as separate processes, supervised until Ctrl-C/SIGTERM.

With ``--replicas N``, N processes of each service share its port (SO_REUSEPORT: the
kernel spreads the connections over them) and its database; the trace viewer stays one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from common import topology
from common.scenarios import describe
from common.settings import ServiceSettings
from inventory_service.settings import InventorySettings
from order_service.settings import OrderSettings
from payment_service.settings import PaymentSettings
from shipping_service.settings import ShippingSettings
from trace_viewer.settings import ViewerSettings

#: Seconds each process gets to exit after SIGTERM before it is killed.
STOP_GRACE = 5.0
HEALTH_TIMEOUT = 30.0


@dataclass
class Service:
    name: str  # service.name, or "trace-viewer"
    package: str  # python -m <package>
    host: str
    ports: dict[str, int]  # env var that sets it -> port
    health_url: str
    colour: str
    process: asyncio.subprocess.Process | None = None
    #: The command line; ``python -m <package>`` unless a wrapper is given (benchmarks).
    command: list[str] | None = None
    #: What the process reads from the environment (None: the trace viewer).
    settings: ServiceSettings | None = None
    #: This process is replica ``replica`` (from 1) of ``replicas`` of the service.
    replica: int = 1
    replicas: int = 1

    @property
    def label(self) -> str:
        """The name its log lines carry: ``order-service#2`` for a replica."""
        return self.name if self.replicas == 1 else f"{self.name}#{self.replica}"

    @property
    def argv(self) -> list[str]:
        return self.command or [sys.executable, "-m", self.package]

    @classmethod
    def of(cls, node: topology.Service, settings: ServiceSettings) -> Service:
        return cls(
            settings.service_name,
            node.package,
            settings.host,
            {node.port_variable: settings.port},
            f"{settings.base_url}/healthz",
            node.colour,
            settings=settings,
        )

    @property
    def url(self) -> str:
        return self.health_url.removesuffix("/healthz")


class StartupError(Exception):
    pass


def services_from_env(viewer: ViewerSettings | None, replicas: int = 1) -> list[Service]:
    """The viewer (if any) and the four services, downstream ones first: one entry per
    process, ``replicas`` of each service."""
    services = [
        replace(service, replica=n, replicas=replicas)
        for service in (
            Service.of(topology.INVENTORY, InventorySettings()),
            Service.of(topology.PAYMENT, PaymentSettings()),
            Service.of(topology.SHIPPING, ShippingSettings()),
            Service.of(topology.ORDER, OrderSettings()),
        )
        for n in range(1, replicas + 1)
    ]
    if viewer is not None:
        services.insert(
            0,
            Service(
                topology.VIEWER.name,
                topology.VIEWER.package,
                viewer.host,
                {
                    f"{topology.VIEWER.env_prefix}OTLP_PORT": viewer.otlp_port,
                    f"{topology.VIEWER.env_prefix}GRPC_PORT": viewer.grpc_port,
                    f"{topology.VIEWER.env_prefix}UI_PORT": viewer.ui_port,
                },
                f"{viewer.ui_url}/api/stats",
                topology.VIEWER.colour,
            ),
        )
    return services


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def uses_grpc(env: Mapping[str, str]) -> bool:
    """Whether the services export OTLP/gRPC (OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc)."""
    from common.telemetry import otlp_protocol  # the services' own reading of the variables

    return otlp_protocol(env) == "grpc"


def viewer_endpoint(viewer: ViewerSettings, env: Mapping[str, str]) -> str:
    """The viewer's intake for the protocol the services export with."""
    return viewer.grpc_endpoint if uses_grpc(env) else viewer.otlp_endpoint


#: OTEL_METRIC_EXPORT_INTERVAL of the services ``ordersim up`` starts, unless set.
METRIC_EXPORT_INTERVAL_MS = 5000


def child_env(
    service: Service,
    services: Sequence[Service],
    viewer: ViewerSettings | None,
    base: Mapping[str, str],
) -> dict[str, str]:
    env = dict(base)
    # Each process is its own service, whatever OTEL_SERVICE_NAME the shell has.
    env["OTEL_SERVICE_NAME"] = service.name
    env["PYTHONUNBUFFERED"] = "1"
    if service.replicas > 1:
        env["ORDERSIM_REUSE_PORT"] = "true"
    if viewer is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = viewer_endpoint(viewer, env)
        for signal in ("TRACES", "LOGS", "METRICS"):
            env.pop(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", None)
    # Metrics every few seconds (the SDK's default is a minute), so the Services page is live.
    env.setdefault("OTEL_METRIC_EXPORT_INTERVAL", str(METRIC_EXPORT_INTERVAL_MS))
    if service.package == topology.ORDER.package:
        by_package = {s.package: s for s in services}
        for node in topology.DOWNSTREAM:
            env.setdefault(node.url_variable, by_package[node.package].url)
    return env


class Supervisor:
    """Starts the services, prefixes their output, and stops them all on the first signal."""

    def __init__(
        self,
        services: list[Service],
        console: Console,
        viewer: ViewerSettings | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.services = services
        self.console = console
        self.viewer = viewer
        self.env = dict(os.environ if env is None else env)  # what the children inherit
        self.stopping = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []

    def busy_ports(self) -> list[str]:
        """A message for each port that something else already listens on."""
        return [
            f"port {port} ({s.name}) is already in use on {s.host}; stop what holds it or set {var}"
            for s in self.services
            if s.replica == 1
            for var, port in s.ports.items()
            if port_in_use(s.host, port)
        ]

    async def start(self) -> None:
        """Start every process and wait until each is healthy (StartupError otherwise)."""
        await self._start_all()
        await self._wait_healthy()

    async def stop(self) -> None:
        await self._stop_all()

    async def run(self) -> int:
        """The ``ordersim up`` command: start, report, and stop on Ctrl-C/SIGTERM."""
        busy = self.busy_ports()
        for message in busy:
            self.console.print(f"[red]error:[/] {message}")
        if busy:
            return 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self.start()
            self._print_ready()
            exited = await self._wait_for_stop_or_exit()
            if exited is not None:
                self.console.print(
                    f"[red]{exited.label} exited with code {exited.process.returncode}"  # type: ignore[union-attr]
                    "; stopping the others[/]"
                )
                return 1
            return 0
        except StartupError as exc:
            self.console.print(f"[red]error:[/] {escape(str(exc))}")
            return 1
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _start_all(self) -> None:
        for service in self.services:
            service.process = await asyncio.create_subprocess_exec(
                *service.argv,
                env=child_env(service, self.services, self.viewer, self.env),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Own process group: Ctrl-C reaches only us, and we stop the children in order.
                start_new_session=True,
            )
            self._pumps.append(asyncio.create_task(self._pump(service)))

    async def _pump(self, service: Service) -> None:
        assert service.process is not None and service.process.stdout is not None
        prefix = f"[{service.colour}]{service.label:>17} |[/] "
        async for raw in service.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.console.print(prefix + escape(line), highlight=False, soft_wrap=True)

    async def _wait_healthy(self) -> None:
        # N replicas of each service start on the same cores: N times the work.
        timeout = HEALTH_TIMEOUT * max(s.replicas for s in self.services)
        deadline = time.monotonic() + timeout
        # The replicas of a service answer on one port, whichever the kernel picks for each
        # new connection: asked again on new connections, each says which process it is,
        # until every one has answered (a replica binds its port once it has started).
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=1.0, limits=limits) as client:
            for service in self.services:
                waiting = {
                    s.process.pid
                    for s in self.services
                    if s.name == service.name and s.process is not None
                }
                while service.replica == 1:
                    for process in self.services:
                        assert process.process is not None
                        if process.process.returncode is not None:
                            raise StartupError(
                                f"{process.label} exited with code {process.process.returncode}"
                                " during start-up (its log is above)"
                            )
                    if self.stopping.is_set():
                        raise StartupError("interrupted during start-up")
                    try:
                        health = await client.get(service.health_url)
                        if health.status_code == 200:
                            if service.replicas == 1:
                                break
                            waiting.discard(health.json().get("pid"))
                            if not waiting:
                                break
                    except (httpx.TransportError, ValueError):
                        pass
                    if time.monotonic() > deadline:
                        raise StartupError(
                            f"{service.name} not healthy at {service.url} after {timeout:g}s"
                        )
                    await asyncio.sleep(0.1)

    def _print_ready(self) -> None:
        self.console.print("\n[bold green]ordersim is up[/]")
        for service in self.services:
            if service.package != topology.VIEWER.package and service.replica == 1:
                processes = f" ({service.replicas} processes)" if service.replicas > 1 else ""
                self.console.print(
                    f"  {service.name:<18} {service.url}   (OpenAPI: {service.url}/docs){processes}"
                )
        grpc = uses_grpc(self.env)
        if self.viewer is not None:
            endpoint = viewer_endpoint(self.viewer, self.env)
            ui = self.viewer.ui_url
            self.console.print(f"  [bold]trace viewer[/]       {ui}")
            self.console.print(f"                     each order: {ui}/trace/<trace_id>")
            self.console.print(f"                     RED per service: {ui}/services")
            self.console.print(
                f"  OTLP intake        {self.viewer.otlp_endpoint}/v1/{{traces,logs,metrics}} "
                f"(HTTP), {self.viewer.grpc_endpoint} (gRPC)"
            )
        else:
            default = "http://localhost:4317" if grpc else "http://localhost:4318"
            endpoint = self.env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or self.env.get(
                "OTEL_EXPORTER_OTLP_ENDPOINT", default
            )
        self.console.print(
            f"  spans exported to  {endpoint} ({'OTLP/gRPC' if grpc else 'OTLP/HTTP'})"
        )
        for line in self._planted():
            self.console.print(escape(line), highlight=False)
        order_url = self.services[-1].url
        self.console.print(
            f"\nPlace an order:  curl -s -X POST {order_url}/orders "
            "-H 'content-type: application/json' -d @examples/order.json"
        )
        self.console.print("Stop with Ctrl-C.\n")

    def _planted(self) -> list[str]:
        """The scenarios switched on (ORDERSIM_SCENARIOS) and the fault rules in force at
        start-up (<SERVICE>_SERVICE_FAULTS), one line each."""
        settings = [s.settings for s in self.services if s.settings is not None and s.replica == 1]
        on = sorted(set().union(*(s.scenarios for s in settings)))
        lines = [f"  scenarios          {describe(on[0]) if on else 'none'}"]
        lines += [f"                     {describe(scenario)}" for scenario in on[1:]]
        faults = [
            f"{s.service_name} {rule.endpoint or '(every endpoint)'}: {rule.describe()}"
            for s in settings
            for rule in s.faults
        ]
        lines.append(f"  faults             {faults[0] if faults else 'none'}")
        lines += [f"                     {fault}" for fault in faults[1:]]
        return lines

    async def _wait_for_stop_or_exit(self) -> Service | None:
        waits = {
            asyncio.create_task(s.process.wait()): s  # type: ignore[union-attr]
            for s in self.services
        }
        stop = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({stop, *waits}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stop, *waits):
            task.cancel()
        if stop in done:
            return None
        return waits[next(iter(done - {stop}))]

    async def _stop_all(self) -> None:
        running = [s for s in self.services if s.process and s.process.returncode is None]
        if running:
            self.console.print("[bold]stopping…[/]")
        # The services first, the order service at their head so that no order starts
        # against a half-stopped system; the viewer last, so that it still takes the spans,
        # logs and metrics each service flushes as it stops.
        await self._terminate([s for s in reversed(running) if s.settings is not None])
        await self._terminate([s for s in running if s.settings is None])
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if running:
            self.console.print("[bold]all stopped[/]")

    async def _terminate(self, group: list[Service]) -> None:
        """SIGTERM to each of ``group`` at once; SIGKILL to any still there after the grace."""
        for service in group:
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        for service in group:
            assert service.process is not None
            try:
                await asyncio.wait_for(service.process.wait(), STOP_GRACE)
            except TimeoutError:
                self.console.print(f"[red]{service.label} ignored SIGTERM; killing it[/]")
                service.process.kill()
                await service.process.wait()


def up(*, viewer: bool = True, replicas: int = 1, console: Console | None = None) -> int:
    console = console or Console(soft_wrap=True)
    try:
        viewer_settings = ViewerSettings() if viewer else None
        services = services_from_env(viewer_settings, replicas)
    except ValidationError as exc:  # e.g. an unknown name in ORDERSIM_SCENARIOS: start nothing
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            console.print(f"[red]error:[/] {escape(where)}: {escape(message)}")
        return 2
    supervisor = Supervisor(services, console, viewer_settings)
    return asyncio.run(supervisor.run())
