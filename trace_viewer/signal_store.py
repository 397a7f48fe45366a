"""The store's logs and metrics: tables in the trace store's database (its schema version
covers them), written by the same writer thread, bounded like traces by count and bytes.

Log records are kept as their serialized messages, indexed by trace id (a trace's logs is
the one query); metric data points likewise, indexed by metric name and time, with the
series they belong to (for cumulative points, RED takes differences within a series) and,
for ``http.server.request.duration``, the operation and whether it was a server error.
Resources and scopes are the trace store's blobs, stored once each.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from trace_viewer.otlp_signals import LogRow, PointRow

SIGNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    service TEXT NOT NULL,
    severity INTEGER NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES blobs(id),
    scope_id INTEGER NOT NULL REFERENCES blobs(id),
    data BLOB NOT NULL
);
-- Records written outside any span (trace_id '') are kept and counted, never looked up.
CREATE INDEX IF NOT EXISTS logs_by_trace ON logs (trace_id, time_ns) WHERE trace_id != '';
CREATE TABLE IF NOT EXISTS metric_points (
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    temporality INTEGER NOT NULL,
    series BLOB NOT NULL,
    start_ns INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    operation TEXT NOT NULL,
    error INTEGER NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES blobs(id),
    scope_id INTEGER NOT NULL REFERENCES blobs(id),
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_points_by_name ON metric_points (name, time_ns);
CREATE INDEX IF NOT EXISTS metric_points_by_series ON metric_points (name, series, time_ns);
"""

#: One stored point for RED: service, operation, error, unit, temporality, series, start,
#: time, the serialized data point.
StoredPoint = tuple[str, str, int, str, int, bytes, int, int, bytes]
_POINT_COLUMNS = "service, operation, error, unit, temporality, series, start_ns, time_ns, data"


@dataclass(frozen=True)
class SignalLimits:
    """Oldest records (points) go beyond either bound."""

    max_log_records: int = 200_000
    max_log_bytes: int = 64 * 1024 * 1024
    max_metric_points: int = 200_000
    max_metric_bytes: int = 64 * 1024 * 1024


