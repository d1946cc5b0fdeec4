"""The example strategy (actors/strategy.py) and the calibration command (actors/tools/calibrate.py):
settlement by each window's rule (Chainlink TWAP, Binance candle), PnL per series, the rule,
reliability/Brier per series, and the strategy process against the real stack."""
from __future__ import annotations

import orjson
import pytest

from actors.decide.settlement import Rule
from actors.tools import calibrate
from actors.strategy import GIVE_UP_SEC, Strategy, topics, window_pnl
from ipc import names
from tests.support.wait import wait_for
from tests.support.stack import Stack

S = 1_000_000_000
START = 1_800_000_000 * S         # a multiple of 3600 s: an hourly window start too
TWAP3 = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=3)
POINT = Rule("chainlink", "btc/usd", "point")
CANDLE_1H = Rule("binance", "BTCUSDT", "candle", candle_tf="1h")
CANDLE_CLOSE = Rule("binance", "BTCUSDT", "candle_close", candle_tf="1m")


def market(series="15m", start=START, length=12, rule=TWAP3, ptb=None, slug=None):
    return {"series": series, "asset": "btc", "slug": slug or f"btc-updown-{series}-{start // S}",
            "window_start_ns": start, "window_end_ns": start + length * S, "rule": rule.doc(),
            "twap_enabled": rule.method == "twap", "twap_lookback_sec": rule.twap_lookback_sec,
            "price_to_beat": ptb, "price_to_beat_source": "venue" if ptb is not None else None}


def side(cost, edge):
    return {"cost_per_share": cost, "edge": edge, "edge_bps": edge * 1e4, "vetoes": []}


def edge_doc(m=None, ts=None, action="HOLD", pick=None, up=(0.5, 0.0), down=(0.5, 0.0), mids=(0.5, 0.5),
             states=("normal", "normal"), vetoes=(), ptb=None):
    m = m or market()
    return {"symbol": "BTCUSDT", "series": m["series"], "ts_ns": ts or m["window_start_ns"] + S,
            "window": m["slug"], "window_start_ns": m["window_start_ns"], "window_end_ns": m["window_end_ns"],
            "rule": m["rule"], "price_to_beat": ptb or {"price": None, "source": None},
            "fair": {"fast": 0.5},
            "edge": {"decision": "NONE", "vetoes": list(vetoes), "sides": {"UP": side(*up), "DOWN": side(*down)}},
            "accumulate": {"action": action, "side": pick},
            "spikes": {"UP": {"state": states[0], "mid": mids[0]}, "DOWN": {"state": states[1], "mid": mids[1]}}}


def strat(m=None, **kw):
    st = Strategy(slice_usd=2.0, **kw)
    st.on_market(m or market())
    return st


def kline(open_ns, tf_sec, o, c, closed, event_ns=None):
    return {"ts_event_ns": event_ns or open_ns + S, "ts_recv_ns": 0, "flags": 0, "open_time_ns": open_ns,
            "close_time_ns": open_ns + tf_sec * S - 1_000_000, "tf_sec": tf_sec, "closed": int(closed),
            "open": o, "high": max(o, c), "low": min(o, c), "close": c}


def test_window_pnl_exact():
    fills = [{"side": "UP", "usd": 10.0, "shares": 20.0}, {"side": "DOWN", "usd": 10.0, "shares": 40.0},
             {"side": "UP", "usd": 5.0, "shares": 8.0}]
    assert window_pnl(fills, "UP") == 28.0 - 25.0
    assert window_pnl(fills, "DOWN") == 40.0 - 25.0
    assert window_pnl([], "UP") == 0.0


def test_topics_are_every_series_from_names():
    per_series, chainlink, kline_topic = topics("ETHUSDT")
    assert per_series == tuple(t for s in names.POLY_SERIES for t in (f"edge.ETHUSDT.{s}", f"tick.poly.market.{s}"))
    assert chainlink == "tick.chainlink.price.ETHUSD" and kline_topic == "tick.spot.kline.ETHUSDT"


