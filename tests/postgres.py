"""A throwaway PostgreSQL cluster on a loopback port, from the machine's PostgreSQL
(tests/system_tools.py finds it: Debian's postgresql package, or an initdb on PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ordersim.testing.processes import free_port


@contextmanager
def throwaway_cluster(initdb: str) -> Iterator[str]:
    """Start a cluster (trust auth, fsync off) with the ``initdb`` given and the ``pg_ctl``
    beside it, and yield its SQLAlchemy base URL."""
    bin_ = Path(initdb).parent
    # The server refuses to run as root; as root, run it as the package's postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="ordersim-pg-"))
    data, log = root / "data", root / "server.log"
    if as_user:
        shutil.chown(root, "postgres")
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    try:
        run(str(bin_ / "initdb"), "-D", str(data), "-U", "ordersim", "--auth=trust", "-E", "UTF8")
        run(
            str(bin_ / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "30",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
            "-c synchronous_commit=off -c max_connections=300",
            "start",
        )
        yield f"postgresql+asyncpg://ordersim@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            run(str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


async def create_databases(base_url: str, names: list[str]) -> dict[str, str]:
    """Fresh databases on the cluster; returns name -> SQLAlchemy URL."""
    import asyncpg

    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return {name: f"{base_url}/{name}" for name in names}
