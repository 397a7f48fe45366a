"""The trace store: SQLite under ORDERSIM_DATA_DIR, bounded by trace count and bytes.

Spans are kept as their serialized protobuf messages beside the fields the queries index
(trace id, service, name, start, duration, error, injected fault). Resources and scopes are
stored once each, with the schema URL they came with. Writes go through one writer thread,
a batch per export request in one transaction; reads open their own connections (WAL).

The schema has a version (``PRAGMA user_version``); a database of an older version is
migrated in place when the store opens it.

Search is Jaeger's: a trace matches when one of its spans meets every condition (service,
operation, duration, start time, attributes). Attributes are found through an inverted
index, ``span_attributes`` (generation, key, span) filled at ingest from each span's
attributes and its events' and links' (keyed as :mod:`trace_viewer.attributes` says), and
``blob_attributes`` for the attributes of resources and scopes. :meth:`TraceStore.search`
picks, per query, whether to walk the traces newest first or to start from the index (see
there).

Written on the standard library's sqlite3 rather than SQLAlchemy: the store is SQLite by
design, its hot path is one ``executemany`` per batch, and it runs in its own thread, so
an ORM or async driver would only add per-row overhead.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import threading
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from common.fault_rules import ATTR_INJECTED
from trace_viewer.attributes import attribute_key, attribute_keys
from trace_viewer.dependencies import Call, address, peer_service
from trace_viewer.otlp import SpanRecord, StoredSpan, index_span, link_targets
from trace_viewer.signal_store import SIGNAL_SCHEMA, SignalLimits, SignalTables

logger = logging.getLogger(__name__)

KIND_SERVER, KIND_CLIENT = 2, 3  # OTLP Span.SpanKind

#: 0: the first release; 1: schema URLs on resources and scopes, injected-fault counts;
#: 2: the reverse index of span links; 3: operations with their span kind, the service
#: graph's indexes; 4: the attribute index, outcomes (root HTTP status, order status) and
#: real-error counts; 5: log records and metric data points (:mod:`.signal_store`); 6: each
#: trace's root key, so that a batch merges into its summary (TraceSummaryRow); 7: the
#: attribute index keyed by the span's generation first.
SCHEMA_VERSION = 7

#: A generation of the attribute index: 8,192 spans in a row (by rowid). At the store's cap
#: (~600,000 spans) a search by attribute seeks ~70 generations: an order id's search took
#: 1-2 ms keyed by attribute first, 2.5-4.5 ms so (4,096 spans: 7-10 ms), and a batch writes
#: 0.39 of the index's pages per span (4,096: 0.28; by attribute first: 1.10).
GENERATION_BITS = 13


def _live_generations() -> str:
    """The generations that hold spans, for ``a.gen IN (…)``: from the oldest span's to the
    newest's, each one seek in span_attributes."""
    return (
        "(WITH RECURSIVE g(n) AS ("
        f"SELECT (SELECT min(rowid) FROM spans) >> {GENERATION_BITS} UNION ALL "
        f"SELECT n + 1 FROM g WHERE n < (SELECT max(rowid) FROM spans) >> {GENERATION_BITS}"
        ") SELECT n FROM g)"
    )


#: The writer connection's page cache, KiB (TraceStore.__init__ says why).
WRITER_CACHE_KIB = 64 * 1024

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
    fault INTEGER NOT NULL DEFAULT 0,
    attribute_keys BLOB NOT NULL DEFAULT x'',
    http_status INTEGER,
    order_status TEXT
);
-- A rowid table, not WITHOUT ROWID keyed by the random trace id: span rows are large, and
-- keyed by trace id every batch rewrote pages all over the table (bench/ingest.py: 20k spans/s
-- then, 33k now). New spans now append; only this index takes the random keys.
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_id ON spans (trace_id, span_id);
-- Operations with their span kind (GET /api/v3/operations) read this index alone; the
-- search reads it for an operation in any service.
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
-- Jaeger UI's favourite tag, error=true: the few ERROR spans, by service.
CREATE INDEX IF NOT EXISTS spans_by_error ON spans (service) WHERE status_code = 2;
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
    fault_count INTEGER NOT NULL DEFAULT 0,
    real_error_count INTEGER NOT NULL DEFAULT 0,
    root_status INTEGER,
    order_status TEXT,
    min_span_ns INTEGER NOT NULL DEFAULT 0,
    root_key TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces (duration_ns);