class SignalTables:
    """The logs and metrics half of :class:`~trace_viewer.store.TraceStore` (which provides
    the writer connection, its lock, readers and blobs)."""

    _writer: sqlite3.Connection
    _lock: threading.Lock
    signal_limits: SignalLimits
    _reader: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _blob_id: Callable[[bytes, str, Literal["resource", "scope"]], int]
    _blob_ids: dict[tuple[bytes, str], int]

    def _open_signals(self, limits: SignalLimits) -> None:
        self.signal_limits = limits
        self.logs_received = self.logs_rejected = self.logs_evicted = 0
        self.points_received = self.points_rejected = self.points_evicted = 0
        self._log_totals = list(
            self._writer.execute(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM logs"
            ).fetchone()
        )
        self._point_totals = list(
            self._writer.execute(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM metric_points"
            ).fetchone()
        )

    def _write(self, insert: Callable[[], None]) -> None:
        totals = (self._log_totals[:], self._point_totals[:])
        evicted = (self.logs_evicted, self.points_evicted)
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            insert()
            self._writer.execute("COMMIT")
        except BaseException:
            self._writer.execute("ROLLBACK")
            self._blob_ids.clear()
            # What the rolled-back batch added or evicted is not stored: nor is it counted.
            self._log_totals[:], self._point_totals[:] = totals
            self.logs_evicted, self.points_evicted = evicted
            raise

    def write_logs(self, rows: Sequence[LogRow], rejected: int = 0) -> None:
        """Store one batch of log records in one transaction, then enforce retention."""
        with self._lock:
            self.logs_received += len(rows) + rejected
            self.logs_rejected += rejected
            if not rows:
                return

            def insert() -> None:
                values = [
                    (
                        r.trace_id,
                        r.span_id,
                        r.time_ns,
                        r.service,
                        r.severity,
                        self._blob_id(r.resource, r.resource_schema_url, "resource"),
                        self._blob_id(r.scope, r.scope_schema_url, "scope"),
                        r.record,
                    )
                    for r in rows
                ]
                self._writer.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
                self._log_totals[0] += len(rows)
                self._log_totals[1] += sum(len(r.record) for r in rows)
                self.logs_evicted += self._evict(
                    "logs",
                    self._log_totals,
                    self.signal_limits.max_log_records,
                    self.signal_limits.max_log_bytes,
                )

            self._write(insert)

    def write_metrics(self, rows: Sequence[PointRow], rejected: int = 0) -> None:
        """Store one batch of data points in one transaction, then enforce retention."""
        with self._lock:
            self.points_received += len(rows) + rejected
            self.points_rejected += rejected
            if not rows:
                return

            def insert() -> None:
                values = [
                    (
                        r.service,
                        r.name,
                        r.unit,
                        r.kind,
                        r.temporality,
                        r.series,
                        r.start_ns,
                        r.time_ns,
                        r.operation,
                        int(r.error),
                        self._blob_id(r.resource, r.resource_schema_url, "resource"),
                        self._blob_id(r.scope, r.scope_schema_url, "scope"),
                        r.point,
                    )
                    for r in rows
                ]
                self._writer.executemany(
                    "INSERT INTO metric_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
                self._point_totals[0] += len(rows)
                self._point_totals[1] += sum(len(r.point) for r in rows)
                self.points_evicted += self._evict(
                    "metric_points",
                    self._point_totals,
                    self.signal_limits.max_metric_points,
                    self.signal_limits.max_metric_bytes,
                )

            self._write(insert)

    def _evict(self, table: str, totals: list[int], max_count: int, max_bytes: int) -> int:
        """Delete the oldest rows (by arrival) beyond either bound: at least a tenth of what
        is over, so that a full table is not trimmed one row per batch."""
        count, size = totals
        excess = count - max_count
        if size > max_bytes:
            excess = max(excess, int(count * (size - max_bytes) / size) + 1, count // 10)
        if excess <= 0:
            return 0
        (last, freed) = self._writer.execute(
            f"SELECT max(rowid), coalesce(sum(length(data)), 0) FROM "
            f"(SELECT rowid, data FROM {table} ORDER BY rowid LIMIT ?)",
            (excess,),
        ).fetchone()
        deleted = self._writer.execute(f"DELETE FROM {table} WHERE rowid <= ?", (last,)).rowcount
        totals[0] -= deleted
        totals[1] -= freed
        return int(deleted)

    # -- queries ---------------------------------------------------------------

    def logs(self, trace_id: str) -> list[tuple[bytes, str, bytes, str, bytes]]:
        """(resource, schema URL, scope, schema URL, record) of each log record of a trace,
        in time order."""
        with self._reader() as conn:
            return conn.execute(
                "SELECT r.data, r.schema_url, sc.data, sc.schema_url, l.data FROM logs l "
                "JOIN blobs r ON r.id = l.resource_id JOIN blobs sc ON sc.id = l.scope_id "
                "WHERE l.trace_id = ? AND l.trace_id != '' ORDER BY l.time_ns",
                (trace_id.lower(),),
            ).fetchall()

    def metric_points(
        self, name: str, start_ns: int, end_ns: int, service: str | None = None
    ) -> Iterator[StoredPoint]:
        """The points of metric ``name`` taken in [start_ns, end_ns], and, for each series,
        the last point before ``start_ns`` (the baseline a cumulative series' first
        difference in the window is taken from); in time order."""
        by_service = " AND service = ?" if service else ""
        extra: tuple[str, ...] = (service,) if service else ()
        with self._reader() as conn:
            baselines = conn.execute(
                f"SELECT {_POINT_COLUMNS}, max(time_ns) FROM metric_points "
                f"WHERE name = ? AND time_ns < ?{by_service} GROUP BY series",
                (name, start_ns, *extra),
            ).fetchall()
            window = conn.execute(
                f"SELECT {_POINT_COLUMNS} FROM metric_points WHERE name = ? "
                f"AND time_ns >= ? AND time_ns <= ?{by_service} ORDER BY time_ns",
                (name, start_ns, end_ns, *extra),
            ).fetchall()
        for row in sorted(baselines, key=lambda r: r[7]):
            yield tuple(row[:9])
        yield from window

    def signal_stats(self) -> dict[str, int]:
        return {
            "log_records_received": self.logs_received,
            "log_records_rejected": self.logs_rejected,
            "log_records_stored": self._log_totals[0],
            "log_records_evicted": self.logs_evicted,
            "metric_points_received": self.points_received,
            "metric_points_rejected": self.points_rejected,
            "metric_points_stored": self._point_totals[0],
            "metric_points_evicted": self.points_evicted,
        }
