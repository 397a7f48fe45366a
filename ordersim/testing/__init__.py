"""Test the traces of FastAPI services: run them in one process, read their spans as a tree.

Three parts, each usable alone:

- :func:`traced_apps` runs *any* set of FastAPI apps in this process, wired to each other
  over httpx, each traced under its own ``service.name`` into one
  ``InMemorySpanExporter``; each request crosses a :class:`ProcessBoundary`, so the callee
  starts its SERVER span from the ``traceparent`` header alone, as in another process;
- :class:`SpanTree` finds spans by name, service and kind and asserts parent and child,
  overlap, order, status, events and attributes, printing the tree when one fails; its
  :meth:`~SpanTree.is_complete` is the project's one rule for a complete trace;
- :func:`in_process_system` runs ordersim's own four services that way (the project's
  tests use it), and :mod:`ordersim.testing.processes` runs them as real processes.

A test of two apps of your own (``pip install 'ordersim[testing]'``)::

    import pytest
    from opentelemetry.trace import SpanKind
    from ordersim.testing import SpanTree, traced_apps

    @pytest.mark.asyncio
    async def test_front_calls_stock(start_apps):
        async with start_apps({"front": create_front, "stock": create_stock}) as apps:
            await apps.client("front").get("/quote")
        tree = SpanTree(apps.spans())
        call = tree.find("GET", service="front", kind=SpanKind.CLIENT)
        tree.assert_child(call, tree.find("GET /stock", service="stock"))
        tree.assert_complete()

The pytest plugin (registered as ``ordersim`` under the ``pytest11`` entry point) gives the
fixtures ``span_exporter``, ``start_apps``, ``start_ordersim`` and ``ordersim_system``
(:mod:`ordersim.pytest_plugin`). Examples that run from any folder: ``examples/test_*.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ordersim.testing._apps import AppContext, AppFactory, TracedApps, traced_apps
from ordersim.testing._balance import SpanBalance
from ordersim.testing._transports import (
    FaultyTransport,
    Gate,
    LiveTransport,
    ProcessBoundary,
    TransportWrapper,
    down,
    slow,
)
from ordersim.testing._tree import SpanTree, describe, overlap, service_of, trace_id_of

if TYPE_CHECKING:
    from ordersim.testing._system import Clock, System, in_process_system

__all__ = [
    "AppContext",
    "AppFactory",
    "Clock",
    "FaultyTransport",
    "Gate",
    "LiveTransport",
    "ProcessBoundary",
    "SpanBalance",
    "SpanTree",
    "System",
    "TracedApps",
    "TransportWrapper",
    "describe",
    "down",
    "in_process_system",
    "overlap",
    "service_of",
    "slow",
    "trace_id_of",
    "traced_apps",
]

_SYSTEM = {"Clock", "System", "in_process_system"}


def __getattr__(name: str) -> Any:
    # ordersim's own services (SQLAlchemy, the four apps) load only for who asks for them.
    if name in _SYSTEM:
        from ordersim.testing import _system

        return getattr(_system, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
