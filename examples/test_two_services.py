"""Testing the traces of your own services with ``ordersim.testing``.

Two small FastAPI services of this file's own: ``basket`` prices a basket by asking
``prices`` for each item, concurrently, over httpx. The tests run both in this process,
wired to each other, traced, and assert the shape of the trace they make.

Runs from any folder once the package is installed (no ordersim service is involved)::

    pip install 'ordersim[testing]'
    pytest test_two_services.py

``start_apps`` is a fixture of the ``ordersim`` pytest plugin, installed with the package.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.trace import SpanKind, StatusCode

from ordersim.testing import AppContext, SpanTree, down

PRICES = {"tea": 3, "cake": 5, "jam": 4}


def create_prices(ctx: AppContext) -> FastAPI:
    """The price list: ``GET /prices/{item}``."""
    app = FastAPI()
    tracer = ctx.tracer_provider.get_tracer("prices")

    @app.get("/prices/{item}")
    async def price(item: str) -> dict[str, Any]:
        with tracer.start_as_current_span("look_up_price") as span:
            span.set_attribute("shop.item", item)
            if item not in PRICES:
                raise HTTPException(404, f"no price for {item}")
            return {"item": item, "price": PRICES[item]}

    return app


def create_basket(ctx: AppContext) -> FastAPI:
    """``POST /baskets`` with a list of items: their total, priced by the prices service."""
    app = FastAPI()
    tracer = ctx.tracer_provider.get_tracer("basket")
    prices = ctx.client("prices")  # an httpx.AsyncClient, traced, to http://prices

    @app.post("/baskets")
    async def basket(items: list[str]) -> dict[str, Any]:
        with tracer.start_as_current_span("check_basket") as span:
            span.set_attribute("shop.basket.size", len(items))
            if not items:
                raise HTTPException(422, "an empty basket")
        with tracer.start_as_current_span("price_items") as span:
            try:
                answers = await asyncio.gather(*(prices.get(f"/prices/{i}") for i in items))
            except httpx.TransportError as exc:
                raise HTTPException(503, "prices unavailable") from exc
            unknown = [i for i, a in zip(items, answers, strict=True) if a.status_code == 404]
            if unknown:
                raise HTTPException(422, f"unknown items: {unknown}")
            total = sum(a.json()["price"] for a in answers)
            span.add_event("priced", {"shop.basket.total": total})
        return {"total": total}

    return app


SERVICES = {"basket": create_basket, "prices": create_prices}


@pytest.mark.asyncio
async def test_a_basket_is_one_trace_across_both_services(start_apps: Any) -> None:
    async with start_apps(SERVICES) as apps:
        response = await apps.client("basket").post("/baskets", json=["tea", "cake"])
    assert response.status_code == 200
    assert response.json() == {"total": 8}

    tree = SpanTree(apps.spans())
    tree.assert_complete()  # one trace, one root, every call answered by its server
    root = tree.root
    assert (root.name, root.kind) == ("POST /baskets", SpanKind.SERVER)
    check, pricing = tree.find("check_basket"), tree.find("price_items")
    tree.assert_child(root, check)
    tree.assert_child(root, pricing)
    tree.assert_before(check, pricing)
    tree.assert_attributes(check, {"shop.basket.size": 2})
    tree.assert_event(pricing, "priced", {"shop.basket.total": 8})

    # One call per item, both under price_items, running at the same time ...
    calls = tree.find_all(service="basket", kind=SpanKind.CLIENT)
    assert len(calls) == 2
    for call in calls:
        tree.assert_child(pricing, call)
    tree.assert_overlap(*calls)
    # ... each answered by a SERVER span of the prices service, across the process boundary.
    for call in calls:
        [server] = tree.children(call)
        assert (server.name, server.kind) == ("GET /prices/{item}", SpanKind.SERVER)
        tree.assert_child(server, tree.children(server)[0])
    items = {s.attributes["shop.item"] for s in tree.find_all("look_up_price", service="prices")}
    assert items == {"tea", "cake"}


@pytest.mark.asyncio
async def test_an_unknown_item_marks_its_own_spans_as_errors(start_apps: Any) -> None:
    async with start_apps(SERVICES) as apps:
        response = await apps.client("basket").post("/baskets", json=["tea", "caviar"])
    assert response.status_code == 422

    tree = SpanTree(apps.spans())
    tree.assert_complete()
    caviar = next(
        s for s in tree.find_all("look_up_price") if s.attributes["shop.item"] == "caviar"
    )
    tree.assert_status(caviar, StatusCode.ERROR, "no price for caviar")
    tree.assert_event(caviar, "exception", {"exception.type": "fastapi.exceptions.HTTPException"})
    tea = next(s for s in tree.find_all("look_up_price") if s.attributes["shop.item"] == "tea")
    tree.assert_status(tea, StatusCode.UNSET)
    # A 404 is the client's failure: ERROR on the CLIENT span, not on the SERVER span.
    [failed_call] = [
        s
        for s in tree.find_all(kind=SpanKind.CLIENT)
        if s.attributes.get("http.response.status_code", s.attributes.get("http.status_code"))
        == 404
    ]
    tree.assert_status(failed_call, StatusCode.ERROR)
    tree.assert_status(tree.children(failed_call)[0], StatusCode.UNSET)
    tree.assert_status(tree.find("price_items"), StatusCode.ERROR)


@pytest.mark.asyncio
async def test_with_prices_down_the_trace_shows_the_call_no_one_answered(
    start_apps: Any,
) -> None:
    async with start_apps(SERVICES, wrap={"prices": down()}) as apps:
        response = await apps.client("basket").post("/baskets", json=["jam"])
    assert response.status_code == 503

    tree = SpanTree(apps.spans())
    assert tree.services == {"basket"}
    call = tree.find(service="basket", kind=SpanKind.CLIENT)
    tree.assert_status(call, StatusCode.ERROR)
    assert tree.children(call) == []
    # The rule the viewer and the load generator share: a call without its server span
    # leaves the trace incomplete.
    assert not tree.is_complete()
    with pytest.raises(AssertionError, match="unanswered HTTP calls"):
        tree.assert_complete()
