"""Fanning out without leaving anything behind: :func:`settle_all`; and work that is
never cut off halfway: :func:`uncancelled`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


@overload
async def settle_all(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def settle_all(*calls: Awaitable[T]) -> tuple[T, ...]: ...


async def settle_all(*calls: Awaitable[Any]) -> tuple[Any, ...]:
    """Run the calls concurrently; return once *every one* has finished, with their results
    in order, or raise the first failure (in argument order).

    Plain ``asyncio.gather`` returns on the first failure while the other calls keep
    running: their spans then end after their parent's, and a saga cannot know what they
    did. Here a failure cancels nothing; a cancellation of the caller (a deadline) is
    passed to every call and waited out. A call that must not be cut off halfway (a
    mutation) finishes its work before it honours the cancellation; see ``Saga.step``.

    Why a failure does not cancel the other calls, as ``asyncio.TaskGroup`` would: they
    are database reads and HTTP calls that end within their own timeouts, and cancelling
    one abandons only the wait, not the work (a database thread runs its transaction to
    its end all the same), while a connection cancelled mid-transaction is the one
    thing that hung the test suite before (stuck in its graceful close).

        reservation, quote = await settle_all(reserve(order), quote(address))
    """
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return tuple(outcomes)


async def uncancelled(call: Awaitable[T]) -> T:
    """Await ``call`` to its end even if the caller is cancelled meanwhile (the order's
    deadline), then pass the cancellation on: a mutation cut off halfway would leave the
    caller guessing whether it landed. The call bounds itself (a per-call timeout, one
    database transaction)."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):  # a second cancellation too
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # the caller recorded its outcome; no "never retrieved"
        raise