CREATE INDEX IF NOT EXISTS traces_by_error ON traces (error_count);
-- The attribute index: which spans (by rowid) carry an attribute, keyed by
-- trace_viewer.attributes.attribute_key. Each span keeps its keys (spans.attribute_keys), so
-- that retention deletes exactly its rows. Keyed first by the span's generation (its rowid
-- >> GENERATION_BITS, spans stored in a row share one), so that a batch's rows go to the
-- newest generation's pages and retention's to the oldest's: keyed by attribute first,
-- every batch wrote pages all over the index (half the pages a batch wrote at the cap). A
-- search by attribute seeks each live generation (_live_generations).
CREATE TABLE IF NOT EXISTS span_attributes (
    gen INTEGER NOT NULL,
    key INTEGER NOT NULL,
    span INTEGER NOT NULL,
    PRIMARY KEY (gen, key, span)
) WITHOUT ROWID;
-- The same for the attributes of resources and scopes (blobs, which are never evicted).
CREATE TABLE IF NOT EXISTS blob_attributes (
    key INTEGER NOT NULL,
    blob INTEGER NOT NULL,
    PRIMARY KEY (key, blob)
) WITHOUT ROWID;
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

# The summary of each trace, from those of its spans that ``{spans}`` lists (``s``), one
# row per trace, merged with what the trace's row already says by TraceSummaryRow.merge. The
# root is the span without a parent, or, while it has not arrived, the earliest one: the
# least of a text key that sorts as (has a parent, start, rowid) (timestamps and rowids are
# non-negative, so zero-padded digits sort as numbers), kept in the row (root_key) so that a
# later batch's spans are weighed against it, and its row is read by rowid. The order status
# is what order-service's place_order span says.
_AGGREGATE = """
SELECT t.trace_id, t.start_ns, t.end_ns, t.span_count, t.error_count, t.services, t.bytes,
       t.fault_count, t.order_status, t.min_span_ns, t.root_key, root.name, root.service,
       root.http_status
FROM (
    SELECT s.trace_id, min(s.start_ns) AS start_ns, max(s.end_ns) AS end_ns,
           count(*) AS span_count, sum(s.status_code = 2) AS error_count,
           group_concat(DISTINCT s.service) AS services, sum(length(s.data)) AS bytes,
           sum(s.fault) AS fault_count, max(s.order_status) AS order_status,
           min(s.end_ns - s.start_ns) AS min_span_ns,
           min(printf('%d%020d%020d', s.parent_span_id != '', s.start_ns, s.rowid)) AS root_key
    FROM {spans} GROUP BY s.trace_id
) t
JOIN spans root ON root.rowid = CAST(substr(t.root_key, 22) AS INTEGER)
"""

# Real errors, in a trace with an injected fault (?1): ERROR spans that are neither touched
# by a fault nor an ancestor of one (a caller failing because of it: the CLIENT span,
# place_order, POST /orders); the same rule as the trace page's (static/trace/model.js,
# faultCaused). It walks the trace's spans, so it runs only for the few traces with a fault:
# in the others every error is real.
_COUNT_REAL_ERRORS = """
UPDATE traces SET real_error_count = (
    WITH RECURSIVE caused (span_id) AS (
        SELECT f.span_id FROM spans f WHERE f.trace_id = ?1 AND f.fault
        UNION  -- not UNION ALL: a parent cycle ends
        SELECT p.parent_span_id FROM caused c
        JOIN spans p ON p.trace_id = ?1 AND p.span_id = c.span_id
    )
    SELECT count(*) FROM spans e WHERE e.trace_id = ?1 AND e.status_code = 2
        AND e.span_id NOT IN caused
) WHERE trace_id = ?1
"""

_TRACE_ROW_COLUMNS = (
    "trace_id, start_ns, duration_ns, span_count, error_count, services, bytes, fault_count, "
    "order_status, min_span_ns, root_key, root_name, root_service, root_status"
)


@dataclass(slots=True)
class TraceSummaryRow:
    """A trace's row of ``traces`` as the writer merges it, batch by batch: each batch adds
    the summary of the spans it stored (a span sent again is not stored again, so not
    counted again). Every field but the real errors merges without the trace's other spans
    (a minimum, a maximum, a sum, a set, the least root key); the real errors are counted
    afresh in a trace with a fault (_COUNT_REAL_ERRORS) and equal the errors otherwise."""

    trace_id: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int
    services: set[str]
    bytes: int
    fault_count: int
    order_status: str | None
    min_span_ns: int
    root_key: str
    root_name: str
    root_service: str
    root_status: int | None

    @classmethod
    def of(cls, row: Sequence[Any]) -> TraceSummaryRow:
        """From a row of _AGGREGATE, or of ``traces`` (_TRACE_ROW_COLUMNS)."""
        fields = list(row)
        fields[5] = set(str(fields[5]).split(","))
        return cls(*fields)

    @classmethod
    def stored(cls, row: Sequence[Any]) -> TraceSummaryRow:
        """From a row of ``traces`` (_TRACE_ROW_COLUMNS), which keeps the duration."""
        fields = list(row)
        fields[2] += fields[1]  # the end
        return cls.of(fields)

    def merge(self, other: TraceSummaryRow) -> None:
        """Add the summary of other spans of the same trace."""
        self.start_ns = min(self.start_ns, other.start_ns)
        self.end_ns = max(self.end_ns, other.end_ns)
        self.span_count += other.span_count
        self.error_count += other.error_count
        self.services |= other.services
        self.bytes += other.bytes
        self.fault_count += other.fault_count
        if self.order_status is None or (
            other.order_status is not None and other.order_status > self.order_status
        ):
            self.order_status = other.order_status
        self.min_span_ns = min(self.min_span_ns, other.min_span_ns)
        if other.root_key < self.root_key:
            self.root_key, self.root_name = other.root_key, other.root_name
            self.root_service, self.root_status = other.root_service, other.root_status

    def values(self) -> tuple[object, ...]:
        """The row to write: the columns of _WRITE_TRACE."""
        return (
            self.trace_id,
            self.start_ns,
            self.end_ns - self.start_ns,
            self.span_count,
            self.error_count,
            ",".join(sorted(self.services)),
            self.bytes,
            self.fault_count,
            self.order_status,
            self.min_span_ns,
            self.root_key,
            self.root_name,
            self.root_service,
            self.root_status,
            self.error_count,  # real errors, counted again when the trace has a fault
        )


