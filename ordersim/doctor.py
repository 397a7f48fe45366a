"""``ordersim doctor``: the troubleshooting list, run against a running tracing setup.

Its inputs are explicit: the OTLP endpoint spans go to, the query API they are read from
(the embedded viewer or Jaeger) and the service URLs to probe. From those it checks:

- **environment**: ``OTEL_SDK_DISABLED`` and ``OTEL_TRACES_EXPORTER`` of the environment
  the doctor itself runs in (a service started elsewhere may see other values);
- **OTLP endpoint**: an empty export is accepted (OTLP/HTTP or OTLP/gRPC);
- **query API**: it answers, and a span the doctor exports to the OTLP endpoint shows up
  in it (so both ends are one pipeline);
- **propagation** per service URL: a request carrying a W3C ``traceparent`` comes back
  with that trace id in ``traceresponse`` (or a span of it in the query API); if not, the
  same with a ``b3`` header, to say which propagator the service reads;
- **one trace**: a request with a known ``traceparent`` (by default a sample order) gives
  one complete trace (:meth:`ordersim.waterfall.Trace.is_complete`, the viewer's rule);
- **dropped spans**: parents that never arrived, and the viewer's rejected-span count;
- **clock skew**: SERVER spans outside their CLIENT parent by more than a threshold
  (:meth:`ordersim.waterfall.Trace.overhang`);
- **double instrumentation**: two SERVER spans of one service for one call, or a CLIENT
  span whose only child is a CLIENT span of the same URL.

What only the services' own logs or metrics show (a full export queue, failed exports,
context lost in threads, overhead) is listed as skipped, with where to look.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from common import topology
from ordersim.calls import base_url, reason, trace_of
from ordersim.console import UsageError, usage_error
from ordersim.incomplete import missing_reports
from ordersim.viewer import Viewer, ViewerError, wait_for_trace
from ordersim.waterfall import KIND_CLIENT, KIND_INTERNAL, KIND_SERVER, Span, Trace, format_ms

Status = Literal["ok", "problem", "skipped"]
#: Seconds one probe (an OTLP export, a service request) may take.
PROBE_TIMEOUT = 5.0
#: The service.name of the spans the doctor exports itself.
DOCTOR_SERVICE = "ordersim-doctor"
#: Where a service's telemetry logs go, named in the checks that need them.
_LOGS = "the service's own log (stderr)"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Probe:
    """The request that should give one trace: ``method url`` with ``body`` (JSON)."""

    method: str
    url: str
    body: Any = None


@dataclass
class Inputs:
    otlp: str | None  # the OTLP endpoint (base URL, or host:port for gRPC)
    protocol: str  # "http/protobuf" or "grpc"
    viewer: str | None  # the query API
    services: list[str]  # URLs to probe for propagation
    request: Probe | None
    wait: float = 10.0
    skew_ms: float = 25.0


@dataclass
class Report:
    inputs: Inputs
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "problem" for c in self.checks)

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check


# --- inputs ------------------------------------------------------------------------------


def default_otlp(env: Mapping[str, str]) -> tuple[str, str]:
    """The OTLP endpoint and protocol this environment exports to, as the SDK reads them;
    without OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, the embedded viewer's intake ``ordersim
    up`` starts (TRACE_VIEWER_OTLP_PORT / TRACE_VIEWER_GRPC_PORT)."""
    from common.telemetry import otlp_protocol  # the services' own reading of the variables
    from trace_viewer.settings import ViewerSettings

    protocol = otlp_protocol(env)
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:  # a signal-specific endpoint is the whole URL (…/v1/traces for HTTP)
        return traces, protocol
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        return endpoint, protocol
    viewer = ViewerSettings()
    return (viewer.grpc_endpoint if protocol == "grpc" else viewer.otlp_endpoint), protocol


def default_services() -> list[str]:
    """Our four services, each probed at its OpenAPI document (any traced path would do)."""
    return [f"{service.url()}/openapi.json" for service in topology.SERVICES]


def default_request() -> Probe:
    """A sample order to our order service: it calls the three others."""
    from ordersim.samples import DEFAULT_ITEMS, order_body
    from payment_service import cards

    return Probe(
        "POST", f"{topology.ORDER.url()}/orders", order_body(DEFAULT_ITEMS, cards.APPROVED)
    )


# --- OTLP ----------------------------------------------------------------------------------


def _http_traces_url(endpoint: str) -> str:
    endpoint = base_url(endpoint)
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def _probe_span(
    trace_id: str,
    span_id: str,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, str],
) -> bytes:
    """One CLIENT span of the doctor as an OTLP ExportTraceServiceRequest (protobuf)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=DOCTOR_SERVICE))
    )
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(trace_id)
    span.span_id = bytes.fromhex(span_id)
    span.name = name
    span.kind = SpanProto.SPAN_KIND_CLIENT
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = end_ns
    for key, value in attributes.items():
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return request.SerializeToString()


