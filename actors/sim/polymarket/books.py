"""The order books of one Polymarket up/down window, generated (pure, seeded; no I/O, no clock).

Model. One book is kept: the UP token's. The DOWN token's book is its mirror (a bid for UP at p
is an ask for DOWN at 1 - p, same size), as the 2026 captures show: every `price_change` of the
burst capture is such a pair, and UP 0.311/0.397 faces DOWN 0.603/0.689. A market maker quotes UP
around a target mid = the fair probability + a slow mispricing (Ornstein-Uhlenbeck, ~1 cent),
with a 1-3 tick spread; quote events (a Poisson process, `update_rate`/s) either (45 %) re-centre the touch on the target (stale levels pulled, the new touch joined, one
`price_change` per level) or add, resize or remove one level behind the touch; takers (a Poisson
process, `trade_rate`/s) hit the touch, leaning toward the fair side, and the venue resends the
traded token's `book` after each trade (as in the 2026 burst capture). Now and then (every ~90 s)
one side goes very thin for 4-12 s (its best 10 levels shrink to 5-8 shares: under ~50 USD at mid
prices) to exercise depth vetoes.

Ticks: 0.01 normally; when the UP touch leaves [0.04, 0.96] the tick becomes 0.001 (both tokens get
a `tick_size_change`), and back to 0.01 once it is inside [0.05, 0.95] again (levels off the coarse
grid are merged onto it). After a tick change the generator pauses (no events) until it sends a
fresh full `book` of both tokens 0.1-0.6 s later: a consumer drops the book on the change and
waits for that snapshot.

Invariants:
- prices are integers in units of 0.001 ("mil", 1..999) on the current tick, sizes integers in
  hundredths of a share (>= 5 shares when created); a level of size 0 does not exist;
- the UP book is never crossed: best bid < best ask whenever both exist;
- every change is emitted as a pair (the origin token's entry first, then the mirror), each entry
  with the token's best bid/ask AFTER it and the token's book hash after it; the hash is a
  function of (token, version) and the version of a token goes up by one per change, so the REST
  book, a resent `book` and the last `price_change` entry of a token agree on it;
- deterministic: the messages depend only on the seed, the fair-probability inputs and the times
  `advance` is called with (events are generated in time order at their own times; the fair
  probability is the one passed to the call that generates them).
"""
from __future__ import annotations

import hashlib
import math
import random
from typing import NamedTuple

MIL = 1000
COARSE, FINE = 10, 1          # tick sizes in mil
MIN_SIZE = 500                # 5 shares (orderMinSize), in hundredths


class Entry(NamedTuple):
    token: int                # 0 = UP, 1 = DOWN
    buy: bool                 # wire side BUY (a bid level) / SELL (an ask level)
    price: int                # mil
    size: int                 # hundredths of a share, the new total (0 deletes)
    version: int              # the token's book version after this entry (-> hash)
    best_bid: int | None      # the token's best after this entry (mil)
    best_ask: int | None


class PriceChange(NamedTuple):
    ts: int                   # ms
    entries: list[Entry]
    kind = "price_change"


class Trade(NamedTuple):
    ts: int
    token: int
    price: int                # mil, in the traded token's terms
    size: int                 # hundredths
    taker_buy: bool
    tx: str                   # 0x + 64 hex
    kind = "last_trade_price"


class Snapshot(NamedTuple):
    ts: int
    token: int
    bids: list[tuple[int, int]]   # worst first (ascending), as the venue sends them
    asks: list[tuple[int, int]]   # worst first (descending)
    version: int
    tick: int
    last_trade: int | None
    full: bool                # True: the 2026 initial shape (tick_size, last_trade_price)
    kind = "book"


class TickChange(NamedTuple):
    ts: int
    token: int
    old: int
    new: int
    kind = "tick_size_change"


class BestBidAsk(NamedTuple):
    ts: int
    token: int
    best_bid: int | None
    best_ask: int | None
    kind = "best_bid_ask"


