"""The `feed_poly` actor: the UP and DOWN books of every followed up/down series of SYMBOL's asset.

SYMBOL names the asset (BTCUSDT -> btc: `btc-updown-15m-<start>`, `bitcoin-up-or-down-…`);
POLYMARKET_WINDOWS the series (`5m,15m,1h,…`), POLYMARKET_WINDOW_SEC their window lengths
(shortened in the sim). Gamma resolves each series' current and next windows (actors.venues.
polymarket.series gives the slug candidates, tried in order until Gamma knows one) and is asked
again, backing off, for a known window's news (the current one's price to beat, an ended one's
resolution) by its condition id (`/markets?condition_ids=`: unique, where a sim's shortened hourly
windows share a slug); ONE CLOB market WebSocket carries every book. Per series the feed writes
the top levels of every update to the ring `names.poly_book_ring(series)`
(`<prefix>.BTCUPDOWN.poly.book_15m`) and
`tick.poly.book.<series>.{UP,DOWN}`, trades to `poly_trade_ring(series)` and
`tick.poly.trade.<series>.{UP,DOWN}`, and the market doc (actors.venues.polymarket.session.
market_doc) to `tick.poly.market.<series>` on each window change, metadata change (Gamma's price
to beat arrives) and resolution.

The connection is the one feed shell's (actors.feed.shell: reconnect, backoff, keepalive, health);
the book state machine is the pure actors.venues.polymarket.session. This module is the venue
adapter between them, plus the I/O: Gamma over httpx, REST `/book` (reconciliation and resyncs),
the `polymarket` state block, and the wiring.

Invariants:
- every record carries its window's start and goes to its series' ring: a book of one window or
  series is never written as another's; only current windows' books are written, the next
  windows' are kept warm in memory;
- the next window is resolved and subscribed before the current one ends, on the live connection
  (`"operation": "subscribe"`); a finished window's tokens are dropped (`"operation":
  "unsubscribe"`); a fresh connection sends the initial subscribe with every wanted asset;
- a book is rebuilt only from `book` snapshots and `price_change` deltas; after a
  `tick_size_change` it is unusable (a gap record says so) until a fresh snapshot; a best bid/ask
  from the venue that disagrees with it is counted and resyncs that book from REST `/book` at
  once (at most once per second per asset);
- a book whose WebSocket stream said nothing for POLYMARKET_STALE_THRESHOLD_SEC is stale; REST
  `/book` is compared every POLYMARKET_RECONCILE_SEC and replaces a book that differs from a newer
  snapshot (the WebSocket hash is unreliable and never used), but a REST correction does not make
  a silent stream fresh (its records keep the stream's last receive time, so the book still ages);
  a connection silent for 2.5 ping intervals (PONGs included), or with a current window's asset
  whose snapshot has not come in SNAPSHOT_WAIT_SEC, is replaced and resubscribed; a next window's
  late asset is first only asked for again on the live connection (unsubscribe + subscribe,
  `resubscribes`), and replaces the connection only if it is late again SNAPSHOT_WAIT_SEC later;
- every retry backs off with jitter (backoff_sec × U[0.5, 1]); a 429 from Gamma or the CLOB
  pauses every request to that host for its Retry-After, capped at REST_PAUSE_CAP_SEC
  (`gamma_paused` / `clob_paused`: requests not sent meanwhile, `rest_pauses`);
- a Gamma answer the feed cannot use (an error, a window it did not ask for, a settlement rule it
  cannot follow) is a lookup error (`gamma_errors`, `lookup_errors`, logged once), never a crash;
  every resolution is published with its own doc, however many one frame brings;
- the price to beat in a market doc is Gamma's (`price_to_beat_source` "venue") or None: compute
  estimates it by the window's rule (`rule`) until Gamma publishes it;
- the state block `polymarket` is rewritten at once on a window change, metadata change or
  resolution, else every REPORT_SEC;
- with POLYMARKET_ENABLED=false or a SYMBOL without up/down markets the actor idles
  (actors.feed.idle): no connection, and never another asset's markets.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx

from config.logging import LogOnce, conn_fields
from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.schema import DTYPES
from ipc.bus import Publisher
from ipc.state import Registry, StateBlock

from actors.feed.shell import Feed
from actors.venues.envelope import ConnPlan, Decoded
from actors.venues.http import HostPause, backoff_sec
from actors.venues.polymarket import gamma, clob as polymarket, series as series_mod
from actors.venues.polymarket.session import Session, outcome_prices

log = logging.getLogger("feed_poly")

SILENCE_SEC = 2.5 * polymarket.PING_INTERVAL_SEC
GAMMA_RETRY_BASE_SEC, GAMMA_RETRY_CAP_SEC = 0.5, 30.0   # an unresolved window: ask again, backing off
REASK_BASE_SEC, REASK_CAP_SEC = 2.0, 15.0   # a window waiting for Gamma's price to beat / resolution
# a 429 (or 503 + Retry-After) from Gamma or the CLOB pauses every request to that host: for its
# Retry-After, at most this long (then one request re-probes), else for the default
REST_PAUSE_CAP_SEC, REST_PAUSE_DEFAULT_SEC = 60.0, 5.0


class Paused(gamma.GammaError):
    """A REST request not sent: its host asked us to wait (HostPause)."""
REPORT_SEC = 0.5
_CONTROL = Decoded("control", "", ())
_CONTROL_KINDS = frozenset(("pong", "ping"))
# every Polymarket ring by its segment stream (`book_15m`) -> its key in names.VENUE_RINGS
_RING_KEY = {r.stream: key for key, r in names.VENUE_RINGS[names.POLY].items()}
_RING = {r.stream: r for r in names.VENUE_RINGS[names.POLY].values()}


def followed(s: Settings) -> dict[str, int]:
    """The followed series -> window length (s), in POLYMARKET_WINDOWS order."""
    return {k: int(s.venues.window_secs[k]) for k in s.venues.polymarket_windows}


def streams_of(series: dict[str, int] | tuple[str, ...]) -> tuple[str, ...]:
    """The shell streams (one per ring) of the followed series: book_<series>, trade_<series>."""
    return tuple(r.stream for k in series for r in (names.poly_book_ring(k), names.poly_trade_ring(k)))


class PolyFeed:
    """The Polymarket venue of the feed shell (the Venue protocol) and the actor's I/O tasks."""

    VENUE = names.POLY
    KEEPALIVE = (float(polymarket.PING_INTERVAL_SEC), polymarket.PING)
    ROTATE = False                 # the books are state: reconnect and resubscribe, never overlap

    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None):
        self.s = s
        self.asset = names.asset_of(s.general.symbol)
        if self.asset is None:
            raise ValueError(f"{s.general.symbol} has no up/down market (run the idle actor instead)")
        self.window_secs = followed(s)
        self.streams = streams_of(self.window_secs)
        self.session = Session(self.asset, self.window_secs, s.venues.topn, s.decisions.stale_threshold_sec,
                               self._write)
        self.lookup_errors: dict[str, str] = {}       # "<series>:<start_s>" -> the last error
        self.c = dict.fromkeys(("reconcile_errors", "gamma_lookups", "gamma_errors", "rest_responses",
                                "resync_errors", "subscribe_ops", "unsubscribe_ops",
                                "assets_subscribed", "assets_unsubscribed", "gamma_reasks",
                                "gamma_paused", "clob_paused", "rest_pauses"), 0)
        self.pauses = {"gamma": HostPause(REST_PAUSE_CAP_SEC), "clob": HostPause(REST_PAUSE_CAP_SEC)}
        self._log_once = LogOnce(log)
        self._slug_form: dict[str, int] = {}          # series -> index of the candidate Gamma knew
        self._reask: dict[tuple[str, int], tuple[int, float]] = {}   # window -> (asks, next monotonic)
        self._decoded = {st: Decoded(_RING[st].kind, st, ()) for st in self.streams}
        # a frame that touched no followed book (lifecycle, other markets): the first series' book
        # stream, so the recorder keeps it (and replay sends it) with the market data
        self._default = self._decoded[self.streams[0]]
        self._topics = {st: tuple(_RING[st].token_topic(t).encode() for t in range(len(names.POLY_TOKENS)))
                        for st in self.streams}
        # where a record's outcome token is, per stream (tick runs per book update)
        self._token_at = {st: DTYPES[_RING[st].kind].names.index("token") for st in self.streams}
        self.feed = Feed(s, self, "feed_poly", publisher=pub, registry=registry)
        self.pub = self.feed.pub
        self.state = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.POLYMARKET_BLOCK, writer=True)
        self.tap = self.feed.on_frame
        hooks = {"response": [self._tap_response]} if self.tap is not None else {}
        self.http = httpx.AsyncClient(timeout=10.0, event_hooks=hooks)
        self._dirty = asyncio.Event()        # the block must be rewritten now
        self._wake_resolver = asyncio.Event()
        self._wake_resync = asyncio.Event()

    # --- the Venue protocol (actors.feed.shell) ----------------------------------------------
    def plan(self, s: Settings) -> list[ConnPlan]:
        # "market": the recorder's connection name, which replay routes to /ws/market
        return [ConnPlan("market", s.venues.polymarket_ws_url, self.streams, stale_sec=SILENCE_SEC)]

    def stream_kind(self, stream: str) -> str | None:
        return _RING_KEY.get(stream) if stream in self.streams else None

    def max_silence_sec(self, stream: str, s: Settings) -> float | None:
        return s.decisions.stale_threshold_sec if _RING[stream].kind == POLY_BOOK_KIND else None

    def parse_frame(self, frame: bytes, ts_recv_ns: int) -> Decoded:
        """Decode (FrameError if malformed) and apply; the session writes the records."""
        msgs = polymarket.parse_frame(frame, ts_recv_ns)
        stream = self.session.on_msgs(msgs, ts_recv_ns)
        ses = self.session
        if ses.events:
            self._announce()
        if ses.hints:
            self._wake_resolver.set()
        if ses.resync_pending:
            self._wake_resync.set()
        if stream is not None:
            return self._decoded[stream]
        if all(m.kind in _CONTROL_KINDS for m in msgs):   # PONG (or an empty frame)
            return _CONTROL
        return self._default

    def poll(self, conn: str, fresh: bool, now_ns: int) -> tuple[list[bytes] | None, str | None]:
        now_s = clock.now_s()
        if fresh and not self.session.wanted_assets(now_s):
            return None, None                          # nothing to subscribe: do not connect yet
        new, gone = self.session.subscriptions(fresh, now_s, now_ns)
        send = []
        if fresh:
            if new:
                send.append(polymarket.subscribe_msg(new))
        else:
            if new:
                send.append(polymarket.update_msg(new, "subscribe"))
                self.c["subscribe_ops"] += 1
            if gone:
                send.append(polymarket.update_msg(gone, "unsubscribe"))
                self.c["unsubscribe_ops"] += 1
        self.c["assets_subscribed"] += len(new)
        self.c["assets_unsubscribed"] += len(gone)
        restart_for, ask_again = ([], []) if fresh else self.session.split_late(now_ns)
        if ask_again and not restart_for:   # a next window's book never came: ask for it again
            send += [polymarket.update_msg(ask_again, "unsubscribe"), polymarket.update_msg(ask_again, "subscribe")]
            self.session.resubscribed(ask_again, now_ns)      # (counted: `resubscribes`)
        # the venue did not answer for a current window (or dropped its book), or not even when
        # asked again: start over
        restart = f"no snapshot for {len(restart_for)} subscribed assets" if restart_for else None
        return send, restart

    def on_gap(self, streams: list[str], reason: str) -> None:
        if reason != "restart":          # after a restart there is no book to invalidate yet
            self.session.disconnected(clock.now_ns())

    def tick(self, ring: names.Ring, rec: tuple) -> bytes:
        """The topic of a record: Polymarket publishes per series and outcome token (the sink builds
        the payload, only when someone subscribes to that topic)."""
        return self._topics[ring.stream][rec[self._token_at[ring.stream]]]

    def counters(self) -> dict:
        return {**self.session.c, **self.c, "subscribed": len(self.session.subscribed)}

    def health(self) -> dict:
        now = clock.now_ns()
        series = {}
        for k in self.window_secs:
            cur = self.session.series[k].current
            books = self.session.book_state(k, now)
            series[k] = {"window": cur.slug if cur else None,
                         "books": {t: {x: v.get(x) for x in ("valid", "stale", "age_s", "best_bid", "best_ask")}
                                   for t, v in books.items()}}
        return {"series": series, "lookup_errors": dict(self.lookup_errors)}

    def _write(self, stream: str, rec: tuple, observe_age: bool) -> None:
        self.feed.write(stream, rec, observe_age)

    # --- announcements ------------------------------------------------------------------------
    def _announce(self) -> None:
        """Publish what the session reported (a resolution, a current window's new metadata)."""
        events, self.session.events = self.session.events, []
        for what, k, doc in events:      # each event carries its own doc (two resolutions: two docs)
            if what == "resolved":
                log.info("%s window %s resolved: %s (%s)", k, doc["slug"], doc["resolution"]["winner"],
                         doc["resolution"]["source"])
            self.pub.publish(names.poly_market_topic(k), doc)
        self._dirty.set()

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

    async def _lookup(self, slug: str | None, series: str, condition_id: str | None = None
                      ) -> tuple[gamma.WindowInfo, tuple | None]:
        """The window of `slug` (or of `condition_id`: a window already known) and, once Gamma
        closed it, its (UP, DOWN) outcome prices."""
        self.c["gamma_lookups"] += 1
        path = gamma.markets_path(slug) if condition_id is None else gamma.markets_by_condition_path(condition_id)
        r = await self._get("gamma", self.s.venues.polymarket_gamma_url + path)
        info = gamma.parse_market(r.content, self.s.venues.poly_up_is_yes, slug, series=series,
                                  asset=self.asset, want_condition=condition_id)
        return info, (outcome_prices(r.content, info) if info.closed else None)

    async def _get(self, host: str, url: str, **kw) -> httpx.Response:
        """One REST GET to `host` ("gamma" / "clob"), not sent while that host has us paused
        (Paused, counted `<host>_paused`); a 429 pauses the host; an error status raises."""
        pause = self.pauses[host]
        wait = pause.remaining_sec(time.monotonic())
        if wait > 0:
            self.c[f"{host}_paused"] += 1
            raise Paused(f"{host} asked us to wait (429): {wait:.1f} s more")
        r = await self.http.get(url, **kw)
        sec = pause.on_response(r.status_code, r.headers, time.monotonic(), REST_PAUSE_DEFAULT_SEC)
        if sec is not None:
            self.c["rest_pauses"] += 1
            self._log_once(f"pause:{host}", "%s answered %d: no request to it for %.1f s", host,
                           r.status_code, sec, extra=conn_fields(str(r.request.url), self.VENUE, service=host,
                                                                 status=r.status_code, retry_in_sec=sec))
        r.raise_for_status()
        return r

    def _lookup_failed(self, key: str, err: str) -> None:
        """A window Gamma did not (usably) answer for: counted, shown in `lookup_errors`, logged once."""
        self.c["gamma_errors"] += 1
        self.lookup_errors[key] = err
        while len(self.lookup_errors) > 4 * len(self.window_secs):
            del self.lookup_errors[next(iter(self.lookup_errors))]
        series, _, start_s = key.partition(":")
        self._log_once(f"gamma:{key}", "%s window %s not resolved: %s", series, start_s, err,
                       extra=conn_fields(self.s.venues.polymarket_gamma_url, self.VENUE, series,
                                         service="gamma", window_start_s=start_s))

    def _added(self, key: str, what: str | None) -> None:
        self.lookup_errors.pop(key, None)
        if what is not None:
            self._dirty.set()
        if self.session.events:
            self._announce()

    async def resolve(self, series: str, start_s: int) -> gamma.WindowInfo | None:
        """The window of `series` starting at start_s from Gamma (its slug candidates in order, the
        form that answered last time first), added to the session; None if Gamma knows none."""
        cands = series_mod.slug_candidates(self.asset, series, start_s)
        first = self._slug_form.get(series, 0)
        order = [i for i in (first, *range(len(cands))) if i < len(cands)]
        key = f"{series}:{start_s}"
        err = None
        for i in dict.fromkeys(order):
            try:
                info, prices = await self._lookup(cands[i], series)
            except (httpx.HTTPError, gamma.GammaError) as exc:
                err = f"{cands[i]}: {type(exc).__name__}: {exc}"
                continue
            if info.start_s != start_s:        # (a sim's shortened hourly windows share a slug)
                err = f"{cands[i]}: Gamma answered the window starting {info.start_s}"
                continue
            self._slug_form[series] = i
            try:
                what = self.session.add_window(info, clock.now_ns(), prices)
            except ValueError as exc:      # a settlement rule we cannot follow: a lookup error, not a crash
                err = f"{cands[i]}: {type(exc).__name__}: {exc}"
                break
            self._added(key, what)
            return info
        self._lookup_failed(key, err or "no slug candidate")
        return None

    async def reask(self, info: gamma.WindowInfo) -> gamma.WindowInfo | None:
        """A known window asked again (the current one's price to beat, an ended one's resolution)
        by its condition id, unique where a slug need not be (a sim's shortened hourly windows share
        one); added to the session; None if Gamma did not answer usably (a lookup error)."""
        key = f"{info.series}:{info.start_s}"
        self.c["gamma_reasks"] += 1
        try:
            new, prices = await self._lookup(None, info.series, info.condition_id)
            if new.start_s != info.start_s:
                raise gamma.GammaError(f"Gamma answered the window starting {new.start_s}")
            what = self.session.add_window(new, clock.now_ns(), prices)
        except (httpx.HTTPError, ValueError) as exc:   # GammaError, or a rule we cannot follow
            self._lookup_failed(key, f"{info.condition_id}: {type(exc).__name__}: {exc}")
            return None
        self._added(key, what)
        return new

    def _reask_due(self, series: str, start_s: int, now_mono: float) -> bool:
        """A known window asked again (price to beat, resolution): backing off per window."""
        n, due = self._reask.get((series, start_s), (0, 0.0))
        if now_mono < due:
            return False
        self._reask[(series, start_s)] = (
            n + 1, now_mono + backoff_sec(n, REASK_BASE_SEC, REASK_CAP_SEC, random.uniform(0.5, 1.0)))
        return True

    async def resolve_pass(self, now_s: float, mono: float, gather=asyncio.gather) -> bool:
        """One pass of the resolver: the windows wanted now looked up, the known ones Gamma will say
        more about asked again; True when every lookup answered. `gather` runs the requests
        (concurrently live; the backtest's event-time engine passes a sequential one)."""
        ses = self.session
        todo = ses.missing(now_s)
        todo += [h for h in ses.hints if h not in todo and h[1] not in ses.series[h[0]].windows]
        ses.hints.clear()
        ok = all(r is not None for r in await gather(*(self.resolve(k, w) for k, w in todo)))
        # known windows Gamma will say more about: the current one's price to beat, the
        # ended ones' resolution
        again = [st.current for st in ses.series.values()
                 if st.current is not None and st.current.price_to_beat is None]
        again += ses.unresolved()
        again = [i for i in again if self._reask_due(i.series, i.start_s, mono)]
        if again:          # by condition id: the slug is for finding new windows
            await gather(*(self.reask(i) for i in again))
        live = {(k, w) for k, w in ses.wanted(now_s)} | {(i.series, i.start_s) for i in ses.unresolved()}
        for w in [w for w in self._reask if w not in live]:
            del self._reask[w]
        return ok

    @staticmethod
    def resolve_delay_sec(ok: bool, attempt: int) -> float:
        """The resolver's wait before its next pass: 1 s, or a jittered backoff after a failure."""
        return 1.0 if ok else backoff_sec(attempt, GAMMA_RETRY_BASE_SEC, GAMMA_RETRY_CAP_SEC,
                                          random.uniform(0.5, 1.0))

    async def resolver(self) -> None:
        attempt = 0
        while True:
            ok = await self.resolve_pass(clock.now_s(), time.monotonic())
            attempt = 0 if ok else attempt + 1
            delay = max(self.resolve_delay_sec(ok, attempt), self.pauses["gamma"].remaining_sec(time.monotonic()))
            self._wake_resolver.clear()
            try:
                await asyncio.wait_for(self._wake_resolver.wait(), delay)
            except TimeoutError:
                pass

    # --- windows ------------------------------------------------------------------------------
    def roll_pass(self, now_ns: int) -> None:
        """At each boundary the next window (already subscribed and warm) becomes current."""
        for k in self.session.roll(now_ns / 1e9):
            doc = self.session.window_doc(k)
            if doc is not None:
                self.pub.publish(names.poly_market_topic(k), doc)
                self.session.write_current(k, now_ns)
                log.info("%s window %s (%s) is current", k, doc["slug"], doc["condition_id"])
            else:
                self._log_once(f"nowindow:{k}", "%s: the window now in progress is not resolved yet", k)
            self._dirty.set()
        if self.session.events:
            self._announce()

    async def roller(self) -> None:
        while True:
            self.roll_pass(clock.now_ns())
            await asyncio.sleep(0.1)

    # --- REST books -----------------------------------------------------------------------------
    async def fetch_book(self, asset: str) -> polymarket.Book:
        r = await self._get("clob", f"{self.s.venues.polymarket_clob_url}/book", params={"token_id": asset})
        return polymarket.parse_rest_book(r.content, clock.now_ns())

    async def _rest_book(self, asset: str, why: str):
        """REST /book of one asset for the reconcile or a resync; None (counted `<why>_errors`, logged
        once) if it failed."""
        try:
            return await self.fetch_book(asset)
        except (httpx.HTTPError, ValueError) as exc:
            self.c[f"{why}_errors"] += 1
            reason = getattr(exc, "reason", None)       # an insane value (envelope.Rejected): "/book:<field>"
            if reason is not None:
                self.feed.count_rejected(reason)
            self._log_once(why, "REST /book (%s) failed: %s", why, exc,
                           extra=conn_fields(f"{self.s.venues.polymarket_clob_url}/book?token_id={asset}",
                                             self.VENUE, asset, service="clob", error=type(exc).__name__))
            return None

    async def reconcile_pass(self) -> None:
        """Every current window's books checked against REST /book."""
        for st in self.session.series.values():
            cur = st.current
            for asset in (cur.up_token, cur.down_token) if cur else ():
                b = self.session.books.get(asset)
                if b is None or not b.has_snapshot:
                    continue
                snap = await self._rest_book(asset, "reconcile")
                if snap is not None:
                    self.session.reconcile(asset, snap, clock.now_ns())

    async def reconciler(self) -> None:
        while True:
            await asyncio.sleep(self.s.venues.polymarket_reconcile_sec)
            await self.reconcile_pass()

    async def resync_pass(self) -> None:
        """A book that disagreed with the venue's best bid/ask is replaced from REST /book at once
        (the session rate-limits per asset)."""
        for asset in self.session.resyncs_due(clock.now_ns()):
            snap = await self._rest_book(asset, "resync")
            if snap is not None and self.session.resync(asset, snap, clock.now_ns()):
                self._log_once(f"resync:{asset}", "resynced book %s… from REST after a best bid/ask mismatch",
                               asset[:12])
        self._wake_resync.clear()

    async def resyncer(self) -> None:
        while True:
            await self.resync_pass()
            nxt = self.session.next_resync_ns()
            wait = 5.0 if nxt is None else clock.wall_sec(nxt - clock.now_ns())
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake_resync.wait(), wait)
                except TimeoutError:
                    pass

    # --- state ----------------------------------------------------------------------------------
    def block(self) -> dict:
        now = clock.now_ns()
        return {"ts_ns": now, "disabled": None,
                "series": {k: self.session.series_doc(k, now) for k in self.window_secs},
                "counters": self.feed.counters(), "lookup_errors": dict(self.lookup_errors)}

    async def reporter(self) -> None:
        while True:
            self._dirty.clear()
            self.state.write(self.block())
            try:
                await asyncio.wait_for(self._dirty.wait(), REPORT_SEC)
            except TimeoutError:
                pass

    async def run(self) -> None:
        try:
            await self.feed.run((self.resolver(), self.roller(), self.reconciler(), self.resyncer(),
                                 self.reporter()))
        finally:
            await self.http.aclose()


POLY_BOOK_KIND = names.poly_book_ring(names.POLY_SERIES[0]).kind


def disabled_block(reason: str) -> dict:
    return {"ts_ns": clock.now_ns(), "disabled": reason, "series": {}, "counters": {}, "lookup_errors": {}}


def main(settings: Settings) -> None:
    if not settings.polymarket_on:
        from actors.feed.idle import run_disabled     # it logs the one WARNING line with the reason
        reason = settings.polymarket_off_reason
        StateBlock(settings.ipc.shm_dir, settings.ipc.shm_prefix, names.POLYMARKET_BLOCK,
                   writer=True).write(disabled_block(reason))
        run_disabled(settings, "feed_poly", reason)
        return
    import uvloop
    uvloop.run(PolyFeed(settings).run())
