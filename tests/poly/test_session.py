"""The pure Polymarket session: several series on one connection (subscribe/unsubscribe over
rollovers), per-series records, market docs and rules, resolutions, new_market hints, and the
resync of a book that disagrees with the venue's best bid/ask (on the captured best_bid_ask)."""
from __future__ import annotations

import orjson
import pytest

from ipc import names
from ipc.schema import FLAG_SNAPSHOT, POLY_BOOK

from actors.venues.polymarket import clob, gamma, series as series_mod
from actors.venues.polymarket.session import (RESOLVED_KEEP, Session, gamma_winner,
                                              outcome_prices)
from tests.support.fixtures import POLYMARKET, need

NS = 1_000_000_000
MS = 1_000_000
FEE = gamma.FeeSchedule(0.07, 1.0, True, 0.0, "feeSchedule")
T0 = 1_787_414_400            # 2026-08-22 16:00Z: a multiple of every window length used here


def info(series: str, start: int, window_sec: int, asset: str = "btc", **kw) -> gamma.WindowInfo:
    slug = series_mod.slug(asset, series, start)
    d = dict(slug=slug, market_id=f"m{start}", condition_id=f"0x{series}{start}", question="",
             up_token=f"{series}-{start}-up", down_token=f"{series}-{start}-down",
             start_s=start, end_s=start + window_sec, fee=FEE, tick_size=0.01, min_size=5.0,
             resolution_source="https://data.chain.link/streams/btc-usd", twap_enabled=False,
             twap_lookback_sec=0, price_to_beat=None, final_price=None, active=True, closed=False,
             accepting_orders=True, neg_risk=False, series=series, asset=asset)
    d.update(kw)
    return gamma.WindowInfo(**d)


class Rec:
    def __init__(self):
        self.out: list[tuple[str, tuple, bool]] = []

    def __call__(self, stream, rec, observe_age):
        self.out.append((stream, rec, observe_age))

    def books(self, stream=None):
        return [dict(zip(POLY_BOOK.names, r)) for s, r, _ in self.out
                if s.startswith("book_") and (stream is None or s == stream)]


def session(secs=None, asset="btc"):
    rec = Rec()
    return Session(asset, secs or {"5m": 20, "15m": 30}, 10, 5.0, rec), rec


def resolve_wanted(ses: Session, now_s: float, **kw) -> None:
    for k, w in ses.missing(now_s):
        assert ses.add_window(info(k, w, ses.series[k].window_sec, ses.asset, **kw), int(now_s * NS)) == "new"


def book_frame(asset: str, bids, asks, ts_ms: int) -> bytes:
    lv = lambda xs: [{"price": str(p), "size": str(s)} for p, s in xs]
    return orjson.dumps({"event_type": "book", "asset_id": asset, "market": "0x", "bids": lv(bids),
                         "asks": lv(asks), "timestamp": str(ts_ms), "hash": "h"})


def test_wanted_windows_follow_each_series_grid():
    ses, _ = session({"5m": 20, "15m": 30, "4h": 14400})
    now = T0 + 25
    assert ses.wanted(now) == [("5m", T0 + 20), ("5m", T0 + 40), ("15m", T0), ("15m", T0 + 30),
                               ("4h", T0), ("4h", T0 + 14400)]
    # 4h on its own (ET) grid: 2026-08-22 16:00Z is 12PM EDT, a grid point
    assert series_mod.window_start("4h", now) == T0


