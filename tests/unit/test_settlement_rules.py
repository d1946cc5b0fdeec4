"""actors.decide.settlement: every rule's price to beat and settlement, exactly, and the rule of a
window from its Gamma metadata (real captures where there are some)."""
from __future__ import annotations

import numpy as np
import orjson
import pytest

from actors.decide.settlement import (Candle, Rule, candle_from_kline, price_to_beat, rule_for, settle,
                                      settlement_price, winner)
from actors.venues.binance.parse import parse_frame as binance_frame
from actors.venues.polymarket.gamma import parse_market
from ipc.schema import DTYPES
from tests.support.fixtures import BINANCE, POLYMARKET, need

S = 1_000_000_000
T = 1_800_000_000 * S            # a window start (or end): a whole second
END = T + 300 * S

POINT = Rule("chainlink", "btc/usd", "point")
TWAP60 = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60)
CANDLE_1H = Rule("binance", "BTCUSDT", "candle", candle_tf="1h")
CLOSE_1M = Rule("binance", "BTCUSDT", "candle_close", candle_tf="1m")


# ---------------------------------------------------------------------------------------------
# point
# ---------------------------------------------------------------------------------------------

def test_point_exact_observation_at_t():
    obs = [(T - 2 * S, 100.0), (T, 101.0), (T + S, 102.0)]
    assert price_to_beat(POINT, T, obs=obs) == (101.0, "ok")
    assert price_to_beat(POINT, T, obs=obs[:2]) == (101.0, "ok")      # the one AT t is final at once


