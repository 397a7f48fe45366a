"""The input contract of every service: identifier grammar, strict JSON, limits, 4xx shapes.

Bad input gets a 4xx in the usual JSON shape, never a 5xx, and changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from common.ids import OrderId, Sku
from inventory_service.models import MAX_ITEMS, MAX_QUANTITY
from ordersim.testing import System
from tests.helpers import make_order_id, order_body

#: Ids outside the grammar: non-ASCII and control characters (what schemathesis sent),
#: a near miss, a path-looking one, and the ad-hoc ids tests used to make up.
BAD_IDS = ["GYõ\U0009e2fc", "\nÖ", "Z]", "ord_1", "ORD_0123456789ABCDEF", "ord_0123456789abcdeg"]

#: Every endpoint with an order id in its path: (service, method, path template).
ID_ENDPOINTS = [
    ("inventory", "GET", "/reservations/{}"),
    ("inventory", "POST", "/reservations/{}/commit"),
    ("inventory", "POST", "/reservations/{}/release"),
    ("payment", "GET", "/charges/{}"),
    ("payment", "POST", "/charges/{}/refund"),
    ("shipping", "GET", "/shipments/{}"),
    ("shipping", "POST", "/shipments/{}/cancel"),
    ("order", "GET", "/orders/{}"),
]

#: Tables where an undo endpoint would have left a tombstone.
TABLES = {
    "inventory": "reservations",
    "payment": "payments",
    "shipping": "shipments",
    "order": "orders",
}


def client(system: System, service: str) -> httpx.AsyncClient:
    found: httpx.AsyncClient = getattr(system, service)
    return found


async def row_count(system: System, service: str) -> int:
    async with system.apps[service].state.engine.connect() as conn:
        query = text(f"SELECT count(*) FROM {TABLES[service]}")
        return int((await conn.execute(query)).scalar_one())


def assert_validation_error(response: httpx.Response, loc: list[Any]) -> dict[str, Any]:
    """A 422 in FastAPI's shape naming ``loc``; returns that error."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    matching = [e for e in errors if e["loc"] == loc]
    assert matching, errors
    return dict(matching[0])


# --- identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "method", "path"), ID_ENDPOINTS)
async def test_a_path_id_outside_the_grammar_is_a_422_that_stores_nothing(
    system: System, service: str, method: str, path: str
) -> None:
    for bad_id in BAD_IDS:
        url = path.format(quote(bad_id, safe=""))  # percent-encoded, as a client sends it
        response = await client(system, service).request(method, url)
        error = assert_validation_error(response, ["path", "order_id"])
        assert error["msg"] == (
            "Input should be `ord_` followed by 16 lowercase hex digits, such as "
            "ord_3f9a0c2b7d1e4a56"
        ), bad_id
    assert await row_count(system, service) == 0  # no tombstone under a bad id


@pytest.mark.parametrize(("service", "method", "path"), ID_ENDPOINTS)
async def test_a_path_id_in_the_grammar_reaches_the_handler(
    system: System, service: str, method: str, path: str
) -> None:
    response = await client(system, service).request(method, path.format(make_order_id()))
    # Unknown: 404 for reads and commit; the undos leave their tombstone (200).
    assert response.status_code in (200, 404), response.text
    assert response.json()["code" if response.status_code == 404 else "order_id"]


async def test_undo_endpoints_answer_percent_encoded_non_ascii_and_control_characters(
    system: System,
) -> None:
    """The reported case, percent-encoded as curl sent it."""
    for service, prefix, action in (
        ("inventory", "/reservations", "release"),
        ("payment", "/charges", "refund"),
        ("shipping", "/shipments", "cancel"),
    ):
        response = await client(system, service).post(f"{prefix}/GY%C3%B5%F2%9E%8B%BC/{action}")
        assert response.status_code == 422, (service, response.text)


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_an_order_id_in_a_body_follows_the_same_grammar(system: System, bad_id: str) -> None:
    card = order_body()["payment"]
    bodies = {
        ("inventory", "/reservations"): {
            "order_id": bad_id,
            "items": [{"sku": "SKU-0001", "quantity": 1}],
        },
        ("payment", "/charges"): {
            "order_id": bad_id,
            "amount": {"amount": "1.00", "currency": "USD"},
            "card": card,
        },
        ("shipping", "/shipments"): {"order_id": bad_id, "quote_id": "q_0123456789abcdef"},
    }
    for (service, path), body in bodies.items():
        response = await client(system, service).post(path, json=body)
        assert_validation_error(response, ["body", "order_id"])
        assert await row_count(system, service) == 0


