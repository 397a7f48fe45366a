"""OTLP JSON → Jaeger's JSON trace model, as Jaeger v2's ``GET /api/traces/{id}`` writes it.

Jaeger v2 stores OTLP and answers its v1 API in three steps, and each rule below follows one
of them (the README's table lists each rule with its test):

1. At ingest, the sanitizers of ``internal/jptrace/sanitizer`` (jaegertracing/jaeger) name a
   resource without a string ``service.name`` (``missing-service-name``,
   ``empty-service-name``, ``service-name-wrong-type``) and a span without a name
   (``empty-span-name``). The stored messages stay as clients sent them; the store's
   service and name columns and this output use the names.
2. At query time, the standard adjusters (``jaegerquery/internal/adjuster``) sort
   attributes by key and events by time (``SortCollections``) and drop links to an all-zero
   trace id with a span warning (``RemoveEmptySpanLinks``). Not applied: clock-skew
   correction, span de-duplication and IP normalisation (our store keeps one span per id;
   the page marks skew itself).
3. ``pkg/translator/jaeger`` (opentelemetry-collector-contrib, ``ProtoFromTraces``, through
   ``internal/storage/v2/v1adapter``) makes Jaeger's model, and
   ``internal/uimodel/converter/v1/json`` (``FromDomain``) writes it: scope name and
   version, span kind (none for UNSPECIFIED), status and ``w3c.tracestate`` become tags,
   events become logs, the parent and the links become references, the sampled bit the
   flags, durations whole microseconds.

Numbers a JavaScript ``JSON.parse`` would misread are strings, as Jaeger's JSON writer
makes them: an int64 beyond ±(2**53 - 1). A float64 that is NaN or ±Inf is written as
Jaeger's own text for a float64 (``"NaN"``, ``"+Inf"``, ``"-Inf"``, ``KeyValue.AsString``,
which its Elasticsearch storage keeps); Jaeger's query service itself answers a 500 for such
a float (``json: unsupported value: NaN``, jaeger-ui#3047), and a trace must still open.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from trace_viewer.otlp import (
    EMPTY_SERVICE_NAME,
    EMPTY_SPAN_NAME,
    MISSING_SERVICE_NAME,
    SERVICE_NAME_WRONG_TYPE,
)

#: OTLP span kinds as Jaeger's ``span.kind`` tag names them; UNSPECIFIED (0) has no tag.
SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {1: "OK", 2: "ERROR"}
_JS_MAX_SAFE_INTEGER = 2**53 - 1
_ZERO_SPAN_ID = "0" * 16
#: A link with this attribute ``child_of`` is a CHILD_OF reference (contrib's
#: ``refTypeFromLink``, semconv ``opentracing.ref_type``); any other link is FOLLOWS_FROM.
_REF_TYPE_ATTRIBUTE = "opentracing.ref_type"
#: Jaeger's warning for a link dropped by ``RemoveEmptySpanLinks``.
INVALID_LINK_WARNING = "Invalid span link removed"
#: Bit 0 of OTLP ``Span.flags`` is W3C's sampled flag, Jaeger's ``SampledFlag`` (= 1); the
#: other bits (is-remote) have no place in Jaeger's flags (contrib PR #49568).
_SAMPLED = 0x1


def float_text(value: float) -> str:
    """A non-finite float as Go's ``strconv.FormatFloat`` writes it: NaN, +Inf, -Inf."""
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def trace_id_from_text(text: str) -> str:
    """A trace id as Jaeger's ``model.TraceIDFromString`` reads it: 1 to 32 hex digits, a
    shorter one (a 64-bit id, as Jaeger clients and B3 print them) left-padded with zeros.
    Returns the 32 lowercase digits the store keys by; raises ValueError with Jaeger's
    message otherwise."""
    if len(text) > 32:
        raise ValueError(f"TraceID cannot be longer than 32 hex characters: {text}")
    # Go's strconv.ParseUint(s, 16, 64): ASCII hex digits only, no sign, no prefix.
    for part in (text[:-16], text[-16:]) if len(text) > 16 else (text,):
        if not part or any(c not in "0123456789abcdefABCDEF" for c in part):
            raise ValueError(f'strconv.ParseUint: parsing "{part}": invalid syntax')
    return text.lower().rjust(32, "0")


# --- attribute values -------------------------------------------------------------------------


