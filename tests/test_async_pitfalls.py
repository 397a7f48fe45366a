"""Where async trace context breaks, each as a pair: the broken shape naive code produces
(asserted to *be* broken, so the lesson cannot rot) and the way ordersim's code does it.
docs/async-context.md explains each: what the user sees, which ``contextvars.Context`` the
token lives in, and the fix.

1. an async generator holding a current span, left early;
2. a span entered in one task and exited in another (``ensure_future``, ``wait_for``);
3. TaskGroup cancellation;
4. an executor without ``copy_context``;
5. ``BackgroundTasks``, and a span link.

A broken test provokes "Failed to detach context" on purpose, checks it was logged, then
clears the log for the autouse guard of conftest.py (which fails any other test that logs
it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import Response
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common.cancellation import ATTR_REASON, marked_cancellation
from order_service.background import AfterResponse, Detached
from order_service.compensation import Saga
from order_service.events import StreamEnd, order_event_stream
from ordersim.testing import SpanTree, System
from tests.helpers import order_body
from tests.test_span_balance import SpanBalance

DETACH_ERROR = "Failed to detach context"


@pytest.fixture
def balance() -> SpanBalance:
    return SpanBalance()


@pytest.fixture
def provider(exporter: InMemorySpanExporter, balance: SpanBalance) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(balance)
    return provider


@pytest.fixture
def tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("pitfalls")


@pytest.fixture
def detach_log(caplog: pytest.LogCaptureFixture) -> Any:
    """``detach_log()``: the "Failed to detach context" records so far, then forgotten (so
    that the autouse guard does not fail the test that provoked them on purpose)."""

    def taken() -> list[logging.LogRecord]:
        found = [r for r in caplog.records if DETACH_ERROR in r.getMessage()]
        caplog.clear()
        return found

    return taken


async def until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (at most 10 s)."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0)


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


# 1. An async generator closed early -------------------------------------------------------


async def test_broken_a_generator_left_early_detaches_its_span_in_another_context(
    tracer: trace.Tracer,
    exporter: InMemorySpanExporter,
    detach_log: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The generator attaches its span to the context of whichever task runs it (here the
    consumer's) and is suspended at ``yield`` inside it. Left by ``break``, it is not
    closed: the consumer goes on with the generator's span current, so its next span
    hangs under it; and when the event loop finalizes the generator (its asyncgen hook
    schedules ``aclose()`` in a task of its own, in a copy of the context), ``with``
    exits there and the token, created in the consumer's Context, cannot be reset."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")

    async def events() -> AsyncIterator[int]:
        for n in range(3):
            with tracer.start_as_current_span("send_event"):
                yield n

    with tracer.start_as_current_span("consumer"):
        async for _ in events():
            break
        with tracer.start_as_current_span("next_step"):
            pass
    await until(lambda: "send_event" in spans_by_name(exporter))

    spans = spans_by_name(exporter)
    assert spans["next_step"].parent.span_id == spans["send_event"].context.span_id, (
        "the consumer's next span hangs under the generator's"
    )
    assert detach_log(), "the generator's close detached its token in another Context"


async def test_right_our_event_stream_closed_early_ends_its_spans_in_place(
    system: System, detach_log: Any
) -> None:
    """``order_event_stream`` makes no span current across a ``yield`` (each is started
    with an explicit parent and ended by hand), and its consumer closes it with
    ``contextlib.aclosing`` in its own task: the stream's span ends at once, marked, the
    consumer's spans keep their parent, and nothing is detached anywhere else."""
    order_id = (await system.order.post("/orders", json=order_body())).json()["order_id"]
    await system.drain()
    system.exporter.clear()
    tracer = system.apps["order"].state.tracer
    with tracer.start_as_current_span("consumer") as consumer:
        stream = order_event_stream(
            system.apps["order"].state.engine,
            order_id,
            after=0,
            tracer=tracer,
            parent=otel_context.get_current(),
            poll_interval=0.05,
            end=StreamEnd(),
        )
        async with contextlib.aclosing(stream):
            async for _ in stream:
                with tracer.start_as_current_span("next_step"):
                    pass
                break
        # Closed by now, in this task: its span has ended.
        spans = spans_by_name(system.exporter)
        assert "stream_order_events" in spans
        assert trace.get_current_span() is consumer
    spans = spans_by_name(system.exporter)
    assert spans["next_step"].parent.span_id == spans["consumer"].context.span_id
    assert spans["send_order_event"].parent.span_id == spans["stream_order_events"].context.span_id
    stream_span = spans["stream_order_events"]
    assert stream_span.parent.span_id == spans["consumer"].context.span_id
    assert [(e.name, e.attributes[ATTR_REASON]) for e in stream_span.events] == [
        ("cancelled", StreamEnd().reason)
    ]
    assert not detach_log()


# 2. A span entered in one task and exited in another --------------------------------------


@contextlib.asynccontextmanager
async def traced(tracer: trace.Tracer, name: str) -> AsyncIterator[trace.Span]:
    with tracer.start_as_current_span(name) as span:
        yield span


