"""The services' HTTP transport (``common.http.WholeBodyAiohttpTransport``): httpx over
aiohttp, each response read whole inside the call, with the library's error mapping."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from httpx_aiohttp.transport import AiohttpTransport

from common.http import LIMITS, WholeBodyAiohttpTransport
from ordersim.testing.processes import free_port

PAYLOAD = {"order_id": "ord_0123456789abcdef", "items": [{"sku": "SKU-0001"}] * 200}


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "path_qs": request.path_qs,
            "content_type": request.headers.get("content-type"),
            "tags": request.headers.getall("x-tag", []),
            "body": (await request.read()).decode(),
        }
    )


async def compressed(request: web.Request) -> web.Response:
    body = gzip.compress(json.dumps(PAYLOAD).encode())
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    return web.Response(body=body, headers=headers)


async def large(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    text = json.dumps(PAYLOAD).encode()
    for start in range(0, len(text), 1000):  # in many chunks
        await response.write(text[start : start + 1000])
    await response.write_eof()
    return response


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/large", large)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_response_is_handed_over_read_whole(base_url: str) -> None:
    transport = WholeBodyAiohttpTransport(limits=LIMITS)
    try:
        request = httpx.Request("GET", f"{base_url}/large")
        response = await transport.handle_async_request(request)
        assert response.is_stream_consumed  # read inside the call, not after it
        assert response.json() == PAYLOAD
    finally:
        await transport.aclose()


async def test_requests_arrive_as_httpx_built_them(base_url: str) -> None:
    async with httpx.AsyncClient(transport=WholeBodyAiohttpTransport(limits=LIMITS)) as client:
        response = await client.post(
            f"{base_url}/echo/a%2Fb%20c",
            params={"sku": ["A", "B"]},
            content=b'{"x": 1}',
            headers=[("content-type", "application/json"), ("x-tag", "1"), ("x-tag", "2")],
        )
    assert response.status_code == 200
    assert response.reason_phrase == "OK"
    assert response.json() == {
        "method": "POST",
        "path_qs": "/echo/a%2Fb%20c?sku=A&sku=B",  # percent-encoding kept, not re-parsed
        "content_type": "application/json",
        "tags": ["1", "2"],
        "body": '{"x": 1}',
    }


async def test_a_compressed_response_is_decoded_by_httpx(base_url: str) -> None:
    async with httpx.AsyncClient(transport=WholeBodyAiohttpTransport(limits=LIMITS)) as client:
        response = await client.get(f"{base_url}/gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == PAYLOAD


async def test_failures_map_to_the_httpx_errors_the_library_gives() -> None:
    """The library's mapping, whatever it is (a refused connection is its ConnectTimeout;
    common.http.ServiceClient reads it as a request that may have landed)."""
    url = f"http://127.0.0.1:{free_port()}/echo/"
    raised = []
    for transport in (AiohttpTransport(limits=LIMITS), WholeBodyAiohttpTransport(limits=LIMITS)):
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.TransportError) as caught:
                await client.get(url)
        raised.append(type(caught.value))
    assert raised[0] is raised[1]
