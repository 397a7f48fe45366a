"""Run one service with a probe on the last bytes of every response, for
bench/span_overhang.py --probe:

    python bench/overhang_probe.py inventory_service

uvicorn's send is wrapped: when it writes a response's head and its last body bytes to
the socket, the times before and after each write go on the current span (the request's
SERVER span) as ``bench.head_written_ns``, ``bench.body_write_ns`` and
``bench.body_written_ns``. With them the benchmark tells apart where a SERVER span that
outlives its CLIENT parent lost its time: before its last byte was written, inside the
write, or in what ran between the write and the span's end.
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

_send = RequestResponseCycle.send


async def _probed_send(self: RequestResponseCycle, message: Any) -> None:
    last = message["type"] == "http.response.body" and not message.get("more_body", False)
    before = time.time_ns()
    await _send(self, message)
    after = time.time_ns()
    span = trace.get_current_span()
    if message["type"] == "http.response.start":
        span.set_attribute("bench.head_written_ns", after)
    elif last:
        span.set_attributes({"bench.body_write_ns": before, "bench.body_written_ns": after})


RequestResponseCycle.send = _probed_send  # type: ignore[method-assign]
runpy.run_module(sys.argv[1], run_name="__main__", alter_sys=True)