# --- settlement by the window's rule -----------------------------------------------------------
def test_chainlink_twap_window_settles_on_the_trailing_means_with_exact_pnl():
    m = market(rule=TWAP3)
    end = m["window_end_ns"]
    st = strat(m)
    for k, px in ((2, 99.0), (1, 100.0), (0, 101.0)):        # (start − 3 s, start]: mean 100.0
        assert st.on_chainlink(START - k * S, px) == []
    w = st.windows[("15m", m["slug"])]
    assert (w["price_to_beat"], w["price_to_beat_source"]) == (100.0, "estimate")
    st.on_edge(edge_doc(m, action="SLICE", pick="UP", up=(0.4, 0.05)))       # 5 shares UP for 2 USD
    st.on_edge(edge_doc(m, action="SLICE", pick="DOWN", down=(0.25, 0.1)))   # 8 shares DOWN for 2 USD
    assert st.on_chainlink(end - 2 * S, 101.5) == [] and st.on_chainlink(end - S, 101.0) == []
    # the end print alone (97.5) would be DOWN; the TWAP over (end − 3 s, end] is exactly 100.0: a tie, Up
    [rec] = st.on_chainlink(end, 97.5)
    assert rec == {"series": "15m", "slug": m["slug"], "window_start_ns": START, "window_end_ns": end,
                   "rule": TWAP3.doc(), "price_to_beat": 100.0, "price_to_beat_source": "estimate",
                   "settlement": 100.0, "winner": "UP", "cost_usd": 4.0, "shares": {"UP": 5.0, "DOWN": 8.0},
                   "fills": 2, "pnl_usd": 1.0, "series_pnl_usd": 1.0, "total_pnl_usd": 1.0}
    assert st.windows == {} and st.settled == 1 and st.by_series["15m"]["settled"] == 1


def test_the_same_prints_under_a_point_rule_settle_down():
    m = market(rule=POINT)
    st = strat(m)
    st.on_chainlink(START, 100.0)
    st.on_edge(edge_doc(m, action="SLICE", pick="UP", up=(0.4, 0.05)))
    st.on_chainlink(m["window_end_ns"] - S, 101.0)
    [rec] = st.on_chainlink(m["window_end_ns"], 97.5)
    assert (rec["price_to_beat"], rec["settlement"], rec["winner"], rec["pnl_usd"]) == (100.0, 97.5, "DOWN", -2.0)


def test_binance_candle_window_settles_on_its_hourly_candle_not_on_chainlink():
    m = market("1h", length=3600, rule=CANDLE_1H)
    st = strat(m)
    assert st.on_kline(kline(START, 3600, 65000.0, 65010.0, False)) == []      # first update: the open
    w = st.windows[("1h", m["slug"])]
    assert (w["price_to_beat"], w["price_to_beat_source"]) == (65000.0, "estimate")
    st.on_edge(edge_doc(m, action="SLICE", pick="DOWN", down=(0.4, 0.1)))    # 5 DOWN shares, 2 USD
    st.on_edge(edge_doc(m, action="SLICE", pick="DOWN", down=(0.4, 0.1)))    # 5 more
    st.on_edge(edge_doc(m, action="SLICE", pick="UP", up=(0.5, 0.01)))       # 4 UP shares, 2 USD
    # Chainlink says Up all along, and passes the end: the window does not settle on it
    st.on_chainlink(START + 10 * S, 65100.0)
    assert st.on_chainlink(START + 3601 * S, 65200.0) == []
    assert st.on_kline(kline(START, 3600, 65000.0, 64995.0, False, START + 3599 * S)) == []   # not closed
    [rec] = st.on_kline(kline(START, 3600, 65000.0, 64990.0, True, START + 3600 * S))
    assert (rec["series"], rec["price_to_beat"], rec["price_to_beat_source"], rec["settlement"], rec["winner"])         == ("1h", 65000.0, "estimate", 64990.0, "DOWN")
    assert rec["rule"] == CANDLE_1H.doc() and rec["cost_usd"] == 6.0 and rec["pnl_usd"] == 10.0 - 6.0