def test_subscriptions_over_rollovers_are_exactly_the_wanted_assets():
    ses, _ = session()
    now = T0 + 1.0
    resolve_wanted(ses, now)
    new, gone = ses.subscriptions(True, now, int(now * NS))
    assert new == ["5m-%d-up" % T0, "5m-%d-down" % T0, "5m-%d-up" % (T0 + 20), "5m-%d-down" % (T0 + 20),
                   "15m-%d-up" % T0, "15m-%d-down" % T0, "15m-%d-up" % (T0 + 30), "15m-%d-down" % (T0 + 30)]
    assert gone == []
    subscribed = set(new)
    rolls = 0
    for step in range(1, 61):            # 60 s: 3 rollovers of 5m, 2 of 15m
        now = T0 + 1.0 + step
        rolls += len(ses.roll(now))
        resolve_wanted(ses, now)
        new, gone = ses.subscriptions(False, now, int(now * NS))
        want = set(ses.wanted_assets(now))
        assert not set(new) & subscribed and set(gone) <= subscribed
        dropped = subscribed - want
        subscribed = (subscribed | set(new)) - set(gone)
        assert subscribed == want == set(ses.subscribed), step
        assert set(gone) == dropped, "unsubscribe names exactly the dropped assets"
        # dropped assets are finished windows' (never a current or next one)
        for a in gone:
            start = int(a.split("-")[1])
            k = a.split("-")[0]
            assert start + ses.series[k].window_sec <= now
        assert len(want) == 8
    assert rolls == 2 + 3 + 2                # the first roll of each series, then the boundaries
    assert ses.c["rollovers"] == rolls
    # books of finished windows are gone, only current and next remain
    assert set(ses.books) == set(ses.wanted_assets(now))
    # what is remembered is bounded: rules of live and unresolved windows only
    assert len(ses.unresolved()) == 3 + 2
    assert set(ses.rules) == {i.condition_id for st in ses.series.values()
                              for i in (*st.windows.values(), *st.ended.values())}


