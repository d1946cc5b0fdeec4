"""The Polymarket up/down book state machine, for every followed series of one asset on one CLOB
connection: decoded CLOB messages in; POLY_BOOK / POLY_TRADE records, subscription changes,
window changes, resolutions and resync requests out. Pure: no I/O, no clock (every time is passed
in), no logging.

`Session(asset, window_secs, topn, stale_threshold_sec, write)` follows each series of
`window_secs` (series -> window length). `on_msgs(msgs, now_ns)` applies the messages of one frame
through a dispatch table on `Msg.kind`; records leave through `write(stream, rec, observe_age)`,
the stream being the series ring's (`ipc.names.poly_book_ring(series).stream`, `book_15m`, and
`poly_trade_ring(series).stream`). Per series a `SeriesState` holds the resolved windows, the
current one and the last resolutions; one index `books` (asset id -> TokenBook, which knows its
series) serves every series, so a frame mixing series is applied in one pass.

Invariants:
- every record carries its window's start and goes to its series' ring: a book of one window (or
  series) is never written as another's; only a series' current window's books are written, the
  next window's are kept warm in memory;
- `roll(now_s)` makes, per series, the window that contains now current, at most once per window,
  and retires finished windows (their books go; they wait in `ended` for their resolution);
  `write_current(series, now_ns)` then writes the warm books as snapshots (the caller announces
  the window change in between, so no book of a window precedes its announcement). A series whose
  window for now is not resolved has no current window (never a finished one);
- the wanted assets are exactly the UP and DOWN tokens of each series' current and next windows
  (those resolved); `subscriptions(fresh, now_s, now_ns)` -> (subscribe, unsubscribe): on a fresh
  connection every wanted asset and nothing to drop, else the wanted ones not yet subscribed and
  the subscribed ones no longer wanted, so the subscribed set never grows past the wanted one;
  `late(now_ns)` names the subscribed assets whose snapshot did not come in SNAPSHOT_WAIT_SEC and
  `split_late(now_ns)` sorts them: a next window's late book is asked for again (`resubscribed`)
  once; a current window's, or one still late SNAPSHOT_WAIT_SEC after it was asked for again, is
  worth a new connection;
- a book is rebuilt only from `book` snapshots and `price_change` deltas, corrected by REST
  snapshots; after a `tick_size_change` or a disconnect it is unusable (a FLAG_GAP record says so)
  until a fresh snapshot;
- a best_bid/best_ask from the venue (a `best_bid_ask` event, or a `price_change` entry) that
  disagrees with the rebuilt book counts `best_mismatch` and asks for a REST resync of that book
  (`resyncs_due(now_ns)`), at most once per RESYNC_MIN_SEC per asset; `resync(asset, snap, now_ns)`
  replaces the book by the REST snapshot unless the snapshot is older than the book's last event;
  `reconcile` (the periodic REST cross-check) replaces it only when the levels differ; neither
  makes a silent stream fresh (`last_ws_ns` is unchanged);
- a resolution is recorded with its window: `market_resolved` (the winner by winning asset id) or
  Gamma's `closed` answer for an ended window (`add_window`); each is reported once in `events`
  (("resolved" | "updated", series, market doc): the doc as it was then, so two resolutions of one
  series in one frame are two docs), and the series keeps the last RESOLVED_KEEP resolved market
  docs; a resolved window never waits in `ended` again (a late Gamma answer for it is ignored);
- `add_window` makes the window's settlement rule first: a Gamma answer it cannot make one from
  (settlement.rule_for's ValueError) changes nothing and raises, for the caller to report;
- `new_market` for a window we want (its slug is one of a wanted window's candidates) asks for an
  immediate Gamma lookup (`hints`): its metadata (fees, rule, end) comes from Gamma only; any
  other is counted (`new_markets_other`).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import orjson

from ipc import names
from ipc.schema import FLAG_GAP, FLAG_SNAPSHOT

from actors.decide import settlement
from actors.venues.polymarket import clob, gamma, series as series_mod
from actors.venues.polymarket.book import OrderBook

SNAPSHOT_WAIT_SEC = 10.0
RESYNC_MIN_SEC = 1.0           # at most one REST resync of a book per second
RESOLVED_KEEP = 5              # resolved market docs kept per series
ENDED_KEEP = 4                 # finished windows per series still waiting for their resolution
COUNTERS = ("books", "changes", "trades", "tick_size_changes", "best_mismatch", "unknown",
            "other_assets", "rollovers", "reconciled", "reconcile_checks", "records",
            "resyncs", "resync_stale", "resync_requests", "new_markets", "new_markets_other",
            "resolved", "resolved_other", "resolved_unknown_winner", "resubscribes")

Write = Callable[[str, tuple, bool], None]     # (stream, record, observe data age)


class SeriesState:
    """One followed series: its windows (start -> WindowInfo), the current one, the resolved."""

    def __init__(self, key: str, window_sec: int):
        self.key, self.window_sec = key, window_sec
        self.book_stream = names.poly_book_ring(key).stream
        self.trade_stream = names.poly_trade_ring(key).stream
        self.windows: dict[int, gamma.WindowInfo] = {}       # current and next (and not yet rolled)
        self.current: gamma.WindowInfo | None = None
        self.ended: dict[int, gamma.WindowInfo] = {}         # finished, resolution pending
        self.resolved: deque[dict] = deque(maxlen=RESOLVED_KEEP)   # market docs, oldest first

    def wanted(self, now_s: float) -> list[int]:
        cur = series_mod.window_start(self.key, now_s, self.window_sec)
        return [cur, series_mod.next_window_start(self.key, cur, self.window_sec)]


class TokenBook:
    def __init__(self, window: gamma.WindowInfo, token: int, st: SeriesState):
        self.window, self.token, self.st = window, token, st
        self.book = OrderBook()
        self.has_snapshot = False
        self.update_id = 0
        self.last_update_ns = 0     # any change (WebSocket or a REST correction)
        self.last_ws_ns = 0         # the stream's last word on this book: staleness follows it
        self.last_event_ns = 0
        self.last_trade: float | None = None
        self.subscribed_ns = 0      # when it was (re)subscribed: its snapshot is due from then
        self.asked_again = False    # a late snapshot was asked for again on this connection


class Session:
    def __init__(self, asset: str, window_secs: dict[str, int], topn: int, stale_threshold_sec: float,
                 write: Write):
        if not window_secs:
            raise ValueError("a Polymarket session needs at least one series")
        self.asset = asset
        self.topn, self.stale_ns = topn, stale_threshold_sec * 1e9
        self.write = write
        self.series: dict[str, SeriesState] = {k: SeriesState(k, int(sec)) for k, sec in window_secs.items()}
        self.books: dict[str, TokenBook] = {}                 # asset id -> book, every series
        self.rules: dict[str, settlement.Rule] = {}           # condition id -> its settlement rule
        self.resolutions: dict[str, dict] = {}                # condition id -> resolution doc
        self.subscribed: dict[str, None] = {}                 # ordered set of subscribed asset ids
        self.resync_pending: dict[str, int] = {}              # asset -> first mismatch (ns)
        self.last_resync_ns: dict[str, int] = {}
        self.events: list[tuple[str, str]] = []               # (what, series) for the caller
        self.hints: list[tuple[str, int]] = []                # (series, start): ask Gamma now
        self._touched: str | None = None
        self._slugs: tuple[int, dict[str, tuple[str, int]]] = (-1, {})
        self.c = dict.fromkeys(COUNTERS, 0)
        self._on = {"book": self._book, "price_change": self._price_change,
                    "last_trade_price": self._last_trade, "tick_size_change": self._tick_size_change,
                    "best_bid_ask": self._best_bid_ask, "pong": _ignore, "ping": _ignore,
                    "new_market": self._new_market, "market_resolved": self._market_resolved}

    # --- windows ---------------------------------------------------------------------------
    def wanted(self, now_s: float) -> list[tuple[str, int]]:
        """(series, start) of every series' current and next window."""
        return [(k, w) for k, st in self.series.items() for w in st.wanted(now_s)]

    def missing(self, now_s: float) -> list[tuple[str, int]]:
        """The wanted windows not resolved yet."""
        return [(k, w) for k, w in self.wanted(now_s) if w not in self.series[k].windows]

    def wanted_slugs(self, now_s: float) -> dict[str, tuple[str, int]]:
        """slug candidate -> (series, start) of every wanted window (cached per second)."""
        sec = int(now_s)
        if self._slugs[0] != sec:
            self._slugs = (sec, {slug: (k, w) for k, w in self.wanted(now_s)
                                 for slug in series_mod.slug_candidates(self.asset, k, w)})
        return self._slugs[1]

    def rule_of(self, info: gamma.WindowInfo) -> settlement.Rule:
        r = self.rules.get(info.condition_id)
        if r is None:
            r = self.rules[info.condition_id] = self._make_rule(info)
        return r

    def _make_rule(self, info: gamma.WindowInfo) -> settlement.Rule:
        return settlement.rule_for(info.series, self.asset, self.series[info.series].window_sec,
                                   info.resolution_source, info.twap_enabled, info.twap_lookback_sec)

    def add_window(self, info: gamma.WindowInfo, now_ns: int, prices: tuple | None = None) -> str | None:
        """A Gamma answer for one of our windows: 'new', 'updated' (its metadata changed),
        'resolved' (an ended window Gamma now resolves: `prices`, its (UP, DOWN) outcomePrices
        when closed, else finalPrice against priceToBeat), or None (nothing new, or a window
        already resolved and gone). ValueError, and nothing changed, if its settlement rule
        cannot be made from the answer (a source on a window length it has no candle for)."""
        st = self.series[info.series]
        if info.condition_id in self.resolutions and info.start_s not in st.windows:
            return None            # market_resolved came first: a late re-ask must not revive it
        rule = self._make_rule(info)                   # first: raises before anything changes
        self.rules[info.condition_id] = rule           # the metadata may have changed
        if info.start_s in st.ended or (st.windows.get(info.start_s) is None
                                         and info.end_s * 1_000_000_000 <= now_ns):
            st.ended[info.start_s] = info
            self._trim_ended(st)
            winner = gamma_winner(info, prices)
            if winner is not None and self._resolve(st, info, winner, "gamma", now_ns):
                return "resolved"
            return None
        prev = st.windows.get(info.start_s)
        st.windows[info.start_s] = info
        for token, asset in enumerate((info.up_token, info.down_token)):
            b = self.books.get(asset)
            if b is None:
                self.books[asset] = TokenBook(info, token, st)
            else:
                b.window = info
        if st.current is not None and st.current.start_s == info.start_s:
            st.current = info
        if prev is None:
            return "new"
        if _meta(prev) != _meta(info):
            if st.current is info:
                self.events.append(("updated", st.key, market_doc(info, rule, self.resolutions.get(
                    info.condition_id))))
            return "updated"
        return None

    def wanted_assets(self, now_s: float) -> list[str]:
        out = []
        for k, w in self.wanted(now_s):
            info = self.series[k].windows.get(w)
            if info is not None:
                out += [info.up_token, info.down_token]
        return out

    def roll(self, now_s: float) -> list[str]:
        """The series whose current window changed now (to a new window, or to none)."""
        changed = []
        for k, st in self.series.items():
            start = series_mod.window_start(k, now_s, st.window_sec)
            for w in [w for w, i in st.windows.items() if i.end_s <= now_s or w < start]:
                self._retire(st, st.windows.pop(w))
            info = st.windows.get(start)
            if info is not None and (st.current is None or st.current.start_s != start):
                st.current = info
                self.c["rollovers"] += 1
                changed.append(k)
            elif info is None and st.current is not None:
                st.current = None                       # its window ended; the next is unknown
                changed.append(k)
        return changed

    def _retire(self, st: SeriesState, info: gamma.WindowInfo) -> None:
        for asset in (info.up_token, info.down_token):
            b = self.books.get(asset)
            if b is not None and b.window.start_s == info.start_s:
                del self.books[asset]                   # a finished window's books are gone
            self.resync_pending.pop(asset, None)
            self.last_resync_ns.pop(asset, None)
        if info.condition_id in self.resolutions:
            self.rules.pop(info.condition_id, None)    # resolved and gone: nothing refers to it
        else:
            st.ended[info.start_s] = info
            self._trim_ended(st)

    def _trim_ended(self, st: SeriesState) -> None:
        while len(st.ended) > ENDED_KEEP:
            old = st.ended.pop(min(st.ended))
            self.rules.pop(old.condition_id, None)

    def unresolved(self) -> list[gamma.WindowInfo]:
        """The finished windows still waiting for a resolution (for Gamma to be asked again)."""
        return [i for st in self.series.values() for i in st.ended.values()]

    def write_current(self, series: str, now_ns: int) -> None:
        """Write a series' current window's warm books as snapshots (after its window change is out)."""
        cur = self.series[series].current
        for asset in (cur.up_token, cur.down_token) if cur else ():
            b = self.books.get(asset)
            if b is not None and b.has_snapshot:
                # stamped with the stream's last word on it, not now: a warm book that went quiet
                # must not look fresh because it became current
                self._emit(b, FLAG_SNAPSHOT, b.last_ws_ns or now_ns, False)

    @staticmethod
    def is_current(b: TokenBook) -> bool:
        cur = b.st.current
        return cur is not None and b.window.start_s == cur.start_s

    # --- resolutions -------------------------------------------------------------------------
    def _find(self, condition_id: str) -> tuple[SeriesState, gamma.WindowInfo] | None:
        for st in self.series.values():
            for info in (*st.windows.values(), *st.ended.values()):
                if info.condition_id == condition_id:
                    return st, info
        return None

    def _resolve(self, st: SeriesState, info: gamma.WindowInfo, winner: str, source: str,
                 ts_ns: int) -> bool:
        """Record a window's resolution once; True if it is new."""
        if info.condition_id in self.resolutions:
            return False
        res = self.resolutions[info.condition_id] = {"winner": winner, "source": source, "ts_ns": ts_ns}
        self.c["resolved"] += 1
        doc = market_doc(info, self.rule_of(info), res)
        st.resolved.append(doc)
        if st.ended.pop(info.start_s, None) is not None:
            self.rules.pop(info.condition_id, None)    # an ended window: its doc is all that is kept
        while len(self.resolutions) > RESOLVED_KEEP * len(self.series) * 4:
            del self.resolutions[next(iter(self.resolutions))]
        self.events.append(("resolved", st.key, doc))
        return True

    def _market_resolved(self, m: clob.MarketResolved, now_ns: int) -> None:
        if m.market in self.resolutions:               # ours, already recorded
            return
        found = self._find(m.market)
        if found is None:
            self.c["resolved_other"] += 1
            return
        st, info = found
        winner = {info.up_token: "UP", info.down_token: "DOWN"}.get(m.winning_asset_id)
        if winner is None:
            self.c["resolved_unknown_winner"] += 1
            return
        self._resolve(st, info, winner, "market_resolved", m.timestamp_ms * 1_000_000 or now_ns)

    def _new_market(self, m: clob.NewMarket, now_ns: int) -> None:
        hit = self.wanted_slugs(now_ns / 1e9).get(m.slug)
        if hit is None or m.slug == "":
            self.c["new_markets_other"] += 1
            return
        self.c["new_markets"] += 1
        if hit[1] not in self.series[hit[0]].windows and hit not in self.hints:
            self.hints.append(hit)

    # --- subscriptions ---------------------------------------------------------------------
    def subscriptions(self, fresh: bool, now_s: float, now_ns: int) -> tuple[list[str], list[str]]:
        """(subscribe, unsubscribe) now: on a fresh connection every wanted asset, else the
        wanted ones not subscribed yet and the subscribed ones no longer wanted."""
        if fresh:
            self.subscribed = {}
        want = dict.fromkeys(self.wanted_assets(now_s))
        new = [a for a in want if a not in self.subscribed]
        gone = [a for a in self.subscribed if a not in want]
        for a in gone:
            del self.subscribed[a]
        for a in new:
            self.subscribed[a] = None
            b = self.books[a]
            b.subscribed_ns, b.asked_again = now_ns, False
        return new, gone

    def late(self, now_ns: int) -> list[str]:
        wait_ns = SNAPSHOT_WAIT_SEC * 1e9
        return [a for a in self.subscribed if (b := self.books.get(a)) is not None
                and not b.has_snapshot and now_ns - b.subscribed_ns > wait_ns]

    def split_late(self, now_ns: int) -> tuple[list[str], list[str]]:
        """(late assets worth a new connection, late assets to ask for again): a current window's
        book without a snapshot, or a next window's still without one SNAPSHOT_WAIT_SEC after it
        was asked for again, restarts; a next window's is first only asked for again, so one quiet
        listing does not drop every book of every series."""
        late = self.late(now_ns)
        restart = [a for a in late if self.is_current(b := self.books[a]) or b.asked_again]
        return restart, [a for a in late if a not in restart]

    def resubscribed(self, assets: list[str], now_ns: int) -> None:
        """Those assets were asked for again (unsubscribe + subscribe): their snapshot is due from
        now, and if it does not come either, the connection is."""
        for a in assets:
            b = self.books[a]
            b.subscribed_ns, b.asked_again = now_ns, True
        self.c["resubscribes"] += len(assets)

    # --- messages --------------------------------------------------------------------------
    def on_msgs(self, msgs: list, now_ns: int) -> str | None:
        """Apply one frame's messages; the first series stream they touched (None: none)."""
        self._touched = None
        on = self._on
        for m in msgs:
            on.get(m.kind, self._unknown)(m, now_ns)
        return self._touched

    def _unknown(self, m, now_ns: int) -> None:
        self.c["unknown"] += 1

    def _book(self, m: clob.Book, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is None:
            self.c["other_assets"] += 1
            return
        b.book.apply_snapshot(m.bids, m.asks, m.timestamp_ms, m.tick_size)
        b.has_snapshot, b.asked_again = True, False
        if m.last_trade_price is not None:
            b.last_trade = m.last_trade_price
        self.c["books"] += 1
        self.resync_pending.pop(m.asset_id, None)       # a fresh snapshot is what a resync wanted
        self._touch(b, m.timestamp_ms, FLAG_SNAPSHOT, now_ns)

    def _price_change(self, m: clob.PriceChange, now_ns: int) -> None:
        touched = {}
        for ch in m.changes:
            b = self.books.get(ch.asset_id)
            if b is None or not b.has_snapshot:
                self.c["other_assets" if b is None else "changes"] += 1
                continue
            b.book.apply_change(ch.side, ch.price, ch.size)
            self.c["changes"] += 1
            touched[ch.asset_id] = (b, ch)
        for b, ch in touched.values():
            if (ch.best_bid is not None or ch.best_ask is not None) and not b.book.check_best(
                    ch.best_bid, ch.best_ask):
                self._mismatch(ch.asset_id, now_ns)
            self._touch(b, m.timestamp_ms, 0, now_ns)

    def _last_trade(self, m: clob.LastTrade, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is None:
            self.c["other_assets"] += 1
            return
        b.last_trade = m.price
        self.c["trades"] += 1
        if self.is_current(b):
            self._touched = self._touched or b.st.trade_stream
            self.write(b.st.trade_stream, clob.trade_record(m, b.token, b.window.start_ns), True)

    def _tick_size_change(self, m: clob.TickSizeChange, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is not None:
            b.book.invalidate("tick_size_change", m.new_tick_size)
            b.has_snapshot = False
            b.subscribed_ns = now_ns                   # the venue resends the book: wait from now
            self.c["tick_size_changes"] += 1
            self.resync_pending.pop(m.asset_id, None)
            self._touch(b, m.timestamp_ms, FLAG_GAP, now_ns)

    def _best_bid_ask(self, m: clob.BestBidAsk, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is None:
            self.c["other_assets"] += 1
            return
        self._touched = self._touched or b.st.book_stream
        if b.has_snapshot and not b.book.check_best(m.best_bid, m.best_ask):
            self._mismatch(m.asset_id, now_ns)

    def disconnected(self, now_ns: int) -> None:
        """Data may be missing: every book is unusable until its next snapshot (a gap record)."""
        self.resync_pending.clear()
        for b in self.books.values():
            b.has_snapshot = False
            b.subscribed_ns = now_ns
            b.book.invalidate("reconnect")
            self._touch(b, now_ns // 1_000_000, FLAG_GAP, now_ns)

    # --- REST corrections --------------------------------------------------------------------
    def _mismatch(self, asset: str, now_ns: int) -> None:
        self.c["best_mismatch"] += 1
        if asset not in self.resync_pending:
            self.resync_pending[asset] = now_ns
            self.c["resync_requests"] += 1

    def resyncs_due(self, now_ns: int) -> list[str]:
        """The books to fetch from REST now: a mismatch is pending and the last resync of that
        asset is at least RESYNC_MIN_SEC ago. Taken: they are pending no more."""
        gap_ns = RESYNC_MIN_SEC * 1e9
        due = [a for a in self.resync_pending
               if a in self.books and now_ns - self.last_resync_ns.get(a, -gap_ns) >= gap_ns]
        for a in due:
            del self.resync_pending[a]
            self.last_resync_ns[a] = now_ns
        for a in [a for a in self.resync_pending if a not in self.books]:
            del self.resync_pending[a]
        return due

    def next_resync_ns(self) -> int | None:
        """When the earliest pending resync may run (None: nothing pending)."""
        gap_ns = int(RESYNC_MIN_SEC * 1e9)
        ts = [self.last_resync_ns.get(a, -gap_ns) + gap_ns for a in self.resync_pending]
        return min(ts) if ts else None

    def resync(self, asset: str, snap: clob.Book, now_ns: int) -> bool:
        """A REST snapshot fetched after a mismatch: it replaces the book (True) unless it is older
        than the book's last event, or the book is gone or waits for the venue's own snapshot."""
        b = self.books.get(asset)
        if b is None or not b.has_snapshot:
            return False
        if snap.timestamp_ms * 1_000_000 < b.last_event_ns:
            self.c["resync_stale"] += 1
            return False
        self._replace(b, snap, now_ns)
        self.c["resyncs"] += 1
        return True

    def reconcile(self, asset: str, snap: clob.Book, now_ns: int) -> bool:
        """Compare a book with a REST snapshot; True if the snapshot replaced it."""
        b = self.books.get(asset)
        if b is None:
            return False
        self.c["reconcile_checks"] += 1
        same = b.book.levels("bid") == [(p, s) for p, s in snap.bids] and \
            b.book.levels("ask") == [(p, s) for p, s in snap.asks]
        if same or snap.timestamp_ms * 1_000_000 < b.last_event_ns:
            return False
        self._replace(b, snap, now_ns)
        self.c["reconciled"] += 1
        return True

    def _replace(self, b: TokenBook, snap: clob.Book, now_ns: int) -> None:
        b.book.apply_snapshot(snap.bids, snap.asks, snap.timestamp_ms, snap.tick_size)
        self._touch(b, snap.timestamp_ms, FLAG_SNAPSHOT, now_ns, ws=False)

    # --- records -----------------------------------------------------------------------------
    def _touch(self, b: TokenBook, ts_ms: int, flags: int, now_ns: int, ws: bool = True) -> None:
        b.update_id += 1
        b.last_update_ns = now_ns
        if ws:
            b.last_ws_ns = now_ns
        b.last_event_ns = ts_ms * 1_000_000
        self._touched = self._touched or b.st.book_stream
        if self.is_current(b):
            # data age: receive − venue time, of WebSocket data only (not a gap, not REST); a REST
            # correction keeps the stream's receive time, so a silent stream still ages
            self._emit(b, flags, now_ns if ws else (b.last_ws_ns or now_ns),
                       ws and ts_ms > 0 and not flags & FLAG_GAP)

    def _emit(self, b: TokenBook, flags: int, now_ns: int, observe_age: bool) -> None:
        rec = b.book.record(b.token, b.window.start_ns, b.update_id, b.last_event_ns, now_ns,
                            b.last_trade, n=self.topn, flags=flags)
        self.c["records"] += 1
        self.write(b.st.book_stream, rec, observe_age)

    # --- views -----------------------------------------------------------------------------
    def book_state(self, series: str, now_ns: int) -> dict:
        out = {}
        cur, n = self.series[series].current, self.topn
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
                         "stale": age is None or age * 1e9 > self.stale_ns,
                         "depth_bid_usd": b.book.depth_usd("bid", n),
                         "depth_ask_usd": b.book.depth_usd("ask", n),
                         "bids": b.book.levels("bid")[:n], "asks": b.book.levels("ask")[:n]}
        return out

    def doc_of(self, info: gamma.WindowInfo | None) -> dict | None:
        if info is None:
            return None
        return market_doc(info, self.rule_of(info), self.resolutions.get(info.condition_id))

    def window_doc(self, series: str) -> dict | None:
        """The market doc of a series' current window (None: no current window)."""
        return self.doc_of(self.series[series].current)

    def next_doc(self, series: str) -> dict | None:
        st = self.series[series]
        cur = st.current
        nxt = [i for w, i in sorted(st.windows.items()) if cur is None or w > cur.start_s]
        return self.doc_of(nxt[0]) if nxt else None

    def series_doc(self, series: str, now_ns: int) -> dict:
        """One series in the POLYMARKET_BLOCK."""
        st = self.series[series]
        return {"window": self.window_doc(series), "next": self.next_doc(series),
                "books": self.book_state(series, now_ns), "resolved": list(st.resolved)}


def _meta(info: gamma.WindowInfo) -> tuple:
    """What of a window's Gamma answer is worth announcing when it changes."""
    return (info.price_to_beat, info.final_price, info.closed, info.active, info.accepting_orders,
            info.resolution_source, info.twap_enabled, info.twap_lookback_sec, info.fee)


def gamma_winner(info: gamma.WindowInfo, prices: tuple | None = None) -> str | None:
    """Gamma's resolution of a closed window: the outcome priced higher (`outcomePrices` (up,
    down): 1 and 0 once resolved), else finalPrice against priceToBeat (Up wins on >=); None while
    open or undecided."""
    if not info.closed:
        return None
    if prices and len(prices) == 2 and None not in prices and prices[0] != prices[1]:
        return "UP" if prices[0] > prices[1] else "DOWN"
    if info.final_price is not None and info.price_to_beat is not None:
        return settlement.winner(info.final_price, info.price_to_beat)
    return None


def outcome_prices(body: bytes | str, info: gamma.WindowInfo) -> tuple[float, float] | None:
    """(UP, DOWN) of the `outcomePrices` of `info`'s market (by `conditionId`: slugs of shortened
    hourly windows are shared in the sim) in a Gamma `/markets` answer, paired with `clobTokenIds`
    by position; None when absent or not two numbers."""
    try:
        d = orjson.loads(body)
        ms = d if type(d) is list else [d]
        m = next(m for m in ms if type(m) is dict and m.get("conditionId") == info.condition_id)
        ids, px = (orjson.loads(v) if type(v) is str else v
                   for v in (m.get("clobTokenIds"), m.get("outcomePrices")))
        by = dict(zip(ids, (float(p) for p in px)))
        if len(ids) != 2 or len(px) != 2:
            return None
        up, down = by.get(info.up_token), by.get(info.down_token)
        return None if up is None or down is None else (up, down)
    except (StopIteration, orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        return None


def market_doc(info: gamma.WindowInfo, rule: settlement.Rule, resolution: dict | None) -> dict:
    """The market doc of one window (POLYMARKET_BLOCK and `tick.poly.market.<series>`)."""
    ptb = info.price_to_beat
    return {"series": info.series, "asset": info.asset,
            "window_start_ns": info.start_ns, "window_end_ns": info.end_ns, "start_s": info.start_s,
            "end_s": info.end_s, "active": info.active, "closed": info.closed,
            "accepting_orders": info.accepting_orders, "slug": info.slug,
            "condition_id": info.condition_id, "up_token": info.up_token, "down_token": info.down_token,
            "fee_rate": info.fee.rate, "fee_exponent": info.fee.exponent,
            "fee_taker_only": info.fee.taker_only, "tick_size": info.tick_size,
            "min_size": info.min_size, "twap_enabled": info.twap_enabled,
            "twap_lookback_sec": info.twap_lookback_sec, "resolution_source": info.resolution_source,
            "rule": rule.doc(), "price_to_beat": ptb,
            "price_to_beat_source": settlement.VENUE if ptb is not None else None,
            "final_price": info.final_price, "resolution": resolution}


def _ignore(m, now_ns: int) -> None:
    """Control messages: nothing to apply."""
