"""What a starting compute needs to rebuild a venue's session state, and the venue's REST answers
turned into inputs. Pure: no sockets, no clocks (actors/warmup.py does the I/O).

The state since the anchor A (CVD, anchored VWAP) is rebuilt from three pieces, with no trade
counted twice and none missed:
- the ring's contiguous tail: the newest records whose trade ids follow one another (aggTrade ids
  are consecutive on the venue, and ordered like their trade times). If it starts before A, it
  holds every trade since A: the ring alone rebuilds everything (`ring_only`);
- otherwise whole minutes [A', M) from 1m klines (A' = A rounded up to the minute): taker-buy base
  volume V, volume v and quote volume q are exact sums of the minute's trades, so CVD += 2V − v,
  Σq += v, Σq·p += q;
- trades for the rest: [A, A') when A is not on a minute (`partial`), and every trade from M on
  (`tail_ns`), from REST aggTrades for what the ring lacks (ids below the ring tail's first), then
  the ring. M is the newest minute boundary whose kline is final (`SETTLE_NS` after its end, on the
  venue's clock) and never later than the first boundary the ring tail covers whole.
Trades from M on also warm bars, volatility and impulse; the klines before M give the closed 1m
bars (and so the 1m RVOL baseline).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from actors.features.exact import SCALE, dec_units
from actors.features.sane import MAX_TRADE_VALUE
from ipc.schema import TRADE

MIN_NS = 60_000_000_000
MS = 1_000_000
SETTLE_NS = 2_000_000_000      # a minute's kline is taken as final this long after its end


@dataclass(frozen=True)
class Plan:
    ring_only: bool
    partial: tuple[int, int] | None = None     # [A, A') ns: trades by REST
    minutes: tuple[int, int] | None = None     # kline open times [A', M) ns
    tail_ns: int = 0                           # M: every trade from here on


def contiguous_tail(trades: np.ndarray) -> np.ndarray:
    """The newest run of trades whose ids follow one another (+1 each)."""
    if len(trades) < 2:
        return trades
    breaks = np.flatnonzero(np.diff(trades["trade_id"]) != 1)
    return trades[int(breaks[-1]) + 1:] if len(breaks) else trades


def plan(anchor_ns: int, venue_now_ns: int, tail: np.ndarray) -> Plan:
    """The pieces to fetch (module docstring). `tail`: the ring's contiguous tail (may be empty)."""
    if len(tail) and int(tail["ts_event_ns"][0]) < anchor_ns:
        return Plan(ring_only=True)
    a_min = -(-anchor_ns // MIN_NS) * MIN_NS
    m = (venue_now_ns - SETTLE_NS) // MIN_NS * MIN_NS
    if len(tail):
        # strictly after the tail's first trade: a trade of that very time may have a smaller id
        m = min(m, (int(tail["ts_event_ns"][0]) // MIN_NS + 1) * MIN_NS)
    m = max(m, a_min)
    return Plan(ring_only=False, partial=(anchor_ns, a_min) if anchor_ns < a_min else None,
                minutes=(a_min, m) if a_min < m else None, tail_ns=m)


# --- REST answers ---------------------------------------------------------------------------
@dataclass
class Minutes:
    """1m klines as exact integer sums (units: exact.py), oldest first."""
    open_ns: list[int]
    close: list[int]           # 1e-8
    volume: list[int]          # v, 1e-8
    buy: list[int]             # V (taker-buy base volume), 1e-8
    quote: list[int]           # q, 1e-16
    rows: list[list]           # the rows as sent (for bars)

    def cvd_units(self) -> int:
        return sum(2 * b - v for b, v in zip(self.buy, self.volume))

    def qp2_units(self) -> int:
        """Σq·p² taken at each minute's VWAP (q²/v), 1e-24: a lower bound of the true sum."""
        return sum(q * q // v for q, v in zip(self.quote, self.volume) if v > 0)

    def bars(self, venue: str) -> list[dict]:
        """Closed 1m bars in the shape of bars.BarBuilder (ids unknown: null; `trades` is the
        kline's trade count, not aggTrades)."""
        out = []
        for r, t, v, b, q in zip(self.rows, self.open_ns, self.volume, self.buy, self.quote):
            vol, buy = v / SCALE, b / SCALE
            out.append({"tf": "1m", "venue": venue, "start_ns": t, "end_ns": t + MIN_NS,
                        "open": float(r[1]), "high": float(r[2]), "low": float(r[3]),
                        "close": float(r[4]), "volume": vol, "buy_volume": buy,
                        "sell_volume": (v - b) / SCALE, "delta": (2 * b - v) / SCALE,
                        "notional": q / SCALE / SCALE, "vwap": q / (v * SCALE) if v else None,
                        "trades": int(r[8]), "first_trade_id": None, "last_trade_id": None,
                        "closed": True, "partial": False, "source": "kline"})
        return out


def parse_minutes(body: bytes, start_ns: int, end_ns: int) -> Minutes:
    """REST 1m kline rows `[t,"o","h","l","c","v",T,"q",n,"V","Q",…]` with open time in
    [start_ns, end_ns); ValueError on anything else (a row that is not one, an inexact number)."""
    rows = orjson.loads(body)
    if not isinstance(rows, list):
        raise ValueError("klines answer is not a list")
    out = Minutes([], [], [], [], [], [])
    for r in rows:
        if not isinstance(r, list) or len(r) < 11 or not isinstance(r[0], int) \
                or not isinstance(r[8], int) or isinstance(r[0], bool):
            raise ValueError(f"not a kline row: {str(r)[:80]}")
        t = r[0] * MS
        if not start_ns <= t < end_ns:
            continue
        v, b = dec_units(r[5]), dec_units(r[9])
        if not 0 <= b <= v:
            raise ValueError(f"kline {r[0]}: taker-buy volume {r[9]} outside [0, {r[5]}]")
        out.open_ns.append(t)
        out.close.append(dec_units(r[4]))
        out.volume.append(v)
        out.buy.append(b)
        out.quote.append(dec_units(r[7], SCALE * SCALE))
        out.rows.append(r)
    if out.open_ns != sorted(set(out.open_ns)):
        raise ValueError("kline rows out of order or repeated")
    return out


def parse_agg_trades(body: bytes) -> np.ndarray:
    """REST aggTrades rows as TRADE records (receive time = trade time: not known); ValueError on
    a row that is not one (`m` must be a JSON boolean: `"false"` would flip the side)."""
    rows = orjson.loads(body)
    if not isinstance(rows, list):
        raise ValueError("aggTrades answer is not a list")
    out = np.zeros(len(rows), dtype=TRADE)
    for i, r in enumerate(rows):
        try:
            a, f, l, t, m = r["a"], r["f"], r["l"], r["T"], r["m"]
            p, q = float(r["p"]), float(r["q"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not an aggTrades row: {str(r)[:80]}") from None
        if not all(type(x) is int for x in (a, f, l, t)) or type(m) is not bool:
            raise ValueError(f"bad field type in aggTrades row: {str(r)[:80]}")
        # the live guard's bounds (actors/features/sane): NaN, inf, "1e400", 0 or a negative
        # would poison the day's exact sums
        if not (0 < p <= MAX_TRADE_VALUE and 0 < q <= MAX_TRADE_VALUE):
            raise ValueError(f"insane price or quantity in aggTrades row: {str(r)[:80]}")
        out[i] = (t * MS, t * MS, 0, a, f, l, p, q, -1 if m else 1)
    return out
