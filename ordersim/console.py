"""The command line's error and console layer, shared by every command: a bad argument
(:class:`UsageError`, exit status 2, reported the way argparse reports one) and the two
consoles a command prints to."""

from __future__ import annotations

import sys

from rich.console import Console


class UsageError(Exception):
    """A bad argument: reported the way argparse reports one, exit code 2."""


def usage_error(command: str, error: UsageError) -> int:
    """Report ``error`` as ``ordersim <command>: error: …`` on stderr; the exit status, 2."""
    print(f"ordersim {command}: error: {error}", file=sys.stderr)
    return 2


def consoles(
    console: Console | None, errors: Console | None, *, highlight: bool = True
) -> tuple[Console, Console]:
    """The console for results (stdout) and the one for errors (stderr), unless given."""
    return (
        console or Console(highlight=highlight),
        # Messages are never wrapped: "not found at <endpoint>" stays greppable.
        errors or Console(stderr=True, highlight=False, soft_wrap=True),
    )
