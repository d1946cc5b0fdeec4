"""The example strategy (actors/strategy.py) and the calibration command (actors/tools/calibrate.py):
settlement, PnL, the rule, reliability/Brier, and the strategy process against the real stack."""
from __future__ import annotations

import orjson
import pytest

from actors.tools import calibrate
from actors.strategy import Strategy, settlement_price, window_pnl
from tests.support.wait import wait_for
from tests.support.stack import Stack

S = 1_000_000_000
END = 1_000 * S


# --- settlement -------------------------------------------------------------------------------
def test_point_settlement_is_the_observation_at_the_end_else_the_last_before():
    obs = [(END - 2 * S, 100.0), (END - S, 101.0), (END, 102.0), (END + S, 103.0)]
    assert settlement_price(obs, END) == (102.0, "ok")
    assert settlement_price(obs[:2], END) == (None, "pending")
    # a missed end second: the price in force at the end, not one observed after it
    assert settlement_price([(END - S, 1.0), (END + S, 7.0)], END) == (1.0, "ok")
    # the history starts after the end: nothing says what the price was at it
    assert settlement_price([(END + S, 7.0)], END) == (None, "incomplete")


def test_twap_settlement_is_the_mean_over_the_lookback():
    obs = [(END - 4 * S, 10.0), (END - 3 * S, 11.0), (END - 2 * S, 12.0), (END - S, 13.0), (END, 14.0),
           (END + S, 99.0)]
    # (end − 3 s, end] holds the observations of end−2, end−1, end
    assert settlement_price(obs, END, twap=True, lookback_sec=3) == (13.0, "ok")
    assert settlement_price(obs[:-2], END, twap=True, lookback_sec=3) == (None, "pending")
    assert settlement_price(obs[3:], END, twap=True, lookback_sec=3) == (None, "incomplete")


def test_window_pnl_exact():
    fills = [{"side": "UP", "usd": 10.0, "shares": 20.0}, {"side": "DOWN", "usd": 10.0, "shares": 40.0},
             {"side": "UP", "usd": 5.0, "shares": 8.0}]
    assert window_pnl(fills, "UP") == 28.0 - 25.0
    assert window_pnl(fills, "DOWN") == 40.0 - 25.0
    assert window_pnl([], "UP") == 0.0


# --- the rule ---------------------------------------------------------------------------------
MARKET = {"slug": "btc-updown-15m-988", "window_start_ns": END - 12 * S, "window_end_ns": END,
          "twap_enabled": False, "twap_lookback_sec": 0, "price_to_beat": None}


def edge_doc(ts=END - 6 * S, action="HOLD", side=None, up=(0.5, 0.0), down=(0.5, 0.0), mids=(0.5, 0.5),
             states=("normal", "normal"), vetoes=()):
    sides = {s: {"effective_cost": c, "edge_bps": e, "vetoes": []} for s, (c, e) in (("UP", up), ("DOWN", down))}
    return {"symbol": "BTCUSDT", "ts_ns": ts, "window": MARKET["slug"], "fair": {"fast": 0.5, "s0": 100.0},
            "edge": {"decision": "NONE", "vetoes": list(vetoes), "sides": sides},
            "accumulate": {"action": action, "side": side},
            "spikes": {"UP": {"state": states[0], "mid": mids[0]}, "DOWN": {"state": states[1], "mid": mids[1]}}}


def strat():
    st = Strategy(slice_usd=2.0)
    st.on_market(dict(MARKET))
    return st


def test_slice_buys_at_the_effective_cost():
    st = strat()
    fills = st.on_edge(edge_doc(action="SLICE", side="UP", up=(0.5, 300.0)))
    assert [(f["side"], f["kind"], f["usd"], f["shares"]) for f in fills] == [("UP", "slice", 2.0, 4.0)]
    assert st.on_edge(edge_doc(action="HOLD")) == []
    assert st.windows[MARKET["slug"]]["price_to_beat"] == 100.0       # from fair.s0


