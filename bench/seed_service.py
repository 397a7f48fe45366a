"""Run one service in the seed tutorial's configuration: a SimpleSpanProcessor, which
exports every span synchronously, on the request path, as it ends, and httpx's stock
transport between services.

    python bench/seed_service.py order_service

Only the benchmark uses this, as its baseline; the services themselves are configured by
the standard OTEL_* variables alone.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import common.http
import common.telemetry


def _seed_processors() -> list[SimpleSpanProcessor]:
    return [SimpleSpanProcessor(OTLPSpanExporter())]


def _stock_transport() -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(limits=common.http.LIMITS)


common.telemetry._exporter_processors = _seed_processors
common.http.default_transport = _stock_transport
runpy.run_module(sys.argv[1], run_name="__main__", alter_sys=True)
