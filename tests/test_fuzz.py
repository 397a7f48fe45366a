"""Schemathesis against every HTTP API: the four services' OpenAPI and the trace viewer's
query API. No server error, and every response as the OpenAPI declares it.

``ordersim up`` runs the trace viewer and the four services as real processes on free
ports; then the schemathesis CLI runs once per API with the repository's
``schemathesis.toml`` (a fixed seed, 25 examples per operation in each phase, the stateful
phase over the OpenAPI links, the checks; the fault admin API left out, as it plants 500s
on purpose). The test adds dictionaries of values that get past validation (the
catalogue's SKUs, the test cards), so that requests also reach the code behind it and the
stateful phase finds orders, reservations and charges to follow.

Real processes rather than schemathesis's in-process ASGI mode: the requests then reach
the services as a user's fuzzer or curl sends them, parsed from raw, percent-encoded
HTTP by uvicorn (the reported 500s came that way), and order-service calls its three
downstreams over HTTP with its real client, as it does in production. In-process,
schemathesis would run each app's lifespan on an event loop of its own, which
order-service's clients to in-process downstreams cannot share. Start-up costs a few
seconds once for the module.

``pytest tests/test_fuzz.py -s`` prints, per API, the operations, the test cases and the
seconds of its run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inventory_service.storage import catalogue
from ordersim.testing.processes import Up, clean_env, free_port, wait_until_up
from tests import ROOT
from tests.helpers import APPROVED, DECLINED, INSUFFICIENT_FUNDS, order_body

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")

#: Where each API's OpenAPI document is: (port variable, path).
APIS = {
    "order-service": ("ORDER_SERVICE_PORT", "/openapi.json"),
    "inventory-service": ("INVENTORY_SERVICE_PORT", "/openapi.json"),
    "payment-service": ("PAYMENT_SERVICE_PORT", "/openapi.json"),
    "shipping-service": ("SHIPPING_SERVICE_PORT", "/openapi.json"),
    "trace viewer": ("TRACE_VIEWER_UI_PORT", "/api/openapi.json"),
}


def known_good_values() -> str:
    """TOML for schemathesis: dictionaries of values that pass validation, bound to the body
    fields that take them, used for most generated requests (the rest stay random)."""
    card = order_body()["payment"]
    dictionaries = {
        "skus": [p.sku for p in catalogue()],
        "cards": [APPROVED, DECLINED, INSUFFICIENT_FUNDS],
        "expiry_years": [card["expiry_year"]],
        "quantities": [1, 2, 3],
    }
    bindings = {
        "body.items[*].sku": "skus",
        "body.items[*].quantity": "quantities",
        "body.payment.card_number": "cards",
        "body.payment.expiry_year": "expiry_years",
        "body.card.card_number": "cards",
        "body.card.expiry_year": "expiry_years",
    }
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for key, dictionary in bindings.items():
        lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = 0.8 }}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The OpenAPI URL of each API of a running ``ordersim up``."""
    tmp = tmp_path_factory.mktemp("fuzz")
    ports = {variable: free_port() for variable, _ in APIS.values()}
    env = clean_env() | {name: str(port) for name, port in ports.items()}
    env |= {
        "TRACE_VIEWER_OTLP_PORT": str(free_port()),
        "TRACE_VIEWER_GRPC_PORT": str(free_port()),  # 4317 may be another run's
        "ORDERSIM_DATA_DIR": str(tmp / "data"),
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    up = Up(env, tmp / "up.log")
    try:
        wait_until_up(up, f"http://127.0.0.1:{ports['ORDER_SERVICE_PORT']}")
        yield {api: f"http://127.0.0.1:{ports[var]}{path}" for api, (var, path) in APIS.items()}
    finally:
        assert up.stop() == 0, up.output()
    assert "Traceback" not in up.output(), up.output()


@dataclass
class Run:
    """One schemathesis run, started in the background."""

    process: subprocess.Popen[bytes]
    output: Path

    def finish(self) -> tuple[int, str]:
        """Exit status and report, once the run is over."""
        return self.process.wait(timeout=600), self.output.read_text()


@pytest.fixture(scope="module")
def runs(
    urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run]]:
    """One schemathesis run per API, all at once: they spend most of their time waiting
    for answers, so together they take little longer than the longest one."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    config = tmp / "schemathesis.toml"
    config.write_text((ROOT / "schemathesis.toml").read_text() + "\n" + known_good_values())
    started: dict[str, Run] = {}
    for api, url in urls.items():
        workdir = tmp / api.replace(" ", "-")
        workdir.mkdir()
        output = workdir / "report.txt"
        process = subprocess.Popen(
            [SCHEMATHESIS, "--config-file", str(config), "--no-color", "run", url],
            cwd=workdir,
            env=clean_env(),
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
        )
        started[api] = Run(process, output)
    yield started
    for run in started.values():  # a test that failed early leaves no run behind
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


@pytest.mark.parametrize("api", APIS)
def test_no_server_error_and_every_response_as_declared(runs: dict[str, Run], api: str) -> None:
    returncode, report = runs[api].finish()
    assert returncode == 0, report
    operations = re.search(r"Selected: (\d+)/\d+\s+Tested: (\d+)", report)
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    seconds = re.search(r" in ([\d.]+)s =+$", report, re.MULTILINE)  # its own clock
    assert operations and cases and seconds, report
    assert operations[1] == operations[2], "every selected operation was tested"
    print(f"\n{api}: {operations[2]} operations, {cases[1]} test cases, {seconds[1]} s")
