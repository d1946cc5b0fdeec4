"""Anchored VWAP with its volume-weighted standard deviation and the last price's deviation. Pure,
incremental.

Definitions (DESIGN.md "Features"), over the trades with `ts_event_ns ≥ anchor_ns`:
- vwap = Σp·q / Σq;
- σ_vwap = sqrt(Σq·p² / Σq − vwap²), the volume-weighted standard deviation of the trade prices;
- last = price of the newest trade summed; dev_bps = (last − vwap) / vwap · 1e4;
  dev_sigma = (last − vwap) / σ_vwap (None while σ_vwap = 0: all volume at one price).
Computed with prices shifted by p0, the first price after the anchor (d = p − p0):
vwap = p0 + Σq·d / Σq and σ² = Σq·d² / Σq − (Σq·d / Σq)², the same quantities without the
cancellation of Σq·p² − Σq·vwap² at BTC prices (σ² is clamped at 0 against rounding).
Anchor, as flow.Cvd: by default the UTC session start (00:00 UTC of the day of the largest event
time of a chunk): a chunk reaching a later UTC day moves the anchor there and restarts the sums,
and its trades before the new anchor are ignored. `reset(anchor_ns)` (from
`/control/anchor/reset`) sets an explicit anchor that stays until the next reset. `from_ns` is the
event time of the first trade summed: later than the anchor when compute started mid-session.
None with a reason until a trade with positive quantity has been summed.
Gap records must be filtered out by the caller.
"""
from __future__ import annotations

import math

import numpy as np

from actors.features import seq_sum

from actors.features.flow import Anchored


class AnchoredVwap(Anchored):
    def _clear(self) -> None:
        self.p0: float | None = None
        self.q = self.qd = self.qd2 = 0.0
        self.trades = 0
        self.from_ns: int | None = None
        self.last_price: float | None = None
        self.last_ts_ns: int | None = None
        self.last_recv_ns: int | None = None

    def update(self, trades: np.ndarray) -> None:
        trades = self._since_anchor(trades)
        if trades is None:
            return
        p, q = trades["price"], trades["qty"]
        if self.p0 is None:
            self.p0 = float(p[0])
            self.from_ns = int(trades["ts_event_ns"][0])
        d = p - self.p0
        qd = q * d
        self.q = seq_sum(self.q, q)
        self.qd = seq_sum(self.qd, qd)
        self.qd2 = seq_sum(self.qd2, qd * d)
        self.trades += len(trades)
        self.last_price = float(p[-1])
        self.last_ts_ns = int(trades["ts_event_ns"][-1])
        self.last_recv_ns = int(trades["ts_recv_ns"][-1])

    def snapshot(self, now_ns: int | None = None) -> dict:
        out = {"vwap": None, "sigma": None, "dev_bps": None, "dev_sigma": None,
               "last_price": self.last_price, "volume": self.q, "trades": self.trades,
               "anchor_ns": self.anchor_ns, "explicit": self.explicit, "from_ns": self.from_ns,
               "last_trade_ts_ns": self.last_ts_ns,
               "age_ms": (None if now_ns is None or self.last_recv_ns is None
                          else (now_ns - self.last_recv_ns) / 1e6)}
        if not self.q > 0:
            out["reason"] = ("no trade since the anchor" if self.trades == 0
                             else "no volume since the anchor")
            return out
        m = self.qd / self.q
        vwap = self.p0 + m
        var = max(0.0, self.qd2 / self.q - m * m)
        sigma = math.sqrt(var)
        diff = (self.last_price - self.p0) - m        # last − vwap, without cancellation
        out.update(vwap=vwap, sigma=sigma, dev_bps=diff / vwap * 1e4)
        if sigma > 0:
            out["dev_sigma"] = diff / sigma
        else:
            out["dev_sigma_reason"] = "zero price dispersion since the anchor"
        return out
