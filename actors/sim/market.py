"""A pure, seeded market generator for the built-in exchange (no I/O).

The model, in continuous time:
- a latent "fair" log price `x` diffuses (Brownian, ~55 % annualised, i.e. ~1e-4 per sqrt(s)),
  scaled by a slow regime (calm / normal / hot, exponential durations of minutes);
- taker orders arrive as a self-exciting Hawkes process (exponential kernel, simulated exactly)
  whose base rate follows the same regime, so trading is bursty and busy periods are volatile;
  the long-run mean is `trade_rate` taker orders (aggTrade frames, before sweeps) per second;
- the visible book is the touch only (best bid/ask price and quantity, integer ticks and lots).
  It follows the latent price through (a) takers, who buy when the fair price is above the mid
  (so the taker side predicts the next move) and consume the top, walking to the next level when
  it is exhausted (one aggTrade per price level, all with the same `T`), and (b) random quote
  updates (size added or cancelled at the top, stale levels repriced, spread widened/tightened);
- every trade consumes the top, so every taker order is followed by a bookTicker, as on the venue.

Invariants (asserted by tests/unit/test_sim_market.py):
- deterministic: the event sequence depends only on the constructor arguments (seed, rate, start
  price and time), not on how `advance` is called (events are generated in time order from one
  seeded numpy Generator, and released in a fixed (emit_ns, kind) order);
- aggTrade `a` is consecutive; each aggTrade covers trade ids `f..l` (l >= f), and the next one
  starts at `l + 1`; prices are on the tick; quantities are whole lots (>= 1 lot);
- bookTicker: bid < ask always; `u` strictly increasing by irregular amounts;
- times: `T <= E` (ms), `E` non-decreasing per stream, `emit_ns >= E * 1e6`; events come out of
  `advance(now_ns)` once `emit_ns <= now_ns`, ordered by `emit_ns`.

Prices and quantities in events are integers in the instrument's units (price units of
10**-price_precision, quantity units of 10**-qty_precision), so the protocol encoders can format
them exactly.

Followers: one other generator (the spot market, actors/sim/binance/spot_market.py) may follow this one's latent
path. It is driven from `_generate_until`: before each of this market's events at time t it is
generated up to t (so it sees the latent price as of this market's last event <= its own time,
whatever the call pattern), and up to `now_ns` at the end. It draws from its own Generator, so
this market's sequence is the same with or without a follower.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ipc.names import asset_of

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
_SEC_PER_YEAR = 365.0 * 86400.0
_tuple_new = tuple.__new__   # builds NamedTuples without the Python-level __new__


@dataclass(frozen=True, slots=True)
class Instrument:
    """Price/quantity grid of one instrument. Units: price 10**-price_precision, qty 10**-qty_precision."""
    symbol: str
    price_precision: int    # decimals of the price strings the venue sends
    tick_units: int         # tick size in price units
    qty_precision: int      # decimals of the quantity strings the venue sends
    lot_units: int = 1      # quantity step in quantity units

    @property
    def tick_size(self) -> float:
        return self.tick_units / 10 ** self.price_precision

    @property
    def lot_size(self) -> float:
        return self.lot_units / 10 ** self.qty_precision


# USD-M BTCUSDT: tickSize 0.10, pricePrecision 2 ("65000.10"), stepSize 0.001, quantityPrecision 3.
FUTURES_BTCUSDT = Instrument("BTCUSDT", price_precision=2, tick_units=10, qty_precision=3)
# Spot BTCUSDT: tickSize 0.01, stepSize 0.00001, strings with 8 decimals.
SPOT_BTCUSDT = Instrument("BTCUSDT", price_precision=8, tick_units=1_000_000, qty_precision=8,
                          lot_units=1_000)
# The other up/down symbols' grids: ETHUSDT as in the exchangeInfo captures (futures tick 0.01,
# step 0.001; spot tick 0.01, step 0.0001); SOLUSDT and XRPUSDT from the venue's pages
# (unverified). Any other symbol gets the BTCUSDT grid. Sizes stay BTC-sized in base units.
FUTURES_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": FUTURES_BTCUSDT,
    "ETHUSDT": Instrument("ETHUSDT", price_precision=2, tick_units=1, qty_precision=3),
    "SOLUSDT": Instrument("SOLUSDT", price_precision=4, tick_units=100, qty_precision=0),
    "XRPUSDT": Instrument("XRPUSDT", price_precision=4, tick_units=1, qty_precision=1),
}
SPOT_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": SPOT_BTCUSDT,
    "ETHUSDT": Instrument("ETHUSDT", 8, tick_units=1_000_000, qty_precision=8, lot_units=10_000),
    "SOLUSDT": Instrument("SOLUSDT", 8, tick_units=1_000_000, qty_precision=8, lot_units=100_000),
    "XRPUSDT": Instrument("XRPUSDT", 8, tick_units=10_000, qty_precision=8, lot_units=10_000_000),
}
# Where an up/down asset's price starts (USD; realistic 2026 levels): the futures market of the
# configured SYMBOL unless SIM_START_PRICE is given, and the walk of every other asset's Chainlink
# stream (actors/sim/polymarket/oracle.py).
ASSET_START_PRICES: dict[str, float] = {"btc": 65_000.0, "eth": 3_500.0, "sol": 150.0, "xrp": 0.6}


def instrument_for(symbol: str, table: dict[str, Instrument], default: Instrument) -> Instrument:
    """The grid of `symbol` (the BTCUSDT one renamed for a symbol not in the table)."""
    inst = table.get(symbol)
    if inst is not None:
        return inst
    return Instrument(symbol, default.price_precision, default.tick_units, default.qty_precision,
                      default.lot_units)


def start_price(settings) -> float:
    """SIM_START_PRICE when given, else the level of SYMBOL's up/down asset (65000 otherwise)."""
    sim = settings.sim
    if "start_price" in sim.model_fields_set:
        return sim.start_price
    return ASSET_START_PRICES.get(asset_of(settings.general.symbol) or "", sim.start_price)


