"""How the sim settles its up/down windows: price to beat and final price by each window's rule (pure).

The sim settles on its OWN data, independently of the consumer's actors/decide/settlement.py (a sim
sharing the consumer's code could not catch its bugs); tests compare what the sim publishes on Gamma
with what it streamed (RTDS observations, Binance spot klines).

Rules (schedule.Settles, per window; schedule.py says which series gets which):
- point (Chainlink): price to beat = the observation of the start second, final = that of the end
  second;
- twap (Chainlink): the mean of the observations of seconds (t − L, t], at the start and at the end;
- candle (Binance): the candle of the window's length opening at the start: price to beat = its open
  (known once it has a trade, or once it closed), final = its close once it closed;
- candle_close (Binance, daily): price to beat = the close of the 1m candle opening at the start, final
  = the close of the 1m candle opening at the end, each once that candle closed.
Up wins on final >= price to beat.

Candles: for the configured SYMBOL's asset they are the sim's Binance spot klines (`SpotCandles`,
the KlineStore behind `<sym>@kline_<tf>` and `/api/v3/klines`, prices exactly as those frames
print them); any other asset has no Binance market in the sim, and its Chainlink stream stands in
(`OracleCandles`: open = the observation of the open second, close = that of the last second).
"""
from __future__ import annotations

from typing import NamedTuple

from actors.sim.binance import kline_bars as kl
from actors.sim.binance.codec import fmt_units
from actors.sim.polymarket.oracle import Oracle
from actors.sim.polymarket.schedule import Settles, Window
from ipc.names import TIMEFRAME_SEC


class Candle(NamedTuple):
    open: float | None         # None: no trade yet (the open is the first trade's price)
    close: float
    closed: bool


class SpotCandles:
    """Candles of the sim's Binance spot market (its KlineStore)."""

    def __init__(self, store: kl.KlineStore):
        self.store = store
        self.pp = store.inst.price_precision

    def candle(self, tf: str, open_s: int, now_ms: int) -> Candle | None:
        ms = kl.TF_MS[tf]
        open_ms = open_s * 1000
        if open_ms % ms:
            return None
        rows = self.store.rows(tf, open_ms, open_ms, 1, now_ms)
        if not rows or rows[0][kl.T] != open_ms:
            return None
        bar = rows[0]
        closed = open_ms + ms <= self.store.cur[kl.T]
        # the frames print prices with the instrument's decimals: the same float a client parses
        px = lambda units: float(fmt_units(units, self.pp))  # noqa: E731
        return Candle(px(bar[kl.O]) if bar[kl.N] > 0 or closed else None, px(bar[kl.C]), closed)


class OracleCandles:
    """Candles of an asset with no Binance market in the sim: its Chainlink observations."""

    def __init__(self, oracle: Oracle):
        self.oracle = oracle

    def candle(self, tf: str, open_s: int, now_ms: int) -> Candle | None:
        o = self.oracle.value_at(open_s)
        if o is None:
            return None
        last = open_s + TIMEFRAME_SEC[tf] - 1
        c = self.oracle.value_at(min(last, self.oracle.last))
        return Candle(o, o if c is None else c, self.oracle.last >= last)


def price_to_beat(st: Settles, w: Window, oracle: Oracle, candles, now_ms: int) -> float | None:
    """The window's price to beat by its rule, or None while it is not known."""
    if now_ms < w.start * 1000:
        return None
    if st.method == "point":
        return oracle.value_at(w.start)
    if st.method == "twap":
        return oracle.twap(w.start, st.twap_sec)
    if st.method == "candle":
        c = candles.candle(st.candle_tf, w.start, now_ms)
        return None if c is None else c.open
    c = candles.candle(st.candle_tf, w.start, now_ms)          # candle_close
    return c.close if c is not None and c.closed else None


def final_price(st: Settles, w: Window, oracle: Oracle, candles, now_ms: int) -> float | None:
    """The window's settlement price by its rule, or None while it is not known."""
    if now_ms < w.end * 1000:
        return None
    if st.method == "point":
        return oracle.value_at(w.end)
    if st.method == "twap":
        return oracle.twap(w.end, st.twap_sec)
    c = candles.candle(st.candle_tf, w.start if st.method == "candle" else w.end, now_ms)
    return c.close if c is not None and c.closed else None


def settles_at_s(st: Settles, w: Window) -> int:
    """When the final price can first be known (Unix s): the end, or the end candle's close."""
    return w.end + (st.candle_sec if st.method == "candle_close" else 0)
