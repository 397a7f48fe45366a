"""Trace waterfalls for the terminal: OTLP JSON in, a rich renderable out.

:func:`parse_otlp` flattens an OTLP JSON document (what ``GET /api/v3/traces/{id}`` returns,
from the embedded viewer or from Jaeger v2) into :class:`Span` rows; :class:`Trace` puts them
in a tree and says what is missing; :class:`Waterfall` draws the tree against a time axis
scaled to the whole trace, at whatever width the console has; the log records written
inside a span (:func:`parse_otlp_logs`) are printed under it.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from common import topology
from common.fault_rules import ATTR_INJECTED
from trace_viewer.jaeger import service_name_json

KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 1, 2, 3, 4, 5
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_KIND_NAMES = {
    "SPAN_KIND_INTERNAL": KIND_INTERNAL,
    "SPAN_KIND_SERVER": KIND_SERVER,
    "SPAN_KIND_CLIENT": KIND_CLIENT,
    "SPAN_KIND_PRODUCER": KIND_PRODUCER,
    "SPAN_KIND_CONSUMER": KIND_CONSUMER,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}

#: For any other service, picked by a stable hash of its name. Red is kept for errors.
_PALETTE = (
    "bright_blue",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
    "dark_orange",
    "purple",
    "turquoise2",
    "orchid",
    "chartreuse3",
)
ERROR_STYLE = "bold red"
FAULT_STYLE = "bold magenta"
#: A log record's severity text, coloured as the console colours log levels.
_LOG_STYLES = {"WARN": "yellow", "ERROR": "red", "FATAL": "bold red", "INFO": "blue"}

#: Bar width bounds, in cells; the bar is as wide as the console allows between them.
BAR_MIN, BAR_MAX = 20, 40
#: Widest the span-name column gets; longer names (and deep indents) are cut with "…".
NAME_MAX = 48
_NAME_MIN = 20
_SERVICE_MAX, _SERVICE_MIN = 18, 7
_BAR_NARROW = 12
_GAP = 2  # between columns


def service_colour(service: str) -> str:
    """The same colour for the same service, in every run."""
    known = topology.COLOURS.get(service)
    if known:
        return known
    return _PALETTE[zlib.crc32(service.encode()) % len(_PALETTE)]


def attribute_value(value: Mapping[str, Any]) -> object:
    """An OTLP ``AnyValue`` as a Python value (``intValue`` comes as a string in JSON)."""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return value["doubleValue"]
    if "arrayValue" in value:
        return [attribute_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return attributes_of((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes_of(items: object) -> dict[str, object]:
    if not isinstance(items, list):
        return {}
    return {
        str(kv["key"]): attribute_value(kv.get("value") or {})
        for kv in items
        if isinstance(kv, dict) and "key" in kv
    }


def _int(value: object, names: Mapping[str, int] | None = None) -> int:
    """OTLP JSON numbers: int64s are strings, enums ints (or names, from some encoders)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if names and value in names:
            return names[value]
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


@dataclass(frozen=True)
class Event:
    name: str
    time_ns: int
    attributes: Mapping[str, object]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    name: str
    service: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int = STATUS_UNSET
    status_message: str = ""
    attributes: Mapping[str, object] = field(default_factory=dict)
    events: Sequence[Event] = ()

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def is_error(self) -> bool:
        return self.status_code == STATUS_ERROR

    @property
    def is_fault(self) -> bool:
        """An injected fault touched it (not a real failure, even when it is an error)."""
        return self.attributes.get(ATTR_INJECTED) is True

    @property
    def is_http_client(self) -> bool:
        """A CLIENT span of an HTTP call, under the stable HTTP semantic conventions
        (``http.request.method``) or the older ones (``http.method``), which the
        instrumentations still emit unless OTEL_SEMCONV_STABILITY_OPT_IN says ``http``."""
        return self.kind == KIND_CLIENT and (
            "http.request.method" in self.attributes or "http.method" in self.attributes
        )

    @property
    def error_message(self) -> str:
        """Why the span failed: its status message, else what its attributes and events say."""
        if not self.is_error:
            return ""
        if self.status_message:
            return self.status_message
        for event in self.events:
            if event.name == "exception":
                kind = str(event.attributes.get("exception.type", "")).rsplit(".", 1)[-1]
                message = str(event.attributes.get("exception.message", ""))
                return ": ".join(part for part in (kind, message) if part) or "exception"
        status = self.attributes.get("http.response.status_code")
        if status is not None:
            return f"HTTP {status}"
        error_type = self.attributes.get("error.type")
        return str(error_type) if error_type is not None else "error"


