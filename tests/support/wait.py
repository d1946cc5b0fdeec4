"""Wait on a condition with a deadline: the one wait helper of the test suite.

A test never sleeps "long enough"; it names what it waits for, polls it, and fails with that name
(and the condition's last error, if it raised) when the deadline passes. The condition's truthy
value is returned, so a wait can also fetch what it waited for.

Polls start 1 ms apart and back off to `interval` (50 ms by default): a condition that is
almost met is seen at once, and a long wait (a system starting) does not hammer what it polls.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")


def _timed_out(timeout: float, what: str, last_exc: BaseException | None) -> AssertionError:
    return AssertionError(f"timed out after {timeout}s waiting for {what}"
                          + (f" (last error: {last_exc!r})" if last_exc is not None else ""))


FIRST_POLL_SEC = 0.001


def _pauses(interval: float):
    pause = min(FIRST_POLL_SEC, interval)
    while True:
        yield pause
        pause = min(pause * 2, interval)


def wait_for(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `cond()` until it returns a truthy value, and return it; pauses grow to `interval`.

    An exception from `cond` counts as "not yet" (a server may not listen yet, a segment may not
    exist yet) and the last one is named in the timeout error; but an AssertionError is a verdict
    (a check inside the condition failed) and is raised at once. `interval=0` yields the CPU between
    polls without sleeping (for conditions that move in microseconds)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    pauses = _pauses(interval)
    while True:
        try:
            v = cond()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as exc:         # noqa: BLE001 - the condition may not be ready yet
            last_exc = exc
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, last_exc) from last_exc
        time.sleep(next(pauses))


async def wait_for_async(cond: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                         interval: float = 0.05) -> T:
    """wait_for inside an event loop: the loop keeps running (readers, servers) between polls.
    `cond` may be a plain function or a coroutine function."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    pauses = _pauses(interval)
    while True:
        try:
            v = cond()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
        except AssertionError:
            raise
        except Exception as exc:         # noqa: BLE001 - the condition may not be ready yet
            last_exc = exc
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, last_exc) from last_exc
        await asyncio.sleep(next(pauses))
