"""Database engine factory: SQLite (WAL) by default, any SQLAlchemy async URL otherwise;
and how the services run their statements: :func:`transaction` and :func:`read`.

Storage code is plain SQLAlchemy Core on a synchronous ``Connection``, one function per
transaction (or per read), run by ``await transaction(engine, fn, *args)``:

- on SQLite, with the standard library's driver: a transaction in a thread of the
  engine's own pool, one thread hop for the whole function (its commit waits for the
  disk, which the event loop must not); a read on the event loop's own thread, through
  a connection of its own that cannot write (``PRAGMA query_only``): no hop at all
  (unless another connection holds the file locked: then it waits in a thread). A
  hop (a wake-up of the other thread, a hand-over of the GIL, a wake-up of the loop)
  costs several times the primary-key SELECT it carries (bench/call_costs.py), and a
  WAL reader neither waits for the writer nor blocks it. aiosqlite hopped for every
  cursor call (open, execute, fetch, close, commit: four or five per statement);
- on any other database (PostgreSQL with asyncpg), on the async engine itself
  (``AsyncConnection.run_sync``): each statement awaits the driver, no thread at all.

Either way the statements are those of the same function, traced by the same
instrumentation, and their spans are children of the span that awaited them.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, overload
from weakref import WeakKeyDictionary

import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import Column, Connection, Engine, MetaData, Table, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import SingletonThreadPool
from sqlalchemy.schema import CreateColumn

from common.concurrency import uncancelled
from common.telemetry import Telemetry, known_unsampled

P = ParamSpec("P")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer commits; busy_timeout makes writers queue
    # instead of failing with "database is locked" under concurrent orders. FULL syncs
    # the WAL at every commit: an order answered 201, and what it did downstream (the
    # stock committed, the card charged, the shipment), survives a power loss. NORMAL
    # cannot corrupt a WAL database either, but may lose the last commits.
    cursor.execute("PRAGMA busy_timeout=10000")  # first: another process may be writing
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    # The reads' connection, on the event loop's thread: a read that writes fails, and
    # one that finds the file locked (another connection recovering the WAL after a
    # crash, or holding the file in exclusive locking mode) fails at once instead of
    # waiting in SQLite's busy handler with the loop stopped; read() then waits in a
    # thread. (WAL is the file's own mode, set by the writers' connections.)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _busy(error: sqlalchemy.exc.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (SQLITE_BUSY and
    its extended codes)."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


class _ThreadedSQLite:
    """A SQLite file through the standard library's driver: transactions in threads, one
    per connection, as many of each as the async engine may open; reads on the calling
    thread (the event loop's), one read-only connection per thread."""

    def __init__(self, url: sqlalchemy.URL, connections: int, telemetry: Telemetry) -> None:
        url = url.set(drivername="sqlite+pysqlite")
        self.engine = sqlalchemy.create_engine(url, pool_size=connections, max_overflow=0)
        self.unsampled = _untraced_twin(self.engine, telemetry)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        telemetry.instrument_engine(self.engine)
        self.threads = ThreadPoolExecutor(connections, thread_name_prefix="sqlite")
        # A read runs to its end before the loop goes on, so one connection per thread
        # serves every read of that thread's loop (and keeps its page cache warm).
        self.reader = sqlalchemy.create_engine(url, poolclass=SingletonThreadPool)
        self.unsampled_reader = _untraced_twin(self.reader, telemetry)
        event.listen(self.reader, "connect", _read_only)
        telemetry.instrument_engine(self.reader)

    async def run(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        return await self._in_thread(self._transaction, fn, args, kwargs)

    async def _in_thread(
        self, work: Callable[..., T], fn: Callable[..., T], args: Any, kwargs: Any
    ) -> T:
        # The caller's context goes with the call: its statements' spans are children of
        # the caller's span. Cancelled meanwhile, the caller waits for the work to end
        # (the thread runs it to its end whatever happens), then is cancelled.
        call = contextvars.copy_context().run
        future = self.threads.submit(call, work, fn, args, kwargs)
        return await uncancelled(asyncio.wrap_future(future))

    def _transaction(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        engine = self.unsampled if known_unsampled() else self.engine
        with engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        reader = self.unsampled_reader if known_unsampled() else self.reader
        try:
            with reader.connect() as conn:
                return fn(conn, *args, **kwargs)
        except sqlalchemy.exc.OperationalError as error:
            if not _busy(error):
                raise
        # The file is locked: the same read again, from its start (it only reads), in a
        # thread that may wait for the lock as a transaction would. Its statements' spans
        # follow the refused one's.
        return await self._in_thread(self._read_waiting, fn, args, kwargs)

    def _read_waiting(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        engine = self.unsampled if known_unsampled() else self.engine
        with engine.connect() as conn:  # closed without a commit: rolled back
            return fn(conn, *args, **kwargs)

    def dispose(self, *_: object) -> None:
        """Close the connections, as the async engine's ``dispose()`` does its own; like it,
        this stays usable (the idle threads end with the executor)."""
        for engine, twin in ((self.engine, self.unsampled), (self.reader, self.unsampled_reader)):
            engine.dispose()  # a new pool: the twin goes on sharing it
            twin.pool = engine.pool


def _untraced_twin(engine: Engine, telemetry: Telemetry) -> Engine:
    """An engine over ``engine``'s own connection pool (its connections, and the pool's
    listeners: the pragmas) without the instrumentation's listeners, for work known to be
    unsampled (:attr:`Telemetry.skips_unsampled`); else ``engine`` itself. Made before
    ``engine`` connects, so that the first connection initialises both dialects.

    A listener on an engine's statements, even one that returns at once (the
    instrumentation's, for a statement of an unsampled trace), turns on SQLAlchemy's
    event dispatch for every connection and statement of that engine: 170,000 more
    instructions for a two-statement transaction (385,000 without any), 2.8 of the 4.1
    million instructions an unsampled order cost over untraced (bench/order_calls.py)."""
    if not telemetry.skips_unsampled:
        return engine
    return sqlalchemy.create_engine(engine.url, pool=engine.pool)


#: The threaded driver of each SQLite engine :func:`create_engine` made.
_threaded: WeakKeyDictionary[Engine, _ThreadedSQLite] = WeakKeyDictionary()


def create_engine(
    url: str, telemetry: Telemetry, *, pool_size: int = 10, max_overflow: int = 20
) -> AsyncEngine:
    """An instrumented async engine; for SQLite the directory is created and WAL is on,
    and :func:`transaction` runs on the same file through a threaded synchronous driver.

    At most ``pool_size + max_overflow`` connections are open at once; a request that needs
    one more waits for one to be returned.
    """
    parsed = make_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow}
    if parsed.get_backend_name() == "sqlite":
        file = parsed.database if parsed.database not in (None, "", ":memory:") else None
        if file:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if file:  # (an in-memory database is one per connection: no second driver)
            threaded = _ThreadedSQLite(parsed, pool_size + max_overflow, telemetry)
            _threaded[engine.sync_engine] = threaded
            event.listen(engine.sync_engine, "engine_disposed", threaded.dispose)
    else:
        engine = create_async_engine(url, **pool, pool_pre_ping=True)
    telemetry.instrument_engine(engine)
    return engine


async def transaction(
    engine: AsyncEngine,
    fn: Callable[Concatenate[Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``fn(connection, *args, **kwargs)`` in one transaction, committed when it returns,
    rolled back when it raises."""
    threaded = _threaded.get(engine.sync_engine)
    if threaded is not None:
        return await threaded.run(fn, args, kwargs)
    async with engine.begin() as conn:
        return await conn.run_sync(fn, *args, **kwargs)


async def read(
    engine: AsyncEngine,
    fn: Callable[Concatenate[Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``fn(connection, *args, **kwargs)``, which only reads: nothing is committed. On
    SQLite it runs on the calling thread, where a statement that writes fails."""
    threaded = _threaded.get(engine.sync_engine)
    if threaded is not None:
        # Still a point where the loop runs what is ready, and where a cancelled caller
        # stops, as when the read awaited its thread: reads gathered together all start
        # (their spans overlap) before the first one runs.
        await asyncio.sleep(0)
        return await threaded.read(fn, args, kwargs)
    async with engine.connect() as conn:
        return await conn.run_sync(fn, *args, **kwargs)


@overload
def utc(at: datetime) -> datetime: ...
@overload
def utc(at: None) -> None: ...
def utc(at: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands them back naive, in UTC)."""
    return at if at is None or at.tzinfo is not None else at.replace(tzinfo=UTC)


async def create_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    """Create the service's own tables (each service owns its database), and add to a table
    a previous version created the columns and indexes it lacks."""

    async def create() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(_add_missing_columns, metadata)

    await at_start_up(create)


async def at_start_up(step: Callable[[], Awaitable[object]]) -> None:
    """Run a start-up step that looks at the database before changing it, in one
    transaction (create the tables, seed them), as often as it takes: the replicas of a
    service start together on one database, and a replica that looked before another's
    change was committed fails on it ("table already exists", a duplicate key); run
    again, it finds the work done."""
    for attempt in range(_START_UP_ATTEMPTS):
        try:
            await step()
            return
        except sqlalchemy.exc.DBAPIError:
            if attempt + 1 == _START_UP_ATTEMPTS:
                raise


_START_UP_ATTEMPTS = 5


def _add_missing_columns(conn: Connection, metadata: MetaData) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each column of ``metadata`` a table lacks, then
    create its missing indexes.

    Only additive changes, the only kind made so far: a missing column that may be NULL
    (or has a server default) is added; a missing NOT NULL column without one stops
    start-up, naming it, before anything is changed. Columns the model no longer has are
    left alone. Alembic is the tool once a change needs more (renames, data migrations,
    versions); until then it would add scripts and an environment to each of the four
    services for this one step.
    """
    inspector = inspect(conn)
    missing: dict[Table, list[Column[Any]]] = {}
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing[table] = [column for column in table.columns if column.name not in present]
    for table, columns in missing.items():
        for column in columns:
            if not column.nullable and column.server_default is None:
                raise RuntimeError(
                    f"table {table.name} lacks column {column.name}, which is NOT NULL without "
                    "a default: migrate this database by hand"
                )
    preparer = conn.dialect.identifier_preparer
    for table, columns in missing.items():
        for column in columns:
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {ddl}"))
        if columns:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