async def test_a_sku_query_parameter_follows_the_sku_grammar(system: System) -> None:
    response = await system.inventory.get("/products", params={"sku": ["SKU-0001", "sku-1"]})
    error = assert_validation_error(response, ["query", "sku", 1])
    assert "`SKU-` followed by 4 digits" in error["msg"]


def test_the_openapi_declares_every_id_grammar(system: System) -> None:
    order_id_pattern = "^ord_[0-9a-f]{16}$"
    for service, method, path in ID_ENDPOINTS:
        openapi = system.apps[service].openapi()
        operation = openapi["paths"][path.format("{order_id}")][method.lower()]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "order_id"]
        assert parameter["schema"]["pattern"] == order_id_pattern, (service, path)
    products = system.apps["inventory"].openapi()["paths"]["/products"]["get"]
    (sku,) = products["parameters"]
    assert sku["schema"]["anyOf"][0]["items"]["pattern"] == "^SKU-[0-9]{4}$"


def test_generated_ids_are_in_their_grammar() -> None:
    from pydantic import TypeAdapter

    from common.ids import (
        PaymentId,
        QuoteId,
        TrackingId,
        new_order_id,
        new_payment_id,
        new_quote_id,
        new_tracking_id,
    )

    for kind, new in (
        (OrderId, new_order_id),
        (QuoteId, new_quote_id),
        (PaymentId, new_payment_id),
        (PaymentId, lambda: new_payment_id(voided=True)),
        (TrackingId, new_tracking_id),
    ):
        made = new()
        assert TypeAdapter(kind).validate_python(made) == made
    assert TypeAdapter(Sku).validate_python("SKU-0001") == "SKU-0001"


# --- strict JSON ----------------------------------------------------------------------------


def request_bodies() -> dict[tuple[str, str, str], Any]:
    """A valid body of every endpoint that takes one, with every optional number field set."""
    return {
        ("order", "POST", "/orders"): order_body(),
        ("inventory", "POST", "/reservations"): {
            "order_id": make_order_id(),
            "items": [{"sku": "SKU-0001", "quantity": 2}],
        },
        ("payment", "POST", "/charges"): {
            "order_id": make_order_id(),
            "amount": {"amount": "12.34", "currency": "USD"},
            "card": order_body()["payment"],
        },
        ("shipping", "POST", "/quotes"): {
            "address": order_body()["shipping_address"],
            "item_count": 3,
        },
        ("shipping", "POST", "/shipments"): {
            "order_id": make_order_id(),
            "quote_id": "q_0123456789abcdef",
        },
        **{
            (service, "PUT", "/admin/faults"): [
                {
                    "endpoint": "GET /nowhere",
                    "latency_ms": 1,
                    "jitter_ms": 1,
                    "error_rate": 0.5,
                    "timeout_rate": 0.5,
                    "timeout_ms": 10,
                    "seed": 7,
                }
            ]
            for service in ("order", "inventory", "payment", "shipping")
        },
    }


def number_fields(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every JSON number in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from number_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from number_fields(item, (*path, index))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(value))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return copy


NUMBER_FIELDS = [
    (endpoint, field)
    for endpoint, body in request_bodies().items()
    for field in number_fields(body)
]


