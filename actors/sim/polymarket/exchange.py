"""The sim's Polymarket venue: Gamma, CLOB REST, the CLOB market WebSocket and RTDS, sans-I/O.

actors/sim/polymarket/port.py owns the sockets and the clock; a `PolyVenue` turns time and client
messages into frames: `step(now_ns)` returns `(receivers, text, kind)` to write, `on_clob_text` /
`on_rtds_text` answer one client message, `http()` answers one REST request, `idle()` names the
connections to close. Connections are opaque keys here. The books are books.py, the windows and
Gamma objects schedule.py, the settlement rules settle.py, the JSON wire format wire.py, the
Chainlink oracles and RTDS frames oracle.py, the faults fault_rules.py (all in actors/sim/polymarket/).

Markets (schedule.Catalog): every asset of ipc.names.ASSETS (btc, eth, sol, xrp) and every series of
ipc.names.POLY_SERIES (5m, 15m, 1h, 4h, 1d) is listed and answered on Gamma (`/markets` and
`/events` by `slug`; a window already seen also by `condition_ids` / `clob_token_ids`, Gamma's
list filters: the way to ask for one of several shortened windows sharing an hourly or daily
slug; without a filter, the current and next window of each followed series). A followed series
(settings.venues.window_secs) has the configured window length, any other its own. Live (moving)
books only for the current and next window of each followed series of the configured SYMBOL's
asset (CPU); any other window a client asked about has a quiet book. A SYMBOL without an up/down
market has no live book.

Oracles: one Chainlink stream per asset on RTDS (`<asset>/usd`). SYMBOL's asset follows the sim's
Binance futures mid; every other asset follows its own seeded random walk (oracle.PricePath).

Fair probability of a live window, by its rule (settle.py): P(S_end >= S0) = Φ(ln(S/S0)/(σ√τ)) with
S0 the price to beat, τ the seconds left, σ the asset's per-second volatility and S the price the
window settles on: for a Chainlink window the sim's futures mid on the Chainlink scale
(mid·(1 + basis)), for a Binance-candle window the sim's spot mid (against the candle's open);
0.5 before the start and while the price to beat is not known yet. At the window end its books
stop (no frame for its tokens any more). Gamma publishes `priceToBeat` `sim_poly_meta_delay_sec`
after the start (once the rule's number exists) and resolves (closed, finalPrice, outcomePrices
1/0) the same delay after the final number exists (the end; a daily window's end candle closes a
minute later), as `market_resolved` is sent; until then the ended window's
final books are still answered (REST, and the dump of a late subscriber), from then on REST is 404
and a subscription gets no dump.

CLOB market WebSocket protocol:
- the first message `{"assets_ids":[..],"type":"market"[,"custom_feature_enabled":..]}` subscribes
  and is answered with the tokens' `book` dumps (one array; `"initial_dump": false` skips it);
- on a live connection `{"assets_ids":[..],"operation":"subscribe"|"unsubscribe"
  [,"custom_feature_enabled":..]}` adds tokens (with their dumps) or drops them (nothing more is
  sent for them); an operation may also be the first message;
- a RE-SENT initial message on a live connection is IGNORED (no subscription change, no dump),
  counted as `resent_initial`. Chosen as the venue's most likely behaviour and the strict one:
  clients reported, before the operations shipped (2025-12), that the server "does not support
  updating subscriptions on existing connections" (pawsengineer/polymarket-rs PR 5), and the
  documented way is the operation; a client relying on a resend gets no books here;
- `best_bid_ask` only to connections with custom_feature_enabled; `new_market` (when a window of a
  followed series is listed, a day before its start, every asset) and `market_resolved` (with
  `sim_poly_market_resolved`, for every asset's windows of the followed series) are BROADCAST to
  every connection with custom_feature_enabled, subscribed to those tokens or not (public clients
  note they name tokens nobody subscribed to: Polymarket/rs-clob-client-v2 PR 16);
- per-connection accounting in `stats()["clob_subscriptions"]`: initial / subscribe / unsubscribe
  operations, re-sent initials, tokens subscribed now and at most.

Invariants:
- every frame parses with actors.venues.polymarket.clob.parse_frame / actors.venues.polymarket.rtds.parse_frame
  (the faults' corrupted frames excepted: those fail them by design);
- a token's frames reach exactly the connections subscribed to it, in generation order; a
  `price_change` frame holds the pair of entries of one change (both tokens) and goes to the
  subscribers of either;
- the REST book of a token is the generator's current state: equal to the book a client rebuilt
  from the dump and every frame sent since;
- Gamma's priceToBeat / finalPrice are the window's rule applied to what the sim streamed (RTDS
  observations; the spot klines for Binance-candle windows of SYMBOL's asset);
- faults (PolyFaults): a stall drops what it covers (lost); `silent_book` drops one token's data
  and then resends its full `book` when the silence ends; `malformed` replaces whole frames.
"""
from __future__ import annotations

