"""actors.venues.polymarket.book.OrderBook: replay of the real 2026 burst capture, plus exact arithmetic.

ws_book_and_price_change_burst_2026.json is one binary market: a `book` of the UP token, 49
`price_change` batches each carrying one entry per token (UP and DOWN, complementary prices, same
size), then the UP `book` resent after a trade. There is no DOWN snapshot in the file; the DOWN book
is seeded with the complement of the UP snapshot (actors.venues.polymarket.book.complement), which the capture itself
justifies: every DOWN best_bid/best_ask it carries is then reproduced.
"""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from actors.decide.edge import walk_with_fee
from actors.venues.polymarket.book import OrderBook, complement, price_key
from actors.venues.polymarket.clob import parse_frame, parse_rest_book
from ipc.schema import FLAG_SNAPSHOT, MAX_LEVELS, POLY_BOOK
from tests.support.fixtures import POLYMARKET, need

RECV = 1_790_658_700_000_000_000
UP = "76670567130917723816490572615540605537878462672464291990940067659127658071111"
DOWN = "54179564009642723353355316176091991063553046330768303687769988635499280029688"
BURST = "ws_book_and_price_change_burst_2026.json"

# (message index, entry index) whose carried best_bid/best_ask are NOT the book right after that
# entry: one crossing trade at 1790658827000 is split over messages 47, 48 and 49 (same timestamp,
# same per-token hash); every entry of the three carries the book as it is after message 49.
CROSSING = {(47, 0), (47, 1), (48, 0), (48, 1)}


def burst():
    return parse_frame(need(POLYMARKET / BURST).read_bytes(), RECV)


def seeded(msgs):
    books = {UP: OrderBook(), DOWN: OrderBook()}
    b0 = msgs[0]
    books[UP].apply_snapshot(b0.bids, b0.asks, b0.timestamp_ms, b0.tick_size)
    cb, ca = complement(b0.bids, b0.asks)
    books[DOWN].apply_snapshot(cb, ca, b0.timestamp_ms, b0.tick_size)
    return books


def test_burst_replay_best_fields_match_after_every_entry():
    msgs = burst()
    books = seeded(msgs)
    mismatches = set()
    carried_in_crossing = {}
    for i, m in enumerate(msgs[1:50], 1):
        assert m.kind == "price_change"
        for j, c in enumerate(m.changes):
            book = books[c.asset_id]
            book.apply_change(c.side, c.price, c.size)
            assert c.best_bid is not None and c.best_ask is not None
            if not book.check_best(c.best_bid, c.best_ask):
                mismatches.add((i, j))
                carried_in_crossing[(i, j)] = (c.asset_id, c.best_bid, c.best_ask)
    assert mismatches == CROSSING
    # what the crossing entries carried is the state after the whole trade (after message 49)
    for asset, bb, ba in carried_in_crossing.values():
        assert books[asset].check_best(bb, ba)
    assert (books[UP].best_bid(), books[UP].best_ask()) == (0.29, 0.301)
    assert (books[DOWN].best_bid(), books[DOWN].best_ask()) == (0.699, 0.71)
    for b in books.values():
        assert b.valid and b.absent_removals == 0 and b.ignored_changes == 0 and b.changes == 49


def test_burst_crossing_trade_is_transiently_crossed():
    msgs = burst()
    books = seeded(msgs)
    crossed_at = []
    for i, m in enumerate(msgs[1:50], 1):
        for c in m.changes:
            books[c.asset_id].apply_change(c.side, c.price, c.size)
        if books[UP].crossed:
            crossed_at.append(i)
            assert books[DOWN].crossed
    # 47: UP ask 0.301 (45.83) rests while the bids at 0.311 and 0.301 are still shown;
    # 48 removes the 0.311 bid, 49 the 0.301 bid
    assert crossed_at == [47, 48]
    assert {m.timestamp_ms for m in msgs[47:50]} == {1790658827000}
    assert {c.hash for m in msgs[47:50] for c in m.changes if c.asset_id == UP} == \
        {"78b396c8a7f4989f638fe6cf9b2e8ced15680ba7"}


