"""``ordersim trace``: a stored trace's waterfall in the terminal, or its OTLP or Jaeger JSON,
read through the query API (:mod:`ordersim.viewer`)."""

from __future__ import annotations

import json
import os
import sys
from typing import Literal

import httpx
from rich.console import Console

from common import topology
from ordersim.calls import base_url
from ordersim.console import UsageError, consoles, usage_error
from ordersim.viewer import Viewer, parse_trace_id, stored
from ordersim.waterfall import LogLine, Trace, Waterfall, parse_otlp

Output = Literal["waterfall", "json", "jaeger"]


def trace(
    trace_id: str,
    *,
    output: Output = "waterfall",
    endpoint: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print a stored trace: its waterfall, its OTLP JSON or its Jaeger JSON."""
    console, errors = consoles(console, errors)
    try:
        trace_id = parse_trace_id(trace_id)
    except UsageError as exc:
        return usage_error("trace", exc)
    endpoint = base_url(endpoint or topology.VIEWER.ui_url())
    logs: list[LogLine] = []
    with httpx.Client(transport=transport) as client:
        viewer = Viewer(endpoint, client)
        document = stored(viewer, trace_id, errors, jaeger=output == "jaeger")
        if document is not None and output == "waterfall":
            logs = viewer.logs(trace_id)
    if document is None:
        return 1
    try:
        if output == "waterfall":
            console.print(Waterfall(Trace(parse_otlp(document), logs)))
        else:
            # As received, pretty-printed; plain text, so it pipes into jq unchanged.
            print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)
    except BrokenPipeError:  # `ordersim trace ID --json | head`: the reader has gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0
