"""The viewer's store as earlier releases wrote it, for the migration tests: each version's
schema as that release created it, and a database of such a version made from spans the
current store wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Version 0, the first release: before schema URLs and injected-fault counts.
SCHEMA_V0 = """
CREATE TABLE blobs (id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, data BLOB NOT NULL);
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL, service TEXT NOT NULL, kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, status_code INTEGER NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES blobs(id),
    scope_id INTEGER NOT NULL REFERENCES blobs(id), data BLOB NOT NULL
);
CREATE UNIQUE INDEX spans_by_id ON spans (trace_id, span_id);
CREATE INDEX spans_by_service ON spans (service, name);
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY, start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL, error_count INTEGER NOT NULL, root_name TEXT NOT NULL,
    root_service TEXT NOT NULL, services TEXT NOT NULL, bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX traces_by_start ON traces (start_ns);
"""

# Version 1: schema URLs on blobs, injected faults on spans and traces; before the links.
SCHEMA_V1 = (
    SCHEMA_V0.replace(
        "data BLOB NOT NULL);", "data BLOB NOT NULL, schema_url TEXT NOT NULL DEFAULT '');"
    )
    .replace(
        "scope_id INTEGER NOT NULL REFERENCES blobs(id), data BLOB NOT NULL\n",
        "scope_id INTEGER NOT NULL REFERENCES blobs(id), data BLOB NOT NULL,\n"
        "    fault INTEGER NOT NULL DEFAULT 0\n",
    )
    .replace(
        "bytes INTEGER NOT NULL\n",
        "bytes INTEGER NOT NULL, fault_count INTEGER NOT NULL DEFAULT 0\n",
    )
    + "PRAGMA user_version = 1;"
)

_V1_COLUMNS = {
    "blobs": "id, hash, data, schema_url",
    "spans": "trace_id, span_id, parent_span_id, name, service, kind, start_ns, end_ns, "
    "status_code, resource_id, scope_id, data, fault",
    "traces": "trace_id, start_ns, duration_ns, span_count, error_count, root_name, "
    "root_service, services, bytes, fault_count",
}


def as_version_1(current: Path, old: Path) -> None:
    """Write at ``old`` the version-1 database holding what the store at ``current`` holds
    (closed), as that release would have stored it."""
    with sqlite3.connect(old) as conn:
        conn.executescript(SCHEMA_V1)
        conn.execute("ATTACH DATABASE ? AS current", (str(current),))
        for table, columns in _V1_COLUMNS.items():
            conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM current.{table}")
    conn.close()


def as_version_6(path: Path) -> None:
    """Make the (closed) current database at ``path`` what version 6 left: the same, its
    attribute index keyed by attribute first, without the generations version 7 added."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "ALTER TABLE span_attributes RENAME TO v7;"
            "CREATE TABLE span_attributes (key INTEGER NOT NULL, span INTEGER NOT NULL, "
            "PRIMARY KEY (key, span)) WITHOUT ROWID;"
            "INSERT INTO span_attributes SELECT key, span FROM v7; DROP TABLE v7;"
            "PRAGMA user_version = 6;"
        )
    conn.close()


def as_version_5(path: Path) -> None:
    """Make the (closed) current database at ``path`` what version 5 left: version 6's, less
    the traces' root keys that version 6 added (its summaries otherwise the same)."""
    as_version_6(path)
    with sqlite3.connect(path) as conn:
        conn.executescript("ALTER TABLE traces DROP COLUMN root_key; PRAGMA user_version = 5;")
    conn.close()


def as_version_4(path: Path) -> None:
    """Make the (closed) current database at ``path`` what version 4 left: version 5's, less
    the tables of log records and metric data points that version 5 added."""
    as_version_5(path)
    with sqlite3.connect(path) as conn:
        conn.executescript("DROP TABLE logs; DROP TABLE metric_points; PRAGMA user_version = 4;")
    conn.close()