class AggTrade(NamedTuple):
    """One aggregate trade (one taker order at one price level). m: the buyer was the maker."""
    emit_ns: int   # when the venue puts it on the wire (>= E in ns)
    E: int         # event time, ms
    a: int         # aggregate trade id
    price: int     # price units
    qty: int       # quantity units
    f: int         # first trade id
    l: int         # last trade id  # noqa: E741
    T: int         # trade time, ms
    m: bool


class BookTicker(NamedTuple):
    """Best bid/ask after a change."""
    emit_ns: int
    u: int         # order book update id
    bid: int       # price units
    bid_qty: int   # quantity units
    ask: int
    ask_qty: int
    T: int         # transaction time, ms
    E: int         # event time, ms


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Knobs of the generator. Defaults are calibrated on real BTCUSDT USD-M captures (2024-08)."""
    vol_annual: float = 0.55
    # regimes: activity (trade-rate) and volatility multipliers, mean durations (s). The
    # multipliers are renormalised so the long-run mean rate and variance match the targets.
    regime_activity: tuple[float, ...] = (0.4, 1.0, 2.5)
    regime_vol: tuple[float, ...] = (0.7, 1.0, 1.5)
    regime_duration_sec: tuple[float, ...] = (120.0, 180.0, 60.0)
    # Hawkes: branching ratio n (fraction of orders triggered by earlier ones), decay (1/s)
    hawkes_branching: float = 0.6
    hawkes_decay: float = 20.0
    # quote updates: rate = ratio * current trade intensity, within [floor, cap] per second
    quote_ratio: float = 3.0
    quote_rate_floor: float = 2.0
    quote_rate_cap: float = 2000.0
    # taker side: P(buy) = logistic(side_kappa * (fair - mid) in ticks)
    side_kappa: float = 1.0
    # book chases the fair price by this fraction of the gap on a repricing quote update
    reprice_fraction: float = 0.7
    widen_prob: float = 0.02
    # taker order size (BTC): lognormal body + Pareto tail
    size_median: float = 0.015
    size_sigma: float = 1.7
    tail_prob: float = 0.015
    tail_xm: float = 0.3
    tail_alpha: float = 1.4
    size_cap: float = 150.0
    max_sweep_levels: int = 8
    # top-of-book depth (BTC): mixture of thin and normal levels
    depth_thin_prob: float = 0.2
    depth_thin_median: float = 0.15
    depth_median: float = 4.0
    depth_sigma: float = 0.9
    # fills per aggTrade: 1 + Poisson(fills_a + fills_b * log1p(qty / 0.01 BTC))
    fills_a: float = 0.4
    fills_b: float = 0.8
    # bookTicker `u` increments: 1 + lognormal(median, sigma)
    du_median: float = 50.0
    du_sigma: float = 1.9
    # E - T: aggTrade a few ms, sometimes a batched 20-160 ms; bookTicker mostly 0-2 ms
    agg_lag_median_ms: float = 3.0
    agg_slow_prob: float = 0.03
    book_zero_lag_prob: float = 0.55
    # spot basis (futures over spot) in bps: Ornstein-Uhlenbeck
    basis_mean_bps: float = 2.0
    basis_sd_bps: float = 2.0
    basis_halflife_sec: float = 300.0


class _Draws:
    """Uniforms and standard normals from a numpy Generator, drawn in blocks (fast scalars).

    `u()` / `z()` are generator `__next__` methods (cheap to call). Both blocks come from the same
    seeded Generator; which block is drawn next depends only on the (deterministic) order of
    consumption, so every value is a function of the seed alone.
    """
    __slots__ = ("u", "z")

    def __init__(self, rng: np.random.Generator, n: int = 4096):
        def uniforms():
            while True:
                yield from rng.random(n).tolist()

        def normals():
            while True:
                yield from rng.standard_normal(n).tolist()

        self.u = uniforms().__next__      # uniform in [0, 1)
        self.z = normals().__next__       # standard normal

    def exp(self) -> float:
        """Standard exponential."""
        return -math.log(1.0 - self.u())

    def poisson(self, lam: float) -> int:
        """Poisson by inversion (lam is small here)."""
        u = self.u()
        k = 0
        p = math.exp(-lam)
        c = p
        while u > c and k < 200:
            k += 1
            p *= lam / k
            c += p
        return k


class Market:
    """Seeded market generator for one futures instrument. See the module docstring."""

    def __init__(self, *, seed: int, trade_rate: float, start_price: float, start_ns: int,
                 instrument: Instrument = FUTURES_BTCUSDT, params: MarketParams | None = None):
        if trade_rate <= 0 or start_price <= 0:
            raise ValueError("trade_rate and start_price must be > 0")
        self.instrument = instrument
        self.params = p = params or MarketParams()
        self.trade_rate = float(trade_rate)
        self._rng = np.random.default_rng(seed)
        self._d = _Draws(self._rng)

        # regimes (normalised so that E[activity] = 1 and E[vol^2] = 1 in time average)
        dur = np.asarray(p.regime_duration_sec, dtype=float)
        pi = dur / dur.sum()   # jumps go to a uniformly chosen other state: time share ∝ duration
        act = np.asarray(p.regime_activity, dtype=float)
        vol = np.asarray(p.regime_vol, dtype=float)
        self._act = (act / float(pi @ act)).tolist()
        self._vol = (vol / math.sqrt(float(pi @ vol ** 2))).tolist()
        self._dur = dur.tolist()
        self._sigma_1s = p.vol_annual / math.sqrt(_SEC_PER_YEAR)
        self._beta = p.hawkes_decay
        self._alpha = p.hawkes_branching * p.hawkes_decay

        # ids: large, realistic magnitudes (> 2**32) so int32 bugs show up
        self._next_a = 3_000_000_000 + int(self._rng.integers(0, 500_000_000))
        self._next_tid = 7_000_000_000 + int(self._rng.integers(0, 900_000_000))
        self._u_id = 9_000_000_000_000 + int(self._rng.integers(0, 900_000_000_000))
        self._ids_after_start(start_ns)

        d = self._d
        self._t = int(start_ns)           # time the latent price was last moved to
        self._x = math.log(start_price)   # latent log price
        self._basis_bps = p.basis_mean_bps
        self._regime = min(1, len(dur) - 1)   # start in the "normal" regime: rate ≈ trade_rate
        self._mu = self.trade_rate * (1.0 - p.hawkes_branching) * self._act[self._regime]
        self._e = 0.0                      # Hawkes excess intensity at time _t_h
        self._t_h = self._t
        self._t_quote_last = self._t

        tick = instrument.tick_size
        self._tick = tick
        self._bid = int(math.floor(start_price / tick))
        self._ask = self._bid + 1
        self._bid_q = self._depth_lots()
        self._ask_q = self._depth_lots()

        self._q_agg: deque[AggTrade] = deque()
        self._q_book: deque[BookTicker] = deque()
        self._agg_E = 0
        self._agg_emit = 0
        self._book_E = 0
        self._book_emit = 0

        self._follower = None    # a generator following this latent path (see the docstring)
        self._gen_ns = int(start_ns)   # generated up to (inclusive)

        self.n_trades = 0        # aggTrades generated
        self.n_orders = 0        # taker orders generated
        self.n_quotes = 0        # bookTickers generated

        self._t_regime = self._t + self._dt_ns(d.exp() * self._dur[self._regime])
        self._t_trade = self._sample_next_trade(self._t)
        self._t_quote = self._sample_next_quote(self._t)

    @classmethod
    def from_settings(cls, settings, start_ns: int, **kw) -> "Market":
        inst = instrument_for(settings.general.symbol, FUTURES_INSTRUMENTS, FUTURES_BTCUSDT)
        return cls(seed=settings.sim.seed, trade_rate=settings.sim.trade_rate_per_sec,
                   start_price=start_price(settings), start_ns=start_ns, instrument=inst, **kw)

    # --- public ------------------------------------------------------------------------------
    def advance(self, now_ns: int, max_events: int | None = None) -> list[AggTrade | BookTicker]:
        """Generate up to `now_ns` and return the events whose emit time is <= now_ns.

        With `max_events`, at most that many are returned; the rest stay queued for the next call.
        """
        self._generate_until(now_ns)
        out: list[AggTrade | BookTicker] = []
        qa, qb = self._q_agg, self._q_book
        limit = max_events if max_events is not None else -1
        while qa or qb:
            if qa and (not qb or qa[0][0] <= qb[0][0]):
                q = qa
            else:
                q = qb
            if q[0][0] > now_ns:
                break
            out.append(q.popleft())
            if len(out) == limit:
                break
        return out

    def next_emit_ns(self) -> int:
        """A lower bound of the emit time of the next event (for the server's scheduler)."""
        t = min(self._t_trade, self._t_quote, self._t_regime)
        fol = self._follower
        if fol is not None:
            t = min(t, fol.own_next_emit_ns())
        if self._q_agg:
            t = min(t, self._q_agg[0][0])
        if self._q_book:
            t = min(t, self._q_book[0][0])
        return t

    def agg_horizon_ms(self) -> int:
        """Every aggTrade not yet returned by `advance` has `T >= agg_horizon_ms()`.

        The kline builder closes an interval once the horizon passes its end: by then every trade
        of the interval has been handed out (trade times are non-decreasing in emit order).
        """
        if self._q_agg:
            return self._q_agg[0].T
        return self._gen_ns // NS_PER_MS

    def _ids_after_start(self, start_ns: int) -> None:
        """A venue never hands out an id twice, and neither does a restarted sim: every id also
        carries the start time in µs (ids grow far slower than 1 per µs), so a sim restarted by
        supervisord continues past every id it handed out before; otherwise the feeds would drop
        its trades and quotes as duplicates for as long as the previous sim had run."""
        t_us = max(0, int(start_ns)) // 1000
        self._next_a += t_us
        self._next_tid += t_us
        self._u_id += t_us

    def next_ids(self) -> tuple[int, int]:
        """(next aggTrade id, next trade id) to be generated."""
        return self._next_a, self._next_tid

    def book_ticker_now(self) -> BookTicker:
        """The current touch as a BookTicker (u: the last generated update id), e.g. before any
        bookTicker has been handed out."""
        bid, bq, ask, aq = self.book()
        t_ms = self._gen_ns // NS_PER_MS
        return BookTicker(self._gen_ns, self._u_id, bid, bq, ask, aq, t_ms, t_ms)

    def skip_agg_ids(self, n: int) -> None:
        """Fault injection: the next aggTrade ids (`a`, and the trade ids) jump by `n`.

        Events already generated keep their ids, so consecutive frames show one jump of n + 1.
        """
        if n > 0:
            self._next_a += n
            self._next_tid += n

    def intensity(self, t: int) -> float:
        """Current taker-order intensity (1/s): base rate plus the Hawkes excitation at t."""
        return self._mu + self._excess_at(t)

    def attach_follower(self, follower) -> None:
        """Drive `follower._generate_own_until(t)` from this market's generation (one follower)."""
        if self._follower is not None:
            raise ValueError("this market already has a follower")
        self._follower = follower

    def fair_price(self) -> float:
        """The latent futures price the book follows."""
        return math.exp(self._x)

    def futures_mid(self) -> float:
        """Mid of the visible futures book."""
        return (self._bid + self._ask) * 0.5 * self._tick

    def basis_bps(self) -> float:
        """Futures premium over spot, bps."""
        return self._basis_bps

    def spot_mid(self) -> float:
        """Fair spot mid: the latent futures price less the basis."""
        return math.exp(self._x) / (1.0 + self._basis_bps * 1e-4)

    def book(self) -> tuple[int, int, int, int]:
        """(bid, bid_qty, ask, ask_qty) in instrument units."""
        tu, lu = self.instrument.tick_units, self.instrument.lot_units
        return self._bid * tu, self._bid_q * lu, self._ask * tu, self._ask_q * lu

    @property
    def regime(self) -> int:
        return self._regime

    # --- generation --------------------------------------------------------------------------
    @staticmethod
    def _dt_ns(sec: float) -> int:
        if sec >= 1e9:   # effectively never (keeps ints bounded)
            return 10 ** 18
        return max(1, int(sec * NS_PER_S))

    def _generate_until(self, now_ns: int) -> None:
        fol = self._follower
        while True:
            tr, tt, tq = self._t_regime, self._t_trade, self._t_quote
            t = tr if (tr <= tt and tr <= tq) else (tt if tt <= tq else tq)
            if t > now_ns:
                break
            if fol is not None:
                fol._generate_own_until(t)
            if t == tr:
                self._on_regime(tr)
            elif t == tt:
                self._on_trade(tt)
            else:
                self._on_quote(tq)
        if fol is not None:
            fol._generate_own_until(now_ns)
        if now_ns > self._gen_ns:
            self._gen_ns = now_ns

    def _move_latent(self, t: int) -> None:
        dt = (t - self._t) / NS_PER_S
        if dt > 0.0:
            s = self._sigma_1s * self._vol[self._regime]
            self._x += -0.5 * s * s * dt + s * math.sqrt(dt) * self._d.z()
            self._t = t

    def _excess_at(self, t: int) -> float:
        return self._e * math.exp(-self._beta * (t - self._t_h) / NS_PER_S)

    def _sample_next_trade(self, t0: int) -> int:
        """Exact next arrival of the Hawkes process from t0 (state: mu, excess at t0)."""
        d = self._d
        e0 = self._excess_at(t0)
        s = d.exp() / self._mu
        if e0 > 1e-12:
            dd = 1.0 + self._beta * math.log(1.0 - d.u()) / e0
            if dd > 0.0:
                s = min(s, -math.log(dd) / self._beta)
        return t0 + self._dt_ns(s)

    def _sample_next_quote(self, t0: int) -> int:
        p = self.params
        lam = self._mu + self._excess_at(t0)
        rate = min(max(p.quote_ratio * lam, p.quote_rate_floor), p.quote_rate_cap)
        return t0 + self._dt_ns(self._d.exp() / rate)

    def _on_regime(self, t: int) -> None:
        d = self._d
        self._move_latent(t)
        self._e = self._excess_at(t)
        self._t_h = t
        n = len(self._dur)
        j = int(d.u() * (n - 1))
        self._regime = j if j < self._regime else j + 1
        self._mu = self.trade_rate * (1.0 - self.params.hawkes_branching) * self._act[self._regime]
        self._t_regime = t + self._dt_ns(d.exp() * self._dur[self._regime])
        self._t_trade = self._sample_next_trade(t)
        self._t_quote = self._sample_next_quote(t)

    def _depth_lots(self) -> int:
        p, d = self.params, self._d
        if d.u() < p.depth_thin_prob:
            btc = p.depth_thin_median * math.exp(1.2 * d.z())
        else:
            btc = p.depth_median * math.exp(p.depth_sigma * d.z())
        return max(1, int(round(btc / self.instrument.lot_size)))

    def _size_lots(self) -> int:
        p, d = self.params, self._d
        if d.u() < p.tail_prob:
            btc = p.tail_xm * (1.0 - d.u()) ** (-1.0 / p.tail_alpha)
        else:
            btc = p.size_median * math.exp(p.size_sigma * d.z())
        btc = min(btc, p.size_cap)
        return max(1, int(round(btc / self.instrument.lot_size)))

    def _on_trade(self, t: int) -> None:
        p, d = self.params, self._d
        self._move_latent(t)
        self._e = self._excess_at(t) + self._alpha
        self._t_h = t
        self.n_orders += 1

        fair = math.exp(self._x) / self._tick
        gap = fair - (self._bid + self._ask) * 0.5
        z = max(-30.0, min(30.0, p.side_kappa * gap))
        buy = d.u() < 1.0 / (1.0 + math.exp(-z))
        size = self._size_lots()
        t_ms = t // NS_PER_MS
        lot_btc = self.instrument.lot_size
        levels = 0
        while size > 0 and levels < p.max_sweep_levels:
            if buy:
                px, avail = self._ask, self._ask_q
            else:
                px, avail = self._bid, self._bid_q
            fill = size if size < avail else avail
            lam = p.fills_a + p.fills_b * math.log1p(fill * lot_btc / 0.01)
            nf = 1 + d.poisson(min(lam, 30.0))
            if nf > fill:
                nf = fill
            self._emit_agg(t, t_ms, px, fill, nf, not buy)
            size -= fill
            levels += 1
            if fill == avail:   # level consumed: the next level becomes the touch
                step = 1 if d.u() < 0.85 else 2
                if buy:
                    self._ask += step
                    self._ask_q = self._depth_lots()
                else:
                    self._bid -= step
                    self._bid_q = self._depth_lots()
            elif buy:
                self._ask_q -= fill
            else:
                self._bid_q -= fill
        self._emit_book(t, t_ms)
        self._t_trade = self._sample_next_trade(t)
        self._t_quote = self._sample_next_quote(t)

    def _on_quote(self, t: int) -> None:
        p, d = self.params, self._d
        self._move_latent(t)
        # spot basis: OU step
        dt = (t - self._t_quote_last) / NS_PER_S
        self._t_quote_last = t
        if dt > 0.0:
            k = math.log(2.0) / p.basis_halflife_sec
            a = math.exp(-k * dt)
            self._basis_bps = (p.basis_mean_bps + (self._basis_bps - p.basis_mean_bps) * a
                               + p.basis_sd_bps * math.sqrt(1.0 - a * a) * d.z())

        fair = math.exp(self._x) / self._tick
        bid, ask = self._bid, self._ask
        gap = fair - (bid + ask) * 0.5
        spread = ask - bid
        if gap >= 1.0 or gap <= -1.0:
            # stale quotes are cancelled / repriced toward the fair price
            k = max(1, int(abs(gap) * p.reprice_fraction))
            if gap > 0:
                ask += k
                bid = ask - 1 if d.u() < 0.9 else bid + k
            else:
                bid -= k
                ask = bid + 1 if d.u() < 0.9 else ask - k
            self._bid, self._ask = bid, ask
            self._bid_q = self._depth_lots()
            self._ask_q = self._depth_lots()
        elif spread > 1 and d.u() < 0.8:
            # someone improves the touch on the side the fair price leans to
            small = max(1, self._depth_lots() // 4)
            if gap >= 0:
                self._bid = bid + 1
                self._bid_q = small
            else:
                self._ask = ask - 1
                self._ask_q = small
        elif spread == 1 and d.u() < p.widen_prob:
            # the threatened side is pulled: the spread widens by a tick
            if gap >= 0:
                self._ask = ask + 1
                self._ask_q = self._depth_lots()
            else:
                self._bid = bid - 1
                self._bid_q = self._depth_lots()
        else:
            # size added to or cancelled from one side of the touch
            on_bid = d.u() < 0.5
            q = self._bid_q if on_bid else self._ask_q
            if q <= 1 or d.u() < 0.55:
                add = max(1, int(round(0.2 * math.exp(1.2 * d.z()) / self.instrument.lot_size)))
                q += add
            else:
                q -= max(1, min(q - 1, int(q * d.u() * 0.6)))
            if on_bid:
                self._bid_q = q
            else:
                self._ask_q = q
        self._emit_book(t, t // NS_PER_MS)
        self._t_quote = self._sample_next_quote(t)

    # --- event emission ----------------------------------------------------------------------
    def _emit_agg(self, t: int, t_ms: int, px: int, lots: int, nfills: int, m: bool) -> None:
        p, d = self.params, self._d
        if d.u() < p.agg_slow_prob:
            lag_ms = 20.0 + 140.0 * d.u()
        else:
            lag_ms = 1.0 + p.agg_lag_median_ms * math.exp(0.7 * d.z())
            if lag_ms > 60.0:
                lag_ms = 60.0
        e_ns = t + int(lag_ms * NS_PER_MS)
        e_ms = e_ns // NS_PER_MS
        if e_ms < self._agg_E:
            e_ms = self._agg_E
        self._agg_E = e_ms
        emit = max(self._agg_emit, e_ns, e_ms * NS_PER_MS)
        self._agg_emit = emit
        a = self._next_a
        self._next_a = a + 1
        f = self._next_tid
        last = f + nfills - 1
        self._next_tid = last + 1
        inst = self.instrument
        self._q_agg.append(_tuple_new(AggTrade, (emit, e_ms, a, px * inst.tick_units,
                                                 lots * inst.lot_units, f, last, t_ms, m)))
        self.n_trades += 1

    def _emit_book(self, t: int, t_ms: int) -> None:
        p, d = self.params, self._d
        if d.u() < p.book_zero_lag_prob:
            lag_ms = 0.0
        else:
            lag_ms = min(25.0, math.exp(d.z()))
        e_ns = t + int(lag_ms * NS_PER_MS)
        e_ms = e_ns // NS_PER_MS
        if e_ms < self._book_E:
            e_ms = self._book_E
        self._book_E = e_ms
        emit = max(self._book_emit, e_ns, e_ms * NS_PER_MS)
        self._book_emit = emit
        self._u_id += 1 + int(p.du_median * math.exp(p.du_sigma * d.z()))
        inst = self.instrument
        tu, lu = inst.tick_units, inst.lot_units
        self._q_book.append(_tuple_new(BookTicker, (emit, self._u_id, self._bid * tu, self._bid_q * lu,
                                                    self._ask * tu, self._ask_q * lu, t_ms, e_ms)))
        self.n_quotes += 1
