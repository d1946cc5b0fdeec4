"""The order book of one Polymarket outcome token, rebuilt from `book` snapshots and `price_change`s.

Pure state, no I/O: the feed applies decoded messages (actors.venues.polymarket.clob) and writes
`record(...)` into the POLY_BOOK ring.

Invariants:
- Levels are keyed by `round(price, 6)` (a float): "0.5", "0.50" and 1 - 0.5 are one level, and a
  price computed as a complement (1 - 0.301 = 0.6990000000000001) lands on the venue's level 0.699.
  Polymarket's finest tick is 0.0001, so 6 decimals never merge two real levels. Sizes are floats,
  stored as sent (each update carries the new total, never a delta, so no error accumulates).
- A side is sorted on ingest: snapshots arrive worst-first on the wire (the opposite of the docs),
  and no order is assumed. Keys are kept in a sorted list, so `best_*` is O(1) and `top(n)` O(n).
- `apply_change(side, price, size)`: `size` is the new total at `price`; 0 removes the level (a
  removal of an absent level is a no-op, counted in `absent_removals`).
- `valid` is False until the first snapshot, and again after `invalidate(reason)` (a
  `tick_size_change`): the levels are dropped and every `apply_change` is ignored (counted in
  `ignored_changes`) until the next `apply_snapshot`. An invalid book reports no prices.
- The book can be transiently crossed (best bid >= best ask) in the middle of one matching event
  that the venue splits over several `price_change` messages with the same timestamp and hash
  (seen in the 2026 burst capture); `crossed` says so, nothing is "repaired".
- The venue's `best_bid`/`best_ask` fields are a cross-check (`check_best`), its `hash` is not
  (unreliable); neither is ever needed to maintain the book.
"""
from __future__ import annotations

import math
from bisect import bisect_left, insort
from typing import Iterable

from ipc.schema import MAX_LEVELS

__all__ = ["OrderBook", "complement", "price_key"]

_NAN = float("nan")
_ZERO_LIST = [0.0] * MAX_LEVELS     # sliced (a copy) to pad record levels: never mutated


def price_key(price: float) -> float:
    """The key a price is stored under: round(price, 6)."""
    return round(price, 6)


_BID_SIDES = {"bid": True, "bids": True, "BUY": True, "buy": True,
              "ask": False, "asks": False, "SELL": False, "sell": False}


def _is_bid(side: str) -> bool:
    try:
        return _BID_SIDES[side]
    except (KeyError, TypeError):
        raise ValueError(f"side must be 'bid' or 'ask' (or BUY/SELL), not {side!r}") from None


