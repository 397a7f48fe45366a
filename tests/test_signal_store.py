"""The store's log records and metric data points: retention by count and bytes, the
migration that adds them, and RED computed from stored histogram points."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, HistogramDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.helpers import FailingCommit
from tests.old_schemas import as_version_4
from tests.test_store import record
from trace_viewer.otlp_signals import SERVER_DURATION, LogRow, PointRow
from trace_viewer.red import quantile, red
from trace_viewer.signal_store import SignalLimits
from trace_viewer.store import SCHEMA_VERSION, Limits, TraceStore

RESOURCE = Resource(
    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="svc"))]
).SerializeToString()
SCOPE = InstrumentationScope(name="test").SerializeToString()
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1)  # seconds
S = 10**9


def log_row(n: int, trace: int = 1, body: str = "hello") -> LogRow:
    message = LogRecord(
        time_unix_nano=n, body=AnyValue(string_value=body), trace_id=trace.to_bytes(16, "big")
    )
    return LogRow(
        f"{trace:032x}",
        f"{n:016x}",
        n,
        "svc",
        9,
        RESOURCE,
        "",
        SCOPE,
        "",
        message.SerializeToString(),
    )


def store(tmp_path: Path, **limits: int) -> TraceStore:
    return TraceStore(tmp_path / "traces.db", Limits(100, 10**9, SignalLimits(**limits)))


def test_log_records_beyond_the_count_or_the_bytes_go_oldest_first(tmp_path: Path) -> None:
    by_count = store(tmp_path, max_log_records=10)
    for batch in range(3):
        by_count.write_logs([log_row(batch * 5 + i) for i in range(5)])
    kept = by_count.logs(f"{1:032x}")
    assert 1 <= len(kept) <= 10
    assert LogRecord.FromString(kept[-1][4]).time_unix_nano == 14  # the newest stays
    assert LogRecord.FromString(kept[0][4]).time_unix_nano >= 5  # the oldest went
    assert by_count.signal_stats()["log_records_evicted"] == 15 - len(kept)
    by_count.close()

    by_bytes = store(tmp_path / "b", max_log_bytes=2000)
    for i in range(40):
        by_bytes.write_logs([log_row(i, body="x" * 100)])
    stored = by_bytes.logs(f"{1:032x}")
    assert sum(len(r[4]) for r in stored) <= 2000
    assert LogRecord.FromString(stored[-1][4]).time_unix_nano == 39
    by_bytes.close()


def test_the_totals_survive_a_restart(tmp_path: Path) -> None:
    first = store(tmp_path, max_log_records=10)
    first.write_logs([log_row(i) for i in range(8)])
    first.close()
    again = store(tmp_path, max_log_records=10)
    again.write_logs([log_row(8 + i) for i in range(8)])
    assert len(again.logs(f"{1:032x}")) <= 10
    again.close()


def test_a_batch_that_fails_is_not_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    traces = store(tmp_path, max_log_records=2)
    traces.write_logs([log_row(1), log_row(2)])
    before = traces.signal_stats()

    monkeypatch.setattr(traces, "_writer", FailingCommit(traces._writer))
    with pytest.raises(sqlite3.OperationalError):
        traces.write_logs([log_row(3)])  # stored, one evicted, then not committed
    monkeypatch.undo()
    after = traces.signal_stats()
    assert (after["log_records_stored"], after["log_records_evicted"]) == (2, 0)
    assert after["log_records_received"] == before["log_records_received"] + 1
    traces.write_logs([log_row(4)])
    assert traces.signal_stats()["log_records_stored"] == 2
    assert traces.signal_stats()["log_records_evicted"] == 1


def test_a_version_4_database_gains_the_signal_tables_and_keeps_its_traces(
    tmp_path: Path,
) -> None:
    path = tmp_path / "traces.db"
    first = TraceStore(path, Limits(100, 10**9))
    first.write([record(7, 1)])
    first.close()
    as_version_4(path)

    migrated = TraceStore(path, Limits(100, 10**9))
    assert len(migrated.trace(f"{7:032x}")) == 1
    migrated.write_logs([log_row(1, trace=7)])
    assert len(migrated.logs(f"{7:032x}")) == 1
    migrated.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (7,)


def point(
    time_s: int,
    count: int,
    buckets: list[int],
    *,
    start_s: int = 0,
    exemplar: tuple[int, float] | None = None,
) -> bytes:
    message = HistogramDataPoint(
        start_time_unix_nano=start_s * S,
        time_unix_nano=time_s * S,
        count=count,
        explicit_bounds=BOUNDS,
        bucket_counts=buckets,
    )
    if exemplar is not None:
        span, value = exemplar
        message.exemplars.append(
            Exemplar(
                time_unix_nano=time_s * S,
                as_double=value,
                trace_id=span.to_bytes(16, "big"),
                span_id=span.to_bytes(8, "big"),
            )
        )
    return message.SerializeToString()


def point_row(series: bytes, time_s: int, data: bytes, *, error: bool = False) -> PointRow:
    start = HistogramDataPoint.FromString(data).start_time_unix_nano
    return PointRow(
        "svc", SERVER_DURATION, "s", "histogram", 2, series, start, time_s * S,
        "POST /orders", error, RESOURCE, "", SCOPE, "", data,
    )  # fmt: skip


def test_red_differences_cumulative_points_within_the_window(tmp_path: Path) -> None:
    db = store(tmp_path)
    ok, failed = b"ok", b"failed"
    db.write_metrics(
        [
            # Before the window (from 100 s): the baseline of the ok series.
            point_row(ok, 90, point(90, 10, [10, 0, 0, 0, 0, 0])),
            point_row(ok, 110, point(110, 30, [10, 20, 0, 0, 0, 0], exemplar=(5, 0.008))),
            point_row(ok, 130, point(130, 50, [10, 20, 20, 0, 0, 0])),
            # A series that started inside the window counts whole.
            point_row(failed, 130, point(130, 10, [0, 0, 0, 0, 10, 0], start_s=105), error=True),
        ]
    )
    (row,) = red(db.metric_points(SERVER_DURATION, 100 * S, 140 * S), 100 * S, 140 * S, 20 * S)
    assert (row["service"], row["operation"]) == ("svc", "POST /orders")
    assert row["requests"] == 40 + 10 and row["errors"] == 10
    assert row["rate"] == 50 / 40 and row["error_rate"] == 10 / 50
    # 50 requests: 20 in (5, 10] ms, 20 in (10, 25] ms, 10 in (50, 100] ms.
    assert row["p50_ms"] == 10 + 15 * (25 - 20) / 20
    assert 50 < row["p95_ms"] <= 100
    assert row["exemplars"] == [
        {"trace_id": f"{5:032x}", "span_id": f"{5:016x}", "value_ms": 8.0, "time_ms": 110_000}
    ]
    assert [(s["time_ms"], round(s["rate"] * 20)) for s in row["series"]] == [
        (120_000, 20),
        (140_000, 30),
    ]
    db.close()


def test_a_restarted_series_counts_from_zero_again(tmp_path: Path) -> None:
    db = store(tmp_path)
    db.write_metrics(
        [
            point_row(b"s", 100, point(100, 50, [50, 0, 0, 0, 0, 0])),
            point_row(b"s", 120, point(120, 5, [5, 0, 0, 0, 0, 0], start_s=115)),
        ]
    )
    (row,) = red(db.metric_points(SERVER_DURATION, 101 * S, 130 * S), 101 * S, 130 * S, 10 * S)
    assert row["requests"] == 5
    db.close()


def test_quantiles_are_bucket_estimates() -> None:
    assert quantile(0.5, (1.0, 2.0), [0, 10, 0]) == 1.5
    assert quantile(0.99, (1.0, 2.0), [0, 0, 10]) == 2.0  # the overflow bucket: its lower bound
    assert quantile(0.5, (1.0, 2.0), [0, 0, 0]) is None
    assert quantile(0.5, (1.0,), [1, 1, 1]) is None  # malformed: no estimate
