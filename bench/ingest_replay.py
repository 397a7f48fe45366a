"""The viewer's intake in-process: a store's spans replayed in the batches they came in.

Reads the spans of a viewer database (``traces.db``, e.g. one a ``bench/cpu_per_order.py
--traced`` run or ``ordersim up`` left) in the order they were stored, cuts them into the
export requests they arrived in (runs of one resource, at most 512 spans: one service's
batch processor), then decodes each request (``otlp.records``) and stores it
(``TraceStore.write``) into a fresh store, and prints the CPU time per span of each half.
No HTTP and no other process: steadier than ``bench/ingest.py`` on a shared machine, and
with the real spans of an order flow rather than made-up ones.

    .venv/bin/python bench/ingest_replay.py path/to/traces.db [--runs 3]
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
from trace_viewer.store import Limits, TraceStore

BATCH = 512  # the SDK batch processor's largest export


def requests(database: Path) -> tuple[list[bytes], int]:
    """The stored spans as the export requests they came in, serialized; how many spans."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT s.resource_id, s.scope_id, r.data, sc.data, s.data FROM spans s "
        "JOIN blobs r ON r.id = s.resource_id JOIN blobs sc ON sc.id = s.scope_id "
        "ORDER BY s.rowid"
    ).fetchall()
    conn.close()
    bodies: list[bytes] = []
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
            bodies.append(request.SerializeToString())
            run = []
        if row is not None:
            run.append(row)
    return bodies, len(rows)


def replay(bodies: list[bytes]) -> tuple[float, float]:
    """CPU seconds decoding and storing the requests into a fresh store."""
    decoding = storing = 0.0
    with tempfile.TemporaryDirectory() as data:
        store = TraceStore(Path(data) / "traces.db", Limits(20_000, 256 * 1024 * 1024))
        for body in bodies:
            started = time.process_time()
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            kept, _ = records(request)
            decoded = time.process_time()
            store.write(kept)
            decoding += decoded - started
            storing += time.process_time() - decoded
        store.close()
    return decoding, storing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bodies, spans = requests(args.database)
    print(f"{spans} spans in {len(bodies)} requests")
    decode, write = [], []
    for run in range(1, args.runs + 1):
        decoding, storing = replay(bodies)
        decode.append(decoding / spans * 1e6)
        write.append(storing / spans * 1e6)
        print(f"run {run}: decode {decode[-1]:.1f} µs, write {write[-1]:.1f} µs CPU per span")
    print(
        f"median: decode {statistics.median(decode):.1f} µs, write "
        f"{statistics.median(write):.1f} µs CPU per span ({args.runs} runs)"
    )


if __name__ == "__main__":
    main()
