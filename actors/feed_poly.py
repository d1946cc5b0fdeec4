"""The `feed_poly` actor: the current "Bitcoin Up or Down" window's UP and DOWN books.

Gamma resolves each window (`POLYMARKET_WINDOW` names the series and slug, `POLYMARKET_WINDOW_SEC`
its length); the CLOB market WebSocket carries the books; the feed writes the top levels of every
update to the ring `<prefix>.BTCUPDOWN.poly.book` and `tick.poly.book.{UP,DOWN}`, trades to
`...poly.trade` and `tick.poly.trade.{UP,DOWN}`, and a window change to `tick.poly.market`.

The connection is the one feed shell's (actors.feed.shell: reconnect, backoff, keepalive, health);
the book state machine is the pure actors.venues.polymarket.session. This module is the venue
adapter between them, plus the I/O: Gamma over httpx, REST reconciliation, the `polymarket` state
block, and the wiring.

Invariants:
- every record carries its window's start: a book of one window is never written as another's;
  only the current window's books are written, the next window's are kept warm in memory;
- the next window is resolved and subscribed before the current one ends (on the live
  connection), so the switch at the boundary needs no connection and publishes `tick.poly.market`
  with the new window at once;
- a book is rebuilt only from `book` snapshots and `price_change` deltas; after a
  `tick_size_change` it is unusable (a gap record says so) until a fresh snapshot;
- a book whose WebSocket stream said nothing for POLYMARKET_STALE_THRESHOLD_SEC is stale; REST
  `/book` is compared every POLYMARKET_RECONCILE_SEC and replaces a book that differs from a newer
  snapshot (the WebSocket hash is unreliable and never used), but a REST correction does not make
  a silent stream fresh; a connection silent for 2.5 ping intervals (PONGs included), or with a
  subscribed asset whose snapshot has not come in SNAPSHOT_WAIT_SEC, is replaced and resubscribed;
- the price to beat is Gamma's when it has one, else the Chainlink price at the window start
  (state block `chainlink`, written by feed_chainlink).
"""
from __future__ import annotations

import asyncio
import logging
import random

import httpx

from config.logging import LogOnce
from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.bus import Publisher
from ipc.schema import POLY_BOOK, POLY_TRADE
from ipc.state import Registry, StateBlock

from actors.feed.shell import Feed
from actors.venues.envelope import ConnPlan, Decoded
from actors.venues.http import backoff_sec
from actors.venues.polymarket import gamma, clob as polymarket
from actors.venues.polymarket.session import Session

log = logging.getLogger("feed_poly")

SILENCE_SEC = 2.5 * polymarket.PING_INTERVAL_SEC
GAMMA_RETRY_BASE_SEC, GAMMA_RETRY_CAP_SEC = 0.5, 30.0   # an unresolved window: ask again, backing off
STREAMS = {"book": names.POLY_BOOK_RING, "trade": names.POLY_TRADE_RING}   # stream -> its ring
_BOOK, _TRADE = Decoded("poly_book", "book", ()), Decoded("poly_trade", "trade", ())
_CONTROL = Decoded("control", "", ())
_LEVEL_FIELDS = (("bid_px", "n_bids"), ("bid_sz", "n_bids"), ("ask_px", "n_asks"), ("ask_sz", "n_asks"))


