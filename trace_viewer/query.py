"""Query API and web UI on port 16686, in the shapes Jaeger serves.

- ``GET /api/v3/traces/{id}``: OTLP JSON ``{"result": {"resourceSpans": [...]}}`` (Jaeger v2)
- ``GET /api/traces/{id}``: Jaeger JSON ``{"data": [trace]}`` (Jaeger UI's "upload JSON")
- ``GET /api/traces/{id}/linked``: the spans of other traces that link to this one's spans
- ``GET /api/v3/traces?query.serviceName=&query.startTimeMin=&…``: Jaeger v2's search, OTLP JSON
- ``GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=&lookback=
  &limit=&traceID=``: Jaeger's v1 search, Jaeger JSON
- ``GET /api/summaries?…``: the same search, one compact row per trace (the trace list)
- ``GET /api/services``, ``/api/v3/services``, ``/api/stats``
- ``GET /api/v3/operations?service=&spanKind=``: operations with their span kind (Jaeger v2)
- ``GET /api/dependencies?endTs=&lookback=``: the service graph, Jaeger's shape plus errors, p99
- ``GET /api/logs?trace_id=``: a trace's log records, OTLP JSON ``{"result": {"resourceLogs"}}``
- ``GET /api/metrics/red?lookback=&service=&step=``: RED per service and operation
  (:mod:`trace_viewer.red`), with exemplars and a series per step for the charts
- ``GET /`` the recent traces, ``GET /trace/{id}`` the waterfall, ``GET /trace/{a}...{b}``
  two traces compared, ``GET /dependencies`` the service graph, ``GET /services`` RED

The search parameters and their parsing are :mod:`trace_viewer.search`'s.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from trace_viewer import search as params
from trace_viewer.dependencies import dependency_links
from trace_viewer.jaeger import SPAN_KINDS, to_jaeger, trace_id_from_text
from trace_viewer.otlp import resource_spans_json
from trace_viewer.otlp_signals import SERVER_DURATION, resource_logs_json
from trace_viewer.red import red
from trace_viewer.search import MAX_DURATION_NS, BadQuery, Search
from trace_viewer.store import LinkingSpan, TraceStore, TraceSummary

STATIC = resources.files("trace_viewer") / "static"
TraceId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$", description="32 hex digits")]
Limit = Annotated[int, Query(ge=1, le=1000)]
#: A trace id as Jaeger's query API takes it: 1 to 32 hex digits, a shorter one (a 64-bit
#: id) left-padded with zeros. Declared with its pattern, parsed by
#: :func:`~trace_viewer.jaeger.trace_id_from_text` (a mismatch is Jaeger's 400, not 422).
JaegerTraceId = Annotated[
    str,
    Path(
        description="1 to 32 hex digits; a 64-bit id (16) is left-padded with zeros",
        json_schema_extra={"pattern": r"^[0-9a-fA-F]{1,32}$"},
    ),
]
#: What the OpenAPI declares besides success, so that a client (or a fuzzer) knows them.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No trace with this id."}}
TRACE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not a trace id (1 to 32 hex digits)."},
    **NOT_FOUND,
}
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed parameter, e.g. minDuration (use 250ms, 1.5s, 800us)."}
}
V3_SEARCH: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or missing parameter (the time range is required)."},
    404: {"description": "No trace matches (Jaeger v2 answers an empty search so)."},
}
V3_BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed parameter, in API v3's error shape."}
}


def _text(pattern: str, description: str, alias: str | None = None) -> Any:
    """A search parameter declared with its pattern, parsed by :mod:`trace_viewer.search`
    (so that a mismatch is Jaeger's 400, not FastAPI's 422)."""
    return Query(alias=alias, description=description, json_schema_extra={"pattern": pattern})


def _repeated(description: str, pattern: str | None = None) -> Any:
    items = {"type": "string", **({"pattern": pattern} if pattern else {})}
    return Query(description=description, json_schema_extra={"items": items})


Duration = Annotated[
    str | None,
    _text(params.DURATION_PATTERN, "e.g. 250ms, 1.5s, 1m30s or 800us; a bare number is µs"),
]


def v1_parameters(
    service: str | None = None,
    operation: str | None = None,
    tags: Annotated[
        list[str] | None,
        _repeated('a JSON object of attribute values, e.g. {"http.response.status_code":"402"}'),
    ] = None,
    tag: Annotated[list[str] | None, _repeated("key:value, e.g. shop.order.id:ord_…")] = None,
    minDuration: Duration = None,  # Jaeger's parameter names
    maxDuration: Duration = None,
    start: Annotated[str | None, _text(params.MICROS_PATTERN, "µs since the epoch")] = None,
    end: Annotated[str | None, _text(params.MICROS_PATTERN, "µs since the epoch")] = None,
    lookback: Annotated[
        str | None, _text(params.LOOKBACK_PATTERN, "e.g. 1h or 2d, back from end (or now)")
    ] = None,
    limit: Annotated[
        str | None, _text(params.INTEGER_PATTERN, f"1 to {params.MAX_LIMIT} traces")
    ] = None,
    traceID: Annotated[
        list[str] | None, _repeated("these traces, whatever else is asked", params.TRACE_ID_PATTERN)
    ] = None,
    error: Annotated[
        str | None, _text(params.BOOL_PATTERN, "only traces with a span of status ERROR")
    ] = None,
) -> dict[str, Any]:
    """Jaeger's v1 search parameters, as given (parsed by the endpoint: a 400 if malformed)."""
    return {
        "service": service,
        "operation": operation,
        "tags": tags or [],
        "tag": tag or [],
        "min_duration": minDuration,
        "max_duration": maxDuration,
        "start": start,
        "end": end,
        "lookback": lookback,
        "limit": limit,
        "trace_ids": traceID or [],
        "errors_only": params.parse_bool(error, "error"),
    }


