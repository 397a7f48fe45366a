"""The books balance with two processes of every service (``ordersim up --replicas 2``) on
PostgreSQL, under faults: every order ends final, nothing stays reserved or charged for an
order that is not confirmed, and each deferred compensation is done once, by one of the
two order-service workers. Both processes of each service served traffic."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from ordersim.testing.processes import Up, poll, wait_until_up
from tests.helpers import APPROVED, DECLINED, order_body, service_of
from tests.otlp_sink import OtlpSink
from tests.postgres import create_databases

SERVICES = ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")
#: Start-up rules (every replica stores them; cleared later through one replica).
FAULTS = {
    "PAYMENT": [{"error_rate": 0.3, "seed": 1}],
    "INVENTORY": [{"error_rate": 0.15, "seed": 2}],
    # Held past the caller's 1 s timeout, then handled: the shipment lands unseen.
    "SHIPPING": [{"endpoint": "POST /shipments", "timeout_rate": 0.3, "timeout_ms": 1500}],
}


def mix(i: int) -> dict[str, Any]:
    card = DECLINED if i % 7 == 3 else APPROVED
    return order_body([("SKU-0001", 1 + i % 3), ("SKU-0019", 1)], card=card)


async def query(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def rows(urls: dict[str, str], service: str, sql: str) -> list[Any]:
    return asyncio.run(query(urls[service], sql))


def test_books_balance_with_two_replicas_of_each_service_on_postgres(
    up_env: dict[str, str],
    ports: dict[str, int],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    base_url = request.getfixturevalue("postgres_cluster")
    suffix = tmp_path.name.replace("-", "_")[-20:]
    names = {s: f"rep_{s.lower()}_{suffix}" for s in SERVICES}
    created = asyncio.run(create_databases(base_url, list(names.values())))
    urls = {s: created[n] for s, n in names.items()}
    with OtlpSink() as sink:
        env = up_env | {f"{s}_SERVICE_DATABASE_URL": url for s, url in urls.items()}
        env |= {f"{s}_SERVICE_FAULTS": json.dumps(rules) for s, rules in FAULTS.items()}
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "ORDER_SERVICE_CALL_TIMEOUT": "1",
            "ORDER_SERVICE_ORDER_DEADLINE": "8",
            "ORDER_SERVICE_COMPENSATION_POLL_INTERVAL": "0.2",
            "ORDER_SERVICE_COMPENSATION_BACKOFF_BASE": "0.2",
            "ORDER_SERVICE_COMPENSATION_BACKOFF_CAP": "1",
            # New connections often, so that both replicas downstream get some.
            "ORDER_SERVICE_CONNECTION_LIFETIME": "0.5",
        }
        up = Up(env, tmp_path / "up.log", "--no-viewer", "--replicas", "2")
        url = {s: f"http://127.0.0.1:{port}" for s, port in ports.items()}
        try:
            wait_until_up(up, url["ORDER"], timeout=120)  # eight processes start at once
            # A new connection per request: the kernel spreads them over both replicas.
            with httpx.Client(
                timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
            ) as client:
                seeded = {
                    p["sku"]: p["stock"] for p in client.get(f"{url['INVENTORY']}/products").json()
                }
                responses = []
                for batch in range(4):
                    responses += asyncio.run(
                        place(url["ORDER"], range(batch * 10, batch * 10 + 10))
                    )
                assert {r.status_code for r in responses} <= {201, 402, 409, 503}
                assert 201 in {r.status_code for r in responses}

                # Faults off, through one replica of each service; then the backlog drains.
                for service in ("PAYMENT", "INVENTORY", "SHIPPING"):
                    assert client.delete(f"{url[service]}/admin/faults").json() == []

                def drained() -> bool:
                    backlog = client.get(f"{url['ORDER']}/admin/compensations").json()
                    return backlog["pending"] == 0

                poll(drained, 60, "every deferred compensation to be done")
                # Both replicas of each service served (each process has its own id).
                instances = poll(lambda: served_by_two(sink), 20, "spans from both replicas")
        finally:
            exit_code = up.stop()
        spans = sink.spans()
    assert exit_code == 0, up.output()
    assert instances == {"order-service": 2, "inventory-service": 2}, instances

    # Every order ended final, as its response said.
    orders = {
        r["order_id"]: r["status"]
        for r in rows(urls, "ORDER", "SELECT order_id, status FROM orders")
    }
    assert len(orders) == len(responses)
    for response in responses:
        assert orders[response.json()["order_id"]] == response.json()["status"] != "pending"
    confirmed = {o for o, s in orders.items() if s == "confirmed"}

    # Stock on hand plus committed stock is the seeded stock; nothing stays reserved.
    reservations = rows(urls, "INVENTORY", "SELECT order_id, status FROM reservations")
    assert not [r for r in reservations if r["status"] == "reserved"]
    assert {r["order_id"] for r in reservations if r["status"] == "committed"} == confirmed
    committed = dict(
        (r["sku"], r["n"])
        for r in rows(
            urls,
            "INVENTORY",
            "SELECT i.sku, sum(i.quantity) AS n FROM reservation_items i JOIN reservations r "
            "ON r.order_id = i.order_id WHERE r.status = 'committed' GROUP BY i.sku",
        )
    )
    stock = {
        r["sku"]: r["stock"] for r in rows(urls, "INVENTORY", "SELECT sku, stock FROM products")
    }
    for sku, seeded_stock in seeded.items():
        assert stock[sku] + committed.get(sku, 0) == seeded_stock, sku

    # Every charge belongs to a confirmed order or was refunded; shipments likewise.
    payments = rows(urls, "PAYMENT", "SELECT order_id, status FROM payments")
    assert {p["order_id"] for p in payments if p["status"] == "captured"} == confirmed
    assert all(
        p["status"] in ("refunded", "voided") for p in payments if p["order_id"] not in confirmed
    )
    shipments = rows(urls, "SHIPPING", "SELECT order_id, status FROM shipments")
    assert {s["order_id"] for s in shipments if s["status"] == "created"} == confirmed

    # The faults bit, and each deferred compensation was done once, by one worker: one
    # successful retry span per item, whichever replica's worker claimed it.
    items = rows(urls, "ORDER", "SELECT id, done_at FROM pending_compensations")
    assert items and all(i["done_at"] is not None for i in items)
    done = Counter(
        s.attributes["shop.compensation.id"]
        for s in spans
        if s.name.startswith("retry_") and s.status.status_code != StatusCode.ERROR
    )
    assert done == Counter({i["id"]: 1 for i in items})
    # And no undo of one order succeeded twice, inline or retried.
    undos = Counter(
        (s.attributes["shop.order.id"], s.name.removeprefix("retry_"))
        for s in spans
        if service_of(s) == "order-service"
        and s.name.removeprefix("retry_") in ("release_stock", "refund_payment", "cancel_shipment")
        and s.status.status_code != StatusCode.ERROR
    )
    assert max(undos.values()) == 1


async def place(
    order_url: str, numbers: range, body: Callable[[int], dict[str, Any]] = mix
) -> list[httpx.Response]:
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(f"{order_url}/orders", json=body(i)) for i in numbers)
        )


def served_by_two(sink: OtlpSink) -> dict[str, int] | None:
    """Service name -> how many processes (service.instance.id) served requests, once
    order-service and inventory-service have two each."""
    seen: dict[str, set[str]] = {}
    for span in sink.spans():
        if span.kind == SpanKind.SERVER:
            instance = str(span.resource.attributes.get("service.instance.id"))
            seen.setdefault(service_of(span), set()).add(instance)
    counts = {
        name: len(ids)
        for name, ids in seen.items()
        if name in ("order-service", "inventory-service")
    }
    return counts if counts == {"order-service": 2, "inventory-service": 2} else None


def test_two_replicas_of_each_service_share_sqlite(
    up_env: dict[str, str], ports: dict[str, int], tmp_path: Path
) -> None:
    """Several processes on one SQLite file each (WAL, busy timeout): they start together
    (tables and catalogue created once), and concurrent orders all go through."""
    with OtlpSink() as sink:
        env = up_env | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "ORDER_SERVICE_CONNECTION_LIFETIME": "0.5",
        }
        up = Up(env, tmp_path / "up.log", "--no-viewer", "--replicas", "2")
        order_url = f"http://127.0.0.1:{ports['ORDER']}"
        try:
            wait_until_up(up, order_url, timeout=120)  # eight processes start at once
            # Plentiful stock, an approved card: each is confirmed, however they interleave.
            responses = asyncio.run(place(order_url, range(16), lambda i: order_body()))
            instances = poll(lambda: served_by_two(sink), 30, "spans from both replicas")
        finally:
            exit_code = up.stop()
    assert [r.status_code for r in responses] == [201] * 16, [r.text for r in responses]
    assert instances == {"order-service": 2, "inventory-service": 2}
    assert exit_code == 0 and "all stopped" in up.output()
    assert "order-service#2" in up.output() and "inventory-service#2" in up.output()
    assert "Traceback" not in up.output(), up.output()
