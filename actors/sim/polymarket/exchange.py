"""The sim's Polymarket venue: Gamma, CLOB REST, the CLOB market WebSocket and RTDS, sans-I/O.

actors/sim/polymarket/port.py owns the sockets and the clock; a `PolyVenue` turns time and client
messages into frames: `step(now_ns)` returns `(receivers, text, kind)` to write, `on_clob_text` /
`on_rtds_text` answer one client message, `http()` answers one REST request, `idle()` names the
connections to close. Connections are opaque keys here. The books are books.py, the
windows and Gamma objects schedule.py, the JSON wire format wire.py, the Chainlink oracle
and RTDS frames oracle.py, the faults fault_rules.py (all in actors/sim/polymarket/).

Windows (schedule.Schedule): the current window and the next one are live (their books move,
actors/sim/polymarket/books.py); any other listed window a client asked about has a quiet book. The
UP fair probability of a live window is Φ(ln(S/S0)/(σ√τ)) with S the sim's futures mid on the
Chainlink scale (mid·(1 + basis)), S0 the Chainlink observation at the window start (the price
to beat), σ the sim's per-second volatility and τ the seconds left; 0.5 before the start. At the
window end its books stop (no frame for its tokens any more); `market_resolved` is sent only
with `sim_poly_market_resolved` (the live venue was reported not to send it). Gamma publishes
`priceToBeat` `sim_poly_meta_delay_sec` after the start and resolves (closed, finalPrice,
outcomePrices 1/0) the same delay after the end; until then the ended window's final books are
still answered (REST, and the dump of a late subscriber), from then on REST is 404 and a
subscription gets no dump.

Invariants:
- every frame parses with actors.venues.polymarket.clob.parse_frame / actors.venues.polymarket.rtds.parse_frame
  (the faults' corrupted frames excepted: those fail them by design);
- a token's frames reach exactly the connections subscribed to it, in generation order; a
  `price_change` frame holds the pair of entries of one change (both tokens) and goes to the
  subscribers of either; `best_bid_ask` only to connections with custom_feature_enabled;
- the REST book of a token is the generator's current state: equal to the book a client rebuilt
  from the dump and every frame sent since;
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
from actors.sim.polymarket.fault_rules import FaultError, PolyFaults, corrupt
from actors.sim.polymarket.wire import NO_BOOK, book_msg, encode, px, resolved_msg, rest_book, tick_str

_NS = 1_000_000_000
_MS = 1_000_000
_SEC_PER_YEAR = 365.0 * 86400.0


# --- sessions ---------------------------------------------------------------------------------
class ClobSession:
    __slots__ = ("assets", "custom", "last_rx", "subscribed")

    def __init__(self, now_s: float):
        self.assets: set[str] = set()
        self.custom = False
        self.last_rx = now_s
        self.subscribed = False


class RtdsSession:
    __slots__ = ("subs", "cid", "last_rx")

    def __init__(self, cid: str, now_s: float):
        self.subs: dict[str, frozenset | None] = {}
        self.cid = cid
        self.last_rx = now_s


# --- the venue --------------------------------------------------------------------------------
class PolyVenue:
    """See the module docstring."""

    def __init__(self, settings, market, now_ns: int):
        self.s = settings
        self.market = market
        self.sched = pg.Schedule(settings.venues.polymarket_window, settings.venues.polymarket_window_sec)
        self.W = self.sched.window_sec
        self.sigma = market.params.vol_annual / math.sqrt(_SEC_PER_YEAR)
        self.oracle = rt.Oracle(settings.sim.seed, now_ns, market.futures_mid(),
                                sigma_1s=self.sigma, history_sec=86_400 + self.W + 3_600)
        self.meta_delay = float(settings.sim.poly_meta_delay_sec)
        self.twap = bool(settings.sim.poly_twap)
        self.send_resolved = bool(settings.sim.poly_market_resolved)
        self.books: dict[int, pm.MarketBooks] = {}
        self.token_of: dict[str, tuple[int, int]] = {}     # token -> (window start, 0 UP / 1 DOWN)
        self.s0: dict[int, float] = {}                     # window start -> price to beat
        self.ended: set[int] = set()
        self.resolved: dict[int, tuple[float, bool]] = {}  # start -> (final price, up won)
        self.clob: dict = {}                               # conn -> ClobSession
        self.subs: dict[str, set] = {}                     # token -> conns
        self.rtds: dict = {}                               # conn -> RtdsSession
        self.faults = PolyFaults()
        self.rng = random.Random(settings.sim.seed + 99)
        self.msgs: dict[str, int] = {}                     # messages sent, by type
        self.frames_sent = 0                               # frames written (per connection)
        self.http_counts: dict[str, int] = {}
        self.bad_client_msgs = 0
        self.connections_total = {"clob": 0, "rtds": 0}
        self.idle_closed = {"clob": 0, "rtds": 0}
        self._live_prev: tuple[int, int] | None = None
        self._to_resolve: list[int] = []                   # ended windows awaiting resolution

    # --- windows -------------------------------------------------------------------------------
    def _books(self, start: int, now_ms: int) -> pm.MarketBooks:
        b = self.books.get(start)
        if b is None:
            w = self.sched.window(start)
            seed = int.from_bytes(pg._sha("book", str(self.s.sim.seed), w.slug)[:8], "big")
            b = pm.MarketBooks(seed, now_ms, update_rate=self.s.sim.poly_update_rate_per_sec,
                               trade_rate=self.s.sim.poly_trade_rate_per_sec)
            self.books[start] = b
            self.token_of[w.up_token] = (start, 0)
            self.token_of[w.down_token] = (start, 1)
            self._evict(now_ms // 1000)
        return b

    def _evict(self, now_s: int) -> None:
        if len(self.books) <= 64:
            return
        cur = self.sched.start_of(now_s)
        for start in sorted(self.books, key=lambda s: abs(s - cur), reverse=True):
            if len(self.books) <= 48:
                break
            if start in (cur, cur + self.W):
                continue
            w = self.sched.window(start)
            del self.books[start]
            for t in w.tokens:
                self.token_of.pop(t, None)

    def price_to_beat(self, start: int) -> float | None:
        v = self.s0.get(start)
        if v is None:
            v = self.oracle.value_at(start)
            if v is not None:
                self.s0[start] = v
                if len(self.s0) > 256:
                    del self.s0[min(self.s0)]
        return v

    def _resolution(self, start: int) -> tuple[float, bool] | None:
        r = self.resolved.get(start)
        if r is None:
            end = start + self.W
            ptb = self.price_to_beat(start)
            final = self.oracle.twap(end, 60) if self.twap else self.oracle.value_at(end)
            if ptb is None or final is None:
                return None
            r = self.resolved[start] = (final, final >= ptb)
            if len(self.resolved) > 256:
                del self.resolved[min(self.resolved)]
        return r

    def fair(self, start: int, now_ns: int) -> float:
        now_s = now_ns / _NS
        if now_s < start:
            return 0.5
        s0 = self.price_to_beat(start)
        if s0 is None:
            return 0.5
        s = self.market.futures_mid() * (1 + self.oracle.basis * 1e-4)
        return pm.fair_up(s, s0, self.sigma, start + self.W - now_s)

    # --- the clock -----------------------------------------------------------------------------
    def next_due_ns(self) -> int:
        t = self.oracle.next_due_ns()
        for start in self._live_prev or ():
            b = self.books.get(start)
            if b is not None:
                t = min(t, b.next_ms() * _MS)
        cur = self._live_prev[0] if self._live_prev else 0
        return min(t, (cur + self.W) * _NS)

    def step(self, now_ns: int, mono_s: float | None = None) -> list[tuple[list, str, str]]:
        """Advance to now: RTDS updates due, window roll, book events. Returns frames to write."""
        mono_s = time.monotonic() if mono_s is None else mono_s
        now_ms = now_ns // _MS
        out: list[tuple[list, str, str]] = []
        orc = self.oracle
        orc.sample(now_ns, self.market.futures_mid())
        for obs_ms, v in orc.due(now_ns):
            self._rtds_update(obs_ms, v, now_ms, mono_s, out)
        cur = self.sched.start_of(now_ns / _NS)
        live = (cur, cur + self.W)
        if self._live_prev != live:
            for start in list(self.books):
                if start + self.W <= now_ns / _NS and start not in self.ended:
                    self.ended.add(start)
                    self.books[start].active = False
                    if self.send_resolved:
                        self._to_resolve.append(start)
            for start in live:
                self._books(start, now_ms).activate(now_ms)
            self._live_prev = live
            if len(self.ended) > 512:
                self.ended = {s for s in self.ended if s > cur - 86_400}
        if self.send_resolved:
            self._send_resolutions(now_ns, out, mono_s)
        for start in live:
            b = self.books[start]
            msgs = b.advance(now_ms, self.fair(start, now_ns))
            if msgs:
                self._publish(self.sched.window(start), msgs, mono_s, out)
        for tok in self.faults.ended_silences(mono_s):
            loc = self.token_of.get(tok)
            if loc and loc[0] in self.books and now_ns / _NS < loc[0] + self.W:
                snap = self.books[loc[0]].snapshot(now_ms, loc[1], True)
                self._publish(self.sched.window(loc[0]), [snap], mono_s, out)
        return out

    def _send_resolutions(self, now_ns: int, out: list, mono_s: float) -> None:
        q = self._to_resolve
        while q and now_ns / _NS >= q[0] + self.W + self.meta_delay:
            start = q.pop(0)
            r = self._resolution(start)
            if r is None:
                continue
            w = self.sched.window(start)
            self._send_clob(set(w.tokens), resolved_msg(w, r[1], now_ns // _MS), "market_resolved",
                            out, mono_s, custom_only=True)

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
        if not conns:
            return
        text = orjson.dumps(msg).decode()
        if self.faults.bad:
            v = self.faults.take_bad((*sorted(tokens), "market", "*"))
            if v is not None:
                text = corrupt(v, text, False)
                kind = "malformed"
        self.msgs[kind] = self.msgs.get(kind, 0) + 1
        out.append((list(conns), text, kind))

    def _rtds_update(self, obs_ms: int, v: float, now_ms: int, mono_s: float, out: list) -> None:
        conns = [c for c, s in self.rtds.items() if rt.TOPIC in s.subs
                 and (s.subs[rt.TOPIC] is None or rt.SYMBOL in s.subs[rt.TOPIC])]
        if not conns or self.faults.rtds_stalled(mono_s):
            return
        tail = rt.update_tail(rt.SYMBOL, obs_ms, v, now_ms)
        variant = self.faults.take_bad(("rtds", "*")) if self.faults.bad else None
        kind = "rtds_update" if variant is None else "malformed"
        self.msgs[kind] = self.msgs.get(kind, 0) + 1
        for c in conns:
            text = rt.with_connection_id(self.rtds[c].cid, tail)
            out.append(([c], text if variant is None else corrupt(variant, text, True), kind))

    # --- CLOB WebSocket ------------------------------------------------------------------------
    def clob_open(self, conn, mono_s: float) -> None:
        self.clob[conn] = ClobSession(mono_s)
        self.connections_total["clob"] += 1

    def clob_close(self, conn) -> None:
        sess = self.clob.pop(conn, None)
        if sess is not None:
            for t in sess.assets:
                s = self.subs.get(t)
                if s is not None:
                    s.discard(conn)
                    if not s:
                        del self.subs[t]

    def on_clob_text(self, conn, text: str | bytes, now_ns: int, mono_s: float) -> list[str]:
        """Replies to one client text frame (PONG, the initial dump)."""
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
        if not isinstance(ids, list) or not all(isinstance(a, str) for a in ids):
            self.bad_client_msgs += 1
            return []
        if "custom_feature_enabled" in d:
            sess.custom = bool(d["custom_feature_enabled"])
        if d.get("operation") == "unsubscribe":
            for a in ids:
                sess.assets.discard(a)
                s = self.subs.get(a)
                if s is not None:
                    s.discard(conn)
            return []
        sess.subscribed = True
        for a in ids:
            sess.assets.add(a)
            self.subs.setdefault(a, set()).add(conn)
        if d.get("initial_dump", True) is False:
            return []
        now_ms = now_ns // _MS
        blocked = self.faults.blocked_tokens(ids, mono_s)
        books = []
        for a in dict.fromkeys(ids):
            loc = self.token_of.get(a)
            if loc is None or a in blocked or now_ns / _NS >= loc[0] + self.W + self.meta_delay:
                continue                  # unknown, stalled, or resolved (no orderbook any more)
            b = self._books(loc[0], now_ms)
            books.append(book_msg(self.sched.window(loc[0]), b.snapshot(now_ms, loc[1], True)))
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
            if topic == rt.TOPIC and (syms is None or rt.SYMBOL in syms) \
                    and not self.faults.rtds_stalled(mono_s):
                pts = list(self.oracle.published)
                self.msgs["rtds_snapshot"] = self.msgs.get("rtds_snapshot", 0) + 1
                out.append(rt.snapshot(rt.SYMBOL, pts, now_ns // _MS))
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
    def _live_info(self, start: int, now_ns: int) -> pg.Live:
        now_s = now_ns / _NS
        b = self._books(start, now_ns // _MS)
        bb, ba = b.best(0)
        ptb = self.price_to_beat(start) if now_s >= start + self.meta_delay else None
        res = self._resolution(start) if now_s >= start + self.W + self.meta_delay else None
        mid = b.mid(0)
        return pg.Live(now_s=now_s, up_mid=0.5 if mid is None else mid,
                       best_bid=None if bb is None else bb / 1000,
                       best_ask=None if ba is None else ba / 1000,
                       last_trade=None if b.last_trade[0] is None else b.last_trade[0] / 1000,
                       volume=b.volume / 100, liquidity=round(b.depth_usd(50), 4),
                       price_to_beat=ptb,
                       final_price=None if res is None else res[0],
                       up_won=None if res is None else res[1], twap=self.twap)

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
            if slugs:
                wins = [w for w in (self.sched.lookup(s, now_s) for s in slugs) if w is not None]
            else:
                cur = self.sched.start_of(now_s)
                wins = [self.sched.window(cur), self.sched.window(cur + self.W)]
            make = pg.market_obj if route == "/gamma/markets" else pg.event_obj
            return 200, orjson.dumps([make(self.sched, w, self._live_info(w.start, now_ns))
                                      for w in wins]).decode()
        if route == "/clob/book":
            self.http_counts[route] = self.http_counts.get(route, 0) + 1
            tok = (q.get("token_id") or [""])[0]
            if not tok:
                return 400, orjson.dumps({"error": "Invalid token id"}).decode()
            loc = self.token_of.get(tok)
            if loc is None or now_s >= loc[0] + self.W + self.meta_delay:
                return 404, NO_BOOK
            b = self._books(loc[0], now_ns // _MS)
            return 200, orjson.dumps(rest_book(self.sched.window(loc[0]),
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
            if loc is None or loc[0] not in (self._live_prev or ()):
                raise FaultError("asset is not a token of a live window")
            b = self.books[loc[0]]
            if kind == "tick_size":
                msgs = b.force_tick_change(now_ns // _MS)
                ans["tick_size"] = tick_str(b.tick)
            else:
                msgs = b.force_thin(now_ns // _MS, f["seconds"])
            self._publish(self.sched.window(loc[0]), msgs, mono_s, out)
        elif kind == "clear":
            fs.stall.clear()
            fs.bad.clear()
            fs.gamma_empty = 0
            for t in list(fs.silent):
                fs.silent[t] = 0.0           # ends now: the resync book goes out on the next step
        return ans, out

    def window_info(self, start: int, now_ns: int) -> dict:
        w = self.sched.window(start)
        b = self.books.get(start)
        now_s = now_ns / _NS
        d = {"slug": w.slug, "start": w.start, "end": w.end, "condition_id": w.condition_id,
             "up_token": w.up_token, "down_token": w.down_token,
             "price_to_beat": self.price_to_beat(start) if now_s >= start else None,
             "fair_up": round(self.fair(start, now_ns), 6)}
        if b is not None:
            d["tick_size"] = tick_str(b.tick)
            d["up_mid"] = b.mid(0)
        return d

    def stats(self, now_ns: int, mono_s: float) -> dict:
        cur = self.sched.start_of(now_ns / _NS)
        books = {}
        for start in (cur - self.W, cur, cur + self.W):
            b = self.books.get(start)
            if b is None:
                continue
            w = self.sched.window(start)
            for i, tok in enumerate(w.tokens):
                bb, ba = b.best(i)
                books[tok] = {"slug": w.slug, "outcome": ("Up", "Down")[i],
                              "hash": pm.book_hash(tok, b.version[i]), "version": b.version[i],
                              "best_bid": px(bb), "best_ask": px(ba), "tick_size": tick_str(b.tick),
                              "live": b.active,
                              "subscribers": len(self.subs.get(tok, ()))}
        orc = self.oracle
        last = orc.published[-1] if orc.published else None
        return {
            "venue": "polymarket", "now_ms": now_ns // _MS,
            "connections": {"clob": len(self.clob), "rtds": len(self.rtds)},
            "connections_total": dict(self.connections_total),
            "idle_closed": dict(self.idle_closed),
            "frames_sent": self.frames_sent, "messages": dict(self.msgs),
            "bad_client_messages": self.bad_client_msgs, "http": dict(self.http_counts),
            "schedule": {"series": self.sched.series, "window_sec": self.W,
                         "slug_prefix": self.sched.prefix,
                         "previous": self.window_info(cur - self.W, now_ns),
                         "current": self.window_info(cur, now_ns),
                         "next": self.window_info(cur + self.W, now_ns)},
            "books": books,
            "chainlink": {"last": None if last is None else {"timestamp": last[0], "value": last[1]},
                          "basis_bps": round(orc.basis, 4), "futures_mid": self.market.futures_mid(),
                          "window_start_prices": {str(k): v for k, v in sorted(self.s0.items())}},
            "faults": self.faults.describe(mono_s),
        }
