"""OTLP/HTTP trace intake: ``POST /v1/traces``, protobuf or JSON, optionally gzip-compressed.

Per the OTLP spec (https://opentelemetry.io/docs/specs/otlp/#otlphttp): the response is in
the request's content type; a malformed request is a 400 whose body is a ``google.rpc.Status``;
spans that cannot be stored are reported through ``partial_success``, not an error.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from concurrent.futures import Executor

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trace_viewer.otlp import (
    JSON,
    PROTOBUF,
    MalformedPayload,
    encode_response,
    parse_request,
    records,
)
from trace_viewer.store import TraceStore


class TooLarge(Exception):
    pass


def _status_body(code: int, message: str, content_type: str) -> bytes:
    status = Status(code=code, message=message)
    if content_type == PROTOBUF:
        return bytes(status.SerializeToString())
    return json.dumps(json_format.MessageToDict(status)).encode()


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress, refusing to inflate past ``limit`` bytes (a gzip bomb is a 413, not an OOM)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = inflater.decompress(body, limit + 1)
    if len(data) > limit or inflater.unconsumed_tail:
        raise TooLarge
    if not inflater.eof:
        raise MalformedPayload("truncated gzip body")
    return data


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


def create_intake_app(store: TraceStore, writer: Executor, max_body_bytes: int) -> Starlette:
    async def export_traces(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = media if media in (PROTOBUF, JSON) else JSON

        def error(status: int, code: int, message: str) -> Response:
            return Response(
                _status_body(code, message, reply_type), status_code=status, media_type=reply_type
            )

        if media not in (PROTOBUF, JSON):
            return error(415, 3, f"unsupported content type {media!r}; send {PROTOBUF} or {JSON}")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return error(415, 3, f"unsupported content encoding {encoding!r}")
        try:
            body = await _read_body(request, max_body_bytes)
            if encoding == "gzip":
                body = _gunzip(body, max_body_bytes)
            export = parse_request(body, media)
        except TooLarge:
            return error(413, 8, f"request body over {max_body_bytes} bytes")
        except (MalformedPayload, zlib.error) as exc:
            return error(400, 3, str(exc))

        kept, rejected = records(export)
        await asyncio.get_running_loop().run_in_executor(writer, store.write, kept, len(rejected))
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = len(rejected)
            response.partial_success.error_message = "; ".join(rejected[:10])
        return Response(encode_response(response, media), media_type=media)

    return Starlette(routes=[Route("/v1/traces", export_traces, methods=["POST"])])
