"""Settlement: what each up/down window settles on, and the price to beat. Pure.

Invariants:
- a window's price to beat is the first Chainlink observation at or after its start (observations
  fall on whole seconds, so normally exactly at it); gap records never count;
- at most KEEP_WINDOWS windows are remembered, the oldest dropped first.
"""
from __future__ import annotations

from ipc.schema import FLAG_GAP

KEEP_WINDOWS = 96


class PriceToBeat:
    """Window start -> first observation at or after it. Pure: fed with CHAINLINK records."""

    def __init__(self, window_sec: int):
        self.window_ns = window_sec * 1_000_000_000
        self.windows: dict[int, dict] = {}
        self.last: tuple[int, float] | None = None

    def update(self, recs) -> bool:
        """Records in increasing observation time (the ring's order). True if a window was added."""
        changed = False
        for obs_ns, price, flags in zip(recs["ts_event_ns"].tolist(), recs["price"].tolist(),
                                        recs["flags"].tolist()):
            if flags & FLAG_GAP:
                continue
            boundary = obs_ns // self.window_ns * self.window_ns       # latest window start <= obs
            first_after = obs_ns == boundary or (self.last is not None and self.last[0] < boundary)
            key = boundary // 1_000_000_000
            if first_after and key not in self.windows:
                self.windows[key] = {"price": price, "obs_ns": obs_ns, "exact": obs_ns == boundary}
                changed = True
            self.last = (obs_ns, price)
        while len(self.windows) > KEEP_WINDOWS:
            self.windows.pop(min(self.windows))
        return changed

    def doc(self, window_sec: int) -> dict:
        return {"price": self.last[1] if self.last else None, "obs_ns": self.last[0] if self.last else None,
                "window_sec": window_sec, "windows": {str(k): v for k, v in sorted(self.windows.items())}}
