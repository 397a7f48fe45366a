"""``ordersim trace diff A B``: two stored traces merged into one tree, in the terminal.

Spans only in A are red (-), only in B green (+); spans in both show each side's count and
total time and the difference, red where B took longer. See :mod:`ordersim.trace_diff` for
how spans are matched.
"""

from __future__ import annotations

import httpx
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from common import topology
from ordersim.calls import base_url
from ordersim.console import UsageError, consoles, usage_error
from ordersim.trace_diff import DiffNode, TraceDiff, diff_traces
from ordersim.viewer import Viewer, parse_trace_id, stored
from ordersim.waterfall import ERROR_STYLE, Trace, format_ms, parse_otlp, plural, service_colour

ONLY_A_STYLE, ONLY_B_STYLE = "red", "green"
#: A difference smaller than this share of the larger total is shown, but not coloured.
NOTICEABLE = 0.10


def side(count: int, total_ns: int) -> str:
    if not count:
        return "—"
    times = f"{count}x " if count > 1 else ""
    return f"{times}{format_ms(total_ns)}"


def delta_cell(node: DiffNode) -> Text:
    if node.presence != "both":
        return Text("")
    delta = node.delta_ns
    larger = max(node.total_a_ns, node.total_b_ns, 1)
    style = ""
    if abs(delta) >= NOTICEABLE * larger:
        style = "red" if delta > 0 else "green"
    return Text(f"{'+' if delta >= 0 else '-'}{format_ms(abs(delta))}", style=style)


def name_cell(node: DiffNode) -> Text:
    marker, style = {
        "both": ("  ", ""),
        "only_a": ("- ", ONLY_A_STYLE),
        "only_b": ("+ ", ONLY_B_STYLE),
    }[node.presence]
    text = Text("  " * node.depth, no_wrap=True, overflow="ellipsis")
    text.append(marker, style=style)
    text.append(node.operation or "(unnamed)", style=style)
    if node.count_a != node.count_b and node.presence == "both":
        text.append(f"  {node.count_a}→{node.count_b}", style="yellow")
    if node.errors_a or node.errors_b:
        text.append(" ✗", style=ERROR_STYLE)
    return text


def render(diff: TraceDiff, width: int | None = None) -> RenderableType:
    """The header and the merged tree; at ``width`` columns the span names give way."""
    header = Text()
    for label, trace in (("A", diff.a), ("B", diff.b)):
        header.append(f"{label} ", style="bold")
        header.append(trace.trace_id, style="bold")
        root = trace.root
        header.append(f"  {root.name if root else '(root missing)'}")
        header.append(f"  {format_ms(trace.duration_ns)} ms, {plural(len(trace.spans), 'span')}\n")
    header.append(f"{diff.count('both')} in both  ")
    header.append(f"{diff.count('only_a')} only in A (-)  ", style=ONLY_A_STYLE)
    header.append(f"{diff.count('only_b')} only in B (+)", style=ONLY_B_STYLE)

    rows = [
        (
            name_cell(node),
            Text(node.service, style=service_colour(node.service)),
            Text(side(node.count_a, node.total_a_ns)),
            Text(side(node.count_b, node.total_b_ns)),
            delta_cell(node),
        )
        for node in diff.rows()
    ]

    def widest(column: int, heading: str) -> int:
        return max([len(heading), *(row[column].cell_len for row in rows)])

    # The figures keep their width and the span names give way (ellipsis): at 80 columns,
    # a pipe's width, rich would otherwise shrink every column and cut the numbers too.
    headings = ("service", "A ms", "B ms", "Δ ms")
    others = [widest(column, heading) for column, heading in enumerate(headings, start=1)]
    # Between five columns: four separators, a space of padding each side, one to spare.
    room = 60 if width is None else max(12, min(60, width - sum(others) - 4 * 3 - 2))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("span", overflow="ellipsis", no_wrap=True, max_width=room)
    table.add_column("service", no_wrap=True, min_width=others[0])
    for heading, least in zip(headings[1:], others[1:], strict=True):
        table.add_column(heading, justify="right", no_wrap=True, min_width=least)
    for row in rows:
        table.add_row(*row)
    return Group(header, table)


def diff(
    trace_a: str,
    trace_b: str,
    *,
    endpoint: str | None = None,
    console: Console | None = None,
    errors: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Print two stored traces merged into one tree: 0, or 1 if one cannot be read."""
    console, errors = consoles(console, errors)
    try:
        ids = [parse_trace_id(trace_a), parse_trace_id(trace_b)]
    except UsageError as exc:
        return usage_error("trace diff", exc)
    endpoint = base_url(endpoint or topology.VIEWER.ui_url())
    traces: list[Trace] = []
    with httpx.Client(transport=transport) as client:
        viewer = Viewer(endpoint, client)
        for trace_id in ids:
            document = stored(viewer, trace_id, errors)
            if document is None:
                return 1
            traces.append(Trace(parse_otlp(document)))
    console.print(render(diff_traces(traces[0], traces[1]), console.width))
    return 0
