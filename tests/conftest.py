"""The project's fixtures over ordersim.testing's plugin (ordersim/pytest_plugin.py).

The in-process system, its transports and the span tree are public in
:mod:`ordersim.testing`; the short names the tests use (``exporter``, ``start_system``,
``system``) are the plugin's ``span_exporter``, ``start_ordersim`` and ``ordersim_system``.
What is left here is the project's own: PostgreSQL, real processes, the viewer's query app,
and the system tools some tests need (tests/system_tools.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ordersim.testing import System
from ordersim.testing.processes import clean_env, free_port
from tests.postgres import create_databases, throwaway_cluster

# The programs outside Python some tests run: the `system_tool` marker, the skip (or, under
# CI=true, the failure) where one is missing, and the summary line naming what was skipped.
# (Its hooks imported here, not named in `pytest_plugins`: this module imports it first.)
from tests.system_tools import (  # noqa: F401
    pytest_configure,
    pytest_runtest_setup,
    pytest_terminal_summary,
    system_tool,
)


@pytest.fixture
def exporter(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    return span_exporter


@pytest.fixture
def start_system(start_ordersim: Callable[..., Any]) -> Callable[..., Any]:
    """``async with start_system(wrap={"payment": down("/charges")}) as system: ...``"""
    return start_ordersim


@pytest.fixture
def system(ordersim_system: System) -> System:
    return ordersim_system


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the whole run."""
    with throwaway_cluster(system_tool("postgresql")) as base_url:
        yield base_url


@pytest.fixture(params=["sqlite", "postgres"])
async def any_system(
    request: pytest.FixtureRequest, start_system: Callable[..., Any]
) -> AsyncIterator[System]:
    """The in-process system on SQLite and again on PostgreSQL: one code path for both."""
    databases = None
    if request.param == "postgres":
        base_url = request.getfixturevalue("postgres_cluster")
        suffix = uuid.uuid4().hex[:8]
        names = {s: f"{s}_{suffix}" for s in ("order", "inventory", "payment", "shipping")}
        urls = await create_databases(base_url, list(names.values()))
        databases = {service: urls[name] for service, name in names.items()}
    # These tests are about what concurrent orders do to the data, not about timeouts: on a
    # busy 2-core machine 30 orders at once can take longer than the 2 s call timeout the
    # other tests use, and a 503 there would be the machine's speed, not a finding.
    async with start_system(databases=databases) as running:
        running.backend = request.param
        yield running


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("ORDER", "INVENTORY", "PAYMENT", "SHIPPING")}


@pytest.fixture
def up_env(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    env = clean_env()
    env.update({f"{name}_SERVICE_PORT": str(port) for name, port in ports.items()})
    env["ORDERSIM_DATA_DIR"] = str(tmp_path / "data")
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    return env


@pytest.fixture(autouse=True)
def no_context_detach_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A context token reset in the wrong task logs "Failed to detach context": never allowed."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    yield
    detach_errors = [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert not detach_errors, detach_errors[0].getMessage()


@pytest.fixture
def query_app(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    """The viewer's query API and pages over an empty store, in process."""
    from trace_viewer.query import create_query_app
    from trace_viewer.store import Limits, TraceStore

    store = TraceStore(tmp_path / "traces.db", Limits(100, 10**9))
    app = create_query_app(store)
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer")
    store.close()
