"""The last guard before the feature math: records whose values no feature can use are dropped and
counted, so one insane value never kills compute (`math domain error` in a log return) and never
poisons a running sum for the rest of the day (a NaN in Σp·q). Pure.

The venue parsers (actors/venues/) already reject such values with a reason; this guard is for a
value that slipped through (another writer, an older feed, a parser bug). Reasons, per record kind:
- trade: `price` (not finite, ≤ 0 or over MAX_TRADE_VALUE), `qty` (the same), `side` (not ±1):
  the bound keeps a price or quantity within the exact integer sums' range (actors/features/exact:
  int64 units of 1e-8), where a larger one would wrap CVD or VWAP silently;
- quote: `bid` / `ask` (not finite or ≤ 0), `qty` (a size not finite or < 0).
A record failing several checks is counted once, under the first reason in that order.
"""
from __future__ import annotations

import numpy as np


MAX_TRADE_VALUE = 1e10        # 1e18 units of 1e-8: within int64 (9.2e18), with room for a sum


def _positive(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x > 0)


def _in_range(x: np.ndarray) -> np.ndarray:
    return _positive(x) & (x <= MAX_TRADE_VALUE)


def _checks(recs: np.ndarray, kind: str) -> list[tuple[str, np.ndarray]]:
    if kind == "trade":
        return [("price", _in_range(recs["price"])), ("qty", _in_range(recs["qty"])),
                ("side", (recs["side"] == 1) | (recs["side"] == -1))]
    return [("bid", _positive(recs["bid"])), ("ask", _positive(recs["ask"])),
            ("qty", np.isfinite(recs["bid_qty"]) & (recs["bid_qty"] >= 0)
             & np.isfinite(recs["ask_qty"]) & (recs["ask_qty"] >= 0))]


def sane(recs: np.ndarray, kind: str, counts: dict[str, int]) -> np.ndarray:
    """`recs` without the insane records of `kind` ("trade" or "quote"); each dropped record adds 1
    to `counts["<kind>:<reason>"]`."""
    if len(recs) == 0:
        return recs
    ok = np.ones(len(recs), dtype=bool)
    for reason, good in _checks(recs, kind):
        bad = ok & ~good
        n = int(bad.sum())
        if n:
            key = f"{kind}:{reason}"
            counts[key] = counts.get(key, 0) + n
            ok &= good
    return recs if ok.all() else recs[ok]
