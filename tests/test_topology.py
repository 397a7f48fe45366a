"""One topology (common/topology.py): every command finds the services where their own
``<SERVICE>_SERVICE_HOST`` and ``<SERVICE>_SERVICE_PORT`` put them, as ``ordersim up`` does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from common import topology
from inventory_service.settings import InventorySettings
from order_service.settings import OrderSettings
from ordersim.cli import main
from payment_service.settings import PaymentSettings
from shipping_service.settings import ShippingSettings
from trace_viewer.settings import ViewerSettings

#: A loopback address that is not 127.0.0.1: only a command that reads the HOST variable
#: finds what listens there.
HOST = "127.0.0.2"
TRACE_ID = "ab" * 16


class _Stub(BaseHTTPRequestHandler):
    """Answers as every service and the viewer would, just enough for each command."""

    seen: ClassVar[list[str]] = []

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if self.path == "/admin/faults":
            self._answer(200, [])
        elif self.path == "/products":
            self._answer(200, [{"sku": "SKU-0001", "stock": 5000}])
        else:  # the viewer: no such trace (yet)
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.seen.append(f"POST {self.path}")
        order = {"order_id": "ord_1", "status": "confirmed", "trace_id": TRACE_ID}
        self._answer(201, order, {"traceresponse": f"00-{TRACE_ID}-{'cd' * 8}-01"})

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every service and the viewer on HOST, at one port, through the variables only."""
    _Stub.seen = []
    server = ThreadingHTTPServer((HOST, 0), _Stub)
    port = str(server.server_address[1])
    for service in topology.SERVICES:
        monkeypatch.setenv(service.host_variable, HOST)
        monkeypatch.setenv(service.port_variable, port)
        monkeypatch.delenv(service.url_variable, raising=False)
    monkeypatch.setenv("TRACE_VIEWER_HOST", HOST)
    monkeypatch.setenv("TRACE_VIEWER_UI_PORT", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Stub.seen
    finally:
        server.shutdown()
        server.server_close()


def test_faults_finds_the_service_by_its_host_variable(
    stub: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["faults", "show", "payment"]) == 0, capsys.readouterr()
    assert stub == ["GET /admin/faults"]
    assert "no faults" in capsys.readouterr().out


def test_order_finds_the_order_service_and_viewer_by_their_host_variables(
    stub: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["order", "--wait", "0"])  # 1: the stub viewer never holds the trace
    captured = capsys.readouterr()
    assert "cannot reach" not in captured.err
    assert stub[0] == "POST /orders"
    assert stub[1:] == [f"GET /api/v3/traces/{TRACE_ID}"]


def test_load_finds_inventory_and_order_service_by_their_host_variables(
    stub: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["load", "--concurrency", "1", "--duration", "0.2", "--warmup", "0"]
    assert main([*args, "--check-traces", "0"]) == 0
    assert stub[0] == "GET /products"
    assert set(stub[1:]) == {"POST /orders"}
    assert "201: " in capsys.readouterr().out  # the status counts of the report


def test_settings_read_the_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in topology.SERVICES:
        monkeypatch.delenv(service.host_variable, raising=False)
        monkeypatch.delenv(service.port_variable, raising=False)
        monkeypatch.delenv(service.url_variable, raising=False)
    monkeypatch.setenv(topology.PAYMENT.url_variable, "http://payments.test:9")
    monkeypatch.setenv(topology.SHIPPING.host_variable, "shipping.test")
    monkeypatch.setenv(topology.SHIPPING.port_variable, "9003")
    order = OrderSettings()
    # The order service calls each downstream where the downstream's own variables put it,
    # unless its URL variable (ORDER_SERVICE_<SERVICE>_URL) says otherwise.
    assert order.inventory_url == "http://127.0.0.1:8001"
    assert order.payment_url == "http://payments.test:9"
    assert order.shipping_url == "http://shipping.test:9003" == ShippingSettings().base_url
    for settings, service in (
        (order, topology.ORDER),
        (InventorySettings(), topology.INVENTORY),
        (PaymentSettings(), topology.PAYMENT),
    ):
        assert (settings.service_name, settings.base_url) == (service.name, service.url())
    viewer = ViewerSettings()
    assert viewer.ui_url == topology.VIEWER.ui_url()
