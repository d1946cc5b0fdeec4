"""Backtest scoring: paper fills at the walked asks, each window labelled by its own rule (Chainlink
point or TWAP, the Binance hourly candle) with the settlement module, per series; the recording's
settlement data read back with the venue parsers (a real spot kline capture)."""
from __future__ import annotations

import gzip

import pytest

from actors.decide.settlement import Candle, Rule
from actors.tools.backtest import label, latest_candles, score, spot_candles, windows_of
from ipc import recording
from tests.support.fixtures import BINANCE, need

S = 1_000_000_000
W0 = 1_800_000_000 * S            # a window start (a multiple of 3600 s)
POINT = Rule("chainlink", "btc/usd", "point")
TWAP2 = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=2)
CANDLE = Rule("binance", "BTCUSDT", "candle", candle_tf="1h")


def _edge(ts_ns, side, spent, shares, fee, edge_bps, action="SLICE", series="5m", rule=POINT, length=60,
          ptb=None):
    sides = {"UP": {"edge_bps": None}, "DOWN": {"edge_bps": None}}
    sides[side] = {"edge_bps": edge_bps, "spent_usd": spent, "shares": shares, "fee_usd": fee,
                   "avg_price": spent / shares, "return_on_cost": edge_bps / 1e4 / ((spent + fee) / shares)}
    return {"ts_ns": ts_ns, "series": series, "window": f"btc-updown-{series}-1800000000",
            "window_start_ns": W0, "window_end_ns": W0 + length * S, "rule": rule.doc(),
            "price_to_beat": ptb or {"price": None, "source": None, "method": rule.method, "status": "pending"},
            "edge": {"decision": f"BUY_{side}", "sides": sides},
            "accumulate": {"action": action, "side": side}}


def test_pnl_of_a_point_window_that_settles_up():
    obs = [(W0, 100.0), (W0 + 30 * S, 99.0), (W0 + 60 * S, 100.5), (W0 + 61 * S, 90.0)]
    edges = [_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0),
             _edge(W0 + 20 * S, "DOWN", 10.0, 25.0, 0.3, 120.0),
             _edge(W0 + 21 * S, "UP", 10.0, 20.0, 0.35, 80.0, action="HOLD")]
    rep = score(edges, obs)
    r = rep["series"]["5m"]
    w = r["windows"]["btc-updown-5m-1800000000"]
    assert (w["price_to_beat"], w["price_to_beat_source"], w["settlement"], w["status"], w["winner"]) == \
        (100.0, "estimate", 100.5, "ok", "UP")
    assert w["rule"] == POINT.doc() and w["cost_usd"] == pytest.approx(20.65)
    assert w["pnl_usd"] == pytest.approx(20.0 - 20.65)          # the UP slice pays 20 shares x $1
    assert r["slices"] == 2 and r["ticks"] == 3 and rep["slices"] == 2 and rep["ticks"] == 3
    assert r["decisions"] == {"BUY_UP": 2, "BUY_DOWN": 1}
    assert r["edge_bps"]["max"] == 250.0 and r["edge_bps"]["p50"] == 120.0
    assert rep["pnl_usd"] == pytest.approx(20.0 - 20.65)


def test_a_window_past_the_recording_is_unsettled():
    obs = [(W0, 100.0), (W0 + 30 * S, 99.0)]
    rep = score([_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0)], obs)
    w = rep["series"]["5m"]["windows"]["btc-updown-5m-1800000000"]
    assert (w["winner"], w["pnl_usd"], w["status"]) == (None, None, "pending") and rep["pnl_usd"] == 0.0


def test_twap_window_is_labelled_on_the_trailing_means():
    # TWAP over 2 s: price to beat = mean of (start − 2 s, start] = (99, 101) -> 100, settlement =
    # mean of (end − 2 s, end] = (102, 99) -> 100.5: UP. The point rule on the same prints compares
    # 99.0 at the end with 101.0 at the start: DOWN
    obs = [(W0 - S, 99.0), (W0, 101.0), (W0 + 59 * S, 102.0), (W0 + 60 * S, 99.0)]
    twap = score([_edge(W0 + 10 * S, "DOWN", 10.0, 20.0, 0.5, 300.0, series="15m", rule=TWAP2)], obs)
    w = twap["series"]["15m"]["windows"]["btc-updown-15m-1800000000"]
    assert (w["price_to_beat"], w["settlement"], w["winner"], w["pnl_usd"]) == (100.0, 100.5, "UP", -10.5)
    point = score([_edge(W0 + 10 * S, "DOWN", 10.0, 20.0, 0.5, 300.0, series="15m", rule=POINT)], obs)
    w = point["series"]["15m"]["windows"]["btc-updown-15m-1800000000"]
    assert (w["price_to_beat"], w["settlement"], w["winner"], w["pnl_usd"]) == (101.0, 99.0, "DOWN", 9.5)


