"""order-service's admin API: ``GET /admin/compensations``, the deferred-compensation backlog.

Like every ``/admin/*`` path, it is neither traced nor faulted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from order_service.backlog import Backlog
from order_service.models import CompensationBacklog
from order_service.settings import OrderSettings

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/compensations")
async def compensation_backlog(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="items to list, oldest first")] = 100,
) -> CompensationBacklog:
    """The compensations waiting to be retried: how many, the oldest's age, and per item its
    attempts, last error and next attempt time."""
    backlog: Backlog = request.app.state.backlog
    settings: OrderSettings = request.app.state.settings
    return await backlog.summary(limit, warn_at=settings.compensation_backlog_warning)
