"""Relative volume (RVOL) of one timeframe, on the closed bars of bars.BarBuilder. Pure,
incremental.

Definitions (DESIGN.md "Features"):
- RVOL(tf) = V_last / mean(V_{last−N} .. V_{last−1}): the volume (Σqty) of the newest closed bar
  over the mean volume of the N closed bars just before it, all of timeframe tf and one venue;
- only closed bars count (`closed` true); a bar marked `partial` (the first after start, which
  covers less than tf) is neither V_last nor in the baseline;
- bars with no trade are real bars with volume 0 (a quiet stretch lowers the mean);
- the bars must be consecutive: a bar whose start is not the previous bar's end (BarBuilder caps
  the empty bars it fills after a long outage) restarts the history, so the baseline never spans
  a hole;
- None with a reason until N + 1 consecutive closed bars exist, or when the baseline mean is 0.
Bars of another timeframe (or venue, when one is given) are ignored, so compute may pass its whole
list of closed bars.

Parameter (setting): RVOL_BARS (N).
"""
from __future__ import annotations

from collections import deque


class Rvol:
    def __init__(self, tf: str, n: int = 20, venue: str | None = None):
        if n < 1:
            raise ValueError(f"N must be ≥ 1, got {n}")
        self.tf, self.n, self.venue = tf, int(n), venue
        self.vols: deque[float] = deque(maxlen=self.n + 1)   # newest last
        self.last: dict | None = None        # newest bar used
        self.restarts = 0

    @classmethod
    def from_settings(cls, s, tf: str, venue: str | None = None) -> "Rvol":
        return cls(tf, n=s.features.rvol_bars, venue=venue)

    def update(self, bars: list[dict]) -> None:
        """Apply closed bars, oldest first."""
        for bar in bars:
            if bar["tf"] != self.tf or not bar["closed"] or bar["partial"]:
                continue
            if self.venue is not None and bar["venue"] != self.venue:
                continue
            if self.last is not None:
                if bar["start_ns"] < self.last["end_ns"]:
                    continue                      # already seen
                if bar["start_ns"] != self.last["end_ns"]:
                    self.vols.clear()
                    self.restarts += 1
            self.vols.append(float(bar["volume"]))
            self.last = bar

    def snapshot(self, now_ns: int | None = None) -> dict:
        last = self.last
        out = {"tf": self.tf, "n": self.n, "rvol": None, "volume": None, "mean_volume": None,
               "bars": len(self.vols),
               "bar_start_ns": None if last is None else last["start_ns"],
               "bar_end_ns": None if last is None else last["end_ns"],
               # now_ns − bar end (exchange time): includes the feed latency
               "age_ms": (None if last is None or now_ns is None
                          else (now_ns - last["end_ns"]) / 1e6)}
        if last is None:
            out["reason"] = "no closed bar yet"
            return out
        out["volume"] = self.vols[-1]
        if len(self.vols) <= self.n:
            out["reason"] = f"warming up: {len(self.vols) - 1} of {self.n} previous bars"
            return out
        base = 0.0
        for i in range(self.n):                   # the N bars before the newest
            base += self.vols[i]
        mean = base / self.n
        out["mean_volume"] = mean
        if mean > 0:
            out["rvol"] = self.vols[-1] / mean
        else:
            out["reason"] = f"no volume in the previous {self.n} bars"
        return out
