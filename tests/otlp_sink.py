"""A minimal OTLP/HTTP trace receiver for tests: it keeps what the real exporters send.

Spans are decoded with opentelemetry-proto and turned back into SDK ReadableSpans, so
the same trace-shape helpers serve in-process and cross-process tests.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, field) if field else None


def _attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def decode(body: bytes) -> list[ReadableSpan]:
    """An OTLP protobuf export request as SDK ReadableSpans."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return from_request(request)


def from_otlp_json(resource_spans: list[dict[str, Any]]) -> list[ReadableSpan]:
    """OTLP JSON ``resourceSpans`` (what the viewer's /api/v3 returns) as ReadableSpans."""
    import json

    from trace_viewer.otlp import JSON, parse_request

    body = json.dumps({"resourceSpans": resource_spans}).encode()
    return from_request(parse_request(body, JSON).request)


def from_request(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = int.from_bytes(span.trace_id, "big")
                context = SpanContext(
                    trace_id,
                    int.from_bytes(span.span_id, "big"),
                    False,
                    TraceFlags(TraceFlags.SAMPLED),
                )
                parent = (
                    SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"), False)
                    if span.parent_span_id
                    else None
                )
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=context,
                        parent=parent,
                        resource=resource,
                        instrumentation_scope=InstrumentationScope(
                            scope_spans.scope.name, scope_spans.scope.version or None
                        ),
                        attributes=_attributes(span.attributes),
                        events=[
                            Event(e.name, _attributes(e.attributes), e.time_unix_nano)
                            for e in span.events
                        ],
                        kind=SpanKind(span.kind - 1),  # OTLP counts from UNSPECIFIED=0
                        status=Status(StatusCode(span.status.code), span.status.message or None),
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                    )
                )
    return spans


class OtlpSink:
    """``with OtlpSink() as sink: ... sink.endpoint ... sink.spans()``"""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                spans = decode(body)
                with sink._lock:
                    sink._spans.extend(spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