async def test_broken_a_span_entered_in_a_task_of_its_own_cannot_be_exited_here(
    tracer: trace.Tracer, detach_log: Any
) -> None:
    """``ensure_future`` (or ``create_task``) runs ``__aenter__`` in a new task, with a
    *copy* of this context: the span is attached there, never current here, and the exit
    here resets a token of the copy's."""
    step = traced(tracer, "reserve")
    span = await asyncio.ensure_future(step.__aenter__())
    assert trace.get_current_span() is not span, "entered, but not current here"
    await step.__aexit__(None, None, None)
    assert detach_log(), "exited in a Context the token was not created in"


async def test_asyncio_wait_for_broke_it_the_same_way_before_python_3_12(
    tracer: trace.Tracer, detach_log: Any
) -> None:
    """Until Python 3.11 (ours), ``asyncio.wait_for`` wraps its coroutine in a task of its
    own, so a context manager entered through it breaks as with ``ensure_future``. From
    3.12 on it is ``asyncio.timeout`` underneath and runs the coroutine in the caller's
    task: the span is current here and exits cleanly."""
    step = traced(tracer, "quote")
    span = await asyncio.wait_for(step.__aenter__(), timeout=10)
    current = trace.get_current_span() is span
    await step.__aexit__(None, None, None)
    if sys.version_info >= (3, 12):
        assert current and not detach_log()
    else:
        assert not current and detach_log()


async def test_right_our_steps_enter_and_exit_each_span_in_one_task(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, detach_log: Any
) -> None:
    """Deadlines are ``asyncio.timeout`` around the span (the order's deadline, each call's
    timeout), in the caller's task; where ordersim does start a task inside a step
    (``compensation.uncancelled``, so that a deadline cannot cut a charge off halfway),
    the task gets the *call*, whose spans open and close inside it, never a span's
    context manager."""
    saga = Saga("ord_0123456789abcdef", tracer, backlog=None)  # type: ignore[arg-type]

    async def charge() -> str:  # runs in the task uncancelled() starts
        with tracer.start_as_current_span("POST /charges", kind=SpanKind.CLIENT):
            await asyncio.sleep(0)
        return "charged"

    with tracer.start_as_current_span("place_order") as order:
        async with asyncio.timeout(10):
            assert await saga.step("charge_payment", charge()) == "charged"
        assert trace.get_current_span() is order
    spans = spans_by_name(exporter)
    assert spans["POST /charges"].parent.span_id == spans["charge_payment"].context.span_id
    assert spans["charge_payment"].parent.span_id == spans["place_order"].context.span_id
    assert not detach_log()


# 3. TaskGroup cancellation ----------------------------------------------------------------


async def sibling_fails() -> None:
    await asyncio.sleep(0)
    raise ValueError("the stock check failed")


async def test_broken_taskgroup_cancellation_leaves_spans_open_or_passing_for_success(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, balance: SpanBalance
) -> None:
    """A sibling fails; the TaskGroup cancels the others. A span ended by hand after the
    work is never ended (lost: no exporter ever sees it); one ended by ``with`` ends
    with status UNSET and no event, because the SDK records only ``Exception`` and
    ``CancelledError`` is a ``BaseException``: it reads as a read that succeeded."""

    async def by_hand() -> None:
        span = tracer.start_span("read_by_hand")
        await asyncio.sleep(10)
        span.end()

    async def with_block() -> None:
        with tracer.start_as_current_span("read_with_block"):
            await asyncio.sleep(10)

    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as group:
            group.create_task(by_hand())
            group.create_task(with_block())
            group.create_task(sibling_fails())
    assert [name.split(" (")[0] for name in balance.still_open()] == ["read_by_hand"]
    read = spans_by_name(exporter)["read_with_block"]
    assert read.status.status_code == StatusCode.UNSET and not read.events


async def test_right_a_cancelled_span_ends_marked(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, balance: SpanBalance
) -> None:
    """What ordersim's steps, its event stream and its detached work do: the span is a
    ``with`` block, and :func:`common.cancellation.marked_cancellation` gives it ERROR
    status and a ``cancelled`` event with the reason."""

    async def read() -> None:
        with (
            tracer.start_as_current_span("read") as span,
            marked_cancellation(span, "a sibling failed"),
        ):
            await asyncio.sleep(10)

    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(sibling_fails())
    assert balance.still_open() == []
    span = spans_by_name(exporter)["read"]
    assert span.status.status_code == StatusCode.ERROR
    assert [(e.name, e.attributes[ATTR_REASON]) for e in span.events] == [
        ("cancelled", "a sibling failed")
    ]


# 4. An executor without copy_context ------------------------------------------------------


