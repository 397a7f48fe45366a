"""Fault injection: latency, errors, timeouts and hangs per service or endpoint; the admin API;
start-up rules from the environment; ``ordersim faults`` against real processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from common.fault_rules import FaultRule
from common.faults import (
    ATTR_DELAY_MS,
    ATTR_INJECTED,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_SCOPE,
    ERROR_BODY,
    EVENT_HANG_ENDED,
    EVENT_INJECTED,
    HANG_TASK_PREFIX,
    FaultState,
)
from common.ids import new_order_id
from common.telemetry import EXCLUDED_URLS, setup_telemetry
from ordersim.cli import main as ordersim
from ordersim.testing import SpanTree, System, service_of
from ordersim.testing.processes import Up, clean_env, free_port, poll, wait_until_up
from payment_service.app import create_app as create_payment
from payment_service.settings import PaymentSettings
from tests import ROOT
from tests.helpers import make_order_id, order_body
from tests.otlp_sink import OtlpSink

PAYMENT = "payment-service"
ITEMS = [("SKU-0001", 2), ("SKU-0018", 3)]
SKUS = [sku for sku, _ in ITEMS]


def faults(system: System, service: str = "payment") -> FaultState:
    state: FaultState = system.apps[service].state.faults
    return state


def charge_body(order_id: str | None = None) -> dict[str, Any]:
    return {
        "order_id": order_id or new_order_id(),
        "amount": {"amount": "10.00", "currency": "USD"},
        "card": order_body()["payment"],
    }


def fault_events(span: ReadableSpan, kind: str | None = None) -> list[Any]:
    return [
        e
        for e in span.events
        if e.name == EVENT_INJECTED and (kind is None or e.attributes[ATTR_KIND] == kind)
    ]


def server_spans(system: System, name: str, service: str = PAYMENT) -> list[ReadableSpan]:
    return system.tree().find_all(name, service=service, kind=SpanKind.SERVER)


def order_calls(spans: Iterable[ReadableSpan], method: str, path: str) -> list[ReadableSpan]:
    """order-service's CLIENT spans (one per attempt) of ``method path``."""
    return [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and service_of(s) == "order-service"
        and s.attributes is not None
        and s.attributes.get("http.request.method") == method
        and urlsplit(str(s.attributes.get("url.full", ""))).path == path
    ]


def hang_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith(HANG_TASK_PREFIX) and not t.done()
    ]


async def eventually(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``check`` on the event loop until it is truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.01)
    return result


async def place(system: System) -> tuple[int, dict[str, Any], SpanTree]:
    response = await system.order.post("/orders", json=order_body(ITEMS))
    body = response.json()
    return response.status_code, body, system.tree(body["trace_id"])


# --- the rule model -----------------------------------------------------------------------------


