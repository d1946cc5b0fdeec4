"""Anchored VWAP with its volume-weighted standard deviation and the last price's deviation. Pure,
incremental.

Definitions (DESIGN.md "Features"), over the trades with `ts_event_ns ≥ anchor_ns`:
- vwap = Σp·q / Σq;
- σ_vwap = sqrt(Σq·p² / Σq − vwap²), the volume-weighted standard deviation of the trade prices;
- last = price of the newest trade summed; dev_bps = (last − vwap) / vwap · 1e4;
  dev_sigma = (last − vwap) / σ_vwap (None while σ_vwap = 0: all volume at one price).
Computed from exact integer sums (actors/features/exact.py) Σq, Σq·p, Σq·p²: vwap = Σq·p / Σq and
σ² = (Σq·Σq·p² − (Σq·p)²) / (Σq)², each one correctly rounded division, so there is no cancellation
at BTC prices, and chunking never changes a value. After a warm-up from 1m klines (actors/warmup.py)
Σq and Σq·p are exact (volume, quote volume) but Σq·p² of those minutes is taken at each minute's
VWAP: σ is then a lower bound, and the snapshot says so (`sigma_exact` false, `kline_minutes`).
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

from actors.features.exact import SCALE, qp_sums, units

from actors.features.flow import Anchored


class AnchoredVwap(Anchored):
    def _clear(self) -> None:
        self.q = self.s1 = self.s2 = 0        # Σq (1e-8), Σq·p (1e-16), Σq·p² (1e-24): exact
        self.trades = 0
        self.kline_minutes = 0                # minutes summed from klines (σ: see below)
        self.from_ns: int | None = None
        self.last_units: int | None = None
        self.last_price: float | None = None
        self.last_ts_ns: int | None = None
        self.last_recv_ns: int | None = None

    def update(self, trades: np.ndarray) -> None:
        trades = self._since_anchor(trades)
        if trades is None:
            return
        p, q = units(trades["price"]), units(trades["qty"])
        if self.from_ns is None:
            self.from_ns = int(trades["ts_event_ns"][0])
        self.q += int(q.sum())
        s1, s2 = qp_sums(q, p)
        self.s1 += s1
        self.s2 += s2
        self.trades += len(trades)
        self.last_units = int(p[-1])
        self.last_price = float(trades["price"][-1])
        self.last_ts_ns = int(trades["ts_event_ns"][-1])
        self.last_recv_ns = int(trades["ts_recv_ns"][-1])

    def warm(self, anchor_ns: int, q_units: int, qp_units: int, qp2_units: int, minutes: int,
             last_units: int | None, last_ts_ns: int | None) -> None:
        """Start from sums rebuilt from `minutes` 1m klines since `anchor_ns`: Σq (volume), Σq·p
        (quote volume) exact, Σq·p² from each minute's own VWAP (the dispersion inside those
        minutes is not in a kline: σ is then a lower bound, flagged `sigma_exact` false)."""
        self.anchor_ns = anchor_ns
        self._clear()
        self.q, self.s1, self.s2, self.kline_minutes = q_units, qp_units, qp2_units, minutes
        self.from_ns = anchor_ns
        if last_units is not None:
            self.last_units, self.last_price = last_units, last_units / SCALE
            self.last_ts_ns = last_ts_ns

    def snapshot(self, now_ns: int | None = None) -> dict:
        out = {"vwap": None, "sigma": None, "dev_bps": None, "dev_sigma": None,
               "last_price": self.last_price, "volume": self.q / SCALE, "trades": self.trades,
               "anchor_ns": self.anchor_ns, "explicit": self.explicit, "from_ns": self.from_ns,
               "last_trade_ts_ns": self.last_ts_ns, "sigma_exact": self.kline_minutes == 0,
               "kline_minutes": self.kline_minutes,
               "age_ms": (None if now_ns is None or self.last_recv_ns is None
                          else (now_ns - self.last_recv_ns) / 1e6)}
        if not self.q > 0 or self.s1 <= 0:
            out["reason"] = ("no trade since the anchor" if self.trades == 0 and not self.kline_minutes
                             else "no volume since the anchor")
            return out
        q, s1 = self.q, self.s1
        vwap = s1 / (q * SCALE)
        # σ² = Σq·p²/Σq − vwap², as one exact fraction (no cancellation, never negative)
        sigma = math.sqrt(max(0, q * self.s2 - s1 * s1) / (q * q * SCALE * SCALE))
        out.update(vwap=vwap, sigma=sigma)
        if self.last_units is None:
            return out
        diff_num = self.last_units * q - s1                 # (last − vwap)·Σq, in 1e-16
        out["dev_bps"] = diff_num * 10_000 / s1
        if sigma > 0:
            out["dev_sigma"] = diff_num / (q * SCALE) / sigma
        else:
            out["dev_sigma_reason"] = "zero price dispersion since the anchor"
        return out