import math
import random
import time
from urllib.parse import parse_qs, urlsplit

import orjson

from actors.sim.polymarket import schedule as pg
from actors.sim.polymarket import books as pm
from actors.sim.polymarket import oracle as rt
from actors.sim.polymarket import settle as st_
from actors.sim.polymarket.fault_rules import FaultError, PolyFaults, corrupt
from actors.sim.polymarket.wire import (NO_BOOK, book_msg, encode, new_market_msg, px, resolved_msg,
                                        rest_book, tick_str)
from ipc.names import POLY_SERIES, asset_of

_NS = 1_000_000_000
_MS = 1_000_000
_SEC_PER_YEAR = 365.0 * 86400.0
_RESOLVE_GIVE_UP_SEC = 600.0       # a window whose final price never appears is dropped after this
_OPS = ("initial", "subscribe", "unsubscribe", "resent_initial")


# --- sessions ---------------------------------------------------------------------------------
class ClobSession:
    __slots__ = ("id", "assets", "custom", "last_rx", "subscribed", "ops", "max_assets")

    def __init__(self, sid: int, now_s: float):
        self.id = sid
        self.assets: set[str] = set()
        self.custom = False
        self.last_rx = now_s
        self.subscribed = False
        self.ops = dict.fromkeys(_OPS, 0)
        self.max_assets = 0

    def describe(self) -> dict:
        return {"id": self.id, "subscribed": len(self.assets), "max_subscribed": self.max_assets,
                "custom_feature_enabled": self.custom, **self.ops}


class RtdsSession:
    __slots__ = ("subs", "cid", "last_rx")

    def __init__(self, cid: str, now_s: float):
        self.subs: dict[str, frozenset | None] = {}
        self.cid = cid
        self.last_rx = now_s


def followed_series(settings) -> dict[str, int]:
    """Each followed series' window length (settings.venues.window_secs), in POLY_SERIES order."""
    ws = dict(settings.venues.window_secs)
    return {s: int(ws[s]) for s in POLY_SERIES if s in ws}