def test_hourly_window_is_labelled_on_its_binance_candle_and_series_are_apart():
    obs = [(W0, 100.0), (W0 + 60 * S, 100.0), (W0 + 3600 * S, 200.0)]  # Chainlink: way up
    candles = [Candle(W0, 3600, 65000.0, 65010.0, False), Candle(W0, 3600, 65000.0, 64990.0, True)]
    edges = [_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.5, 300.0, series="1h", rule=CANDLE, length=3600),
             _edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.5, 300.0, series="5m")]
    rep = score(edges, obs, candles)
    h = rep["series"]["1h"]["windows"]["btc-updown-1h-1800000000"]
    assert (h["price_to_beat"], h["settlement"], h["winner"], h["pnl_usd"]) == (65000.0, 64990.0, "DOWN", -10.5)
    m = rep["series"]["5m"]["windows"]["btc-updown-5m-1800000000"]
    # the 5m point window: 100.0 at its end (W0 + 60 s) against 100.0 at its start: a tie, Up
    assert (m["settlement"], m["winner"], m["pnl_usd"]) == (100.0, "UP", 20.0 - 10.5)
    assert list(rep["series"]) == ["5m", "1h"]                           # POLY_SERIES order
    assert rep["series"]["1h"]["pnl_usd"] == -10.5 and rep["pnl_usd"] == -10.5 + 9.5


def test_the_venue_price_to_beat_wins_over_the_estimate():
    candles = [Candle(W0, 3600, 65000.0, 64990.0, True)]
    venue = {"price": 64980.0, "source": "venue", "method": "candle", "status": "ok"}
    docs = [_edge(W0 + S, "UP", 10.0, 20.0, 0.5, 300.0, series="1h", rule=CANDLE, length=3600),
            _edge(W0 + 2 * S, "UP", 10.0, 20.0, 0.5, 300.0, series="1h", rule=CANDLE, length=3600, ptb=venue)]
    [w] = windows_of(docs).values()
    assert w["venue_price"] == 64980.0 and w["rule"] == CANDLE
    assert label(w, [], candles) == {"price_to_beat": 64980.0, "price_to_beat_source": "venue",
                                     "settlement": 64990.0, "winner": "UP", "status": "ok"}


def test_windows_of_skips_documents_without_a_window_or_a_rule():
    good = _edge(W0, "UP", 10.0, 20.0, 0.5, 1.0)
    docs = [{**good, "window": None}, {**good, "rule": {"source": "moon"}}, {k: v for k, v in good.items() if k != "series"}]
    assert windows_of(docs) == {}
    assert list(windows_of(docs + [good])) == [("5m", "btc-updown-5m-1800000000")]


def test_spot_candles_from_a_recording_of_real_kline_frames(tmp_path):
    frames = [need(BINANCE / f"spot_kline_1m_{k}.json").read_bytes().strip() for k in ("open", "closed")]
    d = tmp_path / "spot" / "btcusdt@kline_1m"
    d.mkdir(parents=True)
    lines = b"".join(recording.encode_line(i, 1617566592358_000_000 + i, "combined", "btcusdt@kline_1m", f, "", "spot-1617566592")
                     for i, f in enumerate(frames))
    (d / ("20210404T200000Z" + recording.SUFFIX)).write_bytes(gzip.compress(lines))
    assert spot_candles(tmp_path) == [Candle(1617566580 * S, 60, 57994.6, 57999.99, True)]


def test_latest_candles_keeps_a_closed_candle_final():
    a = [Candle(W0, 60, 1.0, 2.0, False), Candle(W0, 60, 1.0, 3.0, True), Candle(W0, 60, 1.0, 4.0, False),
         Candle(W0 - 60 * S, 60, 0.5, 1.0, True)]
    assert latest_candles(a) == [Candle(W0 - 60 * S, 60, 0.5, 1.0, True), Candle(W0, 60, 1.0, 3.0, True)]


def test_the_incremental_scorer_labels_a_window_once_final_and_forgets_its_data():
    from actors.tools.backtest_score import FINAL_GRACE_NS, Scorer
    obs = [(W0, 100.0), (W0 + 30 * S, 99.0), (W0 + 60 * S, 100.5), (W0 + 61 * S, 90.0)]
    edges = [_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0),
             _edge(W0 + 20 * S, "DOWN", 10.0, 25.0, 0.3, 120.0)]
    sc = Scorer(keep_data_ns=0)
    for t, px in obs:
        sc.observe(t, px)
    for d in edges:
        sc.add(d)
    assert sc.advance(W0 + 60 * S + FINAL_GRACE_NS - 1) == 0 and len(sc.open) == 1     # not final yet
    assert sc.advance(W0 + 60 * S + FINAL_GRACE_NS) == 1 and sc.open == {}
    assert sc._obs == {}                        # no open window: the observations are let go
    w = sc.per["5m"]["windows"]["btc-updown-5m-1800000000"]
    assert (w["winner"], w["pnl_usd"]) == ("UP", pytest.approx(20.0 - 20.65))
    # the same as the batch score of the same documents on the same data
    assert sc.report() == score(edges, obs)


def test_a_slice_before_its_windows_rule_counts_once_the_rule_arrives():
    no_rule = {**_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0), "rule": {"source": "moon"}}
    good = _edge(W0 + 20 * S, "DOWN", 10.0, 25.0, 0.3, 120.0, action="HOLD")
    obs = [(W0, 100.0), (W0 + 60 * S, 100.5)]
    rep = score([no_rule, good], obs)
    w = rep["series"]["5m"]["windows"]["btc-updown-5m-1800000000"]
    assert [s["ts_ns"] for s in w["slices"]] == [W0 + 10 * S] and w["winner"] == "UP"
    assert score([no_rule], obs)["series"]["5m"]["windows"] == {}       # never a rule: no row
