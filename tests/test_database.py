"""The services' database layer (common/db.py): what they commit survives a power loss
(SQLite syncs each commit to disk), and its engines behave as SQLAlchemy's do."""

from __future__ import annotations

from pathlib import Path

from opentelemetry import trace
from sqlalchemy import Connection

from common.db import create_engine, transaction
from common.telemetry import Telemetry
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
    await engine.dispose()
    assert await transaction(engine, synchronous) == FULL
    await engine.dispose()