_WRITE_TRACE = (
    f"INSERT OR REPLACE INTO traces ({_TRACE_ROW_COLUMNS}, real_error_count) "
    f"VALUES ({', '.join('?' * 15)})"
)

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

# Version 3 → 4: the columns of the attribute index and of the outcomes; the index itself
# is filled from the stored spans (:meth:`TraceStore._backfill_index`).
_MIGRATE_V4 = """
ALTER TABLE spans ADD COLUMN attribute_keys BLOB NOT NULL DEFAULT x'';
ALTER TABLE spans ADD COLUMN http_status INTEGER;
ALTER TABLE spans ADD COLUMN order_status TEXT;
ALTER TABLE traces ADD COLUMN real_error_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN root_status INTEGER;
ALTER TABLE traces ADD COLUMN order_status TEXT;
ALTER TABLE traces ADD COLUMN min_span_ns INTEGER NOT NULL DEFAULT 0;
"""

# Version 5 → 6: the root key of each trace (_AGGREGATE), which _summarise_all then fills.
_MIGRATE_V6 = """
ALTER TABLE traces ADD COLUMN root_key TEXT NOT NULL DEFAULT '';
"""

# Version 6 → 7, when the attribute index exists (version 4 on): it makes way for the one
# keyed by generation that SCHEMA creates, and TraceStore._index_by_generation copies it.
_MIGRATE_V7 = """
ALTER TABLE span_attributes RENAME TO span_attributes_v6;
"""


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
    #: Real errors: spans with status ERROR that are neither touched by an injected fault nor
    #: an ancestor of a span one touched (those failed because of the fault).
    error_count: int
    root_name: str
    root_service: str
    services: list[str]
    #: Spans an injected fault touched (``ordersim.fault.injected``), apart from errors.
    fault_count: int = 0
    #: The root span's ``http.response.status_code``.
    root_status: int | None = None
    #: ``shop.order.status`` of order-service's ``place_order`` span.
    order_status: str | None = None


_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, service, kind, start_ns, end_ns, status_code, "
    "resource_id, scope_id, data, fault, attribute_keys, http_status, order_status"
)
_SUMMARY_COLUMNS = (
    "t.trace_id, t.start_ns, t.duration_ns, t.span_count, t.real_error_count, t.root_name, "
    "t.root_service, t.services, t.fault_count, t.root_status, t.order_status"
)


def _summary(row: tuple[object, ...]) -> TraceSummary:
    trace_id, start, duration, spans, errors, name, service, services, faults, status, order = row
    return TraceSummary(
        str(trace_id),
        int(str(start)),
        int(str(duration)),
        int(str(spans)),
        int(str(errors)),
        str(name),
        str(service),
        sorted(str(services).split(",")),
        int(str(faults)),
        None if status is None else int(str(status)),
        None if order is None else str(order),
    )


@dataclass(frozen=True)
class TraceQuery:
    """One search, as every listing asks it; Jaeger's semantics: a trace matches when one
    of its spans meets every span condition (service, operation, duration, start time and
    each attribute). Durations and times in ns; 0 or None: no bound.

    ``attributes`` values are text, compared with the text of an attribute's value (so
    ``"402"`` finds the integer 402). Keys Jaeger gives a meaning of their own: ``error``
    (``true``: status ERROR, ``false``: status OK), ``span.status`` (OK, ERROR, UNSET),
    ``span.kind`` (server, client, …), ``scope.name``, ``scope.version``, and
    ``resource.<key>`` (that resource attribute only). Any other key matches an attribute
    of the span, of one of its events or links, of its scope or of its resource.

    ``errors_only`` (ours, not Jaeger's) keeps traces with an ERROR span anywhere."""

    service: str | None = None
    operation: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    min_duration_ns: int = 0
    max_duration_ns: int = 0
    start_min_ns: int | None = None
    start_max_ns: int | None = None
    errors_only: bool = False
    limit: int = 50


