"""Database engine factory: SQLite (WAL) by default, any SQLAlchemy async URL otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
    """Create the service's own tables (each service owns its database)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
