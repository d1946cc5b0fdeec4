"""Spike / dip detection on a Polymarket mid (one detector per token: UP and DOWN). Pure,
incremental.

Samples (ts_ns, mid) are fed in time order; a sample older than the newest one is late (counted,
ignored). Feed at a fixed cadence (e.g. every compute tick) for a time-uniform baseline: the
statistics below are per sample, not time-weighted.

With the newest sample (t, m) and W = window_sec, the baseline is every *earlier* sample with
ts ≥ t − W·1s (the newest one is excluded, so a spike does not inflate its own baseline); with
n baseline samples x_1..x_n:
- mean = Σx_i / n;  std = sqrt(Σ(x_i − mean)² / n) (population, ddof 0);
- high = max x_i, low = min x_i;
- std_eff = max(std, min_std) (a floor: Polymarket mids move in ticks and a flat baseline would
  otherwise make any move infinite); z = (m − mean) / std_eff;
- state = "spike" if z > z_threshold, "dip" if z < −z_threshold, else "normal"
  (the range test is the same read as |m − mean| > z_threshold·std_eff).
While n < min_samples: mean/std/z and state are None with reason "warming up: n of min_samples";
when std_eff = 0 (flat baseline, no floor): z None, state "normal" if m == mean else
"spike"/"dip" by sign, with reason "flat baseline".
`reset()` on a window roll (new tokens).

Parameters (settings, `from_settings`): SPIKE_WINDOW_SEC, SPIKE_Z_THRESHOLD, SPIKE_MIN_SAMPLES,
SPIKE_MIN_STD.
"""
from __future__ import annotations

import math
from collections import deque

SEC_NS = 1_000_000_000


class SpikeDetector:
    def __init__(self, window_sec: float = 60.0, z_threshold: float = 3.0, min_samples: int = 20,
                 min_std: float = 0.0):
        if not window_sec > 0:
            raise ValueError(f"window must be > 0, got {window_sec}")
        if not z_threshold > 0:
            raise ValueError(f"z threshold must be > 0, got {z_threshold}")
        if min_samples < 2:
            raise ValueError(f"min_samples must be ≥ 2, got {min_samples}")
        if min_std < 0:
            raise ValueError(f"min_std must be ≥ 0, got {min_std}")
        self.window_ns = int(round(window_sec * SEC_NS))
        self.window_sec = float(window_sec)
        self.z_threshold = float(z_threshold)
        self.min_samples = int(min_samples)
        self.min_std = float(min_std)
        self.reset()

    @classmethod
    def from_settings(cls, s) -> "SpikeDetector":
        return cls(window_sec=s.decisions.spike_window_sec, z_threshold=s.decisions.spike_z_threshold,
                   min_samples=s.decisions.spike_min_samples, min_std=s.decisions.spike_min_std)

    def reset(self) -> None:
        self.buf: deque[tuple[int, float]] = deque()
        self.late = 0

    def update(self, ts_ns: int, mid: float | None) -> None:
        if mid is None or not math.isfinite(mid):
            return
        if self.buf and ts_ns < self.buf[-1][0]:
            self.late += 1
            return
        self.buf.append((int(ts_ns), float(mid)))
        lo = ts_ns - self.window_ns
        while self.buf and self.buf[0][0] < lo:
            self.buf.popleft()

    def snapshot(self, now_ns: int | None = None) -> dict:
        out = {"mid": None, "ts_ns": None, "mean": None, "std": None, "high": None, "low": None,
               "z": None, "state": None, "n": 0, "window_sec": self.window_sec,
               "z_threshold": self.z_threshold, "late": self.late, "age_ms": None}
        if not self.buf:
            out["reason"] = "no sample yet"
            return out
        t, m = self.buf[-1]
        out.update(mid=m, ts_ns=t)
        if now_ns is not None:
            out["age_ms"] = (now_ns - t) / 1e6
        base = [x for _, x in list(self.buf)[:-1]]
        n = len(base)
        out["n"] = n
        if n < self.min_samples:
            out["reason"] = f"warming up: {n} of {self.min_samples} samples"
            return out
        mean = math.fsum(base) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in base) / n)
        out.update(mean=mean, std=std, high=max(base), low=min(base))
        s = max(std, self.min_std)
        if s == 0.0:
            out["state"] = "normal" if m == mean else ("spike" if m > mean else "dip")
            out["reason"] = "flat baseline"
            return out
        z = (m - mean) / s
        out["z"] = z
        out["state"] = ("spike" if z > self.z_threshold
                        else "dip" if z < -self.z_threshold else "normal")
        return out
