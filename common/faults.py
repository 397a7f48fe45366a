"""Fault injection: added latency, errors, timeouts and hangs, per service or per endpoint.

A service's rules (:class:`common.fault_rules.FaultRule`) come from
``<SERVICE>_SERVICE_FAULTS`` at start-up (a JSON list) and live in a :class:`FaultState` on
``app.state.faults``;
``GET/PUT/DELETE /admin/faults`` (:data:`router`) read, replace and clear them at run time
(``ordersim faults`` calls those). :class:`FaultMiddleware` applies them to each request.

The rules are kept in the service's database too (table ``fault_rules``, one row), so that
every replica of the service applies them: the one a PUT reaches at once, the others
within :data:`SYNC_INTERVAL` seconds, each reading the row's version that often (a
request never waits for the database). A process starting stores its start-up rules
there, which then apply to every replica.

It runs inside the OpenTelemetry SERVER span of the request, and marks the span it
touches: attribute ``ordersim.fault.injected = true`` and one ``fault.injected`` event per
fault (``ordersim.fault.kind`` = latency|timeout|error|hang, with the delay or status); an
injected error also sets the span's status to ERROR, described "injected fault: …". So a
waterfall tells an injected fault from a real one.

``/healthz`` and ``/admin/*`` are never faulted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode
from pydantic import TypeAdapter
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.db import at_start_up, create_tables, read, transaction
from common.fault_rules import (
    ADMIN_PATH,
    ATTR_DELAY_MS,
    ATTR_INJECTED,
    ATTR_KIND,
    ATTR_REASON,
    ATTR_SCOPE,
    ATTR_STATUS_CODE,
    ERROR_STATUS,
    EVENT_HANG_ENDED,
    EVENT_INJECTED,
    FaultRule,
    FaultRules,
    distinct_scopes,
    is_exempt,
)

logger = logging.getLogger(__name__)

#: The body of an injected error (HTTP 500 — a 5xx the order service does not retry).
ERROR_BODY = {"detail": "injected fault", "code": "injected_fault"}

#: The names of the two tasks that watch a hung request (they never outlive it).
HANG_TASK_PREFIX = "ordersim-fault-hang"
#: Seconds between two looks of a process at the rules in its database: how long a rule
#: set through one replica takes at most to apply on the others.
SYNC_INTERVAL = 1.0

FaultKind = Literal["latency", "timeout", "error", "hang"]


class FaultState:
    """The live rules of one service (``app.state.faults``) and the random source they draw
    from: a rule's own when it has a ``seed``, else the shared ``random`` (seed it with
    ``FaultState(rules, seed=1)`` or ``state.random.seed(1)``)."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int | None = None) -> None:
        self.random = random.Random(seed)
        self._engine: AsyncEngine | None = None
        self._version = -1  # of the stored rules in force here
        self._rules: tuple[FaultRule, ...] = ()
        self._seeded: dict[str, random.Random] = {}
        self._changed = asyncio.Event()
        self.replace(rules)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        return self._rules

    @property
    def changed(self) -> asyncio.Event:
        """Set when the rules change: requests held by a fault are then let through."""
        return self._changed

    def replace(self, rules: Iterable[FaultRule]) -> None:
        """Replace every rule; requests held by the old rules are released."""
        self._rules = tuple(distinct_scopes(list(rules)))
        self._seeded = {r.scope: random.Random(r.seed) for r in self._rules if r.seed is not None}
        self._changed.set()
        self._changed = asyncio.Event()

    def clear(self) -> None:
        self.replace(())

    @asynccontextmanager
    async def shared(
        self, engine: AsyncEngine, *, interval: float = SYNC_INTERVAL
    ) -> AsyncIterator[None]:
        """Keep the rules in ``engine``'s database while the block runs: store the ones in
        force now (the start-up rules), and take up every change another process stores,
        looking every ``interval`` seconds. :meth:`store` and :meth:`sync` need it."""
        with suppress_instrumentation():  # start-up work is not part of any request's trace
            await create_tables(engine, _metadata)
            await at_start_up(lambda: transaction(engine, _first_row))
            self._engine = engine
            await self.store(self._rules)
        task = asyncio.get_running_loop().create_task(
            self._follow(interval), name="ordersim-fault-rules"
        )
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            self._engine = None

    async def store(self, rules: Iterable[FaultRule]) -> None:
        """Replace every rule, in every replica: here at once, in the others at their next
        look at the database."""
        rules = distinct_scopes(list(rules))
        if self._engine is not None:
            self._version = await transaction(self._engine, _store_rules, _RULES.dump_json(rules))
        self.replace(rules)

    async def sync(self) -> None:
        """Take up the rules another process stored, if they changed since the last look."""
        if self._engine is None:
            return
        stored = await read(self._engine, _stored_rules, self._version)
        # Newer only: a store of this process may have ended while the read ran.
        if stored is not None and stored[0] > self._version:
            self._version, text = stored
            self.replace(_RULES.validate_json(text))

    async def _follow(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                with suppress_instrumentation():  # a look every second is not worth a trace
                    await self.sync()
            except Exception:
                logger.exception("reading the fault rules failed; the next look tries again")

    def generator(self, rule: FaultRule) -> random.Random:
        """Where ``rule`` draws its delays and chances from."""
        return self._seeded.get(rule.scope, self.random)

    def match(self, method: str, path: str) -> FaultRule | None:
        """The most specific rule for this request, or None."""
        if not self._rules or is_exempt(path):  # (no rules: every request, nearly always)
            return None
        matching = [r for r in self._rules if r.matches(method, path)]
        return max(matching, key=FaultRule.specificity) if matching else None


def _mark(span: trace.Span, rule: FaultRule, kind: FaultKind, **attributes: Any) -> None:
    if not span.is_recording():
        return
    span.set_attribute(ATTR_INJECTED, True)
    span.set_attribute(ATTR_SCOPE, rule.scope)
    span.add_event(EVENT_INJECTED, {ATTR_KIND: kind, ATTR_SCOPE: rule.scope, **attributes})


async def _pause(changed: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True if the rules changed first (the fault was lifted)."""
    try:
        async with asyncio.timeout(seconds):
            await changed.wait()
    except TimeoutError:
        return False
    return True


class FaultMiddleware:
    """Applies a :class:`FaultState`'s rules to each HTTP request (pure ASGI).

    Added with ``app.add_middleware``, it runs inside the OpenTelemetry server span (the
    FastAPI instrumentation wraps the whole middleware stack), which it marks.
    """

    def __init__(self, app: ASGIApp, faults: FaultState) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.faults.match(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()
        changed = self.faults.changed
        draw = self.faults.generator(rule)
        if rule.hang:
            _mark(span, rule, "hang")
            replay = await self._hang(span, receive, changed)
            if replay is not None:  # the rule was lifted: handle the request after all
                await self.app(scope, replay, send)
            return

        delay_ms = rule.latency_ms
        if rule.jitter_ms:
            delay_ms = max(0.0, delay_ms + draw.uniform(-rule.jitter_ms, rule.jitter_ms))
        times_out = rule.timeout_rate > 0 and draw.random() < rule.timeout_rate
        fails = rule.error_rate > 0 and draw.random() < rule.error_rate

        if delay_ms > 0:
            _mark(span, rule, "latency", **{ATTR_DELAY_MS: round(delay_ms, 3)})
            if await _pause(changed, delay_ms / 1000):
                fails = times_out = False
        if times_out:
            _mark(span, rule, "timeout", **{ATTR_DELAY_MS: rule.timeout_ms})
            if await _pause(changed, rule.timeout_ms / 1000):
                fails = False
        if not fails:
            await self.app(scope, receive, send)
            return

        _mark(span, rule, "error", **{ATTR_STATUS_CODE: ERROR_STATUS})
        body = json.dumps(ERROR_BODY).encode()
        await send(
            {
                "type": "http.response.start",
                "status": ERROR_STATUS,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        # After the response start, where the instrumentation set a bare ERROR for the 500,
        # and before the body, after which it ends the span.
        span.set_status(
            StatusCode.ERROR,
            f"injected fault: HTTP {ERROR_STATUS} (error_rate {rule.error_rate:g}, "
            f"scope {rule.scope})",
        )
        await send({"type": "http.response.body", "body": body})

    async def _hang(
        self, span: trace.Span, receive: Receive, changed: asyncio.Event
    ) -> Receive | None:
        """Hold the request until the client disconnects (None) or the rules change (a
        ``receive`` that replays the body read meanwhile). Cancellation (a server shutting
        down, an in-process caller's timeout) ends it too; no task outlives it."""
        buffered: list[Message] = []

        async def until_disconnect() -> None:
            while (message := await receive())["type"] != "http.disconnect":
                buffered.append(message)

        loop = asyncio.get_running_loop()
        watcher = loop.create_task(until_disconnect(), name=f"{HANG_TASK_PREFIX}-disconnect")
        lifted = loop.create_task(changed.wait(), name=f"{HANG_TASK_PREFIX}-lifted")
        reason, disconnected = "cancelled", False
        try:
            await asyncio.wait({watcher, lifted}, return_when=asyncio.FIRST_COMPLETED)
            disconnected = watcher.done() and not watcher.cancelled()
            reason = "client disconnected" if disconnected else "rules changed"
        finally:
            for task in (watcher, lifted):
                task.cancel()
            await asyncio.wait({watcher, lifted})
            span.add_event(EVENT_HANG_ENDED, {ATTR_REASON: reason})
        if disconnected:
            watcher.exception()  # retrieved: a receive() that failed is a disconnect too
            return None

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        return replay


def install_faults(app: FastAPI, state: FaultState) -> FaultState:
    """Put ``state`` on ``app.state.faults``, its middleware and admin API on ``app``. Call
    before the app is instrumented or started; its lifespan makes the rules shared
    (:meth:`FaultState.shared`)."""
    app.state.faults = state
    app.add_middleware(FaultMiddleware, faults=state)
    app.include_router(router)
    return state


# --- where the rules are stored ---------------------------------------------------------------

_metadata = MetaData()
#: One row (id 1): the rules as JSON, and a version that every change counts up.
_fault_rules = Table(
    "fault_rules",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rules", Text, nullable=False),
    Column("version", Integer, nullable=False),
)
_RULES = TypeAdapter(list[FaultRule])


def _first_row(conn: Connection) -> None:
    if conn.execute(select(_fault_rules.c.id)).first() is None:
        conn.execute(insert(_fault_rules).values(id=1, rules="[]", version=0))


def _store_rules(conn: Connection, rules: bytes) -> int:
    version = conn.execute(
        update(_fault_rules)
        .where(_fault_rules.c.id == 1)
        .values(rules=rules.decode(), version=_fault_rules.c.version + 1)
        .returning(_fault_rules.c.version)
    ).scalar_one()
    return int(version)


def _stored_rules(conn: Connection, known: int) -> tuple[int, str] | None:
    """The stored rules and their version, if it is newer than ``known``."""
    row = conn.execute(select(_fault_rules.c.version, _fault_rules.c.rules)).first()
    if row is None or row.version <= known:
        return None
    return int(row.version), str(row.rules)


# --- the admin API ------------------------------------------------------------------------------

router = APIRouter(tags=["admin"])


async def _state(request: Request) -> FaultState:
    state: FaultState = request.app.state.faults
    return state


FaultStateDep = Annotated[FaultState, Depends(_state)]


@router.get(ADMIN_PATH)
async def get_faults(state: FaultStateDep) -> list[FaultRule]:
    """The rules in force, one per scope (``endpoint`` null: the whole service)."""
    await state.sync()
    return list(state.rules)


@router.put(ADMIN_PATH)
async def put_faults(rules: FaultRules, state: FaultStateDep) -> list[FaultRule]:
    """Replace every rule with these, in every replica of the service (422 names a bad
    field); returns the rules in force. Requests held by the old rules (delays, timeouts,
    hangs) are let through."""
    await state.store(rules)
    return list(state.rules)


@router.delete(ADMIN_PATH)
async def clear_faults(state: FaultStateDep) -> list[FaultRule]:
    """Remove every rule, in every replica (requests held by one are let through); returns
    ``[]``."""
    await state.store(())
    return list(state.rules)