def test_burst_final_resent_book_equals_the_reconstruction():
    msgs = burst()
    books = seeded(msgs)
    for m in msgs[1:50]:
        for c in m.changes:
            books[c.asset_id].apply_change(c.side, c.price, c.size)
    final = msgs[50]
    assert final.kind == "book" and final.asset_id == UP
    assert books[UP].levels("bid") == final.bids
    assert books[UP].levels("ask") == final.asks
    assert (len(final.bids), len(final.asks)) == (23, 23)
    assert final.bids[0] == (0.29, 2005.0) and final.asks[:3] == [(0.301, 45.83), (0.387, 60.0), (0.388, 300.0)]
    # the hash of the resent book is the hash carried by the last UP entries
    assert final.hash == msgs[49].changes[0].hash == "78b396c8a7f4989f638fe6cf9b2e8ced15680ba7"
    # and DOWN is still the complement of UP
    cb, ca = complement(final.bids, final.asks)
    assert books[DOWN].levels("bid") == cb and books[DOWN].levels("ask") == ca


def test_burst_changes_total_size_semantics_hand_checked():
    # Message 46 sets UP ask 0.4 to 5 (it was 4765 in the first snapshot): a new total, not a delta.
    msgs = burst()
    books = seeded(msgs)
    assert dict(books[UP].levels("ask"))[0.4] == 4765.0
    for m in msgs[1:47]:
        for c in m.changes:
            books[c.asset_id].apply_change(c.side, c.price, c.size)
    assert dict(books[UP].levels("ask"))[0.4] == 5.0
    assert dict(books[DOWN].levels("bid"))[0.6] == 5.0


# ---------------------------------------------------------------------------------------------
# snapshots, keys, ordering
# ---------------------------------------------------------------------------------------------

def test_snapshot_sides_in_any_order():
    b = parse_frame(need(POLYMARKET / "ws_book_2024.json").read_bytes(), RECV)[0]
    fwd, rev = OrderBook(), OrderBook()
    fwd.apply_snapshot(b.bids, b.asks, b.timestamp_ms)
    rev.apply_snapshot(b.bids[::-1], b.asks[::-1], b.timestamp_ms)
    shuf = OrderBook()
    shuf.apply_snapshot(b.bids[::3] + b.bids[1::3] + b.bids[2::3], b.asks[1::2] + b.asks[::2], 1)
    assert fwd.top(MAX_LEVELS) == rev.top(MAX_LEVELS) == shuf.top(MAX_LEVELS)
    assert (fwd.best_bid(), fwd.best_ask()) == (0.511, 0.514)
    assert fwd.levels("bid") == b.bids and fwd.levels("ask") == b.asks
    assert (fwd.n_bids, fwd.n_asks) == (76, 86)


def test_rest_snapshot_with_an_empty_side():
    b = parse_rest_book(need(POLYMARKET / "clob_book_rest_2026_empty_ask.json").read_bytes())
    ob = OrderBook()
    ob.apply_snapshot(b.bids, b.asks, b.timestamp_ms, b.tick_size)
    assert (ob.best_bid(), ob.best_ask(), ob.tick_size) == (0.002, None, 0.001)
    assert ob.check_best(0.002, None) and not ob.crossed
    w = walk_with_fee(ob.levels("ask"), 10.0, 0.0)      # nothing to buy
    assert (w["shares"], w["levels_used"], w["avg_price"]) == (0.0, 0, None)


def test_price_keys_merge_equal_prices():
    ob = OrderBook()
    ob.apply_snapshot([(float("0.5"), 1.0)], [(0.6, 2.0)], 1)
    ob.apply_change("BUY", float("0.50"), 3.0)
    ob.apply_change("bid", 1 - 0.5, 4.0)
    assert ob.levels("bid") == [(0.5, 4.0)]
    assert 1 - 0.301 != 0.699 and price_key(1 - 0.301) == 0.699
    ob.apply_change("ask", 1 - 0.301, 7.0)           # 0.6990000000000001 lands on 0.699
    ob.apply_change("SELL", 0.699, 0.0)
    assert ob.levels("ask") == [(0.6, 2.0)]
    ob.apply_change("ask", 0.123, 0.0)               # removing an absent level is a counted no-op
    assert ob.absent_removals == 1 and ob.levels("ask") == [(0.6, 2.0)]
    with pytest.raises(ValueError):
        ob.apply_change("HOLD", 0.5, 1.0)


def test_snapshot_repeated_price_keeps_last_and_skips_zero():
    ob = OrderBook()
    ob.apply_snapshot([(0.4, 1.0), (0.40, 2.0), (0.3, 0.0)], [], 1)
    assert ob.levels("bid") == [(0.4, 2.0)]


