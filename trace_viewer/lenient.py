"""Lenient decoding of OTLP trace requests: one bad span costs that span, never its batch.

Python's protobuf runtime refuses a whole message when one string field holds invalid UTF-8,
and ``json_format`` refuses a whole document for one field of the wrong type. A collector
must not lose a batch for one span (the OTLP spec's ``partial_success``), so when the strict
decode fails, :func:`settle` takes over:

- The request is decoded against a copy of the OTLP descriptors in which every ``string``
  field is ``bytes`` (the same wire format, without the UTF-8 check) and
  ``ScopeSpans.spans`` is ``repeated bytes``, so each span is decoded on its own: a span
  that cannot be decoded is refused alone, with the reason.
- Invalid UTF-8 is repaired as Jaeger's ingest repairs it (its UTF-8 sanitizer,
  ``internal/jptrace/sanitizer/utf8.go``), so that nothing the client sent is lost: an
  invalid attribute value becomes a bytes value holding the original bytes; an invalid key
  becomes ``invalid-tag-key-N`` holding ``key:value``; an invalid span name, event name,
  status message, scope name or version becomes a placeholder (``invalid-span-name`` …)
  and the original bytes go in an attribute of that name; an invalid trace state or schema
  URL is cleared and kept the same way (``invalid-trace-state``, ``invalid-schema-url``).
- The repaired request is encoded again and decoded strictly, so what leaves this module
  is an ordinary ``ExportTraceServiceRequest``.

No library does this: the descriptor copy is a few lines of ``descriptor_pb2``, the repair
rules are Jaeger's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


class MalformedPayload(ValueError):
    """The body is not an OTLP trace export request at all (400)."""


@dataclass
class Decoded:
    """A decoded request, the reason for each span refused, and how many spans were repaired."""

    request: ExportTraceServiceRequest
    rejected: list[str] = field(default_factory=list)
    repaired: int = 0


# --- the lenient descriptors -----------------------------------------------------------------


def _files(file: FileDescriptor) -> Iterator[FileDescriptor]:
    """A .proto file's dependencies, then itself (each once)."""
    seen: set[str] = set()

    def visit(f: FileDescriptor) -> Iterator[FileDescriptor]:
        for dependency in f.dependencies:
            yield from visit(dependency)
        if f.name not in seen:
            seen.add(f.name)
            yield f

    yield from visit(file)


def _loosen(messages: Any, package: str) -> None:
    for message in messages:
        for f in message.field:
            if f.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
            if f"{package}.{message.name}" == "opentelemetry.proto.trace.v1.ScopeSpans" and (
                f.name == "spans"
            ):
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                f.ClearField("type_name")
        _loosen(message.nested_type, f"{package}.{message.name}")


def _lenient_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in _files(trace_service_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        _loosen(proto.message_type, proto.package)
        pool.Add(proto)
    return pool


_POOL = _lenient_pool()


def _lenient(name: str) -> Any:  # a generated class: its fields are not known to mypy
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(name))


#: The request with its strings as bytes and each span as its own encoded bytes.
LenientRequest = _lenient("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest")
LenientResourceSpans = _lenient("opentelemetry.proto.trace.v1.ResourceSpans")
LenientScopeSpans = _lenient("opentelemetry.proto.trace.v1.ScopeSpans")
LenientSpan = _lenient("opentelemetry.proto.trace.v1.Span")


# --- UTF-8 repair, as Jaeger's sanitizer does it ----------------------------------------------


