"""Context rides contextvars across await, gather, tasks and threads (and where it does not)."""

from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersim.testing import SpanTree


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


async def test_gather_children_share_the_parent_and_overlap(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def step(name: str) -> None:
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0.01)

    with tracer.start_as_current_span("parent"):
        await asyncio.gather(step("a"), step("b"))

    spans = SpanTree.of(exporter)
    parent, a, b = spans.find("parent"), spans.find("a"), spans.find("b")
    assert child_of(a, parent) and child_of(b, parent)
    assert a.start_time < b.end_time and b.start_time < a.end_time


async def test_create_task_copies_the_context_at_creation(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def background() -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span("background"):
            pass

    with tracer.start_as_current_span("parent"):
        task = asyncio.create_task(background())
    await task  # the parent has ended by now; the task still knows it

    spans = SpanTree.of(exporter)
    assert child_of(spans.find("background"), spans.find("parent"))


async def test_to_thread_carries_the_context(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    def blocking() -> None:
        with tracer.start_as_current_span("in_thread"):
            pass

    with tracer.start_as_current_span("parent"):
        await asyncio.to_thread(blocking)

    spans = SpanTree.of(exporter)
    assert child_of(spans.find("in_thread"), spans.find("parent"))


async def test_cancelled_span_detaches_cleanly(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def slow() -> None:
        with tracer.start_as_current_span("slow"):
            await asyncio.sleep(10)

    with tracer.start_as_current_span("parent") as parent:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await slow()
        # The cancelled span ended and gave the context back to its parent.
        assert trace.get_current_span() is parent
    slow_span = SpanTree.of(exporter).find("slow")
    assert child_of(slow_span, SpanTree.of(exporter).find("parent"))


async def test_detach_in_another_context_is_what_the_guard_catches(
    tracer: trace.Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    """The autouse guard is not vacuous: detaching a token in a different context logs it."""
    from opentelemetry import context

    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    token = context.attach(context.set_value("k", "v"))
    contextvars.Context().run(context.detach, token)
    assert any("Failed to detach context" in r.getMessage() for r in caplog.records)
    context.detach(token)
    caplog.clear()  # leave nothing for the guard, which would rightly fail the test
