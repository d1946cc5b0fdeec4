"""Settlement: what each up/down window settles on, and the price to beat. Pure.

The one settlement rule of the project: fair value (decide/fair.py), the example strategy, the
backtest and calibrate all call `settlement_price` / `winner`, so they cannot disagree.

Invariants:
- point settlement: the window settles on the Chainlink observation AT its end (timestamp == end),
  else the last one before it. Why: the venue settles on the Chainlink Data Streams report for the
  window end timestamp; reports are stamped on whole seconds, so the report of the end second is
  the one stamped `end`; a report stamped later, even by a fraction, observed the price after the
  window closed, while without a report at the end the last one before it is the price in force
  at the end;
- TWAP settlement (`twapEnabled`): the mean of the observations in (end − lookback, end], and only
  when the history reaches back to the first second of that span (else "incomplete", never a
  guess from part of it);
- a settlement is known once an observation at or after the end has arrived (observations come in
  time order, so nothing at or before the end can follow it); before that it is "pending";
- Up wins on ≥ (`up_wins`: the tie settlement == price to beat is Up);
- a window's price to beat is the first Chainlink observation at or after its start (observations
  fall on whole seconds, so normally exactly at it); gap records never count;
- at most KEEP_WINDOWS windows are remembered, the oldest dropped first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

from ipc.schema import FLAG_GAP

KEEP_WINDOWS = 96
SEC_NS = 1_000_000_000
OBSERVATION_STEP_NS = SEC_NS      # Chainlink observations fall on whole seconds

SettleStatus = Literal["ok", "pending", "incomplete"]


def up_wins(settlement: float, price_to_beat: float) -> bool:
    """The venue's rule: Up wins when the settlement is at or above the price to beat."""
    return settlement >= price_to_beat


def winner(settlement: float, price_to_beat: float) -> str:
    """"UP" or "DOWN" (names.POLY_TOKENS order)."""
    return "UP" if up_wins(settlement, price_to_beat) else "DOWN"


def settled_path(decision_log_dir: str | Path) -> Path:
    """Where the strategy appends its settled windows and calibrate reads them:
    `<decision_log_dir>/../strategy/settled.jsonl`."""
    return Path(decision_log_dir).resolve().parent / "strategy" / "settled.jsonl"


def twap_start_ns(end_ns: int, lookback_sec: float) -> int:
    """The start of a TWAP window's averaging span (end − lookback, end]."""
    return end_ns - int(lookback_sec * SEC_NS)


def settlement_price(obs: Iterable[tuple[int, float]], end_ns: int, twap: bool = False,
                     lookback_sec: float = 0.0) -> tuple[float | None, SettleStatus]:
    """(price, "ok"), or (None, "pending" | "incomplete"), from Chainlink observations
    [(ts_ns, price)] in increasing time order (module docstring)."""
    obs = obs if isinstance(obs, (list, tuple)) else list(obs)
    if not obs or obs[-1][0] < end_ns:
        return None, "pending"
    if not (twap and lookback_sec > 0):
        last = None
        for t, p in obs:
            if t > end_ns:
                break
            last = p
        return (last, "ok") if last is not None else (None, "incomplete")
    lo = twap_start_ns(end_ns, lookback_sec)
    if obs[0][0] > lo + OBSERVATION_STEP_NS:
        return None, "incomplete"
    vals = [p for t, p in obs if lo < t <= end_ns]
    return (sum(vals) / len(vals), "ok") if vals else (None, "incomplete")


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