def parse_otlp(document: Mapping[str, Any]) -> list[Span]:
    """The spans of an OTLP JSON document: ``{"result": {"resourceSpans": …}}`` (the query
    API's answer) or ``{"resourceSpans": …}`` (an export request)."""
    result = document.get("result")
    holder = result if isinstance(result, dict) else document
    spans: list[Span] = []
    for rs in holder.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        service = service_name_json((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or []:
            if not isinstance(ss, dict):
                continue
            for raw in ss.get("spans") or []:
                if isinstance(raw, dict):
                    spans.append(_span(raw, service))
    return spans


def _span(raw: Mapping[str, Any], service: str) -> Span:
    start = _int(raw.get("startTimeUnixNano"))
    status = raw.get("status")
    status = status if isinstance(status, dict) else {}
    return Span(
        trace_id=str(raw.get("traceId") or "").lower(),
        span_id=str(raw.get("spanId") or "").lower(),
        parent_id=str(raw.get("parentSpanId") or "").lower(),
        name=str(raw.get("name") or ""),
        service=service,
        kind=_int(raw.get("kind"), _KIND_NAMES),
        start_ns=start,
        end_ns=max(start, _int(raw.get("endTimeUnixNano"))),
        status_code=_int(status.get("code"), _STATUS_NAMES),
        status_message=str(status.get("message") or ""),
        attributes=attributes_of(raw.get("attributes")),
        events=tuple(
            Event(
                str(e.get("name") or ""),
                _int(e.get("timeUnixNano")),
                attributes_of(e.get("attributes")),
            )
            for e in raw.get("events") or []
            if isinstance(e, dict)
        ),
    )


@dataclass(frozen=True)
class LogLine:
    """A log record written inside a span (``GET /api/logs?trace_id=``)."""

    span_id: str
    time_ns: int
    severity: str  # its severity text: INFO, WARN, …
    body: str


def parse_otlp_logs(document: Mapping[str, Any]) -> list[LogLine]:
    """The log records of an OTLP JSON document (``{"result": {"resourceLogs": …}}``), in
    time order."""
    result = document.get("result")
    holder = result if isinstance(result, dict) else document
    lines: list[LogLine] = []
    for rl in holder.get("resourceLogs") or []:
        for sl in (rl.get("scopeLogs") or []) if isinstance(rl, dict) else []:
            for raw in (sl.get("logRecords") or []) if isinstance(sl, dict) else []:
                if not isinstance(raw, dict):
                    continue
                body = attribute_value(raw.get("body") or {})
                time_ns = _int(raw.get("timeUnixNano")) or _int(raw.get("observedTimeUnixNano"))
                lines.append(
                    LogLine(
                        span_id=str(raw.get("spanId") or "").lower(),
                        time_ns=time_ns,
                        severity=str(raw.get("severityText") or "LOG"),
                        body=body if isinstance(body, str) else json.dumps(body, default=str),
                    )
                )
    return sorted(lines, key=lambda line: line.time_ns)


@dataclass(frozen=True)
class Row:
    span: Span
    depth: int
    #: Why a top-level row is not a root: "parent <id> missing" or "in a parent cycle".
    flag: str = ""


class Trace:
    """Spans of one trace as a tree: siblings by start time, orphans at the top level."""

    def __init__(self, spans: Sequence[Span], logs: Sequence[LogLine] = ()) -> None:
        by_id: dict[str, Span] = {}
        for span in spans:  # a span delivered twice is shown once
            by_id.setdefault(span.span_id, span)
        self.spans = list(by_id.values())
        self.by_id = by_id
        #: The log records written inside each span, in time order.
        self.logs: dict[str, list[LogLine]] = {}
        for line in logs:
            self.logs.setdefault(line.span_id, []).append(line)

    @property
    def trace_id(self) -> str:
        return self.spans[0].trace_id if self.spans else ""

    @property
    def start_ns(self) -> int:
        return min((s.start_ns for s in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((s.end_ns for s in self.spans), default=0)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @cached_property
    def roots(self) -> list[Span]:
        return sorted((s for s in self.spans if not s.parent_id), key=_order)

    @cached_property
    def orphans(self) -> list[Span]:
        """Spans whose parent has not arrived."""
        return sorted(
            (s for s in self.spans if s.parent_id and s.parent_id not in self.by_id), key=_order
        )

    @cached_property
    def children(self) -> dict[str, list[Span]]:
        children: dict[str, list[Span]] = {}
        for span in self.spans:
            if span.parent_id in self.by_id:
                children.setdefault(span.parent_id, []).append(span)
        for siblings in children.values():
            siblings.sort(key=_order)
        return children

    @property
    def root(self) -> Span | None:
        """The span without a parent (the earliest, should there be several)."""
        return self.roots[0] if self.roots else None

    @property
    def services(self) -> list[str]:
        """Service names in the order each first appears in time."""
        return list(dict.fromkeys(s.service for s in sorted(self.spans, key=_order)))

    @property
    def errors(self) -> list[Span]:
        return [s for s in self.spans if s.is_error]

    @cached_property
    def fault_caused(self) -> set[str]:
        """Ids of the spans an injected fault touched and of their ancestors: an ERROR among
        them failed because of the fault, not on its own (the viewer's rule: the store's
        summary and static/trace/model.js)."""
        caused: set[str] = set()
        for span in self.faults:
            up: Span | None = span
            while up is not None and up.span_id not in caused:
                caused.add(up.span_id)
                up = self.by_id.get(up.parent_id)
        return caused

    @property
    def real_errors(self) -> list[Span]:
        """ERROR spans no injected fault caused."""
        return [s for s in self.errors if s.span_id not in self.fault_caused]

    @property
    def faults(self) -> list[Span]:
        return [s for s in self.spans if s.is_fault]

    def overhang(self, span: Span) -> tuple[int, int]:
        """ns the span starts before its parent and ends after it: (0, 0) when inside. On one
        machine that is scheduling (a SERVER span ending after the CLIENT span that called
        it, a child its parent did not wait for); across machines, clock skew too."""
        parent = self.by_id.get(span.parent_id)
        if parent is None:
            return 0, 0
        return max(0, parent.start_ns - span.start_ns), max(0, span.end_ns - parent.end_ns)

    def unanswered_calls(self) -> list[Span]:
        """HTTP CLIENT spans with no child: the callee's SERVER span has not arrived."""
        return [s for s in self.spans if s.is_http_client and not self.children.get(s.span_id)]

    def unreachable(self) -> list[Span]:
        """Spans not under the first root: orphans and what hangs under them, any other
        root, and spans in a parent cycle."""
        reached: set[str] = set()
        todo = [self.root] if self.root is not None else []
        while todo:
            span = todo.pop()
            if span.span_id not in reached:
                reached.add(span.span_id)
                todo.extend(self.children.get(span.span_id, []))
        return sorted((s for s in self.spans if s.span_id not in reached), key=_order)

    def is_complete(self) -> bool:
        """Every span of the trace has arrived: exactly one root, every other span under
        it, and every HTTP call answered by its server span.

        The one definition of a complete trace: the tests (``ordersim.testing.SpanTree``),
        ``ordersim load``'s trace completeness and ``ordersim order``/``trace`` all read it.

        Each process exports its spans as they end, so what can be missing is a parent (an
        orphan waits for it) or the callee's side of a call (its CLIENT span has no SERVER
        child yet). Exactly one root, because a request starts one: a second span without a
        parent in the same trace is not a part still on its way, and no amount of waiting
        joins the two into one tree. It comes from a broken propagation (a propagator that
        carries the trace id but not the parent span id) or reused trace ids; the waterfall
        draws both roots and the viewer warns, but the trace is not complete.
        """
        return len(self.roots) == 1 and not self.unreachable() and not self.unanswered_calls()

    def rows(self) -> Iterator[Row]:
        """Depth-first, siblings by start time: the roots and orphans, then whatever a
        parent cycle kept unreachable (flagged like orphans)."""
        seen: set[str] = set()
        tops = sorted([*self.roots, *self.orphans], key=_order)
        orphan_ids = {s.span_id for s in self.orphans}
        stragglers = sorted(self.spans, key=_order)
        for group in (tops, stragglers):
            for top in group:
                if top.span_id in seen:
                    continue
                stack: list[tuple[Span, int]] = [(top, 0)]
                while stack:
                    span, depth = stack.pop()
                    if span.span_id in seen:
                        continue
                    seen.add(span.span_id)
                    flag = ""
                    if depth == 0 and span.span_id in orphan_ids:
                        flag = f"parent {span.parent_id} missing"
                    elif depth == 0 and group is stragglers:
                        flag = "in a parent cycle"
                    yield Row(span, depth, flag)
                    kids = self.children.get(span.span_id, [])
                    stack.extend((kid, depth + 1) for kid in reversed(kids))


def _order(span: Span) -> tuple[int, int, str]:
    return span.start_ns, -span.end_ns, span.name


def _wrapping(text: str, style: str) -> Text:
    return Text(text, style=style, no_wrap=False, overflow="fold")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_ms(ns: int) -> str:
    ms = ns / 1e6
    if ms >= 10_000:
        return f"{ms:,.0f}"
    return f"{ms:,.2f}"


class Waterfall:
    """The span tree beside a time axis scaled to the whole trace.

    Per row: the span name indented under its parent, the service (one colour per service),
    the duration in ms and a bar placed on the axis. Errors are red, with their message
    under the name; spans whose parent never arrived are flagged; spans an injected fault
    touched are marked ⚡; a span outside its parent's time range says by how much (⇥). The
    bar is ``bar_width`` cells, or as many as the console width allows between 20 and 40.
    """

    def __init__(self, trace: Trace, *, bar_width: int | None = None) -> None:
        self.trace = trace
        self.bar_width = bar_width

    def header(self) -> Text:
        trace = self.trace
        root = trace.root
        text = Text()
        text.append("trace ", style="bold")
        text.append(trace.trace_id or "?", style="bold")
        text.append("  ")
        if root is not None:
            text.append(root.name, style="bold")
            text.append(f" ({root.service})", style=service_colour(root.service))
        else:
            text.append("(root span missing)", style="bold yellow")
        text.append(f"\n{format_ms(trace.duration_ns)} ms  {plural(len(trace.spans), 'span')}  ")
        if trace.real_errors:
            text.append(f"{plural(len(trace.real_errors), 'error')}  ", style=ERROR_STYLE)
        if len(trace.errors) > len(trace.real_errors):
            caused = len(trace.errors) - len(trace.real_errors)
            text.append(f"{caused} caused by injected faults  ", style=FAULT_STYLE)
        if trace.faults:
            text.append(f"{len(trace.faults)} injected  ", style=FAULT_STYLE)
        if trace.orphans:
            text.append(f"{plural(len(trace.orphans), 'orphan')}  ", style="yellow")
        services = trace.services
        text.append(f"{plural(len(services), 'service')}: ")
        for i, service in enumerate(services):
            if i:
                text.append(", ")
            text.append(service, style=service_colour(service))
        return text

    def widths(self, console_width: int) -> tuple[int, int, int, int]:
        """Name, service, duration and bar columns that fit ``console_width`` if they can:
        the bar gets up to 40 cells once the name has 30, the name the rest (up to 48)."""
        services = self.trace.services
        service = min(_SERVICE_MAX, max([len("service"), *(len(s) for s in services)]))
        ms = max(len("ms"), *(len(format_ms(s.duration_ns)) for s in self.trace.spans))
        room = console_width - ms - 3 * _GAP
        if self.bar_width is not None:
            bar = max(1, self.bar_width)
        else:
            bar = max(BAR_MIN, min(BAR_MAX, room - service - 30))
        name = room - service - bar
        if name < _NAME_MIN and self.bar_width is None:  # narrow: a shorter bar first,
            bar = max(_BAR_NARROW, bar - (_NAME_MIN - name))
            name = room - service - bar
        if name < _NAME_MIN:  # then shorter service names ("inventory", "invent…")
            service = max(_SERVICE_MIN, service - (_NAME_MIN - name))
            name = room - service - bar
        return max(_NAME_MIN // 2, min(NAME_MAX, name)), service, ms, bar

    def axis(self, width: int) -> Text:
        end = f"{format_ms(self.trace.duration_ns)} ms"
        if width < len(end) + 2:
            return Text(end[:width].rjust(width))
        return Text("0" + end.rjust(width - 1), style="dim")

    def bar(self, span: Span, width: int) -> Text:
        total = max(self.trace.duration_ns, 1)
        t0 = self.trace.start_ns
        first = min(width - 1, max(0, math.floor((span.start_ns - t0) * width / total)))
        last = min(width, max(first + 1, math.ceil((span.end_ns - t0) * width / total)))
        style = ERROR_STYLE if span.is_error else service_colour(span.service)
        text = Text("·" * first, style="dim")
        text.append("█" * (last - first), style=style)
        text.append("·" * (width - last), style="dim")
        return text

    def name_cell(self, row: Row, indent_step: int, width: int) -> RenderableType:
        span = row.span
        indent = " " * (indent_step * row.depth)
        name = Text(indent, no_wrap=True, overflow="ellipsis")
        if row.flag:
            name.append("⚠ ", style="yellow")
        if span.is_error:
            name.append("✗ ", style=ERROR_STYLE)
        if span.is_fault:
            name.append("⚡ ", style=FAULT_STYLE)
        name.append(span.name or "(unnamed)", style=ERROR_STYLE if span.is_error else "")
        notes: list[RenderableType] = []
        # The name is cut to the column; a note wraps in it, under the name.
        note_indent = min(len(indent) + 2, width // 2)
        if row.flag:
            notes.append(Padding(_wrapping(row.flag, "yellow"), (0, 0, 0, note_indent)))
        if span.is_error:
            notes.append(Padding(_wrapping(span.error_message, "red"), (0, 0, 0, note_indent)))
        if span.is_fault:
            notes.append(Padding(_wrapping("injected fault", "magenta"), (0, 0, 0, note_indent)))
        before, after = self.trace.overhang(span)
        if before or after:
            outside = " and ".join(
                text
                for text, ns in (
                    (f"starts {format_ms(before)} ms before", before),
                    (f"ends {format_ms(after)} ms after", after),
                )
                if ns
            )
            notes.append(
                Padding(_wrapping(f"⇥ {outside} its parent", "yellow"), (0, 0, 0, note_indent))
            )
        for line in self.trace.logs.get(span.span_id, ()):
            text = Text("▏", style="dim")
            text.append(f"{line.severity} ", style=_LOG_STYLES.get(line.severity, "dim"))
            text.append(f"+{format_ms(line.time_ns - span.start_ns)} ms ", style="dim")
            text.append(line.body)
            text.no_wrap, text.overflow = False, "fold"
            notes.append(Padding(text, (0, 0, 0, note_indent)))
        return Group(name, *notes) if notes else name

    def table(self, width: int) -> Table:
        name_width, service_width, ms_width, bar_width = self.widths(width)
        table = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 0, 0, _GAP - 1),  # plus the box's one-cell column divider
            expand=False,
        )
        table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=name_width)
        table.add_column("service", no_wrap=True, overflow="ellipsis", max_width=service_width)
        table.add_column("ms", justify="right", no_wrap=True, min_width=ms_width)
        table.add_column(self.axis(bar_width), no_wrap=True, width=bar_width)
        longest = max(len(s) for s in self.trace.services)
        short = service_width < longest  # "inventory" rather than "inventory-s…"
        indent_step = 2 if name_width >= 30 else 1
        for row in self.trace.rows():
            span = row.span
            service = span.service.removesuffix("-service") if short else span.service
            table.add_row(
                self.name_cell(row, indent_step, name_width),
                Text(service, style=service_colour(span.service)),
                Text(format_ms(span.duration_ns), style=ERROR_STYLE if span.is_error else ""),
                self.bar(span, bar_width),
            )
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.header()
        if not self.trace.spans:
            yield Text("no spans")
            return
        yield self.table(options.max_width)
