"""USD-M mark price, funding and liquidations for the built-in exchange: state and frames.

Pure: no sockets, no clocks (the server calls `step` once per second with the time and prices).

Mark price (`MarkPrice.step`, once a second on the second):
- mark `p`: the futures mid smoothed (EMA, 2 s), so it stays within a few bps of the mid;
- `ap`: a slower (60 s) average of the mark; `i`: the index, the spot fair mid; `P`: the estimated
  settle price, a 30 min average of the index;
- funding `r`: 0.0001 (the USD-M default) leaning with the premium of the mark over the index, plus
  a little noise, rounded to 8 decimals, within the venue's cap of +-0.0075;
- `T`: the next funding time, the next 00:00, 08:00 or 16:00 UTC strictly after `E`.
Frame keys `e,E,s,p,ap,P,i,r,T`; prices and rates as strings with 8 decimals. `@markPrice@1s`
gets every step, `@markPrice` the steps whose second is a multiple of 3.

Liquidations (`Liquidations.step`, once per 1000 ms window): the venue pushes at most one
liquidation per symbol per 1000 ms snapshot (the latest), so a window yields one frame or none.
The number of liquidations in a window is Poisson with an intensity that grows with the size of
the last 5 s move in units of its expected volatility, and is self-exciting (a liquidation makes
more likely in the next seconds): they come in bursts after sharp moves. On a down move longs are
liquidated (side SELL), on an up move shorts (BUY); on a quiet tape the side is a coin flip.
The order: LIMIT IOC, FILLED, `q` = `l` = `z`; `ap` (average fill) at or a few ticks through the
touch; `p` (the order's limit, the bankruptcy side) 0.2-1.2 % worse than `ap`.
Frame `{"e":"forceOrder","E":..,"o":{s,S,o,f,q,p,ap,X,l,z,T}}`, `T <= E`.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from actors.sim.binance.codec import fmt_units
from actors.sim.market import Instrument, MarketParams

FUNDING_HOURS = (0, 8, 16)
_H_MS = 3_600_000
_SEC_PER_YEAR = 365.0 * 86400.0


def next_funding_ms(now_ms: int) -> int:
    """The next 00/08/16 UTC after `now_ms` (strictly)."""
    period = 8 * _H_MS
    return (now_ms // period + 1) * period


def _f8(x: float) -> str:
    return f"{x:.8f}"


class MarkPrice:
    """Mark price, index, estimated settle price and funding (see the module docstring)."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3A4C]))
        self.mark = math.nan
        self.avg = math.nan
        self.index = math.nan
        self.settle = math.nan
        self.funding = 0.0001
        self.E = 0
        self._prem = math.nan     # EMA of the mark premium over the index
        self._last_ms = 0

    def step(self, now_ms: int, fut_mid: float, index: float) -> None:
        dt = (now_ms - self._last_ms) / 1000.0 if self._last_ms else 0.0
        self._last_ms = now_ms
        self.E = now_ms
        self.index = index
        if math.isnan(self.mark) or dt <= 0:
            self.mark = self.avg = fut_mid
            self.settle = index
        else:
            self.mark += (fut_mid - self.mark) * (1.0 - math.exp(-dt / 2.0))
            self.avg += (self.mark - self.avg) * (1.0 - math.exp(-dt / 60.0))
            self.settle += (index - self.settle) * (1.0 - math.exp(-dt / 1800.0))
        prem = self.mark / index - 1.0
        if math.isnan(self._prem):
            self._prem = prem
        else:
            self._prem += (prem - self._prem) * (1.0 - math.exp(-max(dt, 1.0) / 600.0))
        # the 0.01 % default, leaning with the premium (clamped as on the venue), plus noise
        r = 0.0001 + 0.25 * (self._prem - 0.0002) + 2e-6 * float(self._rng.standard_normal())
        self.funding = round(min(0.0075, max(-0.0075, r)), 8)

    def frame(self, symbol: str) -> str:
        """Raw markPriceUpdate payload."""
        return (f'{{"e":"markPriceUpdate","E":{self.E},"s":"{symbol}","p":"{_f8(self.mark)}",'
                f'"ap":"{_f8(self.avg)}","P":"{_f8(self.settle)}","i":"{_f8(self.index)}",'
                f'"r":"{_f8(self.funding)}","T":{next_funding_ms(self.E)}}}')

    def premium_index(self, symbol: str, now_ms: int) -> str:
        """GET /fapi/v1/premiumIndex object."""
        return (f'{{"symbol":"{symbol}","markPrice":"{_f8(self.mark)}",'
                f'"indexPrice":"{_f8(self.index)}","estimatedSettlePrice":"{_f8(self.settle)}",'
                f'"lastFundingRate":"{_f8(self.funding)}","interestRate":"0.00010000",'
                f'"nextFundingTime":{next_funding_ms(now_ms)},"time":{now_ms}}}')


class Liquidations:
    """One optional forceOrder per 1000 ms window (see the module docstring)."""

    def __init__(self, instrument: Instrument, seed: int, *, base_rate: float = 0.03,
                 params: MarketParams | None = None):
        self.instrument = instrument
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x11C0]))
        self._base = base_rate
        p = params or MarketParams()
        self._sigma_1s = p.vol_annual / math.sqrt(_SEC_PER_YEAR)
        self._mids: deque[float] = deque(maxlen=6)   # mids at the last 6 window ends
        self._excite = 0.0
        self.n = 0

    def step(self, window_end_ms: int, mid: float, bid: int, ask: int) -> str | None:
        """Close the window ending at `window_end_ms`; the frame of its latest liquidation or None.

        bid/ask: the touch in price units.
        """
        rng = self._rng
        self._mids.append(mid)
        self._excite *= math.exp(-1.0 / 5.0)
        if len(self._mids) < 2:
            return None
        ret = math.log(mid / self._mids[0])
        z = ret / (self._sigma_1s * math.sqrt(len(self._mids) - 1))
        lam = self._base * (1.0 + 4.0 * max(0.0, abs(z) - 1.0) ** 2) + self._excite
        k = int(rng.poisson(min(lam, 50.0)))
        if k == 0:
            return None
        # self-excitation: branching ratio 0.1 / (1 - e^-0.2) ~ 0.55 < 1, so bursts die out
        self._excite += 0.1 * k
        self.n += 1
        if abs(z) < 0.5:
            sell = rng.random() < 0.5
        else:
            sell = (ret < 0) == (rng.random() < 0.85)
        inst = self.instrument
        tu = inst.tick_units
        through = int(rng.integers(0, 4)) * tu
        ap = bid - through if sell else ask + through
        worse = 0.002 + 0.01 * rng.random()
        p = int(round(ap * (1 - worse if sell else 1 + worse) / tu)) * tu
        btc = min(50.0, 0.02 * math.exp(1.5 * float(rng.standard_normal())) * (1.0 + abs(z) / 2))
        q = max(1, round(btc / inst.lot_size)) * inst.lot_units
        t = window_end_ms - 1 - int(rng.integers(0, 1000))
        e = window_end_ms     # the snapshot's time: never later than when it is sent
        pp, qp = inst.price_precision, inst.qty_precision
        qs = fmt_units(q, qp)
        return (f'{{"e":"forceOrder","E":{e},"o":{{"s":"{inst.symbol}","S":"{"SELL" if sell else "BUY"}",'
                f'"o":"LIMIT","f":"IOC","q":"{qs}","p":"{fmt_units(p, pp)}",'
                f'"ap":"{fmt_units(ap, pp)}","X":"FILLED","l":"{qs}","z":"{qs}","T":{t}}}}}')