def test_the_venue_price_to_beat_replaces_the_estimate():
    m = market("1h", length=3600, rule=CANDLE_1H)
    st = strat(m)
    st.on_kline(kline(START, 3600, 65000.0, 65010.0, False))
    st.on_market({**m, "price_to_beat": 64980.0, "price_to_beat_source": "venue"})
    [rec] = st.on_kline(kline(START, 3600, 65000.0, 64990.0, True, START + 3600 * S))
    assert (rec["price_to_beat"], rec["price_to_beat_source"], rec["winner"]) == (64980.0, "venue", "UP")


def test_daily_candle_close_rule_compares_the_1m_closes():
    m = market("1d", length=86400, rule=CANDLE_CLOSE)
    end = m["window_end_ns"]
    st = strat(m)
    st.on_kline(kline(START, 60, 100.0, 100.5, False))
    assert st.windows[("1d", m["slug"])]["price_to_beat"] is None            # the start candle is open
    st.on_kline(kline(START, 60, 100.0, 101.0, True, START + 60 * S))
    assert st.windows[("1d", m["slug"])]["price_to_beat"] == 101.0
    assert st.on_kline(kline(end, 60, 101.0, 100.0, False, end + S)) == []
    [rec] = st.on_kline(kline(end, 60, 101.0, 100.5, True, end + 60 * S))
    assert (rec["price_to_beat"], rec["settlement"], rec["winner"]) == (101.0, 100.5, "DOWN")


def test_windows_the_history_does_not_cover_are_dropped_never_guessed():
    # TWAP price to beat: the history starts inside (start − 3 s, start] and no venue number
    m = market(rule=TWAP3)
    st = strat(m)
    st.on_chainlink(START, 100.0)
    assert st.windows[("15m", m["slug"])]["ptb_status"] == "incomplete"
    assert st.on_chainlink(m["window_end_ns"], 101.0) == []
    assert st.windows == {} and st.unsettled == 1 and st.by_series["15m"]["unsettled"] == 1
    # ... but with the venue's number it settles
    st2 = strat(market(rule=POINT, ptb=99.0))
    st2.on_chainlink(START + 5 * S, 100.0)
    [rec] = st2.on_chainlink(market()["window_end_ns"], 98.0)
    assert (rec["price_to_beat_source"], rec["winner"]) == ("venue", "DOWN")
    # a candle that never closes: given up GIVE_UP_SEC of data time after the end
    h = market("1h", length=3600, rule=CANDLE_1H)
    st3 = strat(h)
    st3.on_kline(kline(START, 3600, 65000.0, 65010.0, False))
    st3.on_chainlink(h["window_end_ns"] + GIVE_UP_SEC * S, 1.0)
    assert ("1h", h["slug"]) in st3.windows
    st3.on_chainlink(h["window_end_ns"] + GIVE_UP_SEC * S + S, 1.0)
    assert st3.windows == {} and st3.unsettled == 1


def test_series_are_separate_books():
    a, b = market("5m", rule=POINT), market("15m", rule=POINT)         # the same start and end
    st = strat(a)
    st.on_market(b)
    st.on_edge(edge_doc(a, action="SLICE", pick="UP", up=(0.5, 0.05)))     # 4 UP shares in 5m
    st.on_edge(edge_doc(b, action="SLICE", pick="DOWN", down=(0.5, 0.05)))  # 4 DOWN shares in 15m
    st.on_chainlink(START, 100.0)
    recs = st.on_chainlink(a["window_end_ns"], 101.0)                        # UP
    assert {r["series"]: r["pnl_usd"] for r in recs} == {"5m": 2.0, "15m": -2.0}
    assert st.by_series["5m"]["pnl_usd"] == 2.0 and st.by_series["15m"]["pnl_usd"] == -2.0 and st.pnl_usd == 0.0


def test_a_strategy_started_mid_window_opens_it_from_the_edge_document():
    m = market(rule=POINT)
    st = Strategy(slice_usd=2.0)
    st.on_chainlink(START, 100.0)
    fills = st.on_edge(edge_doc(m, action="SLICE", pick="UP", up=(0.5, 0.05),
                                ptb={"price": 99.5, "source": "venue", "method": "point", "status": "ok"}))
    assert [f["series"] for f in fills] == ["15m"]
    [rec] = st.on_chainlink(m["window_end_ns"], 99.5)
    assert (rec["price_to_beat"], rec["price_to_beat_source"], rec["winner"], rec["pnl_usd"]) == (99.5, "venue", "UP", 2.0)


