"""The Polymarket up/down book state machine: decoded CLOB messages in, POLY_BOOK / POLY_TRADE records
and window changes out. Pure: no I/O, no clock (every time is passed in), no logging.

`Session.on_msgs(msgs, now_ns)` applies the messages of one frame through a dispatch table on
`Msg.kind`; records leave through the `write(stream, rec, observe_age)` callback given at
construction ("book" / "trade", the streams of ipc.names.POLY_BOOK_RING / POLY_TRADE_RING).

Invariants:
- every record carries its window's start: a book of one window is never written as another's;
  only the current window's books are written, the next window's are kept warm in memory;
- `roll(now_s)` makes the window that contains now current, at most once per window, and drops the
  books of finished windows; `write_current` then writes its warm books as snapshots (the caller
  announces the window change in between, so no book of a window precedes its announcement);
- a book is rebuilt only from `book` snapshots and `price_change` deltas; after a
  `tick_size_change` or a disconnect it is unusable (a FLAG_GAP record says so) until a fresh
  snapshot;
- `subscriptions(fresh, now_s, now_ns)` names the assets still to subscribe (all wanted ones on a fresh
  connection); `late(now_ns)` those subscribed that got no snapshot within SNAPSHOT_WAIT_SEC;
- `reconcile(asset, snap, now_ns)` replaces a book by a REST snapshot that differs and is not older
  than the book's last event; it does not make a silent stream fresh (`last_ws_ns` is unchanged).
"""
from __future__ import annotations

from typing import Callable

from ipc.schema import FLAG_GAP, FLAG_SNAPSHOT

from actors.venues.polymarket import clob, gamma
from actors.venues.polymarket.book import OrderBook

SNAPSHOT_WAIT_SEC = 10.0
COUNTERS = ("books", "changes", "trades", "tick_size_changes", "best_mismatch", "unknown",
            "other_assets", "rollovers", "reconciled", "reconcile_checks", "records")

Write = Callable[[str, tuple, bool], None]     # (stream, record, observe data age)


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
        self.subscribed_ns = 0      # when it was (re)subscribed: its snapshot is due from then


