"""The viewer's intake in-process: a store's spans replayed in the batches they came in.

Reads the spans of a viewer database (``traces.db``, e.g. one a ``bench/cpu_per_order.py
--traced`` run or ``ordersim up`` left) in the order they were stored, cuts them into the
export requests they arrived in (runs of one resource, at most 512 spans: one service's
batch processor), then decodes each request (``otlp.records``) and stores it
(``TraceStore.write``) into a fresh store, and prints the CPU time per span of each half.
No HTTP and no other process: steadier than ``bench/ingest.py`` on a shared machine, and
with the real spans of an order flow rather than made-up ones.

    .venv/bin/python bench/ingest_replay.py path/to/traces.db [--runs 3]
    .venv/bin/python bench/ingest_replay.py path/to/traces.db --passes 24 --runs 1

``--passes N`` replays the spans N times into the same store, each pass under other trace
ids (the ids' first eight bytes changed, links' too) and later (by the time the spans
span), and prints each pass's figures: the
cost of a write as the store grows, then at its cap (the viewer's defaults, 20,000 traces
and 256 MiB, or ``--max-traces``/``--max-bytes``), where every batch also evicts. The
median line is over the runs' last passes.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trace_viewer.otlp import records
from trace_viewer.settings import ViewerSettings
from trace_viewer.store import Limits, TraceStore

BATCH = 512  # the SDK batch processor's largest export


def requests(database: Path) -> tuple[list[ExportTraceServiceRequest], int, int]:
    """The stored spans as the export requests they came in; how many spans; how long
    they lasted, from the first start to the last end, in ns."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    (lasted,) = conn.execute("SELECT max(end_ns) - min(start_ns) FROM spans").fetchone()
    rows = conn.execute(
        "SELECT s.resource_id, s.scope_id, r.data, sc.data, s.data FROM spans s "
        "JOIN blobs r ON r.id = s.resource_id JOIN blobs sc ON sc.id = s.scope_id "
        "ORDER BY s.rowid"
    ).fetchall()
    conn.close()
    out: list[ExportTraceServiceRequest] = []
    run: list[tuple[int, int, bytes, bytes, bytes]] = []
    for row in [*rows, None]:
        if run and (row is None or row[0] != run[0][0] or len(run) == BATCH):
            request = ExportTraceServiceRequest()
            resource_spans = request.resource_spans.add()
            resource_spans.resource.CopyFrom(Resource.FromString(run[0][2]))
            scopes = {}
            for _, scope_id, _, scope, span in run:
                if scope_id not in scopes:
                    scopes[scope_id] = resource_spans.scope_spans.add()
                    scopes[scope_id].scope.CopyFrom(InstrumentationScope.FromString(scope))
                scopes[scope_id].spans.append(Span.FromString(span))
            out.append(request)
            run = []
        if row is not None:
            run.append(row)
    return out, len(rows), lasted


def renamed(requests: list[ExportTraceServiceRequest], number: int, shift: int) -> list[bytes]:
    """The requests serialized, every trace id (links' too) with its first eight bytes
    replaced by ``number``'s and every time ``number * shift`` ns later: another pass's
    traces, newer than the last pass's (retention evicts the oldest), the same otherwise."""
    prefix = number.to_bytes(8, "big")
    later = number * shift
    bodies = []
    for original in requests:
        request = ExportTraceServiceRequest()
        request.CopyFrom(original)
        if number:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        span.trace_id = prefix + span.trace_id[8:]
                        span.start_time_unix_nano += later
                        span.end_time_unix_nano += later
                        for event in span.events:
                            event.time_unix_nano += later
                        for link in span.links:
                            link.trace_id = prefix + link.trace_id[8:]
        bodies.append(request.SerializeToString())
    return bodies


def replay(store: TraceStore, bodies: list[bytes]) -> tuple[float, float]:
    """CPU seconds decoding the requests and storing them into the store."""
    decoding = storing = 0.0
    for body in bodies:
        started = time.process_time()
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        kept, _ = records(request)
        decoded = time.process_time()
        store.write(kept)
        decoding += decoded - started
        storing += time.process_time() - decoded
    return decoding, storing


def main() -> None:
    defaults = ViewerSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--passes", type=int, default=1, help="replays into the same store")
    parser.add_argument("--max-traces", type=int, default=defaults.max_traces)
    parser.add_argument("--max-bytes", type=int, default=defaults.max_bytes)
    args = parser.parse_args()
    originals, spans, lasted = requests(args.database)
    print(f"{spans} spans in {len(originals)} requests")
    passes = [renamed(originals, number, lasted + 1) for number in range(args.passes)]
    decode, write = [], []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as data:
            path = Path(data) / "traces.db"
            store = TraceStore(path, Limits(args.max_traces, args.max_bytes))
            for number, bodies in enumerate(passes, 1):
                decoding, storing = replay(store, bodies)
                decode.append(decoding / spans * 1e6)
                write.append(storing / spans * 1e6)
                where = f"run {run}" + (f" pass {number}" if args.passes > 1 else "")
                size = (
                    f"; {store.trace_count:,} traces, {store.traces_evicted:,} evicted, "
                    f"traces.db {path.stat().st_size / 2**20:.0f} MiB"
                    if args.passes > 1
                    else ""
                )
                print(
                    f"{where}: decode {decode[-1]:.1f} µs, write {write[-1]:.1f} µs "
                    f"CPU per span{size}",
                    flush=True,
                )
            store.close()
    last = slice(args.passes - 1, None, args.passes)
    print(
        f"median: decode {statistics.median(decode[last]):.1f} µs, write "
        f"{statistics.median(write[last]):.1f} µs CPU per span ({args.runs} runs"
        + (f", pass {args.passes} of each" if args.passes > 1 else "")
        + ")"
    )


if __name__ == "__main__":
    main()