def export(inputs: Inputs, body: bytes, client: httpx.Client) -> str | None:
    """Send an ExportTraceServiceRequest to the OTLP endpoint: None if accepted, else why not."""
    assert inputs.otlp is not None
    if inputs.protocol == "grpc":
        return _export_grpc(inputs.otlp, body)
    url = _http_traces_url(inputs.otlp)
    try:
        response = client.post(
            url,
            content=body,
            headers={"content-type": "application/x-protobuf"},
            timeout=PROBE_TIMEOUT,
        )
    except httpx.InvalidURL as exc:
        return f"{url} is not a usable URL: {exc}"
    except httpx.TransportError as exc:
        return f"nothing answers at {url} ({reason(exc)})"
    if response.status_code != 200:
        return f"{url} answered HTTP {response.status_code}: {response.text[:200]}"
    return None


def _export_grpc(endpoint: str, body: bytes) -> str | None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    target = parts.netloc
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if parts.scheme == "https"
        else grpc.insecure_channel(target)
    )
    try:
        TraceServiceStub(channel).Export(  # type: ignore[no-untyped-call]
            ExportTraceServiceRequest.FromString(body), timeout=PROBE_TIMEOUT
        )
    except grpc.RpcError as exc:
        return f"OTLP/gRPC at {target}: {exc}"
    finally:
        channel.close()
    return None


# --- the checks ------------------------------------------------------------------------


def check_environment(report: Report, env: Mapping[str, str]) -> None:
    seen = "in the environment ordersim doctor runs in (a service started elsewhere may see others)"
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        report.add(
            "environment: SDK",
            "problem",
            f"OTEL_SDK_DISABLED={env['OTEL_SDK_DISABLED']} {seen}: every tracer is a no-op, "
            "no span is made",
            "unset OTEL_SDK_DISABLED (or set it to false) where the services start",
        )
    else:
        report.add("environment: SDK", "ok", f"OTEL_SDK_DISABLED is not true {seen}")
    value = env.get("OTEL_TRACES_EXPORTER", "")
    names = {n.strip().lower() for n in value.split(",") if n.strip()} or {"otlp"}
    if "otlp" not in names:
        report.add(
            "environment: exporter",
            "problem",
            f"OTEL_TRACES_EXPORTER={value} {seen}: spans are made but not sent over OTLP",
            "set OTEL_TRACES_EXPORTER=otlp (the default) where the services start",
        )
    else:
        report.add(
            "environment: exporter",
            "ok",
            f"OTEL_TRACES_EXPORTER={value or 'otlp (default)'}; OTLP endpoint "
            f"{report.inputs.otlp} over {report.inputs.protocol} {seen}",
        )


def check_otlp(report: Report, client: httpx.Client) -> bool:
    inputs = report.inputs
    if inputs.otlp is None:
        report.add("OTLP endpoint", "skipped", "no OTLP endpoint given (--otlp)")
        return False
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    problem = export(inputs, ExportTraceServiceRequest().SerializeToString(), client)
    if problem:
        report.add(
            "OTLP endpoint",
            "problem",
            problem,
            "start the collector or viewer there (`ordersim up`), or point "
            "OTEL_EXPORTER_OTLP_ENDPOINT (and --otlp) at the one that runs; check "
            "OTEL_EXPORTER_OTLP_PROTOCOL matches its port (4318 HTTP, 4317 gRPC)",
        )
        return False
    report.add("OTLP endpoint", "ok", f"{inputs.otlp} accepts OTLP exports ({inputs.protocol})")
    return True


