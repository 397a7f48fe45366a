"""OTLP trace payloads: decoding requests (protobuf or JSON) and encoding OTLP JSON.

Decoding uses opentelemetry-proto's generated messages. OTLP/JSON is *not* plain proto3
JSON: trace and span ids are hex, not base64 (https://opentelemetry.io/docs/specs/otlp/
#json-protobuf-encoding), so ids are translated around ``google.protobuf.json_format``.

The strict decode is the fast path; when it refuses a request, :mod:`trace_viewer.lenient`
splits it span by span, so one bad span is repaired or refused alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from common.fault_rules import ATTR_INJECTED
from trace_viewer.attributes import attribute_key, attribute_keys, value_text
from trace_viewer.lenient import (
    Decoded,
    LenientRequest,
    LenientResourceSpans,
    LenientScopeSpans,
    LenientSpan,
    MalformedPayload,
    decode_protobuf,
    named_fields,
    parse_lenient,
    settle,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_SNAKE_IDS = (("trace_id", "traceId"), ("span_id", "spanId"), ("parent_span_id", "parentSpanId"))
_HEX = re.compile(r"^[0-9a-fA-F]*$")
#: SQLite integers are signed 64-bit; OTLP timestamps are unsigned.
_MAX_TIMESTAMP = 2**63 - 1
#: A double of ±infinity in protobuf's wire format (little-endian IEEE 754).
_WIRE_INFINITY = (b"\x00\x00\x00\x00\x00\x00\xf0\x7f", b"\x00\x00\x00\x00\x00\x00\xf0\xff")
#: Jaeger v2's query API writes a non-finite double as the Collector's pdata does ("NaN",
#: "+Inf", "-Inf"); protobuf's JSON printer says "Infinity". We write Jaeger's spelling;
#: json_format reads both.
_PDATA_DOUBLES = {"Infinity": "+Inf", "-Infinity": "-Inf"}
#: The HTTP status of a server or client span (stable semantic conventions, then the old name).
HTTP_STATUS_ATTRIBUTES = ("http.response.status_code", "http.status_code")
#: The order's outcome: order-service sets it on its ``place_order`` span
#: (order_service/flow.py), the status its API answers with (confirmed, payment_failed, …).
ORDER_SPAN = ("order-service", "place_order")
ORDER_STATUS_ATTRIBUTE = "shop.order.status"


class _NotStrict(Exception):
    """The strict JSON decode refused the document: decode it span by span instead."""


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    # OTLP/JSON also allows snake_case keys; normalise the id ones before translating.
    for snake, camel in _SNAKE_IDS:
        if snake in obj:
            obj[camel] = obj.pop(snake)
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            if not _HEX.match(value) or len(value) % 2:
                raise MalformedPayload(f"{key} {value[:40]!r} is not hex")
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()


def _base64_ids_to_hex(obj: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = base64.b64decode(value).hex()


def _items(obj: dict[str, Any], *keys: str) -> list[Any]:
    """The list found under the first of ``keys`` present (camelCase or snake_case)."""
    for key in keys:
        if key in obj:
            value = obj[key]
            if value is None:
                return []
            if not isinstance(value, list):
                raise MalformedPayload(f"{key} is not a list")
            return value
    return []


def _objects(obj: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    try:
        return [item for item in _items(obj, *keys) if isinstance(item, dict)]
    except MalformedPayload:
        return []


def _walk_spans(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span and span link in an OTLP JSON request; the shape is checked later."""
    for rs in _objects(request, "resourceSpans", "resource_spans"):
        for ss in _objects(rs, "scopeSpans", "scope_spans"):
            for span in _objects(ss, "spans"):
                yield span
                yield from _objects(span, "links")


def _load_json(text: str) -> dict[str, Any]:
    try:
        stripped = text.removeprefix("\ufeff")
        document = json.loads(stripped, object_pairs_hook=named_fields) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedPayload("not an OTLP JSON request: nested too deeply") from exc
    if not isinstance(document, dict):
        raise MalformedPayload("an OTLP JSON request is an object")
    return document


