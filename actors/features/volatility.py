"""Realised volatility: EWMA of 1 s log returns of the last trade price, fast and slow. Pure,
incremental.

Sampling, on exchange time (`ts_event_ns` of TRADE records):
- second k covers `[k·1s, (k+1)·1s)`. Its sample P_k is the price of the last trade (in arrival
  order) whose event time falls in second k; a second without a trade carries P_{k−1} forward;
- second k is final once a trade of a later second arrives (`update`) or once the exchange clock
  passed its end (`close_due(clock_ns)`: every second k with (k+1)·1s ≤ clock_ns). Only final
  seconds are used: the value never depends on how the records were chunked. compute passes
  its exchange-clock estimate (now − feed latency, less BAR_LATE_GRACE_MS to wait for stragglers,
  as for bars), so σ keeps decaying while the tape is quiet;
- the first final second gives the first sample and no return; every later final second gives
  r_k = ln(P_k / P_{k−1}), which is exactly 0 over a carried (trade-less) second. A hole in the
  data is therefore a run of zero returns followed by one return holding the whole move;
  `reset()` restarts from nothing if the caller prefers that after a gap marker;
- a trade of a second that is already final is late: counted in `late`, not applied.

EWMA of r², zero mean, weights normalised so that no seed value is invented: for a half-life of
H seconds, λ = 2^(−1/H), and over the returns r_1..r_n
    S_n = λ·S_{n−1} + r_n²,  W_n = λ·W_{n−1} + 1  (S_0 = W_0 = 0),  var_n = S_n / W_n,
i.e. the λ^age-weighted mean of r². Once W ≈ 1/(1−λ) this is the usual
var_n = λ·var_{n−1} + (1−λ)·r_n². A run of m carried seconds (m zero returns) is applied in closed
form, S ← λ^m·S and W ← λ^m·W + (1 − λ^m)/(1 − λ), so a long quiet stretch costs O(1).
σ = sqrt(var) in log-return units per √second (a fraction: 1e−4 is 1 bp per √s);
σ_ann = σ·sqrt(31_536_000) (365 days of 24 h: the venue trades around the clock);
σ_blend = w·σ_fast + (1 − w)·σ_slow.
Every σ is None (reason "warming up") until `warmup` returns were taken.

Parameters (settings): VOL_HALFLIFE_FAST_SEC, VOL_HALFLIFE_SLOW_SEC, VOL_BLEND_FAST_WEIGHT,
VOL_WARMUP_SAMPLES. Gap records must be filtered out by the caller.
"""
from __future__ import annotations

import math

import numpy as np

SEC_NS = 1_000_000_000
YEAR_SEC = 365 * 86_400


class Ewma:
    """Normalised EWMA of squared returns, with O(1) runs of zero returns."""

    def __init__(self, halflife_sec: float):
        if not halflife_sec > 0:
            raise ValueError(f"half-life must be > 0, got {halflife_sec}")
        self.halflife_sec = float(halflife_sec)
        self.lam = 2.0 ** (-1.0 / halflife_sec)
        self.s = 0.0
        self.w = 0.0

    def add(self, r: float) -> None:
        self.s = self.lam * self.s + r * r
        self.w = self.lam * self.w + 1.0

    def add_zeros(self, m: int) -> None:
        if m <= 0:
            return
        f = self.lam ** m
        self.s *= f
        self.w = f * self.w + (1.0 - f) / (1.0 - self.lam)

    @property
    def var(self) -> float | None:
        return self.s / self.w if self.w > 0 else None


