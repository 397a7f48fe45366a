"""order-service's admin API: ``GET /admin/compensations``, the deferred-compensation backlog.

Like every ``/admin/*`` path, it is neither traced nor faulted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from order_service.deps import BacklogDep, SettingsDep
from order_service.models import CompensationBacklog

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/compensations")
async def compensation_backlog(
    backlog: BacklogDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="items to list, oldest first")] = 100,
) -> CompensationBacklog:
    """The compensations waiting to be retried: how many, the oldest's age, and per item its
    attempts, last error and next attempt time."""
    return await backlog.summary(limit, warn_at=settings.compensation_backlog_warning)
