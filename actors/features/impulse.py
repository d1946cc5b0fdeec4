"""Impulse: the return over the last H seconds in units of the current volatility. Pure,
incremental.

Definitions, on exchange time (`ts_event_ns` of TRADE records):
- t = the event time of the newest trade, or the exchange clock passed to `snapshot(clock_ns=…)`
  when that is later (so a quiet tape decays the impulse instead of freezing it);
- P_now = price of the newest trade (the price in effect at t);
- P_ref = price of the last trade with ts_event_ns ≤ t − H·1s (the price in effect H seconds
  earlier; among trades of equal event time the last to arrive wins);
- ret = ln(P_now / P_ref); ret_bps = (P_now / P_ref − 1)·1e4;
- z = ret / (σ·√H), σ the current fast volatility per √second (Volatility.sigma_fast(), passed in);
- flagged = |z| > threshold; direction = sign(z) when flagged, else 0.
None with a reason while no trade is at or before t − H ("less than H s of trades"), or σ is not
available (volatility warming up) or is 0. A trade whose event time is older than the newest one
already seen is late: counted in `late`, not applied (it cannot change P_ref of a later t).
Memory: one (ts, price) per distinct event time within the last H seconds, plus one.

Parameters (settings): IMPULSE_HORIZON_SEC, IMPULSE_Z_THRESHOLD. Gap records must be filtered out
by the caller.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

SEC_NS = 1_000_000_000


class Impulse:
    def __init__(self, horizon_sec: float = 10.0, threshold: float = 3.0):
        if not horizon_sec > 0:
            raise ValueError(f"horizon must be > 0, got {horizon_sec}")
        self.horizon_sec = float(horizon_sec)
        self.h_ns = int(round(horizon_sec * SEC_NS))
        self.threshold = float(threshold)
        self.hist: deque[tuple[int, float]] = deque()   # (event ns, price), ts non-decreasing
        self.t_ns: int | None = None                     # newest t used (monotonic)
        self.last_recv_ns: int | None = None
        self.late = 0

    @classmethod
    def from_settings(cls, s) -> "Impulse":
        return cls(horizon_sec=s.features.impulse_horizon_sec, threshold=s.features.impulse_z_threshold)

    def update(self, trades: np.ndarray) -> None:
        n = len(trades)
        if n == 0:
            return
        ts = trades["ts_event_ns"]
        # keep the last trade of each run of equal event times
        keep = np.ones(n, dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]
        hist = self.hist
        for t, p in zip(ts[keep].tolist(), trades["price"][keep].tolist()):
            if hist:
                last = hist[-1][0]
                if t < last:
                    self.late += 1
                    continue
                if t == last:
                    hist[-1] = (t, p)
                    continue
            hist.append((t, p))
        self.last_recv_ns = int(trades["ts_recv_ns"][-1])
        if hist:
            self._advance(hist[-1][0])

    def _advance(self, t: int) -> None:
        """Move t forward and drop what no later t can need as P_ref."""
        if self.t_ns is None or t > self.t_ns:
            self.t_ns = t
        cut = self.t_ns - self.h_ns
        hist = self.hist
        while len(hist) >= 2 and hist[1][0] <= cut:
            hist.popleft()

    def snapshot(self, sigma: float | None, clock_ns: int | None = None,
                 now_ns: int | None = None) -> dict:
        out = {"horizon_sec": self.horizon_sec, "threshold": self.threshold, "sigma": sigma,
               "z": None, "flagged": None, "direction": None, "ret_bps": None, "log_ret": None,
               "price": None, "ref_price": None, "ref_ts_ns": None, "t_ns": None,
               "last_trade_ts_ns": self.hist[-1][0] if self.hist else None, "late": self.late,
               "age_ms": (None if now_ns is None or self.last_recv_ns is None
                          else (now_ns - self.last_recv_ns) / 1e6)}
        if not self.hist:
            out["reason"] = "no trade yet"
            return out
        if clock_ns is not None:
            self._advance(clock_ns)
        t = self.t_ns
        ref_ts, ref_p = self.hist[0]
        p_now = self.hist[-1][1]
        out.update(price=p_now, t_ns=t)
        if ref_ts > t - self.h_ns:
            out["reason"] = f"less than {self.horizon_sec:g} s of trades"
            return out
        ret = math.log(p_now / ref_p)
        out.update(ref_price=ref_p, ref_ts_ns=ref_ts, log_ret=ret,
                   ret_bps=(p_now / ref_p - 1.0) * 1e4)
        if sigma is None:
            out["reason"] = "volatility not available (warming up)"
            return out
        if not sigma > 0:
            out["reason"] = "volatility is zero"
            return out
        z = ret / (sigma * math.sqrt(self.horizon_sec))
        flagged = abs(z) > self.threshold
        out.update(z=z, flagged=flagged, direction=(1 if z > 0 else -1) if flagged else 0)
        return out
