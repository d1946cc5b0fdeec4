"""Order flow: cumulative volume delta since an anchor. Pure and incremental.

CVD = Σ side·qty over trades with `ts_event_ns ≥ anchor_ns`, side +1 for a taker buy and −1 for a
taker sell. The default anchor is the UTC session start (00:00 UTC of the trade's day): a trade of
a later UTC day moves the anchor to that day and restarts the sum. An explicit anchor (from
`/control/anchor/reset`) stays until the next reset. Trades before the anchor are ignored.
`from_ns` is the event time of the first trade actually summed: when compute starts mid-session it
is later than the anchor, and consumers can tell the CVD covers less than the session; after a
warm-up from klines (actors/warmup.py) it is the anchor itself.
The sum is exact (actors/features/exact.py: integer units of 1e-8), so a CVD rebuilt from 1m klines
(taker-buy volume − taker-sell volume per minute) plus the trades after them equals, to the unit,
the CVD of an uninterrupted run over the same trades, however the trades were chunked.
"""
from __future__ import annotations

import numpy as np

from actors.features.exact import SCALE, units

DAY_NS = 86_400 * 1_000_000_000


class Anchored:
    """An accumulator since an anchor: the UTC session start by default (rolled forward by a
    trade of a later day, which clears the sum), or an explicit anchor kept until the next reset.
    Subclasses define `_clear()` and call `_since_anchor(trades)` first in `update`."""

    def __init__(self, anchor_ns: int | None = None):
        self.explicit = anchor_ns is not None
        self.anchor_ns = anchor_ns
        self._clear()

    def _clear(self) -> None:
        raise NotImplementedError

    def reset(self, anchor_ns: int) -> None:
        self.explicit = True
        self.anchor_ns = anchor_ns
        self._clear()

    def _since_anchor(self, trades: np.ndarray) -> np.ndarray | None:
        """The trades at or after the anchor (None if none), after rolling the session anchor."""
        if len(trades) == 0:
            return None
        ts = trades["ts_event_ns"]
        if not self.explicit:
            day = int(ts.max()) // DAY_NS * DAY_NS
            if self.anchor_ns is None or day > self.anchor_ns:
                self.anchor_ns = day
                self._clear()
        keep = ts >= self.anchor_ns
        if not keep.all():
            trades = trades[keep]
        return trades if len(trades) else None


class Cvd(Anchored):
    def __init__(self, anchor_ns: int | None = None):
        self.last_trade_id: int | None = None
        super().__init__(anchor_ns)

    def _clear(self) -> None:
        self.units, self.from_ns, self.trades = 0, None, 0

    @property
    def value(self) -> float:
        return self.units / SCALE

    def update(self, trades: np.ndarray) -> None:
        trades = self._since_anchor(trades)
        if trades is None:
            return
        self.units += int((units(trades["qty"]) * trades["side"].astype(np.int64)).sum())
        if self.from_ns is None:
            self.from_ns = int(trades["ts_event_ns"][0])
        self.trades += len(trades)
        self.last_trade_id = int(trades["trade_id"][-1])

    def warm(self, anchor_ns: int, delta_units: int) -> None:
        """Start from a sum rebuilt from klines since `anchor_ns` (delta in units of 1e-8):
        the sum covers the session from its anchor."""
        self.anchor_ns = anchor_ns
        self._clear()
        self.units, self.from_ns = delta_units, anchor_ns

    def snapshot(self) -> dict:
        return {"cvd": self.value if self.from_ns is not None else None,
                "anchor_ns": self.anchor_ns, "from_ns": self.from_ns, "trades": self.trades,
                "last_trade_id": self.last_trade_id}
