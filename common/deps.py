"""FastAPI dependencies the services share: DB engine and tracer (set by the lifespan), and
the scenarios switched on."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from common.settings import ServiceSettings


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _tracer(request: Request) -> trace.Tracer:
    tracer: trace.Tracer = request.app.state.tracer
    return tracer


def _scenarios(request: Request) -> frozenset[str]:
    settings: ServiceSettings = request.app.state.settings
    return settings.scenarios


EngineDep = Annotated[AsyncEngine, Depends(_engine)]
TracerDep = Annotated[trace.Tracer, Depends(_tracer)]
#: The planted performance bugs switched on (ORDERSIM_SCENARIOS).
ScenariosDep = Annotated[frozenset[str], Depends(_scenarios)]
