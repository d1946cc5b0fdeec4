"""HTTP helpers shared by the venues' pure REST code and the I/O shells' retry loops (no I/O).

Invariants:
- `backoff_sec` is the one retry-delay rule: `min(cap, base·2^attempt)` scaled by a jitter factor
  the caller draws (so the function stays pure and tests can pin it); it never exceeds `cap_sec`
  and never overflows, whatever `attempt` grows to.
- `retry_after_value_sec` reads a `Retry-After` value and never raises: a NaN or unreadable value is
  None (the caller's default applies), `inf`/`1e400` is inf; every caller bounds the result with
  `clamp_sec` at its venue's documented maximum, so no pause is forever and none overflows;
- `HostPause` is one host's "no request before" time: a 429 (or a 503 with `Retry-After`) pauses
  every request to that host, for the capped `Retry-After` or, without one, the caller's default;
  it only ever moves the time later, and reads the clock it is given (tests pin it).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime


def header(headers: Mapping[str, str] | object, name: str) -> str | None:
    """Case-insensitive header lookup on any mapping (httpx.Headers, dict, list of pairs)."""
    items = headers.items() if hasattr(headers, "items") else headers
    name = name.lower()
    for k, v in items:
        if k.lower() == name:
            return v
    return None


MAX_BACKOFF_EXPONENT = 60       # 2^60·base is past any cap: clamping keeps huge attempts finite


def backoff_sec(attempt: int, base_sec: float, cap_sec: float, u: float = 1.0) -> float:
    """Capped exponential backoff `min(cap, base·2^attempt)`, scaled by a jitter `u`.

    Callers jitter with `random.uniform(0.5, 1.0)` (never more than the cap, at least half of it);
    `u=1.0` is the unjittered delay.
    """
    return min(cap_sec, base_sec * 2.0 ** min(attempt, MAX_BACKOFF_EXPONENT)) * u


def retry_after_value_sec(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds a `Retry-After` value asks to wait: delta-seconds (any float text; `inf` and
    `1e400` read as inf, a negative as itself) or, when `now_s` (epoch s) is given, an HTTP-date
    minus `now_s` (a date without a zone is UTC); None when absent, unreadable or NaN. Unbounded:
    callers clamp it (`clamp_sec`)."""
    if value is None:
        return None
    text = value.strip()
    try:
        sec = float(text)
    except ValueError:
        if now_s is None:
            return None
        try:
            when = parsedate_to_datetime(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            sec = when.timestamp() - now_s
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None if math.isnan(sec) else sec


def clamp_sec(sec: float, cap_sec: float, floor_sec: float = 0.0) -> float:
    """`sec` within [floor_sec, cap_sec]: inf is the cap, a negative the floor, NaN the cap (an
    unknown wait errs on the long side, and is still bounded)."""
    if math.isnan(sec):
        return cap_sec
    return min(cap_sec, max(floor_sec, sec))


class HostPause:
    """A host's request pause after 429 (or 503 with Retry-After): every request to the host waits
    it out. `cap_sec` bounds any Retry-After (`inf`, `1e300`, a date in the year 9999)."""

    def __init__(self, cap_sec: float):
        self.cap_sec = cap_sec
        self.until_s = 0.0          # the caller's monotonic clock: no request before this
        self.pauses = 0

    def remaining_sec(self, now_s: float) -> float:
        return max(0.0, self.until_s - now_s)

    def on_response(self, status: int, headers, now_s: float, default_sec: float) -> float | None:
        """Account for one response: the pause it started (s), or None."""
        ra = retry_after_value_sec(header(headers, "Retry-After"))
        if status != 429 and not (status == 503 and ra is not None):
            return None
        sec = clamp_sec(default_sec if ra is None else ra, self.cap_sec)
        self.until_s = max(self.until_s, now_s + sec)
        self.pauses += 1
        return sec
