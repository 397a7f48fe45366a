"""Two traces merged into one tree (ordersim/trace_diff.py) and ``ordersim trace diff``.

The fixtures in tests/fixtures/trace_diff/ are shared with the viewer's comparison page:
both must give expected.json's rows for a.json against b.json, and edge-expected.json's for
edge-a.json against edge-b.json."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from rich.console import Console

from ordersim import diff_cmd
from ordersim.cli import main
from ordersim.trace_diff import diff_traces
from ordersim.waterfall import Trace, parse_otlp
from tests import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "trace_diff"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def rows(a: Any, b: Any) -> list[dict[str, Any]]:
    diff = diff_traces(Trace(parse_otlp(a)), Trace(parse_otlp(b)))
    return [
        {
            "depth": node.depth,
            "service": node.service,
            "operation": node.operation,
            "presence": node.presence,
            "countA": node.count_a,
            "countB": node.count_b,
            "totalANs": node.total_a_ns,
            "totalBNs": node.total_b_ns,
        }
        for node in diff.rows()
    ]


def test_spans_are_matched_by_their_path_with_counts() -> None:
    assert rows(fixture("a.json"), fixture("b.json")) == fixture("expected.json")["rows"]


def test_the_edge_cases_give_their_expected_rows() -> None:
    """Siblings starting together (code-point order), a missing parent, a repeated span id,
    an empty service name, a node only in B: edge-expected.json, for the viewer's too."""
    expected = fixture("edge-expected.json")["rows"]
    assert rows(fixture("edge-a.json"), fixture("edge-b.json")) == expected


def test_concurrent_siblings_compare_stably_whatever_order_they_ran_in() -> None:
    """check_stock x3 in B started in another order than their ids say: one node, 2 -> 3."""
    [check] = [
        r for r in rows(fixture("a.json"), fixture("b.json")) if r["operation"] == "check_stock"
    ]
    assert (check["countA"], check["countB"], check["presence"]) == (2, 3, "both")


def test_swapping_the_traces_swaps_only_a_and_only_b() -> None:
    forward = rows(fixture("a.json"), fixture("b.json"))
    backward = rows(fixture("b.json"), fixture("a.json"))
    flip = {"both": "both", "only_a": "only_b", "only_b": "only_a"}
    by_path = {(r["depth"], r["service"], r["operation"]): r for r in backward}
    for row in forward:
        other = by_path[(row["depth"], row["service"], row["operation"])]
        assert other["presence"] == flip[row["presence"]]
        assert (other["countA"], other["countB"]) == (row["countB"], row["countA"])


def test_a_trace_against_itself_is_all_in_both_with_no_difference() -> None:
    same = rows(fixture("a.json"), fixture("a.json"))
    assert {r["presence"] for r in same} == {"both"}
    assert all(r["totalANs"] == r["totalBNs"] for r in same)


def viewer_transport(documents: dict[str, Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        trace_id = request.url.path.rsplit("/", 1)[-1]
        if trace_id in documents:
            return httpx.Response(200, json=documents[trace_id])
        return httpx.Response(404, json={"error": {"httpCode": 404}})

    return httpx.MockTransport(handler)


def run_diff(a: str, b: str, documents: dict[str, Any], width: int = 160) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = diff_cmd.diff(
        a,
        b,
        endpoint="http://viewer.test",
        console=Console(file=out, width=width),
        errors=Console(file=err, width=width),
        transport=viewer_transport(documents),
    )
    return code, out.getvalue(), err.getvalue()


def test_the_terminal_diff_marks_each_side_and_the_differences() -> None:
    a, b = "a" * 32, "b" * 32
    code, out, _ = run_diff(a, b, {a: fixture("a.json"), b: fixture("b.json")})
    assert code == 0
    assert f"A {a}" in out and f"B {b}" in out
    assert "6 in both  1 only in A (-)  2 only in B (+)" in out
    lines = {line.split()[1] if line.split()[0] in "+-" else line.split()[0]: line
             for line in out.splitlines() if line.strip()}  # fmt: skip
    assert lines["quote_shipping"].lstrip().startswith("- quote_shipping")
    assert lines["charge_payment"].lstrip().startswith("+ charge_payment")
    assert "✗" in lines["charge_payment"]  # an error in B
    check = lines["check_stock"]
    assert "2→3" in check and "2x 22.00" in check and "3x 64.00" in check and "+42.00" in check


def test_at_80_columns_the_names_give_way_and_the_figures_stay_whole() -> None:
    """A pipe's width: the span names are cut (…), never the numbers."""
    a, b = "a" * 32, "b" * 32
    code, out, _ = run_diff(a, b, {a: fixture("a.json"), b: fixture("b.json")}, width=80)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    check = next(line for line in out.splitlines() if "check_stock" in line or "check_st…" in line)
    assert "2x 22.00" in check and "3x 64.00" in check and "+42.00" in check


def test_the_terminal_diff_says_which_trace_is_missing_and_refuses_bad_ids() -> None:
    a, b = "a" * 32, "b" * 32
    code, _, err = run_diff(a, b, {a: fixture("a.json")})
    assert code == 1
    assert f"trace {b} not found at http://viewer.test" in err
    code, _, err = run_diff(a, "nope", {})
    assert code == 2


def test_the_command_line_takes_diff_and_two_ids(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "diff", "a" * 32]) == 2
    assert "give two trace ids" in capsys.readouterr().err
    assert main(["trace", "diff", "a" * 32, "b" * 32, "--json"]) == 2
    assert main(["trace", "a" * 32, "b" * 32]) == 2
    assert "unexpected" in capsys.readouterr().err