#: Go's strconv.ParseBool, which Jaeger reads the ``error`` tag (and its query API its
#: boolean parameters) with.
GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
_SPAN_STATUS = {"OK": 1, "ERROR": 2}
#: Attribute keys Jaeger reads as fields of the span or of its scope, not as attributes.
_SPECIAL_KEYS = ("error", "span.status", "span.kind", "scope.name", "scope.version")
_SPAN_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
#: What walking one trace costs against following one index row (bench/search.py: ~100 µs
#: for a trace's ~47 spans, ~7 µs a row), doubled for the rows a matching trace has in the
#: index (a 402 is on three spans of a trace). _cheapest_driver weighs the plans with it.
_WALK_COST_PER_ROW = 30


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
    #: Those of the log records and metric data points.
    signals: SignalLimits = field(default_factory=SignalLimits)


def _nothing() -> None:
    pass


class TraceStore(SignalTables):
    """``store.write(records)`` from one thread at a time; queries from any thread. Logs
    and metrics: :class:`~trace_viewer.signal_store.SignalTables`."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        # A batch writes ~600 pages to the WAL, so at SQLite's default of 1,000 pages the
        # writer checkpointed every other batch: each time two fdatasyncs, and every page
        # copied again though the next batch rewrites many of them (the traces, the index
        # pages the new rows go to). At 10,000 (a WAL of up to ~40 MB), replaying a run's
        # 68 batches: fdatasync 83 -> 14 calls, pwrite 82,225 -> 69,754, pread 41,640 ->
        # 29,176 (strace -c).
        self._writer.execute("PRAGMA wal_autocheckpoint=10000")
        # The writer's page cache: 64 MiB rather than SQLite's 2 MiB, so that the pages a
        # batch touches all over the indexes (random trace ids, attribute keys, the evicted
        # traces' rows) stay at hand from batch to batch instead of being read again from
        # the file. Replaying a run's spans into a store at its cap (bench/ingest_replay.py
        # --passes 20): 73 -> 58 µs of CPU per span written.
        self._writer.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        self._open_schema()
        self._blob_ids: dict[tuple[bytes, str], int] = {}
        self._lock = threading.Lock()
        self.spans_received = 0
        self.spans_rejected = 0
        self.spans_repaired = 0
        self.traces_evicted = 0
        self._count_traces()
        self._open_signals(limits.signals)

    def _open_schema(self) -> None:
        """Create the tables, or bring an older database up to this version in place, in
        one transaction."""
        conn = self._writer
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (existing,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'"
        ).fetchone()
        # Each step: the version it reaches, its DDL, and the backfill after it (once SCHEMA
        # has made the new tables).
        steps = [
            (1, _MIGRATE_V1, self._backfill_faults),
            (2, "", self._backfill_links),
            (3, _MIGRATE_V3, self._backfill_calls),
            (4, _MIGRATE_V4, self._backfill_index),
            (5, "", _nothing),  # SIGNAL_SCHEMA creates the new, empty tables
            (6, _MIGRATE_V6, self._summarise_all),
            (7, _MIGRATE_V7 if version >= 4 else "", self._index_by_generation),
        ]
        pending = [step for step in steps if existing and version < step[0]]
        # executescript runs the whole script; the transaction it opens stays open for the
        # backfills below.
        conn.executescript(
            "BEGIN IMMEDIATE;"
            + "".join(ddl for _, ddl, _ in pending)
            + SCHEMA
            + SIGNAL_SCHEMA
            + f"PRAGMA user_version = {SCHEMA_VERSION};"
        )
        try:
            for _, _, backfill in pending:
                backfill()
            if pending:
                logger.info(
                    "migrated %s from schema version %d to %d", self.path, version, SCHEMA_VERSION
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _count_traces(self) -> None:
        """Count the traces stored and their bytes; the writer then keeps both up to date as
        it merges and evicts, rather than sum a column of every trace for each batch."""
        count, size = self._writer.execute(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM traces"
        ).fetchone()
        #: Traces stored (what a search plan weighs), and their bytes.
        self.trace_count: int = count
        self._trace_bytes: int = size

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

    def _backfill_calls(self) -> None:
        """Find the calls a database of version 2 or older holds."""
        for statement in _BACKFILL_CALLS:
            self._writer.execute(statement)

    def _backfill_index(self) -> None:
        """Index the attributes and outcomes of the spans a database of version 3 or older
        holds, then summarise every trace again."""
        conn = self._writer
        spans = 0
        cursor = conn.execute("SELECT rowid, service, data FROM spans")
        while batch := cursor.fetchmany(2000):
            rows = []
            for rowid, service, data in batch:
                index = index_span(Span.FromString(data), service)
                rows.append((index.keys, index.http_status, index.order_status, rowid))
            conn.executemany(
                "UPDATE spans SET attribute_keys = ?, http_status = ?, order_status = ? "
                "WHERE rowid = ?",
                rows,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO span_attributes (gen, key, span) VALUES (?, ?, ?)",
                _postings((rowid, keys) for keys, _, _, rowid in rows),
            )
            spans += len(batch)
        levels: tuple[tuple[Literal["resource", "scope"], str], ...] = (
            ("resource", "resource_id"),
            ("scope", "scope_id"),
        )
        for level, column in levels:
            for blob_id, data in conn.execute(
                f"SELECT id, data FROM blobs WHERE id IN (SELECT DISTINCT {column} FROM spans)"
            ).fetchall():
                self._index_blob(blob_id, data, level)
        # The outcomes reach the traces' summaries in step 6, which summarises them all.
        logger.info(
            "migrated %s to schema version 4 (attributes of %d spans indexed)", self.path, spans
        )

    def _index_by_generation(self) -> None:
        """Copy a version-6 attribute index into the one keyed by generation."""
        conn = self._writer
        (old,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'span_attributes_v6'"
        ).fetchone()
        if not old:  # older than version 4: _backfill_index filled the new one
            return
        conn.execute(
            "INSERT INTO span_attributes (gen, key, span) "
            f"SELECT span >> {GENERATION_BITS}, key, span FROM span_attributes_v6"
        )
        conn.execute("DROP TABLE span_attributes_v6")
        logger.info(
            "migrated %s to schema version 7 (the attribute index by generation)", self.path
        )

    def _summarise_all(self) -> None:
        """Summarise every trace again from all its spans."""
        summaries = [
            TraceSummaryRow.of(row)
            for row in self._writer.execute(_AGGREGATE.format(spans="spans s"))
        ]
        self._writer.execute("DELETE FROM traces")
        self._write_summaries(summaries)
        logger.info("migrated %s: %d traces summarised", self.path, len(summaries))

    def _write_summaries(self, summaries: Collection[TraceSummaryRow]) -> None:
        """Write these rows of ``traces``, counting the real errors of those with a fault."""
        self._writer.executemany(_WRITE_TRACE, [summary.values() for summary in summaries])
        self._writer.executemany(
            _COUNT_REAL_ERRORS, [(s.trace_id,) for s in summaries if s.fault_count]
        )

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

    def _blob_id(self, data: bytes, schema_url: str, level: Literal["resource", "scope"]) -> int:
        # Cached by the blob itself, not its digest: every span of a resource or scope carries
        # the same bytes object (otlp.records serializes each once), whose hash Python keeps,
        # so a span costs a dictionary lookup here and no SHA-1 (two per span before).
        cached = self._blob_ids.get((data, schema_url))
        if cached is not None:
            return cached
        # Without a schema URL the hash is the data's alone, as in version 0 of the schema.
        digest = hashlib.sha1(
            data + b"\0schema_url\0" + schema_url.encode() if schema_url else data
        ).digest()
        inserted = self._writer.execute(
            "INSERT OR IGNORE INTO blobs (hash, data, schema_url) VALUES (?, ?, ?)",
            (digest, data, schema_url),
        ).rowcount
        (blob_id,) = self._writer.execute(
            "SELECT id FROM blobs WHERE hash = ?", (digest,)
        ).fetchone()
        if inserted:
            self._index_blob(blob_id, data, level)
        self._blob_ids[(data, schema_url)] = blob_id
        return int(blob_id)

    def _index_blob(self, blob_id: int, data: bytes, level: Literal["resource", "scope"]) -> None:
        """Index a resource's attributes (also as ``resource.<key>``, Jaeger's name for the
        resource's own), or a scope's with its name and version."""
        keys: set[int] = set()
        if level == "resource":
            resource = Resource.FromString(data)
            attribute_keys(resource.attributes, keys)
            attribute_keys(resource.attributes, keys, prefix="resource.")
        else:
            scope = InstrumentationScope.FromString(data)
            attribute_keys(scope.attributes, keys)
            keys.add(attribute_key("scope.name", scope.name))
            keys.add(attribute_key("scope.version", scope.version))
        self._writer.executemany(
            "INSERT OR IGNORE INTO blob_attributes VALUES (?, ?)", [(k, blob_id) for k in keys]
        )

    def write(self, spans: Sequence[SpanRecord], rejected: int = 0, repaired: int = 0) -> None:
        """Store one batch in one transaction, then enforce retention. ``rejected`` spans
        were refused at intake, ``repaired`` of ``spans`` stored after a repair."""
        with self._lock:
            self.spans_received += len(spans) + rejected
            self.spans_rejected += rejected
            self.spans_repaired += repaired
            if not spans:
                return
            evicted = self.traces_evicted
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                # Each new span takes the next rowid (a rowid table without AUTOINCREMENT), so
                # that its index rows are known before it is inserted.
                (last,) = self._writer.execute(
                    "SELECT coalesce(max(rowid), 0) FROM spans"
                ).fetchone()
                rows = [
                    (
                        last + 1 + i,
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.service,
                        s.kind,
                        s.start_ns,
                        s.end_ns,
                        s.status_code,
                        self._blob_id(s.resource, s.resource_schema_url, "resource"),
                        self._blob_id(s.scope, s.scope_schema_url, "scope"),
                        s.span,
                        int(s.fault),
                        s.attribute_keys,
                        s.http_status,
                        s.order_status,
                    )
                    for i, s in enumerate(spans)
                ]
                inserted = self._writer.executemany(
                    f"INSERT OR IGNORE INTO spans (rowid, {_SPAN_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                ).rowcount
                postings = _postings((last + 1 + i, s.attribute_keys) for i, s in enumerate(spans))
                if inserted < len(rows):  # spans sent again were ignored, and so are their keys
                    kept = {
                        rowid
                        for (rowid,) in self._writer.execute(
                            "SELECT rowid FROM spans WHERE rowid > ?", (last,)
                        )
                    }
                    postings = [posting for posting in postings if posting[2] in kept]
                self._writer.executemany(
                    "INSERT INTO span_attributes (gen, key, span) VALUES (?, ?, ?)", postings
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
                self._summarise(last)
                self._add_calls(spans)
                self._enforce_retention()
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                self._blob_ids.clear()  # the rolled-back blobs are gone
                self._count_traces()  # and so are the batch's traces and evictions
                self.traces_evicted = evicted
                raise

    def _summarise(self, last: int) -> None:
        """Merge the spans this batch stored (rowids after ``last``) into their traces'
        summaries: one pass over the batch's own rows, whose pages are at hand, and one read
        of each trace's row. Recomputing a trace's summary from all its spans cost a pass
        over them for every batch that touched it, and each service exports its part of a
        trace in a batch of its own."""
        summaries = {
            row[0]: TraceSummaryRow.of(row)
            # NOT INDEXED: the new rows by rowid, where SQLite would rather read spans_by_id
            # whole for their traces' order.
            for row in self._writer.execute(
                _AGGREGATE.format(spans="spans s NOT INDEXED WHERE s.rowid > ?"), (last,)
            )
        }
        self._trace_bytes += sum(summary.bytes for summary in summaries.values())
        self.trace_count += len(summaries)
        traces = list(summaries)
        for i in range(0, len(traces), 500):
            chunk = traces[i : i + 500]
            for row in self._writer.execute(
                f"SELECT {_TRACE_ROW_COLUMNS} FROM traces "
                f"WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                summaries[row[0]].merge(TraceSummaryRow.stored(row))
                self.trace_count -= 1  # stored already
        self._write_summaries(summaries.values())

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
        count, size = self.trace_count, self._trace_bytes
        excess = count - self.limits.max_traces
        if size > self.limits.max_bytes:
            # Drop the oldest tenth of what is over, at least one trace, in one go.
            excess = max(
                excess, int(count * (size - self.limits.max_bytes) / size) + 1, count // 10
            )
        if excess <= 0:
            return
        oldest = []
        for trace_id, freed in self._writer.execute(
            "SELECT trace_id, bytes FROM traces ORDER BY start_ns LIMIT ?", (excess,)
        ):
            oldest.append((trace_id,))
            self._trace_bytes -= freed
        self.trace_count -= len(oldest)
        postings = _postings(
            self._writer.execute(
                "SELECT s.rowid, s.attribute_keys FROM spans s WHERE s.trace_id IN "
                "(SELECT trace_id FROM traces ORDER BY start_ns LIMIT ?)",
                (excess,),
            )
        )
        self._writer.executemany(
            "DELETE FROM span_attributes WHERE gen = ? AND key = ? AND span = ?", postings
        )
        self._writer.executemany("DELETE FROM spans WHERE trace_id = ?", oldest)
        self._writer.executemany("DELETE FROM traces WHERE trace_id = ?", oldest)
        for table in ("links", "calls", "awaited_calls"):
            self._writer.executemany(f"DELETE FROM {table} WHERE trace_id = ?", oldest)
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

    def summaries(self, trace_ids: Sequence[str]) -> list[TraceSummary]:
        """The summaries of these traces, in the order given; unknown ones left out."""
        with self._reader() as conn:
            found = {
                row[0]: _summary(row)
                for row in conn.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM traces t WHERE t.trace_id IN "
                    f"({', '.join('?' * len(trace_ids))})",
                    [t.lower() for t in trace_ids],
                )
            }
        return [found[t.lower()] for t in trace_ids if t.lower() in found]

    def search(self, query: TraceQuery | None = None) -> list[TraceSummary]:
        """The traces that match, newest first, at most ``query.limit``.

        Two plans. With a condition an index answers that few spans meet (an attribute
        value, an operation, an ERROR status), start from those spans, check the rest of the
        conditions on each, and sort their traces. Otherwise walk the traces newest first,
        skip those whose summary rules them out (too short, no span short enough, outside
        the time range, not that service), check the others' spans, and stop at the limit:
        a common condition is met within the first few traces. _cheapest_driver weighs the
        two.
        """
        query = query or TraceQuery()
        with self._reader() as conn:
            span_conditions, span_params = _span_conditions(query)
            span_where = " AND ".join(span_conditions) or "1"
            trace_where, trace_params = _trace_conditions(query)
            driver = _cheapest_driver(conn, query, self.trace_count)
            if driver is not None:
                source, source_params = driver
                sql = (
                    f"SELECT {_SUMMARY_COLUMNS} FROM traces t WHERE t.trace_id IN "
                    f"(SELECT s.trace_id FROM {source} AND {span_where}) AND {trace_where} "
                    "ORDER BY t.start_ns DESC LIMIT ?"
                )
                params = [*source_params, *span_params, *trace_params, query.limit]
            else:
                # By the trace's own spans (spans_by_id), never by a service's: SQLite would
                # otherwise read every span of that service for each trace.
                exists = (
                    "EXISTS (SELECT 1 FROM spans s INDEXED BY spans_by_id "
                    f"WHERE s.trace_id = t.trace_id AND {span_where})"
                    if span_conditions
                    else "1"
                )
                # The unary + keeps SQLite from using an index for the trace conditions, so
                # that it walks traces_by_start newest first and stops at the limit.
                sql = (
                    f"SELECT {_SUMMARY_COLUMNS} FROM traces t INDEXED BY traces_by_start "
                    f"WHERE {trace_where} AND {exists} ORDER BY t.start_ns DESC LIMIT ?"
                )
                params = [*trace_params, *span_params, query.limit]
            return [_summary(row) for row in conn.execute(sql, params)]

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
            return _services(conn)

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


def _postings(spans: Iterable[tuple[int, bytes]]) -> list[tuple[int, int, int]]:
    """The index rows of these spans, (rowid, attribute keys) each: (generation, attribute
    key, span rowid). Unpacked into arrays, then zipped: a span costs a few calls into C
    where a list of its own cost a Python frame. Not sorted: a batch's rows all go in one
    transaction, whose pages stay in the writer's cache (WRITER_CACHE_KIB) whatever the
    order, and sorting them in Python cost more (~2 µs a span) than it saved SQLite."""
    gens, keys, rowids = array("q"), array("q"), array("q")
    for rowid, packed in spans:
        count = len(packed) >> 3
        keys.frombytes(packed)
        rowids.extend(repeat(rowid, count))
        gens.extend(repeat(rowid >> GENERATION_BITS, count))
    return list(zip(gens, keys, rowids, strict=True))


def _attribute_condition(key: str, text: str) -> tuple[str, list[object]]:
    """SQL on span ``s`` for one searched attribute, as Jaeger v2 reads its keys."""
    if key == "error":
        wanted = GO_BOOLS.get(text)
        if wanted is None:  # not a boolean: Jaeger matches nothing
            return "0", []
        return "s.status_code = ?", [2 if wanted else 1]
    if key == "span.status":
        return "s.status_code = ?", [_SPAN_STATUS.get(text.upper(), 0)]
    if key == "span.kind":
        return "s.kind = ?", [_SPAN_KIND.get(text.upper(), 0)]
    blob = "EXISTS (SELECT 1 FROM blob_attributes b WHERE b.key = ? AND b.blob = {})"
    if key in ("scope.name", "scope.version"):
        return blob.format("s.scope_id"), [attribute_key(key, text)]
    if key.startswith("resource."):
        return blob.format("s.resource_id"), [attribute_key(key, text)]
    hashed = attribute_key(key, text)
    return (
        "(EXISTS (SELECT 1 FROM span_attributes a "
        f"WHERE a.gen = s.rowid >> {GENERATION_BITS} AND a.key = ? AND a.span = s.rowid) OR "
        "EXISTS (SELECT 1 FROM blob_attributes b WHERE b.key = ? "
        "AND b.blob IN (s.resource_id, s.scope_id)))",
        [hashed, hashed],
    )


def _span_conditions(query: TraceQuery) -> tuple[list[str], list[object]]:
    """What one span of a matching trace meets, as SQL conditions on ``s``."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (("s.service", query.service), ("s.name", query.operation)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if query.min_duration_ns:
        where.append("s.end_ns - s.start_ns >= ?")
        params.append(query.min_duration_ns)
    if query.max_duration_ns:
        where.append("s.end_ns - s.start_ns <= ?")
        params.append(query.max_duration_ns)
    if query.start_min_ns is not None:
        where.append("s.start_ns >= ?")
        params.append(query.start_min_ns)
    if query.start_max_ns is not None:
        where.append("s.start_ns <= ?")
        params.append(query.start_max_ns)
    for key, text in query.attributes.items():
        condition, values = _attribute_condition(key, text)
        where.append(condition)
        params += values
    return where, params


