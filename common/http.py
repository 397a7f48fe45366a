"""The HTTP client factory and the base of every typed service client."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport
from opentelemetry import propagate, trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT
from opentelemetry.trace import Span
from pydantic import BaseModel

from common.cancellation import marked_cancellation
from common.errors import DownstreamUnavailable
from common.telemetry import Telemetry, known_unsampled


@dataclass(frozen=True)
class Timeouts:
    """Connect timeout, and the deadline of one whole call (connect + send + wait + read)."""

    connect: float = 1.0
    call: float = 3.0


LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


def default_transport() -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool and C-accelerated HTTP parser.

    Profiled under load, httpx's own async stack (httpcore over anyio) took about 45 % of
    order-service's CPU; the httpx-aiohttp transport keeps the httpx client, its timeouts
    and its OpenTelemetry instrumentation, and spends a fraction of that.
    """
    return AiohttpTransport(verify=tls_context(), limits=LIMITS)


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), built once for every pool. The transport builds one per pool unless
    given one, and building one parses the whole CA bundle: 20-26 ms of CPU on the event
    loop (bench/call_costs.py), every ``connection_lifetime`` seconds for each client
    (:class:`Recycled`), even for the plain-HTTP calls between the services
    (bench/system_instructions.py found it: half of order-service's instructions in a
    40-order count)."""
    return httpx.create_ssl_context()


class WholeResponses(httpx.AsyncBaseTransport):
    """Hands a response over only once its body has been read.

    The httpx instrumentation ends the CLIENT span when the transport returns, and a
    transport (aiohttp's, like httpx's own) returns at the response head: httpx reads the
    body after that. The server's write of the head woke the caller, which then ended its
    span before the server had even written the body: 178 of the 179 SERVER spans that
    ended after their caller's, in bench/span_overhang.py --probe. Read here, inside the
    instrumented call, the span ends with the last byte. The services' clients never
    stream a response.

    A call its caller stops waiting for (a timeout, the order's deadline, a stopping
    service) is cancelled here, inside the CLIENT span: the span is marked cancelled
    (:mod:`common.cancellation`), or it would end as if the call had succeeded.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with marked_cancellation(trace.get_current_span(), "the caller stopped waiting"):
            response = await self.inner.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()  # the connection goes back to the pool
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Recycled(httpx.AsyncBaseTransport):
    """Sends through a fresh connection pool once the current one is ``lifetime`` seconds
    old; the old pool is closed as soon as its last request has its answer.

    Replicas behind one address (``SO_REUSEPORT``, a Kubernetes Service) are chosen per
    *connection*: a pool of keep-alive connections would send all of a caller's requests
    to the replicas it happened to connect to first, forever, and never to one started
    since. Bounding the connections' lifetime spreads them again. Neither aiohttp nor
    httpcore can bound a pooled connection's age (only its idle time), hence this.
    ``new_pool`` returns a transport that hands a response over only once it has read it
    all (:class:`WholeResponses`), so a pool closed after its last call loses nothing.
    """

    def __init__(
        self,
        new_pool: Callable[[], httpx.AsyncBaseTransport],
        lifetime: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new_pool = new_pool
        self._lifetime = lifetime
        self._clock = clock
        self.pool = new_pool()
        self._born = clock()
        self._in_flight: dict[httpx.AsyncBaseTransport, int] = {self.pool: 0}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._clock() - self._born >= self._lifetime:
            old, self.pool, self._born = self.pool, self._new_pool(), self._clock()
            self._in_flight[self.pool] = 0
            if not self._in_flight[old]:
                await self._close(old)
        pool = self.pool
        self._in_flight[pool] += 1
        try:
            return await pool.handle_async_request(request)
        finally:
            self._in_flight[pool] -= 1
            if pool is not self.pool and not self._in_flight[pool]:
                await self._close(pool)

    async def _close(self, pool: httpx.AsyncBaseTransport) -> None:
        del self._in_flight[pool]
        await pool.aclose()

    async def aclose(self) -> None:
        for pool in list(self._in_flight):
            await self._close(pool)


class Forwarding(httpx.AsyncBaseTransport):
    """Sends through ``inner``: a transport object of its own for the httpx instrumentation
    to wrap (it wraps the client's transport object itself, not its class), so that calls
    known to be unsampled can be sent through ``inner`` without it
    (:class:`CookielessClient`)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


_NO_COOKIES = _NoCookies()


class CookielessClient(httpx.AsyncClient):
    """httpx's client, keeping no cookies: no service sets or reads one, and httpx would
    read every response's headers for ``Set-Cookie`` (through urllib's Request and
    http.cookiejar: a tenth of a call's CPU).

    With ``unsampled`` (a twin without the httpx instrumentation, set where
    :attr:`Telemetry.skips_unsampled`), a call made under a span known to be unsampled
    carries the context (``traceparent`` and the other global propagators' headers) and
    is sent by the twin: the instrumentation would build the span's attributes and a span
    that records nothing, and suppressing it for the call (a context attached and
    detached, its wrapper still run) cost about as much again.
    """

    unsampled: httpx.AsyncClient | None = None

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        # (A closed client refuses the call as httpx does, whichever way it would go.)
        if self.unsampled is not None and not self.is_closed and known_unsampled():
            propagate.inject(request.headers)
            return await self.unsampled.send(request, **kwargs)
        return await super().send(request, **kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("the services' clients keep no cookies")


def create_http_client(
    base_url: str,
    telemetry: Telemetry,
    *,
    timeouts: Timeouts,
    transport: httpx.AsyncBaseTransport | None = None,
    connection_lifetime: float = 30.0,
) -> httpx.AsyncClient:
    """One pooled, traced client per downstream service, owned by the caller's lifespan.

    Its connections are used for new requests for ``connection_lifetime`` seconds at most
    (:class:`Recycled`), so the replicas of the service all get a share of them.
    ``transport`` lets tests route the client to an in-process ASGI app (not recycled).
    """
    sender: httpx.AsyncBaseTransport
    if transport is None:
        sender = Recycled(lambda: WholeResponses(default_transport()), connection_lifetime)
        inner = sender.pool  # one like those that send (aiohttp's, which nothing patches)
    else:
        sender, inner = WholeResponses(transport), transport
    client = CookielessClient(
        base_url=base_url,
        # The httpx instrumentation wraps the client's transport object itself: a seam of
        # its own in front of the one that sends, which the unsampled twin sends through.
        transport=Forwarding(sender) if telemetry.skips_unsampled else sender,
        timeout=httpx.Timeout(timeouts.call, connect=timeouts.connect),
        limits=LIMITS,
    )
    # The transport that really sends: opentelemetry-instrument may have patched its class.
    instrumented = telemetry.instrument_client(client, inner, request_hook=describe_request)
    if instrumented and telemetry.skips_unsampled:
        # Only the request goes through the twin: its URL and timeouts are set already.
        client.unsampled = CookielessClient(transport=sender)
    return client


#: The request extensions that carry to the client span what only the caller knows: the
#: path's template (``/reservations/{order_id}/commit``) and the attempt number.
URL_TEMPLATE = "ordersim.url_template"
RESEND_COUNT = "ordersim.resend_count"
#: The span attribute (in the conventions' registry, still "development", so not in the
#: stable module of opentelemetry-semantic-conventions).
URL_TEMPLATE_ATTRIBUTE = "url.template"
JSON_CONTENT = {"content-type": "application/json"}
#: Statuses that say "try again" without the request having been handled.
RETRYABLE_STATUS = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
    And Jitter"): attempt n waits a uniform random time in [0, min(cap, base * 2**n)]."""

    retries: int = 2
    base: float = 0.05
    cap: float = 0.5

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


NO_RETRY = RetryPolicy(retries=0)


async def describe_request(span: Span, request: Any) -> None:
    """httpx instrumentation request hook (async: the instrumentation only calls async hooks
    on an AsyncClient), per the stable HTTP semantic conventions: the span is named
    ``POST /reservations/{order_id}/commit`` (method and ``url.template``, never an id),
    and a retried request says which resend it is (``http.request.resend_count``)."""
    if not span.is_recording():
        return
    extensions = getattr(request, "extensions", None) or {}
    template = extensions.get(URL_TEMPLATE)
    if template:
        span.update_name(f"{request.method.decode()} {template}")
        span.set_attribute(URL_TEMPLATE_ATTRIBUTE, template)
    resend = extensions.get(RESEND_COUNT)
    if resend:
        span.set_attribute(HTTP_REQUEST_RESEND_COUNT, resend)


class _Unanswered(Exception):
    """An attempt without a response; ``maybe_landed`` if the request may have been sent."""

    def __init__(self, reason: str, maybe_landed: bool, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_landed = maybe_landed
        self.timed_out = timed_out


class ServiceClient:
    """Base of the typed clients: one place for deadlines, retries and failure mapping.

    Subclasses name their service and expose one method per endpoint; callers never
    build URLs themselves. Every mutation in ordersim is keyed by the order id and is
    idempotent downstream, so calls marked ``idempotent`` are retried after a connection
    failure or a 502/503/504 (not after a timeout: that already cost the whole deadline);
    each attempt is its own CLIENT span.
    """

    service: ClassVar[str]

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        call_timeout: float = 3.0,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        self._http = http
        self._call_timeout = call_timeout
        self._retry = retry
        #: The URLs of the endpoints without path parameters, parsed once: httpx parses a
        #: relative URL, then the one merged with the base URL, on every request (a fifth
        #: of a call's CPU); an absolute httpx.URL it takes as it is.
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, template: str, path_params: Mapping[str, str] | None) -> httpx.URL:
        """The absolute URL of ``template`` (``/reservations/{order_id}/commit``), its
        parameters filled in, percent-encoded."""
        if not path_params:
            url = self._urls.get(template)
            if url is None:
                url = self._urls[template] = self._http.base_url.join(template.lstrip("/"))
            return url
        path = template.format_map(
            {name: quote(value, safe="") for name, value in path_params.items()}
        )
        return self._http.base_url.join(path.lstrip("/"))

    async def _request(
        self,
        method: str,
        template: str,
        *,
        idempotent: bool,
        path_params: Mapping[str, str] | None = None,
        json: Any = None,
        body: BaseModel | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """``template`` is the endpoint's path as its service declares it
        (``/reservations/{order_id}/commit``); ``path_params`` fill it in, percent-encoded.
        The request's JSON body is ``body``, serialised by pydantic, or ``json``."""
        url = self._url(template, path_params)
        content = None if body is None else body.model_dump_json().encode()
        attempts = 1 + (self._retry.retries if idempotent else 0)
        maybe_landed = False  # did an earlier attempt possibly reach the service?
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._retry.backoff(attempt))
            try:
                response = await self._attempt(
                    method, template, url, json, content, params, attempt
                )
            except _Unanswered as exc:
                maybe_landed = maybe_landed or exc.maybe_landed
                # A call that used up its whole deadline is not tried again: a hung
                # service then costs the caller one timeout, not (1 + retries) of them.
                if attempt + 1 == attempts or exc.timed_out:
                    raise DownstreamUnavailable(self.service, exc.reason) from exc.__cause__
                continue
            if response.status_code in RETRYABLE_STATUS and attempt + 1 < attempts:
                continue
            if response.status_code >= 500:
                raise DownstreamUnavailable(self.service, f"HTTP {response.status_code}")
            if maybe_landed and 400 <= response.status_code < 500:
                # A refusal now may be caused by the attempt that timed out, e.g. its
                # reservation took the last units: the outcome is unknown, not a refusal,
                # so the caller keeps its undo for this step.
                raise DownstreamUnavailable(
                    self.service,
                    f"HTTP {response.status_code} after an attempt that may have landed",
                )
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(
        self,
        method: str,
        template: str,
        url: httpx.URL,
        json: Any,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        attempt: int,
    ) -> httpx.Response:
        # httpx's timeouts bound each phase; the overall deadline also catches a server
        # that trickles its answer, and applies to in-process ASGI transports, which
        # ignore httpx timeouts altogether.
        try:
            async with asyncio.timeout(self._call_timeout):
                return await self._http.request(
                    method,
                    url,
                    json=json,
                    content=content,
                    headers=JSON_CONTENT if content is not None else None,
                    params=params,
                    extensions={URL_TEMPLATE: template, RESEND_COUNT: attempt},
                )
        except TimeoutError as exc:
            raise _Unanswered(
                f"no answer within {self._call_timeout:g}s", maybe_landed=True, timed_out=True
            ) from exc
        except httpx.ConnectError as exc:
            # Never sent. (Not ConnectTimeout: the aiohttp transport also maps a server
            # that hung up *after* receiving the request to it.)
            raise _Unanswered(type(exc).__name__, False) from exc
        except httpx.TransportError as exc:
            raise _Unanswered(type(exc).__name__, True) from exc

    def _unexpected(self, response: httpx.Response) -> DownstreamUnavailable:
        """A status the contract does not allow: treat the service as broken."""
        return DownstreamUnavailable(self.service, f"unexpected HTTP {response.status_code}")