def complement(bids: Iterable[tuple[float, float]],
               asks: Iterable[tuple[float, float]]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The book of the other outcome of a binary market: its bids are 1 - our asks, its asks 1 - our bids.

    Polymarket shows every order on both tokens (a bid for UP at p is an ask for DOWN at 1 - p):
    every price_change of the 2026 burst capture comes in such a pair, same size. Returned
    best-first, prices rounded to the level key.
    """
    c_bids = sorted(((price_key(1.0 - p), s) for p, s in asks), reverse=True)
    c_asks = sorted((price_key(1.0 - p), s) for p, s in bids)
    return c_bids, c_asks


class OrderBook:
    """One token's book. `bids`/`asks` are dicts key -> size; the sorted key lists are ascending."""

    __slots__ = ("valid", "invalid_reason", "tick_size", "ts_ms", "_bids", "_asks", "_bkeys", "_akeys",
                 "snapshots", "changes", "ignored_changes", "absent_removals")

    def __init__(self) -> None:
        self.valid = False
        self.invalid_reason = "no snapshot yet"
        self.tick_size: float | None = None
        self.ts_ms = 0                   # venue time of the last snapshot (ms)
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bkeys: list[float] = []    # ascending: best bid last
        self._akeys: list[float] = []    # ascending: best ask first
        self.snapshots = 0
        self.changes = 0
        self.ignored_changes = 0
        self.absent_removals = 0

    # -- updates ----------------------------------------------------------------------------

    def apply_snapshot(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]],
                       ts_ms: int, tick_size: float | None = None) -> None:
        """Replace the whole book. Sides in any order; a repeated price keeps its last size; size 0
        levels are skipped. `tick_size` None keeps the previous one (older snapshots carry none)."""
        self._bids = {}
        self._asks = {}
        for p, s in bids:
            k = price_key(p)
            if s > 0.0:
                self._bids[k] = s
            else:
                self._bids.pop(k, None)
        for p, s in asks:
            k = price_key(p)
            if s > 0.0:
                self._asks[k] = s
            else:
                self._asks.pop(k, None)
        self._bkeys = sorted(self._bids)
        self._akeys = sorted(self._asks)
        self.ts_ms = ts_ms
        if tick_size is not None:
            self.tick_size = tick_size
        self.valid = True
        self.invalid_reason = ""
        self.snapshots += 1

    def apply_change(self, side: str, price: float, size: float) -> None:
        """Set the level at `price` to `size` (the new total); 0 removes it. Ignored while invalid."""
        if not self.valid:
            self.ignored_changes += 1
            return
        bid = _is_bid(side)
        levels, keys = (self._bids, self._bkeys) if bid else (self._asks, self._akeys)
        k = price_key(price)
        if size > 0.0:
            if k not in levels:
                insort(keys, k)
            levels[k] = size
        elif k in levels:
            del levels[k]
            del keys[bisect_left(keys, k)]
        else:
            self.absent_removals += 1
        self.changes += 1

    def invalidate(self, reason: str, new_tick_size: float | None = None) -> None:
        """Drop the levels; the book is unusable until the next snapshot (after tick_size_change)."""
        self.valid = False
        self.invalid_reason = reason
        self._bids = {}
        self._asks = {}
        self._bkeys = []
        self._akeys = []
        if new_tick_size is not None:
            self.tick_size = new_tick_size

    # -- reads ------------------------------------------------------------------------------

    def best_bid(self) -> float | None:
        return self._bkeys[-1] if self._bkeys else None

    def best_ask(self) -> float | None:
        return self._akeys[0] if self._akeys else None

    @property
    def crossed(self) -> bool:
        return bool(self._bkeys and self._akeys and self._bkeys[-1] >= self._akeys[0])

    @property
    def n_bids(self) -> int:
        return len(self._bkeys)

    @property
    def n_asks(self) -> int:
        return len(self._akeys)

    def levels(self, side: str) -> list[tuple[float, float]]:
        """Every level of a side, best-first."""
        if _is_bid(side):
            return [(k, self._bids[k]) for k in reversed(self._bkeys)]
        return [(k, self._asks[k]) for k in self._akeys]

    def top(self, n: int) -> tuple[list[float], list[float], list[float], list[float]]:
        """(bid_px, bid_sz, ask_px, ask_sz) of up to n levels a side, best-first, not padded."""
        n = max(0, n)
        bk = self._bkeys[: -n - 1: -1] if n else []
        ak = self._akeys[:n]
        return bk, [self._bids[k] for k in bk], ak, [self._asks[k] for k in ak]

    def depth_usd(self, side: str, n: int) -> float:
        """Σ price·size over the best n levels of a side (USD notional of shares at those prices)."""
        bpx, bsz, apx, asz = self.top(n)
        px, sz = (bpx, bsz) if _is_bid(side) else (apx, asz)
        return math.fsum(p * s for p, s in zip(px, sz))

    def check_best(self, best_bid: float | None, best_ask: float | None) -> bool:
        """True if the venue's best_bid/best_ask (price_change entries, best_bid_ask events) equal ours.

        An empty side matches None or 0 (and 1 for the ask side): no capture shows what the venue
        sends for an empty side, and 0 / 1 are never real levels.
        """
        bk, ak = self._bkeys, self._akeys
        # the common case first, without rounding: a venue price parsed from its decimal string is
        # already its own key (round(x, 6) of a <= 6-decimal float is x)
        if bk and ak and best_bid == bk[-1] and best_ask == ak[0]:
            return True
        bb = bk[-1] if bk else None
        ba = ak[0] if ak else None
        ok_b = (bb is None and (best_bid is None or best_bid == 0.0)) or \
               (bb is not None and best_bid is not None and price_key(best_bid) == bb)
        ok_a = (ba is None and (best_ask is None or best_ask == 0.0 or best_ask == 1.0)) or \
               (ba is not None and best_ask is not None and price_key(best_ask) == ba)
        return ok_b and ok_a

    def record(self, token: int, window_start_ns: int, update_id: int, ts_event_ns: int,
               ts_recv_ns: int, last_trade: float | None, n: int = MAX_LEVELS, flags: int = 0) -> tuple:
        """An ipc.schema.POLY_BOOK tuple (its exact field order) of the top n <= MAX_LEVELS levels.

        best_bid/best_ask are NaN on an empty side (always on an invalid book); last_trade NaN when
        None; tick_size NaN while unknown. Unused levels are 0 with n_bids/n_asks saying how many.
        `flags` is the caller's (FLAG_SNAPSHOT after a snapshot, FLAG_GAP for a gap marker).
        """
        # (once per book update: top() inlined, the padding sliced off one list per side)
        n = min(max(0, n), MAX_LEVELS)
        bk, ak = self._bkeys, self._akeys
        bpx = bk[: -n - 1: -1] if n else []
        apx = ak[:n]
        nb, na = len(bpx), len(apx)
        pad_b, pad_a = _ZERO_LIST[nb:], _ZERO_LIST[na:]
        return (
            ts_event_ns, ts_recv_ns, flags,
            window_start_ns, update_id, token,
            nb, na,
            bk[-1] if bk else _NAN, ak[0] if ak else _NAN,
            _NAN if last_trade is None else last_trade,
            _NAN if self.tick_size is None else self.tick_size,
            bpx + pad_b, list(map(self._bids.__getitem__, bpx)) + pad_b,
            apx + pad_a, list(map(self._asks.__getitem__, apx)) + pad_a,
        )
