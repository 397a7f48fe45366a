"""SpanTree: finished spans read as trees, with assertions that print the tree they failed on.

Public through :mod:`ordersim.testing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, overload

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ordersim import waterfall

#: Lines of the tree an assertion message prints at most.
RENDER_LIMIT = 200


def service_of(span: ReadableSpan) -> str:
    """The ``service.name`` of the resource that made the span."""
    return str(span.resource.attributes.get("service.name"))


def trace_id_of(span: ReadableSpan) -> str:
    """The span's trace id as 32 lowercase hex digits (how responses and the viewer show it)."""
    return f"{span.context.trace_id:032x}"


def overlap(a: ReadableSpan, b: ReadableSpan) -> bool:
    """True when the two spans ran at the same time for some instant."""
    assert a.start_time and a.end_time and b.start_time and b.end_time
    return a.start_time < b.end_time and b.start_time < a.end_time


def describe(span: ReadableSpan) -> str:
    """``name (service, KIND)``: how assertion messages name a span."""
    return f"{span.name!r} ({service_of(span)}, {span.kind.name})"


class SpanTree(Sequence[ReadableSpan]):
    """Finished spans (of one test, or of one trace) as a tree, with assertions.

    Find spans by name, service and kind; assert parent and child, overlap (concurrency),
    order, status, events and attributes. A failed assertion prints the tree::

        tree = SpanTree(exporter.get_finished_spans())
        call = tree.find("GET /stock", service="front", kind=SpanKind.CLIENT)
        tree = tree.trace(call)  # only the spans of its trace
        served = tree.find("GET /stock", service="stock", kind=SpanKind.SERVER)
        tree.assert_child(call, served)
        tree.assert_overlap(tree.find("price"), tree.find("stock"))
        tree.assert_complete()

    It is a sequence of the spans it holds (in the order they ended), so ``len(tree)``,
    ``for span in tree`` and ``[s for s in tree if ...]`` work as on a list.
    """

    def __init__(self, spans: Iterable[ReadableSpan]) -> None:
        self._spans: tuple[ReadableSpan, ...] = tuple(spans)
        self._by_id = {s.context.span_id: s for s in self._spans}

    @classmethod
    def of(cls, exporter: InMemorySpanExporter) -> SpanTree:
        """The spans ``exporter`` holds now."""
        return cls(exporter.get_finished_spans())

    # -- the sequence ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._spans)

    @overload
    def __getitem__(self, index: int) -> ReadableSpan: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ReadableSpan]: ...
    def __getitem__(self, index: int | slice) -> ReadableSpan | Sequence[ReadableSpan]:
        return self._spans[index]

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self._spans)

    def __repr__(self) -> str:
        return f"SpanTree({len(self)} spans)\n{self.render()}"

    # -- traces ------------------------------------------------------------------------

    @property
    def trace_ids(self) -> list[str]:
        """The trace ids present, in the order their first span started."""
        return list(dict.fromkeys(trace_id_of(s) for s in sorted(self._spans, key=_start)))

    def trace(self, of: str | ReadableSpan) -> SpanTree:
        """The spans of one trace: given by its id (32 hex digits) or by one of its spans."""
        trace_id = trace_id_of(of) if isinstance(of, ReadableSpan) else of.lower()
        return SpanTree(s for s in self._spans if trace_id_of(s) == trace_id)

    def traces(self) -> list[SpanTree]:
        """One tree per trace, in the order their first span started."""
        return [self.trace(trace_id) for trace_id in self.trace_ids]

    @property
    def services(self) -> set[str]:
        return {service_of(s) for s in self._spans}

    # -- finding -----------------------------------------------------------------------

    def find_all(
        self,
        name: str | None = None,
        *,
        service: str | None = None,
        kind: SpanKind | None = None,
    ) -> list[ReadableSpan]:
        """The spans with this name, service and kind (each when given), by start time."""
        return sorted(
            (
                s
                for s in self._spans
                if (name is None or s.name == name)
                and (service is None or service_of(s) == service)
                and (kind is None or s.kind == kind)
            ),
            key=_start,
        )

    def find(
        self,
        name: str | None = None,
        *,
        service: str | None = None,
        kind: SpanKind | None = None,
    ) -> ReadableSpan:
        """The one span with this name, service and kind; fails if there are none or several."""
        matches = self.find_all(name, service=service, kind=kind)
        if len(matches) != 1:
            wanted = ", ".join(
                f"{key}={value!r}"
                for key, value in (("name", name), ("service", service), ("kind", kind))
                if value is not None
            )
            self._fail(f"expected one span with {wanted or 'any name'}, found {len(matches)}")
        return matches[0]

    @property
    def roots(self) -> list[ReadableSpan]:
        """The spans without a parent, by start time."""
        return sorted((s for s in self._spans if s.parent is None), key=_start)

    @property
    def root(self) -> ReadableSpan:
        """The one root; fails if there are none or several."""
        roots = self.roots
        if len(roots) != 1:
            self._fail(f"expected one root span, found {len(roots)}")
        return roots[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        """The span's parent, if it is here."""
        return self._by_id.get(span.parent.span_id) if span.parent is not None else None

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The span's children, by start time."""
        return sorted(
            (
                s
                for s in self._spans
                if s.parent is not None and s.parent.span_id == span.context.span_id
            ),
            key=_start,
        )

    def ancestors(self, span: ReadableSpan) -> list[ReadableSpan]:
        """Parent, grandparent, … as far as they are here."""
        found: list[ReadableSpan] = []
        current = self.parent(span)
        while current is not None and current not in found:
            found.append(current)
            current = self.parent(current)
        return found

    def is_ancestor(self, ancestor: ReadableSpan, span: ReadableSpan) -> bool:
        return any(a.context.span_id == ancestor.context.span_id for a in self.ancestors(span))

    # -- assertions --------------------------------------------------------------------

    def assert_child(self, parent: ReadableSpan, child: ReadableSpan) -> None:
        """``child``'s parent is ``parent`` (same trace, parent span id)."""
        if child.parent is None or (
            child.parent.span_id != parent.context.span_id
            or child.context.trace_id != parent.context.trace_id
        ):
            actual = self.parent(child)
            self._fail(
                f"expected {describe(child)} to be a child of {describe(parent)}; its parent "
                f"is {describe(actual) if actual else _parent_id(child)}"
            )

    def assert_descendant(self, ancestor: ReadableSpan, span: ReadableSpan) -> None:
        """``span`` hangs somewhere under ``ancestor``."""
        if not self.is_ancestor(ancestor, span):
            self._fail(f"expected {describe(span)} under {describe(ancestor)}")

    def assert_overlap(self, *spans: ReadableSpan) -> None:
        """Every two of ``spans`` ran at the same time for some instant (they ran
        concurrently, not one after the other)."""
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                if not overlap(a, b):
                    self._fail(f"expected {describe(a)} and {describe(b)} to overlap in time")

    def assert_before(self, first: ReadableSpan, then: ReadableSpan) -> None:
        """``first`` ended before ``then`` started (they ran one after the other)."""
        assert first.end_time is not None and then.start_time is not None
        if first.end_time > then.start_time:
            self._fail(f"expected {describe(first)} to end before {describe(then)} starts")

    def assert_status(
        self, span: ReadableSpan, code: StatusCode, description: str | None = None
    ) -> None:
        """The span's status code is ``code`` (and its description contains
        ``description``, when given)."""
        status = span.status
        if status.status_code != code or (
            description is not None and description not in (status.description or "")
        ):
            wanted = code.name + (f" ({description!r})" if description is not None else "")
            got = status.status_code.name + (
                f" ({status.description!r})" if status.description else ""
            )
            self._fail(f"expected {describe(span)} to have status {wanted}, it has {got}")

    def assert_event(
        self, span: ReadableSpan, name: str, attributes: Mapping[str, Any] | None = None
    ) -> Event:
        """The span has an event ``name`` (whose attributes include ``attributes``); returns
        the first such event."""
        for event in span.events:
            if event.name == name and _includes(event.attributes or {}, attributes or {}):
                return event
        have = [
            (e.name, {k: _short(v) for k, v in (e.attributes or {}).items()}) for e in span.events
        ]
        self._fail(
            f"expected {describe(span)} to have an event {name!r}"
            + (f" with {dict(attributes)}" if attributes else "")
            + f"; its events: {have}"
        )

    def assert_attributes(self, span: ReadableSpan, attributes: Mapping[str, Any]) -> None:
        """The span's attributes include these keys with these values."""
        have = span.attributes or {}
        if not _includes(have, attributes):
            wrong = {k: have.get(k, "<absent>") for k, v in attributes.items() if have.get(k) != v}
            self._fail(f"expected {describe(span)} to have {dict(attributes)}; it has {wrong}")

    def is_complete(self) -> bool:
        """Every span of the trace is here: the rule ``ordersim load`` and ``ordersim
        order``/``trace`` wait for (:meth:`ordersim.waterfall.Trace.is_complete`)."""
        return self.model().is_complete()

    def assert_complete(self) -> None:
        """One trace, one root, every span under it, every HTTP call answered by its server
        span (:meth:`ordersim.waterfall.Trace.is_complete`)."""
        if len(self.trace_ids) > 1:
            self._fail(f"expected one trace, found {len(self.trace_ids)}")
        model = self.model()
        if not model.is_complete():
            unanswered = [s.name for s in model.unanswered_calls()]
            self._fail(
                f"the trace is not complete: {len(model.roots)} root(s) (expected 1), "
                f"{len(model.unreachable())} span(s) not under the root, "
                f"unanswered HTTP calls: {unanswered}"
            )

    def outliving(self) -> list[str]:
        """The spans that end after their parent, one line each.

        Every span counts (business spans, HTTP and database CLIENT spans, SERVER spans)
        except one: a SERVER span whose CLIENT parent got no answer (the caller timed out
        or gave up) goes on after it, as the server's work really did.
        """
        found = []
        for span in self._spans:
            parent = self.parent(span)
            if parent is None:
                continue
            assert span.end_time is not None and parent.end_time is not None
            if span.end_time <= parent.end_time:
                continue
            if span.kind == SpanKind.SERVER and "http.response.status_code" not in (
                parent.attributes or {}
            ):
                continue  # an abandoned call: the server did not stop when the caller left
            late_ms = (span.end_time - parent.end_time) / 1e6
            found.append(
                f"{span.name} ({service_of(span)}) ends {late_ms:.3f} ms after its parent "
                f"{parent.name} ({service_of(parent)})"
            )
        return found

    # -- the shared trace model and the rendering --------------------------------------

    def model(self) -> waterfall.Trace:
        """These spans as the trace model the CLI and ``ordersim load`` read (OTLP-shaped)."""
        return waterfall.Trace([_as_model_span(s) for s in self._spans])

    def render(self) -> str:
        """The tree, one span a line, indented under its parent, each trace on its own."""
        lines: list[str] = []
        for trace in self.traces() if len(self.trace_ids) > 1 else [self]:
            if len(self.trace_ids) > 1:
                lines.append(f"trace {trace.trace_ids[0]}")
            for row in trace.model().rows():
                span = row.span
                status = {waterfall.STATUS_ERROR: " ERROR", waterfall.STATUS_OK: " OK"}.get(
                    span.status_code, ""
                )
                message = f" {span.status_message!r}" if span.status_message else ""
                flag = f"  ⚠ {row.flag}" if row.flag else ""
                kind = _KIND_NAMES.get(span.kind, "?")
                lines.append(
                    f"{'  ' * row.depth}{span.name} [{span.service}, {kind}]{status}{message}{flag}"
                )
        if len(lines) > RENDER_LIMIT:
            lines = [*lines[:RENDER_LIMIT], f"… {len(lines) - RENDER_LIMIT} more lines"]
        return "\n".join(lines) or "(no spans)"

    def _fail(self, message: str) -> NoReturn:
        raise AssertionError(f"{message}\n\nspans ({len(self)}):\n{self.render()}")


_KIND_NAMES = {kind.value + 1: kind.name for kind in SpanKind}  # OTLP numbers its kinds from 1


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0


def _parent_id(span: ReadableSpan) -> str:
    if span.parent is None:
        return "none (it is a root)"
    return f"{span.parent.span_id:016x}, which is not here"


def _includes(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(key in have and _plain(have[key]) == _plain(value) for key, value in wanted.items())


def _short(value: Any, limit: int = 80) -> Any:
    text = str(value)
    return value if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    # Sequence attributes come back as tuples; let a test write them as lists.
    return list(value) if isinstance(value, tuple | list) else value


def _as_model_span(span: ReadableSpan) -> waterfall.Span:
    parent = span.parent
    return waterfall.Span(
        trace_id=trace_id_of(span),
        span_id=f"{span.context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else "",
        name=span.name,
        service=service_of(span),
        kind=span.kind.value + 1,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status_code=span.status.status_code.value,
        status_message=span.status.description or "",
        attributes=dict(span.attributes or {}),
        events=tuple(
            waterfall.Event(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events
        ),
    )
