"""Klines for the built-in exchange: synthetic history, live bars from the sim's trades, frames, rows.

Pure: no sockets, no clocks (times come in as arguments).

History (`History.synthesize`, `History.follow`): deterministic for a seed, generated once at start.
- a 1m layer over the 32 days before the minute the sim started in (`m0`), from a UTC day boundary
  (`d0`), and a 1h layer over the 1500 days before `d0`; every timeframe (1m..1d) divides a day, so
  no interval straddles `d0`: intervals before it come from the 1h layer (timeframes >= 1h only),
  intervals after it from the 1m layer (a 1h row there IS the sum of its 1m rows);
- a random walk with the market's volatility (regime-modulated per hour, fat tails), walked
  backwards so that the last 1m close is the sim's start price: history ends where the live market
  starts; each open is the previous close; volume and trade count scale with the sim's trade
  rate and trade sizes, with an intraday pattern and more volume on bigger moves; taker-buy
  volume leans to the direction of the move;
- spot history follows the futures one (`follow`): its prices are the futures prices less an
  Ornstein-Uhlenbeck basis that ends at the live basis, on the spot tick.
- minute `m0` itself has no history: its part before the sim started is quiet (the sim's first
  trade opens it). Larger intervals containing `m0` add the history minutes before `m0`.

Live (`KlineStore`): every trade the market hands out is added once (`add`), in emit order, whose
trade times `T` are non-decreasing. A 1m bar closes when the market's trade horizon passes its end
(`roll`): no trade of that minute can come later. Each close updates, for every timeframe, the
completed part of its current interval; an interval closes with the minute that ends it and is
queued in `closed` (the server sends it with `"x":true`). So a closed kline's OHLCV is exactly the
trades of its interval (plus history minutes for the interval the sim started in).

Bars are lists `[t, o, h, l, c, v, n, q, V, Q, f, L]`: open time ms; prices in price units; `v`,
`V` in quantity units; `q`, `Q` in units of 10**-(price_precision + qty_precision) (exact sums of
price * quantity); `f`, `L` first/last trade id (-1 when none). A bar with `n == 0` has no trade:
its prices are the previous close.

Formats: WS kline `e,E,s,k{t,T,s,i,f,L,o,c,h,l,v,n,x,q,V,Q,B}`, REST row
`[t,"o","h","l","c","v",T,"q",n,"V","Q","0"]`; the quote volume has price + quantity decimals
(at most 8), as in the captures (futures CTKUSDT "3957.89900", spot "374344.56589795").
Unverified, chosen: an empty kline has `f` = `L` = -1.
"""
from __future__ import annotations

import math

import numpy as np

from actors.sim.binance.codec import fmt_units
from actors.sim.market import Instrument, MarketParams
from ipc.names import KLINE_TFS, tf_sec

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
TF_MS = {tf: tf_sec(tf) * 1000 for tf in KLINE_TFS}
DAYS_1M = 32          # >= 1500 rows of 30m
DAYS_1H = 1500        # >= 1500 rows of 1d
_SEC_PER_YEAR = 365.0 * 86400.0

T, O, H, L_, C, V, N, Q, VB, QB, F, LT = range(12)   # bar field indexes


def _empty(t: int, px: int) -> list:
    return [t, px, px, px, px, 0, 0, 0, 0, 0, -1, -1]


def merge(a: list | None, b: list | None) -> list | None:
    """The bar covering `a` then `b` (either may be None or empty); `t` is `a`'s."""
    if a is None:
        return None if b is None else list(b)
    if b is None or b[N] == 0:
        if b is not None and a[N] == 0:
            return [a[T], a[O], a[H], a[L_], b[C], 0, 0, 0, 0, 0, -1, -1]
        return list(a)
    if a[N] == 0:
        r = list(b)
        r[T] = a[T]
        return r
    return [a[T], a[O], max(a[H], b[H]), min(a[L_], b[L_]), b[C], a[V] + b[V], a[N] + b[N],
            a[Q] + b[Q], a[VB] + b[VB], a[QB] + b[QB], a[F], b[LT]]


def order_size_mean(p: MarketParams) -> float:
    """Mean taker order size (base asset) of the generator's lognormal body + Pareto tail."""
    return ((1 - p.tail_prob) * p.size_median * math.exp(p.size_sigma ** 2 / 2)
            + p.tail_prob * p.tail_xm * p.tail_alpha / max(p.tail_alpha - 1.0, 0.05))


