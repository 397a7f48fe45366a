"""Typed client for inventory-service; callers import this, never build its URLs."""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import Conflict
from common.http import ServiceClient
from inventory_service.errors import OutOfStock, UnknownSku
from inventory_service.models import ItemRequest, Product, Reservation, ReserveRequest


class InventoryClient(ServiceClient):
    """::

    inventory = InventoryClient(http_client)
    items = [ItemRequest(sku="SKU-0001", quantity=2)]
    reservation = await inventory.reserve("ord_3f9a0c2b7d1e4a56", items)
    """

    service = "inventory-service"

    async def get_products(self, skus: Sequence[str] = ()) -> list[Product]:
        response = await self._request(
            "GET", "/products", params={"sku": list(skus)}, idempotent=True
        )
        if response.status_code != 200:
            raise self._unexpected(response)
        return [Product.model_validate(p) for p in response.json()]

    async def reserve(self, order_id: str, items: Sequence[ItemRequest]) -> Reservation:
        """Raises OutOfStock (409), UnknownSku (422) or DownstreamUnavailable."""
        body = ReserveRequest(order_id=order_id, items=list(items))
        response = await self._request(  # keyed by order id: a repeat returns the first
            "POST", "/reservations", body=body, idempotent=True
        )
        if response.status_code == 409:
            error = response.json()
            if error.get("code") == "out_of_stock":
                raise OutOfStock(error["sku"], error["requested"], error["available"])
            raise Conflict(error.get("detail", "reservation refused"))
        if response.status_code == 422 and response.json().get("code") == "unknown_sku":
            raise UnknownSku(response.json()["sku"])
        if response.status_code != 201:
            raise self._unexpected(response)
        return Reservation.model_validate_json(response.content)

    async def commit(self, order_id: str) -> Reservation:
        return await self._reservation_action("commit", order_id)

    async def release(self, order_id: str) -> Reservation:
        return await self._reservation_action("release", order_id)

    async def _reservation_action(self, action: str, order_id: str) -> Reservation:
        response = await self._request(
            "POST",
            f"/reservations/{{order_id}}/{action}",  # the template; the id fills it in
            path_params={"order_id": order_id},
            idempotent=True,
        )
        if response.status_code == 409:
            raise Conflict(response.json().get("detail", f"{action} refused"))
        if response.status_code != 200:
            raise self._unexpected(response)
        return Reservation.model_validate_json(response.content)