def test_changes_keep_both_sides_sorted():
    ob = OrderBook()
    ob.apply_snapshot([], [], 1)
    for p in (0.3, 0.1, 0.2, 0.25):
        ob.apply_change("bid", p, p * 10)
    for p in (0.9, 0.7, 0.8, 0.75):
        ob.apply_change("ask", p, p * 10)
    assert ob.top(3) == ([0.3, 0.25, 0.2], [3.0, 2.5, 2.0], [0.7, 0.75, 0.8], [7.0, 7.5, 8.0])
    ob.apply_change("bid", 0.3, 0)
    ob.apply_change("ask", 0.7, 0)
    assert (ob.best_bid(), ob.best_ask()) == (0.25, 0.75)
    assert ob.top(0) == ([], [], [], [])
    assert ob.top(10)[0] == [0.25, 0.2, 0.1]


# ---------------------------------------------------------------------------------------------
# tick_size_change invalidates until a snapshot
# ---------------------------------------------------------------------------------------------

def test_tick_size_change_invalidates_until_snapshot():
    tsc = parse_frame(need(POLYMARKET / "ws_tick_size_change_2025.json").read_bytes(), RECV)[0]
    ob = OrderBook()
    assert not ob.valid and ob.invalid_reason == "no snapshot yet"
    ob.apply_change("bid", 0.5, 1.0)                 # before any snapshot: ignored
    assert ob.ignored_changes == 1 and ob.best_bid() is None
    ob.apply_snapshot([(0.5, 10.0)], [(0.52, 5.0)], 1, tick_size=tsc.old_tick_size)
    assert ob.valid and ob.tick_size == 0.01
    ob.invalidate("tick_size_change", tsc.new_tick_size)
    assert not ob.valid and ob.invalid_reason == "tick_size_change" and ob.tick_size == 0.001
    assert (ob.best_bid(), ob.best_ask(), ob.n_bids, ob.n_asks) == (None, None, 0, 0)
    ob.apply_change("bid", 0.505, 3.0)
    assert ob.ignored_changes == 2 and ob.best_bid() is None
    rec = ob.record(0, 0, 9, 1, 2, None)
    assert rec[6:8] == (0, 0) and math.isnan(rec[8]) and math.isnan(rec[9]) and rec[11] == 0.001
    ob.apply_snapshot([(0.505, 3.0)], [(0.506, 1.0)], 2)    # tick_size None keeps 0.001
    assert ob.valid and ob.invalid_reason == "" and ob.tick_size == 0.001
    assert (ob.best_bid(), ob.best_ask()) == (0.505, 0.506)


# ---------------------------------------------------------------------------------------------
# walk, depth, check_best
# ---------------------------------------------------------------------------------------------

def _book(bids, asks):
    ob = OrderBook()
    ob.apply_snapshot(bids, asks, 1)
    return ob


def _walk(ob, usd):
    """(shares, avg_price, levels_used) of spending `usd` on the book's asks, fee-free."""
    w = walk_with_fee(ob.levels("ask"), usd, 0.0)
    return w["shares"], w["avg_price"], w["levels_used"]


def test_walk_exact_binary_prices():
    ob = _book([(0.2, 50.0)], [(0.75, 40.0), (0.25, 100.0), (0.5, 100.0)])
    # $25 buys the whole 0.25 level exactly: 100 shares, one level
    assert _walk(ob, 25.0) == (100.0, 0.25, 1)
    # $50: 100 @ 0.25 ($25) + 50 @ 0.5 ($25) = 150 shares, avg 50/150
    assert _walk(ob, 50.0) == (150.0, 50.0 / 150.0, 2)
    # $80: 100 @ 0.25 + 100 @ 0.5 ($75) + $5 / 0.75 of the third
    sh, avg, n = _walk(ob, 80.0)
    assert (sh, n) == (200.0 + 5.0 / 0.75, 3) and avg == 80.0 / sh
    # more than the side holds: everything, 240 shares for $105
    assert _walk(ob, 1000.0) == (240.0, 105.0 / 240.0, 3)
    assert _walk(ob, 0.0) == (0.0, None, 0)


def test_walk_decimal_prices_hand_computed():
    # First two asks of the burst's first UP snapshot: 100.09 @ 0.397, 3737.87 @ 0.398.
    ob = _book([], [(0.398, 3737.87), (0.397, 100.09)])
    sh, avg, n = _walk(ob, 100.0)
    d_sh = Decimal("100.09") + (Decimal(100) - Decimal("0.397") * Decimal("100.09")) / Decimal("0.398")
    # 100.09 + 60.26427 / 0.398 = 100.09 + 151.4177638190954773869346734
    assert d_sh == Decimal("251.5077638190954773869346734")
    assert n == 2
    assert sh == pytest.approx(float(d_sh), rel=1e-15)
    assert avg == pytest.approx(float(Decimal(100) / d_sh), rel=1e-15)