class Volatility:
    def __init__(self, halflife_fast_sec: float = 30.0, halflife_slow_sec: float = 300.0,
                 blend_fast_weight: float = 0.5, warmup: int = 30):
        if not 0.0 <= blend_fast_weight <= 1.0:
            raise ValueError(f"blend weight must be in [0, 1], got {blend_fast_weight}")
        self.fast = Ewma(halflife_fast_sec)
        self.slow = Ewma(halflife_slow_sec)
        self.w = float(blend_fast_weight)
        self.warmup = int(warmup)
        self.reset()

    @classmethod
    def from_settings(cls, s) -> "Volatility":
        return cls(halflife_fast_sec=s.features.vol_halflife_fast_sec, halflife_slow_sec=s.features.vol_halflife_slow_sec,
                   blend_fast_weight=s.features.vol_blend_fast_weight, warmup=s.features.vol_warmup_samples)

    def reset(self) -> None:
        """Forget everything (prices, returns, EWMA state); warm-up starts again."""
        self.fast.s = self.fast.w = self.slow.s = self.slow.w = 0.0
        self.sec: int | None = None       # the open (not yet final) second
        self.cur: float | None = None     # price in effect now (last trade applied)
        self.last_p: float | None = None  # sample of the newest final second
        self.samples = 0                  # final seconds
        self.returns = 0                  # returns taken (samples − 1 once started)
        self.late = 0
        self.last_trade_ts_ns: int | None = None
        self.last_trade_recv_ns: int | None = None

    # --- incremental updates ------------------------------------------------------------
    def update(self, trades: np.ndarray) -> None:
        """Apply TRADE records in arrival order."""
        n = len(trades)
        if n == 0:
            return
        ts = trades["ts_event_ns"]
        price = trades["price"]
        sec = ts // SEC_NS
        cuts = np.flatnonzero(np.diff(sec)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [n])) - 1         # last index of each run of one second
        for k, p, a, i in zip(sec[ends].tolist(), price[ends].tolist(), starts.tolist(),
                              ends.tolist()):
            if self.sec is None:
                self.sec = k
            elif k < self.sec:            # the run's second is already final
                self.late += i + 1 - a
                continue
            elif k > self.sec:
                self._finalize_to(k)
            self.cur = p
            self.last_trade_ts_ns = int(ts[i])
            self.last_trade_recv_ns = int(trades["ts_recv_ns"][i])

    def close_due(self, clock_ns: int) -> None:
        """Finalise every second that ended at or before the exchange clock `clock_ns`."""
        if self.sec is None:
            return
        k = clock_ns // SEC_NS
        if k > self.sec:
            self._finalize_to(k)

    def _finalize_to(self, k: int) -> None:
        """Seconds self.sec .. k−1 become final; second k is the open one."""
        m = k - self.sec                  # number of seconds turning final, ≥ 1
        if self.last_p is not None:       # the very first sample gives no return
            r = math.log(self.cur / self.last_p)
            self.fast.add(r)
            self.slow.add(r)
            self.returns += 1
        self.samples += 1
        m -= 1
        if m > 0:                         # carried seconds: zero returns
            self.fast.add_zeros(m)
            self.slow.add_zeros(m)
            self.samples += m
            self.returns += m
        self.last_p = self.cur
        self.sec = k

    # --- views --------------------------------------------------------------------------------
    def sigma_fast(self) -> float | None:
        """σ_fast per √second once warm, else None (what Impulse needs)."""
        if self.returns < self.warmup or self.fast.var is None:
            return None
        return math.sqrt(self.fast.var)

    def snapshot(self, now_ns: int | None = None) -> dict:
        out = {"halflife_fast_sec": self.fast.halflife_sec,
               "halflife_slow_sec": self.slow.halflife_sec, "blend_fast_weight": self.w,
               "returns": self.returns, "warmup": self.warmup, "samples": self.samples,
               "price": self.last_p, "late": self.late,
               # end of the newest final second: the values cover the tape up to here
               "sample_end_ns": None if self.last_p is None else self.sec * SEC_NS,
               "last_trade_ts_ns": self.last_trade_ts_ns,
               "last_trade_recv_ns": self.last_trade_recv_ns,
               "age_ms": (None if now_ns is None or self.last_trade_recv_ns is None
                          else (now_ns - self.last_trade_recv_ns) / 1e6)}
        names = ("sigma_fast", "sigma_slow", "sigma_blend",
                 "sigma_fast_ann", "sigma_slow_ann", "sigma_blend_ann")
        if self.returns < self.warmup:
            out.update(dict.fromkeys(names))
            out["reason"] = (f"warming up: {self.returns} of {self.warmup} one-second returns"
                             if self.samples else "no trade yet")
            return out
        f = math.sqrt(self.fast.var)
        s = math.sqrt(self.slow.var)
        b = self.w * f + (1.0 - self.w) * s
        ann = math.sqrt(YEAR_SEC)
        out.update(sigma_fast=f, sigma_slow=s, sigma_blend=b,
                   sigma_fast_ann=f * ann, sigma_slow_ann=s * ann, sigma_blend_ann=b * ann)
        return out