def test_favourite_dip_buys_once_per_dip_and_only_with_positive_edge():
    st = strat()
    dip = dict(mids=(0.7, 0.3), states=("dip", "normal"), up=(0.625, 50.0))
    assert [(f["side"], f["kind"], f["shares"]) for f in st.on_edge(edge_doc(**dip))] == [("UP", "dip", 3.2)]
    assert st.on_edge(edge_doc(**dip)) == []                          # still the same dip
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**dip)) != []                          # a new dip
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**{**dip, "up": (0.625, -10.0)})) == []   # no edge
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(mids=(0.3, 0.7), states=("dip", "normal"), up=(0.5, 50.0))) == []  # not the favourite
    st.on_edge(edge_doc(mids=(0.7, 0.3)))
    assert st.on_edge(edge_doc(**dip, vetoes=[{"code": "time_left", "side": None}])) == []


def test_hedge_buys_the_other_side_when_one_side_runs_away():
    st = strat()
    # slice 2 USD, ratio 2, slack 2 slices: UP usd > 2·DOWN usd + 4 → after the 3rd UP slice (6 > 4)
    kinds = []
    for _ in range(3):
        kinds.append([(f["side"], f["kind"]) for f in st.on_edge(edge_doc(action="SLICE", side="UP",
                                                                           up=(0.5, 100.0), down=(0.5, -150.0)))])
    assert kinds == [[("UP", "slice")], [("UP", "slice")], [("UP", "slice"), ("DOWN", "hedge")]]
    # DOWN's edge below −HEDGE_BUFFER_BPS: no hedge
    st2 = strat()
    for _ in range(3):
        fills = st2.on_edge(edge_doc(action="SLICE", side="UP", up=(0.5, 100.0), down=(0.5, -250.0)))
    assert [f["kind"] for f in fills] == ["slice"]


def test_strategy_settles_the_window_and_keeps_totals():
    st = strat()
    st.on_edge(edge_doc(action="SLICE", side="UP", up=(0.5, 100.0)))        # 4 shares UP for 2 USD
    st.on_edge(edge_doc(action="SLICE", side="DOWN", down=(0.25, 100.0)))   # 8 shares DOWN for 2 USD
    assert st.on_chainlink(END - S, 99.0) == []
    [rec] = st.on_chainlink(END, 99.5)
    assert rec["winner"] == "DOWN" and rec["settlement"] == 99.5 and rec["price_to_beat"] == 100.0
    assert rec["pnl_usd"] == 8.0 - 4.0 and st.pnl_usd == 4.0 and st.settled == 1
    assert st.windows == {}
    st.on_market({**MARKET, "slug": "w2", "window_start_ns": END, "window_end_ns": END + 12 * S,
                  "price_to_beat": 99.5})
    [rec2] = st.on_chainlink(END + 12 * S, 99.5)                              # a tie goes to Up
    assert rec2["winner"] == "UP" and rec2["pnl_usd"] == 0.0 and st.settled == 2


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
    assert calibrate.join(dec, settled) == [(0.6, 1)]
    assert calibrate.join(dec, settled, "mean") == [(0.4, 1)]


def test_calibrate_command_prints_the_table(tmp_path, capsys):
    (tmp_path / "decisions").mkdir()
    (tmp_path / "strategy").mkdir()
    (tmp_path / "decisions" / "decisions-2026-01-01.jsonl").write_bytes(b"".join(
        orjson.dumps({"ts_ns": 1, "window": w, "fair": {"fast": p}}) + b"\n" for w, p in (("a", 0.25), ("b", 0.75))))
    (tmp_path / "strategy" / "settled.jsonl").write_bytes(b"".join(
        orjson.dumps({"slug": w, "window_end_ns": 10, "winner": x}) + b"\n" for w, x in (("a", "DOWN"), ("b", "DOWN"))))
    assert calibrate.main(["--dir", str(tmp_path / "decisions")]) == 0
    out = capsys.readouterr().out
    assert "2 windows" in out and "Brier score: 0.3125" in out and "0.20-0.30    0.250  0.000     1" in out


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
            assert r["settlement"] > 0 and r["price_to_beat"] > 0 and r["twap"] is False
            assert r["winner"] == ("UP" if r["settlement"] >= r["price_to_beat"] else "DOWN")
            assert r["window_end_ns"] - r["window_start_ns"] == 12 * S
        assert c["pnl_usd"] == pytest.approx(sum(r["pnl_usd"] for r in recs), abs=1e-9)
        assert recs[-1]["total_pnl_usd"] == pytest.approx(c["pnl_usd"], abs=1e-9)
        print("strategy counters:", c)
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()