def test_a_window_settles_once_and_the_venue_resolution_is_compared():
    m = market(rule=POINT)
    st = strat(m)
    st.on_chainlink(START, 100.0)
    [rec] = st.on_chainlink(m["window_end_ns"], 101.0)
    assert rec["winner"] == "UP"
    # compute's last document of the ended window, then the venue's resolution of it: not reopened
    assert st.on_edge(edge_doc(m, ts=m["window_end_ns"], action="SLICE", pick="UP", up=(0.5, 0.05))) == []
    st.on_market({**m, "resolution": {"winner": "UP", "source": "market_resolved", "ts_ns": m["window_end_ns"]}})
    assert st.windows == {} and st.on_chainlink(m["window_end_ns"] + S, 101.0) == []
    assert (st.settled, st.venue_agreed, st.venue_disagreed) == (1, 1, 0)
    m2 = market(rule=POINT, start=START + 12 * S)
    st.on_market(m2)
    st.on_chainlink(START + 12 * S, 101.0)
    [rec2] = st.on_chainlink(m2["window_end_ns"], 100.0)
    st.on_market({**m2, "resolution": {"winner": "UP", "source": "gamma", "ts_ns": 0}})
    assert rec2["winner"] == "DOWN" and (st.venue_agreed, st.venue_disagreed) == (1, 1)


def test_bad_payloads_are_counted_not_fatal():
    st = Strategy(slice_usd=2.0)
    st.on_market({"series": "15m", "slug": "x", "window_start_ns": 1, "window_end_ns": 2, "rule": {"source": "moon"}})
    st.on_market({"slug": "y"})
    st.on_kline({"open_time_ns": "soon"})
    assert st.on_edge({**edge_doc(), "edge": {"sides": "nope"}, "accumulate": {"action": "SLICE", "side": "UP"}}) == []
    assert st.bad_payloads == 4
    assert list(st.windows) == [("15m", market()["slug"])]      # (the edge document's own, valid window)


# --- the rule ---------------------------------------------------------------------------------
def test_slice_buys_at_the_all_in_cost_per_share():
    st = strat()
    fills = st.on_edge(edge_doc(action="SLICE", pick="UP", up=(0.5, 0.03)))
    assert [(f["side"], f["kind"], f["usd"], f["shares"]) for f in fills] == [("UP", "slice", 2.0, 4.0)]
    assert st.on_edge(edge_doc(action="HOLD")) == []


def test_favourite_dip_buys_once_per_dip_and_only_with_positive_edge():
    st = strat()
    dip = dict(mids=(0.7, 0.3), states=("dip", "normal"), up=(0.625, 0.005))
    assert [(f["side"], f["kind"], f["shares"]) for f in st.on_edge(edge_doc(**dip))] == [("UP", "dip", 3.2)]
    assert st.on_edge(edge_doc(**dip)) == []                          # still the same dip
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**dip)) != []                          # a new dip
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**{**dip, "up": (0.625, -0.001)})) == []   # no edge
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(mids=(0.3, 0.7), states=("dip", "normal"), up=(0.5, 0.005))) == []  # not the favourite
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**dip, vetoes=[{"code": "time_left", "side": None}])) == []
    # a veto on the other side (edge.vetoes lists it too) does not stop this one
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    doc = edge_doc(**dip, vetoes=[{"code": "stale", "side": "DOWN"}])
    doc["edge"]["sides"]["DOWN"]["vetoes"] = [{"code": "stale", "side": "DOWN"}]
    assert [f["kind"] for f in st.on_edge(doc)] == ["dip"]          # (and no hedge into the vetoed DOWN)


