"""actors.venues.polymarket.session: the book state machine, fed decoded CLOB frames, with the times
passed in. Exact records out; no sockets, no clock, no process."""
from __future__ import annotations

import math

import orjson
import pytest

from actors.venues.polymarket import clob
from actors.venues.polymarket.gamma import FeeSchedule, WindowInfo
from actors.venues.polymarket.session import SNAPSHOT_WAIT_SEC, Session
from ipc.schema import FLAG_GAP, FLAG_SNAPSHOT, POLY_BOOK, POLY_TRADE

W = 300
T0 = 1_780_000_200            # a window start (s), a multiple of W
NS = 1_000_000_000


def window(start_s: int, up: str, down: str) -> WindowInfo:
    return WindowInfo(f"btc-updown-5m-{start_s}", "m", f"0xc{start_s}", "q", up, down, start_s, start_s + W,
                      FeeSchedule(0.25, 2.0, True, 0.0, "feeSchedule"), 0.01, 5.0, "chainlink", False, 0,
                      None, None, True, False, True, False, "5m", "btc")


def frame(*events) -> list:
    return clob.parse_frame(orjson.dumps(list(events)), 7)


def book(asset, ts_ms, bids, asks):
    return {"event_type": "book", "asset_id": asset, "market": "0xc", "timestamp": str(ts_ms),
            "bids": [{"price": p, "size": s} for p, s in bids], "asks": [{"price": p, "size": s} for p, s in asks]}


def change(asset, ts_ms, side, price, size, best_bid=None, best_ask=None):
    e = {"asset_id": asset, "side": side, "price": price, "size": size}
    if best_bid is not None:
        e.update(best_bid=best_bid, best_ask=best_ask)
    return {"event_type": "price_change", "market": "0xc", "timestamp": str(ts_ms), "price_changes": [e]}


@pytest.fixture
def s():
    out: list = []
    sess = Session("btc", {"5m": W}, 3, 2.0, lambda stream, rec, age: out.append((stream, rec, age)))
    sess.out = out
    sess.add_window(window(T0, "up0", "dn0"), T0 * NS)
    sess.add_window(window(T0 + W, "up1", "dn1"), T0 * NS)
    return sess


def books(out):
    return [dict(zip(POLY_BOOK.names, r)) for st, r, _ in out if st == "book_5m"]


def test_dispatch_table_covers_every_message_kind(s):
    kinds = {"book", "price_change", "last_trade_price", "tick_size_change", "best_bid_ask", "pong",
             "ping", "new_market", "market_resolved"}
    assert set(s._on) == kinds
    s.on_msgs([clob.Unknown("whatever", {}, 7)], 1)
    assert s.c["unknown"] == 1 and s.out == []


def test_only_the_current_window_is_written_and_a_roll_writes_the_warm_books(s):
    now = (T0 + 10) * NS
    s.on_msgs(frame(book("up0", 1000, [("0.40", "10")], [("0.42", "5")])), now)
    assert s.out == [], "no window is current yet"
    assert s.roll(T0 + 10) == ["5m"] and s.roll(T0 + 11) == []      # once per window
    assert s.series["5m"].current.start_s == T0
    s.write_current("5m", now)
    (b,) = books(s.out)
    assert (b["token"], b["window_start_ns"], b["flags"], b["best_bid"], b["best_ask"], b["n_bids"]) == \
        (0, T0 * NS, FLAG_SNAPSHOT, 0.40, 0.42, 1)
    s.out.clear()
    # the next window's book is kept warm, not written
    s.on_msgs(frame(book("dn1", 2000, [("0.55", "1")], [("0.57", "2")])), now + 1)
    assert s.out == [] and s.books["dn1"].has_snapshot
    assert s.roll(T0 + W) == ["5m"] and s.series["5m"].current.start_s == T0 + W
    assert "up0" not in s.books and T0 not in s.series["5m"].windows    # the finished window is gone
    s.write_current("5m", now + 2)
    (b,) = books(s.out)
    assert (b["token"], b["window_start_ns"], b["best_bid"]) == (1, (T0 + W) * NS, 0.55)