def test_a_late_next_window_book_is_asked_again_a_late_current_one_restarts():
    ses, _ = session({"5m": 60, "15m": 120})     # no boundary during the waits
    now = T0 + 2.0
    resolve_wanted(ses, now)
    ses.roll(now)
    t0 = int(now * NS)
    new, _ = ses.subscriptions(True, now, t0)
    assert len(new) == 8
    # the current 5m window's UP book came, nothing else did
    ses.on_msgs(clob.parse_frame(book_frame(f"5m-{T0}-up", [(0.4, 10)], [(0.45, 5)], t0 // MS), t0), t0)
    t1 = t0 + 11 * NS                        # past SNAPSHOT_WAIT_SEC (10 s)
    cur, nxt = ses.split_late(t1)
    assert sorted(cur) == sorted([f"5m-{T0}-down", f"15m-{T0}-up", f"15m-{T0}-down"])
    assert sorted(nxt) == sorted([f"5m-{T0 + 60}-up", f"5m-{T0 + 60}-down", f"15m-{T0 + 120}-up",
                                  f"15m-{T0 + 120}-down"])
    ses.resubscribed(nxt, t1)                # asked again: due from t1, not late any more
    assert ses.c["resubscribes"] == 4
    assert sorted(ses.split_late(t1 + NS)[0]) == sorted(cur) and ses.split_late(t1 + NS)[1] == []
    # the next 5m UP book answers the second ask; the others stay silent: asked once, they are
    # now worth a new connection (asking forever would hide a dead subscription)
    t2 = t1 + 2 * NS
    ses.on_msgs(clob.parse_frame(book_frame(f"5m-{T0 + 60}-up", [(0.4, 10)], [(0.45, 5)], t2 // MS), t2), t2)
    restart, again = ses.split_late(t1 + 11 * NS)
    assert again == [] and sorted(restart) == sorted(cur + [f"5m-{T0 + 60}-down", f"15m-{T0 + 120}-up",
                                                          f"15m-{T0 + 120}-down"])
    # the new connection asks for everything afresh: a next window's late book is asked again first
    t3 = t1 + 12 * NS
    ses.disconnected(t3)
    ses.subscriptions(True, t3 / NS, t3)
    restart, again = ses.split_late(t3 + 11 * NS)
    assert sorted(restart) == sorted(cur + [f"5m-{T0}-up"])
    assert sorted(again) == sorted(nxt)


def test_a_fresh_connection_subscribes_everything_again():
    ses, _ = session()
    now = T0 + 3.0
    resolve_wanted(ses, now)
    first, _ = ses.subscriptions(True, now, int(now * NS))
    again, gone = ses.subscriptions(True, now + 1, int((now + 1) * NS))
    assert again == first and gone == []
    assert ses.subscriptions(False, now + 1, int((now + 1) * NS)) == ([], [])


def test_records_go_to_their_series_ring_and_only_for_current_windows():
    ses, rec = session()
    now = T0 + 2.0
    resolve_wanted(ses, now)
    assert ses.roll(now) == ["5m", "15m"]
    now_ns = int(now * NS)
    for k, start in (("5m", T0), ("15m", T0), ("5m", T0 + 20)):
        ses.on_msgs(clob.parse_frame(book_frame(f"{k}-{start}-up", [(0.4, 10)], [(0.45, 5)], now_ns // MS),
                                     now_ns), now_ns)
    streams = [s for s, _, _ in rec.out]
    assert streams == ["book_5m", "book_15m"]          # the next 5m window's book stays in memory
    b5, b15 = rec.books("book_5m")[0], rec.books("book_15m")[0]
    assert b5["window_start_ns"] == T0 * NS and b5["token"] == 0 and b5["flags"] & FLAG_SNAPSHOT
    assert (b5["best_bid"], b5["best_ask"], b5["n_bids"], b5["n_asks"]) == (0.4, 0.45, 1, 1)
    assert b15["window_start_ns"] == T0 * NS
    assert names.poly_book_ring("15m").stream == "book_15m"
    # the 5m boundary: the next window's warm book is written as a snapshot by write_current
    now = T0 + 20.5
    assert ses.roll(now) == ["5m"]
    ses.write_current("5m", int(now * NS))
    last = rec.books("book_5m")[-1]
    assert last["window_start_ns"] == (T0 + 20) * NS and last["flags"] & FLAG_SNAPSHOT
    # ... stamped with when the stream last spoke for it (18.5 s ago), not now: a warm book that
    # went quiet does not look fresh because it became current
    assert last["ts_recv_ns"] == now_ns and int(now * NS) - last["ts_recv_ns"] == 18_500_000_000


def test_market_doc_has_the_rule_and_the_venue_price_to_beat_only():
    ses, _ = session({"5m": 20, "1h": 60})
    now = T0 + 1.0
    resolve_wanted(ses, now)
    ses.roll(now)
    doc = ses.window_doc("5m")
    assert doc == {
        "series": "5m", "asset": "btc", "window_start_ns": T0 * NS, "window_end_ns": (T0 + 20) * NS,
        "start_s": T0, "end_s": T0 + 20, "active": True, "closed": False, "accepting_orders": True,
        "slug": f"btc-updown-5m-{T0}", "condition_id": f"0x5m{T0}", "up_token": f"5m-{T0}-up",
        "down_token": f"5m-{T0}-down", "fee_rate": 0.07, "fee_exponent": 1.0, "fee_taker_only": True,
        "tick_size": 0.01, "min_size": 5.0, "twap_enabled": False, "twap_lookback_sec": 0,
        "resolution_source": "https://data.chain.link/streams/btc-usd",
        "rule": {"source": "chainlink", "stream": "btc/usd", "method": "point", "twap_lookback_sec": 0,
                 "candle_tf": None, "assumed": False},
        "price_to_beat": None, "price_to_beat_source": None, "final_price": None, "resolution": None}
    # the hourly series, shortened to 60 s, settles on the Binance 1m candle
    h = info("1h", T0, 60, resolution_source="https://www.binance.com/en/trade/BTC_USDT")
    assert ses.add_window(h, int(now * NS)) == "updated"
    assert ses.window_doc("1h")["rule"] == {"source": "binance", "stream": "BTCUSDT", "method": "candle",
                                            "twap_lookback_sec": 0, "candle_tf": "1m", "assumed": False}
    assert ses.next_doc("1h")["slug"] == "bitcoin-up-or-down-august-22-2026-12pm-et"
    # Gamma publishes the price to beat: "venue", announced as an update of the current window
    ses.events.clear()
    assert ses.add_window(info("5m", T0, 20, price_to_beat=60123.5), int(now * NS)) == "updated"
    doc = ses.window_doc("5m")
    assert ses.events == [("updated", "5m", doc)]
    assert (doc["price_to_beat"], doc["price_to_beat_source"]) == (60123.5, "venue")


def test_a_rule_that_cannot_be_made_changes_nothing():
    """Gamma naming Binance for a window length with no kline interval (20 s): ValueError for the
    caller to report, and the session as it was (the known window keeps its rule and doc)."""
    ses, _ = session({"5m": 20})
    now = T0 + 1.0
    resolve_wanted(ses, now)
    ses.roll(now)
    before = ses.window_doc("5m")
    ses.events.clear()
    binance = "https://www.binance.com/en/trade/BTC_USDT"
    with pytest.raises(ValueError, match="a Binance-candle window of 20 s has no kline interval"):
        ses.add_window(info("5m", T0, 20, resolution_source=binance, price_to_beat=1.0), int(now * NS))
    assert ses.window_doc("5m") == before and ses.events == []
    assert ses.rules[f"0x5m{T0}"].source == "chainlink"
    with pytest.raises(ValueError):                               # a new window: not added at all
        ses.add_window(info("5m", T0 + 40, 20, resolution_source=binance), int(now * NS))
    assert T0 + 40 not in ses.series["5m"].windows and f"5m-{T0 + 40}-up" not in ses.books
    assert f"0x5m{T0 + 40}" not in ses.rules


def test_market_resolved_is_recorded_with_its_window():
    ses, _ = session({"5m": 20})
    now = T0 + 1.0
    resolve_wanted(ses, now)
    ses.roll(now)
    now = T0 + 21.0
    ses.roll(now)                                   # the first window ended: waiting for resolution
    assert [i.start_s for i in ses.unresolved()] == [T0]
    msg = {"event_type": "market_resolved", "id": "1", "market": f"0x5m{T0}",
           "assets_ids": [f"5m-{T0}-up", f"5m-{T0}-down"], "winning_asset_id": f"5m-{T0}-down",
           "winning_outcome": "Down", "timestamp": str((T0 + 22) * 1000)}
    ses.events.clear()
    ses.on_msgs(clob.parse_frame(orjson.dumps(msg), int((T0 + 22) * NS)), int((T0 + 22) * NS))
    res = ses.series["5m"].resolved[-1]
    assert ses.events == [("resolved", "5m", res)]
    assert res["slug"] == f"btc-updown-5m-{T0}"
    assert res["resolution"] == {"winner": "DOWN", "source": "market_resolved", "ts_ns": (T0 + 22) * NS}
    assert ses.unresolved() == [] and ses.c["resolved"] == 1
    # again, or another market's: nothing new
    ses.on_msgs(clob.parse_frame(orjson.dumps(msg), int((T0 + 23) * NS)), int((T0 + 23) * NS))
    ses.on_msgs(clob.parse_frame(orjson.dumps(dict(msg, market="0xother", assets_ids=[],
                                                   winning_asset_id="x")), 1), 1)
    assert ses.c["resolved"] == 1 and ses.c["resolved_other"] == 1 and len(ses.series["5m"].resolved) == 1
    # a late Gamma re-ask answering after market_resolved (open still, or closed): nothing, and the
    # window never waits in `ended` again
    ses.events.clear()
    for late in (info("5m", T0, 20), info("5m", T0, 20, closed=True, price_to_beat=1.0, final_price=2.0)):
        assert ses.add_window(late, int((T0 + 24) * NS), (1.0, 0.0)) is None
    assert ses.unresolved() == [] and ses.events == [] and ses.c["resolved"] == 1
    assert f"0x5m{T0}" not in ses.rules and ses.series["5m"].resolved[-1] == res


def test_two_resolutions_of_one_series_in_one_frame_carry_their_own_docs():
    ses, _ = session({"5m": 20})
    for now in (T0 + 1.0, T0 + 21.0, T0 + 41.0):     # two windows end, waiting for resolution
        resolve_wanted(ses, now)
        ses.roll(now)
    assert [i.start_s for i in ses.unresolved()] == [T0, T0 + 20]
    msgs = [{"event_type": "market_resolved", "id": str(n), "market": f"0x5m{start}",
             "assets_ids": [f"5m-{start}-up", f"5m-{start}-down"], "winning_asset_id": f"5m-{start}-{side}",
             "winning_outcome": side.capitalize(), "timestamp": str((T0 + 42) * 1000)}
            for n, (start, side) in enumerate(((T0, "down"), (T0 + 20, "up")))]
    ses.events.clear()
    ses.on_msgs(clob.parse_frame(orjson.dumps(msgs), (T0 + 42) * NS), (T0 + 42) * NS)
    assert [(what, k, d["start_s"], d["resolution"]["winner"]) for what, k, d in ses.events] == [
        ("resolved", "5m", T0, "DOWN"), ("resolved", "5m", T0 + 20, "UP")]
    assert [d for _, _, d in ses.events] == list(ses.series["5m"].resolved)


def test_gamma_resolves_an_ended_window_and_the_last_few_are_kept():
    ses, _ = session({"5m": 20})
    for n in range(RESOLVED_KEEP + 2):
        start = T0 + 20 * n
        now = start + 1.0
        resolve_wanted(ses, now)
        ses.roll(now)
        ses.roll(start + 21.0)
        closed = info("5m", start, 20, closed=True, price_to_beat=100.0, final_price=100.0)
        assert ses.add_window(closed, int((start + 25) * NS), (0.0, 1.0) if n % 2 else None) == "resolved"
        assert ses.add_window(closed, int((start + 26) * NS)) is None          # once
    kept = list(ses.series["5m"].resolved)
    assert len(kept) == RESOLVED_KEEP
    assert [d["start_s"] for d in kept] == [T0 + 20 * n for n in range(2, RESOLVED_KEEP + 2)]
    # outcomePrices decide when given (n odd: DOWN), else finalPrice >= priceToBeat: UP
    assert [d["resolution"]["winner"] for d in kept] == ["UP", "DOWN", "UP", "DOWN", "UP"][:RESOLVED_KEEP]
    assert {d["resolution"]["source"] for d in kept} == {"gamma"}
    assert gamma_winner(info("5m", T0, 20)) is None               # open: no resolution


def test_outcome_prices_pair_with_the_token_ids():
    w = info("5m", T0, 20, closed=True)
    m = {"slug": w.slug, "conditionId": w.condition_id}
    body = orjson.dumps([{**m, "clobTokenIds": orjson.dumps([w.up_token, w.down_token]).decode(),
                          "outcomePrices": '["0", "1"]'}])
    assert outcome_prices(body, w) == (0.0, 1.0)
    body = orjson.dumps([{**m, "clobTokenIds": [w.down_token, w.up_token], "outcomePrices": ["0", "1"]}])
    assert outcome_prices(body, w) == (1.0, 0.0)
    # the market is found by its condition id: another window sharing the slug (a sim's shortened
    # hourly windows) is not it
    other = {**m, "conditionId": "0xother", "clobTokenIds": [w.up_token, w.down_token], "outcomePrices": ["1", "0"]}
    assert outcome_prices(orjson.dumps([other, {**m, "clobTokenIds": [w.up_token, w.down_token],
                                                "outcomePrices": ["0", "1"]}]), w) == (0.0, 1.0)
    assert outcome_prices(orjson.dumps([other]), w) is None
    assert outcome_prices(b"[]", w) is None and outcome_prices(b"not json", w) is None


def test_new_market_of_a_wanted_window_asks_gamma_now():
    ses, _ = session({"5m": 20, "1h": 3600})
    now_ns = (T0 + 1) * NS
    nvda = need(POLYMARKET / "ws_new_market_2025.json").read_bytes()
    ses.on_msgs(clob.parse_frame(nvda, now_ns), now_ns)
    assert ses.c["new_markets_other"] == 1 and ses.hints == []
    ours = {"event_type": "new_market", "market": "0xabc", "slug": "bitcoin-up-or-down-august-22-12pm-et",
            "assets_ids": ["a", "b"], "outcomes": ["Up", "Down"], "timestamp": str(T0 * 1000)}
    ses.on_msgs(clob.parse_frame(orjson.dumps(ours), now_ns), now_ns)   # the hourly no-year form
    assert ses.c["new_markets"] == 1 and ses.hints == [("1h", T0)]


def _resync_session():
    """A session whose current UP book is the asset of the captured best_bid_ask."""
    frame = need(POLYMARKET / "ws_best_bid_ask_2026.json").read_bytes()
    bba = clob.parse_frame(frame, 0)[0]
    ts_ms = bba.timestamp_ms
    start = ts_ms // 1000 // 20 * 20
    ses, rec = session({"5m": 20})
    w = info("5m", start, 20, up_token=bba.asset_id, condition_id=bba.market)
    now_ns = ts_ms * MS + 5 * MS
    ses.add_window(w, now_ns)
    ses.add_window(info("5m", start + 20, 20), now_ns)
    ses.roll(now_ns / NS)
    return ses, rec, frame, bba, now_ns


def test_a_best_bid_ask_mismatch_resyncs_that_book_from_rest():
    ses, rec, frame, bba, now_ns = _resync_session()
    assert (bba.best_bid, bba.best_ask) == (0.585, 0.587)
    # our book says 0.58 / 0.59: the venue's 0.585 / 0.587 disagrees
    ses.on_msgs(clob.parse_frame(book_frame(bba.asset_id, [(0.58, 100)], [(0.59, 100)], bba.timestamp_ms - 50),
                                 now_ns), now_ns)
    assert ses.on_msgs(clob.parse_frame(frame, now_ns), now_ns) == "book_5m"
    assert ses.c["best_mismatch"] == 1 and ses.c["resync_requests"] == 1
    assert ses.resyncs_due(now_ns) == [bba.asset_id]
    assert ses.resyncs_due(now_ns) == []                           # taken
    # the REST answer, newer than the book's last event, replaces it
    rest = clob.parse_rest_book(orjson.dumps({
        "market": bba.market, "asset_id": bba.asset_id, "timestamp": str(bba.timestamp_ms + 10), "hash": "r",
        "bids": [{"price": "0.585", "size": "40"}, {"price": "0.58", "size": "100"}],
        "asks": [{"price": "0.587", "size": "12"}]}), now_ns)
    n = len(rec.out)
    assert ses.resync(bba.asset_id, rest, now_ns + 30 * MS)
    assert ses.c["resyncs"] == 1
    b = ses.books[bba.asset_id]
    assert b.book.levels("bid") == [(0.585, 40.0), (0.58, 100.0)] and b.book.levels("ask") == [(0.587, 12.0)]
    assert b.last_ws_ns == now_ns, "a REST correction does not make the stream fresh"
    assert len(rec.out) == n + 1
    stream, r, observe = rec.out[-1]
    r = dict(zip(POLY_BOOK.names, r))
    assert stream == "book_5m" and not observe and r["flags"] & FLAG_SNAPSHOT
    assert (r["best_bid"], r["best_ask"], r["ts_event_ns"]) == (0.585, 0.587, (bba.timestamp_ms + 10) * MS)
    assert r["ts_recv_ns"] == now_ns, "the record keeps the stream's receive time: its age goes on"
    # now the venue agrees: no mismatch
    ses.on_msgs(clob.parse_frame(frame, now_ns + 40 * MS), now_ns + 40 * MS)
    assert ses.c["best_mismatch"] == 1


def test_resyncs_are_rate_limited_per_asset_and_a_stale_snapshot_is_refused():
    ses, rec, frame, bba, now_ns = _resync_session()
    ses.on_msgs(clob.parse_frame(book_frame(bba.asset_id, [(0.58, 100)], [(0.59, 100)], bba.timestamp_ms),
                                 now_ns), now_ns)
    ses.on_msgs(clob.parse_frame(frame, now_ns), now_ns)
    assert ses.resyncs_due(now_ns) == [bba.asset_id]
    t = now_ns + 200 * MS
    ses.on_msgs(clob.parse_frame(frame, t), t)                      # still wrong, 0.2 s later
    assert ses.c["best_mismatch"] == 2
    assert ses.resyncs_due(t) == [] and ses.next_resync_ns() == now_ns + NS
    assert ses.resyncs_due(now_ns + NS) == [bba.asset_id]           # one second after the last
    old = clob.parse_rest_book(orjson.dumps({
        "market": bba.market, "asset_id": bba.asset_id, "timestamp": str(bba.timestamp_ms - 1000),
        "hash": "r", "bids": [], "asks": []}), now_ns)
    assert not ses.resync(bba.asset_id, old, now_ns + NS)
    assert ses.c["resync_stale"] == 1 and ses.c["resyncs"] == 0
    assert ses.books[bba.asset_id].book.levels("bid") == [(0.58, 100.0)]
    # a fresh WebSocket snapshot settles a pending resync
    ses.on_msgs(clob.parse_frame(frame, t), t)
    ses.on_msgs(clob.parse_frame(book_frame(bba.asset_id, [(0.585, 1)], [(0.587, 1)], bba.timestamp_ms + 5),
                                 t), t)
    assert ses.resync_pending == {}


def test_a_price_change_best_mismatch_also_resyncs():
    ses, _, _, bba, now_ns = _resync_session()
    ses.on_msgs(clob.parse_frame(book_frame(bba.asset_id, [(0.58, 100)], [(0.59, 100)], bba.timestamp_ms),
                                 now_ns), now_ns)
    pc = {"event_type": "price_change", "market": bba.market, "timestamp": str(bba.timestamp_ms + 1),
          "price_changes": [{"asset_id": bba.asset_id, "price": "0.57", "size": "5", "side": "BUY",
                             "hash": "x", "best_bid": "0.585", "best_ask": "0.59"}]}
    ses.on_msgs(clob.parse_frame(orjson.dumps(pc), now_ns), now_ns)
    assert ses.c["best_mismatch"] == 1 and ses.resyncs_due(now_ns) == [bba.asset_id]


def test_a_series_without_its_window_has_no_current_window():
    ses, _ = session({"5m": 20})
    ses.add_window(info("5m", T0, 20), (T0 + 1) * NS)     # Gamma never answers for the next one
    assert ses.roll(T0 + 1.0) == ["5m"] and ses.window_doc("5m")["start_s"] == T0
    assert ses.roll(T0 + 20.5) == ["5m"]
    assert ses.window_doc("5m") is None and ses.books == {}


@pytest.mark.parametrize("asset,slug", [("eth", f"eth-updown-5m-{T0}"), ("sol", f"sol-updown-5m-{T0}")])
def test_other_assets_name_their_own_slugs(asset, slug):
    ses, _ = session({"5m": 20}, asset=asset)
    assert list(ses.wanted_slugs(T0 + 1.0))[0] == slug
