"""Time bars on trade (exchange) time: pure, incremental, fed with arrays of TRADE records.

Definitions (DESIGN.md "Features"):
- a bar of timeframe `tf` covers `[k·tf, (k+1)·tf)` in epoch time, bucketed on `ts_event_ns`;
- open/high/low/close from trade prices in arrival order; volume = Σqty; buy_volume = Σqty of
  taker buys (side +1, Binance `m=false`), sell_volume = Σqty of taker sells; delta = buy − sell;
  notional = Σprice·qty; vwap = notional / volume; trades = number of trade records;
- a bar closes when a trade of a later bucket arrives, or when the event clock passes its end by
  the grace period (`BAR_LATE_GRACE_MS`), whichever is first;
- a bucket with no trade still yields a bar: OHLC flat at the previous close, zero volume, vwap null;
- late trades (a bucket already closed) are not applied to any bar: they are counted in `late`
  and still reach CVD (which is not bucketed). The first bar after start is marked `partial`.
Gap records must be filtered out by the caller.
"""
from __future__ import annotations

import numpy as np

from actors.features import seq_sum
from ipc.names import tf_sec

MAX_EMPTY_FILL = 1000   # after a long outage, do not emit more empty bars than this at once



class BarBuilder:
    def __init__(self, tf: str, venue: str, grace_ns: int = 0):
        self.tf, self.venue = tf, venue
        self.tf_ns = tf_sec(tf) * 1_000_000_000
        self.grace_ns = grace_ns
        self.bucket: int | None = None   # open bucket index (start = bucket·tf_ns)
        self.late = 0
        self.last_close: float | None = None
        self._partial = True
        self._reset_acc()

    def _reset_acc(self) -> None:
        self.o = self.h = self.l = self.c = None
        self.volume = self.buy = self.sell = self.notional = 0.0
        self.trades = 0
        self.first_id = self.last_id = None

    # --- incremental updates ------------------------------------------------------------
    def update(self, trades: np.ndarray) -> list[dict]:
        """Apply trades in arrival order; return the bars this closed, oldest first."""
        if len(trades) == 0:
            return []
        bucket = trades["ts_event_ns"] // self.tf_ns
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(trades)]))
        closed: list[dict] = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            k = int(bucket[a])
            if self.bucket is None:
                self.bucket = k
            elif k < self.bucket:
                self.late += b - a
                continue
            elif k > self.bucket:
                closed.extend(self._advance_to(k))
            self._add(trades[a:b])
        return closed

    def close_due(self, clock_ns: int) -> list[dict]:
        """Close the open bar (and fill empty ones) once the event clock is past end + grace."""
        if self.bucket is None:
            return []
        k = (clock_ns - self.grace_ns) // self.tf_ns
        return self._advance_to(k) if k > self.bucket else []

    def _advance_to(self, k: int) -> list[dict]:
        out = [self._close()]
        self.bucket += 1
        if k - self.bucket > MAX_EMPTY_FILL:
            self.bucket = k - MAX_EMPTY_FILL
        while self.bucket < k:
            out.append(self._close())
            self.bucket += 1
        return out

    def _add(self, t: np.ndarray) -> None:
        p, q, side = t["price"], t["qty"], t["side"]
        if self.trades == 0:
            self.o = float(p[0])
            self.h = float(p.max())
            self.l = float(p.min())
            self.first_id = int(t["trade_id"][0])
        else:
            self.h = max(self.h, float(p.max()))
            self.l = min(self.l, float(p.min()))
        self.c = float(p[-1])
        buy = side > 0
        self.volume = seq_sum(self.volume, q)
        self.buy = seq_sum(self.buy, q[buy])
        self.sell = seq_sum(self.sell, q[~buy])
        self.notional = seq_sum(self.notional, p * q)
        self.trades += len(t)
        self.last_id = int(t["trade_id"][-1])

    def _close(self) -> dict:
        bar = self.snapshot(closed=True)
        if self.c is not None:
            self.last_close = self.c
        self._partial = False
        self._reset_acc()
        return bar

    # --- views --------------------------------------------------------------------------------
    def snapshot(self, closed: bool = False) -> dict | None:
        if self.bucket is None:
            return None
        start = self.bucket * self.tf_ns
        if self.trades:
            o, h, l, c = self.o, self.h, self.l, self.c
            vwap = self.notional / self.volume if self.volume > 0 else None
        else:
            o = h = l = c = self.last_close
            vwap = None
        return {"tf": self.tf, "venue": self.venue, "start_ns": start, "end_ns": start + self.tf_ns,
                "open": o, "high": h, "low": l, "close": c, "volume": self.volume,
                "buy_volume": self.buy, "sell_volume": self.sell, "delta": self.buy - self.sell,
                "notional": self.notional, "vwap": vwap, "trades": self.trades,
                "first_trade_id": self.first_id, "last_trade_id": self.last_id,
                "closed": closed, "partial": self._partial}
