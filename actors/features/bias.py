"""Bias: a multi-timeframe direction score in [−1, 1] from closed klines. Pure, incremental.

Per timeframe, over its closed klines in open-time order, close c_i, high h_i, low l_i (i = 1..m),
with n = BIAS_EMA_N and α = 2 / (n + 1):
- EMA: e_n = (c_1 + … + c_n) / n (the SMA seed), then e_i = e_{i−1} + α·(c_i − e_{i−1});
- true range, from the second kline: TR_i = max(h_i − l_i, |h_i − c_{i−1}|, |l_i − c_{i−1}|);
- ATR (Wilder): a_{n+1} = (TR_2 + … + TR_{n+1}) / n, then a_i = a_{i−1} + (TR_i − a_{i−1}) / n;
- direction d = tanh(k·(c_m − e_m) / a_m), k = BIAS_K: the newest close's distance from its EMA
  in ATRs, squashed into (−1, 1); 1 ATR above the EMA gives tanh(k).
Ready once m ≥ n + 1 consecutive closed klines were seen; None with a reason before, or when
a_m = 0. Combination: score = Σ w_tf·d_tf / Σ w_tf over the timeframes of BIAS_WEIGHTS
(`tf:weight,…`, weights ≥ 0; default equal weights on 1m, 5m, 15m and 1h, the CONTEXT_TFS); a convex
combination, so score ∈ [−1, 1]. The score is None, with the timeframes that are not ready,
until every timeframe of positive weight is ready: it never silently covers fewer timeframes.
Klines: KLINE records of any timeframe (routed by `tf_sec`; those of timeframes without a weight
are ignored). An open kline (`closed` 0) is ignored; a kline not newer than the newest one seen
is a duplicate (counted, ignored); a kline that does not open where the previous one closed
(a hole: context writes a gap marker first) restarts that timeframe's warm-up, so no EMA or ATR
spans missing klines.
Parameters (settings): BIAS_EMA_N, BIAS_K, BIAS_WEIGHTS. Gap records must be filtered out by the
caller.
"""
from __future__ import annotations

import math

import numpy as np

from ipc.names import tf_sec

def parse_weights(text: str) -> dict[str, float]:
    """'1m:1,5m:2' → {'1m': 1.0, '5m': 2.0}; raises ValueError on a bad entry."""
    out: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        tf, sep, w = item.partition(":")
        tf = tf.strip()
        tf_sec(tf)
        if not sep:
            raise ValueError(f"bias weight {item!r} is not tf:weight")
        v = float(w)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"bias weight of {tf} must be ≥ 0, got {w!r}")
        out[tf] = v
    if not any(v > 0 for v in out.values()):
        raise ValueError(f"no positive bias weight in {text!r}")
    return out


class TfDirection:
    """EMA/ATR state and direction of one timeframe."""

    def __init__(self, tf: str, n: int, k: float):
        self.tf, self.n, self.k = tf, n, k
        self.tf_ns = tf_sec(tf) * 1_000_000_000
        self.alpha = 2.0 / (n + 1)
        self.restarts = 0
        self.dups = 0
        self._clear()

    def _clear(self) -> None:
        self.m = 0
        self.csum = 0.0           # Σ closes for the SMA seed
        self.trsum = 0.0          # Σ TR for the ATR seed
        self.ema: float | None = None
        self.atr: float | None = None
        self.prev_close: float | None = None
        self.last_open_ns: int | None = None
        self.last_close_ns: int | None = None
        self.last_recv_ns: int | None = None

    def add(self, open_ns: int, close_ns: int, recv_ns: int, h: float, l: float, c: float) -> None:
        if self.last_open_ns is not None:
            if open_ns <= self.last_open_ns:
                self.dups += 1
                return
            if open_ns != self.last_open_ns + self.tf_ns:
                self._clear()
                self.restarts += 1
        n = self.n
        self.m += 1
        m = self.m
        if m >= 2:
            pc = self.prev_close
            tr = max(h - l, abs(h - pc), abs(l - pc))
            if m <= n + 1:
                self.trsum += tr
                if m == n + 1:
                    self.atr = self.trsum / n
            else:
                self.atr += (tr - self.atr) / n
        if m <= n:
            self.csum += c
            if m == n:
                self.ema = self.csum / n
        else:
            self.ema += self.alpha * (c - self.ema)
        self.prev_close = c
        self.last_open_ns, self.last_close_ns, self.last_recv_ns = open_ns, close_ns, recv_ns

    def snapshot(self) -> dict:
        out = {"direction": None, "close": self.prev_close, "ema": self.ema, "atr": self.atr,
               "klines": self.m, "last_open_ns": self.last_open_ns,
               "last_close_ns": self.last_close_ns, "dups": self.dups, "restarts": self.restarts}
        if self.m < self.n + 1:
            out["reason"] = (f"warming up: {self.m} of {self.n + 1} klines" if self.m
                             else "no closed kline yet")
        elif not self.atr > 0:
            out["reason"] = "zero ATR"
        else:
            out["direction"] = math.tanh(self.k * (self.prev_close - self.ema) / self.atr)
        return out


class Bias:
    def __init__(self, weights: dict[str, float] | str, n: int = 20, k: float = 1.0):
        if isinstance(weights, str):
            weights = parse_weights(weights)
        if n < 1:
            raise ValueError(f"EMA length must be ≥ 1, got {n}")
        self.weights = dict(weights)
        self.n, self.k = int(n), float(k)
        self.tfs = {tf: TfDirection(tf, self.n, self.k) for tf in self.weights}
        self._by_sec = {t.tf_ns // 1_000_000_000: t for t in self.tfs.values()}

    @classmethod
    def from_settings(cls, s) -> "Bias":
        return cls(weights=s.features.bias_weights, n=s.features.bias_ema_n, k=s.features.bias_k)

    def update(self, klines: np.ndarray) -> None:
        """Apply KLINE records (any mix of timeframes), oldest first within each timeframe."""
        if len(klines) == 0:
            return
        cols = (klines[f].tolist() for f in ("tf_sec", "closed", "open_time_ns", "close_time_ns",
                                             "ts_recv_ns", "high", "low", "close"))
        for tf_sec, closed, o, cl, recv, h, l, c in zip(*cols):
            t = self._by_sec.get(tf_sec)
            if t is None or not closed:
                continue
            t.add(o, cl, recv, h, l, c)

    def snapshot(self, now_ns: int | None = None) -> dict:
        per = {}
        for tf, t in self.tfs.items():
            per[tf] = t.snapshot()
            per[tf]["weight"] = self.weights[tf]
            if now_ns is not None and t.last_recv_ns is not None:
                per[tf]["age_ms"] = (now_ns - t.last_recv_ns) / 1e6
        out = {"score": None, "n": self.n, "k": self.k, "tfs": per}
        missing = [tf for tf, w in self.weights.items() if w > 0 and per[tf]["direction"] is None]
        if missing:
            out["reason"] = "not ready: " + ", ".join(f"{tf} ({per[tf]['reason']})"
                                                      for tf in missing)
            return out
        num = den = 0.0
        for tf, w in self.weights.items():
            if w > 0:
                num += w * per[tf]["direction"]
                den += w
        out["score"] = num / den
        return out
