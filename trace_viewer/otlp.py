"""OTLP trace payloads: decoding requests (protobuf or JSON) and encoding OTLP JSON.

Decoding uses opentelemetry-proto's generated messages. OTLP/JSON is *not* plain proto3
JSON: trace and span ids are hex, not base64 (https://opentelemetry.io/docs/specs/otlp/
#json-protobuf-encoding), so ids are translated around ``google.protobuf.json_format``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class MalformedPayload(ValueError):
    """The body is not an OTLP trace export request (400)."""


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError as exc:
                raise MalformedPayload(f"{key} {value!r} is not hex") from exc


def _base64_ids_to_hex(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = base64.b64decode(value).hex()


def _items(obj: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    """The objects in the first list found under ``keys`` (camelCase or snake_case)."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def _walk_spans(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span and span link in an OTLP JSON request; the shape is checked later."""
    for rs in _items(request, "resourceSpans", "resource_spans"):
        for ss in _items(rs, "scopeSpans", "scope_spans"):
            for span in _items(ss, "spans"):
                yield span
                yield from _items(span, "links")


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an export request; raise MalformedPayload for anything that is not one."""
    request = ExportTraceServiceRequest()
    if content_type == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise MalformedPayload(f"not an OTLP protobuf message: {exc}") from exc
        return request
    try:
        document = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MalformedPayload("an OTLP JSON request is an object")
    for obj in _walk_spans(document):
        # OTLP/JSON also allows snake_case keys; normalise the id ones before translating.
        for snake, camel in (
            ("trace_id", "traceId"),
            ("span_id", "spanId"),
            ("parent_span_id", "parentSpanId"),
        ):
            if snake in obj:
                obj[camel] = obj.pop(snake)
        _hex_ids_to_base64(obj)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise MalformedPayload(f"not an OTLP JSON request: {exc}") from exc
    return request


def encode_response(response: ExportTraceServiceResponse, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return bytes(response.SerializeToString())
    return json.dumps(json_format.MessageToDict(response, use_integers_for_enums=True)).encode()


def message_json(message: Span | Resource | InstrumentationScope) -> dict[str, Any]:
    """A message as OTLP JSON: camelCase keys, integer enums, hex ids."""
    document: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    if isinstance(message, Span):
        _base64_ids_to_hex(document)
        for link in document.get("links", []):
            _base64_ids_to_hex(link)
    return document


@dataclass(frozen=True)
class SpanRecord:
    """One span as the store keeps it: indexed fields beside its serialized message."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    resource: bytes  # serialized Resource
    scope: bytes  # serialized InstrumentationScope
    span: bytes  # serialized Span


def service_name(resource: Resource) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return str(kv.value.string_value)
    return "unknown_service"


def records(request: ExportTraceServiceRequest) -> tuple[list[SpanRecord], list[str]]:
    """Split a request into storable spans and the reasons for each span rejected."""
    kept: list[SpanRecord] = []
    rejected: list[str] = []
    for rs in request.resource_spans:
        resource = rs.resource.SerializeToString()
        service = service_name(rs.resource)
        for ss in rs.scope_spans:
            scope = ss.scope.SerializeToString()
            for span in ss.spans:
                # Ids must be 16/8 bytes and not all zero (W3C Trace Context).
                if len(span.trace_id) != 16 or not any(span.trace_id):
                    rejected.append(f"span {span.name!r}: invalid trace id")
                    continue
                if len(span.span_id) != 8 or not any(span.span_id):
                    rejected.append(f"span {span.name!r}: invalid span id")
                    continue
                if span.parent_span_id and len(span.parent_span_id) != 8:
                    rejected.append(f"span {span.name!r}: invalid parent span id")
                    continue
                kept.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        service=service,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=max(span.end_time_unix_nano, span.start_time_unix_nano),
                        status_code=span.status.code,
                        resource=resource,
                        scope=scope,
                        span=span.SerializeToString(),
                    )
                )
    return kept, rejected


def resource_spans_json(
    rows: list[tuple[bytes, bytes, bytes]],
) -> list[dict[str, Any]]:
    """Group (resource, scope, span) messages into OTLP JSON ``resourceSpans``."""
    grouped: dict[bytes, dict[bytes, list[bytes]]] = {}
    for resource_key, scope_key, span_key in rows:
        grouped.setdefault(resource_key, {}).setdefault(scope_key, []).append(span_key)
    out = []
    for resource_bytes, scopes in grouped.items():
        resource = Resource()
        resource.ParseFromString(resource_bytes)
        scope_spans = []
        for scope_bytes, spans in scopes.items():
            scope = InstrumentationScope()
            scope.ParseFromString(scope_bytes)
            decoded = []
            for span_bytes in spans:
                span = Span()
                span.ParseFromString(span_bytes)
                decoded.append(message_json(span))
            scope_spans.append({"scope": message_json(scope), "spans": decoded})
        out.append({"resource": message_json(resource), "scopeSpans": scope_spans})
    return out