def test_rules_normalise_their_endpoint_and_the_most_specific_one_wins() -> None:
    whole = FaultRule(latency_ms=10)
    charges = FaultRule(endpoint="/charges/", error_rate=0.5)
    post_charges = FaultRule(endpoint="post  /charges", hang=True)
    assert (charges.endpoint, post_charges.endpoint) == ("/charges", "POST /charges")
    state = FaultState([whole, charges, post_charges])

    assert state.match("POST", "/charges") == post_charges
    assert state.match("POST", "/charges/ord_1/refund") == post_charges
    assert state.match("GET", "/charges/ord_1") == charges
    assert state.match("GET", "/chargesx") == whole  # whole path segments only
    assert state.match("GET", "/healthz") is None
    assert state.match("PUT", "/admin/faults") is None
    with pytest.raises(ValueError, match="two rules for /charges"):
        state.replace([charges, FaultRule(endpoint="/charges", latency_ms=1)])
    assert state.rules == (whole, charges, post_charges)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"timeout_rate": -0.1}, "timeout_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": float("inf")}, "latency_ms"),
        ({"error_rate": 0.1, "timeout_ms": 0}, "timeout_ms"),
        ({"error_rate": 0.1, "endpoint": "charges"}, "endpoint"),
        ({"hang": True, "endpoint": "GET /healthz"}, "endpoint"),
        ({"errror_rate": 0.1}, "errror_rate"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FaultRule(**fields)
    assert field in [str(part) for error in raised.value.errors() for part in error["loc"]]


def test_a_rule_that_injects_nothing_is_refused() -> None:
    with pytest.raises(ValidationError, match="injects nothing"):
        FaultRule(endpoint="/charges", timeout_ms=100)


# --- each kind, in process ---------------------------------------------------------------------


async def test_latency_with_jitter_is_within_bounds_inside_the_server_span(
    system: System,
) -> None:
    faults(system).replace([FaultRule(endpoint="GET /charges", latency_ms=120, jitter_ms=40)])

    responses = await asyncio.gather(
        *(system.payment.get(f"/charges/{make_order_id(i)}") for i in range(12))
    )
    assert {r.status_code for r in responses} == {404}

    spans = server_spans(system, "GET /charges/{order_id}")
    assert len(spans) == 12
    delays = set()
    for span in spans:
        assert span.attributes is not None
        assert span.attributes[ATTR_INJECTED] is True
        assert span.attributes[ATTR_SCOPE] == "GET /charges"
        (event,) = fault_events(span, "latency")
        delay_ms = float(event.attributes[ATTR_DELAY_MS])
        assert 80 <= delay_ms <= 160
        delays.add(delay_ms)
        # The middleware runs inside the SERVER span: the event lies within it.
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= event.timestamp <= span.end_time
        assert span.status.status_code != StatusCode.ERROR  # a 404, not a fault
    assert len(delays) > 1, "jitter should vary the delay"


async def test_error_rate_on_one_endpoint_fails_about_that_share(system: System) -> None:
    state = faults(system)
    state.replace([FaultRule(endpoint="POST /charges", error_rate=0.3)])
    state.random.seed(20261125)

    bodies = [charge_body() for _ in range(200)]
    responses = [await system.payment.post("/charges", json=body) for body in bodies]
    failed = [r for r in responses if r.status_code == 500]
    print(f"injected error rate 0.3: {len(failed)}/200 charges failed")
    assert 40 <= len(failed) <= 80, f"{len(failed)} of 200 failed"
    assert all(r.json() == ERROR_BODY for r in failed)
    assert {r.status_code for r in responses} == {201, 500}

    # GET /charges/{id} is another endpoint: never faulted. Failed charges never landed.
    for body, charged in zip(bodies, responses, strict=True):
        got = await system.payment.get(f"/charges/{body['order_id']}")
        assert got.status_code == (200 if charged.status_code == 201 else 404)

    posts = server_spans(system, "POST /charges")
    injected = [s for s in posts if s.attributes and s.attributes.get(ATTR_INJECTED)]
    assert len(injected) == len(failed)
    for span in injected:
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description and "injected fault" in span.status.description
        assert fault_events(span, "error")
    gets = server_spans(system, "GET /charges/{order_id}")
    assert not [s for s in gets if s.attributes and ATTR_INJECTED in s.attributes]


async def test_injected_payment_errors_fail_the_order_and_release_the_stock(
    system: System,
) -> None:
    faults(system).replace([FaultRule(error_rate=1.0)])
    before = await system.stock(*SKUS)

    status, body, spans = await place(system)
    assert status == 503
    assert body["status"] == "failed"
    assert "payment-service unavailable: HTTP 500" in body["error"]["message"]
    charge = spans.find("POST /charges", service=PAYMENT, kind=SpanKind.SERVER)
    assert charge.attributes is not None and charge.attributes[ATTR_INJECTED] is True
    assert fault_events(charge, "error")
    assert charge.status.status_code == StatusCode.ERROR
    assert charge.status.description and charge.status.description.startswith("injected fault")
    assert spans.find("charge_payment").status.status_code == StatusCode.ERROR
    # The fault answered before the handler: no card was charged.
    assert "authorize_card" not in {s.name for s in spans}
    assert await system.stock(*SKUS) == before

    faults(system).clear()
    status, body, spans = await place(system)
    assert (status, body["status"]) == (201, "confirmed")
    assert not [s for s in spans if s.attributes and ATTR_INJECTED in s.attributes]


async def test_injected_timeout_fails_the_order_and_the_late_charge_is_refunded(
    start_system: Any,
) -> None:
    async with start_system(call_timeout=1.0) as system:
        faults(system).replace([FaultRule(endpoint="POST /charges", timeout_rate=1.0)])
        before = await system.stock(*SKUS)
        status, body, spans = await place(system)

        assert (status, body["status"]) == (503, "failed")
        # The payment service holds each request 30 s; the order gives up on it after its
        # call timeout, once (a call that timed out is not retried).
        assert "no answer within 1s" in body["error"]["message"]
        assert len(order_calls(spans, "POST", "/charges")) == 1
        assert spans.find("charge_payment").status.status_code == StatusCode.ERROR
        assert await system.stock(*SKUS) == before
        # The refund (POST /charges/<id>/refund) was held too, so it was deferred.
        refund = spans.find("refund_payment", service="order-service")
        assert "compensation_deferred" in [e.name for e in refund.events]

        # As on a real server, the held requests go on once the fault is lifted: the
        # charge lands after its caller gave up, and the deferred refund undoes it.
        faults(system).clear()
        await system.drain()
        charges = SpanTree(server_spans(system, "POST /charges")).trace(body["trace_id"])
        assert charges
        for charge in charges:
            (event,) = fault_events(charge, "timeout")
            assert event.attributes[ATTR_DELAY_MS] == 30_000
        assert await system.retry_compensations() == 0
        payment = (await system.payment.get(f"/charges/{body['order_id']}")).json()
        assert payment["status"] in ("refunded", "voided")


async def test_hang_fails_the_order_after_the_call_timeout_and_leaves_no_task(
    start_system: Any,
) -> None:
    async with start_system(call_timeout=1.0) as system:
        faults(system).replace([FaultRule(hang=True)])
        before = await system.stock(*SKUS)
        status, body, spans = await place(system)

        assert (status, body["status"]) == (503, "failed")
        assert "no answer within 1s" in body["error"]["message"]
        assert len(order_calls(spans, "POST", "/charges")) == 1
        # The caller gave up, so the hung requests see their client disconnect.
        await eventually(lambda: not hang_tasks(), 5, "the hung requests to end")
        await system.drain()
        charges = SpanTree(server_spans(system, "POST /charges")).trace(body["trace_id"])
        assert charges
        for charge in charges:
            assert fault_events(charge, "hang")
            ended = [e for e in charge.events if e.name == EVENT_HANG_ENDED]
            assert [e.attributes[ATTR_REASON] for e in ended] == ["client disconnected"]
        assert await system.stock(*SKUS) == before


async def test_clearing_the_rules_lets_held_requests_through(system: System) -> None:
    """A hung request (its body already read) and a long timeout both go on, unfaulted."""
    state = faults(system)
    state.replace(
        [
            FaultRule(endpoint="POST /charges", hang=True),
            FaultRule(endpoint="GET /charges", timeout_rate=1.0, timeout_ms=60_000),
        ]
    )
    body = charge_body()
    hung = asyncio.create_task(system.payment.post("/charges", json=body))
    held = asyncio.create_task(system.payment.get(f"/charges/{make_order_id()}"))
    await eventually(lambda: len(hang_tasks()) == 2, 5, "the request to hang")
    assert not hung.done() and not held.done()

    state.clear()
    async with asyncio.timeout(5):
        charged, missing = await asyncio.gather(hung, held)
    assert charged.status_code == 201, charged.text  # the body read while hung was replayed
    assert charged.json()["order_id"] == body["order_id"]
    assert missing.status_code == 404
    assert hang_tasks() == []
    (span,) = server_spans(system, "POST /charges")
    ended = [e for e in span.events if e.name == EVENT_HANG_ENDED]
    assert [e.attributes[ATTR_REASON] for e in ended] == ["rules changed"]
    (span,) = server_spans(system, "GET /charges/{order_id}")
    assert fault_events(span, "timeout")


async def test_a_client_that_gives_up_on_a_hang_leaves_no_task(system: System) -> None:
    faults(system).replace([FaultRule(hang=True)])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await system.payment.get(f"/charges/{make_order_id()}")
    assert hang_tasks() == []


# --- the admin API -----------------------------------------------------------------------------


async def test_admin_api_get_put_delete(system: System) -> None:
    assert (await system.payment.get("/admin/faults")).json() == []
    rules = [
        {"endpoint": "post /charges/", "error_rate": 0.3},
        {"latency_ms": 50, "jitter_ms": 10},
    ]
    put = await system.payment.put("/admin/faults", json=rules)
    assert put.status_code == 200
    expected = [
        FaultRule(endpoint="POST /charges", error_rate=0.3).model_dump(mode="json"),
        FaultRule(latency_ms=50, jitter_ms=10).model_dump(mode="json"),
    ]
    assert put.json() == expected
    assert (await system.payment.get("/admin/faults")).json() == expected
    assert [r.model_dump(mode="json") for r in faults(system).rules] == expected
    # Each service has its own rules.
    assert (await system.inventory.get("/admin/faults")).json() == []

    deleted = await system.payment.delete("/admin/faults")
    assert (deleted.status_code, deleted.json()) == (200, [])
    assert (await system.payment.get("/admin/faults")).json() == []
    assert faults(system).rules == ()


@pytest.mark.parametrize(
    ("rules", "loc"),
    [
        ([{"error_rate": 1.5}], ["body", 0, "error_rate"]),
        (
            [{"latency_ms": 10}, {"endpoint": "/charges", "timeout_rate": 2}],
            ["body", 1, "timeout_rate"],
        ),
        ([{"error_rate": 0.1, "endpoint": "/admin/faults"}], ["body", 0, "endpoint"]),
        ([{"eror_rate": 0.1}], ["body", 0, "eror_rate"]),
        ([{}], ["body", 0]),
        ([{"error_rate": 0.1}, {"latency_ms": 1}], ["body"]),
        ({"error_rate": 0.1}, ["body"]),
    ],
)
async def test_admin_api_refuses_bad_rules_with_422_naming_the_field(
    system: System, rules: Any, loc: list[Any]
) -> None:
    faults(system).replace([FaultRule(latency_ms=1)])
    response = await system.payment.put("/admin/faults", json=rules)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert faults(system).rules == (FaultRule(latency_ms=1),)  # unchanged


async def test_healthz_and_admin_are_never_faulted(system: System) -> None:
    faults(system).replace([FaultRule(hang=True)])
    async with asyncio.timeout(2):
        assert (await system.payment.get("/healthz")).status_code == 200
        assert (await system.payment.get("/admin/faults")).status_code == 200
        assert (await system.payment.get("/admin/nothing")).status_code == 404
    with pytest.raises(TimeoutError):  # everything else hangs
        async with asyncio.timeout(0.2):
            await system.payment.get("/docs")


@pytest.mark.skipif(
    "admin" not in EXCLUDED_URLS,
    reason="common.telemetry.EXCLUDED_URLS does not exclude /admin/ yet",
)
async def test_admin_requests_are_not_traced(system: System) -> None:
    await system.payment.put("/admin/faults", json=[{"latency_ms": 1}])
    await system.payment.get("/admin/faults")
    await system.payment.delete("/admin/faults")
    assert not [s for s in system.spans() if "/admin" in s.name]


# --- start-up rules from the environment ----------------------------------------------------------


async def test_rules_from_the_environment_are_in_force_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENT_SERVICE_FAULTS", '[{"endpoint": "post /charges", "error_rate": 1}]')
    settings = PaymentSettings(data_dir=tmp_path)
    assert settings.faults == [FaultRule(endpoint="POST /charges", error_rate=1.0)]
    exporter = InMemorySpanExporter()
    app = create_payment(
        settings, setup_telemetry(PAYMENT, processors=[SimpleSpanProcessor(exporter)])
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://payment"
        ) as client,
    ):
        response = await client.post("/charges", json=charge_body())
        assert (response.status_code, response.json()) == (500, ERROR_BODY)
        assert (await client.get(f"/charges/{make_order_id()}")).status_code == 404
        rules = (await client.get("/admin/faults")).json()
        assert [(r["endpoint"], r["error_rate"]) for r in rules] == [("POST /charges", 1.0)]