def test_a_dip_in_one_series_is_not_a_new_dip_in_another():
    a, b = market("5m"), market("15m")
    st = strat(a)
    st.on_market(b)
    dip = dict(mids=(0.7, 0.3), states=("dip", "normal"), up=(0.625, 0.005))
    assert len(st.on_edge(edge_doc(a, **dip))) == 1
    assert len(st.on_edge(edge_doc(b, **dip))) == 1          # 15m's first dip: its own previous state
    assert st.on_edge(edge_doc(a, **dip)) == []              # 5m: still the same dip


def test_hedge_buys_the_other_side_when_one_side_runs_away():
    st = strat()
    # slice 2 USD, ratio 2, slack 2 slices: UP usd > 2·DOWN usd + 4 → after the 3rd UP slice (6 > 4)
    kinds = []
    for _ in range(3):
        kinds.append([(f["side"], f["kind"]) for f in st.on_edge(edge_doc(action="SLICE", pick="UP",
                                                                           up=(0.5, 0.01), down=(0.5, -0.015)))])
    assert kinds == [[("UP", "slice")], [("UP", "slice")], [("UP", "slice"), ("DOWN", "hedge")]]
    # DOWN's edge below −HEDGE_BUFFER_BPS (−0.025 = −250 bps < −200): no hedge
    st2 = strat()
    for _ in range(3):
        fills = st2.on_edge(edge_doc(action="SLICE", pick="UP", up=(0.5, 0.01), down=(0.5, -0.025)))
    assert [f["kind"] for f in fills] == ["slice"]


def test_the_window_cap_skips_buys_beyond_it():
    st = strat(max_usd_per_window=5.0)
    n = [len(st.on_edge(edge_doc(action="SLICE", pick="UP", up=(0.5, 0.01)))) for _ in range(3)]
    assert n == [1, 1, 0] and st.capped == 1 and st.by_series["15m"]["capped"] == 1


# --- calibration ------------------------------------------------------------------------------
PAIRS = [(0.25, 0), (0.25, 1), (0.75, 1), (1.0, 1), (0.0, 0)]


def test_reliability_table_exact():
    rows = calibrate.reliability(PAIRS, bins=4)
    assert [(r["n"], r["mean_p"], r["freq"]) for r in rows] == [
        (1, 0.0, 0.0), (2, 0.25, 0.5), (0, None, None), (2, 0.875, 1.0)]
    assert rows[3]["lo"] == 0.75 and rows[3]["hi"] == 1.0
    assert len(calibrate.reliability(PAIRS)) == 10


def test_brier_exact():
    # (0.0625 + 0.5625 + 0.0625 + 0 + 0) / 5
    assert calibrate.brier(PAIRS) == pytest.approx(0.1375, abs=1e-15)
    assert calibrate.brier([(1.0, 1), (0.0, 1)]) == 0.5
    assert calibrate.brier([]) is None


def test_join_takes_the_last_fair_before_the_end_or_the_mean():
    dec = [{"ts_ns": 1, "window": "a", "fair": {"fast": 0.2}}, {"ts_ns": 5, "window": "a", "fair": {"fast": 0.6}},
           {"ts_ns": 20, "window": "a", "fair": {"fast": 0.99}}, {"ts_ns": 3, "window": "b", "fair": {"fast": None}}]
    settled = [{"slug": "a", "window_end_ns": 10, "winner": "UP"}, {"slug": "b", "window_end_ns": 10, "winner": "UP"}]
    # (an older log: no series on either side, matched by slug)
    assert calibrate.join(dec, settled) == {"?": [(0.6, 1)]}
    assert calibrate.join(dec, settled, "mean") == {"?": [(0.4, 1)]}


def _dec(series, slug, ts, p):
    return {"ts_ns": ts, "series": series, "window": slug, "fair": {"fast": p}}