def test_every_number_field_of_every_request_body_is_covered() -> None:
    """The sample bodies above hold every number field the request models declare."""
    from common.fault_rules import FaultRule
    from inventory_service.models import ReserveRequest
    from order_service.models import OrderRequest
    from payment_service.models import ChargeRequest
    from shipping_service.models import QuoteRequest, ShipmentRequest

    def declared(schema: dict[str, Any], defs: dict[str, Any], path: tuple[Any, ...]) -> set[Any]:
        if "$ref" in schema:
            return declared(defs[schema["$ref"].split("/")[-1]], defs, path)
        found: set[Any] = set()
        for option in schema.get("anyOf", []):
            found |= declared(option, defs, path)
        if schema.get("type") in ("integer", "number"):
            found.add(path)
        for name, sub in schema.get("properties", {}).items():
            found |= declared(sub, defs, (*path, name))
        if "items" in schema:
            found |= declared(schema["items"], defs, (*path, 0))
        return found

    def model_fields(model: Any) -> set[Any]:
        schema = model.model_json_schema()
        return declared(schema, schema.get("$defs", {}), ())

    covered = {
        (endpoint[2], field[1:] if endpoint[1] == "PUT" else field)
        for endpoint, field in NUMBER_FIELDS
    }
    for path, model in (
        ("/orders", OrderRequest),
        ("/reservations", ReserveRequest),
        ("/charges", ChargeRequest),
        ("/quotes", QuoteRequest),
        ("/shipments", ShipmentRequest),
        ("/admin/faults", FaultRule),
    ):
        assert {(path, field) for field in model_fields(model)} <= covered, path


@pytest.mark.parametrize("endpoint", request_bodies(), ids=lambda e: f"{e[0]}:{e[1]} {e[2]}")
async def test_a_string_where_a_number_belongs_is_a_422(
    system: System, endpoint: tuple[str, str, str]
) -> None:
    service, method, path = endpoint
    body = request_bodies()[endpoint]
    for field in number_fields(body):
        number = body
        for part in field:
            number = number[part]
        response = await client(system, service).request(
            method, path, json=replaced(body, field, str(number))
        )
        assert_validation_error(response, ["body", *field])


@pytest.mark.parametrize("amount", [12.34, 12, "12.345", "-1.00", "1e3", " 12.34"])
async def test_an_amount_is_a_decimal_string_not_a_number(system: System, amount: Any) -> None:
    body = request_bodies()[("payment", "POST", "/charges")]
    body["amount"]["amount"] = amount
    response = await system.payment.post("/charges", json=body)
    assert_validation_error(response, ["body", "amount", "amount"])
    assert await row_count(system, "payment") == 0


