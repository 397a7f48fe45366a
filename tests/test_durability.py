"""What the services commit survives a power loss: SQLite syncs each commit to disk."""

from __future__ import annotations

from sqlalchemy import Connection

from common.db import transaction
from tests.conftest import System

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