def fills_mean(p: MarketParams) -> float:
    """Rough mean number of fills (trades) per taker order."""
    return 1.0 + p.fills_a + p.fills_b * math.log1p(p.size_median * 3 / 0.01)


class History:
    """Synthetic klines before the sim started (see the module docstring). Arrays per layer:
    o, h, l, c (price units), v, vb (qty units), n, q, qb (quote, float), and for the 1m layer the
    first trade id of each minute."""

    def __init__(self, inst: Instrument, m0: int, layers: dict[str, dict[str, np.ndarray]]):
        self.inst = inst
        self.m0 = m0
        self.d0 = m0 // DAY_MS * DAY_MS - DAYS_1M * DAY_MS
        self.h0 = self.d0 - DAYS_1H * DAY_MS
        self.m = layers["1m"]
        self.h = layers["1h"]
        self.qdec = inst.price_precision + inst.qty_precision   # exact quote decimals

    # --- generation ------------------------------------------------------------------------
    @classmethod
    def synthesize(cls, inst: Instrument, *, seed: int, start_ms: int, start_price: int,
                   trade_rate: float, first_tid: int, params: MarketParams | None = None) -> "History":
        """Futures-like history ending at `start_price` (price units) at the start minute."""
        p = params or MarketParams()
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4B11]))
        m0 = start_ms // MIN_MS * MIN_MS
        d0 = m0 // DAY_MS * DAY_MS - DAYS_1M * DAY_MS
        n_min = (m0 - d0) // MIN_MS
        sigma_1s = p.vol_annual / math.sqrt(_SEC_PER_YEAR)
        # mean base volume and fills per minute, from the generator's order size and fill laws
        size, fills = order_size_mean(p), fills_mean(p)
        per_min = trade_rate * 60.0

        t1 = d0 + np.arange(n_min, dtype=np.int64) * MIN_MS
        px_scale = 10 ** inst.price_precision
        m = _walk(rng, inst, t1, MIN_MS, sigma_1s * math.sqrt(60.0), math.log(start_price / px_scale),
                  per_min * size, per_min * fills, wick=0.5)
        n_hour = DAYS_1H * 24
        th = d0 - DAYS_1H * DAY_MS + np.arange(n_hour, dtype=np.int64) * HOUR_MS
        h = _walk(rng, inst, th, HOUR_MS, sigma_1s * 60.0, math.log(int(m["o"][0]) / px_scale),
                  per_min * 60 * size, per_min * 60 * fills, wick=0.8)
        # trade ids: the minutes before m0 end right before the sim's first trade id
        m["tid"] = first_tid - np.cumsum(m["n"][::-1])[::-1]
        return cls(inst, m0, {"1m": m, "1h": h})

    @classmethod
    def follow(cls, fut: "History", inst: Instrument, *, seed: int, start_price: int,
               basis_bps: float, first_tid: int, vol_ratio: float, fill_size: float,
               params: MarketParams | None = None) -> "History":
        """Spot-like history: `fut`'s prices less an OU basis ending at `basis_bps`, on `inst`'s
        grid, the last 1m close being `start_price` (price units of `inst`)."""
        p = params or MarketParams()
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B07]))
        scale = 10.0 ** (inst.price_precision - fut.inst.price_precision)
        tick = inst.tick_units
        layers = {}
        for name, src, dt_s in (("1m", fut.m, 60.0), ("1h", fut.h, 3600.0)):
            n = src["o"].size
            # OU basis walked backwards from the live value (stationary, so time-reversible)
            k = math.log(2.0) / p.basis_halflife_sec
            a = math.exp(-k * dt_s)
            b = np.empty(n)
            last = basis_bps
            z = rng.standard_normal(n)
            for i in range(n - 1, -1, -1):      # O(n) once at start (~80k steps)
                b[i] = last
                last = p.basis_mean_bps + (last - p.basis_mean_bps) * a + \
                    p.basis_sd_bps * math.sqrt(1 - a * a) * z[i]
            f = scale / (1.0 + b * 1e-4)
            lay = {"t": src["t"]}
            for key in ("o", "h", "l", "c"):
                lay[key] = (np.rint(src[key] * f / tick) * tick).astype(np.int64)
            lay["o"][1:] = lay["c"][:-1]         # each open is the previous close, as on futures
            lay["h"] = np.maximum(lay["h"], np.maximum(lay["o"], lay["c"]))
            lay["l"] = np.minimum(lay["l"], np.minimum(lay["o"], lay["c"]))
            noise = np.exp(0.35 * rng.standard_normal(n))
            btc = src["v"] * fut.inst.lot_size * vol_ratio * noise
            lay["v"] = np.maximum(1, np.rint(btc / inst.lot_size)).astype(np.int64) * inst.lot_units
            frac = np.clip(src["vb"] / np.maximum(src["v"], 1) + 0.05 * rng.standard_normal(n),
                           0.02, 0.98)
            lay["vb"] = (np.rint(lay["v"] * frac / inst.lot_units) * inst.lot_units).astype(np.int64)
            vwap = (lay["o"] + lay["h"] + lay["l"] + lay["c"]) / 4.0 / 10 ** inst.price_precision
            lay["q"] = lay["v"] / 10 ** inst.qty_precision * vwap
            lay["qb"] = lay["vb"] / 10 ** inst.qty_precision * vwap
            lay["n"] = np.maximum(1, np.rint(btc / fill_size)).astype(np.int64)
            layers[name] = lay
        # make the walk end exactly at the live start price (a shift of at most a few ticks)
        m = layers["1m"]
        shift = start_price - int(m["c"][-1])
        for key in ("o", "h", "l", "c"):
            m[key] += shift
        m["o"][0] = layers["1h"]["c"][-1]       # the layers join: the 1m layer opens at the
        m["h"][0] = max(m["h"][0], m["o"][0])   # 1h layer's last close
        m["l"][0] = min(m["l"][0], m["o"][0])
        m["tid"] = first_tid - np.cumsum(m["n"][::-1])[::-1]
        return cls(inst, fut.m0, layers)

    # --- aggregation -----------------------------------------------------------------------
    def aggregate(self, layer: str, i0: int, k: int, g: int) -> list[list]:
        """`g` bars of `k` consecutive layer rows from row `i0`, as bar lists (no trade ids)."""
        lay = self.m if layer == "1m" else self.h
        sl = slice(i0, i0 + g * k)

        def blk(key):
            return lay[key][sl].reshape(g, k)
        o, hh, ll, c = blk("o")[:, 0], blk("h").max(1), blk("l").min(1), blk("c")[:, -1]
        v, vb, n = blk("v").sum(1), blk("vb").sum(1), blk("n").sum(1)
        mul = 10.0 ** self.qdec
        q, qb = blk("q").sum(1) * mul, blk("qb").sum(1) * mul
        t = lay["t"][sl][::k]
        return [[int(t[i]), int(o[i]), int(hh[i]), int(ll[i]), int(c[i]), int(v[i]), int(n[i]),
                 int(round(q[i])), int(vb[i]), int(round(qb[i])), -1, -1] for i in range(g)]

    def minutes(self, t_from: int, t_to: int) -> list | None:
        """One bar over the 1m-layer minutes in [t_from, t_to) (with trade ids), or None."""
        i0 = max(0, (t_from - self.d0) // MIN_MS)
        i1 = min(self.m["o"].size, (t_to - self.d0) // MIN_MS)
        if i1 <= i0:
            return None
        bar = self.aggregate("1m", i0, i1 - i0, 1)[0]
        bar[F] = int(self.m["tid"][i0])
        bar[LT] = int(self.m["tid"][i1 - 1] + self.m["n"][i1 - 1] - 1)
        return bar


def _walk(rng, inst: Instrument, t: np.ndarray, dt_ms: int, sigma: float, log_end: float,
          vol_mean: float, fills_mean: float, wick: float) -> dict[str, np.ndarray]:
    """OHLCV bars at times `t` whose last close is exp(log_end) (a price, not units), walking the
    returns backwards."""
    n = t.size
    hour = (t // HOUR_MS) % 24
    # intraday activity (busiest around 14-16 UTC) and an hourly volatility regime (AR(1))
    act = 1.0 + 0.45 * np.cos(2 * np.pi * (hour - 15) / 24.0)
    n_h = int((t[-1] - t[0]) // HOUR_MS) + 2
    reg = np.empty(n_h)
    x = 0.0
    zr = rng.standard_normal(n_h)
    for i in range(n_h):
        x = 0.97 * x + 0.25 * zr[i]
        reg[i] = x
    vm = np.exp(reg[(t - t[0]) // HOUR_MS])
    vm /= math.sqrt(float(np.mean(vm ** 2)))
    # fat tails: a few bars have 3x the volatility
    z = rng.standard_normal(n) * np.where(rng.random(n) < 0.02, 3.0, 1.0)
    r = sigma * vm * z
    log_c = log_end - np.concatenate((np.cumsum(r[::-1])[::-1][1:], [0.0]))
    log_o = log_c - r
    tick = inst.tick_units
    px_scale = 10 ** inst.price_precision
    c = np.maximum(tick, np.rint(np.exp(log_c) * px_scale / tick) * tick).astype(np.int64)
    o = np.empty_like(c)
    o[1:] = c[:-1]
    o[0] = max(tick, int(round(math.exp(log_o[0]) * px_scale / tick)) * tick)
    mid = np.exp(log_c) * px_scale
    up = np.rint(np.abs(rng.standard_normal(n)) * wick * sigma * vm * mid / tick) * tick
    dn = np.rint(np.abs(rng.standard_normal(n)) * wick * sigma * vm * mid / tick) * tick
    hh = np.maximum(o, c) + up.astype(np.int64)
    ll = np.maximum(tick, np.minimum(o, c) - dn.astype(np.int64))
    move = np.abs(z)
    mult = act * vm * (0.6 + 0.4 * move) * np.exp(0.4 * rng.standard_normal(n) - 0.08)
    mult /= float(np.mean(mult))
    btc = vol_mean * mult
    v = np.maximum(1, np.rint(btc / inst.lot_size)).astype(np.int64) * inst.lot_units
    frac = np.clip(0.5 + 0.25 * np.tanh(z) + 0.06 * rng.standard_normal(n), 0.02, 0.98)
    vb = (np.rint(v * frac / inst.lot_units) * inst.lot_units).astype(np.int64)
    vwap = (o + hh + ll + c) / 4.0 / px_scale
    q = v / 10 ** inst.qty_precision * vwap
    qb = vb / 10 ** inst.qty_precision * vwap
    nn = np.maximum(1, np.rint(fills_mean * mult * np.exp(0.2 * rng.standard_normal(n)))).astype(np.int64)
    return {"t": t, "o": o, "h": hh, "l": ll, "c": c, "v": v, "vb": vb, "n": nn, "q": q, "qb": qb}


class KlineStore:
    """Live klines of one instrument on top of its `History` (see the module docstring)."""

    def __init__(self, history: History, start_price: int):
        self.history = history
        self.inst = history.inst
        m0 = history.m0
        self.live: list[list] = []               # closed 1m bars from m0 on
        self.cur = _empty(m0, start_price)       # the open 1m bar
        self._cur_end = m0 + MIN_MS
        self.closed: list[tuple[str, list]] = []   # (tf, bar) closed, not yet sent
        self.version = 0                         # +1 on every change of the open bars
        self._base: dict[str, list | None] = {}  # completed part of each tf's open interval
        for tf, ms in TF_MS.items():
            t_open = m0 // ms * ms
            self._base[tf] = history.minutes(t_open, m0) if t_open < m0 else None
        pq = self.inst.price_precision + self.inst.qty_precision
        self._qdiv = 10 ** max(0, pq - 8)        # exact quote units -> at most 8 decimals
        self.qdec = min(pq, 8)

    def add(self, t_ms: int, px: int, qty: int, nfills: int, f: int, last: int, m: bool) -> None:
        """One aggTrade (price/qty units; f..last its trade ids; m: the buyer was the maker)."""
        if t_ms >= self._cur_end:
            self._roll_to(t_ms)
        b = self.cur
        qv = px * qty
        if b[6] == 0:
            b[1] = b[2] = b[3] = px
            b[10] = f
        elif px > b[2]:
            b[2] = px
        elif px < b[3]:
            b[3] = px
        b[4] = px
        b[5] += qty
        b[6] += nfills
        b[7] += qv
        if not m:
            b[8] += qty
            b[9] += qv
        b[11] = last
        self.version += 1

    def roll(self, horizon_ms: int) -> None:
        """Close every 1m bar that ends at or before `horizon_ms` (no trade of it can come)."""
        if horizon_ms >= self._cur_end:
            self._roll_to(horizon_ms)

    def _roll_to(self, t_ms: int) -> None:
        while t_ms >= self._cur_end:
            done = self.cur
            end = self._cur_end
            self.live.append(done)
            for tf, ms in TF_MS.items():
                base = merge(self._base[tf], done)
                if end % ms == 0:
                    base[T] = end - ms
                    self.closed.append((tf, base))
                    base = None
                self._base[tf] = base
            self.cur = _empty(end, done[C])
            self._cur_end = end + MIN_MS
            self.version += 1

    def current(self, tf: str) -> list:
        """The open kline of `tf` (its interval contains the open 1m bar)."""
        ms = TF_MS[tf]
        bar = merge(self._base[tf], self.cur)
        bar[T] = self.cur[T] // ms * ms
        return bar

    # --- REST rows -------------------------------------------------------------------------
    def rows(self, tf: str, start: int | None, end: int | None, limit: int, now_ms: int) -> list[list]:
        """Klines as Binance answers /klines: open time >= start, <= end, at most `limit`,
        the most recent ones when no start is given; the last may be the open one."""
        ms = TF_MS[tf]
        h = self.history
        earliest = h.d0 if ms < HOUR_MS else h.h0
        cur_open = max(now_ms, self.cur[T]) // ms * ms
        if start is not None:
            first = max(earliest, -(-start // ms) * ms)
            last = cur_open if end is None else min(cur_open, end // ms * ms)
            last = min(last, first + (limit - 1) * ms)
        else:
            last = cur_open if end is None else min(cur_open, end // ms * ms)
            first = max(earliest, last - (limit - 1) * ms)
        if first > last:
            return []
        out: list[list] = []
        t = first
        if t < h.d0:                       # 1h layer (tf >= 1h)
            k = ms // HOUR_MS
            g = (min(last + ms, h.d0) - t) // ms
            out += h.aggregate("1h", (t - h.h0) // HOUR_MS, k, g)
            t += g * ms
        if t <= last and t + ms <= h.m0:   # 1m layer, whole intervals
            k = ms // MIN_MS
            g = (min(last + ms, h.m0 // ms * ms) - t) // ms
            if g > 0:
                out += h.aggregate("1m", (t - h.d0) // MIN_MS, k, g)
                t += g * ms
        while t <= last:                   # intervals with live minutes
            out.append(self._live_bar(t, ms))
            t += ms
        return out

    def _live_bar(self, t: int, ms: int) -> list:
        h = self.history
        bar = h.minutes(t, h.m0) if t < h.m0 else None
        m0 = h.m0
        i0 = max(0, (t - m0) // MIN_MS)
        i1 = max(0, (t + ms - m0) // MIN_MS)
        for b in self.live[i0:i1]:
            bar = merge(bar, b)
        if t <= self.cur[T] < t + ms:
            bar = merge(bar, self.cur)
        if bar is None:   # after the open bar: nothing traded yet
            bar = _empty(t, self.cur[C])
        bar[T] = t
        return bar

    # --- formats ---------------------------------------------------------------------------
    def _q(self, units: int) -> str:
        d = self._qdiv
        return fmt_units((units + d // 2) // d if d > 1 else units, self.qdec)

    def rows_json(self, bars: list[list], ms: int) -> str:
        pp, qp = self.inst.price_precision, self.inst.qty_precision
        q = self._q
        return "[" + ",".join(
            f'[{b[0]},"{fmt_units(b[1], pp)}","{fmt_units(b[2], pp)}","{fmt_units(b[3], pp)}",'
            f'"{fmt_units(b[4], pp)}","{fmt_units(b[5], qp)}",{b[0] + ms - 1},"{q(b[7])}",{b[6]},'
            f'"{fmt_units(b[8], qp)}","{q(b[9])}","0"]' for b in bars) + "]"

    def frame(self, tf: str, bar: list, E: int, closed: bool) -> str:
        """Raw WS kline payload."""
        pp, qp = self.inst.price_precision, self.inst.qty_precision
        q = self._q
        sym = self.inst.symbol
        t0 = bar[0]
        return (f'{{"e":"kline","E":{E},"s":"{sym}","k":{{"t":{t0},"T":{t0 + TF_MS[tf] - 1},'
                f'"s":"{sym}","i":"{tf}","f":{bar[10]},"L":{bar[11]},"o":"{fmt_units(bar[1], pp)}",'
                f'"c":"{fmt_units(bar[4], pp)}","h":"{fmt_units(bar[2], pp)}",'
                f'"l":"{fmt_units(bar[3], pp)}","v":"{fmt_units(bar[5], qp)}","n":{bar[6]},'
                f'"x":{"true" if closed else "false"},"q":"{q(bar[7])}",'
                f'"V":"{fmt_units(bar[8], qp)}","Q":"{q(bar[9])}","B":"0"}}}}')