def _new_ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def check_pipeline(report: Report, viewer: Viewer | None, client: httpx.Client) -> bool:
    """The query API answers, and a span exported to the OTLP endpoint appears in it."""
    inputs = report.inputs
    if viewer is None:
        report.add("query API", "skipped", "no query API given (--endpoint)")
        return False
    try:
        viewer.fetch("/api/v3/services")
    except ViewerError as exc:
        report.add(
            "query API",
            "problem",
            str(exc),
            "start the viewer (`ordersim up`) or Jaeger, or point --endpoint at its query URL",
        )
        return False
    if inputs.otlp is None or not any(
        c.name == "OTLP endpoint" and c.status == "ok" for c in report.checks
    ):
        report.add("query API", "ok", f"{viewer.endpoint} answers (the OTLP path was not tested)")
        return True
    trace_id, span_id = _new_ids()
    now = time.time_ns()
    body = _probe_span(trace_id, span_id, "doctor probe", now, now + 1000, {})
    problem = export(inputs, body, client)
    found = (
        wait_for_trace(viewer, trace_id, inputs.wait, done=lambda t: bool(t.spans))
        if not problem
        else None
    )
    if found is not None and found.spans:
        report.add(
            "query API",
            "ok",
            f"a span exported to {inputs.otlp} appeared at {viewer.endpoint} (trace {trace_id})",
        )
        return True
    report.add(
        "query API",
        "problem",
        f"a span exported to {inputs.otlp} did not appear at {viewer.endpoint} within "
        f"{inputs.wait:g}s{f' ({problem})' if problem else ''}",
        "the OTLP endpoint and the query API belong to different backends, or the backend "
        "drops what it receives (see its log); point both at one viewer or Jaeger",
    )
    return False


def check_propagation(
    report: Report, url: str, viewer: Viewer | None, client: httpx.Client
) -> None:
    name = f"propagation: {url}"
    trace_id, span_id = _new_ids()
    try:
        response = client.get(
            url, headers={"traceparent": f"00-{trace_id}-{span_id}-01"}, timeout=PROBE_TIMEOUT
        )
    except httpx.InvalidURL as exc:
        report.add(name, "problem", f"not a usable URL: {exc}", "give a full http:// URL")
        return
    except httpx.TransportError as exc:
        report.add(
            name, "problem", f"GET {url}: {reason(exc)}", "start the service, or fix --service"
        )
        return
    echoed, sampled = trace_of(response)
    if echoed == trace_id:
        if not sampled:
            report.add(
                name,
                "problem",
                "joins the W3C trace but does not sample it, though the caller did",
                "use a parent-based sampler (OTEL_TRACES_SAMPLER=parentbased_always_on)",
            )
        else:
            report.add(name, "ok", "reads W3C traceparent (traceresponse carries the trace id)")
        return
    if echoed is None and viewer is not None:
        # No traceresponse header: look for the service's span in the query API instead.
        try:
            found = wait_for_trace(
                viewer,
                trace_id,
                min(report.inputs.wait, 5.0),
                done=lambda t: any(s.parent_id == span_id for s in t.spans),
            )
        except ViewerError:
            found = Trace([])
        if any(s.parent_id == span_id for s in found.spans):
            report.add(name, "ok", "reads W3C traceparent (its span joined the trace)")
            return
    b3_trace, b3_span = _new_ids()
    try:
        b3 = client.get(url, headers={"b3": f"{b3_trace}-{b3_span}-1"}, timeout=PROBE_TIMEOUT)
        b3_echoed, _ = trace_of(b3)
    except httpx.TransportError:
        b3_echoed = None
    if b3_echoed == b3_trace:
        report.add(
            name,
            "problem",
            "reads only B3 headers: a W3C traceparent from a caller is ignored and the "
            "trace splits there",
            "give every service the same OTEL_PROPAGATORS (tracecontext,baggage; add b3 "
            "to all of them if some caller only speaks B3)",
        )
        return
    if echoed is None:
        report.add(
            name,
            "problem",
            "no traceresponse header and no span of the probe's trace arrived"
            + ("" if viewer else " (no query API to look in)")
            + ": the service is not instrumented, does not export, or ignores traceparent",
            "instrument it (opentelemetry-instrument, or FastAPIInstrumentor) with "
            "OTEL_PROPAGATORS=tracecontext,baggage; see its log for export errors",
        )
        return
    report.add(
        name,
        "problem",
        f"ignores the W3C traceparent: it answered in a new trace {echoed}",
        "set OTEL_PROPAGATORS=tracecontext,baggage (the default) for the service",
    )


