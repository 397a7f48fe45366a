"""OTLP logs and metrics payloads: decoding export requests (protobuf or JSON) by the rules
the trace intake follows (:mod:`trace_viewer.otlp`), and the records the store keeps.

The strict decode is the fast path. When it refuses a request, the request is split item by
item (a log record, a metric) and each piece decoded on its own, so that one bad item is
refused alone, with its reason, in ``partial_success``; a resource or scope that cannot be
decoded costs its own items. The split uses a copy of the OTLP descriptors in which the
resource, the scope and each item are ``bytes`` (the same wire format, decoded later) and
every string is ``bytes`` (no UTF-8 check on the envelope), as :mod:`trace_viewer.lenient`
does for spans. Unlike spans, an item with invalid UTF-8 is refused rather than repaired:
Jaeger's repair rules are for spans, and no log store this viewer stands in for keeps such
a record either.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from trace_viewer.lenient import MalformedPayload, named_fields
from trace_viewer.otlp import PROTOBUF, service_name

#: SQLite integers are signed 64-bit; OTLP timestamps are unsigned.
_MAX_TIMESTAMP = 2**63 - 1
#: The histogram RED is computed from (stable HTTP semantic conventions).
SERVER_DURATION = "http.server.request.duration"


@dataclass(frozen=True)
class Signal:
    """How one signal's export request is laid out."""

    name: str  # "logs", "metrics"
    request: type[Message]
    response: type[Message]
    item: type[Message]
    #: Field names: resource_logs / scope_logs / log_records …
    resources: str
    scopes: str
    items: str
    rejected: str  # the partial_success field counting refusals
    grpc_service: str


LOGS = Signal(
    "logs",
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    LogRecord,
    "resource_logs",
    "scope_logs",
    "log_records",
    "rejected_log_records",
    "opentelemetry.proto.collector.logs.v1.LogsService",
)
METRICS = Signal(
    "metrics",
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    Metric,
    "resource_metrics",
    "scope_metrics",
    "metrics",
    "rejected_data_points",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
)


@dataclass
class Decoded:
    """A decoded request and the reason for each item refused (a metric refused whole
    counts as one data point: its points could not be read)."""

    request: Any
    rejected: list[str] = field(default_factory=list)


# --- the split descriptors --------------------------------------------------------------------


def _split_pool() -> descriptor_pool.DescriptorPool:
    """The logs and metrics protos with every string as bytes, and the resource, scope and
    items of a request as bytes."""
    opaque = {
        ("ResourceLogs", "resource"),
        ("ResourceMetrics", "resource"),
        ("ScopeLogs", "scope"),
        ("ScopeMetrics", "scope"),
        ("ScopeLogs", "log_records"),
        ("ScopeMetrics", "metrics"),
    }
    pool = descriptor_pool.DescriptorPool()
    seen: set[str] = set()

    def add(file: Any) -> None:
        for dependency in file.dependencies:
            add(dependency)
        if file.name in seen:
            return
        seen.add(file.name)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for message in proto.message_type:
            for f in message.field:
                if f.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                if (message.name, f.name) in opaque:
                    f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    f.ClearField("type_name")
        pool.Add(proto)

    add(logs_service_pb2.DESCRIPTOR)
    add(metrics_service_pb2.DESCRIPTOR)
    return pool


_POOL = _split_pool()
_SPLIT = {
    signal.name: message_factory.GetMessageClass(
        _POOL.FindMessageTypeByName(signal.request.DESCRIPTOR.full_name)
    )
    for signal in (LOGS, METRICS)
}


def _strict(cls: type[Message], data: bytes) -> Message:
    message = cls()
    message.ParseFromString(data)
    return message


