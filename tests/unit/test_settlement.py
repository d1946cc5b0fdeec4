"""One settlement rule: fair value, the strategy, the backtest and calibrate settle a window alike."""
from __future__ import annotations

import pytest

from actors.decide.fair import FairValue
from actors.decide.settlement import settlement_price, twap_start_ns, up_wins, winner
from actors.decide.window import Fee, Window
from actors.strategy import Strategy
from actors.tools import backtest, calibrate

S = 1_000_000_000
START_S, END_S = 1_800_000_000, 1_800_000_060
END = END_S * S
PTB = 100.0
# the end second has no observation of its own; one falls between end − 1 s and end, another
# between end and end + 1 s: "at the end, else the last before" is 101.0 (Up), the first
# observation after the end would have been 99.0 (Down)
OBS = [(START_S * S, PTB), (END - 2 * S, 100.2), (END - S // 2, 101.0), (END + S // 2, 99.0),
       (END + 2 * S, 98.0)]
SETTLE, WINNER = 101.0, "UP"


def window(twap=False, lookback=0) -> Window:
    return Window(slug="btc-updown-1m-1800000000", start_s=START_S, end_s=END_S, start_ns=START_S * S,
                  end_ns=END, active=True, closed=False, accepting_orders=True, twap_enabled=twap,
                  twap_lookback_sec=lookback, fee=Fee(rate=0.07, exponent=1.0))


def test_the_rule():
    assert settlement_price(OBS, END) == (SETTLE, "ok")
    assert settlement_price(OBS[:3], END) == (None, "pending")            # nothing at or after the end yet
    assert settlement_price([(END, 5.0), (END + S, 6.0)], END) == (5.0, "ok")   # exactly at the end
    assert up_wins(100.0, 100.0) and winner(100.0, 100.0) == "UP" and winner(99.99, 100.0) == "DOWN"
    assert twap_start_ns(END, 60) == END - 60 * S


def test_fair_strategy_backtest_and_calibrate_agree_on_an_observation_near_the_end():
    # fair value: after the end, its snapshot settles the window from the observations it saw
    fv = FairValue(10.0)
    for t, p in OBS:
        fv.on_chainlink(t, p)
    fair = fv.snapshot(END + 3 * S, window(), PTB)
    assert fair["reason"] == "window ended"
    assert fair["settlement"] == {"price": SETTLE, "status": "ok", "winner": WINNER}

    # the strategy: settles on the first observation after the end, at the rule's price
    st = Strategy(slice_usd=1.0)
    st.on_market({"slug": "w", "window_start_ns": START_S * S, "window_end_ns": END, "price_to_beat": PTB})
    recs = [r for t, p in OBS for r in st.on_chainlink(t, p)]
    assert [(r["settlement"], r["winner"]) for r in recs] == [(SETTLE, WINNER)]

    # the backtest: the recording's series
    assert backtest.settle_price(OBS, END, None) == SETTLE

    # calibrate: the outcome of the strategy's record follows the same rule (here from its prices)
    assert calibrate.outcome(recs[0]) == 1
    assert calibrate.outcome({**recs[0], "winner": "DOWN"}) == 1       # the prices decide, not a label
    assert calibrate.join([{"ts_ns": END - S, "window": "w", "fair": {"fast": 0.7}}], recs) == [(0.7, 1)]


def test_twap_settlement_agrees_too():
    obs = [(END - 3 * S, 10.0), (END - 2 * S, 20.0), (END - S, 30.0), (END, 40.0), (END + S, 99.0)]
    expect = (20.0 + 30.0 + 40.0) / 3                       # (end − 3 s, end]
    fv = FairValue(10.0)
    for t, p in obs:
        fv.on_chainlink(t, p)
    assert fv.snapshot(END + 2 * S, window(twap=True, lookback=3), 25.0)["settlement"] == \
        {"price": expect, "status": "ok", "winner": "UP"}
    st = Strategy(slice_usd=1.0)
    st.on_market({"slug": "w", "window_start_ns": START_S * S, "window_end_ns": END, "price_to_beat": 25.0,
                  "twap_enabled": True, "twap_lookback_sec": 3})
    [rec] = [r for t, p in obs for r in st.on_chainlink(t, p)]
    assert rec["settlement"] == expect and rec["winner"] == "UP"
    assert backtest.settle_price(obs, END, 3) == expect
    assert settlement_price(obs, END, True, 3) == (pytest.approx(expect, abs=0), "ok")
