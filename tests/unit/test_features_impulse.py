"""Impulse (return over H seconds in units of σ_fast·√H) against a plain-loop reference on the real
2024-08-08 trades, fed in uneven chunks; σ_fast comes from the plain-loop volatility reference."""
from __future__ import annotations

import math

import pytest

from actors.features.impulse import Impulse
from actors.features.volatility import Volatility
from tests.support.fixtures import BINANCE, load_hftbacktest
from tests.support.trades import chunks, make_trades, ref_vol

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SPOT_TRADES = BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log"
SEC = 1_000_000_000


def ref_impulse(ts_list, p_list, h_sec, sigma, threshold, t=None):
    """Plain loops: (z, ret_bps, ref_price, flagged) or None when P_ref does not exist."""
    if t is None:
        t = ts_list[-1]
    p_now = p_list[-1]
    p_ref = None
    for ts, p in zip(ts_list, p_list):
        if ts <= t - h_sec * SEC:
            p_ref = p            # the last one at or before t − H wins
    if p_ref is None:
        return None
    ret_bps = (p_now / p_ref - 1) * 1e4
    if sigma is None:
        return None, ret_bps, p_ref, None
    z = math.log(p_now / p_ref) / (sigma * math.sqrt(h_sec))
    return z, ret_bps, p_ref, abs(z) > threshold


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
@pytest.mark.parametrize("h", [5, 30])
def test_impulse_matches_reference(path, h):
    trades = load_hftbacktest(path, "trade")
    ts_all, p_all = trades["ts_event_ns"].tolist(), trades["price"].tolist()
    imp = Impulse(horizon_sec=h, threshold=1.0)
    vol = Volatility(30.0, 300.0, 0.5, warmup=30)
    seen = {"none": 0, "z": 0, "flag": 0, "calm": 0}
    for a, z in chunks(len(trades), 13):
        imp.update(trades[a:z])
        vol.update(trades[a:z])
        if z == 0:
            continue
        sigma_ref = ref_vol(ts_all[:z], p_all[:z], 30.0, 300.0, 0.5, 30)[0]
        assert (vol.sigma_fast() is None) == (sigma_ref is None)
        snap = imp.snapshot(vol.sigma_fast())
        ref = ref_impulse(ts_all[:z], p_all[:z], h, sigma_ref, 1.0)
        assert snap["price"] == p_all[z - 1]
        if ref is None:
            assert snap["z"] is None and snap["reason"] == f"less than {h} s of trades"
            seen["none"] += 1
            continue
        rz, rbps, rp, rflag = ref
        assert snap["ref_price"] == rp
        assert snap["ret_bps"] == pytest.approx(rbps, rel=1e-9, abs=1e-9)
        if rz is None:
            assert snap["z"] is None and "warming up" in snap["reason"]
            continue
        assert snap["z"] == pytest.approx(rz, rel=1e-9, abs=1e-12)
        assert snap["flagged"] is rflag
        seen["z"] += 1
        seen["flag" if rflag else "calm"] += 1
        if rflag:
            assert snap["direction"] == (1 if rz > 0 else -1)
    assert seen["none"] > 0 or h == 5      # the first chunk can span 5 s already
    assert seen["z"] > 10 and seen["flag"] > 0 and seen["calm"] > 0
    assert len(imp.hist) <= h * 1000 + 1       # one entry per distinct ms at most, within H


def test_impulse_with_exchange_clock_decays_on_a_quiet_tape():
    trades = load_hftbacktest(FUT_TRADES, "trade")
    ts_all, p_all = trades["ts_event_ns"].tolist(), trades["price"].tolist()
    imp = Impulse(10, 3.0)
    imp.update(trades)
    sigma = 2e-5
    for dt in (0, 3 * SEC, 9 * SEC + 999_999_999):
        clock = ts_all[-1] + dt
        got = imp.snapshot(sigma, clock_ns=clock)
        rz, rbps, rp, _ = ref_impulse(ts_all, p_all, 10, sigma, 3.0, t=clock)
        assert got["t_ns"] == clock and got["ref_price"] == rp
        assert got["z"] == pytest.approx(rz, rel=1e-9, abs=1e-12)
    # H seconds after the last trade the price has not moved: z is exactly 0
    got = imp.snapshot(sigma, clock_ns=ts_all[-1] + 10 * SEC)
    assert got["z"] == 0.0 and got["flagged"] is False and got["direction"] == 0
    # an older clock afterwards does not move t back
    assert imp.snapshot(sigma, clock_ns=ts_all[-1])["t_ns"] == ts_all[-1] + 10 * SEC


def test_impulse_exact_values_and_reasons():
    imp = Impulse(horizon_sec=2, threshold=2.0)
    assert imp.snapshot(1e-4)["reason"] == "no trade yet"
    imp.update(make_trades([]))
    imp.update(make_trades([(10 * SEC, 100.0), (10 * SEC, 100.5), (11 * SEC, 101.0)]))
    snap = imp.snapshot(1e-4)
    assert snap["z"] is None and snap["reason"] == "less than 2 s of trades"
    imp.update(make_trades([(12 * SEC, 101.2), (12 * SEC + 1, 99.0)]))
    # t = 12 s + 1 ns: P_ref = the last trade at or before 10 s + 1 ns = 100.5 (equal times: last wins)
    snap = imp.snapshot(1e-3)
    assert snap["ref_price"] == 100.5 and snap["ref_ts_ns"] == 10 * SEC
    z = math.log(99.0 / 100.5) / (1e-3 * math.sqrt(2))
    assert snap["z"] == pytest.approx(z, rel=1e-12)
    assert snap["flagged"] is True and snap["direction"] == -1     # z ≈ −10.6
    assert snap["ret_bps"] == pytest.approx((99.0 / 100.5 - 1) * 1e4, rel=1e-12)
    assert imp.snapshot(None)["z"] is None
    assert "warming up" in imp.snapshot(None)["reason"]
    assert imp.snapshot(0.0)["reason"] == "volatility is zero"
    # a trade older than the newest is late
    imp.update(make_trades([(11 * SEC, 1.0)]))
    assert imp.late == 1 and imp.snapshot(1e-3)["price"] == 99.0


def test_impulse_from_settings():
    from config.settings import Settings
    imp = Impulse.from_settings(Settings())
    assert (imp.horizon_sec, imp.threshold) == (10.0, 3.0)