def test_point_without_observation_at_t_takes_the_last_before():
    obs = [(T - 2 * S, 100.0), (T - S // 2, 100.5), (T + S // 2, 99.0), (T + 2 * S, 98.0)]
    assert price_to_beat(POINT, T, obs=obs) == (100.5, "ok")         # not the first one after t (99.0)


def test_point_pending_until_an_observation_at_or_after_t():
    obs = [(T - 2 * S, 100.0), (T - S, 100.5)]
    assert price_to_beat(POINT, T, obs=obs) == (None, "pending")
    assert price_to_beat(POINT, T, obs=()) == (None, "pending")
    assert price_to_beat(POINT, T, obs=obs + [(T + 3 * S, 7.0)]) == (100.5, "ok")


def test_point_incomplete_when_history_starts_after_t():
    assert price_to_beat(POINT, T, obs=[(T + S, 102.0), (T + 2 * S, 103.0)]) == (None, "incomplete")


def test_point_behind_a_hole_is_incomplete_not_a_stale_guess():
    # the observation of t and the ones before it are missing: the last one we have is from t − 2 s
    # (two missing seconds: still the price in force), or from t − 3 s (a hole: incomplete)
    assert price_to_beat(POINT, T, obs=[(T - 2 * S, 100.0), (T + S, 101.0)]) == (100.0, "ok")
    assert price_to_beat(POINT, T, obs=[(T - 3 * S, 100.0), (T + S, 101.0)]) == (None, "incomplete")
    assert price_to_beat(POINT, T, obs=[(T - 5 * S, 100.0), (T + S, 101.0)]) == (None, "incomplete")


def test_point_settlement_is_the_same_rule_at_the_end():
    obs = [(T, 100.0), (END - S, 100.7), (END + S // 2, 99.0)]
    assert settle(POINT, T, END, obs=obs) == (100.7, "ok")
    assert settle(POINT, T, END, obs=obs[:2]) == (None, "pending")
    assert settle(POINT, T, END, obs=[(T, 100.0), (END, 100.9)]) == (100.9, "ok")
    ptb, _ = price_to_beat(POINT, T, obs=obs)
    assert ptb == 100.0 and winner(100.7, ptb) == "UP" and winner(100.0, ptb) == "UP"   # tie: Up


# ---------------------------------------------------------------------------------------------
# twap
# ---------------------------------------------------------------------------------------------

def per_second(t0_ns: int, first: int, last: int, base: float = 1000.0) -> list[tuple[int, float]]:
    """Observations every second at t0 + i s, i in [first, last], price base + i."""
    return [(t0_ns + i * S, base + i) for i in range(first, last + 1)]


def test_twap_worked_example_price_to_beat():
    # observations each second at t + i s, price 1000 + i, for i = -65 .. +1. The span (t − 60 s, t]
    # holds i = -59 .. 0: 60 prices 941 .. 1000, mean (941 + 1000) / 2 = 970.5. The observation at
    # t − 60 s (940) is outside the span, the one at t + 1 s (1001) only proves t is complete.
    obs = per_second(T, -65, 1)
    assert price_to_beat(TWAP60, T, obs=obs) == (970.5, "ok")
    assert price_to_beat(POINT, T, obs=obs) == (1000.0, "ok")          # the point rule differs


def test_twap_small_worked_example():
    rule = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=3)
    obs = [(T - 3 * S, 10.0), (T - 2 * S, 20.0), (T - S, 30.0), (T, 40.0), (T + S, 99.0)]
    assert price_to_beat(rule, T, obs=obs) == ((20.0 + 30.0 + 40.0) / 3, "ok") == (30.0, "ok")


def test_twap_pending_before_t_and_at_t_exactly():
    obs = per_second(T, -65, -1)
    assert price_to_beat(TWAP60, T, obs=obs) == (None, "pending")
    assert price_to_beat(TWAP60, T, obs=per_second(T, -65, 0)) == (970.5, "ok")   # the one at t closes it


def test_twap_incomplete_when_history_starts_late():
    # the span's first second is t − 59 s: history from there is complete, from t − 58 s it is not
    assert price_to_beat(TWAP60, T, obs=per_second(T, -59, 1)) == (970.5, "ok")
    assert price_to_beat(TWAP60, T, obs=per_second(T, -58, 1)) == (None, "incomplete")
    # history reaching back, but nothing inside the span: incomplete, never a guess
    assert price_to_beat(TWAP60, T, obs=[(T - 70 * S, 1.0), (T + S, 2.0)]) == (None, "incomplete")


def test_twap_with_holes_in_the_span():
    full = per_second(T, -65, 1)
    # two seconds missing (t − 30 s, t − 29 s): still averaged, over the 58 observations left
    two = [o for o in full if o[0] not in (T - 30 * S, T - 29 * S)]
    vals = [p for t, p in two if T - 60 * S < t <= T]
    assert len(vals) == 58 and price_to_beat(TWAP60, T, obs=two) == (sum(vals) / 58, "ok")
    # three in a row: a hole, incomplete
    three = [o for o in two if o[0] != T - 28 * S]
    assert price_to_beat(TWAP60, T, obs=three) == (None, "incomplete")
    # spread out, three missing in all: too few observations
    spread = [o for o in full if o[0] not in (T - 50 * S, T - 30 * S, T - 10 * S)]
    assert price_to_beat(TWAP60, T, obs=spread) == (None, "incomplete")
    # 54 of the 60 missing (the history reaches back, the span is nearly empty): incomplete
    sparse = [(T - 61 * S, 1.0)] + [(T - i * S, 120.0) for i in range(0, 60, 10)] + [(T + S, 2.0)]
    assert price_to_beat(TWAP60, T, obs=sparse) == (None, "incomplete")
    # the end of the span is missing (t − 2 s .. t): a hole at the end
    tail = [o for o in full if not T - 3 * S < o[0] <= T]
    assert price_to_beat(TWAP60, T, obs=tail) == (None, "incomplete")


def test_twap_settlement_at_the_end():
    obs = per_second(END, -65, 2, base=2000.0)
    assert settle(TWAP60, T, END, obs=obs) == (1970.5, "ok")
    assert settle(TWAP60, T, END, obs=per_second(END, -65, -1, 2000.0)) == (None, "pending")
    assert settle(TWAP60, T, END, obs=per_second(END, -30, 1, 2000.0)) == (None, "incomplete")
    # the settlement and the price to beat are the same function of the observations
    assert settle(TWAP60, T, END, obs=obs) == settlement_price(obs, END, True, 60)
    assert price_to_beat(TWAP60, END, obs=obs) == settle(TWAP60, T, END, obs=obs)


def test_twap_non_integer_prices_are_the_plain_mean():
    obs = [(T - 2 * S, 0.1), (T - S, 0.2), (T, 0.4), (T + S, 9.0)]
    rule = Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=2)
    assert price_to_beat(rule, T, obs=obs) == ((0.2 + 0.4) / 2, "ok")


# ---------------------------------------------------------------------------------------------
# candle (hourly: the window's own candle)
# ---------------------------------------------------------------------------------------------

H0 = 1_800_000_000 // 3600 * 3600 * S            # an hour boundary
H1 = H0 + 3600 * S


def test_candle_open_is_known_from_the_first_update_and_close_once_closed():
    open_ = Candle(H0, 3600, 50000.0, 50100.0, False)
    assert price_to_beat(CANDLE_1H, H0, candles=[open_]) == (50000.0, "ok")
    assert settle(CANDLE_1H, H0, H1, candles=[open_]) == (None, "pending")
    closed = Candle(H0, 3600, 50000.0, 49900.0, True)
    assert settle(CANDLE_1H, H0, H1, candles=[open_, closed]) == (49900.0, "ok")
    assert winner(49900.0, 50000.0) == "DOWN"


def test_candle_tie_is_up():
    c = Candle(H0, 3600, 50000.0, 50000.0, True)
    ptb, _ = price_to_beat(CANDLE_1H, H0, candles=[c])
    st, status = settle(CANDLE_1H, H0, H1, candles=[c])
    assert (ptb, st, status, winner(st, ptb)) == (50000.0, 50000.0, "ok", "UP")


def test_candle_latest_update_wins_and_closed_is_final():
    a = Candle(H0, 3600, 50000.0, 50010.0, False)
    b = Candle(H0, 3600, 50000.0, 50020.0, False)
    c = Candle(H0, 3600, 50000.0, 50030.0, True)
    assert settle(CANDLE_1H, H0, H1, candles=[a, b]) == (None, "pending")
    assert settle(CANDLE_1H, H0, H1, candles=[a, c, b]) == (50030.0, "ok")    # a stale open copy after it
    other_tf = Candle(H0, 60, 1.0, 2.0, True)                                 # a 1m candle at the same open
    next_hour = Candle(H1, 3600, 7.0, 8.0, False)
    assert settle(CANDLE_1H, H0, H1, candles=[next_hour, other_tf, c]) == (50030.0, "ok")   # any order


def test_candle_pending_and_incomplete():
    assert price_to_beat(CANDLE_1H, H0, candles=()) == (None, "pending")
    assert price_to_beat(CANDLE_1H, H0, candles=[Candle(H0 - 3600 * S, 3600, 1.0, 2.0, True)]) == (None, "pending")
    assert price_to_beat(CANDLE_1H, H0, candles=[Candle(H0, 60, 1.0, 2.0, False)]) == (None, "pending")
    # the stream is past the window's candle and never delivered it: missed
    later = Candle(H1, 3600, 7.0, 8.0, False)
    assert price_to_beat(CANDLE_1H, H0, candles=[later]) == (None, "incomplete")
    assert settle(CANDLE_1H, H0, H1, candles=[later]) == (None, "incomplete")


def test_candle_of_a_shortened_window():
    rule = rule_for("1h", "btc", 60, "https://www.binance.com/en/trade/BTC_USDT", False, 0)
    assert rule == Rule("binance", "BTCUSDT", "candle", candle_tf="1m")
    c = Candle(T, 60, 10.0, 11.0, True)
    assert price_to_beat(rule, T, candles=[c]) == (10.0, "ok")
    assert settle(rule, T, T + 60 * S, candles=[c]) == (11.0, "ok")


# ---------------------------------------------------------------------------------------------
# candle_close (daily: 1m closes at the start and at the end)
# ---------------------------------------------------------------------------------------------

def test_candle_close_at_start_and_end():
    d0, d1 = T, T + 86400 * S
    start_open = Candle(d0, 60, 100.0, 100.5, False)
    start_closed = Candle(d0, 60, 100.0, 101.0, True)
    assert price_to_beat(CLOSE_1M, d0, candles=[start_open]) == (None, "pending")   # its close is not final
    assert price_to_beat(CLOSE_1M, d0, candles=[start_open, start_closed]) == (101.0, "ok")
    end_open = Candle(d1, 60, 105.0, 104.0, False)
    cs = [start_closed, end_open]
    assert settle(CLOSE_1M, d0, d1, candles=cs) == (None, "pending")
    end_closed = Candle(d1, 60, 105.0, 103.0, True)
    assert settle(CLOSE_1M, d0, d1, candles=cs + [end_closed]) == (103.0, "ok")
    assert winner(103.0, 101.0) == "UP" and winner(100.0, 101.0) == "DOWN"
    # the candle before the end does not count, nor a 1h candle at the end
    assert settle(CLOSE_1M, d0, d1, candles=[Candle(d1 - 60 * S, 60, 1.0, 2.0, True),
                                              Candle(d1, 3600, 1.0, 2.0, True)]) == (None, "pending")


def test_candle_from_a_real_spot_kline():
    recs = []
    for name in ("spot_kline_1m_open.json", "spot_kline_1m_closed.json"):
        d = binance_frame(need(BINANCE / name).read_bytes(), 1)
        recs.extend(d.recs)
    arr = np.array(recs, dtype=DTYPES["kline"])
    cs = [candle_from_kline(r) for r in arr]
    t0 = 1617566580000 * 1_000_000
    assert cs == [Candle(t0, 60, 57994.6, 58001.03, False), Candle(t0, 60, 57994.6, 57999.99, True)]
    rule = Rule("binance", "BTCUSDT", "candle", candle_tf="1m")
    assert price_to_beat(rule, t0, candles=cs[:1]) == (57994.6, "ok")
    assert settle(rule, t0, t0 + 60 * S, candles=cs[:1]) == (None, "pending")
    assert settle(rule, t0, t0 + 60 * S, candles=cs) == (57999.99, "ok")
    assert price_to_beat(CLOSE_1M, t0, candles=cs) == (57999.99, "ok")


# ---------------------------------------------------------------------------------------------
# rule_for
# ---------------------------------------------------------------------------------------------

def gamma(name: str):
    return parse_market(need(POLYMARKET / name).read_bytes(), True)


def test_rule_for_the_twap_capture():
    w = gamma("gamma_market_btc_updown_5m_twap_2026-08_reduced.json")
    assert (w.resolution_source, w.twap_enabled, w.twap_lookback_sec) == \
        ("https://data.chain.link/streams/btc-usd-twap-60s-streams", True, 60)
    r = rule_for("5m", "btc", w.window_sec, w.resolution_source, w.twap_enabled, w.twap_lookback_sec)
    assert r == Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60, candle_tf=None, assumed=False)


def test_rule_for_the_point_capture():
    w = gamma("gamma_market_btc_updown_5m_2026-03.json")
    assert (w.resolution_source, w.twap_enabled, w.twap_lookback_sec) == \
        ("https://data.chain.link/streams/btc-usd", False, 0)
    r = rule_for("5m", "btc", w.window_sec, w.resolution_source, w.twap_enabled, w.twap_lookback_sec)
    assert r == Rule("chainlink", "btc/usd", "point")


def test_rule_for_chainlink_variants():
    # twapEnabled with no lookback is not a TWAP; the stream follows the asset
    assert rule_for("15m", "eth", 900, "https://data.chain.link/streams/eth-usd", True, 0) == \
        Rule("chainlink", "eth/usd", "point")
    assert rule_for("4h", "sol", 14400, "Chainlink SOL/USD", True, 30) == \
        Rule("chainlink", "sol/usd", "twap", twap_lookback_sec=30)


def test_rule_for_hourly_binance():
    src = "https://www.binance.com/en/trade/BTC_USDT"
    assert rule_for("1h", "btc", 3600, src, False, 0) == Rule("binance", "BTCUSDT", "candle", candle_tf="1h")
    assert rule_for("1h", "btc", 60, src, False, 0) == Rule("binance", "BTCUSDT", "candle", candle_tf="1m")
    assert rule_for("1h", "eth", 3600, "https://www.binance.com/en/trade/ETH_USDT?type=spot", False, 0).stream == "ETHUSDT"
    assert rule_for("1h", "sol", 3600, "https://www.binance.com/", False, 0).stream == "SOLUSDT"   # no pair: the asset's
    assert rule_for("1h", "xrp", 3600, "https://www.binance.com/en/futures/funding_rate", False, 0).stream == "XRPUSDT"
    assert rule_for("1h", "btc", 3600, "Binance BTC/USDT 1H candle", False, 0).stream == "BTCUSDT"
    with pytest.raises(ValueError, match="no kline interval"):
        rule_for("1h", "btc", 20, src, False, 0)


def test_rule_for_daily_binance():
    r = rule_for("1d", "xrp", 86400, "https://www.binance.com/en/trade/XRP_USDT", False, 0)
    assert r == Rule("binance", "XRPUSDT", "candle_close", candle_tf="1m")


@pytest.mark.parametrize("series,twap,lookback,expected", [
    ("5m", False, 0, Rule("chainlink", "btc/usd", "point", assumed=True)),
    ("15m", True, 60, Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60, assumed=True)),
    ("4h", False, 0, Rule("chainlink", "btc/usd", "point", assumed=True)),
    ("1h", False, 0, Rule("binance", "BTCUSDT", "candle", candle_tf="1h", assumed=True)),
    ("1d", False, 0, Rule("binance", "BTCUSDT", "candle_close", candle_tf="1m", assumed=True)),
])
def test_rule_for_without_a_source_is_the_series_default(series, twap, lookback, expected):
    length = {"5m": 300, "15m": 900, "4h": 14400, "1h": 3600, "1d": 86400}[series]
    assert rule_for(series, "btc", length, "", twap, lookback) == expected
    assert rule_for(series, "btc", length, "https://example.com/prices", twap, lookback) == expected