async def test_broken_run_in_executor_starts_a_new_trace(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    """The pool's thread runs the function in its own (empty) Context: the span has no
    parent, and a trace of its own."""

    def blocking() -> None:
        with tracer.start_as_current_span("in_thread"):
            pass

    with tracer.start_as_current_span("parent"):
        await asyncio.get_running_loop().run_in_executor(None, blocking)
    spans = spans_by_name(exporter)
    assert spans["in_thread"].parent is None
    assert spans["in_thread"].context.trace_id != spans["parent"].context.trace_id


@pytest.mark.parametrize("way", ["copy_context().run", "asyncio.to_thread"])
async def test_right_the_thread_runs_in_a_copy_of_the_callers_context(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, way: str
) -> None:
    """``contextvars.copy_context().run`` carries the caller's Context into the thread;
    ``asyncio.to_thread`` does that itself."""

    def blocking() -> None:
        with tracer.start_as_current_span("in_thread"):
            pass

    with tracer.start_as_current_span("parent"):
        if way == "asyncio.to_thread":
            await asyncio.to_thread(blocking)
        else:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, contextvars.copy_context().run, blocking)
    spans = spans_by_name(exporter)
    assert spans["in_thread"].parent.span_id == spans["parent"].context.span_id


# 5. BackgroundTasks, and a span link ------------------------------------------------------


def duration_points(reader: InMemoryMetricReader) -> int:
    """How many request durations the ASGI instrumentation has recorded."""
    data = reader.get_metrics_data()
    return sum(
        len(metric.data.data_points)  # type: ignore[union-attr]
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name in ("http.server.request.duration", "http.server.duration")
    )


class Shop:
    """A one-route app, instrumented as ordersim's are, whose ``POST /orders`` leaves a
    notification to run after its response; the notification waits for ``release``."""

    def __init__(self, provider: TracerProvider, detached: bool) -> None:
        self.reader = InMemoryMetricReader()
        self.started, self.release = asyncio.Event(), asyncio.Event()
        tracer = provider.get_tracer("shop")
        runner = Detached(tracer)
        app = FastAPI()

        async def notify(span: trace.Span | None = None) -> None:
            with tracer.start_as_current_span("notify"):
                self.started.set()
                await self.release.wait()

        @app.post("/orders", status_code=201)
        async def place(background: BackgroundTasks) -> Response:
            content = '{"status": "confirmed"}'
            if not detached:  # the naive way: the work itself in BackgroundTasks
                background.add_task(notify)
                return Response(content, status_code=201, media_type="application/json")
            # ordersim's way: the response, once sent, starts it detached and linked.
            after = AfterResponse()
            after.add(
                runner.start,
                "send_confirmation",
                trace.get_current_span().get_span_context(),
                notify,
            )
            return after.response(content, status_code=201)

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            exclude_spans=["receive", "send"],
        )
        self.app, self.detached = app, runner

    async def post(self) -> asyncio.Task[httpx.Response]:
        """Send the order; return the request's task once the notification has started."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url="http://x")

        async def request() -> httpx.Response:
            async with client:
                return await client.post("/orders")

        task = asyncio.create_task(request())
        async with asyncio.timeout(10):
            await self.started.wait()
        return task


async def test_broken_background_tasks_run_inside_the_request_under_its_ended_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Starlette runs ``BackgroundTasks`` after sending the body, but still inside the
    request's ASGI cycle: the SERVER span has ended (the instrumentation ends it at the
    last body message), yet it is still the current span, so the work hangs under a
    span that has ended (opentelemetry-instrumentation-fastapi even adds one of its own
    there, ``BackgroundTask notify``); and the cycle, whose end the instrumentation times
    as the request's duration, waits for the work."""
    shop = Shop(provider, detached=False)
    request = await shop.post()
    server = SpanTree.of(exporter).find("POST /orders", kind=SpanKind.SERVER)
    assert not request.done(), "the request's ASGI cycle waits for the background work"
    assert duration_points(shop.reader) == 0, "its duration is not recorded yet"
    shop.release.set()
    assert (await request).status_code == 201
    assert duration_points(shop.reader) == 1
    notify = SpanTree.of(exporter).find("notify")
    # Its parent is the instrumentation's "BackgroundTask notify" span, the SERVER span's
    # child, made by the tracer of the first app instrumented in this process (another
    # test's, when several run): in the request's trace all the same.
    assert notify.parent is not None
    assert notify.context.trace_id == server.context.trace_id, "under the request's span…"
    assert notify.start_time > server.end_time, "…which had ended before it started"


async def test_right_the_work_runs_detached_in_a_trace_linked_to_the_request(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """ordersim's way (order_service/background.py): the response, once sent, only starts
    a task in an empty Context, under a new root span linked to the request's span (no
    ``BackgroundTasks``). The request is over, its duration recorded, while the work
    still runs."""
    shop = Shop(provider, detached=True)
    request = await shop.post()
    async with asyncio.timeout(10):
        response = await request  # done while the notification is still held
    assert response.status_code == 201
    assert duration_points(shop.reader) == 1
    server = SpanTree.of(exporter).find("POST /orders", kind=SpanKind.SERVER)
    shop.release.set()
    await shop.detached.join()
    spans = spans_by_name(exporter)
    root, notify = spans["send_confirmation"], spans["notify"]
    assert root.parent is None and root.context.trace_id != server.context.trace_id
    assert [link.context.span_id for link in root.links] == [server.context.span_id]
    assert notify.parent.span_id == root.context.span_id
    assert not [s for s in spans.values() if s.name.startswith("BackgroundTask")]
