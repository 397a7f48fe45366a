"""Minimal reproduction for an upstream report (opentelemetry-instrumentation-fastapi):
every request, sampled or not, is matched against the app's routes a second time to name
its span, so the instrumentation's cost grows with the number of routes.

    .venv/bin/python bench/fastapi_route_matching.py [--requests 3000] [--rounds 5]

``OpenTelemetryMiddleware.__call__`` calls ``_get_default_span_details(scope)`` before it
asks the sampler anything; that flattens ``app.routes`` into a new list and runs each
route's ``matches(scope)`` (a regex match) until one matches in full, which Starlette's
router then does again to dispatch. An unsampled request pays it for a span name nobody
will see. The app here has N routes ``GET /items{i}/{item_id}``; each request asks for
the last one. CPU µs per request through ASGI directly, medians of the rounds: plain,
instrumented with every request unsampled (``ALWAYS_OFF``), instrumented and sampled.
Only FastAPI, the SDK and the instrumentation are imported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

ROUTES = (5, 25, 100)
MODES = ("plain", "unsampled", "sampled")


def app_with(routes: int, mode: str) -> FastAPI:
    app = FastAPI()
    for i in range(routes):

        async def item(item_id: str) -> dict[str, str]:
            return {"item_id": item_id}

        app.get(f"/items{i}/{{item_id}}")(item)
    if mode != "plain":
        sampler = ALWAYS_ON if mode == "sampled" else ALWAYS_OFF
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=TracerProvider(sampler=sampler), exclude_spans=["receive", "send"]
        )
    return app


async def cpu_us(app: FastAPI, path: str, requests: int) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    for _ in range(200):
        await app(dict(scope, state={}), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope, state={}), receive, send)
    return (time.process_time() - started) / requests * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for routes in ROUTES:
            for mode in MODES:
                app = app_with(routes, mode)
                path = f"/items{routes - 1}/42"
                figures.setdefault((routes, mode), []).append(
                    await cpu_us(app, path, args.requests)
                )
    print("| routes | " + " | ".join(f"{m} µs" for m in MODES) + " | unsampled - plain |")
    print("|---" * (len(MODES) + 2) + "|")
    for routes in ROUTES:
        plain, unsampled, sampled = (statistics.median(figures[routes, m]) for m in MODES)
        print(
            f"| {routes} | {plain:.0f} | {unsampled:.0f} | {sampled:.0f} | "
            f"+{unsampled - plain:.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
