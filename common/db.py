"""Database engine factory: SQLite (WAL) by default, any SQLAlchemy async URL otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn

from common.telemetry import Telemetry


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer commits; busy_timeout makes writers queue
    # instead of failing with "database is locked" under concurrent orders.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(
    url: str, telemetry: Telemetry, *, pool_size: int = 10, max_overflow: int = 20
) -> AsyncEngine:
    """An instrumented async engine; for SQLite the directory is created and WAL is on.

    At most ``pool_size + max_overflow`` connections are open at once; a request that needs
    one more waits for one to be returned.
    """
    parsed = make_url(url)
    pool = {"pool_size": pool_size, "max_overflow": max_overflow}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, **pool, pool_pre_ping=True)
    telemetry.instrument_engine(engine)
    return engine


async def create_tables(engine: AsyncEngine, metadata: MetaData) -> None:
    """Create the service's own tables (each service owns its database), and add to a table
    a previous version created the columns and indexes it lacks."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_add_missing_columns, metadata)


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
