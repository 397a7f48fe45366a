"""The trace store: SQLite under ORDERSIM_DATA_DIR, bounded by trace count and bytes.

Spans are kept as their serialized protobuf messages beside the fields the queries index
(trace id, service, name, start, duration, error, injected fault). Resources and scopes are
stored once each, with the schema URL they came with. Writes go through one writer thread,
a batch per export request in one transaction; reads open their own connections (WAL).

The schema has a version (``PRAGMA user_version``); a database of an older version is
migrated in place when the store opens it.

Written on the standard library's sqlite3 rather than SQLAlchemy: the store is SQLite by
design, its hot path is one ``executemany`` per batch, and it runs in its own thread, so
an ORM or async driver would only add per-row overhead.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from common.faults import ATTR_INJECTED
from trace_viewer.otlp import SpanRecord, StoredSpan, link_targets

logger = logging.getLogger(__name__)

#: 0: the first release; 1: schema URLs on resources and scopes, injected-fault counts;
#: 2: the reverse index of span links.
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL,
    schema_url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    resource_id INTEGER NOT NULL REFERENCES blobs(id),
    scope_id INTEGER NOT NULL REFERENCES blobs(id),
    data BLOB NOT NULL,
    fault INTEGER NOT NULL DEFAULT 0
);
-- A rowid table, not WITHOUT ROWID keyed by the random trace id: span rows are large, and
-- keyed by trace id every batch rewrote pages all over the table (bench/ingest.py: 20k spans/s
-- then, 33k now). New spans now append; only this index takes the random keys.
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_id ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_by_service ON spans (service, name);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    start_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    root_name TEXT NOT NULL,
    root_service TEXT NOT NULL,
    services TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    fault_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces (duration_ns);
CREATE INDEX IF NOT EXISTS traces_by_error ON traces (error_count);
-- The reverse index of span links: span (trace_id, span_id) links to span (linked_trace_id,
-- linked_span_id). A link points backward (a compensation retry to the order span that
-- deferred it); this finds it forward. Filled at ingest, deleted with the linking trace.
CREATE TABLE IF NOT EXISTS links (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    linked_trace_id TEXT NOT NULL,
    linked_span_id TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id, linked_trace_id, linked_span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_target ON links (linked_trace_id, linked_span_id);
"""

# The links of a span that is stored as given: a span delivered again with other content
# (and so other links) is not stored again, and its links are not indexed.
_INDEX_LINK = """
INSERT OR IGNORE INTO links
SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM spans WHERE trace_id = ? AND span_id = ? AND data = ?)
"""

# One summary row per touched trace, recomputed from its spans (so a span delivered twice
# by a retrying exporter is counted once). The root is the span without a parent, or,
# while it has not arrived, the earliest one.
_SUMMARISE = """
INSERT OR REPLACE INTO traces
SELECT s.trace_id, min(s.start_ns), max(s.end_ns) - min(s.start_ns), count(*),
       sum(s.status_code = 2),
       (SELECT r.name FROM spans r WHERE r.trace_id = s.trace_id
        ORDER BY r.parent_span_id != '', r.start_ns LIMIT 1),
       (SELECT r.service FROM spans r WHERE r.trace_id = s.trace_id
        ORDER BY r.parent_span_id != '', r.start_ns LIMIT 1),
       group_concat(DISTINCT s.service), sum(length(s.data)), sum(s.fault)
FROM spans s WHERE s.trace_id = ? GROUP BY s.trace_id
"""

# Version 0 → 1: new columns at the end (as a fresh database has them), then the injected
# faults of the spans already stored, found by their attribute.
_MIGRATE_V1 = """
ALTER TABLE blobs ADD COLUMN schema_url TEXT NOT NULL DEFAULT '';
ALTER TABLE spans ADD COLUMN fault INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN fault_count INTEGER NOT NULL DEFAULT 0;
"""


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    start_ns: int
    duration_ns: int
    span_count: int
    error_count: int
    root_name: str
    root_service: str
    services: list[str]
    #: Spans an injected fault touched (``ordersim.fault.injected``), apart from errors.
    fault_count: int = 0


@dataclass(frozen=True)
class LinkingSpan:
    """A span of another trace that links to a span of this one."""

    trace_id: str
    span_id: str
    #: The span of this trace it links to.
    linked_span_id: str
    name: str
    service: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    #: Its trace's root (as the trace list names it).
    root_name: str
    root_service: str


@dataclass(frozen=True)
class Limits:
    max_traces: int
    max_bytes: int