def test_rule_for_bad_arguments():
    with pytest.raises(ValueError, match="unknown up/down series"):
        rule_for("2h", "btc", 7200, "", False, 0)
    with pytest.raises(ValueError, match="asset"):
        rule_for("5m", "", 300, "", False, 0)


# ---------------------------------------------------------------------------------------------
# Rule
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [POINT, TWAP60, CANDLE_1H, CLOSE_1M,
                                  Rule("chainlink", "eth/usd", "point", assumed=True)])
def test_rule_doc_round_trips(rule):
    d = rule.doc()
    assert Rule.from_doc(orjson.loads(orjson.dumps(d))) == rule
    assert set(d) == {"source", "stream", "method", "twap_lookback_sec", "candle_tf", "assumed"}


def test_rule_doc_exact():
    assert TWAP60.doc() == {"source": "chainlink", "stream": "btc/usd", "method": "twap",
                            "twap_lookback_sec": 60, "candle_tf": None, "assumed": False}
    assert CANDLE_1H.doc() == {"source": "binance", "stream": "BTCUSDT", "method": "candle",
                               "twap_lookback_sec": 0, "candle_tf": "1h", "assumed": False}


@pytest.mark.parametrize("bad", [
    {"source": "coinbase", "stream": "x", "method": "point"},
    {"source": "chainlink", "stream": "btc/usd", "method": "candle"},
    {"source": "binance", "stream": "BTCUSDT", "method": "candle"},                       # no candle_tf
    {"source": "binance", "stream": "BTCUSDT", "method": "candle", "candle_tf": "7m"},
    {"source": "chainlink", "stream": "btc/usd", "method": "twap"},                       # no lookback
    {"source": "chainlink", "stream": "btc/usd", "method": "point", "twap_lookback_sec": 60},
    {"source": "chainlink", "stream": "btc/usd", "method": "point", "candle_tf": "1m"},
    {"source": "chainlink", "stream": "", "method": "point"},
    {"source": "chainlink", "stream": "btc/usd", "method": "point", "assumed": "yes"},
    {"source": "chainlink", "stream": "btc/usd", "method": "point", "extra": 1},
    {"source": "chainlink", "stream": "btc/usd"},
    [],
])
def test_rule_from_bad_doc(bad):
    with pytest.raises(ValueError):
        Rule.from_doc(bad)