V1Parameters = Annotated[dict[str, Any], Depends(v1_parameters)]


#: ``spanKind`` of /api/v3/operations → the OTLP kinds it lists. Jaeger v2 lists a span of
#: unspecified kind as ``internal`` (its HTTP gateway, jaeger PR #7997), so that filter
#: includes them.
OPERATION_KINDS: dict[str, tuple[int, ...]] = {
    "server": (2,),
    "client": (3,),
    "internal": (0, 1),
    "producer": (4,),
    "consumer": (5,),
}


def operation_kind(otlp_kind: int) -> str:
    """An operation's ``spanKind`` as Jaeger v2's /api/v3/operations writes it."""
    return SPAN_KINDS.get(otlp_kind, "internal")


#: Jaeger's default lookback for /api/dependencies (``defaultDependencyLookbackDuration``).
DEFAULT_DEPENDENCY_LOOKBACK_MS = 24 * 3600 * 1000
#: RED over the last five minutes unless asked otherwise.
DEFAULT_RED_LOOKBACK_MS = 300_000
#: A time or duration in ms, as Jaeger's dependencies API takes them: declared with its
#: pattern, parsed by :func:`parse_millis` (a mismatch is Jaeger's 400, not FastAPI's 422).
Millis = Annotated[
    str | None,
    Query(
        description="milliseconds; empty for the default",
        json_schema_extra={"pattern": r"^([+-]?[0-9]+)?$"},
    ),
]
SpanKindParam = Annotated[
    str | None,
    Query(
        description="server, client, internal, producer or consumer; empty for all",
        json_schema_extra={"enum": ["", *OPERATION_KINDS]},
    ),
]


def parse_millis(name: str, text: str | None, default: int) -> int:
    """A whole number of ms, as Go's ``strconv.ParseInt(s, 10, 64)`` reads it (Jaeger's
    message when it does not)."""
    if not text:
        return default
    problem = f"unable to parse param '{name}': strconv.ParseInt: parsing \"{text}\""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise BadQuery(f"{problem}: invalid syntax")
    # Past 19 digits it is out of range; Python's int() would also refuse 4,300 digits.
    value = int(text) if len(digits.lstrip("0")) <= 19 else 2**64
    if not -(2**63) <= value < 2**63:
        raise BadQuery(f"{problem}: value out of range")
    return value


