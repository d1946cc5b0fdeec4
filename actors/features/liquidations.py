"""Liquidations (forceOrder): rolling long/short notional, large ones flagged. Pure, incremental.

Definitions (DESIGN.md "Features"), from LIQUIDATION records:
- notional = avg_price · filled_qty (USD) when both are > 0, else price · qty (the order's
  limit price and original quantity: an order not yet filled);
- side −1 (the liquidation order sells) liquidates a long; side +1 (it buys) a short;
- the window holds the records with now_ns − W < ts_recv_ns ≤ now_ns (W = window_sec): receive
  time against the local clock `now_ns`, so the window empties on a quiet tape without any new
  record (Binance sends at most one forceOrder per symbol per second, so the window is small);
- long_notional / short_notional = Σnotional of each side in the window; long_count /
  short_count; net_notional = short − long (positive: shorts being squeezed); largest = the record
  of largest notional in the window (None with a reason when the window is empty);
- large: notional ≥ large_usd. The newest `keep` large liquidations are listed (newest first)
  whether or not they are still in the window, each with its age;
- `from_ns`: receive time of the first record, or the start time given; `full_window` is false
  while now_ns − from_ns < W, i.e. the sums may cover less than W (zero sums are then still true
  for the time covered, not made up).
Gap records must be filtered out by the caller.

Parameters (settings): LIQ_WINDOW_SEC, LIQ_LARGE_USD, LIQ_LARGE_KEEP.
"""
from __future__ import annotations

from collections import deque

import numpy as np

SEC_NS = 1_000_000_000


def notional(avg_price: float, filled_qty: float, price: float, qty: float) -> float:
    if avg_price > 0 and filled_qty > 0:
        return avg_price * filled_qty
    return price * qty


class Liquidations:
    def __init__(self, window_sec: float = 300.0, large_usd: float = 100_000.0, keep: int = 10,
                 start_ns: int | None = None):
        self.window_ns = int(window_sec * SEC_NS)
        self.window_sec = float(window_sec)
        self.large_usd = float(large_usd)
        self.win: deque[dict] = deque()                 # in the window, arrival order
        self.large: deque[dict] = deque(maxlen=keep)    # newest last
        self.from_ns = start_ns
        self.total = 0
        self.last_recv_ns: int | None = None

    @classmethod
    def from_settings(cls, s, start_ns: int | None = None) -> "Liquidations":
        return cls(window_sec=s.features.liq_window_sec, large_usd=s.features.liq_large_usd, keep=s.features.liq_large_keep,
                   start_ns=start_ns)

    def update(self, recs: np.ndarray) -> None:
        if len(recs) == 0:
            return
        cols = (recs[f].tolist() for f in ("ts_event_ns", "ts_recv_ns", "trade_time_ns", "side",
                                           "price", "avg_price", "qty", "filled_qty"))
        for ts, recv, tt, side, p, ap, q, z in zip(*cols):
            n = notional(ap, z, p, q)
            liq = {"ts_event_ns": ts, "ts_recv_ns": recv, "trade_time_ns": tt, "side": side,
                   "liquidated": "long" if side < 0 else "short", "price": p,
                   "avg_price": ap, "qty": q, "filled_qty": z, "notional": n,
                   "large": n >= self.large_usd}
            self.win.append(liq)
            if liq["large"]:
                self.large.append(liq)
        self.total += len(recs)
        self.last_recv_ns = int(recs["ts_recv_ns"][-1])
        if self.from_ns is None:
            self.from_ns = int(recs["ts_recv_ns"][0])
        self._expire(self.win[-1]["ts_recv_ns"])        # bounds memory between snapshots

    def _expire(self, now_ns: int) -> None:
        cut = now_ns - self.window_ns
        while self.win and self.win[0]["ts_recv_ns"] <= cut:
            self.win.popleft()

    def snapshot(self, now_ns: int) -> dict:
        self._expire(now_ns)
        long_n = short_n = 0.0
        long_c = short_c = 0
        largest = None
        for liq in self.win:
            if liq["ts_recv_ns"] > now_ns:
                continue                                # not yet in a window ending at now_ns
            if liq["side"] < 0:
                long_n += liq["notional"]
                long_c += 1
            else:
                short_n += liq["notional"]
                short_c += 1
            if largest is None or liq["notional"] > largest["notional"]:
                largest = liq
        out = {"window_sec": self.window_sec, "large_usd": self.large_usd,
               "long_notional": long_n, "short_notional": short_n,
               "net_notional": short_n - long_n, "long_count": long_c, "short_count": short_c,
               "count": long_c + short_c, "total": self.total, "from_ns": self.from_ns,
               "last_recv_ns": self.last_recv_ns,
               "age_ms": None if self.last_recv_ns is None else (now_ns - self.last_recv_ns) / 1e6,
               "full_window": self.from_ns is not None and now_ns - self.from_ns >= self.window_ns,
               "largest": None if largest is None else self._view(largest, now_ns),
               "large": [self._view(x, now_ns) for x in reversed(self.large)]}
        if largest is None:
            out["largest_reason"] = f"no liquidation in the last {self.window_sec:g} s"
        return out

    @staticmethod
    def _view(liq: dict, now_ns: int) -> dict:
        v = dict(liq)
        v["age_ms"] = (now_ns - liq["ts_recv_ns"]) / 1e6
        return v
