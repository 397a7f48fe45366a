"""FastAPI dependencies the services share: DB engine and tracer (set by the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _tracer(request: Request) -> trace.Tracer:
    tracer: trace.Tracer = request.app.state.tracer
    return tracer


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
TracerDep = Annotated[trace.Tracer, Depends(_tracer)]
