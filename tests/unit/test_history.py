"""The dashboard's history (issue 17): the pure samplers and records of actors/decide/history.py on
real compute documents, and the REST endpoints of actors/web/history.py over real rings."""
from __future__ import annotations

import copy
import re
import uuid
from pathlib import Path

import jsonschema_rs
import numpy as np
import pytest
from falcon import testing

from actors.api import ShmView, create_app
from actors.decide import history as h
from actors.obs.openapi import build_openapi
from config.settings import load_settings
from ipc import clock, names
from ipc.schema import MARKET_SAMPLE, WINDOW_SAMPLE
from ipc.state import StateBlock
from tests.support.api import edge_doc, market_doc
from tests.support.compute_rig import MS, NS, TWAP, Rig, book_rec, market
from tests.support.history import write_history

ROOT = Path(__file__).resolve().parents[2]


def rec_of(t: tuple, dtype=WINDOW_SAMPLE) -> np.void:
    return np.array([t], dtype)[0]


# --- the code tables ----------------------------------------------------------------------------

def test_every_veto_code_of_the_edge_is_in_the_table():
    src = (ROOT / "actors" / "decide" / "edge.py").read_text()
    codes = set(re.findall(r'_veto\("(\w+)"', src))
    assert len(codes) == 24
    assert codes == set(h.VETO_CODES) - {"other"} and h.VETO_CODES[-1] == "other"
    assert len(h.VETO_CODES) <= 32


def test_veto_masks_round_trip_and_unknown_codes_are_other():
    assert h.veto_mask(["no_window"]) == 1 and h.veto_mask([]) == 0
    m = h.veto_mask(["spread", "no_fair", "spread", "brand_new"])
    assert h.veto_codes(m) == ["no_fair", "spread", "other"]
    assert h.code_name(h.DECISIONS, 2) == "BUY_DOWN" and h.code_name(h.DECISIONS, -1) is None


# --- records of real documents ------------------------------------------------------------------

