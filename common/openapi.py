"""What FastAPI does not derive for the OpenAPI: links from a response to the operations
that act on what it names (OpenAPI 3.1 "Link Object"). Clients and stateful fuzzers such
as schemathesis follow them: POST /orders, then GET /orders/{order_id} with its id."""

from __future__ import annotations

from typing import Any


def links(parameter: str, **operations: tuple[str, str]) -> dict[str, Any]:
    """A response's ``links``: each named operation ``(method, path)`` takes ``parameter``
    from the response body's field of the same name::

        responses={201: links("order_id", GetOrder=("get", "/orders/{order_id}"))}
    """
    return {
        "links": {
            name: {
                "operationRef": f"#/paths/{_pointer(path)}/{method}",
                "parameters": {parameter: f"$response.body#/{parameter}"},
            }
            for name, (method, path) in operations.items()
        }
    }


def _pointer(path: str) -> str:
    """A path as one JSON Pointer token (RFC 6901)."""
    return path.replace("~", "~0").replace("/", "~1")