class TraceStore:
    """``store.write(records)`` from one thread at a time; queries from any thread."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._open_schema()
        self._blob_ids: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self.spans_received = 0
        self.spans_rejected = 0
        self.spans_repaired = 0
        self.traces_evicted = 0

    def _open_schema(self) -> None:
        """Create the tables, or bring an older database up to this version in place, in
        one transaction."""
        conn = self._writer
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (existing,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'"
        ).fetchone()
        migrate = bool(existing) and version < 1
        # executescript runs the whole script; the transaction it opens stays open for the
        # backfills below.
        conn.executescript(
            "BEGIN IMMEDIATE;"
            + (_MIGRATE_V1 if migrate else "")
            + SCHEMA
            + f"PRAGMA user_version = {SCHEMA_VERSION};"
        )
        try:
            if migrate:
                self._backfill_faults()
            if existing and version < 2:  # SCHEMA made the links table
                self._backfill_links()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _backfill_faults(self) -> None:
        """Mark the injected faults of the spans a version-0 database holds."""
        conn = self._writer
        faulted = [
            rowid
            for rowid, data in conn.execute(
                "SELECT rowid, data FROM spans WHERE instr(data, ?) > 0",
                (ATTR_INJECTED.encode(),),
            )
            if any(
                kv.key == ATTR_INJECTED and kv.value.bool_value
                for kv in Span.FromString(data).attributes
            )
        ]
        conn.executemany("UPDATE spans SET fault = 1 WHERE rowid = ?", [(r,) for r in faulted])
        conn.execute(
            "UPDATE traces SET fault_count = (SELECT sum(s.fault) FROM spans s "
            "WHERE s.trace_id = traces.trace_id) WHERE trace_id IN "
            "(SELECT DISTINCT trace_id FROM spans WHERE fault = 1)"
        )
        logger.info(
            "migrated %s to schema version 1 (%d spans with an injected fault)",
            self.path,
            len(faulted),
        )

    def _backfill_links(self) -> None:
        """Index the links of the spans a database of version 1 or older holds."""
        conn = self._writer
        # A span with links holds the tag byte of field 13 (links), length-delimited: 0x6a.
        # Most spans do not, and are not decoded.
        rows = [
            (trace_id, span_id, *target)
            for trace_id, span_id, data in conn.execute(
                "SELECT trace_id, span_id, data FROM spans WHERE instr(data, x'6a') > 0"
            )
            for target in link_targets(Span.FromString(data)) or ()
        ]
        conn.executemany("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?)", rows)
        logger.info("migrated %s to schema version 2 (%d span links)", self.path, len(rows))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def _blob_id(self, data: bytes, schema_url: str) -> int:
        # Without a schema URL the hash is the data's alone, as in version 0 of the schema.
        digest = hashlib.sha1(
            data + b"\0schema_url\0" + schema_url.encode() if schema_url else data
        ).digest()
        cached = self._blob_ids.get(digest)
        if cached is not None:
            return cached
        self._writer.execute(
            "INSERT OR IGNORE INTO blobs (hash, data, schema_url) VALUES (?, ?, ?)",
            (digest, data, schema_url),
        )
        (blob_id,) = self._writer.execute(
            "SELECT id FROM blobs WHERE hash = ?", (digest,)
        ).fetchone()
        self._blob_ids[digest] = blob_id
        return int(blob_id)

    def write(self, spans: Sequence[SpanRecord], rejected: int = 0, repaired: int = 0) -> None:
        """Store one batch in one transaction, then enforce retention. ``rejected`` spans
        were refused at intake, ``repaired`` of ``spans`` stored after a repair."""
        with self._lock:
            self.spans_received += len(spans) + rejected
            self.spans_rejected += rejected
            self.spans_repaired += repaired
            if not spans:
                return
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                rows = [
                    (
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.service,
                        s.kind,
                        s.start_ns,
                        s.end_ns,
                        s.status_code,
                        self._blob_id(s.resource, s.resource_schema_url),
                        self._blob_id(s.scope, s.scope_schema_url),
                        s.span,
                        int(s.fault),
                    )
                    for s in spans
                ]
                self._writer.executemany(
                    "INSERT OR IGNORE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._writer.executemany(
                    _INDEX_LINK,
                    [
                        (s.trace_id, s.span_id, *target, s.trace_id, s.span_id, s.span)
                        for s in spans
                        if s.links
                        for target in s.links
                    ],
                )
                self._writer.executemany(_SUMMARISE, [(t,) for t in {s.trace_id for s in spans}])
                self._enforce_retention()
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._blob_ids.clear()  # the rolled-back blobs are gone
                raise

    def _enforce_retention(self) -> None:
        count, size = self._writer.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM traces"
        ).fetchone()
        excess = count - self.limits.max_traces
        if size > self.limits.max_bytes:
            # Drop the oldest tenth of what is over, at least one trace, in one go.
            excess = max(
                excess, int(count * (size - self.limits.max_bytes) / size) + 1, count // 10
            )
        if excess <= 0:
            return
        oldest = [
            row[0]
            for row in self._writer.execute(
                "SELECT trace_id FROM traces ORDER BY start_ns LIMIT ?", (excess,)
            )
        ]
        self._writer.executemany("DELETE FROM spans WHERE trace_id = ?", [(t,) for t in oldest])
        self._writer.executemany("DELETE FROM traces WHERE trace_id = ?", [(t,) for t in oldest])
        self._writer.executemany("DELETE FROM links WHERE trace_id = ?", [(t,) for t in oldest])
        self.traces_evicted += len(oldest)

    # -- queries ---------------------------------------------------------------

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """(resource, schema URL, scope, schema URL, span) of each span of a trace, in start
        order; [] when unknown."""
        with self._reader() as conn:
            return conn.execute(
                "SELECT r.data, r.schema_url, sc.data, sc.schema_url, s.data FROM spans s "
                "JOIN blobs r ON r.id = s.resource_id JOIN blobs sc ON sc.id = s.scope_id "
                "WHERE s.trace_id = ? ORDER BY s.start_ns",
                (trace_id.lower(),),
            ).fetchall()

    def summaries(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        min_duration_ns: int = 0,
        errors_only: bool = False,
        limit: int = 50,
    ) -> list[TraceSummary]:
        """Newest first, filtered like Jaeger's search: a span of that service/operation."""
        where = ["t.duration_ns >= ?"]
        params: list[object] = [min_duration_ns]
        if errors_only:
            where.append("t.error_count > 0")
        if service or operation:
            span_where = ["s.trace_id = t.trace_id"]
            if service:
                span_where.append("s.service = ?")
                params.append(service)
            if operation:
                span_where.append("s.name = ?")
                params.append(operation)
            where.append(f"EXISTS (SELECT 1 FROM spans s WHERE {' AND '.join(span_where)})")
        params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT trace_id, start_ns, duration_ns, span_count, error_count, root_name, "
                f"root_service, services, fault_count FROM traces t WHERE {' AND '.join(where)} "
                "ORDER BY start_ns DESC LIMIT ?",
                params,
            ).fetchall()
        return [
            TraceSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], sorted(r[7].split(",")), r[8])
            for r in rows
        ]

    def linking_spans(self, trace_id: str, limit: int = 100) -> list[LinkingSpan] | None:
        """The spans of other traces that link to spans of this one, oldest first; None when
        the trace is not stored."""
        trace_id = trace_id.lower()
        with self._reader() as conn:
            if not conn.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone():
                return None
            rows = conn.execute(
                "SELECT s.trace_id, s.span_id, l.linked_span_id, s.name, s.service, s.kind, "
                "s.start_ns, s.end_ns, s.status_code, coalesce(t.root_name, ''), "
                "coalesce(t.root_service, '') FROM links l "
                "JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id "
                "LEFT JOIN traces t ON t.trace_id = l.trace_id "
                "WHERE l.linked_trace_id = ? AND l.trace_id != ? "
                "ORDER BY s.start_ns, s.trace_id, s.span_id LIMIT ?",
                (trace_id, trace_id, limit),
            ).fetchall()
        return [LinkingSpan(*row) for row in rows]

    def services(self) -> list[str]:
        with self._reader() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT service FROM spans ORDER BY 1")]

    def operations(self, service: str) -> list[str]:
        with self._reader() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT name FROM spans WHERE service = ? ORDER BY 1", (service,)
                )
            ]

    def stats(self) -> dict[str, int]:
        with self._reader() as conn:
            traces, spans = conn.execute(
                "SELECT count(*), coalesce(sum(span_count), 0) FROM traces"
            ).fetchone()
        return {
            "spans_received": self.spans_received,
            "spans_rejected": self.spans_rejected,
            "spans_repaired": self.spans_repaired,
            "traces_stored": traces,
            "spans_stored": spans,
            "traces_evicted": self.traces_evicted,
        }

    def close(self) -> None:
        with self._lock:
            self._writer.close()
