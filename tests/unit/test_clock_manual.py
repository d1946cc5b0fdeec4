"""The data clock's manual (event-time) mode: the backtest steps it; it never runs back by a late
stamp; leaving it restores the configured mapping."""
from __future__ import annotations

import time

import pytest

from ipc import clock

T0 = 1_800_000_000_000_000_000


@pytest.fixture(autouse=True)
def _restore():
    yield
    clock.configure()


def test_manual_time_is_what_the_caller_sets_and_never_goes_back():
    clock.set_manual(T0)
    assert clock.is_manual() and clock.now_ns() == T0 and clock.now_s() == T0 / 1e9
    assert clock.advance_to(T0 + 5) == T0 + 5 == clock.now_ns()
    assert clock.advance_to(T0 + 1) == T0 + 5            # a late stamp: now stays
    assert clock.advance(10) == T0 + 15
    assert clock.wall_sec(1_000_000_000) == 0.0          # nobody sleeps for event time
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set_manual(0)


def test_release_and_configure_leave_manual_mode():
    clock.configure(origin_ns=T0, wall0_ns=time.time_ns(), speed=2.0)
    clock.set_manual(T0 + 10**12)
    assert clock.now_ns() == T0 + 10**12
    clock.release()
    assert not clock.is_manual() and abs(clock.now_ns() - T0) < 10 * 10**9 and clock.speed() == 2.0
    assert clock.wall_sec(2_000_000_000) == 1.0
    clock.set_manual(T0)
    clock.configure()
    assert not clock.is_manual() and abs(clock.now_ns() - time.time_ns()) < 10**9
    with pytest.raises(RuntimeError):
        clock.advance_to(T0)
