"""Kline-sync bookkeeping for a ring of closed klines: which klines to fetch, whether one is new,
and when one is overdue. Pure: times are epoch milliseconds passed in, nothing is read or written.

Invariants:
- the sync window is the newest `limit` klines, the one in progress included: it starts at
  `(now // tf - (limit - 1)) · tf`, always a multiple of `tf_ms`;
- `sync_start` never goes back before the ring's expectation (`next_open_ms`), and gives up the
  klines before the window only when the ring expects one older than the window start;
- `page_limit` is at most the venue's cap and counts the opens in [cursor, upto]; 0 when none;
- `classify` compares a closed kline with the ring's newest: only 'first', 'next' or 'gap' may be
  appended, 'dup' (not newer) never, so the ring stays strictly increasing in open time;
- a kline is due once it has been closed for `grace_ms` (its close is open + tf).
"""
from __future__ import annotations

from ipc.schema import KLINE

__all__ = ["MIN_RING_CAPACITY", "ring_capacity", "sync_start", "page_limit", "classify", "is_due",
           "kline_doc"]

MIN_RING_CAPACITY = 2048


def ring_capacity(limit: int) -> int:
    """A context ring holds at least two bootstrap windows (and MIN_RING_CAPACITY klines)."""
    return max(MIN_RING_CAPACITY, 2 * limit)


def sync_start(now_ms: int, tf_ms: int, limit: int, next_open_ms: int | None) -> tuple[int, bool]:
    """(first open time to fetch, whether klines from `next_open_ms` up to it are given up).

    The window is the newest `limit` klines, the one in progress included; `next_open_ms` is the
    open the ring expects next (None: nothing expected yet, a first bootstrap).
    """
    window_start = (now_ms // tf_ms - (limit - 1)) * tf_ms
    if next_open_ms is None:
        return window_start, False
    return (window_start, True) if next_open_ms < window_start else (next_open_ms, False)


def page_limit(cursor_ms: int, upto_ms: int, tf_ms: int, cap: int) -> int:
    """Klines opening in [cursor, upto], capped to one request; 0 when none."""
    if upto_ms < cursor_ms:
        return 0
    return min(cap, (upto_ms - cursor_ms) // tf_ms + 1)


def classify(last_open_ms: int | None, open_ms: int, tf_ms: int) -> str:
    """A closed kline against the ring's newest: 'first', 'dup' (not newer), 'next', or 'gap'."""
    if last_open_ms is None:
        return "first"
    if open_ms <= last_open_ms:
        return "dup"
    return "next" if open_ms == last_open_ms + tf_ms else "gap"


def is_due(now_ms: int, next_open_ms: int, tf_ms: int, grace_ms: int) -> bool:
    """The kline expected next has been closed for `grace_ms` (and the stream did not bring it)."""
    return now_ms >= next_open_ms + tf_ms + grace_ms


def kline_doc(rec) -> dict:
    """A KLINE record as a JSON-ready dict of its fields."""
    return {name: rec[name].item() for name in KLINE.names}
