"""inventory-service's typed errors, shared by its storage, routes and client."""

from __future__ import annotations

from common.errors import Conflict, InvalidRequest


class OutOfStock(Conflict):
    """409: an item cannot be reserved in the quantity asked for."""

    code = "out_of_stock"

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"{sku}: {requested} requested, {available} available",
            sku=sku,
            requested=requested,
            available=available,
        )
        self.sku = sku


class UnknownSku(InvalidRequest):
    """422: no such product."""

    code = "unknown_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku}", sku=sku)
        self.sku = sku