def test_depth_usd():
    ob = _book([(0.5, 10.0), (0.25, 4.0), (0.125, 8.0)], [(0.75, 4.0), (0.875, 8.0)])
    assert ob.depth_usd("bid", 1) == 5.0
    assert ob.depth_usd("bid", 2) == 6.0
    assert ob.depth_usd("bid", 20) == 7.0
    assert ob.depth_usd("ask", 2) == 3.0 + 7.0
    assert ob.depth_usd("ask", 0) == 0.0


def test_check_best():
    ob = _book([(0.5, 1.0)], [(0.52, 1.0)])
    assert ob.check_best(0.5, 0.52) and ob.check_best(float("0.50"), 0.5200000000000001)
    assert not ob.check_best(0.49, 0.52) and not ob.check_best(0.5, None)
    empty = _book([], [])
    assert empty.check_best(None, None) and empty.check_best(0.0, 1.0) and empty.check_best(0.0, 0.0)
    assert not empty.check_best(0.5, None)


# ---------------------------------------------------------------------------------------------
# record
# ---------------------------------------------------------------------------------------------

def test_record_field_order_and_padding():
    assert POLY_BOOK.names[:12] == ("ts_event_ns", "ts_recv_ns", "flags", "window_start_ns", "update_id",
                                    "token", "n_bids", "n_asks", "best_bid", "best_ask", "last_trade",
                                    "tick_size")
    ob = _book([(0.5, 10.0), (0.49, 20.0), (0.48, 30.0)], [(0.52, 5.0)])
    ob.tick_size = 0.01
    rec = ob.record(token=1, window_start_ns=7 * 10**9, update_id=42, ts_event_ns=11, ts_recv_ns=12,
                    last_trade=0.51, n=2, flags=FLAG_SNAPSHOT)
    arr = np.zeros(1, dtype=POLY_BOOK)
    arr[0] = rec
    r = arr[0]
    assert (int(r["ts_event_ns"]), int(r["ts_recv_ns"]), int(r["flags"])) == (11, 12, FLAG_SNAPSHOT)
    assert (int(r["window_start_ns"]), int(r["update_id"]), int(r["token"])) == (7 * 10**9, 42, 1)
    assert (int(r["n_bids"]), int(r["n_asks"])) == (2, 1)
    assert (r["best_bid"], r["best_ask"], r["last_trade"], r["tick_size"]) == (0.5, 0.52, 0.51, 0.01)
    assert list(r["bid_px"]) == [0.5, 0.49] + [0.0] * (MAX_LEVELS - 2)
    assert list(r["bid_sz"]) == [10.0, 20.0] + [0.0] * (MAX_LEVELS - 2)
    assert list(r["ask_px"]) == [0.52] + [0.0] * (MAX_LEVELS - 1)
    assert list(r["ask_sz"]) == [5.0] + [0.0] * (MAX_LEVELS - 1)


def test_record_empty_and_unknown_fields_are_nan():
    ob = _book([], [(0.6, 1.0)])
    rec = ob.record(0, 1, 2, 3, 4, None)
    assert rec[:8] == (3, 4, 0, 1, 2, 0, 0, 1)
    assert math.isnan(rec[8]) and rec[9] == 0.6 and math.isnan(rec[10]) and math.isnan(rec[11])
    arr = np.zeros(1, dtype=POLY_BOOK)
    arr[0] = rec
    assert math.isnan(arr[0]["best_bid"])


def test_record_of_the_burst_book_clamps_to_max_levels():
    msgs = burst()
    ob = seeded(msgs)[UP]
    rec = ob.record(0, 1, 2, msgs[0].timestamp_ms * 10**6, RECV, msgs[0].last_trade_price, n=99)
    assert rec[6:8] == (MAX_LEVELS, MAX_LEVELS)          # 24 bids, 22 asks in the snapshot
    assert rec[8:12] == (0.3, 0.397, 0.255, 0.001)
    assert rec[12][:3] == [0.3, 0.29, 0.253] and rec[14][:3] == [0.397, 0.398, 0.399]
    arr = np.zeros(1, dtype=POLY_BOOK)
    arr[0] = rec
    assert arr[0]["ask_px"][-1] == msgs[0].asks[MAX_LEVELS - 1][0]
