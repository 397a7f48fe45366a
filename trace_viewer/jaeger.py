"""OTLP JSON → Jaeger's JSON trace model (what Jaeger UI's "upload JSON" loads).

The mapping follows Jaeger's own OTLP translator: span kind, status and scope become
tags (``span.kind``, ``otel.status_code``, ``error``, ``otel.scope.name``), events become
logs, the parent becomes a CHILD_OF reference, each resource a process. Jaeger's model has
no place for a schema URL, so it is only in the OTLP JSON.

Numbers a JSON parser in a browser would misread are strings, as Jaeger's query service
writes them: an int64 beyond ±(2**53 - 1), and a float64 that is NaN or ±Inf (as
``"NaN"``, ``"+Inf"``, ``"-Inf"``: Jaeger's own text for a float64 tag, ``KeyValue.AsString``,
which its Elasticsearch storage keeps). Jaeger's query service itself answers a 500 for
such a float (``json: unsupported value: NaN``, jaeger-ui#3047); a trace must still open.
"""

from __future__ import annotations

import json
import math
from typing import Any

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {1: "OK", 2: "ERROR"}
_JS_MAX_SAFE_INTEGER = 2**53 - 1


def float_text(value: float) -> str:
    """A non-finite float as Go's ``strconv.FormatFloat`` writes it: NaN, +Inf, -Inf."""
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


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
    if "stringValue" in value:
        return {"key": key, "type": "string", "value": value["stringValue"]}
    if "bytesValue" in value:  # Jaeger's binary tag: base64, as Go marshals []byte
        return {"key": key, "type": "binary", "value": value["bytesValue"]}
    # arrays and maps have no Jaeger type: carry them as JSON text
    return {"key": key, "type": "string", "value": json.dumps(value)}


def _tags(attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # OTLP JSON leaves out default values: an empty key or value is absent, not "".
    return [_tag(kv.get("key", ""), kv.get("value", {})) for kv in attributes]


def _micros(nanos: str | int) -> int:
    return int(nanos) // 1000


def to_jaeger(trace_id: str, resource_spans: list[dict[str, Any]]) -> dict[str, Any]:
    """One Jaeger trace object: ``{"traceID", "spans", "processes", "warnings"}``."""
    spans: list[dict[str, Any]] = []
    processes: dict[str, dict[str, Any]] = {}
    for index, rs in enumerate(resource_spans, start=1):
        process_id = f"p{index}"
        attributes = rs.get("resource", {}).get("attributes", [])
        names = [
            kv.get("value", {}).get("stringValue", "")
            for kv in attributes
            if kv.get("key") == "service.name"
        ]
        service = names[0] if names else "unknown_service"
        processes[process_id] = {
            "serviceName": service,
            "tags": [t for t in _tags(attributes) if t["key"] != "service.name"],
        }
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope", {})
            for span in ss.get("spans", []):
                tags = _tags(span.get("attributes", []))
                tags.append(
                    {
                        "key": "span.kind",
                        "type": "string",
                        "value": _KINDS.get(span.get("kind", 0), "unspecified"),
                    }
                )
                status = span.get("status", {})
                if status.get("code"):
                    tags.append(
                        {
                            "key": "otel.status_code",
                            "type": "string",
                            "value": _STATUS.get(status["code"], "UNSET"),
                        }
                    )
                    if status["code"] == 2:
                        tags.append({"key": "error", "type": "bool", "value": True})
                if status.get("message"):
                    tags.append(
                        {
                            "key": "otel.status_description",
                            "type": "string",
                            "value": status["message"],
                        }
                    )
                if scope.get("name"):
                    tags.append(
                        {"key": "otel.scope.name", "type": "string", "value": scope["name"]}
                    )
                references = []
                if span.get("parentSpanId"):
                    references.append(
                        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": span["parentSpanId"]}
                    )
                references += [
                    {
                        "refType": "FOLLOWS_FROM",
                        "traceID": link.get("traceId", ""),
                        "spanID": link.get("spanId", ""),
                    }
                    for link in span.get("links", [])
                ]
                start = _micros(span.get("startTimeUnixNano", 0))
                spans.append(
                    {
                        "traceID": trace_id,
                        "spanID": span["spanId"],
                        "operationName": span.get("name", ""),
                        "references": references,
                        "startTime": start,
                        "duration": max(_micros(span.get("endTimeUnixNano", 0)) - start, 0),
                        "tags": tags,
                        "logs": [
                            {
                                "timestamp": _micros(event.get("timeUnixNano", 0)),
                                "fields": [
                                    {
                                        "key": "event",
                                        "type": "string",
                                        "value": event.get("name", ""),
                                    },
                                    *_tags(event.get("attributes", [])),
                                ],
                            }
                            for event in span.get("events", [])
                        ],
                        "processID": process_id,
                        "warnings": None,
                        "flags": int(span.get("flags", 1)),
                    }
                )
    spans.sort(key=lambda s: s["startTime"])
    return {"traceID": trace_id, "spans": spans, "processes": processes, "warnings": None}