@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """compute's documents of two ticks: a window without books (vetoed) and the first tick with
    books (BUY_UP, a SLICE), and that tick's features document."""
    rig = Rig("hu" + uuid.uuid4().hex[:8], tmp_path_factory.mktemp("hist"), vol_warmup_samples=2)
    try:
        s5 = rig.start["5m"]
        rig.windows["5m"] = market("5m", s5, 300, TWAP, ptb=64_000.0)
        rig.write_poly()
        base = (rig.now // NS + 1) * NS
        for k in range(-50, 0):
            t = base + k * 100 * MS
            px = 65_000.0 + 5.0 * (k % 3)
            rig.binance(t, px=px)
            rig.binance(t, "spot", px=px)
            rig.obs(t // NS - 1, 65_000.0, t - 200 * MS)
            vetoed = rig.tick(t)["series"]["5m"]
        rig.books["5m"].append(book_rec(s5 * NS, 0, 1, base - 50 * MS))
        rig.books["5m"].append(book_rec(s5 * NS, 1, 2, base - 50 * MS, bids=((0.50, 500.0),),
                                        asks=((0.52, 500.0),)))
        rig.fresh(base)
        sliced = rig.tick(base)["series"]["5m"]
        feats = [d for t, d in rig.sent if t == names.features_topic("BTCUSDT")][0]
        return {"vetoed": vetoed, "slice": sliced, "features": feats, "base": base, "start": s5 * NS}
    finally:
        rig.close()


def test_the_settlement_column_follows_the_windows_rule(docs):
    """A candle-settled window (1h, 1d) settles on the Binance candle: `settlement` is its price,
    `chainlink` stays Chainlink's."""
    d = copy.deepcopy(docs["slice"])
    d["rule"] = {"source": "binance", "stream": "BTCUSDT", "method": "candle", "candle_tf": "1h"}
    d["inputs"]["candle"] = {"venue": "spot", "stream": "BTCUSDT", "price": 65_123.5}
    r = rec_of(h.window_record(d))
    assert (r["chainlink"], r["settlement"]) == (65_000.0, 65_123.5)
    d["inputs"]["candle"] = None                      # no candle price yet: NaN (null in the API)
    assert np.isnan(rec_of(h.window_record(d))["settlement"])


def test_a_window_record_holds_the_edge_documents_values(docs):
    d = docs["slice"]
    assert (d["edge"]["decision"], d["accumulate"]["action"]) == ("BUY_UP", "SLICE")
    r = rec_of(h.window_record(d))
    up, down = d["edge"]["sides"]["UP"], d["edge"]["sides"]["DOWN"]
    assert (r["ts_event_ns"], r["ts_recv_ns"], r["flags"]) == (docs["base"], docs["base"], 0)
    assert (r["window_start_ns"], r["window_end_ns"]) == (docs["start"], docs["start"] + 300 * NS)
    assert (r["binance"], r["chainlink"], r["settlement"], r["price_to_beat"]) == (65_000.0, 65_000.0, 65_000.0, 64_000.0)
    assert (r["up_bid"], r["up_ask"], r["down_bid"], r["down_ask"]) == (0.49, 0.51, 0.50, 0.52)
    assert r["fair_up"] == d["fair"]["fast"] == 1.0
    # fair − (ask + 0.07·ask·(1 − ask)), as the edge computed it
    assert (r["edge_up"], r["edge_down"]) == (up["edge"], down["edge"])
    assert round(r["edge_up"], 6) == 0.472507 and round(r["edge_down"], 6) == -0.537472
    assert (r["roc_up"], r["roc_down"]) == (up["return_on_cost"], down["return_on_cost"])
    assert r["buffer"] == 0.0025 and r["time_left_s"] == d["edge"]["time_left_s"] == \
        (docs["start"] + 300 * NS - docs["base"]) / 1e9 == 199.0
    assert (r["decision"], r["action"], r["slice_side"], r["slice_usd"], r["acc_usd"], r["slices"]) == \
        (1, 1, 1, 20.0, 20.0, 1)
    assert (r["veto_mask"], r["quality"]) == (0, 0)


def test_a_vetoed_window_record_keeps_its_codes_and_nan_for_the_unknown(docs):
    d = docs["vetoed"]
    r = rec_of(h.window_record(d))
    codes = [v["code"] for v in d["edge"]["vetoes"]]
    assert set(codes) == {"stale", "no_asks", "no_bids"}
    assert h.veto_codes(int(r["veto_mask"])) == ["stale", "no_asks", "no_bids"]
    assert np.isnan([r["up_bid"], r["up_ask"], r["edge_up"], r["roc_down"]]).all()
    assert (r["decision"], r["action"], r["slice_side"], r["slice_usd"], r["acc_usd"]) == (0, 0, 0, 0.0, 0.0)
    # no window: 0 for its times, -1 for an unknown count, NaN for the unknown sums; any new code is "other"
    d = copy.deepcopy(d)
    d.update(window=None, window_start_ns=None, window_end_ns=None, accumulate={"action": "HOLD", "reason": "no_window"})
    d["edge"]["vetoes"] = [{"code": "no_window", "side": None, "reason": ""}, {"code": "new", "side": None, "reason": ""}]
    r = rec_of(h.window_record(d))
    assert (r["window_start_ns"], r["window_end_ns"], r["slices"]) == (0, 0, -1) and np.isnan(r["acc_usd"])
    assert h.veto_codes(int(r["veto_mask"])) == ["no_window", "stale", "no_asks", "no_bids", "other"]


def test_a_market_record_holds_the_features_documents_values(docs):
    f = docs["features"]
    r = rec_of(h.market_record(f), MARKET_SAMPLE)
    fut, spot = f["venues"]["futures"], f["venues"]["spot"]
    assert r["ts_recv_ns"] == docs["base"]
    assert (r["futures"], r["spot"], r["futures_mid"], r["spot_mid"]) == (65_000.0,) * 4
    assert (r["cvd_futures"], r["cvd_spot"]) == (fut["cvd"]["cvd"], spot["cvd"]["cvd"])
    assert r["basis_bps"] == f["basis"]["basis_bps"] == 0.0
    assert np.isnan(r["mark"]) and f["basis"]["mark"] is None
    assert (r["liq_long_usd"], r["liq_short_usd"]) == (0.0, 0.0)
    assert h.QUALITY_MODES[r["quality"]] == f["quality"]["mode"]
    # the legs are roles given as data: swapped, the perpetual's fields hold the other venue's
    f2 = copy.deepcopy(f)
    f2["venues"]["spot"]["last_price"] = 1.0
    r = rec_of(h.market_record(f2, (names.SPOT, names.FUTURES)), MARKET_SAMPLE)
    assert (r["futures"], r["spot"]) == (1.0, 65_000.0)


# --- the sampling rule ---------------------------------------------------------------------------

def test_the_sampling_period_follows_the_window_length_and_the_tick():
    assert [h.window_period_ms(sec, tick) for sec, tick in
            ((300, 100), (900, 100), (3600, 100), (86400, 100), (300, 500), (60, 100))] == \
        [150, 450, 1800, 43200, 500, 100]


def test_a_series_is_sampled_per_bucket_and_at_every_change_and_slice(docs):
    t0 = (docs["base"] // (3 * NS)) * 3 * NS          # a whole number of 150 ms buckets
    base = docs["vetoed"]

    def doc(ms, decision="NONE", action="HOLD", vetoes=(), window=0):
        d = copy.deepcopy(base)
        d["ts_ns"] = t0 + ms * MS
        d["window_start_ns"] += window
        d["edge"]["decision"] = decision
        d["edge"]["vetoes"] = [{"code": c, "side": "UP", "reason": ""} for c in vetoes]
        d["edge"]["sides"]["UP"]["vetoes"] = d["edge"]["sides"]["DOWN"]["vetoes"] = []
        d["accumulate"] = {**d["accumulate"], "action": action, "side": "UP" if action == "SLICE" else None}
        return d

    seq = [(doc(0), True), (doc(100), False), (doc(149), False), (doc(150), True),
           (doc(200, "BUY_UP", "SLICE"), True), (doc(210, "BUY_UP", "SLICE"), True),
           (doc(220, "BUY_UP"), True), (doc(230, "BUY_UP"), False),
           (doc(240, "BUY_UP", vetoes=("spread",)), True), (doc(250, "BUY_UP", vetoes=("spread",)), False),
           (doc(260, "BUY_UP", vetoes=("spread",), window=300 * NS), True),
           (doc(299, "BUY_UP", vetoes=("spread",), window=300 * NS), False),
           (doc(300, "BUY_UP", vetoes=("spread",), window=300 * NS), True)]
    smp = h.WindowSampler(300, 100)
    got = [smp.offer(d) is not None for d, _ in seq]
    assert got == [want for _, want in seq]
    assert (smp.samples, smp.events) == (8, 6)
    assert rec_of(h.window_record(seq[5][0]))["slice_side"] == 1


def test_the_market_is_sampled_once_a_second_of_data_time(docs):
    t0 = (docs["base"] // NS) * NS
    smp = h.MarketSampler()
    offsets = (0, 400, 999, 1000, 1999, 2500, 3000)
    got = [smp.offer({**docs["features"], "ts_ns": t0 + ms * MS}) is not None for ms in offsets]
    assert got == [True, False, False, True, False, True, True] and smp.samples == 4


# --- the endpoints --------------------------------------------------------------------------------

SCHEMAS = build_openapi(4096)["components"]


def valid(body: dict, schema: str) -> list[str]:
    v = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": SCHEMAS})
    return [f"{e.instance_path}: {e.message}" for e in v.iter_errors(body)][:5]


@pytest.fixture
def api(tmp_path):
    """(settings, a client of the API app) over a temporary shm directory, following 15m and 1h."""
    def make(**kw):
        kw.setdefault("polymarket_windows", "15m,1h")
        kw.setdefault("shm_prefix", "hist")
        s = load_settings(shm_dir=str(tmp_path), **kw)
        return s, testing.TestClient(create_app(ShmView(s), s))
    return make


START_S = 1_790_000_100
M15 = market_doc("15m", START_S, 900)
OLD = market_doc("15m", START_S - 900, 900)
T0 = START_S * NS


def _wdoc(k: int, decision="NONE", action="HOLD", vetoes=(), m=M15, usd=0.0, slices=0):
    d = edge_doc("15m", T0 + k * NS, m, decision=decision, ptb=None)
    d["edge"]["vetoes"] = [{"code": c, "side": "UP", "reason": ""} for c in vetoes]
    d["accumulate"] = {"action": action, "side": "UP" if action == "SLICE" else None, "reason": "",
                       "slices": slices, "usd": usd, "slice_usd": 20.0 if action == "SLICE" else 0.0}
    return d


def test_window_history_answers_the_latest_windows_columns_events_and_slices(api):
    s, c = api()
    docs = [_wdoc(k, m=OLD) for k in (-3, -2, -1)] + [
        _wdoc(0), _wdoc(1), _wdoc(2, "BUY_UP", "SLICE", usd=20.0, slices=1),
        _wdoc(3, "BUY_UP", usd=20.0, slices=1), _wdoc(4, "BUY_UP", vetoes=("spread",), usd=20.0, slices=1),
        _wdoc(5, "BUY_UP", vetoes=("spread",), usd=20.0, slices=1)]
    assert write_history(s, {"15m": docs}, []) == {"history.window_15m": 9}
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.EDGE_BLOCK, writer=True).write(
        {"ts_ns": docs[-1]["ts_ns"], "symbol": "BTCUSDT", "disabled": None, "series": {"15m": docs[-1]}})
    before = clock.now_ns()
    r = c.simulate_get("/history/window", params={"series": "15m"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    b = r.json
    assert before <= b.pop("ts_ns") <= clock.now_ns()
    ts = [T0 + k * NS for k in range(6)]
    up, down = docs[3]["edge"]["sides"]["UP"], docs[3]["edge"]["sides"]["DOWN"]
    assert b == {
        "series": "15m", "window": M15["slug"], "window_start_ns": T0, "window_end_ns": T0 + 900 * NS,
        "complete": True, "n": 6, "events_dropped": 0,
        "columns": {"ts_ns": ts, "binance": [65010.0] * 6, "chainlink": [65003.0] * 6,
                    "settlement": [65003.0] * 6,
                    "price_to_beat": [None] * 6, "fair_up": [0.55] * 6,
                    "up_bid": [0.49] * 6, "up_ask": [0.5] * 6, "up_mid": [0.495] * 6,
                    "down_bid": [0.46] * 6, "down_ask": [0.47] * 6, "down_mid": [(0.46 + 0.47) / 2] * 6,
                    "edge_up": [up["edge"]] * 6, "edge_down": [down["edge"]] * 6,
                    "roc_up": [up["return_on_cost"]] * 6, "roc_down": [down["return_on_cost"]] * 6,
                    "buffer": [None] * 6,           # the documents carry no edge params: NaN, null
                    "time_left_s": [600.0] * 6},
        "events": [
            {"ts_ns": ts[0], "decision": "NONE", "action": "HOLD", "side": None, "slice_usd": 0.0,
             "acc_usd": 0.0, "slices": 0, "vetoes": []},
            {"ts_ns": ts[2], "decision": "BUY_UP", "action": "SLICE", "side": "UP", "slice_usd": 20.0,
             "acc_usd": 20.0, "slices": 1, "vetoes": []},
            {"ts_ns": ts[3], "decision": "BUY_UP", "action": "HOLD", "side": None, "slice_usd": 0.0,
             "acc_usd": 20.0, "slices": 1, "vetoes": []},
            {"ts_ns": ts[4], "decision": "BUY_UP", "action": "HOLD", "side": None, "slice_usd": 0.0,
             "acc_usd": 20.0, "slices": 1, "vetoes": ["spread"]}],
        "slices": [{"ts_ns": ts[2], "side": "UP", "usd": 20.0}]}
    assert not valid(r.json, "HistoryWindow")
    # the edge block on another window: no slug (never another window's)
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.EDGE_BLOCK, writer=True).write(
        {"ts_ns": 0, "symbol": "BTCUSDT", "disabled": None, "series": {"15m": docs[0]}})
    assert c.simulate_get("/history/window", params={"series": "15m"}).json["window"] is None


def test_window_columns_are_decimated_to_2000_points_events_capped_to_the_newest(api):
    s, c = api()
    # 5000 samples 100 ms apart, each one a change of its vetoes (so each is sampled, and an event)
    docs = []
    for k in range(5000):
        d = _wdoc(0, vetoes=("spread",) if k % 2 else ())
        d["ts_ns"] = T0 + k * 100 * MS
        docs.append(d)
    write_history(s, {"15m": docs}, [])
    b = c.simulate_get("/history/window", params={"series": "15m"}).json
    pick = np.unique(np.linspace(0, 4999, 2000).round().astype(int))
    assert b["n"] == 2000 == len(pick) and b["complete"] is True
    assert b["columns"]["ts_ns"] == [T0 + int(i) * 100 * MS for i in pick]
    assert b["columns"]["ts_ns"][0] == T0 and b["columns"]["ts_ns"][-1] == T0 + 4999 * 100 * MS
    assert {len(v) for v in b["columns"].values()} == {2000}
    # the newest MAX_EVENTS events, the older ones counted
    assert (len(b["events"]), b["events_dropped"]) == (2000, 3000)
    assert [e["ts_ns"] for e in b["events"]] == [T0 + k * 100 * MS for k in range(3000, 5000)]
    assert b["events"][-1]["vetoes"] == ["spread"] and b["events"][0]["vetoes"] == []
    assert not valid(b, "HistoryWindow")


def test_only_the_trailing_run_of_the_latest_window_is_answered_and_a_late_start_is_incomplete(api):
    s, c = api()
    # windowless, a window, windowless again: the answer is the last windowless stretch only
    write_history(s, {"15m": [_wdoc(k, m=None) for k in (-9, -8)] + [_wdoc(k) for k in (0, 1)]
                      + [_wdoc(k, m=None) for k in (5, 6, 7)]}, [])
    b = c.simulate_get("/history/window", params={"series": "15m"}).json
    assert (b["window_start_ns"], b["columns"]["ts_ns"]) == (None, [T0 + k * NS for k in (5, 6, 7)])
    # compute (re)started 10 s into the window: its samples do not reach back to the start
    s2, c2 = api(shm_prefix="hist3")
    write_history(s2, {"15m": [_wdoc(k) for k in (10, 11, 12)]}, [])
    b = c2.simulate_get("/history/window", params={"series": "15m"}).json
    assert (b["complete"], b["n"], b["window_start_ns"]) == (False, 3, T0)
    s3, c3 = api(shm_prefix="hist4")
    write_history(s3, {"15m": [_wdoc(k) for k in (2, 3)]}, [])      # within START_SLACK of the start
    assert c3.simulate_get("/history/window", params={"series": "15m"}).json["complete"] is True


def test_window_history_is_incomplete_once_the_ring_lost_its_first_samples(api):
    s, c = api()
    flip = lambda k, m=M15: _wdoc(k, vetoes=("spread",) if k % 2 else (), m=m)
    write_history(s, {"15m": [flip(k) for k in range(100)]}, [], window_capacity=64)
    b = c.simulate_get("/history/window", params={"series": "15m"}).json
    assert (b["complete"], b["n"], b["columns"]["ts_ns"][0]) == (False, 64, T0 + 36 * NS)
    # lapped, but what was lost is the previous window's: this one is whole
    s2, c2 = api(shm_prefix="hist2")
    write_history(s2, {"15m": [flip(k, OLD) for k in range(-80, 0)] + [flip(k) for k in range(30)]}, [],
                  window_capacity=64)
    b = c2.simulate_get("/history/window", params={"series": "15m"}).json
    assert (b["complete"], b["n"], b["columns"]["ts_ns"][0]) == (True, 30, T0)


def test_window_history_refuses_bad_series_and_says_when_there_is_no_sample(api):
    s, c = api()
    cases = [({"series": "2m"}, 400, "bad series"), ({"series": ["15m", "1h"]}, 400, "bad series"),
             ({}, 400, "series required"), ({"series": "5m"}, 404, "series not followed"),
             ({"series": "1h"}, 503, "no data yet")]
    for params, status, title in cases:
        r = c.simulate_get("/history/window", params=params)
        assert (r.status_code, r.json["title"], r.headers["content-type"]) == (status, title, "application/json")
    assert c.simulate_get("/history/window", params={"series": "1h"}).json["description"] == \
        "compute has no 1h window sample yet"
    # one series followed: it is the default
    s1, c1 = api(polymarket_windows="15m", shm_prefix="hist1")
    write_history(s1, {"15m": [_wdoc(0)]}, [])
    r = c1.simulate_get("/history/window")
    assert (r.status_code, r.json["series"], r.json["n"]) == (200, "15m", 1)
    # the Polymarket side off: nothing is followed
    s0, c0 = api(polymarket_enabled=False, shm_prefix="hist0")
    assert c0.simulate_get("/history/window").json["title"] == "no series followed"
    assert c0.simulate_get("/history/window", params={"series": "15m"}).status_code == 404


def _feats(docs, k: int, price: float) -> dict:
    f = docs["features"]
    v = f["venues"]
    return {**f, "ts_ns": T0 + k * NS, "venues": {**v, "futures": {**v["futures"], "last_price": price}}}


def test_market_history_answers_the_last_minutes(api, docs):
    s, c = api()
    feats = [_feats(docs, k, 60_000.0 + k) for k in range(1200)]        # 20 minutes
    assert write_history(s, {}, feats) == {"history.market": 1200}
    b = c.simulate_get("/history/market").json                          # 15 minutes by default
    assert b["n"] == 900 and b["columns"]["ts_ns"] == [T0 + k * NS for k in range(300, 1200)]
    cols = b["columns"]
    assert cols["futures"] == [60_000.0 + k for k in range(300, 1200)]
    assert set(cols["spot"]) == set(cols["futures_mid"]) == set(cols["spot_mid"]) == {65_000.0}
    assert cols["mark"] == [None] * 900                                  # no mark price: NaN, null
    assert cols["quality"] == [docs["features"]["quality"]["mode"]] * 900
    assert set(cols) == {"ts_ns", "futures", "spot", "futures_mid", "spot_mid", "cvd_futures", "cvd_spot",
                         "basis_bps", "mark", "liq_long_usd", "liq_short_usd", "quality"}
    assert not valid(b, "HistoryMarket")
    assert c.simulate_get("/history/market", params={"minutes": "240"}).json["n"] == 1200
    assert c.simulate_get("/history/market", params={"minutes": "1"}).json["columns"]["ts_ns"][0] == T0 + 1140 * NS
    for bad in ("0", "241", "x", "1.5"):
        r = c.simulate_get("/history/market", params={"minutes": bad})
        assert (r.status_code, r.headers["content-type"]) == (400, "application/json"), bad


def test_market_history_is_decimated_and_503_before_the_first_sample(api, docs):
    s, c = api()
    r = c.simulate_get("/history/market")
    assert (r.status_code, r.json["title"]) == (503, "no data yet")
    write_history(s, {}, [_feats(docs, k, 60_000.0 + k) for k in range(3000)])
    b = c.simulate_get("/history/market", params={"minutes": "60"}).json
    pick = np.unique(np.linspace(0, 2999, 2000).round().astype(int))
    assert b["n"] == 2000 and b["columns"]["futures"] == [60_000.0 + int(i) for i in pick]
    assert not valid(b, "HistoryMarket")

