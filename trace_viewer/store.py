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
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from common.faults import ATTR_INJECTED
from trace_viewer.dependencies import Call, address, peer_service
from trace_viewer.otlp import SpanRecord, StoredSpan, link_targets

logger = logging.getLogger(__name__)

KIND_SERVER, KIND_CLIENT = 2, 3  # OTLP Span.SpanKind

#: 0: the first release; 1: schema URLs on resources and scopes, injected-fault counts;
#: 2: the reverse index of span links; 3: operations with their span kind, the service
#: graph's indexes.
SCHEMA_VERSION = 3

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
-- Operations with their span kind (GET /api/v3/operations) read this index alone.
CREATE INDEX IF NOT EXISTS spans_by_operation ON spans (service, name, kind);
-- The failed CLIENT spans by start: the calls a callee may never have answered (the
-- service graph, TraceStore.calls). Partial, so it holds only those.
CREATE INDEX IF NOT EXISTS spans_by_failed_call
    ON spans (start_ns) WHERE kind = 3 AND status_code = 2;
-- One row per answered call, a CLIENT span and its SERVER child, added with the batch that
-- stores the second of the two: the service graph reads this table and not the spans,
-- whose rows for a day of calls are hundreds of MB read at random.
CREATE TABLE IF NOT EXISTS calls (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    failed INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_by_start
    ON calls (start_ns, parent, child, failed, duration_ns);
-- SERVER spans whose parent has not arrived yet (a service exports its spans when they end,
-- so a callee's usually come first): the calls its CLIENT span will complete.
CREATE TABLE IF NOT EXISTS awaited_calls (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    child TEXT NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
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

# Version 2 → 3, after SCHEMA: the calls already stored (CLIENT spans with a SERVER child),
# and the SERVER spans whose parent has not arrived.
_BACKFILL_CALLS = (
    """INSERT OR IGNORE INTO calls
    SELECT c.trace_id, c.span_id, c.start_ns, c.service, s.service, s.status_code = 2,
           c.end_ns - c.start_ns
    FROM spans s JOIN spans c ON c.trace_id = s.trace_id AND c.span_id = s.parent_span_id
    WHERE s.kind = 2 AND c.kind = 3""",
    """INSERT OR IGNORE INTO awaited_calls
    SELECT s.trace_id, s.parent_span_id, s.service, s.status_code = 2 FROM spans s
    WHERE s.kind = 2 AND trim(s.parent_span_id, '0') != '' AND NOT EXISTS
        (SELECT 1 FROM spans c WHERE c.trace_id = s.trace_id AND c.span_id = s.parent_span_id)""",
)

# Version 0 → 1: new columns at the end (as a fresh database has them), then the injected
# faults of the spans already stored, found by their attribute.
_MIGRATE_V1 = """
ALTER TABLE blobs ADD COLUMN schema_url TEXT NOT NULL DEFAULT '';
ALTER TABLE spans ADD COLUMN fault INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN fault_count INTEGER NOT NULL DEFAULT 0;
"""

# Version 1 → 2 only adds the links table, which SCHEMA creates; _backfill_links fills it.

# Version 2 → 3: the operations index gains the span kind (SCHEMA creates it, the calls
# tables and the failed-call index), then _BACKFILL_CALLS finds the calls stored so far.
_MIGRATE_V3 = """
DROP INDEX IF EXISTS spans_by_service;
"""

#: Each version's step, applied in order to a database older than it.
_MIGRATIONS = ((1, _MIGRATE_V1), (3, _MIGRATE_V3))


def _call_row(client: SpanRecord, child: str, failed: bool) -> tuple[object, ...]:
    """A row of ``calls``: the CLIENT span, the service that answered, whether it failed."""
    return (
        client.trace_id,
        client.span_id,
        client.start_ns,
        client.service,
        child,
        failed,
        client.end_ns - client.start_ns,
    )


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
        steps = [script for step, script in _MIGRATIONS if existing and version < step]
        # executescript runs the whole script; the transaction it opens stays open for the
        # backfills below.
        conn.executescript(
            "BEGIN IMMEDIATE;"
            + "".join(steps)
            + SCHEMA
            + f"PRAGMA user_version = {SCHEMA_VERSION};"
        )
        try:
            if existing and version < 1:
                self._backfill_faults()
            if existing and version < 2:  # SCHEMA made the links table
                self._backfill_links()
            if existing and version < 3:
                for statement in _BACKFILL_CALLS:
                    conn.execute(statement)
            if existing and version < SCHEMA_VERSION:
                logger.info(
                    "migrated %s from schema version %d to %d", self.path, version, SCHEMA_VERSION
                )
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
                self._add_calls(spans)
                self._enforce_retention()
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._blob_ids.clear()  # the rolled-back blobs are gone
                raise

    def _add_calls(self, spans: Sequence[SpanRecord]) -> None:
        """The calls this batch completes: a CLIENT span and its SERVER child, whichever of
        the two is stored first (the SERVER span waits in ``awaited_calls``). A few
        statements per batch, never a read of whole traces: this runs for every batch."""
        clients = {(s.trace_id, s.span_id): s for s in spans if s.kind == KIND_CLIENT}
        servers = {
            (s.trace_id, s.parent_span_id): s
            for s in spans
            if s.kind == KIND_SERVER and s.parent_span_id.strip("0")  # not a root
        }
        calls = [
            _call_row(client, server.service, server.status_code == 2)
            for key, server in servers.items()
            if (client := clients.get(key)) is not None
        ]
        # SERVER spans whose parent came in an earlier batch, or has yet to come.
        earlier = [key for key in servers if key not in clients]
        awaited = []
        parents = self._spans(earlier)
        for key in earlier:
            server, parent = servers[key], parents.get(key)
            if parent is None:
                awaited.append((*key, server.service, server.status_code == 2))
            elif parent[0] == KIND_CLIENT:
                _, service, start, end = parent
                calls.append(
                    (*key, start, service, server.service, server.status_code == 2, end - start)
                )
        # CLIENT spans whose SERVER child came in an earlier batch.
        answered = self._awaited(list(clients))
        calls += [
            _call_row(clients[key], child, bool(failed))
            for key, (child, failed) in answered.items()
        ]
        write = self._writer.executemany
        write("INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)", calls)
        write("INSERT OR IGNORE INTO awaited_calls VALUES (?, ?, ?, ?)", awaited)
        write("DELETE FROM awaited_calls WHERE trace_id = ? AND span_id = ?", list(answered))

    def _spans(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        """(kind, service, start_ns, end_ns) of the stored spans with these (trace id, span
        id), by id: one index lookup each, in one statement per 400."""
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            # CROSS JOIN: the ids drive, each looked up by spans_by_id (a row-value IN would
            # scan the table).
            for trace_id, span_id, *row in self._writer.execute(
                "SELECT s.trace_id, s.span_id, s.kind, s.service, s.start_ns, s.end_ns "
                f"FROM (VALUES {', '.join(['(?, ?)'] * len(chunk))}) v CROSS JOIN spans s "
                "ON s.trace_id = v.column1 AND s.span_id = v.column2",
                [part for key in chunk for part in key],
            ):
                found[(trace_id, span_id)] = tuple(row)
        return found

    def _awaited(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
        """(child, failed) of the awaited calls of these CLIENT spans, by id. The table is
        small: one statement reads what it holds for the batch's traces."""
        wanted = set(keys)
        traces = sorted({trace_id for trace_id, _ in keys})
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        for i in range(0, len(traces), 500):
            chunk = traces[i : i + 500]
            for trace_id, span_id, *row in self._writer.execute(
                "SELECT trace_id, span_id, child, failed FROM awaited_calls "
                f"WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                if (trace_id, span_id) in wanted:
                    found[(trace_id, span_id)] = tuple(row)
        return found

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
        for table in ("links", "calls", "awaited_calls"):
            self._writer.executemany(
                f"DELETE FROM {table} WHERE trace_id = ?", [(t,) for t in oldest]
            )
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

    def operations(
        self, service: str, kinds: Collection[int] | None = None
    ) -> list[tuple[str, int]]:
        """(name, OTLP span kind) of each operation of a service, by name then kind; only
        those of ``kinds`` when given."""
        if kinds is not None and not kinds:
            return []
        where, params = "service = ?", [service, *(kinds or ())]
        if kinds is not None:
            where += f" AND kind IN ({', '.join('?' * len(kinds))})"
        with self._reader() as conn:
            return conn.execute(
                f"SELECT DISTINCT name, kind FROM spans WHERE {where} ORDER BY name, kind", params
            ).fetchall()

    def calls(self, start_ns: int, end_ns: int) -> list[tuple[str, str, int, int]]:
        """Every call whose CLIENT span started in ``[start_ns, end_ns]``, as (parent,
        child, failed, duration_ns), for the service graph (:mod:`trace_viewer.dependencies`
        says what a call is): the answered ones from the ``calls`` table, then the failed
        CLIENT spans no SERVER span answered, read one by one to name the service they
        called."""
        with self._reader() as conn:
            calls: list[tuple[str, str, int, int]] = conn.execute(
                "SELECT parent, child, failed, duration_ns FROM calls "
                "INDEXED BY calls_by_start WHERE start_ns BETWEEN ? AND ?",
                (start_ns, end_ns),
            ).fetchall()
            unanswered = conn.execute(
                "SELECT c.service, c.end_ns - c.start_ns, c.data FROM spans c "
                "INDEXED BY spans_by_failed_call "
                "WHERE c.kind = 3 AND c.status_code = 2 AND c.start_ns BETWEEN ? AND ? "
                "AND NOT EXISTS (SELECT 1 FROM calls k "
                "WHERE k.trace_id = c.trace_id AND k.span_id = c.span_id)",
                (start_ns, end_ns),
            ).fetchall()
            if unanswered:
                calls += self._unanswered(conn, start_ns, end_ns, unanswered)
        return calls

    @staticmethod
    def _unanswered(
        conn: sqlite3.Connection, start_ns: int, end_ns: int, failed: list[tuple[str, int, bytes]]
    ) -> list[Call]:
        """Failed CLIENT spans without an answer, as calls to the service they addressed:
        its ``peer.service``, else the service one answered call of each edge in the window
        reached at the same address, else the address."""
        services: dict[str, str] = {}
        for child, data in conn.execute(
            # One answered call per edge (SQLite takes the bare columns from one row).
            "SELECT k.child, s.data FROM (SELECT child, trace_id, span_id FROM calls "
            "WHERE start_ns BETWEEN ? AND ? GROUP BY parent, child) k "
            "JOIN spans s ON s.trace_id = k.trace_id AND s.span_id = k.span_id",
            (start_ns, end_ns),
        ):
            at = address(Span.FromString(data))
            if at:
                services.setdefault(at, child)
        calls = []
        for parent, duration, data in failed:
            client = Span.FromString(data)
            at = address(client)
            callee = peer_service(client) or (services.get(at, at) if at else None)
            if callee:
                calls.append(Call(parent, callee, 1, duration))
        return calls

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
