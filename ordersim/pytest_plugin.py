"""The pytest plugin of :mod:`ordersim.testing`, registered under the ``pytest11`` entry
point, so its fixtures are there wherever the package is installed:

- ``span_exporter``: a fresh ``InMemorySpanExporter`` per test;
- ``start_apps``: :func:`~ordersim.testing.traced_apps` over ``span_exporter``::

      async with start_apps({"front": create_front, "stock": create_stock}) as apps: ...

- ``start_ordersim``: :func:`~ordersim.testing.in_process_system` over ``span_exporter``,
  its databases in ``tmp_path``::

      async with start_ordersim(wrap={"payment": down("/charges")}) as system: ...

- ``ordersim_system``: ordersim's four services running, for the test's whole length.

The fixtures are plain ones that hand out async context managers, so any async test
runner drives them (pytest-asyncio, anyio); only ``ordersim_system`` needs pytest-asyncio.
Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ordersim.testing._system import System


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """A fresh in-memory span exporter: every span of the test's apps ends up here."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


@pytest.fixture
def start_apps(span_exporter: InMemorySpanExporter) -> Callable[..., Any]:
    """``async with start_apps({"front": create_front, "stock": create_stock}) as apps:``"""
    from ordersim.testing._apps import traced_apps

    return functools.partial(traced_apps, exporter=span_exporter)


@pytest.fixture
def start_ordersim(tmp_path: Path, span_exporter: InMemorySpanExporter) -> Callable[..., Any]:
    """``async with start_ordersim(wrap={"payment": down("/charges")}) as system:``"""
    from ordersim.testing._system import in_process_system

    return functools.partial(in_process_system, tmp_path, span_exporter)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs it; the others do not
    pass
else:

    @pytest_asyncio.fixture
    async def ordersim_system(start_ordersim: Callable[..., Any]) -> AsyncIterator[System]:
        """ordersim's four services running in this process for the whole test."""
        async with start_ordersim() as running:
            yield running