class Session:
    def __init__(self, window_sec: int, topn: int, stale_threshold_sec: float, write: Write):
        self.window_sec, self.topn, self.stale_ns = window_sec, topn, stale_threshold_sec * 1e9
        self.write = write
        self.windows: dict[int, gamma.WindowInfo] = {}      # start_s -> market
        self.books: dict[str, TokenBook] = {}                 # asset id -> book
        self.current: gamma.WindowInfo | None = None
        self.subscribed: set[str] = set()
        self.c = dict.fromkeys(COUNTERS, 0)
        self._on = {"book": self._book, "price_change": self._price_change,
                    "last_trade_price": self._last_trade, "tick_size_change": self._tick_size_change,
                    "best_bid_ask": self._best_bid_ask, "pong": _ignore, "ping": _ignore,
                    "new_market": _ignore, "market_resolved": _ignore}

    # --- windows ---------------------------------------------------------------------------
    def wanted(self, now_s: float) -> list[int]:
        cur = gamma.window_start(now_s, self.window_sec)
        return [cur, cur + self.window_sec]

    def add_window(self, info: gamma.WindowInfo) -> None:
        self.windows[info.start_s] = info
        for token, asset in enumerate((info.up_token, info.down_token)):
            self.books.setdefault(asset, TokenBook(info, token))

    def wanted_assets(self, now_s: float) -> list[str]:
        out = []
        for w in self.wanted(now_s):
            info = self.windows.get(w)
            if info is not None:
                out += [info.up_token, info.down_token]
        return out

    def roll(self, now_s: float) -> gamma.WindowInfo | None:
        """The window that became current now, or None (no change, or not resolved yet)."""
        start = gamma.window_start(now_s, self.window_sec)
        info = self.windows.get(start)
        if info is None or (self.current is not None and self.current.start_s == start):
            return None
        self.current = info
        self.c["rollovers"] += 1
        for asset in [a for a, b in self.books.items() if b.window.end_s <= start]:
            del self.books[asset]                       # a finished window's books are gone
            self.subscribed.discard(asset)
        for w in [w for w in self.windows if w + self.window_sec <= start]:
            del self.windows[w]
        return info

    def write_current(self, now_ns: int) -> None:
        """Write the current window's warm books as snapshots (after its window change is out)."""
        cur = self.current
        for asset in (cur.up_token, cur.down_token) if cur else ():
            b = self.books.get(asset)
            if b is not None and b.has_snapshot:
                self._emit(b, FLAG_SNAPSHOT, now_ns, False)

    def is_current(self, b: TokenBook) -> bool:
        return self.current is not None and b.window.start_s == self.current.start_s

    # --- subscriptions ---------------------------------------------------------------------
    def subscriptions(self, fresh: bool, now_s: float, now_ns: int) -> list[str]:
        """Assets to subscribe now: every wanted one on a fresh connection, else the new ones."""
        if fresh:
            self.subscribed = set()
        new = [a for a in self.wanted_assets(now_s) if a not in self.subscribed]
        for a in new:
            self.subscribed.add(a)
            self.books[a].subscribed_ns = now_ns
        return new

    def late(self, now_ns: int) -> list[str]:
        wait_ns = SNAPSHOT_WAIT_SEC * 1e9
        return [a for a in self.subscribed if (b := self.books.get(a)) is not None
                and not b.has_snapshot and now_ns - b.subscribed_ns > wait_ns]

    # --- messages --------------------------------------------------------------------------
    def on_msgs(self, msgs: list, now_ns: int) -> None:
        on = self._on
        for m in msgs:
            on.get(m.kind, self._unknown)(m, now_ns)

    def _unknown(self, m, now_ns: int) -> None:
        self.c["unknown"] += 1

    def _book(self, m: clob.Book, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is None:
            self.c["other_assets"] += 1
            return
        b.book.apply_snapshot(m.bids, m.asks, m.timestamp_ms, m.tick_size)
        b.has_snapshot = True
        if m.last_trade_price is not None:
            b.last_trade = m.last_trade_price
        self.c["books"] += 1
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
                self.c["best_mismatch"] += 1
            self._touch(b, m.timestamp_ms, 0, now_ns)

    def _last_trade(self, m: clob.LastTrade, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is None:
            self.c["other_assets"] += 1
            return
        b.last_trade = m.price
        self.c["trades"] += 1
        if self.is_current(b):
            self.write("trade", clob.trade_record(m, b.token, b.window.start_ns), True)

    def _tick_size_change(self, m: clob.TickSizeChange, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is not None:
            b.book.invalidate("tick_size_change", m.new_tick_size)
            b.has_snapshot = False
            b.subscribed_ns = now_ns                   # the venue resends the book: wait from now
            self.c["tick_size_changes"] += 1
            self._touch(b, m.timestamp_ms, FLAG_GAP, now_ns)

    def _best_bid_ask(self, m: clob.BestBidAsk, now_ns: int) -> None:
        b = self.books.get(m.asset_id)
        if b is not None and b.has_snapshot and not b.book.check_best(m.best_bid, m.best_ask):
            self.c["best_mismatch"] += 1

    def disconnected(self, now_ns: int) -> None:
        """Data may be missing: every book is unusable until its next snapshot (a gap record)."""
        for b in self.books.values():
            b.has_snapshot = False
            b.subscribed_ns = now_ns
            b.book.invalidate("reconnect")
            self._touch(b, now_ns // 1_000_000, FLAG_GAP, now_ns)

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
        b.book.apply_snapshot(snap.bids, snap.asks, snap.timestamp_ms, snap.tick_size)
        self.c["reconciled"] += 1
        self._touch(b, snap.timestamp_ms, FLAG_SNAPSHOT, now_ns, ws=False)
        return True

    def _touch(self, b: TokenBook, ts_ms: int, flags: int, now_ns: int, ws: bool = True) -> None:
        b.update_id += 1
        b.last_update_ns = now_ns
        if ws:
            b.last_ws_ns = now_ns
        b.last_event_ns = ts_ms * 1_000_000
        if self.is_current(b):
            # data age: receive − venue time, of WebSocket data only (not a gap, not REST)
            self._emit(b, flags, now_ns, ws and ts_ms > 0 and not flags & FLAG_GAP)

    def _emit(self, b: TokenBook, flags: int, now_ns: int, observe_age: bool) -> None:
        rec = b.book.record(b.token, b.window.start_ns, b.update_id, b.last_event_ns, now_ns,
                            b.last_trade, n=self.topn, flags=flags)
        self.c["records"] += 1
        self.write("book", rec, observe_age)

    # --- views -----------------------------------------------------------------------------
    def book_state(self, now_ns: int) -> dict:
        out = {}
        cur, n = self.current, self.topn
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

    def market_doc(self, price_to_beat: float | None, source: str) -> dict:
        w = self.current
        return {"window_start_ns": w.start_ns, "window_end_ns": w.end_ns, "start_s": w.start_s,
                "end_s": w.end_s, "active": w.active, "closed": w.closed,
                "accepting_orders": w.accepting_orders, "slug": w.slug,
                "condition_id": w.condition_id, "up_token": w.up_token, "down_token": w.down_token,
                "fee_rate": w.fee.rate, "fee_exponent": w.fee.exponent, "tick_size": w.tick_size,
                "min_size": w.min_size, "twap_enabled": w.twap_enabled,
                "twap_lookback_sec": w.twap_lookback_sec, "resolution_source": w.resolution_source,
                "price_to_beat": price_to_beat, "price_to_beat_source": source}


def _ignore(m, now_ns: int) -> None:
    """Control and market-lifecycle messages: nothing to apply (windows come from Gamma)."""