def run_request(report: Report, viewer: Viewer | None, client: httpx.Client) -> Trace | None:
    """Send the probe request with a known traceparent; the trace it made, or None."""
    inputs = report.inputs
    name = "one trace"
    probe = inputs.request
    if probe is None:
        report.add(name, "skipped", "no request to send (--request METHOD URL [--body JSON])")
        return None
    if viewer is None or not any(c.name == "query API" and c.status == "ok" for c in report.checks):
        report.add(name, "skipped", "needs a query API that answers (--endpoint)")
        return None
    trace_id, span_id = _new_ids()
    start = time.time_ns()
    try:
        response = client.request(
            probe.method,
            probe.url,
            json=probe.body,
            headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
            timeout=httpx.Timeout(30.0, connect=PROBE_TIMEOUT),
        )
    except httpx.TransportError as exc:
        report.add(
            name,
            "problem",
            f"{probe.method} {probe.url}: {reason(exc)}",
            "start the service, or fix --request",
        )
        return None
    end = time.time_ns()
    attributes = {"http.request.method": probe.method, "url.full": probe.url}
    # The doctor's own CLIENT span is the trace's root: exported, so the viewer shows the
    # whole trace, and added here, so the check does not depend on that export.
    doctor_span = Span(
        trace_id,
        span_id,
        "",
        f"{probe.method}",
        DOCTOR_SERVICE,
        KIND_CLIENT,
        start,
        end,
        attributes=attributes,
    )
    if inputs.otlp is not None:
        export(
            inputs,
            _probe_span(trace_id, span_id, probe.method, start, end, attributes),
            client,
        )
    try:
        trace = wait_for_trace(viewer, trace_id, inputs.wait, extra=[doctor_span])
    except ViewerError as exc:
        report.add(name, "problem", str(exc), "check the query API")
        return None
    link = viewer.link(trace_id)
    echoed, _ = trace_of(response)
    if trace.is_complete():
        report.add(
            name,
            "ok",
            f"{probe.method} {probe.url} (HTTP {response.status_code}) made one complete "
            f"trace of {len(trace.spans) - 1} spans from {len(trace.services) - 1} "
            f"service(s): {link}",
        )
        return trace
    lines = missing_reports(trace, f"{probe.method} {probe.url}")
    if echoed and echoed != trace_id:
        lines.insert(0, f"the service answered in another trace, {echoed}")
    report.add(
        name,
        "problem",
        f"{probe.method} {probe.url} (HTTP {response.status_code}): the trace is split or "
        f"incomplete after {inputs.wait:g}s: " + "; ".join(lines) + f" ({link})",
        "a service that never reported or answered in another trace reads another "
        "propagator or does not export (see the propagation rows); give every service "
        "OTEL_PROPAGATORS=tracecontext,baggage and an OTLP endpoint",
    )
    return trace


def check_drops(report: Report, trace: Trace | None, viewer: Viewer | None) -> None:
    name = "dropped spans"
    found: list[str] = []
    looked: list[str] = []
    if trace is not None:
        looked.append("the probe's trace")
        if trace.orphans:
            found.append(
                f"{len(trace.orphans)} span(s) of the probe's trace name a parent that never "
                "arrived: " + ", ".join(f"{s.name} ({s.service})" for s in trace.orphans[:5])
            )
    if viewer is not None:
        try:
            stats = viewer.fetch("/api/stats")
        except ViewerError:
            stats = None
        if isinstance(stats, dict):
            looked.append("the viewer's /api/stats")
            rejected = stats.get("spans_rejected")
            if isinstance(rejected, int) and rejected > 0:
                found.append(f"the viewer rejected {rejected} span(s) since it started")
    queue = (
        f"a full BatchSpanProcessor queue shows only in {_LOGS} ('Queue is full, likely "
        "spans will be dropped.')"
    )
    if not looked:
        report.add(name, "skipped", f"needs a trace or the viewer's statistics; {queue}")
    elif found:
        report.add(
            name,
            "problem",
            "; ".join(found) + f"; {queue}",
            "raise OTEL_BSP_MAX_QUEUE_SIZE / lower OTEL_BSP_SCHEDULE_DELAY, check the "
            "exporter's errors in the service's log, and flush on shutdown",
        )
    else:
        report.add(name, "ok", f"none seen in {' and '.join(looked)}; {queue}")