def test_deltas_trades_tick_change_and_reconnect(s):
    s.roll(T0 + 1)
    now = (T0 + 1) * NS
    s.on_msgs(frame(book("up0", 1000, [("0.40", "10"), ("0.39", "3")], [("0.42", "5")])), now)
    s.on_msgs(clob.parse_frame(orjson.dumps(change("up0", 1001, "BUY", "0.41", "7", "0.41", "0.42")), 7), now + 1)
    s.on_msgs(clob.parse_frame(orjson.dumps(change("up0", 1002, "SELL", "0.42", "0", "0.41", "0.5")), 7), now + 2)
    assert s.c["best_mismatch"] == 1        # the venue says 0.5; after deleting 0.42 the book has none
    bs = books(s.out)
    assert [(b["update_id"], b["ts_event_ns"], b["best_bid"], b["flags"]) for b in bs[:2]] == \
        [(1, 1000 * 1_000_000, 0.40, FLAG_SNAPSHOT), (2, 1001 * 1_000_000, 0.41, 0)]
    assert math.isnan(bs[2]["best_ask"]) and bs[2]["n_asks"] == 0
    assert [age for st, _, age in s.out] == [True, True, True]
    s.out.clear()
    trade = {"event_type": "last_trade_price", "asset_id": "up0", "market": "0xc", "price": "0.41",
             "size": "2", "side": "SELL", "fee_rate_bps": "0", "timestamp": "1003"}
    s.on_msgs(frame(trade), now + 3)
    ((st, rec, _),) = s.out
    t = dict(zip(POLY_TRADE.names, rec))
    assert st == "trade_5m" and (t["token"], t["side"], t["price"], t["size"]) == (0, -1, 0.41, 2.0)
    s.out.clear()
    tick = {"event_type": "tick_size_change", "asset_id": "up0", "market": "0xc", "old_tick_size": "0.01",
            "new_tick_size": "0.001", "timestamp": "1004"}
    s.on_msgs(frame(tick), now + 4)
    (g,) = books(s.out)
    assert g["flags"] == FLAG_GAP and g["n_bids"] == 0 and not s.books["up0"].has_snapshot
    # a delta on an invalid book is counted, not applied
    s.on_msgs(clob.parse_frame(orjson.dumps(change("up0", 1005, "BUY", "0.3", "1")), 7), now + 5)
    assert len(books(s.out)) == 1
    s.out.clear()
    s.on_msgs(frame(book("dn0", 1006, [("0.5", "1")], [("0.6", "1")])), now + 6)
    s.out.clear()
    s.disconnected(now + 7)
    assert sorted((b["token"], b["flags"]) for b in books(s.out)) == [(0, FLAG_GAP), (1, FLAG_GAP)]
    assert [age for _, _, age in s.out] == [False, False]


def test_subscriptions_and_late_snapshots(s):
    now = (T0 + 1) * NS
    assert s.subscriptions(True, T0 + 1, now) == (["up0", "dn0", "up1", "dn1"], [])
    assert s.subscriptions(False, T0 + 1, now) == ([], [])
    s.add_window(window(T0 + 2 * W, "up2", "dn2"), now)
    s.on_msgs(frame(book("up1", 1, [], []), book("dn1", 1, [], [])), now)
    # the next boundary: the finished window's tokens go, the new next window's come
    assert s.subscriptions(False, T0 + W + 1, now) == (["up2", "dn2"], ["up0", "dn0"])
    late = now + int(SNAPSHOT_WAIT_SEC * NS) + 1
    assert sorted(s.late(late)) == ["dn2", "up2"] and s.late(now + 1) == []
    assert s.subscriptions(True, T0 + 1, late) == (["up0", "dn0", "up1", "dn1"], [])   # a new connection: all


def test_reconcile_replaces_a_differing_newer_book_but_keeps_it_stale(s):
    s.roll(T0 + 1)
    now = (T0 + 1) * NS
    s.on_msgs(frame(book("up0", 1000, [("0.40", "10")], [("0.42", "5")])), now)
    same = clob.parse_rest_book(orjson.dumps(book("up0", 1500, [("0.40", "10")], [("0.42", "5")])), 1)
    assert not s.reconcile("up0", same, now + 1)
    older = clob.parse_rest_book(orjson.dumps(book("up0", 999, [("0.30", "1")], [("0.42", "5")])), 1)
    assert not s.reconcile("up0", older, now + 2)
    newer = clob.parse_rest_book(orjson.dumps(book("up0", 2000, [("0.30", "1")], [("0.42", "5")])), 1)
    assert s.reconcile("up0", newer, now + 3 * NS)
    assert (s.c["reconcile_checks"], s.c["reconciled"]) == (3, 1)
    b = books(s.out)[-1]
    assert b["best_bid"] == 0.30 and b["flags"] == FLAG_SNAPSHOT and s.out[-1][2] is False
    st = s.book_state("5m", now + 3 * NS)["UP"]
    assert st["stale"] and st["age_s"] == 3.0 and st["best_bid"] == 0.30
