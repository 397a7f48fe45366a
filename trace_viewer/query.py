"""Query API and web UI on port 16686, in the shapes Jaeger serves.

- ``GET /api/v3/traces/{id}``: OTLP JSON ``{"result": {"resourceSpans": [...]}}`` (Jaeger v2)
- ``GET /api/traces/{id}``: Jaeger JSON ``{"data": [trace]}`` (Jaeger UI's "upload JSON")
- ``GET /api/v3/traces?query.serviceName=&query.startTimeMin=&…``: Jaeger v2's search, OTLP JSON
- ``GET /api/traces?service=&operation=&tags=&minDuration=&maxDuration=&start=&end=&lookback=
  &limit=&traceID=``: Jaeger's v1 search, Jaeger JSON
- ``GET /api/summaries?…``: the same search, one compact row per trace (the trace list)
- ``GET /api/services``, ``/api/v3/services``, ``/api/v3/operations?service=``, ``/api/stats``
- ``GET /`` the recent traces, ``GET /trace/{id}`` the waterfall

The search parameters and their parsing are :mod:`trace_viewer.search`'s.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from trace_viewer import search as params
from trace_viewer.jaeger import to_jaeger
from trace_viewer.otlp import resource_spans_json
from trace_viewer.search import BadQuery, Search
from trace_viewer.store import TraceStore, TraceSummary

STATIC = resources.files("trace_viewer") / "static"
TraceId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$", description="32 hex digits")]
#: What the OpenAPI declares besides success, so that a client (or a fuzzer) knows them.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No trace with this id."}}
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed parameter, e.g. minDuration (use 250ms, 1.5s, 800us)."}
}
V3_SEARCH: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed or missing parameter (the time range is required)."},
    404: {"description": "No trace matches (Jaeger v2 answers an empty search so)."},
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


def jaeger_error(status: int, message: str) -> JSONResponse:
    """An error as Jaeger's query API answers one (its ``structuredResponse``)."""
    errors = [{"code": status, "msg": message}]
    body = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": errors}
    return JSONResponse(body, status_code=status)


def v3_error(status: int, message: str) -> JSONResponse:
    """An error as Jaeger v2's API v3 answers one (its ``GRPCGatewayError``)."""
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

    @app.get("/api/v3/traces/{trace_id}", responses=NOT_FOUND)
    async def get_trace_otlp(trace_id: TraceId) -> JSONResponse:
        """One trace as OTLP JSON, the shape Jaeger v2's query API returns."""
        resource_spans = await otlp_trace(trace_id)
        if not resource_spans:
            return JSONResponse(
                {"error": {"httpCode": 404, "message": "trace not found"}}, status_code=404
            )
        return JSONResponse({"result": {"resourceSpans": resource_spans}})

    @app.get("/api/traces/{trace_id}", responses=NOT_FOUND)
    async def get_trace_jaeger(trace_id: TraceId) -> JSONResponse:
        """One trace as Jaeger JSON, loadable by Jaeger UI's "upload JSON"."""
        resource_spans = await otlp_trace(trace_id)
        if not resource_spans:
            return jaeger_error(404, "trace not found")
        return JSONResponse({"data": [to_jaeger(trace_id.lower(), resource_spans)]})

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
        return {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": missing or None}

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

    @app.get("/api/v3/operations")
    async def operations_v3(service: str) -> dict[str, Any]:
        names = await asyncio.to_thread(store.operations, service)
        return {"operations": [{"name": n, "spanKind": ""} for n in names]}

    @app.get("/api/stats")
    async def stats() -> dict[str, int]:
        """Spans received, rejected, repaired and stored; traces stored and evicted."""
        return await asyncio.to_thread(store.stats)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/trace/{trace_id}", include_in_schema=False)
    async def trace_page(trace_id: TraceId) -> FileResponse:
        # A well-formed id gets the page, which says when the trace is unknown; any other
        # is a 422, as on every endpoint.
        return FileResponse(str(STATIC / "trace.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