def test_rules_given_in_code() -> None:
    settings = PaymentSettings(faults=[{"latency_ms": 5}])
    assert settings.faults == [FaultRule(latency_ms=5)]
    assert PaymentSettings().faults == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{"error_rate": 1.5}]', "PAYMENT_SERVICE_FAULTS: rule 0: error_rate: Input should be"),
        ("error_rate=0.3", "PAYMENT_SERVICE_FAULTS must be a JSON list of fault rules"),
        ('[{"latency": 10}]', "PAYMENT_SERVICE_FAULTS: rule 0: latency: Extra inputs"),
        ('[{"hang": true}, {"hang": true}]', "two rules for the whole service"),
    ],
)
def test_a_bad_environment_value_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("PAYMENT_SERVICE_FAULTS", value)
    with pytest.raises(ValidationError, match=message):
        PaymentSettings()


def test_a_service_refuses_to_start_with_bad_rules(tmp_path: Path) -> None:
    env = clean_env() | {
        "PAYMENT_SERVICE_FAULTS": '[{"error_rate": 3}]',
        "PAYMENT_SERVICE_PORT": str(free_port()),
        "ORDERSIM_DATA_DIR": str(tmp_path),
        "OTEL_TRACES_EXPORTER": "none",
    }
    done = subprocess.run(
        [sys.executable, "-m", "payment_service"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "PAYMENT_SERVICE_FAULTS: rule 0: error_rate" in done.stderr


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    with OtlpSink() as running:
        yield running


# --- ordersim faults ---------------------------------------------------------------------------


def test_cli_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert ordersim(["faults", "set", "payment", "--error-rate", "1.5"]) == 2
    assert "--error-rate" in capsys.readouterr().err
    assert ordersim(["faults", "set", "payment"]) == 2
    assert "nothing to inject" in capsys.readouterr().err
    assert ordersim(["faults", "set", "payment", "--endpoint", "charges", "--hang"]) == 2
    assert "--endpoint" in capsys.readouterr().err
    assert ordersim(["faults", "clear", "payment", "order", "--url", "http://x"]) == 2
    with pytest.raises(SystemExit) as exited:
        ordersim(["faults", "show", "billing"])
    assert exited.value.code == 2


def test_cli_unreachable_service_exits_1_naming_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert ordersim(["faults", "show", "payment", "--url", url]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach payment-service at {url}" in err


def test_cli_error_rate_fails_about_30_percent_of_orders_and_clear_restores(
    up_env: dict[str, str], ports: dict[str, int], otlp_sink: OtlpSink, tmp_path: Path
) -> None:
    sink = otlp_sink
    up_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    # No background retry of deferred refunds during the run: with --seed, the payment
    # service then draws in a fixed order and the failure count is reproducible.
    up_env["ORDER_SERVICE_COMPENSATION_POLL_INTERVAL"] = "600"
    # A hung payment costs the order one call timeout per call (charge, refund).
    up_env["ORDER_SERVICE_CALL_TIMEOUT"] = "1"
    up_env["ORDER_SERVICE_CALL_RETRIES"] = "0"
    # A start-up rule that the order flow never meets (it never GETs a charge).
    up_env["PAYMENT_SERVICE_FAULTS"] = '[{"endpoint": "GET /charges", "latency_ms": 5}]'
    order_url = f"http://127.0.0.1:{ports['ORDER']}"
    inventory_url = f"http://127.0.0.1:{ports['INVENTORY']}"
    body = json.loads((ROOT / "examples" / "order.json").read_text())
    quantities = {item["sku"]: item["quantity"] for item in body["items"]}

    def faults_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return ordersim_cli("faults", *args)

    def ordersim_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ordersim", *args],
            env=up_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def stock(client: httpx.Client) -> dict[str, int]:
        response = client.get(f"{inventory_url}/products", params={"sku": list(quantities)})
        return {p["sku"]: p["stock"] for p in response.json()}

    def payment_span(trace_id: str, *events: str) -> ReadableSpan | None:
        """payment's SERVER span for POST /charges in this trace, once it has these events."""
        for span in SpanTree(sink.spans()).trace(trace_id):
            if span.name == "POST /charges" and service_of(span) == PAYMENT:
                names = [e.name for e in span.events]
                if all(name in names for name in events):
                    return span
        return None

    up = Up(up_env, tmp_path / "up.log", "--no-viewer")
    try:
        wait_until_up(up, order_url)
        with httpx.Client(timeout=15) as client:
            before = stock(client)
            done = faults_cli("set", "payment", "--error-rate", "0.3", "--seed", "3")
            assert done.returncode == 0, done.stderr
            assert "30% errors" in done.stdout and "GET /charges" in done.stdout

            outcomes, failed_orders = [], set()
            for _ in range(60):
                response = client.post(f"{order_url}/orders", json=body)
                order = response.json()
                outcomes.append((response.status_code, order["status"], order["trace_id"]))
                if response.status_code == 503:
                    failed_orders.add(order["order_id"])
            failed = [trace_id for status, _, trace_id in outcomes if status == 503]
            confirmed = [o for o in outcomes if o[:2] == (201, "confirmed")]
            print(f"injected error rate 0.3: {len(failed)}/60 orders failed")
            assert len(failed) + len(confirmed) == 60, outcomes
            assert {o[1] for o in outcomes if o[0] == 503} == {"failed"}
            assert 9 <= len(failed) <= 27, f"{len(failed)} of 60 failed"
            assert stock(client) == {
                sku: before[sku] - len(confirmed) * quantity for sku, quantity in quantities.items()
            }
            # The refunds an injected error refused wait in the backlog (its worker is held
            # off above), and `ordersim compensations` finds the order service on its own.
            listed = ordersim_cli("compensations", "--json")
            assert listed.returncode == 0, listed.stderr
            backlog = json.loads(listed.stdout)
            print(f"deferred refunds: {backlog['pending']}")
            assert 0 < backlog["pending"] == len(backlog["items"]) <= len(failed)
            assert {item["order_id"] for item in backlog["items"]} <= failed_orders
            assert {item["action"] for item in backlog["items"]} == {"refund_payment"}
            table = ordersim_cli("compensations")
            assert table.returncode == 0, table.stderr
            assert f"{backlog['pending']} pending" in table.stdout
            assert backlog["items"][0]["order_id"] in table.stdout
            # Across processes too, the failed call's server span says the fault was injected.
            span = poll(lambda: payment_span(failed[0], EVENT_INJECTED), 10, "the faulted span")
            assert span.attributes is not None and span.attributes[ATTR_INJECTED] is True
            assert span.status.status_code == StatusCode.ERROR
            assert span.status.description and "injected fault" in span.status.description

            shown = faults_cli("show", "payment")
            assert shown.returncode == 0, shown.stderr
            assert "whole service" in shown.stdout and "30% errors (HTTP 500)" in shown.stdout

            cleared = faults_cli("clear")
            assert cleared.returncode == 0, cleared.stderr
            assert cleared.stdout.count("no faults") == 4
            for _ in range(10):
                response = client.post(f"{order_url}/orders", json=body)
                assert response.status_code == 201, response.text
            assert "no faults" in faults_cli("show", "payment").stdout

            # A hang lasts until the caller gives up: the order service's call timeout closes
            # the connection, which ends the hang (nothing is left to block a shutdown).
            hang = faults_cli("set", "payment", "--endpoint", "POST /charges", "--hang")
            assert hang.returncode == 0, hang.stderr
            response = client.post(f"{order_url}/orders", json=body)
            assert (response.status_code, response.json()["status"]) == (503, "failed")
            assert "no answer within" in response.json()["error"]["message"]
            span = poll(
                lambda: payment_span(response.json()["trace_id"], EVENT_HANG_ENDED),
                10,
                "the hung span to end",
            )
            ended = [e for e in span.events if e.name == EVENT_HANG_ENDED]
            assert [e.attributes[ATTR_REASON] for e in ended] == ["client disconnected"]
    finally:
        up.stop()
    assert "ignored SIGTERM" not in up.output()