def check_skew(report: Report, trace: Trace | None) -> None:
    name = "clock skew"
    if trace is None:
        report.add(name, "skipped", "needs the probe's trace (the one-trace check)")
        return
    threshold = int(report.inputs.skew_ms * 1e6)
    found = []
    pairs = 0
    for span in trace.spans:
        parent = trace.by_id.get(span.parent_id)
        if span.kind != KIND_SERVER or parent is None or parent.kind != KIND_CLIENT:
            continue
        if parent.service in (span.service, DOCTOR_SERVICE):
            continue  # the doctor's own clock and request are not the services'
        pairs += 1
        before, after = trace.overhang(span)
        if "http.response.status_code" not in parent.attributes:
            after = 0  # an abandoned call: the server went on after the caller left
        if before > threshold or after > threshold:
            side = (
                f"starts {format_ms(before)} ms before"
                if before > threshold
                else (f"ends {format_ms(after)} ms after")
            )
            found.append(
                f"{span.name} ({span.service}) {side} its caller's {parent.name} ({parent.service})"
            )
    if found:
        report.add(
            name,
            "problem",
            f"{len(found)} of {pairs} server span(s) lie outside their client span by more "
            f"than {report.inputs.skew_ms:g} ms: " + "; ".join(found[:5]),
            "synchronise the hosts' clocks (NTP/chrony); on one host, a busy event loop "
            "delays a span's end the same way",
        )
    elif pairs:
        report.add(
            name,
            "ok",
            f"{pairs} client/server pair(s) within {report.inputs.skew_ms:g} ms of each other",
        )
    else:
        report.add(name, "skipped", "the probe's trace has no call between two services")


def _url(span: Span) -> object:
    return span.attributes.get("url.full", span.attributes.get("http.url"))


def check_duplicates(report: Report, trace: Trace | None) -> None:
    name = "double instrumentation"
    if trace is None:
        report.add(name, "skipped", "needs the probe's trace (the one-trace check)")
        return
    found = []
    servers: dict[tuple[str, str], list[Span]] = {}
    for span in trace.spans:
        if span.kind != KIND_SERVER:
            continue
        parent = trace.by_id.get(span.parent_id)
        if parent is not None and parent.kind == KIND_SERVER and parent.service == span.service:
            found.append(f"SERVER span {span.name} ({span.service}) inside another, {parent.name}")
        elif span.parent_id:
            servers.setdefault((span.service, span.parent_id), []).append(span)
        # A second ASGI instrumentation under a first one's SERVER span makes its own span
        # INTERNAL (it sees a span already current), named for the same request: FastAPI's
        # own telemetry around opentelemetry-instrumentation-fastapi's, for one.
        found.extend(
            f"{span.name} ({span.service}) traced twice: an INTERNAL span of that name inside "
            "its SERVER span"
            for kid in trace.children.get(span.span_id, [])
            if kid.kind == KIND_INTERNAL and kid.name == span.name
        )
    for (service, _), spans in servers.items():
        if len(spans) > 1:
            found.append(f"{len(spans)} SERVER spans of {service} for one call ({spans[0].name})")
    for span in trace.spans:
        kids = trace.children.get(span.span_id, [])
        if (
            span.kind == KIND_CLIENT
            and len(kids) == 1
            and kids[0].kind == KIND_CLIENT
            and kids[0].service == span.service
            and _url(span) is not None
            and _url(kids[0]) == _url(span)
        ):
            found.append(f"CLIENT span {span.name} ({span.service}) wraps another for {_url(span)}")
    if found:
        report.add(
            name,
            "problem",
            "; ".join(found[:5]),
            "instrument each library once: under opentelemetry-instrument, drop the manual "
            "FastAPIInstrumentor/HTTPXClientInstrumentor calls (or exclude them with "
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS); beside the FastAPI instrumentation, turn "
            "FastAPI's own telemetry off: "
            'FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})',
        )
    else:
        report.add(name, "ok", "one SERVER span per call and service, no CLIENT span twice")