def fair_up(s: float, s0: float, sigma_1s: float, tau_s: float) -> float:
    """P(S_end >= S0) = Φ(ln(S/S0) / (σ·√τ)) with no drift; τ <= 0 gives 1 or 0."""
    if s <= 0.0 or s0 <= 0.0:
        return 0.5
    x = math.log(s / s0)
    if tau_s <= 0.0 or sigma_1s <= 0.0:
        return 1.0 if x >= 0.0 else 0.0
    z = x / (sigma_1s * math.sqrt(tau_s))
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def book_hash(token_id: str, version: int) -> str:
    return hashlib.sha1(f"{token_id}:{version}".encode()).hexdigest()


class BookParams(NamedTuple):
    mispricing_sd: float = 0.012        # stationary sd of the target's offset from fair
    mispricing_halflife_sec: float = 20.0
    spread_probs: tuple[float, ...] = (0.45, 0.35, 0.20)   # 1, 2, 3 ticks
    size_median_shares: float = 120.0
    size_sigma: float = 1.1
    size_max_shares: float = 4000.0
    thin_rate_per_sec: float = 1 / 90.0
    thin_sec: tuple[float, float] = (4.0, 12.0)
    levels_min: int = 6
    levels_max: int = 18
    requote_prob: float = 0.45          # share of quote events that re-centre the touch
    thin_levels: int = 10               # a thin episode shrinks this many levels of one side


