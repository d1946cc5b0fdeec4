"""HTTP helpers shared by the venues' pure REST code and the I/O shells' retry loops (no I/O).

Invariants:
- `backoff_sec` is the one retry-delay rule: `min(cap, base·2^attempt)` scaled by a jitter factor
  the caller draws (so the function stays pure and tests can pin it); it never exceeds `cap_sec`
  and never overflows, whatever `attempt` grows to.
"""
from __future__ import annotations

from collections.abc import Mapping


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
