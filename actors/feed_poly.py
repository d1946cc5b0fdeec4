"""The `feed_poly` actor: the current "Bitcoin Up or Down" window's UP and DOWN books.

Gamma resolves each window (`POLYMARKET_WINDOW` names the series and slug, `POLYMARKET_WINDOW_SEC`
its length); the CLOB market WebSocket carries the books; the feed writes the top levels of every
update to the ring `<prefix>.BTCUPDOWN.poly.book` and `tick.poly.book.{UP,DOWN}`, trades to
`...poly.trade` and `tick.poly.trade.{UP,DOWN}`, and a window change to `tick.poly.market`.

Invariants:
- every record carries its window's start: a book of one window is never written as another's;
  only the current window's books are written, the next window's are kept warm in memory;
- the next window is resolved and subscribed before the current one ends, so the switch at the
  boundary needs no connection and publishes `tick.poly.market` with the new window at once;
- a book is rebuilt only from `book` snapshots and `price_change` deltas; after a
  `tick_size_change` it is unusable (a gap record says so) until a fresh snapshot;
- a book whose WebSocket stream said nothing for POLYMARKET_STALE_THRESHOLD_SEC is stale; REST
  `/book` is compared every POLYMARKET_RECONCILE_SEC and replaces a book that differs from a newer
  snapshot (the WebSocket hash is unreliable and never used), but a REST correction does not make
  a silent stream fresh; a connection silent for 2.5 ping intervals
  (PONGs included) is replaced and resubscribed;
- the price to beat is Gamma's when it has one, else the Chainlink price at the window start
  (state block `chainlink`, written by feed_chainlink).
"""
from __future__ import annotations

import asyncio
import logging
import random
import signal
import time

import httpx

from config.logging import LogOnce
from config.settings import Settings
from ipc import clock
from ipc.bus import Publisher
from ipc.framering import FrameTap
from ipc.ring import RingWriter
from ipc import names
from ipc.schema import FLAG_GAP, FLAG_SNAPSHOT, POLY_BOOK, POLY_TRADE
from ipc.state import Heartbeat, Registry, StateBlock

from actors.feed import wsclient
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram
from actors.venues.polymarket import gamma, clob as polymarket
from actors.venues.polymarket.book import OrderBook

log = logging.getLogger("feed_poly")

SILENCE_SEC = 2.5 * polymarket.PING_INTERVAL_SEC
SNAPSHOT_WAIT_SEC = 10.0


class TokenBook:
    def __init__(self, window: gamma.WindowInfo, token: int):
        self.window, self.token = window, token
        self.book = OrderBook()
        self.has_snapshot = False
        self.update_id = 0
        self.last_update_ns = 0     # any change (WebSocket or a REST correction)
        self.last_ws_ns = 0         # the stream's last word on this book: staleness follows it
        self.last_event_ns = 0
        self.last_trade: float | None = None
        self.subscribed_at = 0.0


