"""The services' database layer (common/db.py): what they commit survives a power loss
(SQLite syncs each commit to disk), and its engines behave as SQLAlchemy's do."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import create_engine, read, transaction
from common.telemetry import StatementTracer, Telemetry
from ordersim.testing import System

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def synchronous(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


async def test_every_service_commits_with_synchronous_full(system: System) -> None:
    """Under WAL, synchronous=NORMAL cannot corrupt the database but may lose the last
    commits on a power loss: an order already answered 201, or the charge of one that
    was refunded, would be gone. FULL syncs the log at every commit."""
    for name, app in system.apps.items():
        assert await transaction(app.state.engine, synchronous) == FULL, name
        async with app.state.engine.connect() as conn:
            assert await conn.run_sync(synchronous) == FULL, name


async def test_a_disposed_engine_can_be_used_again(tmp_path: Path) -> None:
    """As SQLAlchemy's own: dispose() closes the connections, the engine stays usable."""
    telemetry = Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", telemetry)
    assert await transaction(engine, synchronous) == FULL
    assert await read(engine, synchronous) == FULL
    await engine.dispose()
    assert await transaction(engine, synchronous) == FULL
    assert await read(engine, synchronous) == FULL
    await engine.dispose()


def untraced_engine(path: Path) -> AsyncEngine:
    telemetry = Telemetry(trace.NoOpTracerProvider(), owns_provider=False, enabled=False)
    return create_engine(f"sqlite+aiosqlite:///{path / 'x.db'}", telemetry)


def create(conn: Connection) -> None:
    conn.execute(text("CREATE TABLE t (v INTEGER)"))


def insert(conn: Connection, value: int) -> None:
    conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})


def values(conn: Connection) -> list[int]:
    return list(conn.execute(text("SELECT v FROM t ORDER BY v")).scalars())


async def test_a_read_runs_on_the_event_loop_thread_and_a_transaction_does_not(
    tmp_path: Path,
) -> None:
    """On SQLite a read takes no thread hop (common/db.py): a hop costs several times a
    primary-key SELECT. A transaction, whose commit waits for the disk, keeps its thread."""
    engine = untraced_engine(tmp_path)

    def thread_of(conn: Connection) -> int:
        return threading.get_ident()

    try:
        assert await read(engine, thread_of) == threading.get_ident()
        assert await transaction(engine, thread_of) != threading.get_ident()
    finally:
        await engine.dispose()


async def test_a_read_sees_every_committed_transaction_and_cannot_write(tmp_path: Path) -> None:
    engine = untraced_engine(tmp_path)
    try:
        await transaction(engine, create)
        for value in (1, 2):
            await transaction(engine, insert, value)
            assert await read(engine, values) == list(range(1, value + 1))
        with pytest.raises(OperationalError, match="readonly"):
            await read(engine, insert, 3)
        assert await read(engine, values) == [1, 2]
    finally:
        await engine.dispose()


async def test_a_read_that_finds_the_file_locked_waits_off_the_event_loop(tmp_path: Path) -> None:
    """A read runs on the event loop's thread; SQLite's busy handler there would stop the
    loop for as long as another connection holds the file locked (up to the busy
    timeout, then "database is locked"). It waits in a thread instead, and the loop goes
    on: here the loop itself releases the lock."""
    engine = untraced_engine(tmp_path)
    await transaction(engine, create)
    await transaction(engine, insert, 1)
    await engine.dispose()  # every connection closed, so that another may lock the file
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")  # held from its first write on
    holder.execute("INSERT INTO t VALUES (2)")
    ticks = 0

    async def release_once_the_loop_has_run() -> None:
        nonlocal ticks
        while ticks < 5:
            ticks += 1
            await asyncio.sleep(0.01)
        holder.close()

    try:
        found, _ = await asyncio.gather(read(engine, values), release_once_the_loop_has_run())
        assert found == [1, 2]
        assert await read(engine, values) == [1, 2]  # and on the loop again
    finally:
        holder.close()
        await engine.dispose()


async def test_unsampled_work_runs_on_the_same_connections_without_the_instrumentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener on an engine's statements turns on SQLAlchemy's event dispatch for all
    of them, even when it returns at once: work known to be unsampled goes through a twin
    engine over the same pool, which has none (and still the pool's pragmas: FULL sync,
    a read that cannot write); sampled work is traced as before."""
    statements: list[str] = []
    before = StatementTracer._before_cur_exec

    def listening(self: StatementTracer, *args: Any) -> Any:
        statements.append(args[2])
        return before(self, *args)

    monkeypatch.setattr(StatementTracer, "_before_cur_exec", listening)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", Telemetry(provider))

    def under(flags: int) -> Any:
        parent = SpanContext(0x4BF92F3577B34DA6, 0x00F067AA0BA902B7, True, TraceFlags(flags))
        return attach(trace.set_span_in_context(NonRecordingSpan(parent)))

    try:
        token = under(TraceFlags.DEFAULT)
        try:
            await transaction(engine, create)
            await transaction(engine, insert, 1)
            assert await read(engine, values) == [1]
            with pytest.raises(OperationalError, match="readonly"):
                await read(engine, insert, 2)
            assert await transaction(engine, synchronous) == FULL
            assert await read(engine, synchronous) == FULL
        finally:
            detach(token)
        assert statements == []
        assert exporter.get_finished_spans() == ()

        token = under(TraceFlags.SAMPLED)
        try:
            await transaction(engine, insert, 2)
            assert await read(engine, values) == [1, 2]
        finally:
            detach(token)
        assert len(statements) == 2
        spans = exporter.get_finished_spans()
        assert len(spans) == 2
        assert all(s.parent is not None and s.parent.span_id == 0x00F067AA0BA902B7 for s in spans)
    finally:
        await engine.dispose()


async def test_the_twin_engines_share_their_pools_after_a_dispose(tmp_path: Path) -> None:
    """dispose() gives an engine a new pool; its uninstrumented twin must follow it, or the
    two would each keep connections of their own from then on."""
    from common.db import _threaded

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", Telemetry(TracerProvider()))
    threaded = _threaded[engine.sync_engine]
    try:
        for _ in range(2):
            assert threaded.unsampled is not threaded.engine  # a twin, as under a sampler
            assert threaded.unsampled.pool is threaded.engine.pool
            assert threaded.unsampled_reader.pool is threaded.reader.pool
            assert await transaction(engine, synchronous) == FULL
            await engine.dispose()
    finally:
        await engine.dispose()
