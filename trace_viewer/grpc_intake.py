"""OTLP/gRPC intake: ``TraceService/Export`` on port 4317, by the rules of OTLP/HTTP, and
``LogsService/Export`` and ``MetricsService/Export`` by the same rules as ``/v1/logs`` and
``/v1/metrics``.

The method takes the request's raw bytes (no deserializer), so a request is decoded exactly
as ``POST /v1/traces`` decodes protobuf: strictly first, then span by span, one bad span
repaired or refused alone in ``partial_success``. A request that is not OTLP at all is
``INVALID_ARGUMENT`` (the gRPC form of the HTTP 400); one over the size limit, also after
decompression, ``RESOURCE_EXHAUSTED`` from gRPC itself, naming the limit. gRPC decompresses
``gzip`` and ``deflate`` messages (``grpc-encoding``) before we see them.

The server is grpcio's asyncio server in the viewer's own event loop (uvloop, under
uvicorn), started and stopped by the ASGI lifespan, so both intakes share the store, the
writer thread and the signal handling. That works with uvloop because grpc.aio does not
drive the loop's internals: a poller thread of its own waits on gRPC's completion queue and
wakes the loop through a socket pair the loop watches with ``add_reader``
(``PollerCompletionQueue``), which any asyncio loop provides. tests/test_grpc_intake.py
checks it: the SDK's own gRPC exporter, gRPC and HTTP exports at once; and
``ordersim up`` stopping the viewer with SIGTERM (tests/test_viewer_e2e.py).
"""

from __future__ import annotations

from concurrent.futures import Executor

import grpc
from grpc import aio

from trace_viewer.intake import export_response, ingest, ingest_signal
from trace_viewer.lenient import MalformedPayload
from trace_viewer.otlp import PROTOBUF, parse_request
from trace_viewer.otlp_signals import LOGS, METRICS, Signal
from trace_viewer.store import TraceStore

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class BindError(OSError):
    pass


def create_grpc_server(
    store: TraceStore, writer: Executor, max_body_bytes: int, host: str, port: int
) -> tuple[aio.Server, int]:
    """The server (not started yet) and the port it is bound to. Call inside the event loop
    it will run on."""

    async def export(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        try:
            decoded = parse_request(request, PROTOBUF)
        except MalformedPayload as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rejected = await ingest(decoded, store, writer)
        return bytes(export_response(decoded, rejected).SerializeToString())

    def signal_export(signal: Signal) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def export(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                reply = await ingest_signal(signal, request, PROTOBUF, store, writer)
            except MalformedPayload as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return bytes(reply.SerializeToString())

        return grpc.unary_unary_rpc_method_handler(export)

    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", max_body_bytes),
            # One port, one process: a second viewer must fail to bind, not share the port.
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
            ),
            *(
                grpc.method_handlers_generic_handler(
                    signal.grpc_service, {"Export": signal_export(signal)}
                )
                for signal in (LOGS, METRICS)
            ),
        )
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio's way of saying the address is taken
        raise BindError(f"cannot listen on {host}:{port} (OTLP/gRPC): {exc}") from None
    if not bound:
        raise BindError(f"cannot listen on {host}:{port} (OTLP/gRPC)")
    return server, bound
