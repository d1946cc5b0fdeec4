"""One settlement module: fair value, the strategy, the backtest and calibrate settle a window alike,
by the window's rule (point, TWAP, Binance candle)."""
from __future__ import annotations

from actors.decide.fair import FairValue
from actors.decide.settlement import (Candle, Rule, price_to_beat, settle, settlement_price, twap_start_ns,
                                      up_wins, winner)
from actors.decide.window import Fee, Window
from actors.strategy import Strategy
from actors.tools import backtest, calibrate

S = 1_000_000_000
START_S, END_S = 1_800_000_000, 1_800_000_060
START, END = START_S * S, END_S * S
PTB = 100.0
# the end second has no observation of its own; one falls between end − 1 s and end, another
# between end and end + 1 s: "at the end, else the last before" is 101.0 (Up), the first
# observation after the end would have been 99.0 (Down)
OBS = [(START, PTB), (END - 2 * S, 100.2), (END - S // 2, 101.0), (END + S // 2, 99.0), (END + 2 * S, 98.0)]
SETTLE, WINNER = 101.0, "UP"
POINT = Rule("chainlink", "btc/usd", "point")
SLUG = "btc-updown-1m-1800000000"


def window(rule: Rule) -> Window:
    twap = rule.method == "twap"
    return Window(slug=SLUG, start_s=START_S, end_s=END_S, start_ns=START, end_ns=END, active=True,
                  closed=False, accepting_orders=True, twap_enabled=twap,
                  twap_lookback_sec=rule.twap_lookback_sec, fee=Fee(rate=0.07, exponent=1.0),
                  series="5m", asset="btc", rule=rule)


def market(rule: Rule, ptb: float | None = PTB) -> dict:
    return {"series": "5m", "slug": SLUG, "window_start_ns": START, "window_end_ns": END,
            "rule": rule.doc(), "price_to_beat": ptb}


def test_the_rule():
    assert settlement_price(OBS, END) == (SETTLE, "ok")
    assert settlement_price(OBS[:3], END) == (None, "pending")            # nothing at or after the end yet
    assert settlement_price([(END, 5.0), (END + S, 6.0)], END) == (5.0, "ok")   # exactly at the end
    assert up_wins(100.0, 100.0) and winner(100.0, 100.0) == "UP" and winner(99.99, 100.0) == "DOWN"
    assert twap_start_ns(END, 60) == END - 60 * S


def test_fair_strategy_backtest_and_calibrate_agree_on_an_observation_near_the_end():
    # fair value prices nothing after the end; the engine settles the window by the rule, from the
    # observations it saw
    fv = FairValue(10.0)
    for t, p in OBS:
        fv.on_chainlink(t, p)
    fair = fv.snapshot(END + 3 * S, window(POINT), PTB)
    assert (fair["reason"], fair["fast"], fair["settlement"]) == ("window ended", None, None)
    assert settle(POINT, START, END, obs=list(fv.history)) == (SETTLE, "ok")
    assert winner(SETTLE, PTB) == WINNER

    # the strategy: settles once an observation after the end arrived, at the rule's price
    st = Strategy(slice_usd=1.0)
    st.on_market(market(POINT))
    recs = [r for t, p in OBS for r in st.on_chainlink(t, p)]
    assert [(r["settlement"], r["winner"], r["price_to_beat"], r["price_to_beat_source"]) for r in recs] == \
        [(SETTLE, WINNER, PTB, "venue")]

    # the backtest: the recording's series, the price to beat estimated by the same rule
    w = {"series": "5m", "slug": SLUG, "start_ns": START, "end_ns": END, "rule": POINT, "venue_price": None}
    lab = backtest.label(w, OBS, [])
    assert (lab["price_to_beat"], lab["price_to_beat_source"], lab["settlement"], lab["winner"], lab["status"]) == \
        (PTB, "estimate", SETTLE, WINNER, "ok")

    # calibrate: the outcome of the strategy's record follows the same rule (here from its prices)
    assert calibrate.outcome(recs[0]) == 1
    assert calibrate.outcome({**recs[0], "winner": "DOWN"}) == 1       # the prices decide, not a label
    assert calibrate.join([{"ts_ns": END - S, "series": "5m", "window": SLUG, "fair": {"fast": 0.7}}], recs) == \
        {"5m": [(0.7, 1)]}


def test_twap_settlement_agrees_too():
    rule = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=3)
    # the price to beat by the TWAP rule: mean over (start − 3 s, start] = (1 + 2 + 3) / 3 = 2.0
    obs = [(START - 3 * S, 0.5), (START - 2 * S, 1.0), (START - S, 2.0), (START, 3.0), (START + S, 2.5),
           (END - 3 * S, 10.0), (END - 2 * S, 20.0), (END - S, 30.0), (END, 40.0), (END + S, 99.0)]
    expect = (20.0 + 30.0 + 40.0) / 3                       # (end − 3 s, end]
    fv = FairValue(10.0)
    for t, p in obs:
        fv.on_chainlink(t, p)
    assert settle(rule, START, END, obs=list(fv.history)) == (expect, "ok")
    assert price_to_beat(rule, START, obs=list(fv.history)) == (2.0, "ok")
    st = Strategy(slice_usd=1.0)
    st.on_market(market(rule, ptb=None))
    [rec] = [r for t, p in obs for r in st.on_chainlink(t, p)]
    assert (rec["settlement"], rec["price_to_beat"], rec["price_to_beat_source"], rec["winner"]) == \
        (expect, 2.0, "estimate", "UP")
    w = {"series": "5m", "slug": SLUG, "start_ns": START, "end_ns": END, "rule": rule, "venue_price": None}
    lab = backtest.label(w, obs, [])
    assert (lab["price_to_beat"], lab["settlement"], lab["winner"]) == (2.0, expect, "UP")
    assert settlement_price(obs, END, True, 3) == (expect, "ok")


def test_candle_settlement_agrees_too():
    rule = Rule("binance", "BTCUSDT", "candle", candle_tf="1m")      # an hourly series shortened to 60 s
    kline = {"ts_event_ns": END + S // 10, "open_time_ns": START, "tf_sec": 60, "open": 100.0,
             "close": 99.5, "closed": 1}
    st = Strategy(slice_usd=1.0)
    st.on_market(market(rule, ptb=None))
    assert st.on_kline(dict(kline, closed=0, close=100.5, ts_event_ns=START + S)) == []   # open: pending
    [rec] = st.on_kline(kline)
    assert (rec["price_to_beat"], rec["price_to_beat_source"], rec["settlement"], rec["winner"]) == \
        (100.0, "estimate", 99.5, "DOWN")
    w = {"series": "1h", "slug": SLUG, "start_ns": START, "end_ns": END, "rule": rule, "venue_price": None}
    lab = backtest.label(w, [], [Candle(START, 60, 100.0, 99.5, True)])
    assert (lab["price_to_beat"], lab["settlement"], lab["winner"]) == (100.0, 99.5, "DOWN")
    assert calibrate.outcome(rec) == 0