def _parse_json_strict(document: dict[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        for obj in _walk_spans(document):
            _hex_ids_to_base64(obj)
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (
        MalformedPayload,
        json_format.ParseError,
        binascii.Error,
        TypeError,
        ValueError,
        RecursionError,
    ) as exc:
        raise _NotStrict from exc
    return request


def _span_reason(where: str, span: Any, exc: Exception) -> str:
    name = span.get("name") if isinstance(span, dict) else None
    label = f" ({name[:80]!r})" if isinstance(name, str) else ""
    return f"{where}{label}: {exc}"


def _parse_json_by_span(document: dict[str, Any]) -> Decoded:
    """Each resource, scope and span parsed on its own: a bad one costs its own spans."""
    shallow = LenientRequest()
    rejected: list[str] = []
    for i, rs in enumerate(_items(document, "resourceSpans", "resource_spans")):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise MalformedPayload(f"{where} is not an object")
        scope_spans = _items(rs, "scopeSpans", "scope_spans")
        rs_message = LenientResourceSpans()
        head = {k: v for k, v in rs.items() if k not in ("scopeSpans", "scope_spans")}
        try:
            parse_lenient(head, rs_message, ResourceSpans.DESCRIPTOR)
        except MalformedPayload as exc:
            for ss in scope_spans:
                spans = _objects(ss, "spans") if isinstance(ss, dict) else []
                rejected.extend(f"{where}: {exc} (its spans are refused)" for _ in spans)
            continue
        for j, ss in enumerate(scope_spans):
            ss_where = f"{where}.scopeSpans[{j}]"
            if not isinstance(ss, dict):
                raise MalformedPayload(f"{ss_where} is not an object")
            spans = _items(ss, "spans")
            ss_message = LenientScopeSpans()
            try:
                parse_lenient(
                    {k: v for k, v in ss.items() if k != "spans"},
                    ss_message,
                    ScopeSpans.DESCRIPTOR,
                )
            except MalformedPayload as exc:
                rejected.extend(f"{ss_where}: {exc} (its spans are refused)" for _ in spans)
                continue
            for k, raw in enumerate(spans):
                span_where = f"{ss_where}.spans[{k}]"
                try:
                    if not isinstance(raw, dict):
                        raise MalformedPayload("not an object")
                    span = dict(raw)
                    _hex_ids_to_base64(span)
                    if isinstance(span.get("links"), list):
                        span["links"] = [
                            dict(link) if isinstance(link, dict) else link for link in span["links"]
                        ]
                        for link in span["links"]:
                            if isinstance(link, dict):
                                _hex_ids_to_base64(link)
                    message = LenientSpan()
                    parse_lenient(span, message, Span.DESCRIPTOR)
                except MalformedPayload as exc:
                    rejected.append(_span_reason(span_where, raw, exc))
                    continue
                ss_message.spans.append(message.SerializeToString())
            rs_message.scope_spans.append(ss_message)
        shallow.resource_spans.append(rs_message)
    return settle(shallow, rejected)


def _parse_json(body: bytes) -> Decoded:
    try:
        text, clean = body.decode(), True
    except UnicodeDecodeError:
        # Invalid UTF-8: keep the bytes (as surrogates) and repair each string that holds them.
        text, clean = body.decode("utf-8", "surrogateescape"), False
    if clean:
        try:
            return Decoded(_parse_json_strict(_load_json(text)))
        except _NotStrict:
            pass
    return _parse_json_by_span(_load_json(text))  # afresh: the strict pass rewrote the ids


def parse_request(body: bytes, content_type: str) -> Decoded:
    """Decode an export request; raise MalformedPayload for anything that is not one.

    A span that cannot be stored as sent is repaired (invalid UTF-8) or refused alone, with
    the reason, in ``Decoded.rejected``.
    """
    if content_type == PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:
            return decode_protobuf(body)
        return Decoded(request)
    return _parse_json(body)


def encode_response(response: Message, content_type: str) -> bytes:
    if content_type == PROTOBUF:
        return bytes(response.SerializeToString())
    return json.dumps(json_format.MessageToDict(response, use_integers_for_enums=True)).encode()


def _pdata_doubles(obj: Any) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "doubleValue" and isinstance(value, str):
                obj[key] = _PDATA_DOUBLES.get(value, value)
            elif isinstance(value, dict | list):
                _pdata_doubles(value)
    elif isinstance(obj, list):
        for item in obj:
            _pdata_doubles(item)


def message_json(
    message: Span | Resource | InstrumentationScope, encoded: bytes = b""
) -> dict[str, Any]:
    """A message as OTLP JSON: camelCase keys, integer enums, hex ids, and NaN/±Inf doubles
    spelled as Jaeger spells them. ``encoded`` (its wire bytes, when at hand) saves a look
    for infinities in messages that have none."""
    document: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    if isinstance(message, Span):
        _base64_ids_to_hex(document)
        for link in document.get("links", []):
            _base64_ids_to_hex(link)
    if not encoded or any(inf in encoded for inf in _WIRE_INFINITY):
        _pdata_doubles(document)
    return document


@dataclass(slots=True)
class SpanRecord:
    """One span as the store keeps it: indexed fields beside its serialized message.

    Not frozen: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, several times slower, and one is built for every span."""

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
    resource_schema_url: str = ""
    scope_schema_url: str = ""
    #: An injected fault touched it (attribute ``ordersim.fault.injected = true``).
    fault: bool = False
    #: The search index keys of its attributes, its events' and its links'
    #: (:mod:`trace_viewer.attributes`), packed as native int64s (``array("q")``).
    attribute_keys: bytes = b""
    #: Its ``http.response.status_code``, if it has one.
    http_status: int | None = None
    #: ``shop.order.status`` when it is order-service's ``place_order`` span.
    order_status: str | None = None
    #: (trace id, span id) of each span it links to, hex; links with invalid ids left out.
    links: list[tuple[str, str]] | None = None


#: What Jaeger v2 names a resource without a usable ``service.name`` and a span without a
#: name (its ingest sanitizers, ``internal/jptrace/sanitizer`` in jaegertracing/jaeger).
MISSING_SERVICE_NAME = "missing-service-name"
EMPTY_SERVICE_NAME = "empty-service-name"
SERVICE_NAME_WRONG_TYPE = "service-name-wrong-type"
EMPTY_SPAN_NAME = "empty-span-name"


def service_name(resource: Resource) -> str:
    """The resource's ``service.name``, or Jaeger's placeholder when it is missing, empty
    or not a string."""
    for kv in resource.attributes:
        if kv.key == "service.name":
            if kv.value.WhichOneof("value") != "string_value":
                return SERVICE_NAME_WRONG_TYPE
            return str(kv.value.string_value) or EMPTY_SERVICE_NAME
    return MISSING_SERVICE_NAME


@dataclass(slots=True)
class SpanIndex:
    """What the store indexes of a span besides its fields, found in one walk over its
    attributes (and its events' and links', for the search index)."""

    keys: bytes
    fault: bool = False
    http_status: int | None = None
    order_status: str | None = None


@dataclass(frozen=True, slots=True)
class _Attribute:
    """What index_span makes of one attribute (key and value)."""

    #: Its search index key; None when it is not indexed.
    key: int | None
    #: Its integer value when it is an HTTP status attribute, else None.
    http_status: int | None = None
    #: Whether it says that an injected fault touched the span.
    fault: bool = False
    #: Whether it is ``shop.order.status`` (the order's outcome on the order span), and its
    #: text.
    order: bool = False
    order_status: str | None = None
    #: Any of the three above: most attributes are none of them.
    special: bool = False


def _attribute(kv: KeyValue) -> _Attribute:
    key, value = kv.key, kv.value
    text = value_text(value)
    indexed = attribute_key(key, text) if text is not None else None
    if key in HTTP_STATUS_ATTRIBUTES:
        status = value.int_value if value.WhichOneof("value") == "int_value" else None
        return _Attribute(indexed, http_status=status, special=status is not None)
    if key == ATTR_INJECTED:
        return _Attribute(indexed, fault=value.bool_value, special=value.bool_value)
    if key == ORDER_STATUS_ATTRIBUTE:
        return _Attribute(indexed, order=True, order_status=text, special=True)
    return _Attribute(indexed)


#: _attribute's answers by the attribute's wire bytes (the same bytes, the same key and
#: value): most attributes repeat from span to span (methods, routes, statuses, statements),
#: and serializing one costs less than reading its key and value out of the message and
#: hashing them again. Bounded like attributes.attribute_key's cache: ids do not repeat.
_attributes: dict[bytes, _Attribute] = {}
_ATTRIBUTES_CACHED = 50_000


def index_span(span: Span, service: str) -> SpanIndex:
    keys: set[int] = set()
    found = SpanIndex(b"")
    for kv in span.attributes:
        wire = kv.SerializeToString()
        attribute = _attributes.get(wire)
        if attribute is None:
            if len(_attributes) >= _ATTRIBUTES_CACHED:
                _attributes.clear()
            attribute = _attributes[wire] = _attribute(kv)
        if attribute.key is not None:
            keys.add(attribute.key)
        if attribute.special:
            if attribute.http_status is not None and found.http_status is None:
                found.http_status = attribute.http_status
            elif attribute.fault:
                found.fault = True
            elif attribute.order and (service, span.name) == ORDER_SPAN:
                found.order_status = attribute.order_status
    for event in span.events:
        attribute_keys(event.attributes, keys)
    for link in span.links:
        attribute_keys(link.attributes, keys)
    found.keys = array("q", keys).tobytes()
    return found


def link_targets(span: Span) -> list[tuple[str, str]] | None:
    """Where a span's links point, for the store's reverse index (None: no links, the
    common case)."""
    if not span.links:
        return None
    return [
        (link.trace_id.hex(), link.span_id.hex())
        for link in span.links
        if len(link.trace_id) == 16
        and any(link.trace_id)
        and len(link.span_id) == 8
        and any(link.span_id)
    ]


def _invalid(span: Span, trace_id: bytes, span_id: bytes, start: int, end: int) -> str | None:
    """Why a span cannot be stored, or None."""
    # Ids must be 16/8 bytes and not all zero (W3C Trace Context).
    if len(trace_id) != 16 or not any(trace_id):
        return "invalid trace id"
    if len(span_id) != 8 or not any(span_id):
        return "invalid span id"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "invalid parent span id"
    if start > _MAX_TIMESTAMP or end > _MAX_TIMESTAMP:
        return "timestamp out of range"
    return None


def records(request: ExportTraceServiceRequest) -> tuple[list[SpanRecord], list[str]]:
    """Split a request into storable spans and the reasons for each span rejected."""
    kept: list[SpanRecord] = []
    rejected: list[str] = []
    for rs in request.resource_spans:
        resource = rs.resource.SerializeToString()
        service = service_name(rs.resource)
        resource_schema_url = rs.schema_url
        for ss in rs.scope_spans:
            scope = ss.scope.SerializeToString()
            scope_schema_url = ss.schema_url
            for span in ss.spans:
                trace_id, span_id = span.trace_id, span.span_id
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                reason = _invalid(span, trace_id, span_id, start, end)
                if reason is not None:
                    rejected.append(f"span {span.name[:80]!r}: {reason}")
                    continue
                encoded = span.SerializeToString()
                indexed = index_span(span, service)
                kept.append(
                    SpanRecord(
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name or EMPTY_SPAN_NAME,
                        service=service,
                        kind=span.kind,
                        start_ns=start,
                        end_ns=max(end, start),
                        status_code=span.status.code,
                        resource=resource,
                        scope=scope,
                        span=encoded,
                        resource_schema_url=resource_schema_url,
                        scope_schema_url=scope_schema_url,
                        fault=indexed.fault,
                        attribute_keys=indexed.keys,
                        http_status=indexed.http_status,
                        order_status=indexed.order_status,
                        links=link_targets(span),
                    )
                )
    return kept, rejected


#: One stored span with its resource and scope: (resource, its schema URL, scope, its schema
#: URL, span), the messages serialized.
StoredSpan = tuple[bytes, str, bytes, str, bytes]


def resource_spans_json(rows: list[StoredSpan]) -> list[dict[str, Any]]:
    """Group stored spans into OTLP JSON ``resourceSpans`` (with their ``schemaUrl``s)."""
    grouped: dict[tuple[bytes, str], dict[tuple[bytes, str], list[bytes]]] = {}
    for resource_key, resource_url, scope_key, scope_url, span_key in rows:
        grouped.setdefault((resource_key, resource_url), {}).setdefault(
            (scope_key, scope_url), []
        ).append(span_key)
    out = []
    for (resource_bytes, resource_url), scopes in grouped.items():
        scope_spans = []
        for (scope_bytes, scope_url), spans in scopes.items():
            decoded = [message_json(Span.FromString(b), b) for b in spans]
            entry: dict[str, Any] = {
                "scope": message_json(InstrumentationScope.FromString(scope_bytes), scope_bytes),
                "spans": decoded,
            }
            if scope_url:
                entry["schemaUrl"] = scope_url
            scope_spans.append(entry)
        resource = message_json(Resource.FromString(resource_bytes), resource_bytes)
        resource_entry: dict[str, Any] = {"resource": resource, "scopeSpans": scope_spans}
        if resource_url:
            resource_entry["schemaUrl"] = resource_url
        out.append(resource_entry)
    return out
