"""ordersim's real processes, for tests and benchmarks: free ports, polling with a
deadline, a process with its log, the trace viewer and ``ordersim up`` on free ports::

    with running_viewer(tmp_path) as viewer:
        exporter = OTLPSpanExporter(endpoint=viewer.traces_endpoint)
        ...

Processes start in the current directory; give them ``ORDERSIM_DATA_DIR`` (as
:func:`running_viewer` does) so that their data goes where the test wants it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


#: Ports handed out by :func:`free_port` in this process, never handed out twice.
_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 10000


def free_port() -> int:
    """A port of 127.0.0.1 that nothing is bound to, for a child process to listen on.

    Picked below the kernel's ephemeral range, not by binding port 0: the kernel draws the
    local port of every outgoing connection from that range, so a port it handed out
    could be taken by a client's connection before the child bound it (a benchmark's
    service once failed to start that way, on a machine busy with load-generator
    connections). Never the same port twice in one process, which ``bind(0)`` did not
    promise either once the probing socket was closed. (portpicker and pytest's
    ``unused_tcp_port`` both bind port 0.)"""
    high = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(_LOWEST_PORT, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port between {_LOWEST_PORT} and {high}")


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux), 32768 where unknown."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > _LOWEST_PORT + 1000 else 32768


def clean_env() -> dict[str, str]:
    """The environment without the caller's OTEL_*/ordersim settings."""
    prefixes = (
        "OTEL_",
        "ORDER",
        "INVENTORY_SERVICE",
        "PAYMENT_SERVICE",
        "SHIPPING_SERVICE",
        "TRACE_VIEWER",
    )
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM, then its exit code; killed, and a failure, if it takes over ``timeout`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{process.args!r} did not stop within {timeout}s") from None


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process of ours, its output in ``log``."""
    return subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_answering(process: subprocess.Popen[bytes], url: str, log: Path, what: str) -> None:
    """Poll ``url`` until it answers 200; fail at once, with its log, if the process exits."""

    def answering() -> bool:
        assert process.poll() is None, f"{what} exited:\n{log.read_text()}"
        try:
            return httpx.get(url, timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    poll(answering, 30, what)


@dataclass(frozen=True)
class Viewer:
    otlp: str  # http://127.0.0.1:<port>
    ui: str
    log: Path
    grpc: str = ""  # http://127.0.0.1:<port>, OTLP/gRPC
    pid: int = 0

    @property
    def traces_endpoint(self) -> str:
        return f"{self.otlp}/v1/traces"


@contextmanager
def running_viewer(data_dir: Path, **env: str) -> Iterator[Viewer]:
    """``python -m trace_viewer`` on free ports until the block ends."""
    otlp_port, ui_port, grpc_port = free_port(), free_port(), free_port()
    full_env = clean_env() | {
        "ORDERSIM_DATA_DIR": str(data_dir),
        "TRACE_VIEWER_OTLP_PORT": str(otlp_port),
        "TRACE_VIEWER_UI_PORT": str(ui_port),
        "TRACE_VIEWER_GRPC_PORT": str(grpc_port),
        **env,
    }
    log = data_dir / "viewer.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    process = start([sys.executable, "-m", "trace_viewer"], full_env, log)
    viewer = Viewer(
        f"http://127.0.0.1:{otlp_port}",
        f"http://127.0.0.1:{ui_port}",
        log,
        f"http://127.0.0.1:{grpc_port}",
        process.pid,
    )
    try:
        wait_answering(process, f"{viewer.ui}/api/stats", log, "the trace viewer")
        yield viewer
    finally:
        stop(process)


class Up:
    """``ordersim up`` in a subprocess, with its output captured to a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordersim", "up", *args],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("ordersim up did not stop within 15s of SIGTERM") from None


def wait_until_up(up: Up, url: str, timeout: float = 30) -> None:
    def healthy() -> bool:
        if up.process.poll() is not None:
            raise AssertionError(f"ordersim up exited early:\n{up.output()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    poll(healthy, timeout, "the order service to be healthy")
    # The banner is printed line by line: wait for its last line, not its first.
    poll(lambda: "Stop with Ctrl-C." in up.output(), 10, "the whole ready banner")