def _trace_conditions(query: TraceQuery) -> tuple[str, list[object]]:
    """What a trace's summary must show for one of its spans to meet the query: necessary,
    not sufficient, and cheap (no span is read)."""
    where = ["1"]
    params: list[object] = []
    if query.min_duration_ns:  # no span outlasts its trace
        where.append("+t.duration_ns >= ?")
        params.append(query.min_duration_ns)
    if query.max_duration_ns:
        where.append("+t.min_span_ns <= ?")
        params.append(query.max_duration_ns)
    if query.start_min_ns is not None:  # a span starting then: the trace had not ended
        where.append("+t.start_ns + t.duration_ns >= ?")
        params.append(query.start_min_ns)
    if query.start_max_ns is not None:  # (traces_by_start serves this range)
        where.append("t.start_ns <= ?")
        params.append(query.start_max_ns)
    if query.service:
        where.append("instr(',' || t.services || ',', ',' || ? || ',') > 0")
        params.append(query.service)
    if query.errors_only:
        where.append("+t.error_count > 0")
    return " AND ".join(where), params


def _services(conn: sqlite3.Connection) -> list[str]:
    """The services, in order: one seek in spans_by_operation per service (a skip-scan),
    where SELECT DISTINCT would read the whole index."""
    return [
        row[0]
        for row in conn.execute(
            "WITH RECURSIVE names(service) AS (SELECT min(service) FROM spans UNION ALL "
            "SELECT (SELECT min(service) FROM spans WHERE service > names.service) FROM names "
            "WHERE names.service IS NOT NULL) SELECT service FROM names WHERE service IS NOT NULL"
        )
    ]