@pytest.mark.parametrize("endpoint", [e for e in request_bodies() if e[1] == "POST"])
async def test_a_body_that_is_not_json_is_a_415(
    system: System, endpoint: tuple[str, str, str]
) -> None:
    service, method, path = endpoint
    content = json.dumps(request_bodies()[endpoint]).encode()
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "jsonx"):
        headers = {} if content_type is None else {"content-type": content_type}
        response = await client(system, service).request(
            method, path, content=content, headers=headers
        )
        assert response.status_code == 415, (content_type, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "detail": "request bodies are JSON: send Content-Type: application/json",
            "code": "unsupported_media_type",
        }


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_content_types_are_accepted(system: System, content_type: str) -> None:
    body = json.dumps(request_bodies()[("shipping", "POST", "/quotes")]).encode()
    response = await system.shipping.post(
        "/quotes", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


async def test_a_body_too_large_is_the_same_413_chunked_or_not(system: System) -> None:
    limit = system.apps["order"].state.settings.max_body_bytes
    body = order_body()
    body["customer_id"] = "x" * (limit + 1)
    raw = json.dumps(body).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    headers = {"content-type": "application/json"}
    declared = await system.order.post("/orders", content=raw, headers=headers)
    streamed = await system.order.post("/orders", content=chunked(), headers=headers)
    assert "content-length" not in streamed.request.headers  # it really was chunked
    expected = {
        "detail": f"the request body is larger than the limit of {limit} bytes",
        "code": "body_too_large",
        "limit_bytes": limit,
    }
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
        assert response.json() == expected
    assert await system.order_count() == 0


async def test_a_large_body_on_a_route_without_one_is_the_same_413(system: System) -> None:
    limit = system.apps["payment"].state.settings.max_body_bytes
    response = await system.payment.request(
        "GET",
        f"/charges/{make_order_id()}",
        content=b"[" + b"0," * limit + b"0]",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == limit


def test_the_openapi_states_the_limits(system: System) -> None:
    openapi = system.apps["order"].openapi()
    limit = system.apps["order"].state.settings.max_body_bytes
    assert f"{limit} bytes" in openapi["info"]["description"]
    post = openapi["paths"]["/orders"]["post"]
    assert f"{limit} bytes" in post["responses"]["413"]["description"]
    assert "415" in post["responses"]
    schemas = openapi["components"]["schemas"]
    assert schemas["OrderRequest"]["properties"]["items"]["maxItems"] == MAX_ITEMS
    assert schemas["OrderLine"]["properties"]["quantity"]["maximum"] == MAX_QUANTITY


# --- what a 422 says --------------------------------------------------------------------------


async def test_a_422_never_echoes_a_big_input(system: System) -> None:
    body = order_body(items=[(f"SKU-{i:04d}", 1) for i in range(1, 101)])
    response = await system.order.post("/orders", json=body)
    error = assert_validation_error(response, ["body", "items"])
    assert error["msg"] == f"List should have at most {MAX_ITEMS} items after validation, not 100"
    assert "input" not in error
    assert len(response.content) < 1000
    assert "SKU-0100" not in response.text


async def test_a_422_echoes_a_small_input_but_never_a_card(system: System) -> None:
    body = order_body()
    body["items"][0]["quantity"] = 0
    body["payment"]["card_number"] = "4242424242424241"
    response = await system.order.post("/orders", json=body)
    error = assert_validation_error(response, ["body", "items", 0, "quantity"])
    assert error["input"] == 0
    card_error = assert_validation_error(response, ["body", "payment", "card_number"])
    assert "input" not in card_error and "ctx" not in card_error
    assert "4242424242424241" not in response.text


async def test_the_country_error_says_in_words_what_is_expected(system: System) -> None:
    body = order_body()
    body["shipping_address"]["country"] = "United Kingdom"
    response = await system.order.post("/orders", json=body)
    error = assert_validation_error(response, ["body", "shipping_address", "country"])
    assert error["msg"] == (
        "Input should be a two-letter ISO 3166-1 country code in capitals, such as GB"
    )
    assert "[A-Z]" not in response.text


def order_json(**raw: str) -> str:
    """The sample order as JSON text, with these fields' values as the JSON text given."""
    body = {k: v for k, v in order_body().items() if k not in raw}
    fields = [json.dumps(body)[1:-1], *(f'"{name}": {value}' for name, value in raw.items())]
    return "{" + ", ".join(fields) + "}"


@pytest.mark.parametrize(
    ("raw", "encoding", "loc"),
    [
        ({"customer_id": '"\\ud800"'}, "utf-8", ["body", "customer_id"]),  # a lone surrogate
        (
            {"customer_id": '"a\\u0000b"'},
            "utf-8",
            ["body", "customer_id"],
        ),  # NUL: PostgreSQL refuses it
        ({"items": '[{"sku": "SKU-0001", "quantity": NaN}]'}, "utf-8", ["body", "items", 0]),
        ({"items": '[{"sku": "SKU-0001", "quantity": -Infinity}]'}, "utf-8", ["body", "items", 0]),
        ({"customer_id": '"caf\u00e9"'}, "latin-1", ["body"]),  # not UTF-8
    ],
)
async def test_input_no_json_response_could_carry_back_is_a_422(
    system: System, raw: dict[str, str], encoding: str, loc: list[Any]
) -> None:
    content = order_json(**raw).encode(encoding)
    response = await system.order.post(
        "/orders", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert loc in [e["loc"][: len(loc)] for e in response.json()["detail"]]
    assert await system.order_count() == 0


async def test_more_than_the_quantity_limit_of_one_sku_over_several_lines_is_a_422(
    system: System,
) -> None:
    body = order_body(items=[("SKU-0001", MAX_QUANTITY), ("SKU-0001", 1)])
    response = await system.order.post("/orders", json=body)
    error = assert_validation_error(response, ["body", "items"])
    assert f"at most {MAX_QUANTITY} units per SKU" in error["msg"]
    assert await system.order_count() == 0


# --- what the OpenAPI promises ----------------------------------------------------------------


def test_every_link_names_an_operation_and_a_field_of_the_response(system: System) -> None:
    """A wrong pointer would silently leave the stateful fuzzing nothing to follow."""
    followed = 0
    for app in system.apps.values():
        openapi = app.openapi()
        schemas = openapi["components"]["schemas"]
        for operations in openapi["paths"].values():
            for operation in operations.values():
                for response in operation["responses"].values():
                    for link in response.get("links", {}).values():
                        path, method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
                        path = path.replace("~1", "/").replace("~0", "~")
                        assert method in openapi["paths"][path], link
                        ((_, value),) = link["parameters"].items()
                        field = value.removeprefix("$response.body#/")
                        ref = response["content"]["application/json"]["schema"]["$ref"]
                        assert field in schemas[ref.split("/")[-1]]["properties"], link
                        followed += 1
    # inventory 3, payment 2, shipping 3 (its notification); order-service: 201, 402, 503 and
    # 202 (a 409 may be no order), each to the order and to its events
    assert followed == 3 + 2 + 3 + 4 * 2


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    from trace_viewer.query import create_query_app
    from trace_viewer.store import Limits, TraceStore

    store = TraceStore(tmp_path / "traces.db", Limits(100, 10**9))
    app = create_query_app(store)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer")
    yield client
    store.close()


async def test_the_viewers_trace_page_refuses_an_id_outside_the_grammar(
    viewer: httpx.AsyncClient,
) -> None:
    assert (await viewer.get(f"/trace/{'ab' * 16}")).status_code == 200
    for bad in ("nope", "ab" * 17, quote("GYõ", safe="")):
        assert (await viewer.get(f"/trace/{bad}")).status_code == 422, bad


async def test_the_viewer_declares_its_404s_and_400s(viewer: httpx.AsyncClient) -> None:
    openapi = (await viewer.get("/api/openapi.json")).json()
    for path in ("/api/v3/traces/{trace_id}", "/api/traces/{trace_id}"):
        assert "404" in openapi["paths"][path]["get"]["responses"]
        assert (await viewer.get(path.format(trace_id="ab" * 16))).status_code == 404
    for path in ("/api/summaries", "/api/traces"):
        assert "400" in openapi["paths"][path]["get"]["responses"]
        for bad in ("null", "99999999999999999999999s", "9223372036854776us", "1" * 400):
            response = await viewer.get(path, params={"minDuration": bad})
            assert response.status_code == 400, (bad, response.text)
            # Jaeger's error shape (its query API's structuredResponse), as DESIGN.md says.
            [error] = response.json()["errors"]
            assert error["code"] == 400 and "minDuration" in error["msg"]
        assert (await viewer.get(path, params={"minDuration": "292y"})).status_code == 400
        assert (await viewer.get(path, params={"minDuration": "250ms"})).status_code == 200


def test_the_readme_states_the_grammar_and_limits_in_force() -> None:
    from pydantic import TypeAdapter

    from common import ids
    from common.settings import ServiceSettings
    from tests import ROOT

    readme = (ROOT / "README.md").read_text()
    for name, kind in (
        ("order", ids.OrderId),
        ("SKU", ids.Sku),
        ("quote", ids.QuoteId),
        ("payment", ids.PaymentId),
        ("tracking", ids.TrackingId),
    ):
        (example,) = re.findall(rf"^  \| {name} \| .* \| `([^`]+)` \|$", readme, re.MULTILINE)
        assert TypeAdapter(kind).validate_python(example) == example
    limit = ServiceSettings.model_fields["max_body_bytes"].default
    assert f"| request body | {limit:,} bytes" in readme
    assert f"| items per order (and per reservation) | {MAX_ITEMS} lines |" in readme
    assert f"| quantity | 1 to {MAX_QUANTITY:,} units per SKU" in readme