def test_join_is_per_series_and_labels_by_the_records_prices():
    # two series with windows of the same slug text: (series, slug) keeps them apart
    dec = [_dec("5m", "w1", 1, 0.8), _dec("15m", "w1", 1, 0.3), _dec("15m", "w2", 2, 0.6), _dec("1h", "h1", 3, 0.1)]
    settled = [
        {"series": "5m", "slug": "w1", "window_end_ns": 10, "settlement": 101.0, "price_to_beat": 100.0, "winner": "DOWN"},
        {"series": "15m", "slug": "w1", "window_end_ns": 10, "settlement": 99.0, "price_to_beat": 100.0},
        {"series": "15m", "slug": "w2", "window_end_ns": 10, "settlement": 100.0, "price_to_beat": 100.0},   # tie: Up
        {"series": "1h", "slug": "h1", "window_end_ns": 10, "winner": "UP"},
        {"series": "4h", "slug": "x", "window_end_ns": 10, "winner": "UP"}]                              # no fair
    got = calibrate.join(dec, settled)
    # the 5m record's prices say Up (101 >= 100), whatever its `winner` field says
    assert got == {"5m": [(0.8, 1)], "15m": [(0.3, 0), (0.6, 1)], "1h": [(0.1, 1)]}
    assert list(got) == ["5m", "15m", "1h"]
    assert calibrate.brier(got["15m"]) == pytest.approx((0.3 ** 2 + 0.4 ** 2) / 2, abs=1e-15)


