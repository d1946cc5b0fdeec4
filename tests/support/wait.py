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


FIRST_POLL_SEC = 0.001


class _Poll:
    """One wait's deadline, its last "not yet" error and its growing pauses."""

    def __init__(self, timeout: float, what: str, interval: float):
        self.timeout, self.what = timeout, what
        self.deadline = time.monotonic() + timeout
        self.last_exc: BaseException | None = None
        self.pause = min(FIRST_POLL_SEC, interval)
        self.interval = interval

    def failed(self, exc: Exception) -> None:
        """`cond` raised: an AssertionError is a verdict (raised at once), anything else "not yet"."""
        if isinstance(exc, AssertionError):
            raise exc
        self.last_exc = exc

    def next_pause(self) -> float:
        """The pause before the next poll; the timeout AssertionError once the deadline passed."""
        if time.monotonic() >= self.deadline:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what}"
                                 + (f" (last error: {self.last_exc!r})" if self.last_exc else "")
                                 ) from self.last_exc
        pause, self.pause = self.pause, min(self.pause * 2, self.interval)
        return pause


def wait_for(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `cond()` until it returns a truthy value, and return it; pauses grow to `interval`.

    An exception from `cond` counts as "not yet" (a server may not listen yet, a segment may not
    exist yet) and the last one is named in the timeout error; but an AssertionError is a verdict
    (a check inside the condition failed) and is raised at once. `interval=0` yields the CPU between
    polls without sleeping (for conditions that move in microseconds)."""
    poll = _Poll(timeout, what, interval)
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as exc:         # noqa: BLE001 - the condition may not be ready yet
            poll.failed(exc)
        time.sleep(poll.next_pause())


async def wait_for_async(cond: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                         interval: float = 0.05) -> T:
    """wait_for inside an event loop: the loop keeps running (readers, servers) between polls.
    `cond` may be a plain function or a coroutine function."""
    poll = _Poll(timeout, what, interval)
    while True:
        try:
            v = cond()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
        except Exception as exc:         # noqa: BLE001 - the condition may not be ready yet
            poll.failed(exc)
        await asyncio.sleep(poll.next_pause())