# --- the venue --------------------------------------------------------------------------------
class PolyVenue:
    """See the module docstring. `spot`: the sim's Binance spot venue (actors/sim/binance/venue.py:
    its market and KlineStore); without it SYMBOL's candles come from its Chainlink stream."""

    def __init__(self, settings, market, now_ns: int, spot=None):
        self.s = settings
        self.market = market
        self.spot = spot
        self.asset = asset_of(settings.general.symbol)       # None: no live market
        self.followed = followed_series(settings)
        self.twap = bool(settings.sim.poly_twap)
        self.cat = pg.Catalog(self.followed, self.twap)
        self.meta_delay = float(settings.sim.poly_meta_delay_sec)
        self.send_resolved = bool(settings.sim.poly_market_resolved)
        seed = settings.sim.seed
        # one Chainlink stream per asset; SYMBOL's follows the futures mid
        self.sigma: dict[str, float] = {}
        self.oracles: dict[str, rt.Oracle] = {}
        self.paths: dict[str, rt.PricePath] = {}
        self.candles: dict = {}
        # the past an answered window can need: a daily window (up to 25 h) answered a day after
        # its end, its TWAP / candle span before its start
        hist = pg.LISTED_SEC + 25 * 3_600 + 3_600 + 2 * pg.TWAP_SEC
        for i, a in enumerate(pg.ASSET_LIST):
            if a == self.asset:
                sig = market.params.vol_annual / math.sqrt(_SEC_PER_YEAR)
                p0, oseed = market.futures_mid(), seed
            else:
                sig = rt.VOL_ANNUAL[a] / math.sqrt(_SEC_PER_YEAR)
                p0, oseed = rt.START_PRICES[a], seed * 31 + 1000 + i
                self.paths[a] = rt.PricePath(oseed + 7, now_ns, p0, sig)
            self.sigma[a] = sig
            self.oracles[a] = rt.Oracle(oseed, now_ns, p0, sigma_1s=sig, history_sec=hist)
            self.candles[a] = (st_.SpotCandles(spot.store) if a == self.asset and spot is not None
                               else st_.OracleCandles(self.oracles[a]))
        self.books: dict[tuple, pm.MarketBooks] = {}
        self.token_of: dict[str, tuple[tuple, int]] = {}   # token -> (window key, 0 UP / 1 DOWN)
        self.ptb: dict[tuple, float] = {}                  # window key -> price to beat
        self.resolved: dict[tuple, tuple[float, bool]] = {}  # key -> (final price, up won)
        self.clob: dict = {}                               # conn -> ClobSession
        self.subs: dict[str, set] = {}                     # token -> conns
        self.rtds: dict = {}                               # conn -> RtdsSession
        self.faults = PolyFaults()
        self.rng = random.Random(seed + 99)
        self.msgs: dict[str, int] = {}                     # messages sent, by type
        self.frames_sent = 0                               # frames written (per connection)
        self.http_counts: dict[str, int] = {}
        self.bad_client_msgs = 0
        self.connections_total = {"clob": 0, "rtds": 0}
        self.idle_closed = {"clob": 0, "rtds": 0}
        self.ops_total = dict.fromkeys(_OPS, 0)
        self.listed_total = 0                              # new_market windows announced
        self.resolved_total = 0
        self._live: tuple[tuple, ...] = ()                 # keys of the windows with moving books
        self._to_resolve: list[tuple[int, tuple]] = []     # (final known at, key), by time
        # per followed (asset, series): [current start, its end, next start to announce]
        now_s = now_ns / _NS
        self._track: dict[tuple[str, str], list[int]] = {}
        for (a, s), sch in self.cat.scheds.items():
            if s in self.followed:
                cur = sch.start_of(now_s)
                nxt = next(sch.starts(now_s + pg.LISTED_SEC + 1e-9, now_s + pg.LISTED_SEC + 3 * 86_400))
                self._track[(a, s)] = [cur, sch.next_start(cur), nxt]
        self._next_roll_s = 0.0

    # --- windows -------------------------------------------------------------------------------
    def sched(self, key: tuple) -> pg.Schedule:
        return self.cat[(key[0], key[1])]

    def window(self, key: tuple) -> pg.Window:
        return self.cat[(key[0], key[1])].window(key[2])

    def primary(self) -> tuple[str, str]:
        """(asset, series) of the stats' `schedule`: SYMBOL's asset (btc without one), the first
        followed series (the first series without any)."""
        return self.asset or "btc", next(iter(self.followed), POLY_SERIES[0])

    def _books(self, key: tuple, now_ms: int) -> pm.MarketBooks:
        b = self.books.get(key)
        if b is None:
            w = self.window(key)
            seed = int.from_bytes(pg._sha("book", str(self.s.sim.seed), w.slug, str(w.start))[:8], "big")
            b = pm.MarketBooks(seed, now_ms, update_rate=self.s.sim.poly_update_rate_per_sec,
                               trade_rate=self.s.sim.poly_trade_rate_per_sec)
            self.books[key] = b
            self.token_of[w.up_token] = (key, 0)
            self.token_of[w.down_token] = (key, 1)
            self._evict()
        return b

    def _evict(self) -> None:
        if len(self.books) <= 64:
            return
        live = set(self._live)
        for key in sorted(self.books, key=lambda k: k[2]):     # the oldest windows first
            if len(self.books) <= 48:
                break
            if key in live:
                continue
            w = self.window(key)
            del self.books[key]
            for t in w.tokens:
                self.token_of.pop(t, None)

    def price_to_beat(self, key: tuple, now_ms: int) -> float | None:
        v = self.ptb.get(key)
        if v is None:
            a = key[0]
            v = st_.price_to_beat(self.sched(key).settles, self.window(key), self.oracles[a],
                                  self.candles[a], now_ms)
            if v is not None:
                self.ptb[key] = v
                if len(self.ptb) > 1024:
                    del self.ptb[min(self.ptb, key=lambda k: k[2])]
        return v

    def _resolution(self, key: tuple, now_ms: int) -> tuple[float, bool] | None:
        r = self.resolved.get(key)
        if r is None:
            a = key[0]
            ptb = self.price_to_beat(key, now_ms)
            final = st_.final_price(self.sched(key).settles, self.window(key), self.oracles[a],
                                    self.candles[a], now_ms)
            if ptb is None or final is None:
                return None
            r = self.resolved[key] = (final, final >= ptb)
            if len(self.resolved) > 1024:
                del self.resolved[min(self.resolved, key=lambda k: k[2])]
        return r

    def _settle_price(self, key: tuple) -> float:
        """The price the window settles on, now (see the module docstring)."""
        a = key[0]
        if a != self.asset:
            return self.oracles[a].current() or rt.START_PRICES[a]
        if self.sched(key).settles.source == "binance":
            return self.spot.market.futures_mid() if self.spot is not None else self.market.spot_mid()
        return self.market.futures_mid() * (1 + self.oracles[a].basis * 1e-4)

    def fair(self, key: tuple, now_ns: int) -> float:
        now_s = now_ns / _NS
        w = self.window(key)
        if now_s < w.start:
            return 0.5
        s0 = self.price_to_beat(key, now_ns // _MS)
        if s0 is None:
            return 0.5
        st = self.sched(key).settles
        return pm.fair_up(self._settle_price(key), s0, self.sigma[key[0]],
                          st_.settles_at_s(st, w) - now_s)

    # --- the clock -----------------------------------------------------------------------------
    def next_due_ns(self) -> int:
        t = min(o.next_due_ns() for o in self.oracles.values())
        for key in self._live:
            b = self.books.get(key)
            if b is not None:
                t = min(t, b.next_ms() * _MS)
        return min(t, int(self._next_roll_s * _NS))

    def step(self, now_ns: int, mono_s: float | None = None) -> list[tuple[list, str, str]]:
        """Advance to now: RTDS updates due, window rolls and listings, book events. Returns
        frames to write."""
        mono_s = time.monotonic() if mono_s is None else mono_s
        now_ms = now_ns // _MS
        now_s = now_ns / _NS
        out: list[tuple[list, str, str]] = []
        for a, orc in self.oracles.items():
            if a == self.asset:
                orc.sample(now_ns, self.market.futures_mid())
            elif now_ns >= (orc.last + 1) * _NS:    # a walk: sampled once a second is enough
                orc.sample(now_ns, self.paths[a].at(now_ns))
            for obs_ms, v in orc.due(now_ns):
                self._rtds_update(a, obs_ms, v, now_ms, mono_s, out)
        if now_s >= self._next_roll_s:
            self._roll(now_s, now_ms, mono_s, out)
        if self.send_resolved:
            self._send_resolutions(now_ns, out, mono_s)
        for key in self._live:
            b = self.books[key]
            msgs = b.advance(now_ms, self.fair(key, now_ns))
            if msgs:
                self._publish(self.window(key), msgs, mono_s, out)
        for tok in self.faults.ended_silences(mono_s):
            loc = self.token_of.get(tok)
            if loc and loc[0] in self.books and now_s < self.window(loc[0]).end:
                snap = self.books[loc[0]].snapshot(now_ms, loc[1], True)
                self._publish(self.window(loc[0]), [snap], mono_s, out)
        return out

    def _roll(self, now_s: float, now_ms: int, mono_s: float, out: list) -> None:
        """Window ends (queued for resolution), new listings (new_market), the live set."""
        nxt_roll = math.inf
        for (a, s), tr in self._track.items():
            sch = self.cat[(a, s)]
            if now_s >= tr[1]:
                old = sch.window(tr[0])
                if old.end <= now_s and self.send_resolved:
                    self._to_resolve.append((st_.settles_at_s(sch.settles, old), old.key))
                cur = sch.start_of(now_s)
                tr[0], tr[1] = cur, sch.next_start(cur)
            while tr[2] <= now_s + pg.LISTED_SEC:
                w = sch.window(tr[2])
                self._send_custom(new_market_msg(w, pg.description(sch), now_ms), "new_market",
                                  out, mono_s)
                self.listed_total += 1
                tr[2] = sch.next_start(tr[2])
            nxt_roll = min(nxt_roll, tr[1], tr[2] - pg.LISTED_SEC)
        self._to_resolve.sort()
        self._next_roll_s = nxt_roll if nxt_roll < math.inf else now_s + 3600.0
        live: list[tuple] = []
        if self.asset is not None:
            for s in self.followed:
                tr = self._track[(self.asset, s)]
                live += [(self.asset, s, tr[0]), (self.asset, s, tr[1])]
        live_t = tuple(live)
        if live_t != self._live:
            for key, b in self.books.items():
                if b.active and key not in live_t and self.window(key).end <= now_s:
                    b.active = False                 # ended: its tokens get no frame any more
            self._live = live_t
            for key in live_t:
                self._books(key, now_ms).activate(now_ms)

    def _send_resolutions(self, now_ns: int, out: list, mono_s: float) -> None:
        q = self._to_resolve
        now_s = now_ns / _NS
        keep = []
        while q and now_s >= q[0][0] + self.meta_delay:
            at, key = q.pop(0)
            r = self._resolution(key, now_ns // _MS)
            if r is None:
                if now_s < at + _RESOLVE_GIVE_UP_SEC:
                    keep.append((at, key))           # the final number is not there yet
                continue
            self.resolved_total += 1
            self._send_custom(resolved_msg(self.window(key), r[1], now_ns // _MS), "market_resolved",
                              out, mono_s)
        if keep:
            q[:0] = keep

    def _publish(self, w: pg.Window, msgs: list, mono_s: float, out: list) -> None:
        blocked = self.faults.blocked_tokens(w.tokens, mono_s) if (
            self.faults.stall or self.faults.silent) else frozenset()
        for m in msgs:
            enc = encode(w, m, blocked)
            if enc is None:
                continue
            self._send_clob(enc[1], enc[0], m.kind, out, mono_s,
                            custom_only=m.kind == "best_bid_ask")

    def _send_clob(self, tokens: set[str], msg: dict, kind: str, out: list, mono_s: float,
                   custom_only: bool = False) -> None:
        conns: set = set()
        for t in tokens:
            s = self.subs.get(t)
            if s:
                conns |= s
        if custom_only:
            conns = {c for c in conns if self.clob[c].custom}
        self._emit(conns, (*sorted(tokens), "market", "*"), msg, kind, out)

    def _send_custom(self, msg: dict, kind: str, out: list, mono_s: float) -> None:
        """A broadcast event (new_market, market_resolved): every custom-feature connection."""
        if self.faults.stall.get("market", 0) > mono_s or self.faults.stall.get("*", 0) > mono_s:
            return                          # a stall of the CLOB socket covers them too
        conns = {c for c, sess in self.clob.items() if sess.custom and sess.subscribed}
        self._emit(conns, ("market", "*"), msg, kind, out)

    def _emit(self, conns: set, fault_keys: tuple, msg: dict, kind: str, out: list) -> None:
        if not conns:
            return
        text = orjson.dumps(msg).decode()
        if self.faults.bad:
            v = self.faults.take_bad(fault_keys)
            if v is not None:
                text = corrupt(v, text, False)
                kind = "malformed"
        self.msgs[kind] = self.msgs.get(kind, 0) + 1
        out.append((list(conns), text, kind))

    def _rtds_update(self, asset: str, obs_ms: int, v: float, now_ms: int, mono_s: float,
                     out: list) -> None:
        sym = rt.stream(asset)
        conns = [c for c, s in self.rtds.items() if rt.TOPIC in s.subs
                 and (s.subs[rt.TOPIC] is None or sym in s.subs[rt.TOPIC])]
        if not conns or self.faults.rtds_stalled(mono_s):
            return
        tail = rt.update_tail(sym, obs_ms, v, now_ms)
        variant = self.faults.take_bad(("rtds", "*")) if self.faults.bad else None
        kind = "rtds_update" if variant is None else "malformed"
        self.msgs[kind] = self.msgs.get(kind, 0) + 1
        for c in conns:
            text = rt.with_connection_id(self.rtds[c].cid, tail)
            out.append(([c], text if variant is None else corrupt(variant, text, True), kind))

    # --- CLOB WebSocket ------------------------------------------------------------------------
    def clob_open(self, conn, mono_s: float) -> None:
        self.connections_total["clob"] += 1
        self.clob[conn] = ClobSession(self.connections_total["clob"], mono_s)

    def clob_close(self, conn) -> None:
        sess = self.clob.pop(conn, None)
        if sess is not None:
            for t in sess.assets:
                self._unsub(conn, t)

    def _unsub(self, conn, token: str) -> None:
        s = self.subs.get(token)
        if s is not None:
            s.discard(conn)
            if not s:
                del self.subs[token]

    def on_clob_text(self, conn, text: str | bytes, now_ns: int, mono_s: float) -> list[str]:
        """Replies to one client text frame (PONG, book dumps); see the module docstring."""
        sess = self.clob.get(conn)
        if sess is None:
            return []
        sess.last_rx = mono_s
        body = text.strip() if isinstance(text, str) else text.decode("utf-8", "replace").strip()
        if body == "PING":
            return ["PONG"]
        try:
            d = orjson.loads(body)
        except orjson.JSONDecodeError:
            d = None
        ids = d.get("assets_ids") if isinstance(d, dict) else None
        op = d.get("operation") if isinstance(d, dict) else None
        if not isinstance(ids, list) or not all(isinstance(a, str) for a in ids) \
                or op not in (None, "subscribe", "unsubscribe"):
            self.bad_client_msgs += 1
            return []
        if op is None:
            if sess.subscribed:             # a re-sent initial message: ignored (module docstring)
                self._count(sess, "resent_initial")
                return []
            op_name = "initial"
        else:
            op_name = op
        self._count(sess, op_name)
        if "custom_feature_enabled" in d:
            sess.custom = bool(d["custom_feature_enabled"])
        if op == "unsubscribe":
            for a in ids:
                if a in sess.assets:
                    sess.assets.discard(a)
                    self._unsub(conn, a)
            return []
        sess.subscribed = True
        for a in ids:
            sess.assets.add(a)
            self.subs.setdefault(a, set()).add(conn)
        sess.max_assets = max(sess.max_assets, len(sess.assets))
        if d.get("initial_dump", True) is False:
            return []
        return self._dumps(ids, now_ns, mono_s)

    def _count(self, sess: ClobSession, op: str) -> None:
        sess.ops[op] += 1
        self.ops_total[op] += 1

    def _dumps(self, ids: list[str], now_ns: int, mono_s: float) -> list[str]:
        now_ms = now_ns // _MS
        blocked = self.faults.blocked_tokens(ids, mono_s)
        books = []
        for a in dict.fromkeys(ids):
            loc = self.token_of.get(a)
            if loc is None or a in blocked or now_ns / _NS >= self.window(loc[0]).end + self.meta_delay:
                continue                  # unknown, stalled, or resolved (no orderbook any more)
            b = self._books(loc[0], now_ms)
            books.append(book_msg(self.window(loc[0]), b.snapshot(now_ms, loc[1], True)))
        if not books:
            return []
        self.msgs["book"] = self.msgs.get("book", 0) + len(books)
        text = orjson.dumps(books).decode()
        if self.faults.bad:
            v = self.faults.take_bad((*[b["asset_id"] for b in books], "market", "*"))
            if v is not None:
                text = corrupt(v, text, False)
        return [text]

    # --- RTDS WebSocket ------------------------------------------------------------------------
    def rtds_open(self, conn, mono_s: float) -> list[str]:
        self.rtds[conn] = RtdsSession(rt.connection_id(self.rng), mono_s)
        self.connections_total["rtds"] += 1
        return [""]                       # the venue's empty greeting frame

    def rtds_close(self, conn) -> None:
        self.rtds.pop(conn, None)

    def on_rtds_text(self, conn, text: str | bytes, now_ns: int, mono_s: float) -> list[str]:
        sess = self.rtds.get(conn)
        if sess is None:
            return []
        sess.last_rx = mono_s
        p = rt.parse_client(text)
        if p[0] == "ping":
            return ["PONG"]
        if p[0] == "bad":
            self.bad_client_msgs += 1
            return []
        out = []
        for topic, typ, syms in p[1]:
            if topic not in rt.KNOWN_TOPICS:
                out.append(rt.error_frame(topic, typ))
                continue
            if p[0] == "unsubscribe":
                sess.subs.pop(topic, None)
                continue
            sess.subs[topic] = syms
            if topic != rt.TOPIC or self.faults.rtds_stalled(mono_s):
                continue
            # one dump per stream the subscription covers (every asset's when unfiltered)
            for a, orc in self.oracles.items():
                sym = rt.stream(a)
                if syms is None or sym in syms:
                    self.msgs["rtds_snapshot"] = self.msgs.get("rtds_snapshot", 0) + 1
                    out.append(rt.snapshot(sym, list(orc.published), now_ns // _MS))
        return out

    # --- keepalive -----------------------------------------------------------------------------
    def idle(self, mono_s: float) -> list:
        """Connections silent (no text frame) past their venue's limit: to be closed."""
        out = []
        lim = float(self.s.sim.poly_idle_sec)
        for c, s in self.clob.items():
            if mono_s - s.last_rx > lim:
                out.append(c)
                self.idle_closed["clob"] += 1
        lim = float(self.s.sim.rtds_idle_sec)
        for c, s in self.rtds.items():
            if mono_s - s.last_rx > lim:
                out.append(c)
                self.idle_closed["rtds"] += 1
        return out

    # --- REST ----------------------------------------------------------------------------------
    def _live_info(self, key: tuple, now_ns: int) -> pg.Live:
        now_s = now_ns / _NS
        now_ms = now_ns // _MS
        w = self.window(key)
        b = self._books(key, now_ms)
        bb, ba = b.best(0)
        ptb = self.price_to_beat(key, now_ms) if now_s >= w.start + self.meta_delay else None
        settled_s = st_.settles_at_s(self.sched(key).settles, w)
        res = self._resolution(key, now_ms) if now_s >= settled_s + self.meta_delay else None
        mid = b.mid(0)
        return pg.Live(now_s=now_s, up_mid=0.5 if mid is None else mid,
                       best_bid=None if bb is None else bb / 1000,
                       best_ask=None if ba is None else ba / 1000,
                       last_trade=None if b.last_trade[0] is None else b.last_trade[0] / 1000,
                       volume=b.volume / 100, liquidity=round(b.depth_usd(50), 4),
                       price_to_beat=ptb,
                       final_price=None if res is None else res[0],
                       up_won=None if res is None else res[1])

    def http(self, path: str, now_ns: int) -> tuple[int, str] | None:
        """(status, JSON body) for a GET under /gamma or /clob; None: not a REST route."""
        u = urlsplit(path)
        q = parse_qs(u.query)
        route = u.path.rstrip("/")
        now_s = now_ns / _NS
        if route in ("/gamma/markets", "/gamma/events"):
            self.http_counts[route] = self.http_counts.get(route, 0) + 1
            if self.faults.gamma_empty > 0:
                self.faults.gamma_empty -= 1
                return 200, "[]"
            slugs = q.get("slug")
            ids = [i for k in ("condition_ids", "clob_token_ids") for v in q.get(k, ())
                   for i in v.split(",") if i]
            if slugs or ids:
                wins = [w for w in (self.cat.lookup(s, now_s) for s in slugs or ()) if w is not None]
                for w in (self.cat.by_id(i) for i in ids):
                    if w is not None and w not in wins and self.sched(w.key).listed(w.start, now_s):
                        wins.append(w)
            else:                         # the current and next window of each followed series
                a = self.asset or "btc"
                wins = []
                for s in self.followed or (POLY_SERIES[0],):
                    sch = self.cat[(a, s)]
                    cur = sch.start_of(now_s)
                    wins += [sch.window(cur), sch.window(sch.next_start(cur))]
            make = pg.market_obj if route == "/gamma/markets" else pg.event_obj
            return 200, orjson.dumps([make(self.sched(w.key), w, self._live_info(w.key, now_ns))
                                      for w in wins]).decode()
        if route == "/clob/book":
            self.http_counts[route] = self.http_counts.get(route, 0) + 1
            tok = (q.get("token_id") or [""])[0]
            if not tok:
                return 400, orjson.dumps({"error": "Invalid token id"}).decode()
            loc = self.token_of.get(tok)
            if loc is None or now_s >= self.window(loc[0]).end + self.meta_delay:
                return 404, NO_BOOK
            b = self._books(loc[0], now_ns // _MS)
            return 200, orjson.dumps(rest_book(self.window(loc[0]),
                                               b.snapshot(now_ns // _MS, loc[1], True))).decode()
        if route.startswith(("/gamma", "/clob")):
            return 404, orjson.dumps({"error": "not found"}).decode()
        return None

    # --- faults and stats ----------------------------------------------------------------------
    def apply_fault(self, f: dict, now_ns: int, mono_s: float) -> tuple[dict, list]:
        """(answer, frames to write now). Drop/disconnect are the server's (it reads `kind`)."""
        kind, stream = f["kind"], f.get("stream")
        fs = self.faults
        fs.applied[kind] += 1
        ans: dict = {"ok": True, "kind": kind, "venue": "polymarket"}
        out: list = []
        if kind == "stall":
            key = stream or "*"
            fs.stall[key] = max(fs.stall.get(key, 0.0), mono_s + f["seconds"])
        elif kind == "malformed":
            key = stream or "*"
            fs.bad[key] = fs.bad.get(key, 0) + f["count"]
        elif kind == "gamma404":
            fs.gamma_empty += f["count"]
        elif kind == "silent_book":
            if f["asset"] not in self.token_of:
                raise FaultError("unknown asset (token id)")
            fs.silent[f["asset"]] = max(fs.silent.get(f["asset"], 0.0), mono_s + f["seconds"])
        elif kind in ("tick_size", "thin_book"):
            loc = self.token_of.get(f["asset"])
            if loc is None or loc[0] not in self._live:
                raise FaultError("asset is not a token of a live window")
            b = self.books[loc[0]]
            if kind == "tick_size":
                msgs = b.force_tick_change(now_ns // _MS)
                ans["tick_size"] = tick_str(b.tick)
            else:
                msgs = b.force_thin(now_ns // _MS, f["seconds"])
            self._publish(self.window(loc[0]), msgs, mono_s, out)
        elif kind == "clear":
            fs.stall.clear()
            fs.bad.clear()
            fs.gamma_empty = 0
            for t in list(fs.silent):
                fs.silent[t] = 0.0           # ends now: the resync book goes out on the next step
        return ans, out

    def window_info(self, key: tuple, now_ns: int) -> dict:
        w = self.window(key)
        b = self.books.get(key)
        now_ms = now_ns // _MS
        res = self.resolved.get(key)
        d = {"slug": w.slug, "start": w.start, "end": w.end, "condition_id": w.condition_id,
             "up_token": w.up_token, "down_token": w.down_token,
             "price_to_beat": self.price_to_beat(key, now_ms),
             "final_price": None if res is None else res[0],
             "fair_up": round(self.fair(key, now_ns), 6)}
        if b is not None:
            d["tick_size"] = tick_str(b.tick)
            d["up_mid"] = b.mid(0)
        return d

    def schedule_info(self, asset: str, series: str, now_ns: int) -> dict:
        sch = self.cat[(asset, series)]
        cur = sch.start_of(now_ns / _NS)
        prev = sch.start_of(cur - 1)
        st = sch.settles
        return {"asset": asset, "series": series, "window_sec": sch.window_sec,
                "slug_prefix": sch.prefix, "resolution_source": sch.source,
                "settles": {"source": st.source, "method": st.method, "candle_tf": st.candle_tf,
                            "twap_sec": st.twap_sec},
                "previous": self.window_info((asset, series, prev), now_ns),
                "current": self.window_info((asset, series, cur), now_ns),
                "next": self.window_info((asset, series, sch.next_start(cur)), now_ns)}

    def stats(self, now_ns: int, mono_s: float) -> dict:
        a, s0 = self.primary()
        books = {}
        live_or_prev = set(self._live)
        for s in self.followed:
            if self.asset is not None:
                sch = self.cat[(self.asset, s)]
                live_or_prev.add((self.asset, s, sch.start_of(sch.start_of(now_ns / _NS) - 1)))
        for key in sorted(live_or_prev, key=lambda k: (k[1], k[2])):
            b = self.books.get(key)
            if b is None:
                continue
            w = self.window(key)
            for i, tok in enumerate(w.tokens):
                bb, ba = b.best(i)
                books[tok] = {"slug": w.slug, "series": w.series, "outcome": ("Up", "Down")[i],
                              "hash": pm.book_hash(tok, b.version[i]), "version": b.version[i],
                              "best_bid": px(bb), "best_ask": px(ba), "tick_size": tick_str(b.tick),
                              "live": b.active,
                              "subscribers": len(self.subs.get(tok, ()))}
        orc = self.oracles[a]
        last = orc.published[-1] if orc.published else None
        sched = self.schedule_info(a, s0, now_ns)
        primary_ptb = {str(k[2]): v for k, v in sorted(self.ptb.items()) if k[:2] == (a, s0)}
        return {
            "venue": "polymarket", "now_ms": now_ns // _MS, "now_ns": now_ns, "asset": self.asset,
            "followed": dict(self.followed),
            "connections": {"clob": len(self.clob), "rtds": len(self.rtds)},
            "connections_total": dict(self.connections_total),
            "idle_closed": dict(self.idle_closed),
            "frames_sent": self.frames_sent, "messages": dict(self.msgs),
            "bad_client_messages": self.bad_client_msgs, "http": dict(self.http_counts),
            "clob_subscriptions": {
                "subscribe_ops": self.ops_total["subscribe"],
                "unsubscribe_ops": self.ops_total["unsubscribe"],
                "initial": self.ops_total["initial"],
                "resent_initial": self.ops_total["resent_initial"],
                "connections": [sess.describe() for sess in self.clob.values()]},
            "listed": self.listed_total, "resolved": self.resolved_total,
            "schedule": sched,
            "schedules": {s: (sched if s == s0 else self.schedule_info(a, s, now_ns))
                          for s in self.followed},
            "books": books,
            "chainlink": {"symbol": rt.stream(a),
                          "last": None if last is None else {"timestamp": last[0], "value": last[1]},
                          "basis_bps": orc.basis, "futures_mid": self.market.futures_mid(),
                          "spot_mid": None if self.spot is None else self.spot.market.futures_mid(),
                          "window_start_prices": primary_ptb},
            "oracles": {x: {"symbol": rt.stream(x), "last": None if not o.published else
                            {"timestamp": o.published[-1][0], "value": o.published[-1][1]}}
                        for x, o in self.oracles.items()},
            "faults": self.faults.describe(mono_s),
        }
