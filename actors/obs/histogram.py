"""Fixed-bucket histograms an actor keeps in-process and publishes in its heartbeat.

The API renders them as Prometheus histograms (actors/obs/metrics.py); nothing here imports
prometheus_client, so the hot paths pay for one bisect and two additions per observation.

Invariants:
- bounds are fixed, strictly ascending and held as integer nanoseconds, so bucketing is exact
  (no float rounding at a bound); an observation `x` lands in the first bucket whose bound is
  `>= x` (Prometheus `le` is inclusive) and past the last bound in the +Inf bucket;
- `counts` are per bucket, not cumulative (len(bounds) + 1 of them, the last is +Inf): observing
  touches one slot; `cumulative()` accumulates at scrape time;
- counts, `sum_ns` and `negative` only grow for the life of the process (Prometheus counter
  semantics: a restart resets them and rate() copes);
- a negative observation (received before the exchange stamped it: clock skew) is counted in
  `negative` and observed as 0, so `_sum` never decreases and no bucket is below 0.
"""
from __future__ import annotations

from bisect import bisect_left

import numpy as np

# receive time minus exchange time of a record, per stream (ms)
DATA_AGE_BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# compute's tick duration (ms); TICK_MS is 100 by default, so the upper bounds are overruns
TICK_DURATION_BOUNDS_MS = (0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000)


class Histogram:
    __slots__ = ("bounds_ms", "bounds_ns", "counts", "sum_ns", "negative")

    def __init__(self, bounds_ms: tuple[float, ...]):
        bounds_ns = tuple(int(round(b * 1_000_000)) for b in bounds_ms)
        if not bounds_ns or any(b <= a for a, b in zip(bounds_ns, bounds_ns[1:])):
            raise ValueError(f"bounds must be non-empty and strictly ascending: {bounds_ms}")
        self.bounds_ms = tuple(bounds_ms)
        self.bounds_ns = bounds_ns
        self.counts = [0] * (len(bounds_ns) + 1)
        self.sum_ns = 0
        self.negative = 0

    def observe_ns(self, x_ns: int) -> None:
        if x_ns < 0:
            self.negative += 1
            x_ns = 0
        self.counts[bisect_left(self.bounds_ns, x_ns)] += 1
        self.sum_ns += x_ns

    def observe_many_ns(self, x_ns: np.ndarray) -> None:
        """A batch at once: one searchsorted and one bincount instead of a bisect per value."""
        x = np.asarray(x_ns, dtype=np.int64)
        if x.size == 0:
            return
        neg = x < 0
        if neg.any():
            self.negative += int(neg.sum())
            x = np.where(neg, 0, x)
        idx = np.searchsorted(np.asarray(self.bounds_ns, dtype=np.int64), x, side="left")
        for i, n in enumerate(np.bincount(idx, minlength=len(self.counts)).tolist()):
            self.counts[i] += n
        self.sum_ns += int(x.sum())

    @property
    def count(self) -> int:
        return sum(self.counts)

    def doc(self) -> dict:
        """What goes into the heartbeat (JSON): bounds, per-bucket counts, sum, negatives."""
        return {"le_ms": list(self.bounds_ms), "counts": list(self.counts),
                "sum_ms": self.sum_ns / 1e6, "negative": self.negative}


def cumulative(doc: dict) -> tuple[list[tuple[float, int]], int, float]:
    """From a heartbeat `doc`: ([(le_seconds, cumulative count)] ending with (inf, total), total
    count, sum in seconds). Raises ValueError on a malformed doc (the renderer skips it)."""
    le_ms, counts = doc["le_ms"], doc["counts"]
    if len(counts) != len(le_ms) + 1:
        raise ValueError("counts must have one more entry (+Inf) than le_ms")
    out, acc = [], 0
    for le, n in zip(list(le_ms) + [float("inf")], counts):
        acc += int(n)
        out.append((float(le) / 1e3, acc))
    return out, acc, float(doc["sum_ms"]) / 1e3
