"""The sim's pure parts beyond the futures touch: spot market, depth ladder, klines, mark price,
liquidations, faults and the REST limiter, without sockets."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actors.sim.binance import depth_book as bk
from actors.sim.binance import kline_bars as kl
from actors.sim.binance import spot_market as sp
from actors.sim.binance.codec import FuturesCodec
from actors.sim.faults import CORRUPT, SEND, STALLED, Fault, FaultError, FaultState, corrupt, parse_fault
from actors.sim.binance.mark import Liquidations, MarkPrice, next_funding_ms
from actors.sim.market import FUTURES_BTCUSDT, SPOT_BTCUSDT, AggTrade, BookTicker, Market
from actors.sim.binance.rest_api import RestApi
from actors.venues.binance.parse import FrameError, parse_frame
from tests.support.fixtures import BINANCE, need

T0 = 1_780_000_000_000_000_000
S = 1_000_000_000
MS = 1_000_000


def _pair(seed=5, rate=200.0):
    fut = Market(seed=seed, trade_rate=rate, start_price=65_000.0, start_ns=T0)
    spot = sp.SpotMarket(fut, seed=seed + 100)
    return fut, spot


# --- spot market -----------------------------------------------------------------------------
def test_spot_market_is_deterministic_and_leaves_futures_unchanged():
    end = T0 + 20 * S

    def run(steps):
        fut, spot = _pair(rate=100.0)
        fe, se = [], []
        t = T0
        for dt in steps:
            t = min(end, t + dt)
            fe += fut.advance(t)
            se += spot.advance(t)       # either market's advance generates both
        fe += fut.advance(end)
        se += spot.advance(end)
        return fe, se
    a = run([10 * MS] * 2000)
    rng = np.random.default_rng(1)
    b = run([int(x) for x in rng.integers(1, 40 * MS, 1000)])
    c = run([])
    fut_alone = Market(seed=5, trade_rate=100.0, start_price=65_000.0, start_ns=T0).advance(end)
    assert len(a[1]) > 1000
    assert a == b == c
    assert a[0] == fut_alone                          # the follower draws nothing from futures


def test_spot_follows_futures_with_its_own_ids_sizes_and_rate():
    fut, spot = _pair(seed=8, rate=100.0)
    basis, fa, sa = [], [], []
    for i in range(1, 601):
        t = T0 + i * S // 10
        fa += [e for e in fut.advance(t) if type(e) is AggTrade]
        sa += [e for e in spot.advance(t) if type(e) is AggTrade]
        basis.append((fut.futures_mid() / (sum(spot.book()[::2]) / 2 / 1e8) - 1) * 1e4)
    assert max(abs(b) for b in basis) < 15 and -1 < np.median(basis) < 6
    assert 0.3 < len(sa) / len(fa) < 0.8
    a = [e.a for e in sa]
    assert a == list(range(a[0], a[0] + len(a))) and not {e.a for e in fa} & set(a)
    assert all(e.price % SPOT_BTCUSDT.tick_units == 0 and e.qty % SPOT_BTCUSDT.lot_units == 0
               for e in sa)
    assert np.median([e.qty / 1e8 for e in sa]) < np.median([e.qty / 1e3 for e in fa])


def test_spot_codec_matches_the_live_frames():
    codec = sp.SpotCodec(SPOT_BTCUSDT)
    ev = AggTrade(0, 1617566591315, 665076760, 5800103000000, 8620500, 745522877, 745522877,
                  1617566591314, True)
    live = need(BINANCE / "spot_aggTrade.json").read_text().strip()
    assert '{"stream":"btcusdt@aggTrade","data":' + codec.agg_trade(ev) + "}" == live
    bt = BookTicker(0, 499869768, 35210000, 67200000000, 35260000, 319900000000, 0, 0)
    assert codec.book_ticker(bt) == ('{"u":499869768,"s":"BTCUSDT","b":"0.35210000",'
                                     '"B":"672.00000000","a":"0.35260000","A":"3199.00000000"}')


@pytest.mark.parametrize("path,expect", [
    ("/ws", (False, [])), ("/ws/btcusdt@aggTrade", (False, ["btcusdt@aggTrade"])),
    ("/ws/btcusdt@aggTrade/btcusdt@bookTicker", (False, ["btcusdt@aggTrade", "btcusdt@bookTicker"])),
    ("/stream?streams=btcusdt@depth5@100ms/btcusdt@aggTrade",
     (True, ["btcusdt@depth5@100ms", "btcusdt@aggTrade"])),
    ("/stream", (True, [])), ("/market/stream", None), ("/", None), ("/x/ws", None),
])
def test_parse_spot_path(path, expect):
    assert sp.parse_spot_path(path) == expect


@pytest.mark.parametrize("name,ok", [
    ("btcusdt@aggTrade", True), ("btcusdt@bookTicker", True), ("btcusdt@depth5", True),
    ("btcusdt@depth20@100ms", True), ("btcusdt@depth@1000ms", True), ("btcusdt@kline_1s", True),
    ("btcusdt@kline_1h@+08:00", True), ("!ticker@arr", True),
    ("btcusdt@markPrice", False), ("btcusdt@forceOrder", False), ("btcusdt@depth5@250ms", False),
    ("BTCUSDT@aggTrade", False), ("btcusdt", False),
])
def test_spot_stream_names(name, ok):
    assert sp.spot_stream_valid(name) is ok


def test_spot_session_limit_is_five_per_second():
    s = sp.SpotSession(True, [])
    assert all(s.note_incoming(10.0 + i * 0.1) for i in range(5))
    assert not s.note_incoming(10.55)
    assert s.handle('{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"],"id":1}') == \
        '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":1}'
    assert s.handle('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":2}') == '{"result":null,"id":2}'
    assert s.delivers("btcusdt@trade")


# --- depth ladder ----------------------------------------------------------------------------
@pytest.mark.parametrize("inst,params,bid", [
    (FUTURES_BTCUSDT, bk.FUTURES_LADDER, 6_500_000),
    (SPOT_BTCUSDT, bk.SPOT_LADDER, 6_500_000_000_000),
])
def test_ladder_top_is_the_touch_and_levels_are_sane(inst, params, bid):
    lad = bk.DepthLadder(inst, 42, params)
    ask = bid + inst.tick_units
    u = 9_000_000_000_000
    bids, asks = lad.book(bid, 1234 * inst.lot_units, ask, 77 * inst.lot_units, 20, u)
    assert bids[0] == (bid, 1234 * inst.lot_units) and asks[0] == (ask, 77 * inst.lot_units)
    assert len(bids) == len(asks) == 20
    bp, ap = [p for p, _ in bids], [p for p, _ in asks]
    assert bp == sorted(bp, reverse=True) and len(set(bp)) == 20 and bp[0] < ap[0]
    assert ap == sorted(ap) and len(set(ap)) == 20
    assert all(p % inst.tick_units == 0 and q % inst.lot_units == 0 and q > 0
               for p, q in bids + asks)
    assert lad.book(bid, 1234 * inst.lot_units, ask, 77 * inst.lot_units, 20, u) == (bids, asks)
    later = lad.book(bid, 1234 * inst.lot_units, ask, 77 * inst.lot_units, 20, u + 50 * params.refresh_u)
    assert later != (bids, asks)                           # levels refresh as the book moves on
    deep, _ = lad.book(bid, 1, ask, 1, 1000, u)
    ticks = [(bid - p) // inst.tick_units for p, _ in deep]
    near = sum(1 for t in ticks if 0 < t <= 20) / 20
    far = sum(1 for t in ticks if ticks[-1] - 200 < t <= ticks[-1]) / 200
    assert near > 2 * far                                  # thinner far from the touch


def test_depth_frames_parse_and_keep_their_orders():
    inst = FUTURES_BTCUSDT
    lad = bk.DepthLadder(inst, 1, bk.FUTURES_LADDER)
    bids, asks = lad.book(6_500_000, 2500, 6_500_010, 1200, 5, 123)
    raw = bk.futures_partial_depth(inst, bids, asks, E=2, T=1, U=100, u=123, pu=99)
    d = json.loads(raw)
    assert list(d) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert d["b"][-1] == ["65000.00", "2.500"] and d["a"][0] == ["65000.10", "1.200"]
    rec = parse_frame('{"stream":"btcusdt@depth5@100ms","data":' + raw + "}", 7).recs[0]
    assert rec[3:6] == (123, 100, 99) and rec[8][0] == 65000.0 and rec[10][0] == 65000.1
    s = bk.spot_partial_depth(SPOT_BTCUSDT, [(6_500_000_000_000, 100_000)], [(6_500_001_000_000, 5)],
                              last_update_id=9)
    assert s == ('{"lastUpdateId":9,"bids":[["65000.00000000","0.00100000"]],'
                 '"asks":[["65000.01000000","0.00000005"]]}')
    r = bk.rest_depth(inst, bids, asks, last_update_id=123, E=5, T=4)
    assert list(json.loads(r)) == ["lastUpdateId", "E", "T", "bids", "asks"]
    assert json.loads(r)["bids"][0] == ["65000.00", "2.500"]


# --- klines ----------------------------------------------------------------------------------
START_MS = 1_780_000_030_000          # 30 s into a minute


@pytest.fixture(scope="module")
def hist():
    return kl.History.synthesize(FUTURES_BTCUSDT, seed=3, start_ms=START_MS, start_price=6_500_000,
                                 trade_rate=40.0, first_tid=7_000_000_000)


def test_history_is_deterministic_continuous_and_ends_at_the_start(hist):
    again = kl.History.synthesize(FUTURES_BTCUSDT, seed=3, start_ms=START_MS, start_price=6_500_000,
                                  trade_rate=40.0, first_tid=7_000_000_000)
    m, h = hist.m, hist.h
    for key in ("o", "h", "l", "c", "v", "n", "tid"):
        assert (m[key] == again.m[key]).all()
    assert m["c"][-1] == 6_500_000 and m["tid"][-1] + m["n"][-1] == 7_000_000_000
    assert (m["o"][1:] == m["c"][:-1]).all() and (h["o"][1:] == h["c"][:-1]).all()
    assert h["c"][-1] == m["o"][0]                          # the layers join
    assert (m["h"] >= np.maximum(m["o"], m["c"])).all() and (m["l"] <= np.minimum(m["o"], m["c"])).all()
    assert (m["o"] % 10 == 0).all()                          # on the 0.10 tick
    r = np.diff(np.log(m["c"].astype(float)))
    assert 3e-4 < r.std() < 2e-3                             # ~55 % a year, per minute
    btc_per_min = m["v"].mean() / 1000
    assert 50 < btc_per_min < 600                            # what 40 orders/s trade
    assert hist.m0 == START_MS // 60_000 * 60_000
    spot = kl.History.follow(hist, SPOT_BTCUSDT, seed=3, start_price=6_498_700_000_000,
                             basis_bps=2.0, first_tid=5_000_000_000, vol_ratio=0.1, fill_size=0.01)
    sm, sh = spot.m, spot.h
    assert sm["c"][-1] == 6_498_700_000_000 and (sm["o"][1:] == sm["c"][:-1]).all()
    assert (sh["o"][1:] == sh["c"][:-1]).all() and sh["c"][-1] == sm["o"][0]
    assert (sm["h"] >= np.maximum(sm["o"], sm["c"])).all() and (sm["o"] % 1_000_000 == 0).all()
    basis = hist.m["c"] * 1e6 / sm["c"] - 1
    assert np.abs(basis).max() < 3e-3 and 0 < np.median(basis) < 6e-4


def _trade(store, t_ms, px, qty, m=False, n=2):
    _trade.tid = getattr(_trade, "tid", 7_000_000_000)
    f = _trade.tid
    _trade.tid += n
    store.add(t_ms, px, qty, n, f, f + n - 1, m)


def test_kline_store_closes_bars_with_their_trades(hist):
    store = kl.KlineStore(hist, 6_500_000)
    m0 = hist.m0
    _trade(store, START_MS + 1, 6_500_100, 5)
    _trade(store, START_MS + 900, 6_499_000, 7, m=True)
    _trade(store, m0 + 59_999, 6_500_500, 3)
    store.roll(m0 + 59_999)
    assert store.closed == []
    store.roll(m0 + 60_000)
    closed = dict(store.closed)
    bar = closed["1m"]
    assert bar[:7] == [m0, 6_500_100, 6_500_500, 6_499_000, 6_500_500, 15, 6]
    assert bar[7] == 6_500_100 * 5 + 6_499_000 * 7 + 6_500_500 * 3        # exact quote units
    assert bar[8] == 8 and bar[9] == 6_500_100 * 5 + 6_500_500 * 3       # taker buys
    frame = json.loads(store.frame("1m", bar, m0 + 60_010, True))
    k = frame["k"]
    assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["n"], k["x"]) == \
        ("65001.00", "65005.00", "64990.00", "65005.00", "0.015", 6, True)
    assert k["q"] == "974.95000" and k["V"] == "0.008"
    assert parse_frame('{"stream":"btcusdt@kline_1m","data":' + store.frame("1m", bar, 1, True) + "}",
                       1).kind == "kline"
    # a quiet minute: an empty bar at the last close; the 5m interval goes on
    store.roll(m0 + 120_000)
    assert store.live[-1][5] == 0 and store.live[-1][1] == 6_500_500
    cur5 = store.current("5m")
    assert cur5[0] == m0 // 300_000 * 300_000
    assert cur5[5] >= 15                                     # history minutes + the live one


def test_kline_rows_aggregate_history_and_live(hist):
    store = kl.KlineStore(hist, 6_500_000)
    m0 = hist.m0
    _trade(store, START_MS + 5, 6_500_200, 4)
    now = START_MS + 10_000
    rows = store.rows("1m", None, None, 3, now)
    assert [r[0] for r in rows] == [m0 - 120_000, m0 - 60_000, m0]
    assert rows[-1][1] == 6_500_200 and rows[-2][4] == 6_500_000
    hours = store.rows("1h", None, None, 30, now)
    h = hours[-5]                                            # a complete hour, 1m layer
    mins = store.rows("1m", h[0], h[0] + 3_599_999, 60, now)
    assert len(mins) == 60
    assert h[1] == mins[0][1] and h[4] == mins[-1][4] and h[5] == sum(x[5] for x in mins)
    assert h[2] == max(x[2] for x in mins) and h[3] == min(x[3] for x in mins)
    old = store.rows("1d", None, hist.d0 - 1, 5, now)        # from the 1h layer
    assert [r[0] for r in old][-1] == hist.d0 - 86_400_000 and len(old) == 5
    assert store.rows("1m", None, hist.d0 - 1, 5, now) == []  # no 1m history that far back
    cur = store.rows("4h", None, None, 1, now)[0]
    assert cur[0] <= now < cur[0] + 4 * 3_600_000 and cur[4] == 6_500_200


# --- mark price and liquidations -------------------------------------------------------------
def test_next_funding_and_mark_frame():
    assert next_funding_ms(0) == 8 * 3_600_000
    assert next_funding_ms(8 * 3_600_000) == 16 * 3_600_000
    assert next_funding_ms(1_780_000_000_000) == 1_780_012_800_000
    mp = MarkPrice(1)
    for i in range(30):
        mp.step(1_780_000_000_000 + i * 1000, 65_000.0 + i, 64_987.0 + i)
    assert abs(mp.mark - 65_029) < 5 and abs(mp.funding - 0.0001) < 5e-5
    d = json.loads(mp.frame("BTCUSDT"))
    assert list(d) == ["e", "E", "s", "p", "ap", "P", "i", "r", "T"]
    rec = parse_frame('{"stream":"btcusdt@markPrice@1s","data":' + mp.frame("BTCUSDT") + "}", 1).recs[0]
    assert rec[3] == float(d["p"]) and rec[4] == float(d["i"]) and rec[6] == float(d["r"])


def test_liquidations_burst_after_sharp_moves_on_the_right_side():
    def run(path):
        liq = Liquidations(FUTURES_BTCUSDT, 7, base_rate=0.03)
        out = []
        for i, mid in enumerate(path):
            f = liq.step(1_780_000_000_000 + i * 1000, mid, int(mid * 100), int(mid * 100) + 10)
            if f:
                out.append(json.loads(f))
        return out
    calm = run([65_000.0] * 2000)
    crash = run([65_000.0 * math.exp(-0.002 * i) for i in range(300)])
    assert len(calm) < 150
    assert len(crash) > 100                                   # >1/3 of the seconds
    sells = sum(1 for d in crash if d["o"]["S"] == "SELL")
    assert sells > 0.75 * len(crash)                          # longs get liquidated
    o = crash[0]["o"]
    assert float(o["p"]) < float(o["ap"]) and o["q"] == o["z"] == o["l"]


# --- faults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("body,err", [
    (b"{", "not JSON"), (b"[]", "object"), (b'{"kind":"boom"}', "kind"),
    (b'{"kind":"stall"}', "seconds"), (b'{"kind":"stall","seconds":-1}', "seconds"),
    (b'{"kind":"malformed","count":1.5}', "count"), (b'{"kind":"gap","count":true}', "count"),
    (b'{"kind":"stall","seconds":1,"stream":""}', "stream"), (b'{"kind":"drop","x":1}', "unknown"),
])
def test_parse_fault_rejects_bad_bodies(body, err):
    with pytest.raises(FaultError, match=err):
        parse_fault(body)


def test_fault_state_counts_exactly():
    st = FaultState()
    assert not st.active and st.verdict("a", 0.0) == SEND
    st.apply(Fault("malformed", count=2, stream="a"), 0.0)
    st.apply(Fault("malformed", count=1), 0.0)
    assert [st.verdict("b", 0.0), st.verdict("a", 0.0), st.verdict("a", 0.0), st.verdict("a", 0.0),
            st.verdict("b", 0.0)] == [CORRUPT, CORRUPT, CORRUPT, SEND, SEND]
    assert not st.active
    st.apply(Fault("stall", seconds=1.0, stream="a"), 10.0)
    assert st.verdict("a", 10.5) == STALLED and st.verdict("b", 10.5) == SEND
    assert st.verdict("a", 11.01) == SEND
    st.apply(Fault("stall", seconds=5.0), 20.0)
    st.apply(Fault("rest418", count=1, retry_after=9), 20.0)
    st.apply(Fault("clear"), 20.0)
    assert st.verdict("a", 20.1) == SEND and st.rest_override() is None
    st.apply(Fault("rest429", count=2, retry_after=3), 0.0)
    assert [st.rest_override(), st.rest_override(), st.rest_override()] == [(429, 3), (429, 3), None]


def _payloads():
    fc = FuturesCodec(FUTURES_BTCUSDT)
    sc = sp.SpotCodec(SPOT_BTCUSDT)
    agg = AggTrade(0, 5, 1, 6_500_000, 12, 1, 2, 4, True)
    bt = BookTicker(0, 9, 6_500_000, 5, 6_500_010, 6, 3, 4)
    lad = bk.DepthLadder(FUTURES_BTCUSDT, 1, bk.FUTURES_LADDER)
    b, a = lad.book(6_500_000, 5, 6_500_010, 6, 5, 9)
    sb, sa = bk.DepthLadder(SPOT_BTCUSDT, 1, bk.SPOT_LADDER).book(6_500_000_000_000, 5000,
                                                                  6_500_001_000_000, 5000, 5, 9)
    mp = MarkPrice(1)
    mp.step(1000, 65_000.0, 64_990.0)
    liq = Liquidations(FUTURES_BTCUSDT, 1, base_rate=100.0)
    liq.step(1000, 65_000.0, 6_500_000, 6_500_010)
    force = liq.step(2000, 65_000.0, 6_500_000, 6_500_010)
    store = kl.KlineStore(kl.History.synthesize(FUTURES_BTCUSDT, seed=1, start_ms=START_MS,
                                                start_price=6_500_000, trade_rate=1.0, first_tid=10),
                          6_500_000)
    return [
        ("btcusdt@aggTrade", fc.agg_trade(agg)), ("btcusdt@bookTicker", fc.book_ticker(bt)),
        ("btcusdt@aggTrade", sc.agg_trade(agg)), ("btcusdt@bookTicker", sc.book_ticker(bt)),
        ("btcusdt@depth5@100ms", bk.futures_partial_depth(FUTURES_BTCUSDT, b, a, E=1, T=1, U=1, u=9,
                                                          pu=0)),
        ("btcusdt@depth5@100ms", bk.spot_partial_depth(SPOT_BTCUSDT, sb, sa, last_update_id=9)),
        ("btcusdt@markPrice@1s", mp.frame("BTCUSDT")), ("btcusdt@forceOrder", force),
        ("btcusdt@kline_1m", store.frame("1m", store.current("1m"), 1, False)),
    ]


@pytest.mark.parametrize("variant", range(4))
def test_every_corruption_fails_the_parser_raw_and_combined(variant):
    for stream, payload in _payloads():
        assert payload is not None
        parse_frame(payload, 1)                               # the real frame parses
        raw, comb = corrupt(variant, stream, payload)
        for frame in (raw, comb):
            with pytest.raises(FrameError):
                parse_frame(frame, 1)


# --- REST limiter ----------------------------------------------------------------------------
class _Prov:
    def klines(self, tf, start, end, limit, now_ms):
        return "[]"

    def depth(self, limit, now_ms):
        return '{"lastUpdateId":1,"bids":[],"asks":[]}'

    def premium_index(self, now_ms):
        return "{}"


def test_rest_weights_429_then_418_and_the_minute_window():
    api = RestApi("futures", "BTCUSDT", _Prov(), ban_sec=120)
    t = 1_780_000_000_000 // 60_000 * 60_000 + 10_000        # 10 s into a minute
    st, hdrs, _ = api.handle("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1500", "1.2.3.4", t)
    assert st == 200 and hdrs == [("X-MBX-USED-WEIGHT-1M", "10")]
    for limit, w in ((99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10)):
        ans = api.handle(f"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit={limit}", f"ip{limit}", t)
        assert ans[1] == [("X-MBX-USED-WEIGHT-1M", str(w))]
    assert api.handle("/fapi/v1/klines?symbol=BTCUSDT&interval=1m", "ipd", t)[1][0][1] == "5"
    n = 0
    while True:
        st, hdrs, body = api.handle("/fapi/v1/depth?symbol=BTCUSDT&limit=1000", "1.2.3.4", t + n)
        if st != 200:
            break
        n += 1
    assert n == (2400 - 10) // 20 and st == 429
    assert dict(hdrs)["Retry-After"] == "50" and json.loads(body)["code"] == -1003
    st, hdrs, body = api.handle("/fapi/v1/time", "1.2.3.4", t + 1000)
    assert st == 418 and dict(hdrs)["Retry-After"] == "120" and "banned until" in body
    st, hdrs, _ = api.handle("/fapi/v1/time", "1.2.3.4", t + 61_000)
    assert st == 418 and dict(hdrs)["Retry-After"] == "60"
    assert api.handle("/fapi/v1/time", "5.6.7.8", t + 1000)[0] == 200      # per IP
    assert api.handle("/fapi/v1/time", "1.2.3.4", t + 121_001)[0] == 200    # ban over
    assert api.handle("/fapi/v1/nothing", "1.2.3.4", t) is None
    spot = RestApi("spot", "BTCUSDT", _Prov())
    st, hdrs, _ = spot.handle("/api/v3/depth?symbol=BTCUSDT&limit=5000", "ip", t)
    assert st == 200 and hdrs == [("x-mbx-used-weight", "250"), ("x-mbx-used-weight-1m", "250")]
    st, hdrs, _ = spot.handle("/api/v3/klines?symbol=BTCUSDT&interval=1m", "ip", t + 60_000)
    assert dict(hdrs)["x-mbx-used-weight-1m"] == "2"                       # a new minute
