"""feed_poly and feed_chainlink against the sim's Polymarket and RTDS: window rollover, books,
tick size changes, reconnects, staleness and the price to beat. Real processes and sockets."""
from __future__ import annotations

import time

import numpy as np
import pytest

from actors.sim.faults import inject, stats
from ipc.bus import Subscriber
from ipc.ring import RingReader
from ipc import names
from ipc.schema import CHAINLINK, FLAG_GAP, FLAG_SNAPSHOT, POLY_BOOK
from ipc.state import StateBlock
from tests.support.wait import wait_for
from tests.support.stack import Stack

WINDOW_SEC = 12


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = Stack(tmp_path_factory.mktemp("poly")).start(
        actors=("sim", "bus", "feed_poly", "feed_chainlink"), POLYMARKET_WINDOW="15m",
        POLYMARKET_WINDOW_SEC=str(WINDOW_SEC), POLYMARKET_STALE_THRESHOLD_SEC="2",
        POLYMARKET_RECONCILE_SEC="2")
    try:
        wait_for(lambda: st.state("polymarket") and st.state("polymarket").get("window"), 30,
                 "a current window\n" + st.logs())
        yield st
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()


def _state(self, name):
    return StateBlock("/dev/shm", self.env["SHM_PREFIX"], name).read()


Stack.state = _state


def fresh_window(st, need_sec: float) -> dict:
    """The current window once it has at least `need_sec` left (faults must not straddle a roll)."""
    def ok():
        d = st.state("polymarket")
        w = d and d["window"]
        if not w or not d["books"]["UP"].get("valid") or not d["books"]["DOWN"].get("valid"):
            return None
        left = w["window_end_ns"] / 1e9 - time.time()
        return w if left >= need_sec and w["window_start_ns"] / 1e9 <= time.time() else None
    return wait_for(ok, 2 * WINDOW_SEC + 5, f"a window with {need_sec} s left")


def book_reader(st):
    return RingReader("/dev/shm", names.POLY_BOOK_RING.name(st.env["SHM_PREFIX"], "BTCUSDT"), POLY_BOOK,
                      from_oldest=True)


def test_rollover_across_windows_without_gap_or_carry_over(stack):
    sub = Subscriber(stack.env["ZMQ_PUB_URL"], (names.POLY_TICK_PREFIX,))
    markets, books = [], []
    deadline = time.monotonic() + 4 * WINDOW_SEC + 10
    while len(markets) < 2:
        assert time.monotonic() < deadline, "fewer than two window changes seen\n" + stack.logs()
        ev = sub.recv(200)
        if ev is None:
            continue
        if ev.topic == names.POLY_MARKET_TOPIC:
            markets.append((time.time_ns(), ev.msg))
        elif ev.topic.startswith(names.POLY_BOOK_TOPIC_PREFIX) and markets:
            books.append((time.time_ns(), ev.topic, ev.msg))
    sub.close()
    (t1, m1), (t2, m2) = markets
    assert m2["window_start_ns"] - m1["window_start_ns"] == WINDOW_SEC * 1_000_000_000
    assert m1["slug"].startswith("btc-updown-15m-") and m2["slug"] == f"btc-updown-15m-{m2['window_start_ns'] // 10**9}"
    # after a window change, only that window's books, and both of them warm at once
    for t, topic, b in books:
        want = m1 if t < t2 else m2
        assert b["window_start_ns"] == want["window_start_ns"], "a book of another window"
    # the ring never goes back to an older window
    ws = book_reader(stack).read()["window_start_ns"]
    assert (np.diff(ws) >= 0).all()
    assert abs(t2 / 1e9 - m2["window_start_ns"] / 1e9) < 1.0, "switch not at the boundary"


def test_books_are_consistent_and_reconciled(stack):
    # (a book is briefly invalid after a rollover or a tick change: wait for both to be whole)
    doc = wait_for(lambda: (lambda d: d if d["counters"]["reconcile_checks"] >= 2
                            and d["books"]["UP"].get("valid") and d["books"]["DOWN"].get("valid")
                            and d["books"]["UP"].get("mid") is not None
                            and d["books"]["DOWN"].get("mid") is not None else None)(
        stack.state("polymarket")), 30, "two REST reconciliations and both books whole")
    up, down = doc["books"]["UP"], doc["books"]["DOWN"]
    assert up["valid"] and down["valid"]
    assert 0 < up["best_bid"] < up["best_ask"] < 1
    assert 0 < down["best_bid"] < down["best_ask"] < 1
    assert doc["counters"]["parse_errors"] == 0 and doc["counters"]["best_mismatch"] == 0