class PolyFeed:
    """The Polymarket venue of the feed shell (the Venue protocol) and the actor's I/O tasks."""

    VENUE = names.POLY
    KEEPALIVE = (float(polymarket.PING_INTERVAL_SEC), polymarket.PING)
    ROTATE = False                 # the books are state: reconnect and resubscribe, never overlap

    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None):
        self.s = s
        self.series = s.venues.polymarket_window              # gamma.SERIES key: names the slug prefix
        self.session = Session(s.venues.polymarket_window_sec, s.venues.topn, s.decisions.stale_threshold_sec,
                               self._write)
        self.lookup_errors: dict[int, str] = {}
        self.c = dict.fromkeys(("reconcile_errors", "gamma_lookups", "gamma_errors", "rest_responses"), 0)
        self._log_once = LogOnce(log)
        self.feed = Feed(s, self, "feed_poly", publisher=pub, registry=registry)
        self.pub = self.feed.pub
        self.state = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.POLYMARKET_BLOCK, writer=True)
        self.chainlink = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.CHAINLINK_BLOCK)
        self.tap = self.feed.on_frame
        hooks = {"response": [self._tap_response]} if self.tap is not None else {}
        self.http = httpx.AsyncClient(timeout=10.0, event_hooks=hooks)

    # --- the Venue protocol (actors.feed.shell) ----------------------------------------------
    def plan(self, s: Settings) -> list[ConnPlan]:
        # "market": the recorder's connection name, which replay routes to /ws/market
        return [ConnPlan("market", s.venues.polymarket_clob_ws, tuple(STREAMS), stale_sec=SILENCE_SEC)]

    def stream_kind(self, stream: str) -> str | None:
        ring = STREAMS.get(stream)
        return ring.kind if ring else None

    def max_silence_sec(self, stream: str, s: Settings) -> float | None:
        return s.decisions.stale_threshold_sec if stream == "book" else None

    def parse_frame(self, frame: bytes, ts_recv_ns: int) -> Decoded:
        """Decode (FrameError if malformed) and apply; the session writes the records."""
        msgs = polymarket.parse_frame(frame, ts_recv_ns)
        self.session.on_msgs(msgs, ts_recv_ns)
        kinds = {m.kind for m in msgs}
        if kinds <= _CONTROL_KINDS:                    # PONG (or an empty frame)
            return _CONTROL
        return _TRADE if kinds == _TRADE_KINDS else _BOOK

    def poll(self, conn: str, fresh: bool, now_ns: int) -> tuple[list[bytes] | None, str | None]:
        if fresh and not self.session.wanted_assets(clock.now_s()):
            return None, None                          # nothing to subscribe: do not connect yet
        new = self.session.subscriptions(fresh, clock.now_s(), now_ns)
        late = [] if fresh else self.session.late(now_ns)
        # the venue did not answer a later subscribe (or dropped a book): start over
        restart = f"no snapshot for {len(late)} subscribed assets" if late else None
        return ([polymarket.subscribe_msg(new)] if new else []), restart

    def on_gap(self, streams: list[str], reason: str) -> None:
        if reason != "restart":          # after a restart there is no book to invalidate yet
            self.session.disconnected(clock.now_ns())

    def tick(self, kind: str, rec: tuple) -> tuple[bytes, dict]:
        """Polymarket publishes per outcome token; a book message carries only the levels in use."""
        if kind == POLY_BOOK_KIND:
            doc = dict(zip(POLY_BOOK.names, rec))
            for k, n in _LEVEL_FIELDS:
                doc[k] = doc[k][:doc[n]]
            return _BOOK_TOPICS[doc["token"]], doc
        doc = dict(zip(POLY_TRADE.names, rec))
        return _TRADE_TOPICS[doc["token"]], doc

    def counters(self) -> dict:
        return {**self.session.c, **self.c}

    def health(self) -> dict:
        books = self.session.book_state(clock.now_ns())
        return {"books": {k: {x: v.get(x) for x in ("valid", "stale", "age_s", "best_bid", "best_ask")}
                          for k, v in books.items()},
                "window": self.session.current.slug if self.session.current else None,
                "lookup_errors": {str(k): v for k, v in self.lookup_errors.items()}}

    def _write(self, stream: str, rec: tuple, observe_age: bool) -> None:
        self.feed.write(stream, rec, observe_age)

    # --- Gamma --------------------------------------------------------------------------------
    async def _tap_response(self, r: httpx.Response) -> None:
        """Records a REST answer (Gamma, CLOB book) for replay: `meta` is '<service> <status> <path?query>'."""
        await r.aread()
        self.c["rest_responses"] += 1
        url = str(r.request.url)
        for service, base in (("gamma", self.s.venues.polymarket_gamma_url), ("clob", self.s.venues.polymarket_clob_url)):
            if url.startswith(base):
                self.tap("rest", service, r.content, clock.now_ns(), f"{service} {r.status_code} {url[len(base):]}")
                return

    async def resolve(self, start_s: int) -> gamma.WindowInfo | None:
        url = self.s.venues.polymarket_gamma_url + gamma.markets_path(gamma.slug(self.series, start_s))
        self.c["gamma_lookups"] += 1
        try:
            r = await self.http.get(url)
            r.raise_for_status()
            info = gamma.parse_market(r.content, self.s.venues.poly_up_is_yes, gamma.slug(self.series, start_s))
        except (httpx.HTTPError, gamma.GammaError) as exc:
            self.c["gamma_errors"] += 1
            self.lookup_errors[start_s] = f"{type(exc).__name__}: {exc}"
            self._log_once(f"gamma:{start_s}", "window %s not resolved: %s", start_s, exc)
            return None
        self.lookup_errors.pop(start_s, None)
        self.session.add_window(info)
        return info

    async def resolver(self) -> None:
        attempt = 0
        while True:
            missing = [w for w in self.session.wanted(clock.now_s()) if w not in self.session.windows]
            # re-ask Gamma for the current window until it publishes the price to beat
            cur = self.session.current
            if cur is not None and cur.price_to_beat is None and random.random() < 0.2:
                missing.append(cur.start_s)
            ok = True
            for w in missing:
                ok &= (await self.resolve(w)) is not None
            attempt = 0 if ok else attempt + 1
            await asyncio.sleep(1.0 if ok else backoff_sec(attempt, GAMMA_RETRY_BASE_SEC, GAMMA_RETRY_CAP_SEC))

    # --- windows ------------------------------------------------------------------------------
    def price_to_beat(self) -> tuple[float | None, str]:
        cur = self.session.current
        if cur is None:
            return None, "no window"
        if cur.price_to_beat is not None:
            return cur.price_to_beat, "gamma"
        doc = self.chainlink.read() or {}
        w = (doc.get("windows") or {}).get(str(cur.start_s))
        return (w["price"], "chainlink") if w else (None, "not known yet")

    def market_doc(self) -> dict:
        return self.session.market_doc(*self.price_to_beat())

    async def roller(self) -> None:
        """At each boundary the next window (already subscribed and warm) becomes current."""
        while True:
            info = self.session.roll(clock.now_s())
            if info is not None:
                self.pub.publish(names.POLY_MARKET_TOPIC, self.market_doc())
                self.session.write_current(clock.now_ns())
                log.info("window %s (%s) is current", info.slug, info.condition_id)
            await asyncio.sleep(0.1)

    # --- reconciliation, state ------------------------------------------------------------------
    async def reconciler(self) -> None:
        while True:
            await asyncio.sleep(self.s.venues.polymarket_reconcile_sec)
            cur = self.session.current
            if cur is None:
                continue
            for asset in (cur.up_token, cur.down_token):
                b = self.session.books.get(asset)
                if b is None or not b.has_snapshot:
                    continue
                try:
                    r = await self.http.get(f"{self.s.venues.polymarket_clob_url}/book", params={"token_id": asset})
                    r.raise_for_status()
                    snap = polymarket.parse_rest_book(r.content, clock.now_ns())
                except (httpx.HTTPError, ValueError) as exc:
                    self.c["reconcile_errors"] += 1
                    self._log_once("reconcile", "REST /book failed: %s", exc)
                    continue
                self.session.reconcile(asset, snap, clock.now_ns())

    async def reporter(self) -> None:
        while True:
            now = clock.now_ns()
            self.state.write({"ts_ns": now, "window": self.market_doc() if self.session.current else None,
                              "books": self.session.book_state(now), "counters": self.feed.counters(),
                              "lookup_errors": {str(k): v for k, v in self.lookup_errors.items()}})
            await asyncio.sleep(0.5)

    async def run(self) -> None:
        try:
            await self.feed.run((self.resolver(), self.roller(), self.reconciler(), self.reporter()))
        finally:
            await self.http.aclose()


POLY_BOOK_KIND = names.POLY_BOOK_RING.kind
_CONTROL_KINDS = frozenset(("pong", "ping"))
_TRADE_KINDS = {"last_trade_price"}
_BOOK_TOPICS = tuple(names.POLY_BOOK_RING.token_topic(t).encode() for t in range(len(names.POLY_TOKENS)))
_TRADE_TOPICS = tuple(names.POLY_TRADE_RING.token_topic(t).encode() for t in range(len(names.POLY_TOKENS)))


def main(settings: Settings) -> None:
    import uvloop
    uvloop.run(PolyFeed(settings).run())
