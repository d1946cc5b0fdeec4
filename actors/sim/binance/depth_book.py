"""Order-book depth behind the touch, and the depth frames and REST snapshots built from it.

Pure: no sockets, no clocks (times come in as arguments).

The market generator (actors/sim/market.py) models only the touch. The levels behind it come from
a stateless, seeded function of (side, price tick, update id), so:
- the top level of every depth frame or snapshot IS the bookTicker touch of the same update id
  (`u`): depth and bookTicker agree exactly when they describe the same book version;
- the same `u` always gives the same book (a REST snapshot and a stream frame at one `u` match);
- a level keeps its quantity for a while and then changes: each price tick has its own refresh
  period in update-id units (short near the touch, long far from it) and a random phase, so a
  frame differs from the previous one in a few levels, more of them near the touch;
- occupancy thins with distance: most ticks near the touch hold size, far ones rarely do, and
  quantities grow slowly with distance (lognormal), as on BTCUSDT;
- bids are strictly below the best bid and asks strictly above the best ask; prices on the tick,
  quantities whole lots (>= 1 lot).
Levels are computed with numpy over a window of ticks (vectorised splitmix64 hashing), so a
1000-level REST snapshot costs a few ms.

Frames:
- futures partial depth (`<sym>@depth<N>[@100ms|@500ms]`): `e,E,T,s,U,u,pu,b,a`; bids are sent
  worst-first (ascending), asks best-first (ascending), as in Binance's documented example
  (the futures depth5 example of the API docs) and real captured futures diffs;
- spot partial depth (`<sym>@depth<N>[@100ms]`): only `lastUpdateId,bids,asks`, bids best-first;
- REST snapshots: futures `lastUpdateId,E,T,bids,asks`, spot `lastUpdateId,bids,asks`, both with
  bids best-first (descending), as in the captured snapshots.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actors.sim.binance.codec import fmt_units
from actors.sim.market import Instrument

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / float(1 << 53)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wraps modulo 2**64 by design)."""
    z = x + _GOLD
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def _unit(h: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats in [0, 1)."""
    return (h >> _S11).astype(np.float64) * _INV53


@dataclass(frozen=True, slots=True)
class LadderParams:
    """Shape of the book behind the touch. Distances in ticks, quantities in the base asset."""
    occ_near: float          # extra occupancy probability at the touch
    occ_far: float           # occupancy probability far from the touch
    occ_scale: float         # e-folding distance of the near-touch occupancy
    qty_median: float        # median quantity of a level next to the touch
    qty_sigma: float
    qty_growth: float        # median grows by a factor (1 + d / qty_growth)
    refresh_u: int           # refresh period of a level at the touch, in update-id units
    refresh_scale: float     # the period grows by (1 + d / refresh_scale)


# BTCUSDT USD-M (tick 0.1): most of the first ~40 ticks hold size (see the 2024 REST snapshot).
FUTURES_LADDER = LadderParams(occ_near=0.6, occ_far=0.15, occ_scale=40.0, qty_median=0.25,
                              qty_sigma=1.4, qty_growth=60.0, refresh_u=20_000, refresh_scale=20.0)
# BTCUSDT spot (tick 0.01): sparse behind the first few ticks (see spot_depth20_100ms.json).
SPOT_LADDER = LadderParams(occ_near=0.5, occ_far=0.03, occ_scale=8.0, qty_median=0.01,
                           qty_sigma=1.8, qty_growth=300.0, refresh_u=600, refresh_scale=50.0)


class DepthLadder:
    """The seeded book behind the touch of one instrument (see the module docstring)."""

    def __init__(self, instrument: Instrument, seed: int, params: LadderParams):
        self.instrument = instrument
        self.params = params
        self._seed = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)

    def side(self, is_bid: bool, touch_px: int, touch_qty: int, n: int, u: int) -> list[tuple[int, int]]:
        """Up to `n` levels best-first, as (price units, qty units); level 0 is the touch."""
        if n <= 0:
            return []
        out = [(touch_px, touch_qty)]
        if n == 1:
            return out
        p = self.params
        tu, lu = self.instrument.tick_units, self.instrument.lot_units
        touch_tick = touch_px // tu
        need = n - 1
        start = 1
        # window sized for the far occupancy; extended (rarely) until enough levels are found
        width = int(need / p.occ_far * 1.3) + 32
        while need > 0 and start < 10_000_000:
            d = np.arange(start, start + width, dtype=np.int64)
            ticks = touch_tick - d if is_bid else touch_tick + d
            ticks = ticks[ticks > 0]
            if ticks.size == 0:
                break
            dist = np.abs(ticks - touch_tick).astype(np.float64)
            key = _mix(ticks.astype(np.uint64) * np.uint64(2) + np.uint64(1 if is_bid else 0)
                       ^ self._seed)
            period = (p.refresh_u * (1.0 + dist / p.refresh_scale)).astype(np.uint64)
            epoch = (np.uint64(u) + key % period) // period
            h1 = _mix(key ^ _mix(epoch))
            h2 = _mix(h1)
            h3 = _mix(h2)
            occ = p.occ_far + p.occ_near * np.exp(-dist / p.occ_scale)
            keep = _unit(h1) < occ
            if keep.any():
                u2 = np.maximum(_unit(h2[keep]), 1e-12)
                z = np.sqrt(-2.0 * np.log(u2)) * np.cos(2.0 * np.pi * _unit(h3[keep]))
                med = p.qty_median * (1.0 + dist[keep] / p.qty_growth)
                lots = np.maximum(1, np.rint(med * np.exp(p.qty_sigma * z)
                                             / self.instrument.lot_size)).astype(np.int64)
                sel_ticks = ticks[keep][:need]
                sel_lots = lots[:need]
                out.extend(zip((sel_ticks * tu).tolist(), (sel_lots * lu).tolist()))
                need -= sel_ticks.size
            start += width
            width *= 2
        return out

    def book(self, bid: int, bid_qty: int, ask: int, ask_qty: int, n: int,
             u: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks), each best-first, `n` levels at most, touch first."""
        return self.side(True, bid, bid_qty, n, u), self.side(False, ask, ask_qty, n, u)


def _levels_json(levels, pp: int, qp: int) -> str:
    return ",".join(f'["{fmt_units(px, pp)}","{fmt_units(q, qp)}"]' for px, q in levels)


def futures_partial_depth(inst: Instrument, bids, asks, *, E: int, T: int, U: int, u: int,
                          pu: int) -> str:
    """Raw futures partial-depth payload; bids go out worst-first (see the module docstring)."""
    pp, qp = inst.price_precision, inst.qty_precision
    return (f'{{"e":"depthUpdate","E":{E},"T":{T},"s":"{inst.symbol}","U":{U},"u":{u},"pu":{pu},'
            f'"b":[{_levels_json(reversed(bids), pp, qp)}],"a":[{_levels_json(asks, pp, qp)}]}}')


def spot_partial_depth(inst: Instrument, bids, asks, *, last_update_id: int) -> str:
    """Raw spot partial-depth payload: only lastUpdateId, bids (best-first), asks."""
    pp, qp = inst.price_precision, inst.qty_precision
    return (f'{{"lastUpdateId":{last_update_id},"bids":[{_levels_json(bids, pp, qp)}],'
            f'"asks":[{_levels_json(asks, pp, qp)}]}}')


def rest_depth(inst: Instrument, bids, asks, *, last_update_id: int, E: int | None = None,
               T: int | None = None) -> str:
    """REST depth snapshot (futures with E/T, spot without); bids best-first."""
    pp, qp = inst.price_precision, inst.qty_precision
    times = f'"E":{E},"T":{T},' if E is not None else ""
    return (f'{{"lastUpdateId":{last_update_id},{times}"bids":[{_levels_json(bids, pp, qp)}],'
            f'"asks":[{_levels_json(asks, pp, qp)}]}}')