def _decode_split(body: bytes, signal: Signal) -> Decoded:
    """A protobuf body the strict parse refused: decode it piece by piece."""
    split = _SPLIT[signal.name]()
    try:
        split.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedPayload(f"not an OTLP {signal.name} protobuf message: {exc}") from exc
    request = signal.request()
    rejected: list[str] = []
    for i, rx in enumerate(getattr(split, signal.resources)):
        where = f"{signal.resources}[{i}]"
        items = [item for sx in getattr(rx, signal.scopes) for item in getattr(sx, signal.items)]
        try:
            resource = _strict(Resource, rx.resource)
            schema_url = bytes(rx.schema_url).decode()
        except (DecodeError, UnicodeDecodeError, RecursionError) as exc:
            rejected += [f"{where}: not a decodable resource ({exc})"] * len(items)
            continue
        out = getattr(request, signal.resources).add(schema_url=schema_url)
        out.resource.CopyFrom(resource)
        for j, sx in enumerate(getattr(rx, signal.scopes)):
            scope_where = f"{where}.{signal.scopes}[{j}]"
            try:
                scope = _strict(InstrumentationScope, sx.scope)
                scope_url = bytes(sx.schema_url).decode()
            except (DecodeError, UnicodeDecodeError, RecursionError) as exc:
                rejected += [f"{scope_where}: not a decodable scope ({exc})"] * len(
                    getattr(sx, signal.items)
                )
                continue
            scope_out = getattr(out, signal.scopes).add(schema_url=scope_url)
            scope_out.scope.CopyFrom(scope)
            for k, raw in enumerate(getattr(sx, signal.items)):
                try:
                    getattr(scope_out, signal.items).append(_strict(signal.item, raw))
                except (DecodeError, RecursionError) as exc:
                    rejected.append(f"{scope_where}.{signal.items}[{k}]: not decodable ({exc})")
    return Decoded(request, rejected)


# --- OTLP/JSON --------------------------------------------------------------------------------

_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"))


def _hex_ids(obj: Any) -> None:
    """Hex trace and span ids (OTLP/JSON) to base64 (proto3 JSON), in place, wherever they
    are: log records and exemplars."""
    if isinstance(obj, list):
        for item in obj:
            _hex_ids(item)
        return
    if not isinstance(obj, dict):
        return
    for camel, snake in _ID_KEYS:
        key = camel if camel in obj else snake if snake in obj else None
        if key is None:
            continue
        value = obj.pop(key)
        if isinstance(value, str) and value:
            try:
                value = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise MalformedPayload(f"{camel} {value[:40]!r} is not hex") from exc
        obj[camel] = value
    for value in obj.values():
        if isinstance(value, dict | list):
            _hex_ids(value)


def _list(obj: Any, name: str) -> list[Any]:
    for key in _keys(name):
        if isinstance(obj, dict) and key in obj:
            value = obj[key]
            if value is None:
                return []
            if not isinstance(value, list):
                raise MalformedPayload(f"{key} is not a list")
            return value
    return []


def _parse_dict(obj: Any, message: Message) -> None:
    if not isinstance(obj, dict):
        raise MalformedPayload("not an object")
    try:
        json_format.ParseDict(obj, message, ignore_unknown_fields=True)
        message.SerializeToString()  # a string holding invalid UTF-8 fails here
    except (json_format.ParseError, TypeError, ValueError, RecursionError, DecodeError) as exc:
        raise MalformedPayload(str(exc) or type(exc).__name__) from exc


def _parse_json_by_item(document: dict[str, Any], signal: Signal) -> Decoded:
    request = signal.request()
    rejected: list[str] = []
    resources, scopes_key, items_key = (
        _keys(n)[0] for n in (signal.resources, signal.scopes, signal.items)
    )
    for i, rx in enumerate(_list(document, signal.resources)):
        where = f"{resources}[{i}]"
        if not isinstance(rx, dict):
            raise MalformedPayload(f"{where} is not an object")
        scopes = _list(rx, signal.scopes)

        def count(scope_list: list[Any]) -> int:
            return sum(len(_list(s, signal.items)) for s in scope_list if isinstance(s, dict))

        out = signal.request()  # scratch, for the resource alone
        head = {k: v for k, v in rx.items() if k not in _keys(signal.scopes)}
        wrapped = {signal.resources: [head]}
        try:
            _parse_dict(wrapped, out)
        except MalformedPayload as exc:
            rejected += [f"{where}: {exc} (its {signal.name} are refused)"] * count(scopes)
            continue
        target = getattr(request, signal.resources).add()
        target.CopyFrom(getattr(out, signal.resources)[0])
        for j, sx in enumerate(scopes):
            scope_where = f"{where}.{scopes_key}[{j}]"
            if not isinstance(sx, dict):
                raise MalformedPayload(f"{scope_where} is not an object")
            items = _list(sx, signal.items)
            scope_out = getattr(target, signal.scopes).add()
            try:
                _parse_dict(
                    {k: v for k, v in sx.items() if k not in _keys(signal.items)}, scope_out
                )
            except MalformedPayload as exc:
                getattr(target, signal.scopes).pop()
                rejected += [f"{scope_where}: {exc} (its {signal.name} are refused)"] * len(items)
                continue
            for k, raw in enumerate(items):
                item = signal.item()
                try:
                    if isinstance(raw, dict):
                        raw = json.loads(json.dumps(raw))  # a copy: the ids are rewritten
                        _hex_ids(raw)
                    _parse_dict(raw, item)
                except MalformedPayload as exc:
                    rejected.append(f"{scope_where}.{items_key}[{k}]: {exc}")
                    continue
                getattr(scope_out, signal.items).append(item)
    return Decoded(request, rejected)