class MarketBooks:
    """The UP book of one window and its DOWN mirror (see the module docstring)."""

    def __init__(self, seed: int, now_ms: int, *, update_rate: float, trade_rate: float,
                 target: float = 0.5, params: BookParams | None = None):
        self.p = params or BookParams()
        self.rng = random.Random(seed)
        self.update_rate = max(update_rate, 1e-6)
        self.trade_rate = max(trade_rate, 1e-6)
        self.tick = COARSE
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.version = [1, 1]
        self.last_trade: list[int | None] = [None, None]
        self.volume = 0                 # hundredths of shares traded
        self.trades = 0
        self.changes = 0
        self.mis = 0.0                  # target offset from fair (probability)
        self.spread_ticks = 1
        self.t = now_ms                 # time of the last event (ms)
        self.thin_until = 0
        self.thin_bids = True           # the side a thin episode shrinks
        self.paused_until = 0           # after a tick change: no events until the resync
        self.tick_hold_until = 0        # a forced tick stays this long
        self.active = False
        self.t_quote = self.t_trade = self.t_thin = 1 << 62
        self._seed_book(target)

    # --- public ------------------------------------------------------------------------------
    def activate(self, now_ms: int) -> None:
        """Start generating events from now (a listed-but-quiet window becomes live)."""
        if self.active:
            return
        self.active = True
        self.t = max(self.t, now_ms)
        self.t_quote = self.t + self._gap(self.update_rate)
        self.t_trade = self.t + self._gap(self.trade_rate)
        self.t_thin = self.t + self._gap(self.p.thin_rate_per_sec)

    def next_ms(self) -> int:
        if not self.active:
            return 1 << 62
        if self.paused_until:
            return self.paused_until
        return min(self.t_quote, self.t_trade, self.t_thin)

    def advance(self, now_ms: int, fair: float) -> list:
        """Generate the events up to now_ms with the UP fair probability `fair`."""
        out: list = []
        if not self.active:
            return out
        while True:
            if self.paused_until:
                if self.paused_until > now_ms:
                    break
                t = self.paused_until
                self.paused_until = 0
                self.t = max(self.t, t)
                out.append(self.snapshot(t, 0, True))
                out.append(self.snapshot(t, 1, True))
                # events due during the pause are dropped: restart the clocks
                self.t_quote = max(self.t_quote, t + self._gap(self.update_rate))
                self.t_trade = max(self.t_trade, t + self._gap(self.trade_rate))
                continue
            t = min(self.t_quote, self.t_trade, self.t_thin)
            if t > now_ms:
                break
            self._ou(t)
            self.t = t
            if t == self.t_quote:
                self.t_quote = t + self._gap(self.update_rate)
                self._quote(t, fair, out)
            elif t == self.t_trade:
                self.t_trade = t + self._gap(self.trade_rate)
                self._trade(t, fair, out)
            else:
                self.t_thin = t + self._gap(self.p.thin_rate_per_sec)
                self._thin(t, out)
            self._check_tick(t, out)
        return out

    def force_tick_change(self, now_ms: int, hold_ms: int = 5000) -> list:
        """Toggle the tick now (fault injection): the tick_size_change pair, then a pause; the
        price rule does not change it back for `hold_ms`."""
        out: list = []
        self._set_tick(now_ms, FINE if self.tick == COARSE else COARSE, out)
        self.tick_hold_until = now_ms + hold_ms
        return out

    def best(self, token: int) -> tuple[int | None, int | None]:
        bb = max(self.bids) if self.bids else None
        ba = min(self.asks) if self.asks else None
        if token == 0:
            return bb, ba
        return (MIL - ba if ba is not None else None), (MIL - bb if bb is not None else None)

    def levels(self, token: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids, asks) of a token, worst first as the venue sends them (bids ascending, asks
        descending)."""
        if token == 0:
            return sorted(self.bids.items()), sorted(self.asks.items(), reverse=True)
        bids = sorted((MIL - p, s) for p, s in self.asks.items())
        asks = sorted(((MIL - p, s) for p, s in self.bids.items()), reverse=True)
        return bids, asks

    def snapshot(self, ts: int, token: int, full: bool) -> Snapshot:
        bids, asks = self.levels(token)
        return Snapshot(ts, token, bids, asks, self.version[token], self.tick,
                        self.last_trade[token], full)

    def mid(self, token: int = 0) -> float | None:
        bb, ba = self.best(token)
        if bb is None or ba is None:
            return None
        return (bb + ba) / 2 / MIL

    def depth_usd(self, ticks: int = 5) -> float:
        """USD resting within `ticks` ticks of the touch, both sides of the UP book."""
        bb, ba = self.best(0)
        usd = 0.0
        if bb is not None:
            usd += sum(p * s for p, s in self.bids.items() if p >= bb - ticks * self.tick)
        if ba is not None:
            usd += sum((MIL - p) * s for p, s in self.asks.items() if p <= ba + ticks * self.tick)
        return usd / MIL / 100

    # --- generation --------------------------------------------------------------------------
    def _gap(self, rate: float) -> int:
        return max(1, int(self.rng.expovariate(rate) * 1000))

    def _ou(self, t: int) -> None:
        dt = (t - self.t) / 1000
        if dt <= 0:
            return
        a = math.exp(-math.log(2) / self.p.mispricing_halflife_sec * dt)
        self.mis = self.mis * a + self.p.mispricing_sd * math.sqrt(1 - a * a) * self.rng.gauss(0, 1)

    def _size(self, thin: bool) -> int:
        r = self.rng
        if thin:
            return int(r.uniform(5, 8) * 100)
        sh = self.p.size_median_shares * math.exp(self.p.size_sigma * r.gauss(0, 1))
        sh = min(max(sh, 5.0), self.p.size_max_shares)
        if r.random() < 0.3:
            sh = round(sh)               # many resting orders are whole shares
        return max(MIN_SIZE, int(sh * 100))

    def _seed_book(self, target: float) -> None:
        tick, r = self.tick, self.rng
        bid = max(tick, min(MIL - 2 * tick, int(target * MIL - tick / 2) // tick * tick))
        ask = bid + tick * (1 + (r.random() < 0.5))
        p = bid
        for _ in range(r.randint(8, 14)):
            if p < tick:
                break
            self.bids[p] = self._size(False)
            p -= tick * r.choice((1, 1, 1, 2, 2, 3, 5))
        p = ask
        for _ in range(r.randint(8, 14)):
            if p > MIL - tick:
                break
            self.asks[p] = self._size(False)
            p += tick * r.choice((1, 1, 1, 2, 2, 3, 5))
        # a few far resting orders, large in shares, small in USD
        for far in (10, 20, 50):
            if far < min(self.bids, default=MIL):
                self.bids[far] = int(r.uniform(500, 20000) * 100)
            if MIL - far > max(self.asks, default=0):
                self.asks[MIL - far] = int(r.uniform(500, 20000) * 100)

    def _apply(self, ts: int, changes: list[tuple[bool, int, int]], origin: int) -> PriceChange:
        """Apply UP-book changes (buy side, price, new size) and build the paired entries."""
        entries: list[Entry] = []
        for buy, price, size in changes:
            book = self.bids if buy else self.asks
            if size > 0:
                book[price] = size
            else:
                book.pop(price, None)
            self.version[0] += 1
            self.version[1] += 1
            self.changes += 1
            ub, ua = self.best(0)
            up = Entry(0, buy, price, size, self.version[0], ub, ua)
            dn = Entry(1, not buy, MIL - price, size, self.version[1],
                       MIL - ua if ua is not None else None, MIL - ub if ub is not None else None)
            entries.extend((up, dn) if origin == 0 else (dn, up))
        return PriceChange(ts, entries)

    def _emit(self, ts: int, changes, origin: int, out: list) -> None:
        if not changes:
            return
        before = (self.best(0), self.best(1))
        out.append(self._apply(ts, changes, origin))
        for tok in (0, 1):
            now = self.best(tok)
            if now != before[tok]:
                out.append(BestBidAsk(ts, tok, now[0], now[1]))

    def _quote(self, t: int, fair: float, out: list) -> None:
        r = self.rng
        thin = t < self.thin_until
        if r.random() < 0.15:
            u, acc = r.random(), 0.0
            for k, pk in enumerate(self.p.spread_probs, 1):
                acc += pk
                if u < acc:
                    self.spread_ticks = k
                    break
        if r.random() < self.p.requote_prob:
            self._requote(t, fair, thin, out)
        else:
            self._tweak(t, thin, 0 if r.random() < 0.5 else 1, out)

    def _requote(self, t: int, fair: float, thin: bool, out: list) -> None:
        """The maker re-centres on the target: stale touch levels pulled, the new touch joined.
        One `price_change` per level, all at time t."""
        r, tick = self.rng, self.tick
        target = min(max(fair + self.mis, 0.0), 1.0) * MIL
        k = self.spread_ticks
        want_bid = int(math.floor((target - k * tick / 2) / tick)) * tick
        want_bid = max(tick, min(MIL - (k + 1) * tick, want_bid))
        want_ask = min(MIL - tick, want_bid + k * tick)
        changes = [(True, p, 0) for p in sorted(self.bids, reverse=True) if p > want_bid]
        changes += [(False, p, 0) for p in sorted(self.asks) if p < want_ask]
        bb = max((p for p in self.bids if p <= want_bid), default=None)
        ba = min((p for p in self.asks if p >= want_ask), default=None)
        if bb is None or bb < want_bid:
            changes.append((True, want_bid, self._size(thin and self.thin_bids)))
        if ba is None or ba > want_ask:
            changes.append((False, want_ask, self._size(thin and not self.thin_bids)))
        for ch in changes:
            self._emit(t, [ch], 0 if r.random() < 0.5 else 1, out)

    def _tweak(self, t: int, thin: bool, origin: int, out: list) -> None:
        r, tick = self.rng, self.tick
        buy = r.random() < 0.5
        book = self.bids if buy else self.asks
        if not book:
            return
        ranked = sorted(book, reverse=buy)               # best first
        thin = thin and buy == self.thin_bids
        u = r.random()
        n = len(ranked)
        if u < 0.45:                                     # resize one of the top levels
            p = ranked[min(int(r.expovariate(0.6)), n - 1)]
            if thin and p in ranked[: self.p.thin_levels]:
                size = self._size(True)
            else:
                size = max(MIN_SIZE, int(book[p] * math.exp(0.6 * r.gauss(0, 1))))
                size = min(size, int(self.p.size_max_shares * 100))
            if size != book[p]:
                self._emit(t, [(buy, p, size)], origin, out)
        elif n > self.p.levels_max or (u >= 0.8 and n > self.p.levels_min):
            p = r.choice(ranked[2:])                     # a deep level cancelled
            self._emit(t, [(buy, p, 0)], origin, out)
        elif n < self.p.levels_max:                      # a new level behind the touch
            j = r.randint(1, 8)
            p = ranked[0] - j * tick if buy else ranked[0] + j * tick
            if tick <= p <= MIL - tick and p not in book:
                self._emit(t, [(buy, p, self._size(thin))], origin, out)

    def _trade(self, t: int, fair: float, out: list) -> None:
        r = self.rng
        bb, ba = self.best(0)
        if bb is None or ba is None:
            return
        mid = (bb + ba) / 2
        z = max(-30.0, min(30.0, (fair * MIL - mid) / (2 * self.tick)))
        up_buy = r.random() < 1 / (1 + math.exp(-z))     # takers lean toward the fair side
        price = ba if up_buy else bb
        book = self.asks if up_buy else self.bids
        avail = book[price]
        if r.random() < 0.35 or avail <= MIN_SIZE:
            fill = avail
        else:
            fill = max(MIN_SIZE, int(avail * r.uniform(0.05, 0.8)))
        token = 0 if r.random() < 0.5 else 1
        # an UP buy at the ask is, on the DOWN book, a sell at its bid (1 - ask)
        tprice = price if token == 0 else MIL - price
        taker_buy = up_buy if token == 0 else not up_buy
        self._emit(t, [(not up_buy, price, avail - fill)], token, out)
        self.last_trade[token] = tprice
        self.last_trade[1 - token] = MIL - tprice
        self.volume += fill
        self.trades += 1
        tx = "0x" + "".join(f"{r.getrandbits(32):08x}" for _ in range(8))
        out.append(Trade(t, token, tprice, fill, taker_buy, tx))
        out.append(self.snapshot(t, token, False))       # the venue resends the book after a trade

    def _thin(self, t: int, out: list, seconds: float | None = None) -> None:
        """A thin episode: the best `thin_levels` levels of one side shrink to 5-8 shares
        (under ~50 USD in all at mid prices), and new touch orders stay that small meanwhile."""
        r = self.rng
        sec = r.uniform(*self.p.thin_sec) if seconds is None else seconds
        self.thin_until = max(self.thin_until, t + int(sec * 1000))
        buy = self.thin_bids = r.random() < 0.5
        book = self.bids if buy else self.asks
        changes = []
        for p in sorted(book, reverse=buy)[: self.p.thin_levels]:
            size = min(book[p], self._size(True))
            if size != book[p]:
                changes.append((buy, p, size))
        for ch in changes:
            self._emit(t, [ch], 0, out)

    def force_thin(self, now_ms: int, seconds: float) -> list:
        """Start a thin episode now (fault injection)."""
        out: list = []
        if not self.paused_until:
            self._thin(now_ms, out, seconds)
        return out

    def _check_tick(self, t: int, out: list) -> None:
        if t < self.tick_hold_until:
            return
        bb, ba = self.best(0)
        lo = bb if bb is not None else (ba if ba is not None else 500)
        hi = ba if ba is not None else lo
        if self.tick == COARSE and (lo < 40 or hi > 960):
            self._set_tick(t, FINE, out)
        elif self.tick == FINE and lo >= 50 and hi <= 950:
            self._set_tick(t, COARSE, out)

    def _set_tick(self, t: int, new: int, out: list) -> None:
        old = self.tick
        if new == old:
            return
        self.tick = new
        if new == COARSE:                 # merge levels off the coarse grid onto it
            for buy, book in ((True, self.bids), (False, self.asks)):
                merged: dict[int, int] = {}
                for p, s in book.items():
                    q = p // COARSE * COARSE if buy else -(-p // COARSE) * COARSE
                    q = min(max(q, COARSE), MIL - COARSE)
                    merged[q] = merged.get(q, 0) + s
                book.clear()
                book.update(merged)
            while self.bids and self.asks and max(self.bids) >= min(self.asks):
                self.bids.pop(max(self.bids))
            self.version[0] += 1
            self.version[1] += 1
        out.append(TickChange(t, 0, old, new))
        out.append(TickChange(t, 1, old, new))
        self.paused_until = t + int(self.rng.uniform(100, 600))