class PolyFeed:
    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None):
        self.s = s
        self.pub = pub or Publisher(s.zmq_xsub_url, sndhwm=s.zmq_sndhwm)
        self.hb = Heartbeat(registry or Registry(s.shm_dir, s.shm_prefix), "feed_poly")
        self.book_ring = RingWriter(s.shm_dir, names.POLY_BOOK_RING.name(s.shm_prefix, s.symbol), POLY_BOOK,
                                    s.ring_capacity)
        self.trade_ring = RingWriter(s.shm_dir, names.POLY_TRADE_RING.name(s.shm_prefix, s.symbol), POLY_TRADE,
                                     s.ring_capacity)
        self.state = StateBlock(s.shm_dir, s.shm_prefix, names.POLYMARKET_BLOCK, writer=True)
        self.chainlink = StateBlock(s.shm_dir, s.shm_prefix, names.CHAINLINK_BLOCK)
        self.series = s.polymarket_window              # gamma.SERIES key: names the slug prefix
        self.windows: dict[int, gamma.WindowInfo] = {}        # start_s -> market
        self.lookup_errors: dict[int, str] = {}
        self.books: dict[str, TokenBook] = {}                  # asset id -> book
        self.current: gamma.WindowInfo | None = None
        self.ws: wsclient.FastWebSocket | None = None
        self.subscribed: set[str] = set()
        self.last_frame_ns = 0
        self.c = {k: 0 for k in ("frames", "books", "changes", "trades", "tick_size_changes",
                                 "best_mismatch", "unknown", "parse_errors", "other_assets", "reconnects",
                                 "rollovers", "reconciled", "reconcile_checks", "reconcile_errors",
                                 "gamma_lookups", "gamma_errors", "records", "rest_responses")}
        self._log_once = LogOnce(log)
        self._stop = asyncio.Event()
        self.age = Histogram(DATA_AGE_BOUNDS_MS)
        self.tap = FrameTap.from_settings(s, names.venue_symbol(names.POLY, s.symbol), names.POLY)
        hooks = {"response": [self._tap_response]} if self.tap is not None else {}
        self.http = httpx.AsyncClient(timeout=10.0, event_hooks=hooks)

    def counters(self) -> dict:
        return {**self.c, "published": self.pub.sent, "publish_dropped": self.pub.dropped,
                **(self.tap.counters() if self.tap is not None else {})}

    async def _tap_response(self, r: httpx.Response) -> None:
        """Records a REST answer (Gamma, CLOB book) for replay: `meta` is '<service> <status> <path?query>'."""
        await r.aread()
        self.c["rest_responses"] += 1
        url = str(r.request.url)
        for service, base in (("gamma", self.s.polymarket_gamma_url), ("clob", self.s.polymarket_clob_url)):
            if url.startswith(base):
                self.tap("rest", service, r.content, clock.now_ns(), f"{service} {r.status_code} {url[len(base):]}")
                return

    # --- windows ------------------------------------------------------------------------------
    def now_s(self) -> float:
        return clock.now_s()

    def wanted(self) -> list[int]:
        cur = gamma.window_start(self.now_s(), self.s.polymarket_window_sec)
        return [cur, cur + self.s.polymarket_window_sec]

    async def resolve(self, start_s: int) -> gamma.WindowInfo | None:
        url = self.s.polymarket_gamma_url + gamma.markets_path(gamma.slug(self.series, start_s))
        self.c["gamma_lookups"] += 1
        try:
            r = await self.http.get(url)
            r.raise_for_status()
            info = gamma.parse_market(r.content, self.s.poly_up_is_yes, gamma.slug(self.series, start_s))
        except (httpx.HTTPError, gamma.GammaError) as exc:
            self.c["gamma_errors"] += 1
            self.lookup_errors[start_s] = f"{type(exc).__name__}: {exc}"
            self._log_once(f"gamma:{start_s}", "window %s not resolved: %s", start_s, exc)
            return None
        self.lookup_errors.pop(start_s, None)
        self.windows[start_s] = info
        for token, asset in enumerate((info.up_token, info.down_token)):
            self.books.setdefault(asset, TokenBook(info, token))
        return info

    async def resolver(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            missing = [w for w in self.wanted() if w not in self.windows]
            # re-ask Gamma for the current window until it publishes the price to beat
            cur = self.current
            if cur is not None and cur.price_to_beat is None and random.random() < 0.2:
                missing.append(cur.start_s)
            ok = True
            for w in missing:
                ok &= (await self.resolve(w)) is not None
            attempt = 0 if ok else attempt + 1
            await self._sleep(1.0 if ok else min(30.0, 0.5 * 2 ** attempt))

    def roll(self) -> None:
        """Make the window that contains now current (at most once per window)."""
        start = gamma.window_start(self.now_s(), self.s.polymarket_window_sec)
        info = self.windows.get(start)
        if info is None or (self.current is not None and self.current.start_s == start):
            return
        self.current = info
        self.c["rollovers"] += 1
        for asset in [a for a, b in self.books.items() if b.window.end_s <= start]:
            del self.books[asset]                       # a finished window's books are gone
        self.pub.publish(names.POLY_MARKET_TOPIC, self.market_doc())
        log.info("window %s (%s) is current", info.slug, info.condition_id)
        for asset in (info.up_token, info.down_token):
            b = self.books.get(asset)
            if b is not None and b.has_snapshot:
                self.emit(asset, b, FLAG_SNAPSHOT)

    def price_to_beat(self) -> tuple[float | None, str]:
        cur = self.current
        if cur is None:
            return None, "no window"
        if cur.price_to_beat is not None:
            return cur.price_to_beat, "gamma"
        doc = self.chainlink.read() or {}
        w = (doc.get("windows") or {}).get(str(cur.start_s))
        return (w["price"], "chainlink") if w else (None, "not known yet")

    def market_doc(self) -> dict:
        w = self.current
        ptb, src = self.price_to_beat()
        return {"window_start_ns": w.start_ns, "window_end_ns": w.end_ns, "start_s": w.start_s,
                "end_s": w.end_s, "active": w.active, "closed": w.closed,
                "accepting_orders": w.accepting_orders, "slug": w.slug,
                "condition_id": w.condition_id, "up_token": w.up_token, "down_token": w.down_token,
                "fee_rate": w.fee.rate, "fee_exponent": w.fee.exponent, "tick_size": w.tick_size,
                "min_size": w.min_size, "twap_enabled": w.twap_enabled,
                "twap_lookback_sec": w.twap_lookback_sec, "resolution_source": w.resolution_source,
                "price_to_beat": ptb, "price_to_beat_source": src}

    # --- messages -------------------------------------------------------------------------------
    def on_frames(self, frames: list[bytes], ts_recv_ns: int) -> None:
        self.last_frame_ns = ts_recv_ns
        tap = self.tap
        for frame in frames:
            self.c["frames"] += 1
            try:
                msgs = polymarket.parse_frame(frame, ts_recv_ns)
            except ValueError as exc:
                if tap is not None:
                    tap("market", "_malformed", frame, ts_recv_ns)
                self.c["parse_errors"] += 1
                self._log_once("parse", "bad frame: %s; frame=%r", exc, frame[:200])
                continue
            if tap is not None:
                tap("market", "market", frame, ts_recv_ns)
            for m in msgs:
                self.on_msg(m)

    def on_msg(self, m) -> None:
        kind = m.kind
        if kind == "book":
            b = self.books.get(m.asset_id)
            if b is None:
                self.c["other_assets"] += 1
                return
            b.book.apply_snapshot(m.bids, m.asks, m.timestamp_ms, m.tick_size)
            b.has_snapshot = True
            if m.last_trade_price is not None:
                b.last_trade = m.last_trade_price
            self.c["books"] += 1
            self.touch(m.asset_id, b, m.timestamp_ms, FLAG_SNAPSHOT)
        elif kind == "price_change":
            touched = {}
            for ch in m.changes:
                b = self.books.get(ch.asset_id)
                if b is None or not b.has_snapshot:
                    self.c["other_assets" if b is None else "changes"] += 1
                    continue
                b.book.apply_change(ch.side, ch.price, ch.size)
                self.c["changes"] += 1
                touched[ch.asset_id] = (b, ch)
            for asset, (b, ch) in touched.items():
                if (ch.best_bid is not None or ch.best_ask is not None) and not b.book.check_best(
                        ch.best_bid, ch.best_ask):
                    self.c["best_mismatch"] += 1
                self.touch(asset, b, m.timestamp_ms, 0)
        elif kind == "last_trade_price":
            b = self.books.get(m.asset_id)
            if b is None:
                self.c["other_assets"] += 1
                return
            b.last_trade = m.price
            self.c["trades"] += 1
            if self.is_current(b):
                rec = polymarket.trade_record(m, b.token, b.window.start_ns)
                self.trade_ring.append(rec)
                self.pub.publish(names.POLY_TRADE_RING.token_topic(b.token), dict(zip(POLY_TRADE.names, rec)))
        elif kind == "tick_size_change":
            b = self.books.get(m.asset_id)
            if b is not None:
                b.book.invalidate("tick_size_change", m.new_tick_size)
                b.has_snapshot = False
                b.subscribed_at = time.monotonic()      # the venue resends the book: wait from now
                self.c["tick_size_changes"] += 1
                self.touch(m.asset_id, b, m.timestamp_ms, FLAG_GAP)
        elif kind == "best_bid_ask":
            b = self.books.get(m.asset_id)
            if b is not None and b.has_snapshot and not b.book.check_best(m.best_bid, m.best_ask):
                self.c["best_mismatch"] += 1
        elif kind in ("pong", "ping", "new_market", "market_resolved"):
            pass
        else:
            self.c["unknown"] += 1

    def is_current(self, b: TokenBook) -> bool:
        return self.current is not None and b.window.start_s == self.current.start_s

    def touch(self, asset: str, b: TokenBook, ts_ms: int, flags: int, ws: bool = True) -> None:
        b.update_id += 1
        b.last_update_ns = clock.now_ns()
        if ws:
            b.last_ws_ns = b.last_update_ns
            if ts_ms > 0 and not flags & FLAG_GAP:   # data age: receive − venue time (WS data only)
                self.age.observe_ns(b.last_update_ns - ts_ms * 1_000_000)
        b.last_event_ns = ts_ms * 1_000_000
        if self.is_current(b):
            self.emit(asset, b, flags)

    def emit(self, asset: str, b: TokenBook, flags: int) -> None:
        rec = b.book.record(b.token, b.window.start_ns, b.update_id, b.last_event_ns, clock.now_ns(),
                            b.last_trade, n=self.s.topn, flags=flags)
        self.book_ring.append(rec)
        self.c["records"] += 1
        doc = dict(zip(POLY_BOOK.names, rec))
        n_b, n_a = doc["n_bids"], doc["n_asks"]
        for k, n in (("bid_px", n_b), ("bid_sz", n_b), ("ask_px", n_a), ("ask_sz", n_a)):
            doc[k] = doc[k][:n]
        self.pub.publish(names.POLY_BOOK_RING.token_topic(b.token), doc)

    # --- connection -----------------------------------------------------------------------------
    def wanted_assets(self) -> list[str]:
        out = []
        for w in self.wanted():
            info = self.windows.get(w)
            if info is not None:
                out += [info.up_token, info.down_token]
        return out

    async def connection(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            assets = self.wanted_assets()
            if not assets:
                await self._sleep(0.2)
                continue
            try:
                self.ws = await wsclient.connect(self.s.polymarket_clob_ws, self.on_frames, open_timeout=10)
            except (OSError, TimeoutError, wsclient.HandshakeRefused) as exc:
                log.warning("CLOB WS connect failed: %s", exc)
                await self._sleep(min(30.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0))
                attempt += 1
                continue
            self.subscribed = set()
            self.last_frame_ns = clock.now_ns()
            opened = time.monotonic()
            try:
                await self.serve_connection()
            except OSError as exc:
                log.warning("CLOB WS ended: %s", exc)
            finally:
                await self.ws.close()
                self.ws = None
            if not self._stop.is_set():
                self.c["reconnects"] += 1
                for asset, b in self.books.items():      # data may be missing: say so, rebuild
                    b.has_snapshot = False
                    b.subscribed_at = time.monotonic()
                    b.book.invalidate("reconnect")
                    self.touch(asset, b, clock.now_ns() // 1_000_000, FLAG_GAP)
                if time.monotonic() - opened > 60:
                    attempt = 0                       # it was healthy for a while: retry fast
                await self._sleep(min(30.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0))
                attempt += 1

    async def serve_connection(self) -> None:
        next_ping = 0.0
        while not self._stop.is_set():
            if self.ws.closed.done():
                self.ws.closed.result()
            new = [a for a in self.wanted_assets() if a not in self.subscribed]
            if new:
                self.ws.send_text(polymarket.subscribe_msg(new))
                now = time.monotonic()
                for a in new:
                    self.subscribed.add(a)
                    self.books[a].subscribed_at = now
            now = time.monotonic()
            if now >= next_ping:
                self.ws.send_text(polymarket.PING)
                next_ping = now + polymarket.PING_INTERVAL_SEC
            if clock.now_ns() - self.last_frame_ns > SILENCE_SEC * 1e9:
                raise wsclient.WsClosed(None, f"silent for {SILENCE_SEC:.0f} s")
            late = [a for a in self.subscribed if a in self.books and not self.books[a].has_snapshot
                    and now - self.books[a].subscribed_at > SNAPSHOT_WAIT_SEC]
            if late:
                # the venue did not answer a later subscribe (or dropped a book): start over
                raise wsclient.WsClosed(None, f"no snapshot for {len(late)} subscribed assets")
            self.roll()
            await self._sleep(0.1)

    # --- reconciliation, state, heartbeat -------------------------------------------------------
    async def reconciler(self) -> None:
        while not self._stop.is_set():
            await self._sleep(self.s.polymarket_reconcile_sec)
            cur = self.current
            if cur is None:
                continue
            for asset in (cur.up_token, cur.down_token):
                b = self.books.get(asset)
                if b is None or not b.has_snapshot:
                    continue
                try:
                    r = await self.http.get(f"{self.s.polymarket_clob_url}/book", params={"token_id": asset})
                    r.raise_for_status()
                    snap = polymarket.parse_rest_book(r.content, clock.now_ns())
                except (httpx.HTTPError, ValueError) as exc:
                    self.c["reconcile_errors"] += 1
                    self._log_once("reconcile", "REST /book failed: %s", exc)
                    continue
                self.c["reconcile_checks"] += 1
                same = b.book.levels("bid") == [(p, s) for p, s in snap.bids] and \
                    b.book.levels("ask") == [(p, s) for p, s in snap.asks]
                if not same and snap.timestamp_ms * 1_000_000 >= b.last_event_ns:
                    b.book.apply_snapshot(snap.bids, snap.asks, snap.timestamp_ms, snap.tick_size)
                    self.c["reconciled"] += 1
                    self.touch(asset, b, snap.timestamp_ms, FLAG_SNAPSHOT, ws=False)

    def book_state(self, now_ns: int) -> dict:
        out = {}
        stale_ns = self.s.polymarket_stale_threshold_sec * 1e9
        cur = self.current
        for name, asset in (("UP", cur.up_token), ("DOWN", cur.down_token)) if cur else ():
            b = self.books.get(asset)
            if b is None:
                out[name] = {"valid": False, "reason": "no book"}
                continue
            bb, ba = b.book.best_bid(), b.book.best_ask()
            age = (now_ns - b.last_ws_ns) / 1e9 if b.last_ws_ns else None
            out[name] = {"valid": b.has_snapshot, "best_bid": bb, "best_ask": ba,
                         "mid": (bb + ba) / 2 if bb is not None and ba is not None else None,
                         "last_trade": b.last_trade, "age_s": age, "update_id": b.update_id,
                         "stale": age is None or age * 1e9 > stale_ns,
                         "depth_bid_usd": b.book.depth_usd("bid", self.s.topn),
                         "depth_ask_usd": b.book.depth_usd("ask", self.s.topn),
                         "bids": b.book.levels("bid")[:self.s.topn], "asks": b.book.levels("ask")[:self.s.topn]}
        return out

    def health(self, now_ns: int) -> dict:
        books = self.book_state(now_ns)
        last = max((b.last_update_ns for b in self.books.values()), default=0)
        return {"venue": names.POLY, "connections": {"clob": {
                    "connected": self.ws is not None, "frames": self.c["frames"],
                    "reconnects": self.c["reconnects"], "silent_streams": []}},
                "streams": {"book": {"written": self.c["records"], "last_recv_ns": last,
                                     "ring_count": self.book_ring.count,
                                     "max_silence_s": self.s.polymarket_stale_threshold_sec,
                                     **({"data_age": self.age.doc()} if self.age.count else {})}},
                "books": {k: {x: v.get(x) for x in ("valid", "stale", "age_s", "best_bid", "best_ask")}
                          for k, v in books.items()},
                "window": self.current.slug if self.current else None,
                "lookup_errors": {str(k): v for k, v in self.lookup_errors.items()}}

    async def reporter(self) -> None:
        while not self._stop.is_set():
            now = clock.now_ns()
            self.state.write({"ts_ns": now, "window": self.market_doc() if self.current else None,
                              "books": self.book_state(now), "counters": self.c,
                              "lookup_errors": {str(k): v for k, v in self.lookup_errors.items()}})
            self.hb.beat(self.counters(), feed=self.health(now))
            await self._sleep(0.5)

    async def _sleep(self, sec: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), sec)
        except TimeoutError:
            pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.create_task(t) for t in (self.resolver(), self.connection(), self.reconciler(),
                                                  self.reporter())]
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stop and t.exception() is not None]
        for t in tasks + [stop]:
            t.cancel()
        for t in failed:          # a bug, not a venue fault: say so and let supervisord restart us
            log.error("feed_poly task failed", exc_info=t.exception())
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()
        self.hb.beat(self.counters(), stopped=True)
        self.pub.close()
        if failed:
            raise SystemExit(1)


def main(settings: Settings) -> None:
    import uvloop
    uvloop.run(PolyFeed(settings).run())