def _keys(name: str) -> tuple[str, str]:
    """A field's two OTLP/JSON spellings: lowerCamelCase and the proto name."""
    camel = "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))
    return (camel, name)


def _load_json(body: bytes) -> tuple[dict[str, Any], bool]:
    try:
        text, clean = body.decode(), True
    except UnicodeDecodeError:
        text, clean = body.decode("utf-8", "surrogateescape"), False
    try:
        stripped = text.removeprefix("\ufeff")
        document = json.loads(stripped, object_pairs_hook=named_fields) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedPayload("not an OTLP JSON request: nested too deeply") from exc
    if not isinstance(document, dict):
        raise MalformedPayload("an OTLP JSON request is an object")
    return document, clean


def parse_request(body: bytes, content_type: str, signal: Signal) -> Decoded:
    """Decode an export request of ``signal``; MalformedPayload for anything that is not
    one. An item that cannot be decoded is refused alone, its reason in ``rejected``."""
    if content_type == PROTOBUF:
        try:
            return Decoded(_strict(signal.request, body))
        except (DecodeError, RecursionError):
            return _decode_split(body, signal)
    document, clean = _load_json(body)
    if clean:
        strict = json.loads(json.dumps(document))
        try:
            _hex_ids(strict)
            request = signal.request()
            _parse_dict(strict, request)
            return Decoded(request)
        except MalformedPayload:
            pass
    return _parse_json_by_item(document, signal)


def export_response(signal: Signal, decoded: Decoded, refused: list[str]) -> Message:
    """``partial_success`` counting and naming the items refused (the reasons once each,
    the first ten)."""
    response: Any = signal.response()
    reasons = decoded.rejected + refused
    if reasons:
        setattr(response.partial_success, signal.rejected, len(reasons))
        distinct = list(dict.fromkeys(reasons))
        more = f"; and {len(distinct) - 10} more" if len(distinct) > 10 else ""
        response.partial_success.error_message = "; ".join(distinct[:10]) + more
    reply: Message = response
    return reply


# --- what the store keeps ---------------------------------------------------------------------


@dataclass(slots=True)
class LogRow:
    trace_id: str  # hex, '' when the record was written outside a span
    span_id: str
    time_ns: int
    service: str
    severity: int
    resource: bytes
    resource_schema_url: str
    scope: bytes
    scope_schema_url: str
    record: bytes


@dataclass(slots=True)
class PointRow:
    """One metric data point, with what RED and retention need beside it."""

    service: str
    name: str
    unit: str
    kind: str  # the Metric's data field: gauge, sum, histogram, exponential_histogram, summary
    temporality: int
    #: Resource, scope, metric and attributes, hashed: the points of one time series.
    series: bytes
    start_ns: int
    time_ns: int
    #: For http.server.request.duration: "METHOD /route", and whether it is a server error.
    operation: str
    error: bool
    resource: bytes
    resource_schema_url: str
    scope: bytes
    scope_schema_url: str
    point: bytes


def _id(value: bytes, size: int) -> str | None:
    """A hex id, '' for none, None when it is not ``size`` bytes."""
    if not value or not any(value):
        return ""
    return value.hex() if len(value) == size else None


def log_rows(request: ExportLogsServiceRequest) -> tuple[list[LogRow], list[str]]:
    rows: list[LogRow] = []
    refused: list[str] = []
    for rl in request.resource_logs:
        resource = rl.resource.SerializeToString()
        service = service_name(rl.resource)
        for sl in rl.scope_logs:
            scope = sl.scope.SerializeToString()
            for record in sl.log_records:
                trace_id, span_id = _id(record.trace_id, 16), _id(record.span_id, 8)
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                if trace_id is None or span_id is None:
                    refused.append("log record: invalid trace or span id")
                    continue
                if time_ns > _MAX_TIMESTAMP:
                    refused.append("log record: timestamp out of range")
                    continue
                rows.append(
                    LogRow(
                        trace_id,
                        span_id,
                        time_ns,
                        service,
                        record.severity_number,
                        resource,
                        rl.schema_url,
                        scope,
                        sl.schema_url,
                        record.SerializeToString(),
                    )
                )
    return rows, refused


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        if kind is not None and kind not in ("array_value", "kvlist_value"):
            out[kv.key] = getattr(kv.value, kind)
    return out