def jaeger_response(data: Any, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Jaeger's v1 envelope (its ``structuredResponse``): ``total``, ``limit`` and
    ``offset`` are always 0 in what Jaeger's handlers fill in, ``errors`` null without one."""
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": errors}


def jaeger_error(status: int, message: str) -> JSONResponse:
    """An error as Jaeger's v1 query API answers one: the envelope with ``data`` null and
    the status as ``code`` (Jaeger's ``handleError``)."""
    return JSONResponse(
        jaeger_response(None, [{"code": status, "msg": message}]), status_code=status
    )


def v3_error(status: int, message: str) -> JSONResponse:
    """An error as Jaeger's API v3 HTTP gateway answers one (``GRPCGatewayError``)."""
    return JSONResponse({"error": {"httpCode": status, "message": message}}, status_code=status)


def summary_json(summary: TraceSummary) -> dict[str, Any]:
    return {
        "traceID": summary.trace_id,
        "rootName": summary.root_name,
        "rootService": summary.root_service,
        "rootStatusCode": summary.root_status,
        "orderStatus": summary.order_status,
        "services": summary.services,
        "spanCount": summary.span_count,
        "errorCount": summary.error_count,
        "faultCount": summary.fault_count,
        "startTimeUnixNano": str(summary.start_ns),
        "durationNano": str(summary.duration_ns),
    }


def linking_span_json(span: LinkingSpan) -> dict[str, Any]:
    return {
        "traceID": span.trace_id,
        "spanID": span.span_id,
        "linkedSpanID": span.linked_span_id,
        "name": span.name,
        "service": span.service,
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "durationNano": str(span.end_ns - span.start_ns),
        "statusCode": span.status_code,
        "rootName": span.root_name,
        "rootService": span.root_service,
    }


def create_query_app(store: TraceStore) -> FastAPI:
    app = FastAPI(
        title="ordersim trace viewer", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )

    @app.exception_handler(BadQuery)
    async def bad_query(request: Request, exc: BadQuery) -> JSONResponse:
        return jaeger_error(400, str(exc))

    async def otlp_trace(trace_id: str) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.trace, trace_id)
        return await asyncio.to_thread(resource_spans_json, rows) if rows else []

    @app.get("/api/v3/traces/{trace_id}", responses=TRACE_RESPONSES)
    async def get_trace_otlp(trace_id: JaegerTraceId) -> JSONResponse:
        """One trace as OTLP JSON, the shape Jaeger v2's query API returns."""
        try:
            full_id = trace_id_from_text(trace_id)
        except ValueError as exc:
            return v3_error(400, f"malformed parameter trace_id: {exc}")
        resource_spans = await otlp_trace(full_id)
        if not resource_spans:
            return v3_error(404, "No traces found")  # Jaeger's returnTraces, for none
        return JSONResponse({"result": {"resourceSpans": resource_spans}})

    @app.get("/api/traces/{trace_id}", responses=TRACE_RESPONSES)
    async def get_trace_jaeger(trace_id: JaegerTraceId) -> JSONResponse:
        """One trace as Jaeger JSON, loadable by Jaeger UI's "upload JSON"."""
        try:
            full_id = trace_id_from_text(trace_id)
        except ValueError as exc:
            return jaeger_error(400, str(exc))
        resource_spans = await otlp_trace(full_id)
        if not resource_spans:
            return jaeger_error(404, "trace not found")  # Jaeger's spanstore.ErrTraceNotFound
        return JSONResponse(jaeger_response([to_jaeger(full_id, resource_spans)]))

    @app.get("/api/traces/{trace_id}/linked", responses=NOT_FOUND)
    async def linked_from(trace_id: TraceId, limit: Limit = 100) -> JSONResponse:
        """The spans of other traces that link to spans of this one, oldest first: span links
        read forward (a failed order's trace to its compensation retries)."""
        found = await asyncio.to_thread(store.linking_spans, trace_id, limit)
        if found is None:
            return jaeger_error(404, "trace not found")
        return JSONResponse({"data": [linking_span_json(s) for s in found]})

    async def find(search: Search) -> list[TraceSummary]:
        if search.trace_ids:
            return await asyncio.to_thread(store.summaries, search.trace_ids)
        return await asyncio.to_thread(store.search, search.query)

    @app.get("/api/summaries", responses=BAD_QUERY)
    async def summaries(parameters: V1Parameters) -> dict[str, Any]:
        """Traces that match, newest first, one row each: root operation and its HTTP status,
        the order's status, services, span count, duration, real errors and injected faults.
        The search is /api/traces's."""
        found = await find(params.v1_search(**parameters, default_limit=50))
        return {"data": [summary_json(s) for s in found]}

    @app.get("/api/traces", responses=BAD_QUERY)
    async def find_traces(parameters: V1Parameters) -> dict[str, Any]:
        """Jaeger's v1 trace search: the matching traces in full, Jaeger JSON, in Jaeger's
        envelope. A trace asked for by traceID that is not stored is named in ``errors``."""
        search = params.v1_search(**parameters)
        found = await find(search)
        traces = []
        for summary in found:
            resource_spans = await otlp_trace(summary.trace_id)
            if resource_spans:
                traces.append(to_jaeger(summary.trace_id, resource_spans))
        have = {t["traceID"] for t in traces}
        missing = [
            {"msg": "trace not found", "traceID": t} for t in search.trace_ids if t not in have
        ]
        return jaeger_response(traces, missing or None)

    @app.get("/api/v3/traces", responses=V3_SEARCH)
    async def find_traces_v3(
        request: Request,
        serviceName: Annotated[str | None, Query(alias="query.serviceName")] = None,
        operationName: Annotated[str | None, Query(alias="query.operationName")] = None,
        startTimeMin: Annotated[
            str | None,
            _text(params.RFC3339_PATTERN, "required, RFC 3339", alias="query.startTimeMin"),
        ] = None,
        startTimeMax: Annotated[
            str | None,
            _text(params.RFC3339_PATTERN, "required, RFC 3339", alias="query.startTimeMax"),
        ] = None,
        durationMin: Annotated[
            str | None, _text(params.DURATION_PATTERN, "e.g. 250ms", alias="query.durationMin")
        ] = None,
        durationMax: Annotated[
            str | None, _text(params.DURATION_PATTERN, "e.g. 2s", alias="query.durationMax")
        ] = None,
        attributes: Annotated[
            str | None,
            Query(alias="query.attributes", description='a JSON object, e.g. {"error":"true"}'),
        ] = None,
        searchDepth: Annotated[
            str | None,
            _text(params.INTEGER_PATTERN, "most traces returned", alias="query.searchDepth"),
        ] = None,
        rawTraces: Annotated[
            str | None, _text(params.BOOL_PATTERN, "accepted, no effect", alias="query.rawTraces")
        ] = None,
    ) -> JSONResponse:
        """Jaeger v2's trace search (API v3): the matching traces as one OTLP JSON
        document; 404 when none match. The snake_case names (query.service_name, …) are
        read too, as Jaeger reads them. The declared parameters are read from the query
        string with their aliases."""
        try:
            search = params.v3_search(request.query_params)
        except BadQuery as exc:
            return v3_error(400, str(exc))
        resource_spans = []
        for summary in await find(search):
            resource_spans += await otlp_trace(summary.trace_id)
        if not resource_spans:
            return v3_error(404, "No traces found")
        return JSONResponse({"result": {"resourceSpans": resource_spans}})

    @app.get("/api/services")
    async def services_v1() -> dict[str, Any]:
        names = await asyncio.to_thread(store.services)
        return {"data": names, "total": len(names)}

    @app.get("/api/v3/services")
    async def services_v3() -> dict[str, Any]:
        return {"services": await asyncio.to_thread(store.services)}

    @app.get("/api/v3/operations", responses=V3_BAD_QUERY)
    async def operations_v3(
        service: str = "",
        spanKind: SpanKindParam = None,  # Jaeger's parameter name
        span_kind: SpanKindParam = None,  # its deprecated alias
    ) -> Any:
        """A service's operations with their span kind, as Jaeger v2 lists them:
        ``spanKind`` filters (server, client, internal, producer, consumer; empty for all),
        and a span of unspecified kind is listed as ``internal``."""
        kind = spanKind or span_kind or ""
        if kind and kind not in OPERATION_KINDS:
            return v3_error(
                400,
                f"malformed parameter spanKind: {kind!r} is none of {', '.join(OPERATION_KINDS)}",
            )
        if not service:
            return {"operations": []}  # Jaeger: no service, no operations
        found = await asyncio.to_thread(
            store.operations, service, OPERATION_KINDS[kind] if kind else None
        )
        seen: dict[tuple[str, str], None] = {}
        for name, otlp_kind in found:
            seen[(name, operation_kind(otlp_kind))] = None
        return {"operations": [{"name": name, "spanKind": k} for name, k in seen]}

    @app.get("/api/dependencies", responses=BAD_QUERY)
    async def dependencies(
        endTs: Millis = None,  # Jaeger's parameter names
        lookback: Millis = None,
        service: str | None = None,
    ) -> dict[str, Any]:
        """The service graph in Jaeger's shape, calls whose CLIENT span started between
        ``endTs - lookback`` and ``endTs`` (ms; now and 24 h by default), with each
        edge's ``errorCount`` and ``p99Ms`` besides Jaeger's ``callCount``; ``service``
        keeps the edges from or to it. What a call and a failed one are:
        :mod:`trace_viewer.dependencies`."""
        end_ms = parse_millis("endTs", endTs, time.time_ns() // 10**6)
        lookback_ms = parse_millis("lookback", lookback, DEFAULT_DEPENDENCY_LOOKBACK_MS)
        if lookback_ms < 0:
            raise BadQuery(f"lookback {lookback_ms} is negative")
        end_ns = min(max(end_ms * 10**6, 0), MAX_DURATION_NS)
        start_ns = max(end_ns - min(lookback_ms * 10**6, MAX_DURATION_NS), 0)
        calls = await asyncio.to_thread(store.calls, start_ns, end_ns)
        links = [
            link
            for link in dependency_links(calls)
            if not service or service in (link.parent, link.child)
        ]
        return jaeger_response(
            [
                {
                    "parent": link.parent,
                    "child": link.child,
                    "callCount": link.call_count,
                    "errorCount": link.error_count,
                    "p99Ms": round(link.p99_ns / 10**6, 3),
                }
                for link in links
            ]
        )

    @app.get("/api/stats")
    async def stats() -> dict[str, int]:
        """Spans received, rejected, repaired and stored; traces stored and evicted; the
        same of log records and metric data points."""
        return {**await asyncio.to_thread(store.stats), **store.signal_stats()}

    @app.get("/api/logs")
    async def logs(
        trace_id: Annotated[str, Query(pattern=r"^[0-9a-fA-F]{32}$", description="32 hex digits")],
    ) -> dict[str, Any]:
        """The log records written inside the trace's spans, OTLP JSON, in time order
        (``{"result": {"resourceLogs": []}}`` when there are none)."""
        rows = await asyncio.to_thread(store.logs, trace_id)
        return {"result": {"resourceLogs": resource_logs_json(rows)}}

    @app.get("/api/metrics/red")
    async def metrics_red(
        lookback: Annotated[
            int, Query(ge=1000, le=7 * 24 * 3600 * 1000, description="ms before now")
        ] = DEFAULT_RED_LOOKBACK_MS,
        service: Annotated[str | None, Query(max_length=200)] = None,
        step: Annotated[
            int | None, Query(ge=1000, description="ms per chart point; lookback/30 by default")
        ] = None,
    ) -> dict[str, Any]:
        """Rate (requests/s), error rate (server errors: 5xx or ``error.type``) and
        p50/p95/p99 (ms, bucket estimates) per service and operation over the last
        ``lookback`` ms, from the services' ``http.server.request.duration`` histograms;
        their exemplars (``trace_id``, ``span_id``, ``value_ms``, ``time_ms``); and the
        same per ``step`` in ``series``."""
        end_ns = time.time_ns()
        start_ns = end_ns - lookback * 10**6
        step_ns = max(step or lookback // 30, 1000) * 10**6

        def compute() -> list[dict[str, Any]]:
            points = store.metric_points(SERVER_DURATION, start_ns, end_ns, service or None)
            return red(points, start_ns, end_ns, step_ns)

        return {"services": await asyncio.to_thread(compute)}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/services", include_in_schema=False)
    async def services_page() -> FileResponse:
        return FileResponse(str(STATIC / "services.html"))

    @app.get("/dependencies", include_in_schema=False)
    async def graph_page() -> FileResponse:
        # Jaeger UI's URL for its service graph. The page reads its lookback and endTs itself.
        return FileResponse(str(STATIC / "graph.html"))

    # Before /trace/{trace_id}, which would answer a 422 for "a...b".
    @app.get("/trace/{trace_a}...{trace_b}", include_in_schema=False)
    async def compare_page(trace_a: str, trace_b: str) -> FileResponse:
        # Jaeger UI's compare URL. Any pair gets the page, which says which id is malformed or
        # unknown and offers to correct it.
        return FileResponse(str(STATIC / "compare.html"))

    @app.get("/trace/{trace_id}", include_in_schema=False)
    async def trace_page(trace_id: TraceId) -> FileResponse:
        # A well-formed id gets the page, which says when the trace is unknown; any other
        # is a 422, as on every endpoint.
        return FileResponse(str(STATIC / "trace.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
