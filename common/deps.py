"""FastAPI dependencies the services share: DB engine and tracer (set by the lifespan).

Every dependency in the services is ``async def``, even one that awaits nothing: FastAPI
runs a plain ``def`` dependency in its thread pool, a thread hop (and a hand-over of the
GIL) per dependency per request (tests/test_order_cost.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _tracer(request: Request) -> trace.Tracer:
    tracer: trace.Tracer = request.app.state.tracer
    return tracer


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
TracerDep = Annotated[trace.Tracer, Depends(_tracer)]
