"""Transports that cross a process boundary inside one process, and ones that break it.

Public through :mod:`ordersim.testing`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

#: Wraps the transport a caller reaches a service through (:func:`down`, :func:`slow`,
#: :meth:`Gate.wrap`).
TransportWrapper = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]


class ProcessBoundary(httpx.AsyncBaseTransport):
    """Calls an in-process ASGI app as if it ran in another process.

    ASGITransport runs the app in the caller's task. Two things would leak across that
    boundary that never cross a real one: the caller's contextvars (its current CLIENT
    span, so the server would make an INTERNAL span instead of a SERVER span), and the
    caller's cancellation (a client timing out would cancel the server's handler halfway
    through a database transaction). So each request runs in a task of its own, with an
    empty context, and a caller that gives up is a client that disconnected: the server
    hears ``http.disconnect`` and otherwise finishes its work, as uvicorn's would.
    ``drain`` waits for the requests still running::

        client = httpx.AsyncClient(transport=ProcessBoundary(app), base_url="http://payment")
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.running: set[asyncio.Task[httpx.Response]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gone = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async def receive_until_gone() -> Any:
                message = asyncio.ensure_future(receive())
                disconnect = asyncio.ensure_future(gone.wait())
                await asyncio.wait((message, disconnect), return_when=asyncio.FIRST_COMPLETED)
                disconnect.cancel()
                if message.done():
                    return message.result()
                message.cancel()
                return {"type": "http.disconnect"}

            await self.app(scope, receive_until_gone, send)

        transport = httpx.ASGITransport(app=app)
        served = asyncio.create_task(
            transport.handle_async_request(request), context=contextvars.Context()
        )
        self.running.add(served)
        served.add_done_callback(self.running.discard)
        try:
            return await asyncio.shield(served)
        except asyncio.CancelledError:
            gone.set()
            raise

    async def drain(self) -> None:
        if self.running:
            await asyncio.wait(self.running, timeout=30)


class LiveTransport(httpx.AsyncBaseTransport):
    """Calls an in-process ASGI app the way a client over the network does, response
    streamed: ``httpx.ASGITransport`` hands the response over only once the app has
    finished, so an event stream would never return and no client could leave halfway.

    As with :class:`ProcessBoundary`, each request runs in a task of its own with an
    empty context. The response is returned at ``http.response.start`` and its body
    arrives as the app sends it. A client that goes away — it closes the response before
    the end, or is cancelled while waiting for the head — is a disconnect: the app's
    ``receive`` answers ``http.disconnect`` from then on, as uvicorn's does, and what it
    sends after that is dropped. ``drain`` waits for the requests still running.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.running: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
        }
        head: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        gone = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if gone.is_set():
                return
            if message["type"] == "http.response.start":
                head.set_result(message)
            elif message["type"] == "http.response.body":
                chunks.put_nowait(message.get("body", b""))
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def serve() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not head.done():
                    head.set_exception(exc)
                raise
            finally:
                chunks.put_nowait(None)
                if not head.done():
                    head.set_exception(RuntimeError("the app sent no response"))

        served = asyncio.create_task(serve(), context=contextvars.Context())
        self.running.add(served)
        served.add_done_callback(self.running.discard)
        try:
            start = await asyncio.shield(head)
        except asyncio.CancelledError:
            gone.set()
            # The client left: what the app answers (or why it answered nothing) is nobody's.
            head.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_LiveBody(chunks, gone)
        )

    async def drain(self) -> None:
        if self.running:
            await asyncio.wait(self.running, timeout=30)


class _LiveBody(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], gone: asyncio.Event) -> None:
        self._chunks = chunks
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._gone.set()  # before the end: the client hangs up; after: nothing to hear


class FaultyTransport(httpx.AsyncBaseTransport):
    """A downstream service that is down (connection refused) or slow, on some paths or all.

    ``enabled`` can be flipped to bring the service back.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        down: bool = False,
        delay: float = 0.0,
        paths: tuple[str, ...] = (),
    ) -> None:
        self.inner = inner
        self.down = down
        self.delay = delay
        self.paths = paths
        self.enabled = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.enabled and (not self.paths or any(p in path for p in self.paths)):
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


class Gate:
    """Holds every request to ``path`` until the test opens the gate::

    gate = Gate("/charges")
    async with start_system(wrap={"payment": gate.wrap}) as system:
        ...
        await gate.reached()  # a charge is being held
        gate.open()
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.arrivals = 0
        self._arrived = asyncio.Event()
        self._opened = asyncio.Event()

    def wrap(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        gate = self

        class Held(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if request.url.path == gate.path:
                    gate.arrivals += 1
                    gate._arrived.set()
                    await gate._opened.wait()
                return await inner.handle_async_request(request)

        return Held()

    async def reached(self, count: int = 1) -> None:
        """Wait (at most 30 s, then fail) until ``count`` requests have reached the gate."""
        async with asyncio.timeout(30):
            while self.arrivals < count:
                self._arrived.clear()
                await self._arrived.wait()

    def open(self) -> None:
        self._opened.set()


def down(*paths: str) -> TransportWrapper:
    """The service is down (connection refused) on these paths, or on all::

    async with start_system(wrap={"payment": down("/charges")}) as system: ...
    """
    return lambda inner: FaultyTransport(inner, down=True, paths=paths)


def slow(delay: float, *paths: str) -> TransportWrapper:
    """The service answers ``delay`` seconds late on these paths, or on all."""
    return lambda inner: FaultyTransport(inner, delay=delay, paths=paths)