def test_tick_size_change_drops_the_book_until_a_snapshot(stack):
    up = fresh_window(stack, 8)["up_token"]
    doc = stack.state("polymarket")
    r = book_reader(stack)
    r.read()
    n0, rc0 = doc["counters"]["tick_size_changes"], doc["counters"]["reconnects"]
    inject(stack.poly_url, "tick_size", asset=up)
    wait_for(lambda: stack.state("polymarket")["counters"]["tick_size_changes"] > n0, 10, "the tick change")
    recs = []
    wait_for(lambda: recs.append(r.read()) or (lambda a: ((a["token"] == 0) & (a["flags"] & FLAG_SNAPSHOT > 0)
             & (np.arange(len(a)) > np.argmax((a["token"] == 0) & (a["flags"] & FLAG_GAP > 0)))).any()
             if len(a) else False)(np.concatenate(recs)), 20, "a gap record then a fresh UP snapshot")
    a = np.concatenate(recs)
    up_recs = a[a["token"] == 0]
    gap_i = np.flatnonzero(up_recs["flags"] & FLAG_GAP)[0]
    assert up_recs[gap_i]["n_bids"] == 0 and np.isnan(up_recs[gap_i]["best_bid"])
    # (the venue may send the change as a pair: several gap records, then the snapshot)
    after = up_recs[gap_i:][(up_recs[gap_i:]["flags"] & FLAG_GAP) == 0]
    assert after[0]["flags"] & FLAG_SNAPSHOT, "the first UP book after the change must be a fresh snapshot"
    assert stack.state("polymarket")["counters"]["reconnects"] == rc0, "a tick change must not reconnect"


def test_reconnect_resubscribes(stack):
    c0 = stack.state("polymarket")["counters"]
    inject(stack.poly_url, "drop")
    doc = wait_for(lambda: (lambda d: d if d["counters"]["reconnects"] > c0["reconnects"]
                            and d["books"]["UP"]["valid"] and d["books"]["DOWN"]["valid"] else None)(
        stack.state("polymarket")), 20, "reconnected with both books rebuilt")
    assert doc["counters"]["books"] > c0["books"]


def test_silent_book_turns_stale_and_back(stack):
    up = fresh_window(stack, 8)["up_token"]
    inject(stack.poly_url, "silent_book", asset=up, seconds=4)
    wait_for(lambda: stack.state("polymarket")["books"]["UP"]["stale"], 10, "UP stale")
    assert not stack.state("polymarket")["books"]["DOWN"]["stale"]
    wait_for(lambda: not stack.state("polymarket")["books"]["UP"]["stale"], 15, "UP fresh again")


def test_price_to_beat_is_the_chainlink_price_at_the_window_start(stack):
    def known():
        d = stack.state("polymarket")
        w = d and d["window"]
        return w if w and w["price_to_beat"] is not None else None
    w = wait_for(known, 2 * WINDOW_SEC + 5, "a price to beat")
    start_s = w["window_start_ns"] // 10**9
    cl = wait_for(lambda: (stack.state("chainlink") or {}).get("windows", {}).get(str(start_s)), 10,
                  "feed_chainlink's price at the window start")
    assert cl["exact"] and cl["obs_ns"] == w["window_start_ns"]
    assert w["price_to_beat"] == pytest.approx(cl["price"], abs=1e-6)
    sim = stats(stack.poly_url)
    print(sim.keys())
    ring = RingReader("/dev/shm", names.CHAINLINK_RING.name(stack.env["SHM_PREFIX"], "BTCUSDT"), CHAINLINK,
                      from_oldest=True).read()
    at = ring[ring["ts_event_ns"] == w["window_start_ns"]]
    assert len(at) == 1 and at["price"][0] == cl["price"]
