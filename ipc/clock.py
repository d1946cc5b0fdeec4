"""The data clock: "now" for every decision about data time (receive stamps, data age, bar and
window boundaries, tick grid, cooldowns).

Live, it is the wall clock. Under replay (`python run.py --replay`), every actor and the sim share
one mapping from wall time to recording time, set once at start from the settings:
    now = origin_ns + (wall_ns - wall0_ns) * speed
so a replayed frame is stamped, aged and bucketed as it was when it was recorded, at any speed.

Invariants:
- process liveness (heartbeats, /health's alive check, supervisord) stays on the wall clock:
  `time.time_ns()`; only data time goes through here. Never compare one with the other.
- CLOCK_OFFSET_MS (fault drills) shifts the data clock by a constant, as a skewed local clock would.
- `wall_sec(delta_ns)` converts a data-time interval to the wall time to sleep for it.
- manual (event-time) mode, for the in-process backtest (actors/tools/backtest_engine.py):
  `set_manual(now_ns)` pins "now" to a value the caller drives (`advance_to`, `advance`) and wall
  time no longer moves it; it never runs backwards by `advance_to`/`advance` (a late stamp
  leaves it where it is); `wall_sec` is 0 (no one waits for event time: it is stepped); `release()`
  returns to the configured mapping. `configure` leaves manual mode too.
"""
from __future__ import annotations

import time

_origin_ns = 0
_wall0_ns = 0
_speed = 1.0
_manual_ns: int | None = None     # event time, when the caller drives the clock (manual mode)


def configure(origin_ns: int = 0, wall0_ns: int = 0, speed: float = 1.0) -> None:
    global _origin_ns, _wall0_ns, _speed, _manual_ns
    if speed <= 0:
        raise ValueError(f"clock speed must be > 0 (got {speed})")
    _origin_ns, _wall0_ns, _speed = int(origin_ns), int(wall0_ns), float(speed)
    _manual_ns = None


def set_manual(now_ns: int) -> None:
    """Event-time mode: `now_ns()` is `now_ns` until the caller moves it (module docstring)."""
    global _manual_ns
    if now_ns <= 0:
        raise ValueError(f"a manual clock needs a positive epoch time (got {now_ns})")
    _manual_ns = int(now_ns)


def advance_to(now_ns: int) -> int:
    """Event-time mode: move now to `now_ns` if that is later (never back); the new now."""
    global _manual_ns
    if _manual_ns is None:
        raise RuntimeError("the clock is not in manual mode (set_manual first)")
    if now_ns > _manual_ns:
        _manual_ns = int(now_ns)
    return _manual_ns


def advance(delta_ns: int) -> int:
    """Event-time mode: move now forward by `delta_ns` (>= 0); the new now."""
    if delta_ns < 0:
        raise ValueError(f"the clock does not run backwards (delta {delta_ns} ns)")
    return advance_to(now_ns() + int(delta_ns))


def release() -> None:
    """Leave manual mode: back to the configured mapping (live: the wall clock)."""
    global _manual_ns
    _manual_ns = None


def is_manual() -> bool:
    return _manual_ns is not None


def configure_from(settings) -> None:
    if settings.replay.clock_offset_ms and not settings.replay.replay_origin_ns:
        wall = time.time_ns()                # a skewed local clock (fault drills): data time = wall + offset
        configure(wall + int(settings.replay.clock_offset_ms * 1e6), wall, 1.0)
        return
    configure(settings.replay.replay_origin_ns, settings.replay.replay_wall0_ns, settings.replay.replay_speed)


def now_ns() -> int:
    if _manual_ns is not None:
        return _manual_ns
    if not _origin_ns:
        return time.time_ns()
    return _origin_ns + int((time.time_ns() - _wall0_ns) * _speed)


def now_s() -> float:
    return now_ns() / 1e9


def speed() -> float:
    return _speed


def wall_sec(delta_ns: float) -> float:
    """Wall seconds that `delta_ns` of data time takes to pass (0 in manual mode: it is stepped)."""
    if _manual_ns is not None:
        return 0.0
    return delta_ns / 1e9 / _speed