def _cheapest_driver(
    conn: sqlite3.Connection, query: TraceQuery, traces: int
) -> tuple[str, list[object]] | None:
    """The index source of spans (``FROM … WHERE …`` on ``s``) to start the search from,
    or None when walking the traces is cheaper.

    Starting from the index costs each row it lists. Walking stops after ``limit``
    matching traces, having walked about limit * traces / matching traces, and a matching
    trace has at least one row: so the index drives while
    rows^2 < limit * traces * _WALK_COST_PER_ROW (at 20,000 traces and a limit of 50,
    under ~5,500 rows), counted up to that bound and no further.
    """
    candidates: list[tuple[str, list[object]]] = []
    if query.operation:
        services = [query.service] if query.service else _services(conn)
        candidates.append(
            (
                "spans s INDEXED BY spans_by_operation WHERE s.service IN "
                f"({', '.join('?' * len(services))}) AND s.name = ?",
                [*services, query.operation],
            )
        )
    for key, text in query.attributes.items():
        errors = (key == "error" and GO_BOOLS.get(text) is True) or (
            key == "span.status" and text.upper() == "ERROR"
        )
        if errors and query.service:
            candidates.append(
                (
                    "spans s INDEXED BY spans_by_error WHERE s.status_code = 2 AND s.service = ?",
                    [query.service],
                )
            )
        elif errors:
            candidates.append(("spans s INDEXED BY spans_by_error WHERE s.status_code = 2", []))
        if key in _SPECIAL_KEYS or key.startswith("resource."):
            continue
        hashed = attribute_key(key, text)
        # A key that some resource or scope carries holds for all of its spans: the span
        # index alone does not list them.
        (on_blobs,) = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM blob_attributes WHERE key = ?)", (hashed,)
        ).fetchone()
        if not on_blobs:
            candidates.append(
                (
                    "span_attributes a JOIN spans s ON s.rowid = a.span "
                    f"WHERE a.gen IN {_live_generations()} AND a.key = ?",
                    [hashed],
                )
            )
    cap = int(math.sqrt(query.limit * max(traces, 1) * _WALK_COST_PER_ROW))
    best: tuple[int, tuple[str, list[object]]] | None = None
    for source, params in candidates:
        (count,) = conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {source} LIMIT ?)", [*params, cap]
        ).fetchone()
        if count < cap and (best is None or count < best[0]):
            best = (count, (source, params))
    return None if best is None else best[1]
