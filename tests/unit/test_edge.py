"""Edge and vetoes (actors/decide/edge.py): fee and book-walk arithmetic checked against exact
rational arithmetic (fractions), every veto reached with its code, and decision selection."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction as F

import pytest

from actors.decide.edge import EdgeParams, edge_for, evaluate, fee_per_share, walk_with_fee
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


PARAMS = EdgeParams(slice_usd=10.0, edge_buffer_bps=100.0, stale_threshold_sec=10.0,
                    max_spread_bps=500.0, min_depth_usd=50.0, depth_levels=5,
                    min_time_left_sec=30.0)


def good_books(up_asks=None, down_asks=None):
    return {"UP": {"asks": up_asks or [(0.50, 10.0), (0.52, 100.0)], "bids": [(0.49, 100.0)],
                   "age_s": 0.5},
            "DOWN": {"asks": down_asks or [(0.51, 200.0)], "bids": [(0.50, 100.0)], "age_s": 0.5}}


# ---------------------------------------------------------------- arithmetic (exact, by hand)

def test_walk_two_levels_exact():
    # 10 USD: level 1 whole (10 sh · 0.50 = 5 USD), then 5/0.52 = 125/13 sh at 0.52.
    # shares = 10 + 125/13 = 255/13; avg = 10 / (255/13) = 26/51
    # fee = 0.07·0.5·0.5·10 + 0.07·0.52·0.48·125/13 = 0.175 + 0.168 = 0.343
    # effective = (10 + 0.343) / (255/13) = 134.459/255
    # UP edge at fair 0.60 = (0.6 − eff)/eff·1e4 = (153 − 134.459)/134.459·1e4
    e = edge_for("UP", 0.60, [(0.50, 10), (0.52, 100)], 10.0, 0.07)
    shares = F(255, 13)
    assert e["shares"] == pytest.approx(float(shares), rel=1e-15)
    assert e["avg_price"] == pytest.approx(26 / 51, rel=1e-15)
    assert e["fee_usd"] == pytest.approx(0.343, rel=1e-14)
    eff = (F(10) + F("0.343")) / shares
    assert e["effective_cost"] == pytest.approx(float(eff), rel=1e-14)
    assert e["avg_fee_per_share"] == pytest.approx(float(F("0.343") / shares), rel=1e-14)
    edge = (F("0.6") - eff) / eff * 10_000
    assert e["edge_bps"] == pytest.approx(float(edge), rel=1e-12)
    assert e["edge_bps"] == pytest.approx(18.541 / 134.459 * 1e4, rel=1e-12)   # ≈ 1378.93
    assert e["levels_used"] == 2 and e["filled"] is True
    assert e["spent_usd"] == pytest.approx(10.0, abs=1e-12)


def test_down_side_uses_one_minus_fair_and_exact_single_level():
    # 10 USD at 0.40: 25 shares, fee 0.07·0.4·0.6·25 = 0.42, eff = 10.42/25 = 0.4168
    e = edge_for("DOWN", 0.55, [(0.40, 1000)], 10.0, 0.07)
    assert e["fair"] == pytest.approx(0.45, abs=1e-15)
    assert e["shares"] == pytest.approx(25.0, rel=1e-15)
    assert e["fee_usd"] == pytest.approx(0.42, rel=1e-14)
    assert e["effective_cost"] == pytest.approx(0.4168, rel=1e-14)
    assert e["edge_bps"] == pytest.approx((0.45 - 0.4168) / 0.4168 * 1e4, rel=1e-12)
    assert e["levels_used"] == 1


def test_fee_exponent_applied_per_level():
    # exponent 2: fee/share = 0.25·(0.5·0.5)² = 0.015625 at 0.50
    e = edge_for("UP", 0.5, [(0.50, 100)], 10.0, 0.25, fee_exponent=2.0)
    assert e["fee_usd"] == pytest.approx(20 * 0.015625, rel=1e-15)


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
    assert e["edge_bps"] is None and e["reason"] == "fair value unknown"
    e = edge_for("UP", 0.5, [], 10.0, 0.07)
    assert e["edge_bps"] is None and e["reason"] == "no asks to buy"
    with pytest.raises(ValueError):
        edge_for("SIDEWAYS", 0.5, [], 10.0, 0.07)


# ---------------------------------------------------------------- decisions

def test_decision_buy_up_when_edge_over_buffer():
    r = evaluate(NOW, window(), 0.60, good_books(), "OK", PARAMS)
    assert r["vetoes"] == []
    assert r["decision"] == "BUY_UP"
    assert r["sides"]["UP"]["edge_bps"] == pytest.approx(18.541 / 134.459 * 1e4, rel=1e-12)
    assert r["sides"]["DOWN"]["edge_bps"] < 0
    assert r["time_left_s"] == pytest.approx(600.0)


def test_decision_picks_larger_edge():
    books = good_books(up_asks=[(0.45, 1000)], down_asks=[(0.40, 1000)])
    books["UP"]["bids"] = [(0.44, 10)]
    books["DOWN"]["bids"] = [(0.39, 10)]
    r = evaluate(NOW, window(), 0.52, books, "OK", PARAMS)   # UP fair 0.52, DOWN fair 0.48
    up, down = r["sides"]["UP"]["edge_bps"], r["sides"]["DOWN"]["edge_bps"]
    assert up > 100 and down > 100 and down > up
    assert r["decision"] == "BUY_DOWN"


def test_decision_none_under_buffer():
    # UP fair 0.53 against effective cost 0.52729: edge ≈ 51.5 bps < 100
    r = evaluate(NOW, window(), 0.53, good_books(), "OK", PARAMS)
    assert r["vetoes"] == [] and r["decision"] == "NONE"
    assert 0 < r["sides"]["UP"]["edge_bps"] < 100
    assert "<= buffer" in r["reason"]


def test_vetoed_side_is_skipped_for_the_other():
    books = good_books(up_asks=[(0.45, 1000)], down_asks=[(0.40, 1000)])
    books["UP"]["bids"] = [(0.44, 10)]
    books["DOWN"]["bids"] = [(0.39, 10)]
    books["DOWN"]["age_s"] = 60.0
    r = evaluate(NOW, window(), 0.52, books, "OK", PARAMS)
    assert [v["code"] for v in r["vetoes"]] == ["stale"]
    assert r["decision"] == "BUY_UP"


# ---------------------------------------------------------------- every veto

def codes(r):
    return sorted((v["code"], v["side"]) for v in r["vetoes"])


def test_veto_stale_and_unknown_age():
    b = good_books()
    b["UP"]["age_s"] = 10.001
    b["DOWN"]["age_s"] = None
    r = evaluate(NOW, window(), 0.6, b, "OK", PARAMS)
    assert codes(r) == [("stale", "DOWN"), ("stale", "UP")]
    assert r["decision"] == "NONE"
    b["UP"]["age_s"] = 10.0           # at the threshold: not stale
    b["DOWN"]["age_s"] = 0.0
    assert codes(evaluate(NOW, window(), 0.6, b, "OK", PARAMS)) == []


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
    r = evaluate(NOW, window(), 0.6, b, "OK", p)
    assert codes(r) == [("partial_fill", "UP")]
    assert "insufficient depth" in r["vetoes"][0]["reason"]


@pytest.mark.parametrize("mode", ["DEGRADED", "BAD", None])
def test_veto_quality(mode):
    r = evaluate(NOW, window(), 0.6, good_books(), mode, PARAMS)
    assert codes(r) == [("quality", None)] and r["decision"] == "NONE"


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
    b["UP"]["age_s"] = None
    r = evaluate((START_S - 1) * NS, window(active=False), None, b, "BAD", PARAMS)
    assert {v["code"] for v in r["vetoes"]} == {"window_not_started", "window_inactive",
                                                "quality", "no_fair", "stale"}
    assert all(isinstance(v["reason"], str) and v["reason"] for v in r["vetoes"])
    orjson.loads(orjson.dumps(r))


def test_fee_per_share_exact():
    # exactly representable: 0.25 * 0.5 * 0.5 * 8 = 0.5
    assert fee_per_share(0.25, 0.5) * 8.0 == 0.5
    assert fee_per_share(0.25, 0.5, exponent=2.0) == 0.015625        # 0.25 * 0.25**2
    # the captured rate: 0.07 * 0.5 * 0.5 * 100 = 1.75 (one rounding in the last bit at most)
    assert fee_per_share(0.07, 0.5) * 100.0 == pytest.approx(1.75, rel=1e-15, abs=0)
    # 0.07 * 0.3 * 0.7 = 0.0147 per share; 0.07 * 0.9 * 0.1 * 250 = 1.575
    assert fee_per_share(0.07, 0.3) == pytest.approx(0.0147, rel=1e-15, abs=0)
    exact = Decimal("0.07") * Decimal("0.9") * Decimal("0.1") * 250
    assert exact == Decimal("1.575")
    assert fee_per_share(0.07, 0.9) * 250.0 == pytest.approx(float(exact), rel=1e-15, abs=0)
    # symmetric in p and 1 - p, zero at the ends
    assert fee_per_share(0.07, 0.2) == pytest.approx(fee_per_share(0.07, 0.8), rel=1e-15)
    assert fee_per_share(0.07, 0.0) == fee_per_share(0.07, 1.0) == 0.0
    assert fee_per_share(0.0, 0.5) == 0.0