def test_calibrate_command_prints_a_table_per_series(tmp_path, capsys):
    (tmp_path / "decisions").mkdir()
    (tmp_path / "strategy").mkdir()
    dec = [_dec("5m", "a", 1, 0.25), _dec("5m", "b", 1, 0.75), _dec("1h", "c", 1, 0.5)]
    (tmp_path / "decisions" / "decisions-2026-01-01.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in dec))
    (tmp_path / "strategy" / "settled.jsonl").write_bytes(b"".join(
        orjson.dumps({"series": s, "slug": w, "window_end_ns": 10, "winner": x}) + b"\n"
        for s, w, x in (("5m", "a", "DOWN"), ("5m", "b", "DOWN"), ("1h", "c", "UP"))))
    assert calibrate.main(["--dir", str(tmp_path / "decisions")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 windows with a fair value and an outcome, settled by the strategy")
    assert "[5m] 2 windows" in out and "Brier score [5m]: 0.3125" in out and "0.20-0.30    0.250  0.000     1" in out
    assert "[1h] 1 windows" in out and "Brier score [1h]: 0.2500" in out
    assert "[all series] 3 windows" in out and "Brier score [all series]: 0.2917" in out   # (0.0625+0.5625+0.25)/3
    assert calibrate.main(["--dir", str(tmp_path / "decisions"), "--series", "1h"]) == 0
    out = capsys.readouterr().out
    assert "[1h] 1 windows" in out and "[5m]" not in out and "all series" not in out


def test_calibrate_labels_from_a_recording_by_each_windows_rule(tmp_path, capsys):
    """--recording: the decision logs' windows labelled by their own rule on the recording's
    Chainlink observations and spot klines (the backtest's labelling, stubbed readers)."""
    from unittest import mock
    from actors.decide.settlement import Candle
    h, m = market("1h", length=3600, rule=CANDLE_1H), market("15m", rule=TWAP3)
    dec = [{**edge_doc(h), "fair": {"fast": 0.7}}, {**edge_doc(m), "fair": {"fast": 0.4}}]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "decisions-2027-01-15.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in dec))
    end = m["window_end_ns"]
    obs = [(START - 2 * S, 99.0), (START - S, 100.0), (START, 101.0),            # TWAP at the start: 100
           (end - 2 * S, 101.5), (end - S, 101.0), (end, 97.5)]                   # at the end: 100, a tie: Up
    candles = [Candle(START, 3600, 65000.0, 64990.0, True)]                        # the hour: DOWN
    with mock.patch("actors.tools.backtest.chainlink_series", return_value=obs), \
            mock.patch("actors.tools.backtest.spot_candles", return_value=candles):
        assert calibrate.main(["--dir", str(tmp_path / "d"), "--recording", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 windows with a fair value and an outcome, labelled from the recording" in out
    assert "Brier score [15m]: 0.3600" in out and "Brier score [1h]: 0.4900" in out


# --- end to end -------------------------------------------------------------------------------
def test_strategy_process_settles_windows_from_the_bus(tmp_path):
    st = Stack(tmp_path).start(
        actors=("sim", "bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink", "compute", "strategy"),
        POLYMARKET_WINDOW="15m", POLYMARKET_WINDOW_SEC="12", SLICE_USD="1", COOLDOWN_SEC="0",
        EDGE_BUFFER_BPS="0", EDGE_MIN_TIME_LEFT_SEC="1", MAX_SLICES_PER_WINDOW="50", MAX_USD_PER_WINDOW="50",
        # point settlement: a 60 s TWAP needs 60 s of Chainlink history before the first window settles
        SIM_POLY_TWAP="false", VOL_WARMUP_SAMPLES="3")
    try:
        hb = wait_for(lambda: (lambda h: h if h.get("counters", {}).get("windows_settled", 0) >= 2 else None)(
            st.hb("strategy")), 50, "two settled windows\n" + st.logs())
        recs = [orjson.loads(x) for x in (tmp_path / "strategy" / "settled.jsonl").read_bytes().splitlines()]
        c = hb["counters"]
        assert len(recs) >= c["windows_settled"] >= 2
        recs = recs[:c["windows_settled"]]
        for r in recs:
            assert r["series"] == "15m" and r["rule"]["source"] == "chainlink" and r["rule"]["method"] == "point"
            assert r["settlement"] > 0 and r["price_to_beat"] > 0 and r["price_to_beat_source"] in ("venue", "estimate")
            assert r["winner"] == ("UP" if r["settlement"] >= r["price_to_beat"] else "DOWN")
            assert r["window_end_ns"] - r["window_start_ns"] == 12 * S
        assert hb["series"]["15m"]["settled"] == c["windows_settled"]
        assert c["pnl_usd"] == pytest.approx(sum(r["pnl_usd"] for r in recs), abs=1e-9)
        assert recs[-1]["total_pnl_usd"] == pytest.approx(c["pnl_usd"], abs=1e-9)
        print("strategy counters:", c)
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()


def test_strategy_process_settles_a_binance_candle_series_beside_a_chainlink_one(tmp_path):
    """Two series at once: 15m (12 s windows, Chainlink point) and 1h shortened to 60 s, which
    settles on the Binance 1m spot candle: each settled line carries its own series and rule, and
    the 1h one's settlement is that candle's close against its open (or the venue's number)."""
    st = Stack(tmp_path).start(
        actors=("sim", "bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink", "compute", "strategy"),
        POLYMARKET_WINDOWS="15m,1h", POLYMARKET_WINDOW_SEC="15m:12,1h:60", SLICE_USD="1", COOLDOWN_SEC="0",
        EDGE_BUFFER_BPS="0", EDGE_MIN_TIME_LEFT_SEC="1", MAX_SLICES_PER_WINDOW="50", MAX_USD_PER_WINDOW="50",
        SIM_POLY_TWAP="false", VOL_WARMUP_SAMPLES="3")
    try:
        hb = wait_for(lambda: (lambda h: h if (h.get("series") or {}).get("1h", {}).get("settled", 0) >= 1
                               and h["series"].get("15m", {}).get("settled", 0) >= 1 else None)(st.hb("strategy")),
                      200, "a settled 1h and 15m window\n" + st.logs())
        recs = [orjson.loads(x) for x in (tmp_path / "strategy" / "settled.jsonl").read_bytes().splitlines()]
        by = {s: [r for r in recs if r["series"] == s] for s in ("15m", "1h")}
        assert all(r["rule"]["source"] == "chainlink" for r in by["15m"])
        for r in by["1h"]:
            assert r["rule"] == {"source": "binance", "stream": "BTCUSDT", "method": "candle", "twap_lookback_sec": 0,
                                 "candle_tf": "1m", "assumed": False}     # the sim's Gamma names Binance
            assert r["window_end_ns"] - r["window_start_ns"] == 60 * S
            assert r["winner"] == ("UP" if r["settlement"] >= r["price_to_beat"] else "DOWN")
        assert hb["series"]["1h"]["pnl_usd"] == pytest.approx(sum(r["pnl_usd"] for r in by["1h"][:hb["series"]["1h"]["settled"]]), abs=1e-9)
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()
