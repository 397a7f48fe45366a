"""tests/system_tools.py on a machine without the tools: a pytest run in a subprocess whose PATH
holds none of them (nothing is removed from this machine). Locally the tests that need one
skip, saying how to get it, and the run ends with a line naming what was skipped; under
``CI=true`` the same tests fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ordersim.testing.processes import clean_env
from tests import ROOT
from tests.system_tools import TOOLS

NEEDS_TOOLS = """
import pytest

from tests.system_tools import system_tool


@pytest.mark.system_tool("docker-compose")
def test_marked():
    pass


@pytest.fixture
def node():
    return system_tool("node")


def test_through_a_fixture(node):
    pass


def test_none():
    pass
"""


def run_without_tools(tmp_path: Path, **env: str) -> tuple[int, str]:
    """pytest on NEEDS_TOOLS, with the plugin, and a PATH of one empty folder: its exit code and
    its report (stdout; a failure message includes stderr too)."""
    (tmp_path / "test_needs_tools.py").write_text(NEEDS_TOOLS)
    (tmp_path / "empty").mkdir(exist_ok=True)
    full_env = clean_env()
    full_env.pop("CI", None)
    full_env.pop("PYTEST_ADDOPTS", None)
    full_env |= {"PATH": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT), **env}
    plugin = ["-p", "tests.system_tools", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "-rs", "test_needs_tools.py"],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout, result.stderr
    return result.returncode, result.stdout


def test_a_missing_tool_skips_with_how_to_get_it_and_the_run_names_it(tmp_path: Path) -> None:
    code, output = run_without_tools(tmp_path)
    assert code == 0, output
    assert "1 passed, 2 skipped" in output, output
    for name in ("docker-compose", "node"):
        assert TOOLS[name].reason() in output, output
    assert "brew install node" in output and "apt-get install docker-compose" in output
    last = output.rstrip().splitlines()[-2]  # the line before pytest's own counts
    assert last.startswith("skipped for a missing system tool: docker-compose (1 test), "), last
    assert "node (1 test)" in last, last


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_tool_fails(tmp_path: Path, ci: str) -> None:
    code, output = run_without_tools(tmp_path, CI=ci)
    assert code == 1, output
    assert "1 passed, 2 errors" in output, output
    assert "skipped" not in output, output
    assert f"{TOOLS['node'].reason()} (CI=true: a missing tool fails)" in output, output