def _operation(name: str, attributes: dict[str, Any]) -> tuple[str, bool]:
    if name != SERVER_DURATION:
        return "", False
    method = str(attributes.get("http.request.method", ""))
    route = str(attributes.get("http.route", ""))
    status = attributes.get("http.response.status_code")
    error = "error.type" in attributes or (isinstance(status, int) and status >= 500)
    return f"{method} {route}".strip() or "unknown", error


def _point_problem(kind: str, point: Any) -> str | None:
    if point.time_unix_nano > _MAX_TIMESTAMP or point.start_time_unix_nano > _MAX_TIMESTAMP:
        return "timestamp out of range"
    if kind == "histogram":
        bounds, counts = list(point.explicit_bounds), list(point.bucket_counts)
        if counts and len(counts) != len(bounds) + 1:
            return "bucket_counts must have one more entry than explicit_bounds"
        if any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
            return "explicit_bounds must increase"
        if counts and sum(counts) != point.count:
            return "count is not the sum of bucket_counts"
    for exemplar in getattr(point, "exemplars", ()):
        if _id(exemplar.trace_id, 16) is None or _id(exemplar.span_id, 8) is None:
            return "exemplar with an invalid trace or span id"
    return None


def metric_rows(request: ExportMetricsServiceRequest) -> tuple[list[PointRow], list[str]]:
    rows: list[PointRow] = []
    refused: list[str] = []
    for rm in request.resource_metrics:
        resource = rm.resource.SerializeToString()
        service = service_name(rm.resource)
        for sm in rm.scope_metrics:
            scope = sm.scope.SerializeToString()
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if not metric.name or kind is None:
                    refused.append(f"metric {metric.name[:80]!r}: no name or no data")
                    continue
                data = getattr(metric, kind)
                temporality = getattr(
                    data,
                    "aggregation_temporality",
                    AggregationTemporality.AGGREGATION_TEMPORALITY_UNSPECIFIED,
                )
                for point in data.data_points:
                    problem = _point_problem(kind, point)
                    if problem is not None:
                        refused.append(f"metric {metric.name[:80]!r}: {problem}")
                        continue
                    attributes = _attributes(point.attributes)
                    operation, error = _operation(metric.name, attributes)
                    series = hashlib.sha1(
                        b"\0".join(
                            (
                                resource,
                                scope,
                                metric.name.encode(),
                                b"".join(kv.SerializeToString() for kv in point.attributes),
                            )
                        )
                    ).digest()
                    rows.append(
                        PointRow(
                            service,
                            metric.name,
                            metric.unit,
                            kind,
                            temporality,
                            series,
                            point.start_time_unix_nano,
                            point.time_unix_nano,
                            operation,
                            error,
                            resource,
                            rm.schema_url,
                            scope,
                            sm.schema_url,
                            point.SerializeToString(),
                        )
                    )
    return rows, refused


def resource_logs_json(
    rows: list[tuple[bytes, str, bytes, str, bytes]],
) -> list[dict[str, Any]]:
    """Stored log records, grouped into OTLP JSON ``resourceLogs`` (hex ids)."""
    grouped: dict[tuple[bytes, str], dict[tuple[bytes, str], list[bytes]]] = {}
    for resource, resource_url, scope, scope_url, record in rows:
        grouped.setdefault((resource, resource_url), {}).setdefault((scope, scope_url), []).append(
            record
        )
    out = []
    for (resource, resource_url), scopes in grouped.items():
        scope_logs = []
        for (scope, scope_url), records in scopes.items():
            entry: dict[str, Any] = {
                "scope": _json(InstrumentationScope.FromString(scope)),
                "logRecords": [_log_json(LogRecord.FromString(r)) for r in records],
            }
            if scope_url:
                entry["schemaUrl"] = scope_url
            scope_logs.append(entry)
        resource_entry: dict[str, Any] = {
            "resource": _json(Resource.FromString(resource)),
            "scopeLogs": scope_logs,
        }
        if resource_url:
            resource_entry["schemaUrl"] = resource_url
        out.append(resource_entry)
    return out


def _json(message: Message) -> dict[str, Any]:
    document: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    return document


def _log_json(record: LogRecord) -> dict[str, Any]:
    document = _json(record)
    for key in ("traceId", "spanId"):
        if key in document:
            document[key] = base64.b64decode(document[key]).hex()
    return document


def histogram_point(data: bytes) -> HistogramDataPoint:
    return HistogramDataPoint.FromString(data)


#: For tests and tools: walk a decoded request's items.
def items(request: Any, signal: Signal) -> Iterator[Message]:
    for rx in getattr(request, signal.resources):
        for sx in getattr(rx, signal.scopes):
            yield from getattr(sx, signal.items)
