"""Backtest scoring: paper fills at the walked asks, settlement on the recorded Chainlink prices."""
from __future__ import annotations

import pytest

from actors.tools.backtest import score, settle_price

S = 1_000_000_000
W0 = 1_800_000_000 * S            # a window start (60 s windows)


def _edge(ts_ns, side, spent, shares, fee, edge_bps, action="SLICE"):
    sides = {"UP": {"edge_bps": None}, "DOWN": {"edge_bps": None}}
    sides[side] = {"edge_bps": edge_bps, "spent_usd": spent, "shares": shares, "fee_usd": fee,
                   "avg_price": spent / shares}
    return {"ts_ns": ts_ns, "fair": {"twap": None},
            "edge": {"decision": f"BUY_{side}", "sides": sides,
                     "window": {"slug": "btc-updown-5m-1800000000", "start_ns": W0, "end_ns": W0 + 60 * S}},
            "accumulate": {"action": action, "side": side}}


def test_pnl_of_a_window_that_settles_up():
    series = [(W0, 100.0), (W0 + 30 * S, 99.0), (W0 + 60 * S, 100.5), (W0 + 61 * S, 90.0)]
    edges = [_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0),
             _edge(W0 + 20 * S, "DOWN", 10.0, 25.0, 0.3, 120.0),
             _edge(W0 + 21 * S, "UP", 10.0, 20.0, 0.35, 80.0, action="HOLD")]
    rep = score(edges, series, 60)
    w = rep["windows"]["btc-updown-5m-1800000000"]
    assert w["price_to_beat"] == 100.0 and w["settle_price"] == 100.5 and w["outcome"] == "UP"
    assert w["cost_usd"] == pytest.approx(20.65)
    assert w["pnl_usd"] == pytest.approx(20.0 - 20.65)          # the UP slice pays 20 shares x $1
    assert rep["slices"] == 2 and rep["ticks"] == 3
    assert rep["decisions"] == {"BUY_UP": 2, "BUY_DOWN": 1}
    assert rep["edge_bps"]["max"] == 250.0 and rep["edge_bps"]["p50"] == 120.0


def test_a_window_past_the_recording_is_unsettled():
    series = [(W0, 100.0), (W0 + 30 * S, 99.0)]
    rep = score([_edge(W0 + 10 * S, "UP", 10.0, 20.0, 0.35, 250.0)], series, 60)
    w = rep["windows"]["btc-updown-5m-1800000000"]
    assert w["outcome"] is None and w["pnl_usd"] is None and rep["pnl_usd"] == 0.0


def test_twap_settlement_averages_the_lookback():
    series = [(W0 + 58 * S, 10.0), (W0 + 59 * S, 20.0), (W0 + 60 * S, 30.0), (W0 + 61 * S, 99.0)]
    assert settle_price(series, W0 + 60 * S, 2) == 25.0           # (59 s, 60 s]
    assert settle_price(series, W0 + 60 * S, None) == 30.0
