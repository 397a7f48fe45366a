"""OTLP/HTTP intake: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``, protobuf or JSON,
optionally compressed, all three by the same rules.

Per the OTLP spec (https://opentelemetry.io/docs/specs/otlp/#otlphttp): the response is in
the request's content type; a malformed request is a 400 whose body is a ``google.rpc.Status``;
spans (log records, data points) that cannot be stored are reported through
``partial_success``, not an error.

``Content-Encoding`` is what the Collector's OTLP/HTTP receiver accepts (confighttp):
``gzip``, ``zstd``, and ``deflate`` or ``zlib``, both the zlib format (RFC 1950, Go's
``compress/zlib``, what ``zlib.compress`` and the Python exporters' ``deflate`` send). The
size limit holds after decompression too: a small body that inflates past it is a 413.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

import zstandard
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trace_viewer import otlp_signals
from trace_viewer.lenient import Decoded, MalformedPayload
from trace_viewer.otlp import JSON, PROTOBUF, encode_response, parse_request, records
from trace_viewer.otlp_signals import LOGS, METRICS, Signal
from trace_viewer.store import TraceStore

ENCODINGS = ("identity", "gzip", "deflate", "zlib", "zstd")


class TooLarge(Exception):
    pass


def _status_body(code: int, message: str, content_type: str) -> bytes:
    status = Status(code=code, message=message)
    if content_type == PROTOBUF:
        return bytes(status.SerializeToString())
    return json.dumps(json_format.MessageToDict(status)).encode()


def _inflate_zlib(body: bytes, encoding: str, limit: int) -> bytes:
    """gzip (every member) or the zlib format, never past ``limit`` bytes (a bomb is a 413,
    not an OOM)."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    chunks: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(wbits)
        chunk = inflater.decompress(rest, limit + 1 - size)
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise TooLarge
        if not inflater.eof:
            raise MalformedPayload(f"truncated {encoding} body")
        rest = inflater.unused_data
        if not rest or encoding != "gzip":  # a gzip file may hold several members
            return b"".join(chunks)


def _inflate_zstd(body: bytes, limit: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = reader.read(limit + 1 - size)
        if not chunk:
            break
        size += len(chunk)
        chunks.append(chunk)
    if size > limit:
        raise TooLarge
    # The stream reader says nothing of a truncated frame; decoding again (now known to be
    # small) tells whether every frame ends.
    rest = body
    while rest:
        frame = zstandard.ZstdDecompressor().decompressobj()
        frame.decompress(rest)
        if not frame.eof:
            raise MalformedPayload("truncated zstd body")
        rest = frame.unused_data
    return b"".join(chunks)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body of a request sent with this ``Content-Encoding``; MalformedPayload when it is
    not what it says, TooLarge past ``limit`` bytes."""
    try:
        if encoding == "zstd":
            return _inflate_zstd(body, limit)
        if encoding in ("gzip", "deflate", "zlib"):
            return _inflate_zlib(body, encoding, limit)
    except (zlib.error, zstandard.ZstdError) as exc:
        raise MalformedPayload(f"not a {encoding} body: {exc}") from exc
    return body


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def export_response(decoded: Decoded, rejected: list[str]) -> ExportTraceServiceResponse:
    """The reply to an export: ``partial_success`` names refused spans, or, with none refused,
    says as a warning how many spans were stored after a repair (the spec's use of an
    ``error_message`` beside ``rejected_spans`` 0)."""
    response = ExportTraceServiceResponse()
    reasons = list(dict.fromkeys(rejected))  # the same reason once
    if decoded.repaired:
        reasons.append(
            f"{decoded.repaired} span(s) stored after replacing invalid UTF-8 "
            "(the original bytes are kept in invalid-* attributes)"
        )
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
    if reasons:
        shown = "; ".join(reasons[:10])
        more = f"; and {len(reasons) - 10} more" if len(reasons) > 10 else ""
        response.partial_success.error_message = shown + more
    return response


async def ingest(decoded: Decoded, store: TraceStore, writer: Executor) -> list[str]:
    """Store what can be stored; the reasons for every span refused."""
    kept, refused = records(decoded.request)
    rejected = decoded.rejected + refused
    await asyncio.get_running_loop().run_in_executor(
        writer, store.write, kept, len(rejected), decoded.repaired
    )
    return rejected


async def ingest_signal(
    signal: Signal, body: bytes, media: str, store: TraceStore, writer: Executor
) -> Message:
    """Decode and store a logs or metrics export (MalformedPayload: not one); the reply."""
    decoded = otlp_signals.parse_request(body, media, signal)
    loop = asyncio.get_running_loop()
    if signal is LOGS:
        logs, refused = otlp_signals.log_rows(decoded.request)
        rejected = len(decoded.rejected) + len(refused)
        await loop.run_in_executor(writer, store.write_logs, logs, rejected)
    else:
        points, refused = otlp_signals.metric_rows(decoded.request)
        rejected = len(decoded.rejected) + len(refused)
        await loop.run_in_executor(writer, store.write_metrics, points, rejected)
    return otlp_signals.export_response(signal, decoded, refused)


#: What an export does with its decompressed body and content type: the reply to send.
Export = Callable[[bytes, str], Awaitable[Message]]


def create_intake_app(store: TraceStore, writer: Executor, max_body_bytes: int) -> Starlette:
    async def traces(body: bytes, media: str) -> Message:
        decoded = parse_request(body, media)
        rejected = await ingest(decoded, store, writer)
        return export_response(decoded, rejected)

    def of(signal: Signal) -> Export:
        async def export(body: bytes, media: str) -> Message:
            return await ingest_signal(signal, body, media, store, writer)

        return export

    return Starlette(
        routes=[
            Route("/v1/traces", _endpoint(traces, max_body_bytes), methods=["POST"]),
            Route("/v1/logs", _endpoint(of(LOGS), max_body_bytes), methods=["POST"]),
            Route("/v1/metrics", _endpoint(of(METRICS), max_body_bytes), methods=["POST"]),
        ]
    )


def _endpoint(export: Export, max_body_bytes: int) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = media if media in (PROTOBUF, JSON) else JSON

        def error(status: int, code: int, message: str) -> Response:
            return Response(
                _status_body(code, message, reply_type), status_code=status, media_type=reply_type
            )

        if media not in (PROTOBUF, JSON):
            return error(415, 3, f"unsupported content type {media!r}; send {PROTOBUF} or {JSON}")
        encoding = request.headers.get("content-encoding", "").strip().lower() or "identity"
        if encoding not in ENCODINGS:
            return error(
                415,
                3,
                f"unsupported content encoding {encoding!r}; send one of {', '.join(ENCODINGS)}",
            )
        try:
            body = decompress(await _read_body(request, max_body_bytes), encoding, max_body_bytes)
            reply = await export(body, media)
        except TooLarge:
            return error(
                413, 8, f"request body over the limit of {max_body_bytes} bytes (decompressed)"
            )
        except MalformedPayload as exc:
            return error(400, 3, str(exc))
        return Response(encode_response(reply, media), media_type=media)

    return endpoint
