"""compute's edge engines on real rings and blocks (issue 14): one engine per followed series, books
only from each series' book ring (other windows ignored, gaps invalidating), every input's age
from its receive time and the vetoes it triggers, the decision's own-input quality, the price to
beat estimated by the market's rule and replaced by the venue's number, and the settlement of a
window once it has ended."""
from __future__ import annotations

import time

import numpy as np
import pytest

from actors.decide import settlement
from ipc import names
from ipc.schema import DTYPES, FLAG_GAP, KLINE, POLY_BOOK
from tests.support.compute_rig import CANDLE, MS, NS, TWAP, Rig, book_rec, market

PTB_VENUE = 65_432.1


@pytest.fixture
def rig(segs, tmp_path):
    r = Rig(segs.prefix.replace("tdctest-", "e"), tmp_path)
    yield r
    r.close()


def codes(doc, side="any"):
    return [v["code"] for v in doc["edge"]["vetoes"] if side == "any" or v["side"] == side]


def reason(doc, code):
    (r,) = [v["reason"] for v in doc["edge"]["vetoes"] if v["code"] == code]
    return r


def test_one_engine_per_series_each_on_its_topic(rig):
    rig.fresh(rig.now)
    block = rig.tick(rig.now)
    assert set(block) == {"ts_ns", "symbol", "disabled", "series"} and block["disabled"] is None
    assert list(block["series"]) == ["5m", "1h"]
    for series, doc in block["series"].items():
        assert doc["series"] == series and doc["symbol"] == "BTCUSDT"
        assert doc["window"] == f"btc-updown-{series}-{rig.start[series]}"
        assert doc["window_start_ns"] == rig.start[series] * NS
    assert [t for t, _ in rig.sent if t.startswith(names.EDGE_PREFIX)] == ["edge.BTCUSDT.5m", "edge.BTCUSDT.1h"]
    assert block["series"]["5m"]["rule"] == TWAP.doc() and block["series"]["1h"]["rule"] == CANDLE.doc()
    assert rig.c.blocks[names.EDGE_BLOCK].read()["series"]["5m"]["accumulate"]["window_start_ns"] == \
        rig.start["5m"] * NS


def test_books_come_from_the_ring_by_window_and_gaps_invalidate(rig):
    w5, other = rig.start["5m"] * NS, (rig.start["5m"] + 300) * NS
    t1 = rig.now - 300 * MS
    rig.books["5m"].append(book_rec(w5, 0, 1, t1, asks=((0.52, 400.0),)))
    rig.books["5m"].append(book_rec(w5, 1, 2, t1 + 50 * MS))
    # the next window's UP book, received later: never this window's
    rig.books["5m"].append(book_rec(other, 0, 9, t1 + 100 * MS, asks=((0.99, 1.0),)))
    # the 1h series' ring is its own
    rig.books["1h"].append(book_rec(rig.start["1h"] * NS, 0, 5, t1, asks=((0.33, 100.0),)))
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]
    up, down = d["5m"]["inputs"]["books"]["UP"], d["5m"]["inputs"]["books"]["DOWN"]
    assert up == {"age_ms": 300.0, "update_id": 1, "best_bid": 0.49, "best_ask": 0.52}
    assert down == {"age_ms": 250.0, "update_id": 2, "best_bid": 0.49, "best_ask": 0.51}
    assert d["5m"]["edge"]["sides"]["UP"]["best_ask"] == 0.52
    assert d["5m"]["edge"]["sides"]["UP"]["age_ms"] == 300.0
    assert d["1h"]["inputs"]["books"]["UP"]["update_id"] == 5
    assert d["1h"]["inputs"]["books"]["DOWN"]["update_id"] is None

    # a gap on UP: that book is unusable until its next record; DOWN is untouched
    gap = book_rec(w5, 0, 3, rig.now + 10 * MS, bids=(), asks=(), flags=FLAG_GAP)
    rig.books["5m"].append(gap)
    t2 = rig.now + 100 * MS
    rig.fresh(t2)
    d = rig.tick(t2)["series"]["5m"]
    assert d["inputs"]["books"]["UP"] == {"age_ms": None, "update_id": None, "best_bid": None,
                                          "best_ask": None,
                                          "reason": "invalid since a gap: waiting for its next update"}
    assert reason(d, "stale") == "invalid since a gap: waiting for its next update"
    assert d["inputs"]["books"]["DOWN"]["update_id"] == 2
    rig.books["5m"].append(book_rec(w5, 0, 4, t2 + 20 * MS))
    t3 = t2 + 100 * MS
    rig.fresh(t3)
    d = rig.tick(t3)["series"]["5m"]
    assert d["inputs"]["books"]["UP"]["update_id"] == 4 and d["inputs"]["books"]["UP"]["age_ms"] == 80.0

    # a gap naming no window (the feed's restart marker): every book of the ring
    g = np.zeros((), POLY_BOOK)
    g["flags"], g["ts_recv_ns"] = FLAG_GAP, t3 + 10 * MS
    rig.books["5m"].append(g)
    t4 = t3 + 100 * MS
    rig.fresh(t4)
    d = rig.tick(t4)["series"]["5m"]
    assert [d["inputs"]["books"][s]["update_id"] for s in ("UP", "DOWN")] == [None, None]
    assert codes(d, "UP") == codes(d, "DOWN") == ["stale", "no_asks", "no_bids"]


