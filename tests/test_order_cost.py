"""What one order costs, counted (never timed): thread hops, and work the clients skip.

``bench/cpu_per_order.py`` measures the CPU; these tests hold on to what made it smaller,
so a change that brings a cost back fails here, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import httpx
import opentelemetry.sdk.resources
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common.http import Timeouts, create_http_client
from common.telemetry import Telemetry, build_resource
from inventory_service.client import InventoryClient
from ordersim.testing import System, service_of
from tests.helpers import order_body

THREE_SKUS = [("SKU-0001", 2), ("SKU-0002", 1), ("SKU-0003", 3)]


async def test_no_request_hops_to_the_thread_pool(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain ``def`` dependency in its thread pool: a thread hop (and a GIL
    hand-over) per dependency per request. Every dependency is ``async def``."""
    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    response = await system.order.post("/orders", json=order_body(THREE_SKUS))
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    assert (await system.order.get(f"/orders/{order_id}")).status_code == 200
    for client, path in (
        (system.inventory, f"/reservations/{order_id}"),
        (system.payment, f"/charges/{order_id}"),
        (system.shipping, f"/shipments/{order_id}"),
    ):
        assert (await client.get(path)).status_code == 200
    assert hops == []


async def test_each_database_transaction_is_one_thread_hop_and_a_read_none(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a transaction runs in a database thread in one piece (common/db.py): one
    wake-up of the event loop from that thread per transaction, and a read none (it runs
    on the loop's thread). aiosqlite took one per cursor call, four or five per statement."""
    loop = asyncio.get_running_loop()
    wakeups: list[Any] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
        wakeups.append(callback)
        return call_soon_threadsafe(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    response = await system.order.post("/orders", json=order_body(THREE_SKUS))
    assert response.status_code == 201
    await system.drain()
    # order: insert the pending order, two steps' events (reserved, charged), store it
    # confirmed with the last step's event (shipped) (4); inventory: reserve, commit (2;
    # listing the SKUs and checking each of the three are reads); shipping: save the
    # quote, create the shipment (2), and after the response the confirmation: read the
    # shipment and store the notification, one transaction (1); payment: capture (1).
    assert len(wakeups) == 4 + 2 + 2 + 1 + 1


def untraced_client(
    base_url: str, answer: Callable[[httpx.Request], httpx.Response]
) -> httpx.AsyncClient:
    """A service's HTTP client, untraced, whose every request ``answer`` answers."""
    telemetry = Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)
    transport = httpx.MockTransport(answer)
    return create_http_client(base_url, telemetry, timeouts=Timeouts(), transport=transport)


async def test_service_clients_keep_no_cookies() -> None:
    """No service sets or reads a cookie; httpx would parse every response's headers for
    them (through http.cookiejar), so the clients' jar keeps nothing."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"set-cookie": "session=abc; Path=/"})

    http = untraced_client("http://inventory/prefix", answer)
    async with http:
        client = InventoryClient(http)
        for _ in range(2):
            await client._request("GET", "/products", idempotent=True)
    assert seen == [None, None]
    assert not http.cookies


async def test_service_clients_build_urls_under_the_base_url() -> None:
    urls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={})

    http = untraced_client("http://gateway/inventory", answer)
    async with http:
        client = InventoryClient(http)
        for _ in range(2):
            await client._request("GET", "/products", params={"sku": ["A", "B"]}, idempotent=True)
        await client._request(
            "POST",
            "/reservations/{order_id}/commit",
            path_params={"order_id": "a/b c"},
            idempotent=True,
        )
    assert urls == [
        "http://gateway/inventory/products?sku=A&sku=B",
        "http://gateway/inventory/products?sku=A&sku=B",
        "http://gateway/inventory/reservations/a%2Fb%20c/commit",
    ]


async def test_the_statements_of_a_confirmed_order(system: System) -> None:
    """Every statement a confirmed 3-SKU order runs, by service, each a span: the events
    go with the order's own writes where they can, and no write's result is read back."""
    response = await system.order.post("/orders", json=order_body(THREE_SKUS))
    assert response.status_code == 201
    await system.drain()
    spans = system.tree(response.json()["trace_id"])
    statements = Counter((service_of(s), s.name) for s in spans if "db.system.name" in s.attributes)
    assert statements == {
        # the order and its first event; two steps' events; the last one's with the
        # confirmation, in one INSERT
        ("order-service", "INSERT orders"): 1,
        ("order-service", "INSERT order_events"): 1 + 2 + 1,
        ("order-service", "UPDATE orders"): 1,
        # the prices; each SKU checked; the reservation; its commit, then its items
        ("inventory-service", "SELECT products"): 1 + 3,
        ("inventory-service", "INSERT reservations"): 1,
        ("inventory-service", "UPDATE products"): 3,
        ("inventory-service", "INSERT reservation_items"): 1,
        ("inventory-service", "UPDATE reservations"): 1,
        ("inventory-service", "SELECT reservation_items"): 1,
        ("payment-service", "INSERT payments"): 1,
        ("shipping-service", "INSERT quotes"): 1,
        ("shipping-service", "SELECT quotes"): 1,
        ("shipping-service", "INSERT shipments"): 1,
    }


def test_exporting_spans_does_not_serialise_the_resource_for_each_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OTLP encoder groups a batch's spans by resource, hashing the resource of each;
    the SDK's ``Resource`` serialises its attributes to JSON at every hash. The services'
    resource (``build_resource``) is hashed once, when it is made."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=build_resource("test-service"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in range(20):
        with provider.get_tracer("test").start_as_current_span("step"):
            pass
    serialised: list[object] = []

    def counted(value: object, **kwargs: Any) -> str:
        serialised.append(value)
        return json.dumps(value, **kwargs)

    monkeypatch.setattr(opentelemetry.sdk.resources, "dumps", counted)
    request = encode_spans(exporter.get_finished_spans())
    assert [len(r.scope_spans[0].spans) for r in request.resource_spans] == [20]
    assert serialised == []
