"""Real traces linked across traces, from the four apps in this process: an order that failed
while payment was down (a refund deferred), the worker's retry of that refund in a trace of
its own whose span links back to the order's ``refund_payment`` span, a second retry, and a
confirmed order, whose notification is a trace of its own linking back to its
``place_order`` span."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersim.testing import FaultyTransport, down, in_process_system
from tests.helpers import order_body


@dataclass(frozen=True)
class LinkedTraces:
    #: The export request of every span (OTLP protobuf), as a service's exporter sends it.
    request: bytes
    spans: list[ReadableSpan]
    failed_trace: str
    #: ``refund_payment`` in the failed order's trace: the span the retries link to.
    refund_span: str
    #: The traces of the worker's ``retry_refund_payment`` spans (the first fails: payment
    #: is still down), oldest first, and those spans.
    retry_traces: list[str]
    retry_spans: list[str]
    confirmed_trace: str
    #: ``place_order`` of the confirmed order, and its ``send_confirmation`` (trace, span).
    confirmed_span: str
    notification_trace: str
    notification_span: str


def _hex(number: int, width: int) -> str:
    return f"{number:0{width}x}"


async def _run(tmp_path: Path) -> LinkedTraces:
    exporter = InMemorySpanExporter()
    async with in_process_system(tmp_path, exporter, wrap={"payment": down()}) as system:
        failed = (await system.order.post("/orders", json=order_body())).json()
        assert failed["status"] == "failed", failed
        # Payment is still down: the first retry fails and stays in the backlog; the second,
        # once payment is back, refunds.
        assert await system.retry_compensations() == 1
        transport = system.transports["payment"]
        assert isinstance(transport, FaultyTransport)
        transport.enabled = False
        assert await system.retry_compensations() == 0
        confirmed = (await system.order.post("/orders", json=order_body())).json()
        assert confirmed["status"] == "confirmed", confirmed
        await system.drain()
        spans = system.tree()
    refund = spans.trace(failed["trace_id"]).find("refund_payment", service="order-service")
    retries = sorted(
        (s for s in spans if s.name == "retry_refund_payment"), key=lambda s: s.start_time or 0
    )
    assert len(retries) == 2 and all(
        r.links[0].context.span_id == refund.context.span_id for r in retries
    )
    place = spans.trace(confirmed["trace_id"]).find("place_order")
    notification = spans.find("send_confirmation")
    assert notification.links[0].context.span_id == place.context.span_id
    return LinkedTraces(
        request=encode_spans(list(spans)).SerializeToString(),
        spans=list(spans),
        failed_trace=failed["trace_id"],
        refund_span=_hex(refund.context.span_id, 16),
        retry_traces=[_hex(r.context.trace_id, 32) for r in retries],
        retry_spans=[_hex(r.context.span_id, 16) for r in retries],
        confirmed_trace=confirmed["trace_id"],
        confirmed_span=_hex(place.context.span_id, 16),
        notification_trace=_hex(notification.context.trace_id, 32),
        notification_span=_hex(notification.context.span_id, 16),
    )


def linked_traces(tmp_path: Path) -> LinkedTraces:
    """Run the apps (in a loop of its own: callers may be synchronous tests)."""
    return asyncio.run(_run(tmp_path))
