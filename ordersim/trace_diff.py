"""Two traces merged into one tree: what is only in A, only in B, and in both.

The spans of each trace are grouped by their *path* from the root: the (service, operation)
of every ancestor and of the span itself, as Jaeger UI's trace comparison keys its nodes
(``TraceDag`` with the ``ancestralPathParentOrLeaf`` id factory). Spans on the same path
are one node with a count: ``check_stock`` x3 under one reservation is one node in each
trace, so concurrent siblings of one name compare stably whatever order they ran in. A
node in both traces carries the total duration of its spans in each and the difference.

    >>> diff = diff_traces(Trace(parse_otlp(a)), Trace(parse_otlp(b)))
    >>> [(n.depth, n.operation, n.count_a, n.count_b) for n in diff.rows()]

Pure: no I/O, no rendering. ``ordersim trace diff`` (:mod:`ordersim.diff_cmd`) draws it;
the viewer's comparison page follows the same rules, checked against the same fixtures
(tests/fixtures/trace_diff/).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ordersim.waterfall import Span, Trace

Presence = Literal["both", "only_a", "only_b"]
#: A node's key: the (service, operation) of each span from the root down to it.
Path = tuple[tuple[str, str], ...]


@dataclass
class DiffNode:
    """The spans of both traces on one path."""

    path: Path
    a: list[Span] = field(default_factory=list)
    b: list[Span] = field(default_factory=list)
    children: dict[tuple[str, str], DiffNode] = field(default_factory=dict)
    #: Where the node's first span starts, from its trace's start (A's if it is in A):
    #: siblings are listed in this order.
    offset_ns: int = 0

    @property
    def service(self) -> str:
        return self.path[-1][0]

    @property
    def operation(self) -> str:
        return self.path[-1][1]

    @property
    def depth(self) -> int:
        return len(self.path) - 1

    @property
    def count_a(self) -> int:
        return len(self.a)

    @property
    def count_b(self) -> int:
        return len(self.b)

    @property
    def presence(self) -> Presence:
        if self.a and self.b:
            return "both"
        return "only_a" if self.a else "only_b"

    @property
    def total_a_ns(self) -> int:
        return sum(s.duration_ns for s in self.a)

    @property
    def total_b_ns(self) -> int:
        return sum(s.duration_ns for s in self.b)

    @property
    def delta_ns(self) -> int:
        """B's total minus A's: positive when B spent longer here."""
        return self.total_b_ns - self.total_a_ns

    @property
    def errors_a(self) -> int:
        return sum(s.is_error for s in self.a)

    @property
    def errors_b(self) -> int:
        return sum(s.is_error for s in self.b)

    def ordered_children(self) -> list[DiffNode]:
        return sorted(self.children.values(), key=lambda n: (n.offset_ns, n.path[-1]))


@dataclass
class TraceDiff:
    a: Trace
    b: Trace
    roots: dict[tuple[str, str], DiffNode]

    def rows(self) -> Iterator[DiffNode]:
        """Every node, depth first, siblings in the order they started."""
        stack = sorted(self.roots.values(), key=lambda n: (n.offset_ns, n.path[-1]))[::-1]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.ordered_children()))

    def count(self, presence: Presence) -> int:
        return sum(1 for node in self.rows() if node.presence == presence)


def diff_traces(a: Trace, b: Trace) -> TraceDiff:
    """Merge ``a`` and ``b`` by span path (see the module docstring)."""
    roots: dict[tuple[str, str], DiffNode] = {}
    for side, trace in (("a", a), ("b", b)):
        start = trace.start_ns
        for row in trace.rows():
            # rows() is depth first, so a span's parent node exists when the span comes.
            path = _path(trace, row.span)
            siblings = roots
            node: DiffNode | None = None
            for depth, key in enumerate(path):
                node = siblings.get(key)
                if node is None:
                    node = siblings[key] = DiffNode(path[: depth + 1])
                siblings = node.children
            assert node is not None
            members = node.a if side == "a" else node.b
            members.append(row.span)
            if side == "a" or not node.a:
                offset = row.span.start_ns - start
                node.offset_ns = offset if len(members) == 1 else min(node.offset_ns, offset)
    return TraceDiff(a, b, roots)


def _path(trace: Trace, span: Span) -> Path:
    """(service, operation) from the top of the span's tree down to the span; a span whose
    parent is missing starts a path of its own, and a parent cycle stops at the repeat."""
    path: list[tuple[str, str]] = []
    seen: set[str] = set()
    current: Span | None = span
    while current is not None and current.span_id not in seen:
        seen.add(current.span_id)
        path.append((current.service, current.name))
        current = trace.by_id.get(current.parent_id)
    return tuple(reversed(path))
