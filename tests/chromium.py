"""Chromium for the browser tests (tests/system_tools.py finds it; ``make system-deps``
installs Debian's), driven by Playwright
(the ``test`` extra, no browser download): one way to launch it and one way to open a page,
shared by the tests of the trace list, the trace page's views and the comparison page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests import ROOT
from tests.system_tools import system_tool

ARTIFACTS = ROOT / "test-artifacts"


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Chromium under Playwright until the block ends.

    Each module's fixture enters it, after any ``asyncio.run`` of its own: between calls
    Playwright's sync API marks its event loop as running, so while a browser is open
    ``asyncio.run`` and the asyncio tests refuse to start. One browser for the whole session
    would break every asyncio test that runs after the first browser test."""
    executable = system_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser,
    url: str,
    state: str = "ready",
    *,
    height: int = 1000,
    failed_requests: bool = False,
) -> Page:
    """A fresh page (in a context of its own) at ``url``, once the page has drawn or said what
    is wrong (``body[data-state]``). What it throws collects in ``page.errors``, and with
    ``failed_requests`` every answer of 400 or more it got (a module that is not served)."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if failed_requests:
        page.on(
            "response",
            lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
    page.errors = errors  # type: ignore[attr-defined]
    load(page, url, state)
    return page


def load(page: Page, url: str, state: str = "ready") -> None:
    """Go to ``url`` in ``page`` and wait until it has drawn or said what is wrong."""
    page.goto(url)
    page.wait_for_selector("body[data-state]")
    assert page.evaluate("document.body.dataset.state") == state


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """``test-artifacts/<name>.png`` of the page, which must have drawn something and thrown
    nothing."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 20_000, f"{path} is suspiciously plain"
    assert not page.errors, page.errors  # type: ignore[attr-defined]
    return path