def needs_logs(report: Report) -> None:
    """What the inputs cannot show, and where to look instead."""
    for name, why in (
        (
            "export errors in the services",
            f"needs {_LOGS}: the exporter logs 'Failed to export' / 'Transient error' there; "
            "the doctor tests only its own path to the OTLP endpoint",
        ),
        (
            "context lost in threads or tasks",
            "needs to know which spans the code should make: a span started in a thread "
            "without the context is a root of its own trace; assert the tree in a test",
        ),
        (
            "tracing overhead",
            "needs the service's latency metrics with tracing on and off (see bench/)",
        ),
    ):
        report.add(name, "skipped", why)


def diagnose(
    inputs: Inputs,
    env: Mapping[str, str] = os.environ,
    transport: httpx.BaseTransport | None = None,
) -> Report:
    report = Report(inputs)
    check_environment(report, env)
    with httpx.Client(transport=transport) as client:
        check_otlp(report, client)
        viewer = Viewer(inputs.viewer, client) if inputs.viewer else None
        check_pipeline(report, viewer, client)
        for url in inputs.services:
            check_propagation(report, url, viewer, client)
        trace = run_request(report, viewer, client)
        check_drops(report, trace, viewer)
        check_skew(report, trace)
        check_duplicates(report, trace)
    needs_logs(report)
    return report


# --- the command ---------------------------------------------------------------------------

_MARK = {
    "ok": ("✓ ok", "green"),
    "problem": ("✗ problem", "bold red"),
    "skipped": ("- skipped", "dim"),
}


def print_report(report: Report, console: Console) -> None:
    inputs = report.inputs
    console.print(
        Text(
            f"OTLP endpoint {inputs.otlp or '-'} ({inputs.protocol}), query API "
            f"{inputs.viewer or '-'}, {len(inputs.services)} service URL(s)"
            + (f", request {inputs.request.method} {inputs.request.url}" if inputs.request else ""),
            style="dim",
        )
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("what was seen, and the fix")
    for check in report.checks:
        label, style = _MARK[check.status]
        what = Text(check.detail)
        if check.fix:
            what.append(f"\nfix: {check.fix}", style="yellow")
        table.add_row(check.name, Text(label, style=style), what)
    console.print(table)
    problems = sum(c.status == "problem" for c in report.checks)
    console.print(
        Text(f"{problems} problem(s) found", style="bold red")
        if problems
        else Text("no problem found", style="bold green")
    )


def parse_request(text: str | None, body: str | None) -> Probe | None:
    if text is None:
        if body is not None:
            raise UsageError("argument --body: only with --request")
        return None
    method, _, url = text.strip().partition(" ")
    if not method.isalpha() or not url.strip():
        raise UsageError(f"argument --request: {text!r} is not 'METHOD URL'")
    parsed = None
    if body is not None:
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise UsageError(f"argument --body: not JSON ({exc})") from None
    return Probe(method.upper(), base_url(url.strip()), parsed)


def doctor(
    *,
    otlp: str | None = None,
    protocol: str | None = None,
    endpoint: str | None = None,
    services: Sequence[str] | None = None,
    request: str | None = None,
    body: str | None = None,
    wait: float = 10.0,
    skew_ms: float = 25.0,
    as_json: bool = False,
    console: Console | None = None,
    env: Mapping[str, str] = os.environ,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Run the checks and print them; 0 if none found a problem, 1 if one did, 2 for bad
    arguments. With ``services`` None (and no ``request``), ``ordersim up``'s services are
    probed and a sample order is the request."""
    try:
        if not wait >= 0:
            raise UsageError(f"argument --wait: {wait:g} is not a number of seconds")
        if not skew_ms >= 0:
            raise UsageError(f"argument --skew-ms: {skew_ms:g} is not a number of ms")
        probe = parse_request(request, body)
    except UsageError as exc:
        return usage_error("doctor", exc)
    default_endpoint, default_protocol = default_otlp(env)
    if probe is None and services is None:
        probe = default_request()
    inputs = Inputs(
        otlp=otlp or default_endpoint,
        protocol=protocol or default_protocol,
        viewer=base_url(endpoint or topology.VIEWER.ui_url()),
        services=[base_url(s) for s in services] if services is not None else default_services(),
        request=probe,
        wait=wait,
        skew_ms=skew_ms,
    )
    report = diagnose(inputs, env, transport)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "inputs": asdict(inputs),
                    "checks": [asdict(c) for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        print_report(report, console or Console())
    return 0 if report.ok else 1