def test_a_book_older_than_the_threshold_is_vetoed_with_its_age(rig):
    w5 = rig.start["5m"] * NS
    rig.books["5m"].append(book_rec(w5, 0, 1, rig.now - 6_200 * MS))
    rig.books["5m"].append(book_rec(w5, 1, 2, rig.now - 100 * MS))
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]["5m"]
    assert d["inputs"]["books"]["UP"]["age_ms"] == 6200.0
    assert reason(d, "stale") == "book 6.200 s old > 5 s"
    assert codes(d, "DOWN") == []
    # the global quality names it; the decision's own quality does not take books (per side)
    q = rig.c._quality
    assert "poly.5m.UP: stale 6.2s" in q["reasons"] and "poly.1h.UP: no data" in q["reasons"]
    assert d["quality"] == {"mode": "OK", "reasons": []}


def test_binance_and_chainlink_ages_and_their_vetoes(rig):
    # the futures quote 1.5 s old (its trade fresh): the microprice is 1500 ms old
    rig.binance(rig.now, quote_recv_ns=rig.now - 1_500 * MS)
    rig.binance(rig.now, "spot")
    rig.obs(rig.now // NS - 8, 65_000.0, rig.now - 7_000 * MS)       # received 7 s ago
    d = rig.tick(rig.now)["series"]
    five, hour = d["5m"], d["1h"]
    assert five["inputs"]["binance"] == {"venue": "futures", "price": pytest.approx(65_000.0),
                                         "age_ms": 1500.0, "max_age_ms": 1000.0}
    assert reason(five, "binance_stale") == "binance microprice 1500 ms old > 1000 ms"
    assert reason(hour, "binance_stale") == "binance microprice 1500 ms old > 1000 ms"
    cl = five["inputs"]["chainlink"]
    assert cl == {"stream": "btc/usd", "price": 65_000.0, "obs_ns": (rig.now // NS - 8) * NS, "age_ms": 7000.0,
                  "obs_age_ms": 8000.0, "max_age_ms": 5000.0}
    # Chainlink only vetoes the window that settles on it
    assert reason(five, "chainlink_stale") == "chainlink 7.0 s old > 5 s"
    assert "chainlink_stale" not in codes(hour)
    assert five["quality"] == {"mode": "BAD", "reasons": ["chainlink: stale 7.0s"]}
    assert reason(five, "quality") == "quality BAD: chainlink: stale 7.0s"
    assert hour["quality"] == {"mode": "OK", "reasons": []} and "quality" not in codes(hour)
    # the 1h window's settlement source is the spot price (and its candles)
    assert hour["inputs"]["candle"]["venue"] == "spot" and hour["inputs"]["candle"]["age_ms"] == 0.0
    assert five["inputs"]["candle"] is None


def test_a_spot_problem_vetoes_only_the_window_settling_on_spot(rig):
    rig.binance(rig.now)
    rig.binance(rig.now - 6 * NS, "spot")                            # spot silent for 6 s
    rig.obs(rig.now // NS - 1, 65_000.0, rig.now - 200 * MS)
    d = rig.tick(rig.now)["series"]
    spot = ["spot.trade: stale 6.0s", "spot.quote: stale 6.0s"]
    assert rig.c._quality["mode"] == "DEGRADED" and rig.c._quality["reasons"][:2] == spot
    assert d["5m"]["quality"] == {"mode": "OK", "reasons": []} and "quality" not in codes(d["5m"])
    assert d["1h"]["quality"] == {"mode": "BAD", "reasons": spot}
    assert reason(d["1h"], "quality") == "quality BAD: " + "; ".join(spot)
    assert reason(d["1h"], "candle_stale") == "spot price 6000 ms old > 1000 ms"


def test_chainlink_silent_is_named(rig):
    rig.binance(rig.now)
    rig.binance(rig.now, "spot")
    d = rig.tick(rig.now)["series"]
    assert "chainlink: no data" in rig.c._quality["reasons"]
    assert d["5m"]["quality"] == {"mode": "BAD", "reasons": ["chainlink: no data"]}
    assert reason(d["5m"], "chainlink_missing") == "no chainlink value yet: the window settles on chainlink"
    assert d["1h"]["quality"]["mode"] == "OK" and "chainlink_missing" not in codes(d["1h"])


def test_an_input_never_seen_is_vetoed_by_name(rig):
    """No age to compare is no pass: each missing input of a decision has its own veto."""
    d = rig.tick(rig.now)["series"]
    assert [c for c in codes(d["5m"]) if c.endswith("_missing")] == ["binance_missing", "chainlink_missing"]
    assert [c for c in codes(d["1h"]) if c.endswith("_missing")] == ["binance_missing", "candle_missing"]
    assert reason(d["5m"], "binance_missing") == "no binance microprice: no quote from futures yet"
    assert reason(d["1h"], "candle_missing") == ("no spot price (no quote or trade yet): the window settles"
                                                 " on its candles")
    rig.fresh(rig.now + 100 * MS)
    d = rig.tick(rig.now + 100 * MS)["series"]
    assert not [c for x in d.values() for c in codes(x) if c.endswith("_missing")]


def test_a_lapped_reader_degrades_the_decision_for_the_gap_memory_only(rig):
    """A ring overrun is remembered like a gap: the decision is DEGRADED (vetoed) from the tick the
    reader's count grew, for 30 s, then OK again with the same (only growing) count."""
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]
    assert d["5m"]["quality"] == {"mode": "OK", "reasons": []}
    # 7 more trades than the futures trade ring holds (4096) arrive between two ticks: the flood
    # and fresh()'s own trade; the 7 oldest are lost
    t1 = rig.now + 100 * MS
    flood = [(t1 - 50 * MS, t1 - 40 * MS, 0, i, i, i, 65_000.0, 0.01, 1) for i in range(10_000, 10_000 + 4096 + 6)]
    rig.fut["trade"].append_many(np.array(flood, dtype=DTYPES["trade"]))
    rig.fresh(t1)
    d = rig.tick(t1)["series"]
    lapped = "futures.trade: overrun 0s ago (7 records lost in all)"
    assert rig.c.venues["futures"].trades_r.overrun == 7
    for x in ("5m", "1h"):
        assert d[x]["quality"] == {"mode": "DEGRADED", "reasons": [lapped]}
        assert reason(d[x], "quality") == f"quality DEGRADED: {lapped}"
    assert lapped in rig.c._quality["reasons"]
    t2 = t1 + 29 * NS
    rig.fresh(t2)
    d = rig.tick(t2)["series"]
    assert d["5m"]["quality"]["reasons"] == ["futures.trade: overrun 29s ago (7 records lost in all)"]
    t3 = t1 + 30 * NS
    rig.fresh(t3)
    d = rig.tick(t3)["series"]
    assert rig.c.venues["futures"].trades_r.overrun == 7
    assert d["5m"]["quality"] == d["1h"]["quality"] == {"mode": "OK", "reasons": []}
    assert "quality" not in codes(d["5m"]) and not [r for r in rig.c._quality["reasons"] if "overrun" in r]


def test_a_window_settling_on_a_stream_not_read_is_vetoed(rig):
    usdc = settlement.Rule("binance", "BTCUSDC", "candle", candle_tf="1h")
    rig.windows["1h"] = market("1h", rig.start["1h"], 3600, usdc)
    rig.write_poly()
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]
    assert d["1h"]["inputs"]["candle"]["stream"] == "BTCUSDT"
    assert reason(d["1h"], "settlement_source") == "settles on BTCUSDC candles; the collector reads BTCUSDT"
    assert "settlement_source" not in codes(d["5m"])


def test_price_to_beat_estimate_by_the_rule_then_the_venues_number(rig):
    s5 = rig.start["5m"]
    prices = {t: 65_000.0 + (t - s5) for t in range(s5 - 70, rig.now // NS)}
    for t, p in prices.items():
        rig.obs(t, p)
    # the 1h candle opening at its start (spot klines, 1 h interval), and a 1m one to ignore
    k = np.zeros((), KLINE)
    k["ts_recv_ns"], k["open_time_ns"], k["tf_sec"], k["open"], k["close"] = rig.now - NS, \
        rig.start["1h"] * NS, 3600, 64_900.5, 65_010.0
    rig.spot["kline"].append(k)
    k2 = k.copy()
    k2["tf_sec"], k2["open"] = 60, 1.0
    rig.spot["kline"].append(k2)
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]
    twap = sum(prices[t] for t in range(s5 - 59, s5 + 1)) / 60          # (start − 60 s, start]
    assert d["5m"]["price_to_beat"] == {"price": twap, "source": "estimate", "method": "twap", "status": "ok"}
    assert d["5m"]["fair"]["s0"] == twap
    assert d["1h"]["price_to_beat"] == {"price": 64_900.5, "source": "estimate", "method": "candle",
                                        "status": "ok"}
    assert d["1h"]["inputs"]["candle"]["kline"] == {"open_time_ns": rig.start["1h"] * NS, "tf_sec": 3600,
                                                     "open": 64_900.5, "close": 65_010.0, "closed": False,
                                                     "age_ms": 1000.0}
    # the venue publishes its number: it replaces the estimate at once
    rig.windows["5m"] = market("5m", s5, 300, TWAP, ptb=PTB_VENUE)
    rig.write_poly()
    d = rig.tick(rig.now + 100 * MS)["series"]
    assert d["5m"]["price_to_beat"] == {"price": PTB_VENUE, "source": "venue", "method": "twap", "status": "ok"}
    assert d["5m"]["fair"]["s0"] == PTB_VENUE
    assert d["1h"]["price_to_beat"]["source"] == "estimate"


def test_price_to_beat_pending_until_the_rule_can_tell(rig):
    rig.fresh(rig.now)
    d = rig.tick(rig.now)["series"]
    # Chainlink history does not reach back to the TWAP span; no 1h candle at all
    assert d["5m"]["price_to_beat"] == {"price": None, "source": None, "method": "twap",
                                        "status": "incomplete"}
    assert d["1h"]["price_to_beat"] == {"price": None, "source": None, "method": "candle", "status": "pending"}
    assert "no_fair" in codes(d["5m"]) and d["5m"]["fair"]["reason"] == "no price to beat"


def test_an_ended_window_reports_its_settlement(rig):
    s5 = rig.start["5m"]
    rig.windows["5m"] = market("5m", s5, 300, TWAP, ptb=65_000.0)
    rig.write_poly()
    rig.fresh(rig.now)
    assert rig.tick(rig.now)["series"]["5m"]["previous"] is None
    # the feed rolls over to the next window; Chainlink has not reached the old end yet
    old_end = s5 + 300
    rig.windows["5m"] = market("5m", old_end, 300, TWAP)
    rig.write_poly()
    for t in range(old_end - 70, old_end):
        rig.obs(t, 65_100.0 if t > old_end - 60 else 1.0)
    later = old_end * NS + 500 * MS
    rig.binance(later)
    rig.binance(later, "spot")
    d = rig.tick(later)["series"]["5m"]
    assert d["window"] == f"btc-updown-5m-{old_end}"
    prev = d["previous"]
    assert prev["window"] == f"btc-updown-5m-{s5}" and prev["window_end_ns"] == old_end * NS
    assert prev["rule"] == TWAP.doc() and prev["price_to_beat"]["price"] == 65_000.0
    assert prev["settlement"] == {"price": None, "status": "pending", "winner": None}
    # the observation of the end second arrives: the mean over (end − 60 s, end]
    rig.obs(old_end, 65_100.0)
    d = rig.tick(later + 600 * MS)["series"]["5m"]
    assert d["previous"]["settlement"] == {"price": 65_100.0, "status": "ok", "winner": "UP"}
    # the venue's resolution, once feed_poly has it, is shown beside ours
    res = {**market("5m", s5, 300, TWAP, ptb=65_000.0), "resolution": {"winner": "UP", "source": "gamma",
                                                                         "ts_ns": later}}
    rig.write_poly(resolved=[res])
    d = rig.tick(later + 700 * MS)["series"]["5m"]
    assert d["previous"]["resolution"] == {"winner": "UP", "source": "gamma", "ts_ns": later}


def kline(open_s: int, tf_sec: int, close: float, recv_ns: int, closed: bool = True):
    k = np.zeros((), KLINE)
    k["ts_recv_ns"], k["ts_event_ns"], k["open_time_ns"], k["tf_sec"] = recv_ns, recv_ns, open_s * NS, tf_sec
    k["close_time_ns"] = (open_s + tf_sec) * NS - 1
    k["open"], k["close"], k["closed"] = close - 1.0, close, closed
    return k


def test_a_candle_a_window_needs_survives_a_flood_of_newer_ones(segs, tmp_path):
    """A (re)started compute reads the kline ring from its oldest record: the ET-noon 1m candle a
    daily window's price to beat is the close of stays, however many newer candles follow it; the
    rest of each interval is a bounded tail."""
    from actors.decide.engine import CANDLE_TAIL
    r = Rig(segs.prefix.replace("tdctest-", "d"), tmp_path, series=("1d",))
    try:
        start = r.start["1d"]
        r.spot["kline"].append(kline(start, 60, 64_321.5, (start + 61) * NS))
        # every later minute up to now, and a few 1h candles
        for m in range(1, 20 * 60):
            r.spot["kline"].append(kline(start + 60 * m, 60, 65_000.0 + m, (start + 60 * m + 61) * NS))
        for h in range(1, 20):
            r.spot["kline"].append(kline(start + 3600 * h, 3600, 65_000.0, (start + 3600 * h + 1) * NS))
        r.fresh(r.now)
        d = r.tick(r.now)["series"]["1d"]
        assert d["price_to_beat"] == {"price": 64_321.5, "source": "estimate", "method": "candle_close",
                                      "status": "ok"}
        sh = r.c.shared
        assert (60, start * NS) in sh.candles
        assert len(sh.candle_list(60)) == CANDLE_TAIL + 1 and len(sh.candle_list(3600)) == 19
        assert sh.latest_candle(60)[0].open_time_ns == (start + 60 * (20 * 60 - 1)) * NS
        assert r.c.engines["1d"].candles_needed() == {(60, start * NS), (60, (start + 86400) * NS)}
        # more candles later: still kept, the tail still bounded
        for m in range(20 * 60, 20 * 60 + 100):
            r.spot["kline"].append(kline(start + 60 * m, 60, 65_000.0, (start + 60 * m + 61) * NS))
        r.tick(r.now + 100 * MS)
        assert (60, start * NS) in sh.candles and len(sh.candle_list(60)) == CANDLE_TAIL + 1
    finally:
        r.close()


def test_report_carries_each_series_counters(rig):
    rig.fresh(rig.now)
    rig.tick(rig.now)
    rep = rig.c.report()
    assert rep["series"] == {series: eng.counters() for series, eng in rig.c.engines.items()}
    assert rep["series"]["5m"] == {"slices": 0, "decision_log_lines": 1, "decision_log_errors": 0,
                                   "book_records": 0, "book_gaps": 0, "bad_window_docs": 0}


def test_each_series_logs_its_decisions_to_its_own_file(rig, tmp_path):
    rig.fresh(rig.now)
    rig.tick(rig.now)
    files = sorted(p.name for p in (tmp_path / "decisions").glob("decisions-*.jsonl"))
    day = time.strftime("%Y-%m-%d", time.gmtime(rig.now // NS))
    assert files == [f"decisions-btc-1h-{day}.jsonl", f"decisions-btc-5m-{day}.jsonl"]


def test_the_edge_documents_match_the_schema_built_from_their_types(rig):
    import jsonschema_rs
    from actors.obs.openapi import build_openapi
    w5 = rig.start["5m"] * NS
    rig.books["5m"].append(book_rec(w5, 0, 1, rig.now - 100 * MS))
    rig.fresh(rig.now)
    block = rig.tick(rig.now)
    comps = build_openapi(1024)["components"]
    one = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/Edge", "components": comps})
    for doc in block["series"].values():
        assert not [e.message for e in one.iter_errors(doc)]
    whole = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/EdgeBlock", "components": comps})
    assert not [e.message for e in whole.iter_errors(block)]


def test_polymarket_off_no_engine_and_the_block_says_why(segs, tmp_path):
    r = Rig(segs.prefix.replace("tdctest-", "o"), tmp_path, polymarket_enabled=False)
    try:
        r.fresh(r.now)
        block = r.tick(r.now)
        assert block == {"ts_ns": r.now, "symbol": "BTCUSDT", "disabled": "POLYMARKET_ENABLED=false",
                         "series": {}}
        assert r.c.engines == {}
        assert not [t for t, _ in r.sent if t.startswith(names.EDGE_PREFIX)]
        feats = r.c.blocks[names.FEATURES_BLOCK].read()
        assert feats["venues"]["futures"]["last_price"] == 65_000.0
        assert not [x for x in r.c._quality["reasons"] if x.startswith(("chainlink", "poly"))]
    finally:
        r.close()


def test_compute_writes_the_history_rings_from_the_docs_it_published(segs, tmp_path):
    """Issue 17: every tick's edge and features documents are offered to the samplers; the rings
    hold exactly the sampled ticks, each record's values those of the document published then.
    (Its own Rig: σ after two 1 s returns, so that the fair value, and a BUY_UP, come within seconds.)"""
    rig = Rig(segs.prefix.replace("tdctest-", "h"), tmp_path, vol_warmup_samples=2)
    try:
        _history_rings(rig)
    finally:
        rig.close()


def _history_rings(rig):
    from actors.decide.history import window_record
    from ipc.ring import RingReader
    from ipc.schema import MARKET_SAMPLE, WINDOW_SAMPLE
    s5 = rig.start["5m"]
    rig.windows["5m"] = market("5m", s5, 300, TWAP, ptb=64_000.0)   # far below: fair UP ~1, BUY_UP
    rig.write_poly()
    # a whole multiple of every bucket (150 ms, 1800 ms, 1 s): the sampled ticks are known
    base = (rig.now // (9 * NS) + 1) * 9 * NS
    for k in range(-50, 0):          # 5 s of moving Binance prices: a σ, and Chainlink pairs with it
        t = base + k * 100 * MS
        px = 65_000.0 + 5.0 * (k % 3)
        rig.binance(t, px=px)
        rig.binance(t, "spot", px=px)
        rig.obs(t // NS - 1, 65_000.0, t - 200 * MS)
        rig.tick(t)
    w5 = s5 * NS
    rig.books["5m"].append(book_rec(w5, 0, 1, base - 50 * MS))
    rig.books["5m"].append(book_rec(w5, 1, 2, base - 50 * MS))
    edges, feats = {"5m": [], "1h": []}, []
    for k in range(11):                        # base + 0, 100, ... 1000 ms
        t = base + k * 100 * MS
        rig.fresh(t)
        rig.tick(t)
        for topic, doc in rig.sent:
            if topic.startswith(names.EDGE_PREFIX):
                edges[doc["series"]].append(doc)
            elif topic == names.features_topic("BTCUSDT"):
                feats.append(doc)
    d5 = edges["5m"]
    # the first tick takes a slice (the cooldown holds the others): decision BUY_UP throughout
    assert [d["accumulate"]["action"] for d in d5] == ["SLICE"] + ["HOLD"] * 10
    assert {d["edge"]["decision"] for d in d5} == {"BUY_UP"}
    assert len({tuple(v["code"] for v in d["edge"]["vetoes"]) for d in d5}) == 1
    s, pre = rig.s, rig.s.ipc.shm_prefix

    def read(ring, dt):
        recs = RingReader(s.ipc.shm_dir, ring.name(pre, "BTCUSDT"), dt, from_oldest=True).read()
        return recs[recs["ts_recv_ns"] >= base]

    got = read(names.window_history_ring("5m"), WINDOW_SAMPLE)
    # 5m: one sample per 150 ms bucket (300 s / 2000), and at once on the SLICE -> HOLD change
    # (tick 100: bucket 0 again); the buckets' first ticks are 0, 200, 300, 500, 600, 800, 900
    want = [d5[k] for k in (0, 1, 2, 3, 5, 6, 8, 9)]
    # byte for byte (NaN, a missing value, included)
    assert got.tobytes() == np.array([window_record(d) for d in want], WINDOW_SAMPLE).tobytes()
    first = got[0]
    assert (first["action"], first["slice_side"], first["slice_usd"], first["acc_usd"], first["slices"]) == \
        (1, 1, 20.0, 20.0, 1)
    assert (first["up_bid"], first["up_ask"], first["binance"], first["chainlink"], first["price_to_beat"]) == \
        (0.49, 0.51, 65_000.0, 65_000.0, 64_000.0)
    assert first["edge_up"] == d5[0]["edge"]["sides"]["UP"]["edge"] > 0.25
    assert first["roc_up"] == d5[0]["edge"]["sides"]["UP"]["return_on_cost"]
    assert first["fair_up"] == d5[0]["fair"]["fast"] and first["buffer"] == 0.0025
    assert first["window_start_ns"] == w5 and first["window_end_ns"] == w5 + 300 * NS
    assert got["action"].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    # 1h (1800 ms buckets): the first tick, then nothing changed
    assert read(names.window_history_ring("1h"), WINDOW_SAMPLE).tobytes() == \
        np.array([window_record(edges["1h"][0])], WINDOW_SAMPLE).tobytes()
    market_recs = read(names.MARKET_HISTORY_RING, MARKET_SAMPLE)
    assert market_recs["ts_recv_ns"].tolist() == [base, base + NS]          # 1 s buckets
    for rec, f in zip(market_recs, (feats[0], feats[10])):
        fut, spot = f["venues"]["futures"], f["venues"]["spot"]
        assert (rec["futures"], rec["spot"], rec["futures_mid"], rec["spot_mid"]) == \
            (fut["last_price"], spot["last_price"], fut["book"]["mid"], spot["book"]["mid"]) == \
            (65_000.0, 65_000.0, 65_000.0, 65_000.0)
        assert (rec["cvd_futures"], rec["cvd_spot"], rec["basis_bps"]) == \
            (fut["cvd"]["cvd"], spot["cvd"]["cvd"], f["basis"]["basis_bps"])
        assert np.isnan(rec["mark"]) and f["basis"]["mark"] is None
        assert rec["quality"] == ["OK", "DEGRADED", "BAD"].index(f["quality"]["mode"])
