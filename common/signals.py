"""Logs and metrics of a service, beside its traces (:mod:`common.telemetry`), configured by
the standard variables alone:

- ``OTEL_LOGS_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp`` (the default), ``console``,
  ``none``, or a comma-separated list; OTLP over HTTP, or gRPC when
  ``OTEL_EXPORTER_OTLP_{LOGS,METRICS}_PROTOCOL`` (or ``OTEL_EXPORTER_OTLP_PROTOCOL``) says
  ``grpc``, to the endpoint the exporters read from ``OTEL_EXPORTER_OTLP_*``.
- ``OTEL_METRIC_EXPORT_INTERVAL`` (ms, 60000 by default; ``ordersim up`` sets 5000) and
  ``OTEL_BLRP_*`` are read by the SDK's reader and processor themselves.
- ``OTEL_METRICS_EXEMPLAR_FILTER`` (``trace_based`` by default: a measurement made inside a
  sampled span keeps its trace and span id as an exemplar) is read by the MeterProvider.

Logs go through the OpenTelemetry logging bridge: a ``LoggingHandler`` turns each record of
the standard ``logging`` module into an OTLP log record with the current span's trace and
span id, its severity and its ``extra`` attributes. The console lines stay as they were.

Metrics: the instrumentations' ``http.server.request.duration`` and
``http.client.request.duration`` (the providers are passed to them in
:mod:`common.telemetry`), ``db.client.operation.duration`` recorded here from SQLAlchemy's
cursor events (opentelemetry-instrumentation-sqlalchemy traces statements but measures
only its connection pool), and each service's business metrics (``*/metrics.py``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from sqlalchemy import Engine, event

logger = logging.getLogger(__name__)

#: The semantic conventions' advisory buckets for db.client.operation.duration (seconds).
DB_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: Loggers whose records are not exported (the console still prints them): uvicorn's access
#: lines and httpx's "HTTP Request: …" lines say what the server and client spans already
#: say, and uvicorn's come after the span has ended (no trace id).
NOT_EXPORTED = ("uvicorn.access", "httpx")


def exporter_names(variable: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters ``OTEL_{LOGS,METRICS}_EXPORTER`` names (``otlp`` unless set)."""
    names = {n.strip().lower() for n in environ.get(variable, "otlp").split(",")}
    return sorted(names - {"", "none"})


def _protocol(signal: str) -> str:
    from common.telemetry import otlp_protocol

    return otlp_protocol(os.environ, signal=signal)


def _metric_exporter(name: str) -> MetricExporter | None:
    if name == "console":
        return ConsoleMetricExporter()
    if name != "otlp":
        logger.warning("OTEL_METRICS_EXPORTER=%s is not supported; use otlp, console or none", name)
        return None
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _log_exporter(name: str) -> LogRecordExporter | None:
    if name == "console":
        return ConsoleLogRecordExporter()
    if name != "otlp":
        logger.warning("OTEL_LOGS_EXPORTER=%s is not supported; use otlp, console or none", name)
        return None
    if _protocol("LOGS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter as GrpcLogExporter,
        )

        return GrpcLogExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter()