def _valid(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _put_bytes(attributes: Any, key: str, data: bytes) -> None:
    kv = attributes.add()
    kv.key = key.encode()
    kv.value.bytes_value = data


def _repair_string(owner: Any, name: str, placeholder: str, attributes: Any, key: str) -> int:
    """Replace an invalid string field by ``placeholder``, keeping its bytes under ``key``."""
    value: bytes = getattr(owner, name)
    if _valid(value):
        return 0
    _put_bytes(attributes, key, value)
    setattr(owner, name, placeholder.encode())
    return 1


def _value_text(value: Any) -> bytes:
    """A value's bytes for ``invalid-tag-key-N`` (Jaeger: ``key:`` + the value as a string)."""
    kind = value.WhichOneof("value")
    if kind in ("string_value", "bytes_value"):
        return bytes(getattr(value, kind))
    if kind is None:
        return b""
    # Its nested strings are repaired by now, so the strict message takes it.
    document = json_format.MessageToDict(AnyValue.FromString(value.SerializeToString()))
    plain = next(iter(document.values()))
    return (plain if isinstance(plain, str) else json.dumps(plain)).encode()


def _repair_value(value: Any) -> int:
    kind = value.WhichOneof("value")
    if kind == "string_value" and not _valid(value.string_value):
        value.bytes_value = value.string_value
        return 1
    if kind == "array_value":
        return sum(_repair_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _repair_attributes(value.kvlist_value.values)
    return 0


def _repair_attributes(attributes: Any) -> int:
    repairs = sum(_repair_value(kv.value) for kv in attributes)
    invalid = [kv.key + b":" + _value_text(kv.value) for kv in attributes if not _valid(kv.key)]
    if invalid:
        kept = [kv for kv in attributes if _valid(kv.key)]
        copies = [type(kv).FromString(kv.SerializeToString()) for kv in kept]
        del attributes[:]
        attributes.extend(copies)
        for number, data in enumerate(invalid, start=1):
            _put_bytes(attributes, f"invalid-tag-key-{number}", data)
    return repairs + len(invalid)


def _repair_span(span: Any) -> int:
    attributes = span.attributes
    repairs = _repair_string(span, "name", "invalid-span-name", attributes, "invalid-span-name")
    repairs += _repair_string(span, "trace_state", "", attributes, "invalid-trace-state")
    repairs += _repair_string(
        span.status, "message", "invalid-status-message", attributes, "invalid-status-message"
    )
    repairs += _repair_attributes(attributes)
    for event in span.events:
        repairs += _repair_string(
            event, "name", "invalid-event-name", event.attributes, "invalid-event-name"
        )
        repairs += _repair_attributes(event.attributes)
    for link in span.links:
        repairs += _repair_string(link, "trace_state", "", link.attributes, "invalid-trace-state")
        repairs += _repair_attributes(link.attributes)
    return repairs


def _repair_scope(scope_spans: Any) -> int:
    scope = scope_spans.scope
    attributes = scope.attributes
    repairs = _repair_string(scope_spans, "schema_url", "", attributes, "invalid-schema-url")
    repairs += _repair_string(scope, "name", "invalid-scope-name", attributes, "invalid-scope-name")
    repairs += _repair_string(
        scope, "version", "invalid-scope-version", attributes, "invalid-scope-version"
    )
    return repairs + _repair_attributes(attributes)


def _entity_ref_valid(ref: Any) -> bool:
    return all(_valid(s) for s in (ref.schema_url, ref.type, *ref.id_keys, *ref.description_keys))


def _repair_resource(resource_spans: Any) -> int:
    resource = resource_spans.resource
    repairs = _repair_string(
        resource_spans, "schema_url", "", resource.attributes, "invalid-schema-url"
    )
    repairs += _repair_attributes(resource.attributes)
    refs = getattr(resource, "entity_refs", None)
    if refs is not None and not all(_entity_ref_valid(r) for r in refs):
        # An entity ref has no attributes to keep the bytes in: Jaeger drops it, and so do we
        # (the resource attributes it names are kept).
        kept = [type(r).FromString(r.SerializeToString()) for r in refs if _entity_ref_valid(r)]
        repairs += len(refs) - len(kept)
        del refs[:]
        refs.extend(kept)
    return repairs


# --- settling a lenient request ---------------------------------------------------------------


def _label(span: Any) -> str:
    name = bytes(span.name).decode(errors="replace")
    return f"span {name!r} ({bytes(span.span_id).hex() or 'no span id'})"


def settle(shallow: Any, rejected: list[str] | None = None) -> Decoded:
    """Decode each span of a lenient request, refuse the undecodable, repair the rest, and
    return the strict request."""
    rejected = list(rejected or [])
    repaired = 0
    for rs_index, rs in enumerate(shallow.resource_spans):
        resource_repairs = _repair_resource(rs)
        for ss_index, ss in enumerate(rs.scope_spans):
            scope_repairs = _repair_scope(ss)
            kept: list[bytes] = []
            for index, raw in enumerate(ss.spans):
                span = LenientSpan()
                try:
                    span.ParseFromString(raw)
                except (DecodeError, RecursionError) as exc:
                    rejected.append(
                        f"resourceSpans[{rs_index}].scopeSpans[{ss_index}].spans[{index}]: "
                        f"not a decodable span ({exc})"
                    )
                    continue
                repairs = _repair_span(span)
                if repairs or resource_repairs or scope_repairs:
                    repaired += 1
                kept.append(span.SerializeToString() if repairs else raw)
            del ss.spans[:]
            ss.spans.extend(kept)
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(shallow.SerializeToString())
    except DecodeError as exc:  # every string was repaired: a defect of ours, not the client's
        raise MalformedPayload(f"could not repair the request: {exc}") from exc
    return Decoded(request, rejected, repaired)


def decode_protobuf(body: bytes) -> Decoded:
    """A protobuf body the strict parse refused: split it span by span."""
    shallow = LenientRequest()
    try:
        shallow.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedPayload(f"not an OTLP protobuf message: {exc}") from exc
    return settle(shallow)


# --- OTLP/JSON, span by span ------------------------------------------------------------------


def named_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object (``json.loads``'s ``object_pairs_hook``) without the keys holding a lone
    surrogate (invalid UTF-8 in the body, or a ``\\udcf2`` escape). No OTLP field has such a
    name, so they are unknown fields, to be ignored; but protobuf's runtime, asked for a
    field by such a name, fails (``SystemError``) instead of finding none."""
    return {key: value for key, value in pairs if key.isascii() or _encodable(key)}


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def raw_bytes(text: str) -> bytes:
    """A JSON string's bytes: invalid UTF-8 in the body was decoded with ``surrogateescape``,
    lone ``\\uD800``-style escapes stay surrogates; both come back as the bytes they stand for."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    found: FieldDescriptor | None = descriptor.fields_by_camelcase_name.get(key)
    return found or descriptor.fields_by_name.get(key)


def strings_as_bytes(obj: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """An OTLP JSON object for ``json_format.ParseDict`` into a lenient message: each string
    field's value as base64 of its bytes (a bytes field's JSON form)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        f = _field(descriptor, key)
        if f is None:
            out[key] = value
        elif f.type == FieldDescriptor.TYPE_STRING:
            convert: Callable[[Any], Any] = lambda v: (  # noqa: E731
                base64.b64encode(raw_bytes(v)).decode() if isinstance(v, str) else v
            )
            out[key] = [convert(v) for v in value] if isinstance(value, list) else convert(value)
        elif f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type is not None:
            sub = f.message_type
            if isinstance(value, list):
                out[key] = [strings_as_bytes(v, sub) if isinstance(v, dict) else v for v in value]
            else:
                out[key] = strings_as_bytes(value, sub) if isinstance(value, dict) else value
        else:
            out[key] = value
    return out


def parse_lenient(obj: Any, message: Message, strict: Descriptor) -> None:
    """``ParseDict`` an OTLP JSON object into a lenient message; MalformedPayload saying why
    when it is not one."""
    if not isinstance(obj, dict):
        raise MalformedPayload("not an object")
    try:
        json_format.ParseDict(strings_as_bytes(obj, strict), message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise MalformedPayload(str(exc) or type(exc).__name__) from exc
