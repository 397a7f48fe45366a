"""Drive headless Chromium over the DevTools protocol: load a page, type, press keys, click.

``--dump-dom`` shows what a page rendered; what a user's click or key does needs a browser
that stays open. This is the few commands of the DevTools protocol those tests use
(https://chromedevtools.github.io/devtools-protocol/), over the ``websockets`` client:
real mouse and key events (``Input.dispatch*``), so a click is a user's click.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.processes import poll


class PageError(AssertionError):
    """The page threw, or a command failed."""


@dataclass
class Page:
    socket: ClientConnection
    errors: list[str] = field(default_factory=list)
    _next: int = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self.socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description", str(details)))
            if message.get("id") == self._next:
                if "error" in message:
                    raise PageError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 15) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""

        def truthy() -> Any:
            try:
                return self.evaluate(expression)
            except PageError:  # mid-navigation: the context is gone for a moment
                return None

        return poll(truthy, timeout, what)

    def open(self, url: str) -> None:
        """Load a page and wait until the trace list says it is ready (the page it replaces
        is marked, so that its own readiness does not count)."""
        self.evaluate("window.leaving = true")
        self.send("Page.navigate", url=url)
        self.wait_for(
            "!window.leaving && document.body?.dataset.state === 'ready'", f"{url} to load"
        )

    def click(self, selector: str) -> None:
        """A real left click in the middle of the first element the selector finds."""
        box = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    def type(self, selector: str, text: str) -> None:
        """Focus a field, clear it and type into it."""
        self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.focus(); el.select?.(); })()"
        )
        self.send("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )


@contextmanager
def chromium_page(chromium: Path, profile: Path) -> Iterator[Page]:
    """A headless Chromium with one page, until the block ends."""
    process = subprocess.Popen(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        port = poll(
            lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30, "DevTools"
        )

        def page_socket() -> str | None:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"]
            return pages[0] if pages else None

        with connect(poll(page_socket, 30, "a page"), max_size=2**24) as socket:
            page = Page(socket)
            page.send("Page.enable")
            page.send("Runtime.enable")
            yield page
            assert not page.errors, f"JavaScript errors: {page.errors}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