def _raw(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as the Go value pdata's ``Value.AsRaw`` gives."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "bytesValue" in value:  # base64 in OTLP JSON, as Go's encoding/json writes []byte
        return value["bytesValue"]
    if "arrayValue" in value:
        return [_raw(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:  # a Go map: the last of repeated keys wins
        return {
            kv.get("key", ""): _raw(kv.get("value", {}))
            for kv in value["kvlistValue"].get("values", [])
        }
    return None


def _go_float(value: float) -> str:
    """A finite float64 as Go's encoding/json writes it: ES6 number formatting (fixed
    notation from 1e-6 to 1e21, else exponent without a leading zero: ``1e-7``)."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")  # repr's shortest digits, fixed notation
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exponent = repr(value).split("e")
    if exponent.startswith("-0"):
        exponent = "-" + exponent[2:]
    return f"{mantissa}e{exponent}"


def go_json(value: Any) -> str:
    """JSON text as pdata's ``Value.AsString`` writes an array or map: Go's encoding/json
    without HTML escaping (collector PR #15108), compact, map keys sorted, U+2028/U+2029
    escaped. Hand-written because no Python encoder writes Go's float format.

    One deliberate difference: Go's encoder refuses NaN and ±Inf, so Jaeger writes the
    whole array as ``""``; we write them as the strings ``"NaN"``, ``"+Inf"``, ``"-Inf"``,
    as we do for a float64 tag, and keep the rest."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value) if math.isfinite(value) else go_json(float_text(value))
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    return "{" + ",".join(f"{go_json(k)}:{go_json(value[k])}" for k in sorted(value)) + "}"


def _tag(key: str, value: dict[str, Any]) -> dict[str, Any]:
    if "boolValue" in value:
        return {"key": key, "type": "bool", "value": bool(value["boolValue"])}
    if "intValue" in value:
        number = int(value["intValue"])
        if abs(number) > _JS_MAX_SAFE_INTEGER:
            return {"key": key, "type": "int64", "value": str(number)}
        return {"key": key, "type": "int64", "value": number}
    if "doubleValue" in value:
        double = float(value["doubleValue"])
        if not math.isfinite(double):
            return {"key": key, "type": "float64", "value": float_text(double)}
        return {"key": key, "type": "float64", "value": double}
    if "bytesValue" in value:  # Jaeger's binary tag: base64, as Go marshals []byte
        return {"key": key, "type": "binary", "value": value["bytesValue"]}
    if "arrayValue" in value or "kvlistValue" in value:
        return {"key": key, "type": "string", "value": go_json(_raw(value))}
    # A string, or an empty AnyValue: contrib leaves the tag's type at its zero value,
    # STRING, with an empty string.
    return {"key": key, "type": "string", "value": value.get("stringValue", "")}


def _tags(attributes: list[dict[str, Any]], skip: str | None = None) -> list[dict[str, Any]]:
    """Attributes sorted by key (the ``SortCollections`` adjuster), as tags. OTLP JSON leaves
    out default values: an empty key or value is absent, not ""."""
    ordered = sorted(attributes, key=lambda kv: kv.get("key", ""))
    return [_tag(kv.get("key", ""), kv.get("value", {})) for kv in ordered if kv.get("key") != skip]


def _string_tag(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


# --- spans --------------------------------------------------------------------------------------


def service_name_json(attributes: object) -> str:
    """The ``service.name`` of OTLP JSON resource attributes, or Jaeger's placeholder
    (``NewEmptyServiceNameSanitizer``); the store's ``service_name`` reads the same rule from
    protobuf, the trace page's model.js from the same JSON."""
    if not isinstance(attributes, list):
        return MISSING_SERVICE_NAME
    for kv in attributes:
        if isinstance(kv, dict) and kv.get("key") == "service.name":
            value = kv.get("value")
            if not isinstance(value, dict) or "stringValue" not in value:
                return SERVICE_NAME_WRONG_TYPE
            return value["stringValue"] or EMPTY_SERVICE_NAME
    return MISSING_SERVICE_NAME


def _span_tags(span: dict[str, Any], scope: dict[str, Any]) -> list[dict[str, Any]]:
    """contrib's ``getJaegerProtoSpanTags``, in its order."""
    tags = []
    if scope.get("name"):
        tags.append(_string_tag("otel.scope.name", scope["name"]))
    if scope.get("version"):
        tags.append(_string_tag("otel.scope.version", scope["version"]))
    tags += _tags(span.get("attributes", []))
    kind = SPAN_KINDS.get(span.get("kind", 0))
    if kind:
        tags.append(_string_tag("span.kind", kind))
    status = span.get("status", {})
    code = _STATUS.get(status.get("code", 0))
    if code:
        tags.append(_string_tag("otel.status_code", code))
    if code == "ERROR":
        tags.append({"key": "error", "type": "bool", "value": True})
    if status.get("message"):
        tags.append(_string_tag("otel.status_description", status["message"]))
    if span.get("traceState"):
        tags.append(_string_tag("w3c.tracestate", span["traceState"]))
    return tags


def _references(span: dict[str, Any], trace_id: str, warnings: list[str]) -> list[dict[str, str]]:
    """contrib's ``makeJaegerProtoReferences``: the parent first as CHILD_OF, unless it is
    all zeros (no parent); then each link, CHILD_OF if its ``opentracing.ref_type`` says
    ``child_of``, else FOLLOWS_FROM. A link to the parent itself sets the parent
    reference's type instead of adding one."""
    references = []
    parent = span.get("parentSpanId", "")
    if parent and parent != _ZERO_SPAN_ID:
        references.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": parent})
    for link in span.get("links", []):
        link_trace = link.get("traceId", "")
        if not link_trace.strip("0"):  # RemoveEmptySpanLinks
            warnings.append(INVALID_LINK_WARNING)
            continue
        ref_type = "FOLLOWS_FROM"
        for kv in link.get("attributes", []):
            if kv.get("key") == _REF_TYPE_ATTRIBUTE:
                if kv.get("value", {}).get("stringValue") == "child_of":
                    ref_type = "CHILD_OF"
                break
        link_span = link.get("spanId", _ZERO_SPAN_ID)
        if references and link_trace == trace_id and link_span == parent:
            references[0]["refType"] = ref_type
            continue
        references.append({"refType": ref_type, "traceID": link_trace, "spanID": link_span})
    return references


def _logs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events by time (``SortCollections``), each a log whose ``event`` field is the name,
    unless the name is empty or an attribute already has that key (contrib's
    ``spanEventsToJaegerProtoLogs``)."""
    logs = []
    for event in sorted(events, key=lambda e: int(e.get("timeUnixNano", 0))):
        attributes = event.get("attributes", [])
        fields = []
        if event.get("name") and all(kv.get("key") != "event" for kv in attributes):
            fields.append(_string_tag("event", event["name"]))
        fields += _tags(attributes)
        logs.append({"timestamp": int(event.get("timeUnixNano", 0)) // 1000, "fields": fields})
    return logs


def _span(span: dict[str, Any], scope: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """One span; its ``processID`` is set once the spans are in order."""
    start = int(span.get("startTimeUnixNano", 0))
    end = int(span.get("endTimeUnixNano", 0))
    warnings: list[str] = []
    references = _references(span, trace_id, warnings)
    converted: dict[str, Any] = {
        "traceID": trace_id,
        "spanID": span.get("spanId", _ZERO_SPAN_ID),
        "operationName": span.get("name") or EMPTY_SPAN_NAME,
        "references": references,
        # Go: time.Sub then DurationAsMicroseconds(max(0, d)), whole microseconds of the
        # span's own length (not the difference of two rounded ends).
        "startTime": start // 1000,
        "duration": max(end - start, 0) // 1000,
        "tags": _span_tags(span, scope),
        "logs": _logs(span.get("events", [])),
        "processID": "",
        "warnings": warnings or None,
    }
    if int(span.get("flags", 0)) & _SAMPLED:
        converted["flags"] = _SAMPLED  # uimodel's `flags,omitempty`: no key when 0
    return converted


def to_jaeger(trace_id: str, resource_spans: list[dict[str, Any]]) -> dict[str, Any]:
    """One Jaeger trace object: ``{"traceID", "spans", "processes", "warnings"}``.

    Spans come in start order; processes are numbered ``p1``, ``p2``… in that order, and
    identical ones (service name and tags) share a number, as Jaeger's ``processHashtable``
    does."""
    pairs = []
    for rs in resource_spans:
        attributes = rs.get("resource", {}).get("attributes", [])
        process = {
            "serviceName": service_name_json(attributes),
            "tags": _tags(attributes, skip="service.name"),
        }
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope", {})
            pairs += [(_span(span, scope, trace_id), process) for span in ss.get("spans", [])]
    pairs.sort(key=lambda pair: pair[0]["startTime"])
    processes: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    for span, process in pairs:
        identity = json.dumps(process, sort_keys=True)
        if identity not in keys:
            keys[identity] = f"p{len(keys) + 1}"
            processes[keys[identity]] = process
        span["processID"] = keys[identity]
    return {
        "traceID": trace_id,
        "spans": [span for span, _ in pairs],
        "processes": processes,
        "warnings": None,
    }
