"""Idempotency-Key on ``POST /orders``: a retry with the same key and body gets the first
response and buys nothing twice; the same key with another body is a 422.

The key is claimed in the database before the order runs, so concurrent retries of one
request (a client that timed out and tried again) wait for the first instead of racing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from common.errors import Conflict, InvalidFields
from order_service import storage
from order_service.models import Order, http_status

POLL_INTERVAL = 0.05


def body_digest(raw: bytes) -> str:
    """The same JSON body however it is spaced or ordered."""
    canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def once(
    engine: AsyncEngine,
    key: str,
    digest: str,
    place: Callable[[], Awaitable[Order]],
    wait: float,
) -> tuple[int, str, bool]:
    """Run ``place`` once per key; return (status code, response JSON, replayed)."""
    deadline = time.monotonic() + wait
    while True:
        stored = await storage.claim_key(engine, key, digest)
        if stored is None:  # ours: run the order and keep its response for the retries
            try:
                order = await place()
            except BaseException:
                await storage.release_key(engine, key)  # invalid input: nothing was stored
                raise
            status, response = http_status(order.status), order.model_dump_json()
            await storage.complete_key(engine, key, status, response)
            return status, response, False
        if stored.body_digest != digest:
            raise InvalidFields(
                [
                    {
                        "type": "idempotency_key_reused",
                        "loc": ("header", "idempotency-key"),
                        "msg": "this Idempotency-Key was already used with another body",
                        "input": key,
                    }
                ]
            )
        if stored.status_code is not None and stored.response is not None:
            return stored.status_code, stored.response, True
        # The first request with this key is still running: wait for its answer.
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
            current = await storage.read_key(engine, key)
            if current is None:  # it failed validation and let the key go: claim it
                break
            if current.status_code is not None and current.response is not None:
                return current.status_code, current.response, True
        else:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry later",
                code="idempotency_key_in_progress",
            )