class _Exported(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(NOT_EXPORTED)


@dataclass
class Signals:
    """The meter and logger providers of one service, and the logging handler bridging the
    ``logging`` module to its logger provider (None: logs are not exported)."""

    meter_provider: metrics.MeterProvider
    logger_provider: _logs.LoggerProvider
    log_handler: logging.Handler | None = None
    #: False when the providers are someone else's (opentelemetry-instrument's, or no-ops).
    owns_providers: bool = False

    @property
    def metrics_enabled(self) -> bool:
        return not isinstance(self.meter_provider, metrics.NoOpMeterProvider)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def export_logs_of(self, *loggers: str) -> Callable[[], None]:
        """Export the records of these loggers (the root logger when none is named), until
        the returned function is called. ``serve()`` exports the root logger's (one service
        per process); an in-process system, each service's package's."""
        if self.log_handler is None:
            return lambda: None
        handler = self.log_handler
        targets = [logging.getLogger(name) for name in loggers] or [logging.getLogger()]
        for target in targets:
            target.addHandler(handler)

        def detach() -> None:
            for target in targets:
                target.removeHandler(handler)

        return detach

    def shutdown(self) -> None:
        """Export what is pending (the last metric readings, the queued log records)."""
        if not self.owns_providers:
            return
        for provider in (self.meter_provider, self.logger_provider):
            if isinstance(provider, SdkMeterProvider | SdkLoggerProvider):
                provider.shutdown()


def disabled_signals() -> Signals:
    return Signals(metrics.NoOpMeterProvider(), _logs.NoOpLoggerProvider())


def global_signals() -> Signals:
    """The providers opentelemetry-instrument configured (its own logging handler, when
    OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED asks for one, exports the logs)."""
    return Signals(metrics.get_meter_provider(), _logs.get_logger_provider())


def setup_signals(
    resource: Resource,
    *,
    metric_readers: Sequence[MetricReader] | None = None,
    log_processors: Sequence[LogRecordProcessor] | None = None,
) -> Signals:
    """The providers the environment asks for, under the service's ``resource``.

    ``metric_readers`` and ``log_processors`` replace the exporters the environment names
    (tests pass an InMemoryMetricReader and an in-memory log exporter's processor)."""
    if metric_readers is None:
        exporters = (_metric_exporter(n) for n in exporter_names("OTEL_METRICS_EXPORTER"))
        metric_readers = [PeriodicExportingMetricReader(e) for e in exporters if e is not None]
    if log_processors is None:
        log_exporters = (_log_exporter(n) for n in exporter_names("OTEL_LOGS_EXPORTER"))
        log_processors = [BatchLogRecordProcessor(e) for e in log_exporters if e is not None]

    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    if metric_readers:
        # Not shut down at exit by the SDK: Telemetry.shutdown does it, bounded in time (at
        # exit, an unreachable collector would hold the process for the exporter's retries).
        meter_provider = SdkMeterProvider(
            metric_readers=metric_readers, resource=resource, shutdown_on_exit=False
        )
    logger_provider: _logs.LoggerProvider = _logs.NoOpLoggerProvider()
    handler: logging.Handler | None = None
    if log_processors:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler

        sdk_logger_provider = SdkLoggerProvider(resource=resource, shutdown_on_exit=False)
        for processor in log_processors:
            sdk_logger_provider.add_log_record_processor(processor)
        logger_provider = sdk_logger_provider
        handler = LoggingHandler(logger_provider=logger_provider)
        handler.addFilter(_Exported())
    return Signals(meter_provider, logger_provider, handler, owns_providers=True)


def record_operation_durations(
    engine: Engine,
    meter: metrics.Meter,
    target: Callable[[str, Any], tuple[str, str | None]],
) -> None:
    """Record ``db.client.operation.duration`` (seconds) for every statement ``engine``
    runs, with ``db.system.name``, ``db.operation.name``, ``db.collection.name`` (from
    ``target(statement, context)``) and, when it failed, ``error.type``. The exemplar is
    the statement's own span, when the SQLAlchemy instrumentation made one."""
    histogram = meter.create_histogram(
        "db.client.operation.duration",
        unit="s",
        description="Duration of database client operations.",
        explicit_bucket_boundaries_advisory=DB_DURATION_BUCKETS,
    )
    system = {"postgresql": "postgresql", "sqlite": "sqlite"}.get(engine.name, engine.name)

    def record(context: Any, statement: str, error: BaseException | None = None) -> None:
        started = getattr(context, "_ordersim_started", None)
        if started is None:
            return
        context._ordersim_started = None  # once, whichever event comes first
        operation, table = target(statement, context)
        attributes = {"db.system.name": system, "db.operation.name": operation}
        if table is not None:
            attributes["db.collection.name"] = table
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
        span = getattr(context, "_otel_span", None)  # the EngineTracer's statement span
        exemplar_context = trace.set_span_in_context(span) if span is not None else None
        histogram.record(time.perf_counter() - started, attributes, context=exemplar_context)

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context is not None:
            context._ordersim_started = time.perf_counter()

    def after(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        record(context, statement)

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        if context is not None:
            record(context, exception_context.statement or "", exception_context.original_exception)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
