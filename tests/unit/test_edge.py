"""Edge and vetoes (actors/decide/edge.py): the fee as the venue charges it (per fill, floored to
5 decimals), the book walk against exact rational arithmetic, the edge in probability and the
return on cost (the module docstring's worked example), the ranking by return on cost, every veto
with its code and its exact reason, and decision selection."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction as F

import pytest

from actors.decide import settlement
from actors.decide.edge import (EdgeParams, arbitrage, best_side, edge_for, evaluate, fee_per_share,
                                fill_fee, walk_with_fee)
from actors.decide.window import Fee, Window
from actors.venues.polymarket.gamma import FeeSchedule, WindowInfo

NS = 1_000_000_000
START_S = 1_763_000_100
END_S = START_S + 900
NOW = (START_S + 300) * NS          # 600 s left


def window(**kw) -> WindowInfo:
    base = dict(slug="btc-updown-15m-1763000100", market_id="1", condition_id="0xc", question="q",
                up_token="u", down_token="d", start_s=START_S, end_s=END_S,
                fee=FeeSchedule(0.07, 1.0, True, 0.0, "feeSchedule"), tick_size=0.01, min_size=5.0,
                resolution_source="", twap_enabled=False, twap_lookback_sec=0, price_to_beat=None,
                final_price=None, active=True, closed=False, accepting_orders=True, neg_risk=False)
    base.update(kw)
    return WindowInfo(**base)


CHAINLINK_RULE = settlement.Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60)
CANDLE_RULE = settlement.Rule("binance", "BTCUSDT", "candle", candle_tf="1h")


def ruled(rule) -> Window:
    return Window(slug="w", start_s=START_S, end_s=END_S, start_ns=START_S * NS, end_ns=END_S * NS,
                  active=True, closed=False, accepting_orders=True, twap_enabled=False,
                  twap_lookback_sec=0, fee=Fee(0.07, 1.0), rule=rule, min_size=5.0)


PARAMS = EdgeParams(slice_usd=10.0, edge_buffer_bps=100.0, stale_threshold_sec=10.0,
                    max_spread_bps=500.0, min_depth_usd=50.0, depth_levels=5,
                    min_time_left_sec=30.0)


def good_books(up_asks=None, down_asks=None):
    return {"UP": {"asks": up_asks or [(0.50, 10.0), (0.52, 100.0)], "bids": [(0.49, 100.0)],
                   "age_ms": 500.0},
            "DOWN": {"asks": down_asks or [(0.51, 200.0)], "bids": [(0.50, 100.0)], "age_ms": 500.0}}


def codes(r):
    return sorted((v["code"], v["side"]) for v in r["vetoes"])


def reasons(r, code):
    return [v["reason"] for v in r["vetoes"] if v["code"] == code]


# ---------------------------------------------------------------- the fee, as the venue charges it

def test_fee_per_share_exact():
    # exactly representable: 0.25 * 0.5 * 0.5 * 8 = 0.5
    assert fee_per_share(0.25, 0.5) * 8.0 == 0.5
    assert fee_per_share(0.25, 0.5, exponent=2.0) == 0.015625        # 0.25 * 0.25**2
    assert fee_per_share(0.07, 0.3) == pytest.approx(0.0147, rel=1e-15, abs=0)
    exact = Decimal("0.07") * Decimal("0.9") * Decimal("0.1") * 250
    assert exact == Decimal("1.575")
    assert fee_per_share(0.07, 0.9) * 250.0 == pytest.approx(float(exact), rel=1e-15, abs=0)
    # symmetric in p and 1 - p, zero at the ends
    assert fee_per_share(0.07, 0.2) == pytest.approx(fee_per_share(0.07, 0.8), rel=1e-15)
    assert fee_per_share(0.07, 0.0) == fee_per_share(0.07, 1.0) == 0.0
    assert fee_per_share(0.0, 0.5) == 0.0


def test_fill_fee_is_floored_to_5_decimals():
    # 7 · 0.07 · 0.51 · 0.49 = 0.122451 USD: charged 0.12245
    assert fill_fee(7.0, 0.07, 0.51) == 0.12245
    # 1 · 0.07 · 0.9 · 0.1 = 0.0063 exactly, though the float product is 0.006299999999999999:
    # a boundary is not floored away
    assert fee_per_share(0.07, 0.9) < 0.0063
    assert fill_fee(1.0, 0.07, 0.9) == 0.0063
    assert fill_fee(250.0, 0.07, 0.08) == 1.288          # the worked example
    # below one unit: nothing
    assert fill_fee(0.2, 0.0001, 0.5) == 0.0              # 0.2 · 0.0001 · 0.25 = 0.000005
    assert fill_fee(0.4, 0.0001, 0.5) == 0.00001          # one unit
    assert fill_fee(100.0, 0.0, 0.5) == 0.0


def test_fee_is_charged_per_fill():
    # two fills of 0.6 shares at 0.5, rate 0.0001: 0.000015 each, floored to 0.00001 each = 0.00002
    # (one fill of 1.2 shares would have paid 0.00003)
    w = walk_with_fee([(0.5, 0.6), (0.5, 0.6)], 10.0, 0.0001)
    assert w["levels_used"] == 2 and w["fee_usd"] == pytest.approx(0.00002, abs=1e-18)
    assert fill_fee(1.2, 0.0001, 0.5) == 0.00003
    # a whole level taken at 0.51: the floored fee of that fill
    assert walk_with_fee([(0.51, 7.0)], 100.0, 0.07)["fee_usd"] == 0.12245


# ---------------------------------------------------------------- arithmetic (exact, by hand)

def test_worked_example():
    """Fair 0.10 against an ask of 0.08 at rate 0.07 (the module docstring, README)."""
    e = edge_for("DOWN", 0.90, [(0.08, 1000.0)], 20.0, 0.07)
    assert e["fair"] == pytest.approx(0.10, abs=1e-15)
    assert e["shares"] == pytest.approx(250.0, rel=1e-15)
    assert e["avg_price"] == pytest.approx(0.08, rel=1e-15)
    assert e["fee_usd"] == 1.288
    assert e["fee_per_share"] == pytest.approx(0.005152, rel=1e-12)
    assert e["cost_per_share"] == pytest.approx(0.085152, rel=1e-12)
    assert e["edge"] == pytest.approx(0.014848, rel=1e-9)
    assert e["edge_bps"] == pytest.approx(148.48, rel=1e-9)              # 1.48 probability points
    assert e["return_on_cost"] == pytest.approx(0.014848 / 0.085152, rel=1e-9)
    assert round(e["return_on_cost"] * 100, 1) == 17.4
    assert e["ev_usd"] == pytest.approx(3.712, rel=1e-9)
    # what the old definition, (fair − cost)/cost·1e4, read: 1,743.7 "bps"
    assert round(e["return_on_cost"] * 1e4, 1) == 1743.7


def test_walk_two_levels_exact():
    # 10 USD: level 1 whole (10 sh · 0.50 = 5 USD), then 5/0.52 = 125/13 sh at 0.52.
    # shares = 10 + 125/13 = 255/13; avg = 10 / (255/13) = 26/51
    # fee = 0.07·0.5·0.5·10 + 0.07·0.52·0.48·125/13 = 0.175 + 0.168 = 0.343 (both on the 5th decimal)
    # cost = (10 + 0.343) / (255/13) = 134.459/255; UP edge at fair 0.60 = 18.541/255
    e = edge_for("UP", 0.60, [(0.50, 10), (0.52, 100)], 10.0, 0.07)
    shares = F(255, 13)
    assert e["shares"] == pytest.approx(float(shares), rel=1e-15)
    assert e["avg_price"] == pytest.approx(26 / 51, rel=1e-15)
    assert e["fee_usd"] == pytest.approx(0.343, rel=1e-14)
    cost = (F(10) + F("0.343")) / shares
    assert e["cost_per_share"] == pytest.approx(float(cost), rel=1e-14)
    assert e["fee_per_share"] == pytest.approx(float(F("0.343") / shares), rel=1e-14)
    edge = F("0.6") - cost
    assert edge == F("18.541") / 255
    assert e["edge"] == pytest.approx(float(edge), rel=1e-12)
    assert e["edge_bps"] == pytest.approx(float(edge * 10_000), rel=1e-12)     # ≈ 727.10
    assert e["return_on_cost"] == pytest.approx(18.541 / 134.459, rel=1e-12)
    assert e["ev_usd"] == pytest.approx(float(edge * shares), rel=1e-12)
    assert e["levels_used"] == 2 and e["filled"] is True
    assert e["spent_usd"] == pytest.approx(10.0, abs=1e-12)


def test_down_side_uses_one_minus_fair_and_exact_single_level():
    # 10 USD at 0.40: 25 shares, fee 0.07·0.4·0.6·25 = 0.42, cost = 10.42/25 = 0.4168
    e = edge_for("DOWN", 0.55, [(0.40, 1000)], 10.0, 0.07)
    assert e["fair"] == pytest.approx(0.45, abs=1e-15)
    assert e["shares"] == pytest.approx(25.0, rel=1e-15)
    assert e["fee_usd"] == pytest.approx(0.42, rel=1e-14)
    assert e["cost_per_share"] == pytest.approx(0.4168, rel=1e-14)
    assert e["edge"] == pytest.approx(0.45 - 0.4168, rel=1e-12)
    assert e["edge_bps"] == pytest.approx((0.45 - 0.4168) * 1e4, rel=1e-12)
    assert e["return_on_cost"] == pytest.approx((0.45 - 0.4168) / 0.4168, rel=1e-12)
    assert e["levels_used"] == 1


def test_fee_exponent_applied_per_level():
    # exponent 2: fee/share = 0.25·(0.5·0.5)² = 0.015625 at 0.50, 20 shares: 0.3125
    e = edge_for("UP", 0.5, [(0.50, 100)], 10.0, 0.25, fee_exponent=2.0)
    assert e["fee_usd"] == 0.3125


def test_unsorted_asks_are_walked_best_first():
    a = edge_for("UP", 0.6, [(0.52, 100), (0.50, 10)], 10.0, 0.07)
    b = edge_for("UP", 0.6, [(0.50, 10), (0.52, 100)], 10.0, 0.07)
    assert a["shares"] == b["shares"] and a["edge_bps"] == b["edge_bps"]


def test_partial_fill_reported_not_filled():
    e = edge_for("UP", 0.6, [(0.50, 4)], 10.0, 0.07)
    assert e["filled"] is False
    assert e["shares"] == 4 and e["spent_usd"] == pytest.approx(2.0)
    assert e["edge_bps"] is not None


def test_no_fair_and_no_asks_give_null_with_reason():
    e = edge_for("UP", None, [(0.5, 100)], 10.0, 0.07)
    assert e["edge_bps"] is None and e["return_on_cost"] is None and e["reason"] == "fair value unknown"
    e = edge_for("UP", 0.5, [], 10.0, 0.07)
    assert e["edge"] is None and e["ev_usd"] is None and e["reason"] == "no asks to buy"
    with pytest.raises(ValueError):
        edge_for("SIDEWAYS", 0.5, [], 10.0, 0.07)


# ---------------------------------------------------------------- ranking and decisions

def _cand(edge_bps, roc, vetoes=()):
    return {"edge_bps": edge_bps, "return_on_cost": roc, "vetoes": list(vetoes)}


def test_ranking_is_by_return_on_cost_not_edge():
    # UP: the larger edge (3.0 points) on an expensive share (5 % return); DOWN: 1.5 points on a
    # cheap one (17 %): a dollar buys more expected value on DOWN
    sides = {"UP": _cand(300.0, 0.05), "DOWN": _cand(150.0, 0.17)}
    assert best_side(sides, 25.0) == "DOWN"
    # under the buffer, or vetoed, a side is not a candidate however good its return
    assert best_side(sides, 200.0) == "UP"
    assert best_side({"UP": _cand(300.0, 0.05), "DOWN": _cand(150.0, 0.17, [{"code": "x"}])}, 25.0) == "UP"
    assert best_side({"UP": _cand(25.0, 0.5), "DOWN": _cand(None, None)}, 25.0) is None
    assert best_side({"UP": _cand(30.0, 0.1), "DOWN": _cand(30.0, 0.1)}, 25.0) == "UP"   # tie: UP


def test_decision_buy_up_when_edge_over_buffer():
    r = evaluate(NOW, window(), 0.60, good_books(), "OK", PARAMS)
    assert r["vetoes"] == []
    assert r["decision"] == "BUY_UP"
    assert r["sides"]["UP"]["edge_bps"] == pytest.approx(18.541 / 255 * 1e4, rel=1e-12)
    assert r["sides"]["DOWN"]["edge_bps"] < 0
    assert r["time_left_s"] == pytest.approx(600.0)
    assert r["reason"] == "UP edge 727.1 bps > 100 bps, return on cost 13.79 %"
    assert r["arbitrage"]["ask_sum"] == pytest.approx(1.01) and r["arbitrage"]["flagged"] is False


def test_decision_on_the_worked_example():
    books = {"UP": {"asks": [(0.93, 1000.0)], "bids": [(0.92, 100.0)], "age_ms": 100.0},
             "DOWN": {"asks": [(0.08, 1000.0)], "bids": [(0.079, 1000.0)], "age_ms": 100.0}}
    p = EdgeParams(**{**PARAMS.__dict__, "slice_usd": 20.0, "edge_buffer_bps": 25.0, "min_price": 0.03})
    r = evaluate(NOW, window(), 0.90, books, "OK", p)
    assert r["vetoes"] == [] and r["decision"] == "BUY_DOWN"
    assert r["reason"] == "DOWN edge 148.5 bps > 25 bps, return on cost 17.44 %"
    assert r["sides"]["DOWN"]["ev_usd"] == pytest.approx(3.712, rel=1e-9)


def test_decision_none_under_buffer():
    # UP fair 0.53 against cost 0.52729: edge ≈ 27.1 bps < 100
    r = evaluate(NOW, window(), 0.53, good_books(), "OK", PARAMS)
    assert r["vetoes"] == [] and r["decision"] == "NONE"
    assert 0 < r["sides"]["UP"]["edge_bps"] < 100
    assert r["reason"] == "UP edge 27.1 bps <= buffer; DOWN edge -574.9 bps <= buffer"


def test_vetoed_side_is_skipped_for_the_other():
    books = good_books()
    books["DOWN"]["age_ms"] = 60_000.0
    r = evaluate(NOW, window(), 0.60, books, "OK", PARAMS)
    assert [v["code"] for v in r["vetoes"]] == ["stale"]
    assert r["decision"] == "BUY_UP"


# ---------------------------------------------------------------- sanity vetoes

def test_two_positive_edges_are_an_arbitrage():
    # UP fair 0.52 vs ask 0.45, DOWN fair 0.48 vs ask 0.40: both "edges" are positive because the
    # pair costs less than the 1 USD it pays; no fee here, so cost sum = ask sum = 0.85
    books = good_books(up_asks=[(0.45, 1000)], down_asks=[(0.40, 1000)])
    books["UP"]["bids"] = [(0.44, 10)]
    books["DOWN"]["bids"] = [(0.39, 10)]
    r = evaluate(NOW, window(fee=FeeSchedule(0.0, 1.0, True, 0.0, "feeSchedule")), 0.52, books, "OK", PARAMS)
    assert r["sides"]["UP"]["edge_bps"] > 100 and r["sides"]["DOWN"]["edge_bps"] > 100
    assert codes(r) == [("arbitrage", None)] and r["decision"] == "NONE"
    assert r["arbitrage"] == {"ask_sum": pytest.approx(0.85), "cost_sum": pytest.approx(0.85), "flagged": True}
    assert reasons(r, "arbitrage") == ["all-in cost sum 0.85000 < 1: buying both sides locks in 0.15000 "
                                       "per pair, a free arbitrage the strategy should handle "
                                       "(or books out of date)"]


def test_ask_sum_under_one_with_costs_over_it_is_inconsistent_books():
    # asks 0.50 + 0.495 = 0.995 < 1, but all in (fee 0.07) 0.5175 + 0.51249825 > 1
    books = good_books(up_asks=[(0.50, 1000)], down_asks=[(0.495, 1000)])
    books["DOWN"]["bids"] = [(0.49, 100)]
    r = evaluate(NOW, window(), 0.5, books, "OK", PARAMS)
    assert r["arbitrage"]["flagged"] and r["arbitrage"]["cost_sum"] == pytest.approx(1.02999825, rel=1e-12)
    assert reasons(r, "arbitrage") == ["ask sum 0.9950 < 1 (UP 0.5 + DOWN 0.495): the books are "
                                       "inconsistent (one is stale or wrong)"]
    # one side without asks: nothing to compare
    assert arbitrage({"UP": {"best_ask": 0.4, "cost_per_share": 0.41},
                      "DOWN": {"best_ask": None, "cost_per_share": None}}) == (
        {"ask_sum": None, "cost_sum": None, "flagged": False}, None)


def test_veto_min_price():
    books = {"UP": {"asks": [(0.99, 1000)], "bids": [(0.98, 100)], "age_ms": 1.0},
             "DOWN": {"asks": [(0.02, 100_000)], "bids": [(0.01, 100)], "age_ms": 1.0}}
    p = EdgeParams(**{**PARAMS.__dict__, "min_price": 0.03, "max_spread_bps": 10_000.0})
    r = evaluate(NOW, window(), 0.96, books, "OK", p)       # DOWN fair 0.04: 2 points over the ask
    assert r["sides"]["DOWN"]["edge_bps"] > 100
    assert codes(r) == [("min_price", "DOWN")] and r["decision"] == "NONE"
    assert reasons(r, "min_price") == ["average price 0.0200 < 0.03 minimum"]


def test_veto_min_size():
    # 10 USD buys 20 shares of UP at 0.50 and 19.61 of DOWN at 0.51; orderMinSize 19.7
    books = good_books(up_asks=[(0.50, 1000)])
    r = evaluate(NOW, window(min_size=19.7), 0.6, books, "OK", PARAMS)
    assert codes(r) == [("min_size", "DOWN")] and r["decision"] == "BUY_UP"
    assert reasons(r, "min_size") == ["19.61 shares < the market's minimum order of 19.7"]
    r = evaluate(NOW, window(min_size=25.0), 0.6, books, "OK", PARAMS)
    assert codes(r) == [("min_size", "DOWN"), ("min_size", "UP")] and r["decision"] == "NONE"
    assert codes(evaluate(NOW, window(min_size=19.6), 0.6, books, "OK", PARAMS)) == []


# ---------------------------------------------------------------- input ages

def test_veto_stale_book_with_its_age_and_unknown_age():
    b = good_books()
    b["UP"]["age_ms"] = 10_001.0
    b["DOWN"]["age_ms"] = None
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("stale", "DOWN"), ("stale", "UP")]
    assert reasons(r, "stale") == ["book 10.001 s old > 10 s", "no book for this window"]
    b["DOWN"]["reason"] = "invalid since a gap: waiting for its next update"
    assert reasons(evaluate(NOW, window(), 0.6, b, "OK", PARAMS), "stale")[1] == \
        "invalid since a gap: waiting for its next update"
    assert r["decision"] == "NONE"
    b["UP"]["age_ms"] = 10_000.0           # at the threshold: not stale
    b["DOWN"]["age_ms"] = 0.0
    assert codes(evaluate(NOW, window(), 0.6, b, "OK", PARAMS)) == []


AGED = EdgeParams(**{**PARAMS.__dict__, "binance_max_age_ms": 1000.0, "chainlink_max_age_sec": 5.0})


def inputs(binance_ms=10.0, chainlink_ms=500.0, candle_ms=None):
    return {"binance": {"price": 1.0, "age_ms": binance_ms, "max_age_ms": 1000.0},
            "chainlink": {"price": 1.0, "age_ms": chainlink_ms},
            "candle": None if candle_ms is None else {"venue": "spot", "price": 1.0, "age_ms": candle_ms}}


def test_veto_binance_stale_with_its_age():
    r = evaluate(NOW, ruled(CHAINLINK_RULE), 0.6, good_books(), "OK", AGED, inputs(binance_ms=1250.0))
    assert codes(r) == [("binance_stale", None)]
    assert reasons(r, "binance_stale") == ["binance microprice 1250 ms old > 1000 ms"]
    assert codes(evaluate(NOW, ruled(CHAINLINK_RULE), 0.6, good_books(), "OK", AGED,
                          inputs(binance_ms=1000.0))) == []


def test_veto_chainlink_stale_only_for_a_chainlink_window():
    r = evaluate(NOW, ruled(CHAINLINK_RULE), 0.6, good_books(), "OK", AGED, inputs(chainlink_ms=7000.0))
    assert codes(r) == [("chainlink_stale", None)]
    assert reasons(r, "chainlink_stale") == ["chainlink 7.0 s old > 5 s"]
    # a window settling on the Binance candle does not use Chainlink
    r = evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED,
                 inputs(chainlink_ms=7000.0, candle_ms=20.0))
    assert codes(r) == []
    # ...but its own settlement source's price
    r = evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED, inputs(candle_ms=2500.0))
    assert codes(r) == [("candle_stale", None)]
    assert reasons(r, "candle_stale") == ["spot price 2500 ms old > 1000 ms"]


def test_a_missing_input_is_vetoed_not_skipped():
    """An input with no value has no age to compare: its own veto, saying what is missing."""
    none = {"binance": {"venue": "futures", "price": None, "age_ms": None, "max_age_ms": 1000.0},
            "chainlink": {"price": None, "obs_ns": None, "age_ms": None},
            "candle": {"venue": "spot", "price": None, "age_ms": None}}
    r = evaluate(NOW, ruled(CHAINLINK_RULE), 0.6, good_books(), "OK", AGED, none)
    assert codes(r) == [("binance_missing", None), ("chainlink_missing", None)]
    assert reasons(r, "binance_missing") == ["no binance microprice: no quote from futures yet"]
    assert reasons(r, "chainlink_missing") == ["no chainlink value yet: the window settles on chainlink"]
    assert r["decision"] == "NONE" and r["reason"] == "vetoed: binance_missing, chainlink_missing"
    r = evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED, none)
    assert codes(r) == [("binance_missing", None), ("candle_missing", None)]
    assert reasons(r, "candle_missing") == ["no spot price (no quote or trade yet): the window settles on"
                                            " its candles"]
    # a Binance-candle window without a candle input at all; Chainlink missing does not matter to it
    r = evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED, inputs(chainlink_ms=None))
    assert codes(r) == [("candle_missing", None)]
    assert reasons(r, "candle_missing") == ["no binance price (no quote or trade yet): the window settles"
                                            " on its candles"]
    # without inputs (a caller that does not check them) nothing is vetoed for them
    assert codes(evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED)) == []


def test_a_window_settling_on_a_stream_the_collector_does_not_read_is_vetoed():
    usdc = settlement.Rule("binance", "BTCUSDC", "candle", candle_tf="1h")
    ins = inputs(candle_ms=20.0)
    ins["candle"]["stream"], ins["chainlink"]["stream"] = "BTCUSDT", "btc/usd"
    r = evaluate(NOW, ruled(usdc), 0.6, good_books(), "OK", AGED, ins)
    assert codes(r) == [("settlement_source", None)]
    assert reasons(r, "settlement_source") == ["settles on BTCUSDC candles; the collector reads BTCUSDT"]
    assert r["decision"] == "NONE" and r["reason"] == "vetoed: settlement_source"
    eth = settlement.Rule("chainlink", "eth/usd", "point")
    r = evaluate(NOW, ruled(eth), 0.6, good_books(), "OK", AGED, ins)
    assert reasons(r, "settlement_source") == ["settles on chainlink eth/usd; the collector reads btc/usd"]
    # the streams it reads: no veto
    assert codes(evaluate(NOW, ruled(CANDLE_RULE), 0.6, good_books(), "OK", AGED, ins)) == []
    assert codes(evaluate(NOW, ruled(CHAINLINK_RULE), 0.6, good_books(), "OK", AGED, ins)) == []


# ---------------------------------------------------------------- every other veto

def test_veto_spread():
    b = good_books()
    b["UP"]["bids"] = [(0.40, 100)]   # (0.50 − 0.40)/0.45·1e4 = 2222 bps
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("spread", "UP")]
    assert r["sides"]["UP"]["spread_bps"] == pytest.approx(0.10 / 0.45 * 1e4, rel=1e-12)
    assert r["decision"] == "NONE"


def test_veto_crossed_no_bids_no_asks():
    b = good_books()
    b["UP"]["bids"] = [(0.50, 10)]
    b["DOWN"]["bids"] = []
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("crossed", "UP"), ("no_bids", "DOWN")]
    b = good_books()
    b["UP"]["asks"] = []
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("no_asks", "UP")]
    assert r["sides"]["UP"]["edge_bps"] is None


def test_veto_depth():
    # top-5 ask notional 0.50·10 + 0.52·50 = 31 USD < 50; the 10 USD slice still fills
    b = good_books(up_asks=[(0.50, 10), (0.52, 50)])
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("depth", "UP")]
    assert r["sides"]["UP"]["depth_usd"] == pytest.approx(31.0)
    # depth counts only the top N levels
    p1 = EdgeParams(**{**PARAMS.__dict__, "depth_levels": 1, "min_depth_usd": 5.01})
    r = evaluate(NOW, window(), 0.6, good_books(), "OK", p1)
    assert codes(r) == [("depth", "UP")]


def test_veto_partial_fill():
    p = EdgeParams(**{**PARAMS.__dict__, "min_depth_usd": 0.0})
    b = good_books(up_asks=[(0.50, 4), (0.52, 5)])    # 2 + 2.6 = 4.6 USD < 10
    r = evaluate(NOW, window(min_size=0.0), 0.6, b, "OK", p)
    assert codes(r) == [("partial_fill", "UP")]
    assert "insufficient depth" in r["vetoes"][0]["reason"]


@pytest.mark.parametrize("mode", ["DEGRADED", "BAD", None])
def test_veto_quality(mode):
    r = evaluate(NOW, window(), 0.6, good_books(), mode, PARAMS)
    assert codes(r) == [("quality", None)] and r["decision"] == "NONE"


def test_veto_quality_names_the_decisions_own_problems():
    q = {"mode": "DEGRADED", "reasons": ["chainlink: stale 7.0s", "futures: gap 3s ago"]}
    r = evaluate(NOW, window(), 0.6, good_books(), q, PARAMS)
    assert reasons(r, "quality") == ["quality DEGRADED: chainlink: stale 7.0s; futures: gap 3s ago"]
    assert codes(evaluate(NOW, window(), 0.6, good_books(), {"mode": "OK", "reasons": []}, PARAMS)) == []


def test_veto_time_left():
    now = (END_S - 29) * NS
    r = evaluate(now, window(), 0.6, good_books(), "OK", PARAMS)
    assert codes(r) == [("time_left", None)] and r["decision"] == "NONE"
    now = (END_S - 30) * NS          # exactly the minimum: allowed
    assert codes(evaluate(now, window(), 0.6, good_books(), "OK", PARAMS)) == []


def test_veto_window_not_started_and_ended():
    r = evaluate((START_S - 1) * NS, window(), 0.6, good_books(), "OK", PARAMS)
    assert codes(r) == [("window_not_started", None)]
    r = evaluate(END_S * NS, window(), 0.6, good_books(), "OK", PARAMS)
    assert codes(r) == [("window_ended", None)]


@pytest.mark.parametrize("kw", [{"active": False}, {"closed": True}, {"accepting_orders": False}])
def test_veto_window_inactive(kw):
    r = evaluate(NOW, window(**kw), 0.6, good_books(), "OK", PARAMS)
    assert codes(r) == [("window_inactive", None)] and r["decision"] == "NONE"


def test_veto_no_window():
    r = evaluate(NOW, None, 0.6, good_books(), "OK", PARAMS)
    assert codes(r) == [("no_window", None)] and r["window"] is None


@pytest.mark.parametrize("fair", [None, float("nan"), 1.2])
def test_veto_no_fair(fair):
    r = evaluate(NOW, window(), fair, good_books(), "OK", PARAMS)
    assert codes(r) == [("no_fair", None)] and r["decision"] == "NONE"
    assert r["sides"]["UP"]["edge_bps"] is None


def test_every_veto_has_a_reason_and_result_serializes():
    import orjson
    b = good_books()
    b["UP"]["age_ms"] = None
    r = evaluate((START_S - 1) * NS, window(active=False), None, b, "BAD", PARAMS)
    assert {v["code"] for v in r["vetoes"]} == {"window_not_started", "window_inactive",
                                                "quality", "no_fair", "stale"}
    assert all(isinstance(v["reason"], str) and v["reason"] for v in r["vetoes"])
    orjson.loads(orjson.dumps(r))


def test_side_fields_are_the_documented_ones():
    from typing import get_type_hints
    from actors.decide.docs import SideDoc
    r = evaluate(NOW, window(), 0.6, good_books(), "OK", PARAMS)
    for side in ("UP", "DOWN"):
        assert set(get_type_hints(SideDoc)) <= set(r["sides"][side])
