"""Volatility (EWMA of 1 s log returns) against a plain-loop reference on the real 2024-08-08 trades.

The reference (tests/support/trades.ref_vol) is written from the definitions in
actors/features/volatility.py: it walks every second explicitly (carrying the price over empty ones) and runs the EWMA recursion one
return at a time, while the engine is fed the same records in uneven chunks (some empty) and
skips runs of empty seconds in closed form.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from actors.features.volatility import YEAR_SEC, Volatility
from tests.support.fixtures import BINANCE, load_hftbacktest
from tests.support.trades import SEC, chunks, make_trades, ref_vol

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SPOT_TRADES = BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log"


def close(a, b):
    return a == pytest.approx(b, rel=1e-9, abs=0)


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
@pytest.mark.parametrize("hf,hs,w", [(30.0, 300.0, 0.5), (5.0, 60.0, 0.8)])
def test_volatility_matches_reference(path, hf, hs, w):
    trades = load_hftbacktest(path, "trade")
    ts_all, p_all = trades["ts_event_ns"].tolist(), trades["price"].tolist()
    vol = Volatility(hf, hs, w, warmup=30)
    checked = warm = 0
    for a, z in chunks(len(trades), 5):
        vol.update(trades[a:z])
        snap = vol.snapshot()
        f, s, b, n = ref_vol(ts_all[:z], p_all[:z], hf, hs, w, 30)
        assert snap["returns"] == n
        if f is None:
            assert snap["sigma_fast"] is None and snap["sigma_blend"] is None
            assert "warming up" in snap["reason"] or snap["reason"] == "no trade yet"
        else:
            warm += 1
            assert close(snap["sigma_fast"], f)
            assert close(snap["sigma_slow"], s)
            assert close(snap["sigma_blend"], b)
            assert close(snap["sigma_fast_ann"], f * math.sqrt(YEAR_SEC))
            assert close(snap["sigma_blend_ann"], b * math.sqrt(YEAR_SEC))
            assert "reason" not in snap
        checked += 1
    assert warm > 20 and checked > warm
    # BTC 1 s volatility on that day: a few bp per √s
    assert 1e-6 < snap["sigma_fast"] < 1e-3


def test_volatility_close_due_carries_the_last_price():
    trades = load_hftbacktest(FUT_TRADES, "trade")
    ts_all, p_all = trades["ts_event_ns"].tolist(), trades["price"].tolist()
    vol = Volatility(30.0, 300.0, 0.5, 30)
    vol.update(trades)
    before = vol.snapshot()["sigma_fast"]
    clock = ts_all[-1] + 45 * SEC + 123
    vol.close_due(clock - 40 * SEC)   # a clock before the newest trade's end changes nothing new
    vol.close_due(clock)
    f, s, b, n = ref_vol(ts_all, p_all, 30.0, 300.0, 0.5, 30, clock_ns=clock)
    snap = vol.snapshot()
    assert snap["returns"] == n
    assert close(snap["sigma_fast"], f) and close(snap["sigma_slow"], s)
    assert snap["sigma_fast"] < before            # 45 quiet seconds decay the fast sigma
    assert snap["sample_end_ns"] == clock // SEC * SEC
    # a trade of a second already closed by the clock is late
    late = trades[-1:].copy()
    vol.update(late)
    assert vol.late == 1 and vol.snapshot()["returns"] == n


def test_volatility_hole_in_the_tape_matches_explicit_carry():
    """A 500 s hole: the engine's closed-form decay equals 500 explicit zero returns."""
    rng = np.random.default_rng(3)
    rows, t, p = [], 1_723_161_600 * SEC - 37 * SEC, 60000.0
    for _ in range(400):
        t += int(rng.integers(50, 900)) * 1_000_000
        p *= math.exp(rng.normal(0, 2e-4))
        rows.append((t, p))
    t += 500 * SEC
    for _ in range(200):
        t += int(rng.integers(50, 900)) * 1_000_000
        p *= math.exp(rng.normal(0, 2e-4))
        rows.append((t, p))
    trades = make_trades(rows)
    vol = Volatility(10.0, 120.0, 0.3, 30)
    for a, z in chunks(len(trades), 9, top=40):
        vol.update(trades[a:z])
    f, s, b, n = ref_vol([r[0] for r in rows], [r[1] for r in rows], 10.0, 120.0, 0.3, 30)
    snap = vol.snapshot()
    assert snap["returns"] == n and n > 500
    assert close(snap["sigma_fast"], f) and close(snap["sigma_slow"], s)
    assert close(snap["sigma_blend"], b)


def test_volatility_warm_up_reset_and_empty_input():
    vol = Volatility(30.0, 300.0, 0.5, warmup=3)
    snap = vol.snapshot(now_ns=5)
    assert snap["sigma_fast"] is None and snap["reason"] == "no trade yet"
    vol.update(make_trades([]))
    assert vol.snapshot()["reason"] == "no trade yet"
    # seconds 100..103 at prices 100, 101, 101 (carried), 99; second 104 is still open
    vol.update(make_trades([(100 * SEC + 1, 100.0), (101 * SEC, 101.0), (103 * SEC + 7, 99.0),
                            (104 * SEC, 98.0)]))
    snap = vol.snapshot()
    assert snap["returns"] == 3 and snap["samples"] == 4
    assert snap["price"] == 99.0 and snap["sample_end_ns"] == 104 * SEC
    rets = [math.log(101 / 100), 0.0, math.log(99 / 101)]
    lam = 2 ** (-1 / 30)
    s = lam * lam * rets[0] ** 2 + lam * rets[1] ** 2 + rets[2] ** 2
    wsum = lam * lam + lam + 1
    assert snap["sigma_fast"] == pytest.approx(math.sqrt(s / wsum), rel=1e-12)
    vol2 = Volatility(30.0, 300.0, 0.5, warmup=4)
    vol2.update(make_trades([(100 * SEC + 1, 100.0), (101 * SEC, 101.0), (104 * SEC, 98.0)]))
    snap2 = vol2.snapshot()
    assert snap2["sigma_fast"] is None and snap2["reason"] == "warming up: 3 of 4 one-second returns"
    vol.reset()
    assert vol.snapshot()["returns"] == 0 and vol.snapshot()["sigma_fast"] is None
    assert vol.sigma_fast() is None


def test_volatility_late_trades_are_counted_not_applied():
    vol = Volatility(30.0, 300.0, 0.5, warmup=1)
    vol.update(make_trades([(10 * SEC, 100.0), (12 * SEC, 102.0)]))
    vol.update(make_trades([(11 * SEC, 500.0), (10 * SEC + 5, 400.0)]))
    vol.update(make_trades([(13 * SEC, 101.0)]))
    assert vol.late == 2
    snap = vol.snapshot()
    assert snap["returns"] == 2      # 10→11 carried (0), 11→12
    lam = 2 ** (-1 / 30)
    s = math.log(102 / 100) ** 2
    assert snap["sigma_fast"] == pytest.approx(math.sqrt(s / (lam + 1)), rel=1e-12)


def test_volatility_from_settings():
    from config.settings import Settings
    vol = Volatility.from_settings(Settings())
    assert (vol.fast.halflife_sec, vol.slow.halflife_sec, vol.w, vol.warmup) == (30.0, 300.0, 0.5, 30)
