"""order-service's FastAPI dependencies, typed (as :mod:`common.deps`): its settings, put in
place by ``create_app``, and the order flow and compensation backlog, by its lifespan.
Handlers take these aliases and never read ``app.state`` themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from order_service.backlog import Backlog
from order_service.flow import OrderFlow
from order_service.settings import OrderSettings


async def _settings(request: Request) -> OrderSettings:
    settings: OrderSettings = request.app.state.settings
    return settings


async def _flow(request: Request) -> OrderFlow:
    flow: OrderFlow = request.app.state.flow
    return flow


async def _backlog(request: Request) -> Backlog:
    backlog: Backlog = request.app.state.backlog
    return backlog


SettingsDep = Annotated[OrderSettings, Depends(_settings)]
FlowDep = Annotated[OrderFlow, Depends(_flow)]
BacklogDep = Annotated[Backlog, Depends(_backlog)]
