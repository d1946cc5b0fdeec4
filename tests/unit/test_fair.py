"""Fair value (actors/decide/fair.py): closed forms, monotonicity, a TWAP Monte Carlo check,
the settlement-price arithmetic on constructed inputs and the FairValue wiring."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.decide.fair import (FairValue, PriceSmoother, SettlementPrice, TwapTracker, phi, prob_up, twap_moments, twap_prob_up)

SEC = 1_000_000_000
# Φ at a few points, from tables (Abramowitz & Stegun 26.2 / any 16-digit reference)
PHI_1 = 0.8413447460685429
PHI_2 = 0.9772498680518208
PHI_196 = 0.9750021048517795
PHI_M1 = 0.15865525393145707


def test_phi_table():
    assert phi(0.0) == 0.5
    assert abs(phi(1.0) - PHI_1) < 1e-15
    assert abs(phi(-1.0) - PHI_M1) < 1e-15
    assert abs(phi(2.0) - PHI_2) < 1e-15
    assert abs(phi(1.96) - PHI_196) < 1e-15
    assert 0.0 < phi(-30.0) < 1e-190          # erfc keeps the lower tail


@pytest.mark.parametrize("sigma,tau", [(1e-4, 900.0), (3e-4, 1.0), (1e-3, 0.01)])
def test_at_the_money_is_half(sigma, tau):
    assert prob_up(100.0, 100.0, sigma, tau) == 0.5
    assert prob_up(60_000.0, 60_000.0, sigma, tau) == 0.5


@pytest.mark.parametrize("z,expect", [(1.0, PHI_1), (-1.0, PHI_M1), (2.0, PHI_2),
                                      (1.96, PHI_196)])
def test_hand_computed(z, expect):
    sigma, tau, s0 = 2e-4, 400.0, 60_000.0       # σ√τ = 0.004
    s = s0 * math.exp(z * sigma * math.sqrt(tau))
    assert abs(prob_up(s, s0, sigma, tau) - expect) < 1e-12
    # the same z from the drift alone
    assert abs(prob_up(s0, s0, sigma, tau, drift=z * 0.004) - expect) < 1e-12
    # and ln(101/100)/(1e-3·√100) by hand: Φ(0.99503308531681) = erfc(−z/√2)/2
    zz = math.log(1.01) / 0.01
    assert abs(prob_up(101.0, 100.0, 1e-3, 100.0) - 0.5 * math.erfc(-zz / math.sqrt(2))) < 1e-15


def test_symmetry():
    for s, s0 in [(101.0, 100.0), (99.5, 100.0), (60_123.0, 60_000.0)]:
        p, q = prob_up(s, s0, 1e-4, 300.0), prob_up(s0, s, 1e-4, 300.0)
        assert abs(p + q - 1.0) < 1e-12


def test_edges():
    assert prob_up(100.0, 100.0, 1e-4, 0.0) == 1.0      # the tie is Up
    assert prob_up(100.1, 100.0, 1e-4, -5.0) == 1.0
    assert prob_up(99.9, 100.0, 1e-4, 0.0) == 0.0
    assert prob_up(99.9, 100.0, 1e-4, 0.0, drift=1.0) == 0.0   # drift ignored at τ ≤ 0
    assert prob_up(100.1, 100.0, 0.0, 10.0) == 1.0
    assert prob_up(99.9, 100.0, 0.0, 10.0) == 0.0
    assert prob_up(100.0, 100.0, 0.0, 10.0) == 1.0
    with pytest.raises(ValueError):
        prob_up(0.0, 100.0, 1e-4, 10.0)
    with pytest.raises(ValueError):
        prob_up(100.0, 100.0, -1e-4, 10.0)


price = st.floats(50_000, 70_000)
sig = st.floats(1e-5, 1e-3)
tau_st = st.floats(0.5, 3600)


@settings(max_examples=200, deadline=None)
@given(price, price, st.floats(1e-3, 100.0), sig, tau_st)
def test_monotone_in_s_and_s0(s, s0, ds, sigma, tau):
    assert prob_up(s + ds, s0, sigma, tau) >= prob_up(s, s0, sigma, tau)
    assert prob_up(s, s0 + ds, sigma, tau) <= prob_up(s, s0, sigma, tau)


@settings(max_examples=200, deadline=None)
@given(price, price, sig, tau_st, st.floats(0.0, 1000.0))
def test_monotone_in_tau_and_sigma(s, s0, sigma, tau, dt):
    p, p_t = prob_up(s, s0, sigma, tau), prob_up(s, s0, sigma, tau + dt)
    p_s = prob_up(s, s0, sigma * 1.5, tau)
    if s > s0:      # in the money: more time or more vol only hurts
        assert p_t <= p and p_s <= p
    elif s < s0:
        assert p_t >= p and p_s >= p
    else:
        assert p == p_t == p_s == 0.5


# --- TWAP --------------------------------------------------------------------------------------

def test_twap_moments_closed_form():
    sigma, L = 2e-4, 60.0
    sh, v = twap_moments(90.0, L, sigma)
    assert sh == 0.0 and abs(v - sigma ** 2 * 50.0) < 1e-24       # τ − L + L/3
    sh, v = twap_moments(90.0, L, sigma, drift_rate=1e-6)
    assert abs(sh - 1e-6 * 60.0) < 1e-18                           # μ(τ − L/2)
    # continuity at τ = L
    a = twap_moments(L, L, sigma, 1e-6)
    b = twap_moments(L - 1e-9, L, sigma, 1e-6, s=100.0, running_avg=100.0)
    assert a[0] == pytest.approx(b[0], rel=1e-9) and a[1] == pytest.approx(b[1], rel=1e-9)
    assert abs(a[1] - sigma ** 2 * L / 3) < 1e-22
    # inside: e = 30, τ = 30
    sh, v = twap_moments(30.0, L, sigma, 2e-6, s=100.0, running_avg=101.0)
    assert abs(v - sigma ** 2 * 30.0 ** 3 / (3 * 60.0 ** 2)) < 1e-22
    assert abs(sh - (0.5 * math.log(1.01) + 2e-6 * 900 / 120)) < 1e-15
    # τ → 0: variance 0, the average is known
    assert twap_moments(0.0, L, sigma, s=100.0, running_avg=101.0)[1] == 0.0
    with pytest.raises(ValueError):
        twap_moments(30.0, L, sigma)


def test_twap_prob_closed_form():
    sigma, L, s0 = 2e-4, 60.0, 60_000.0
    assert twap_prob_up(s0, s0, sigma, 300.0, L) == 0.5
    assert twap_prob_up(s0, s0, sigma, 20.0, L, running_avg=s0) == 0.5
    # z = 1 before the averaging window: ln(S/S0) = σ·√(τ − 2L/3)
    s = s0 * math.exp(sigma * math.sqrt(300.0 - 40.0))
    assert abs(twap_prob_up(s, s0, sigma, 300.0, L) - PHI_1) < 1e-12
    # z = 2 inside: S = S0, A chosen so that (e/L)·ln(A/S0) = 2·σ·√(τ³/3)/L
    tau = 15.0
    sd = sigma * math.sqrt(tau ** 3 / 3) / L
    a = s0 * math.exp(2 * sd * L / (L - tau))
    assert abs(twap_prob_up(s0, s0, sigma, tau, L, running_avg=a) - PHI_2) < 1e-12
    # the end: the average decides
    assert twap_prob_up(s0 * 0.9, s0, sigma, 0.0, L, running_avg=s0 + 1) == 1.0
    assert twap_prob_up(s0 * 1.1, s0, sigma, 0.0, L, running_avg=s0 - 1) == 0.0


@settings(max_examples=150, deadline=None)
@given(price, price, st.floats(0.01, 100.0), sig, st.floats(0.1, 59.9), st.floats(-0.01, 0.01))
def test_twap_monotone(s, s0, ds, sigma, tau, la):
    a = s * math.exp(la)
    p = twap_prob_up(s, s0, sigma, tau, 60.0, running_avg=a)
    assert twap_prob_up(s + ds, s0, sigma, tau, 60.0, running_avg=a) >= p
    assert twap_prob_up(s, s0, sigma, tau, 60.0, running_avg=a + ds) >= p
    assert twap_prob_up(s, s0 + ds, sigma, tau, 60.0, running_avg=a) <= p


def _mc_twap(rng, s, sigma, tau, L, a, n_paths, dt, mu=0.0):
    """Arithmetic time-average of simulated prices over [T − L, T] (rectangle rule on the grid),
    the observed part fixed at A; returns the settlement values."""
    steps = int(round(tau / dt))
    out = []
    for _ in range(n_paths // 10_000):
        inc = rng.standard_normal((10_000, steps)) * (sigma * math.sqrt(dt)) + mu * dt
        x = math.log(s) + np.cumsum(inc, axis=1)           # x at t + dt, …, T
        p = np.exp(x)
        start = steps - int(round(L / dt))                  # grid index of T − L + dt
        if start >= 0:
            avg = p[:, start:].mean(axis=1)
        else:
            e = L - tau
            avg = (e * a + p.sum(axis=1) * dt) / L
        out.append(avg)
    return np.concatenate(out)


@pytest.mark.parametrize("tau,la,mu", [(90.0, 0.0, 0.0), (30.0, 4e-4, 0.0), (10.0, -2e-4, 0.0),
                                       (150.0, 0.0, 3e-6)])
def test_twap_monte_carlo(tau, la, mu):
    """Fixed seed, 40 000 paths, dt = 0.1 s, σ = 2e-4/√s, L = 60 s: agreement within 0.01
    (≈ 5 standard errors; the discretisation and the log-average approximation are far smaller)."""
    rng = np.random.default_rng(12345)
    sigma, L, s = 2e-4, 60.0, 60_000.0
    a = s * math.exp(la)
    shift, v = twap_moments(tau, L, sigma, mu, s, a)
    settle = _mc_twap(rng, s, sigma, tau, L, a, 40_000, 0.1, mu)
    for k in (-1.0, 0.0, 0.7):       # S0 placed k standard deviations above the mean
        s0 = s * math.exp(shift + k * math.sqrt(v))
        p_mc = float(np.mean(settle >= s0))
        p = twap_prob_up(s, s0, sigma, tau, L, running_avg=a, drift_rate=mu)
        assert abs(p - phi(-k)) < 1e-9
        assert abs(p_mc - p) < 0.01, (tau, k, p_mc, p)


# --- settlement price ------------------------------------------------------------------------

def test_settlement_price_arithmetic():
    H = 10.0
    sp = SettlementPrice(basis_halflife_sec=H, basis_shrink=1.0)
    assert sp.estimate(0, 100.0) == (
        None, "no Chainlink observation paired with a Binance price yet")
    assert sp.on_chainlink(0, 100.0, 101.0)
    x1 = math.log(100.0 / 101.0)
    assert sp.basis == x1
    # first pair: S = B_now·CL/B(t_c) exactly (the correction is 0)
    s, why = sp.estimate(SEC, 103.0)
    assert why is None and abs(s - 100.0 * 103.0 / 101.0) < 1e-12
    assert sp.on_chainlink(10 * SEC, 102.0, 102.0)           # one half-life later, x2 = 0
    b = (0.5 * x1 + 0.0) / 1.5
    assert abs(sp.basis - b) < 1e-16
    s, _ = sp.estimate(11 * SEC, 103.0)
    assert abs(s - 103.0 * math.exp(b)) < 1e-11              # k = 1: B_now·exp(b)
    assert abs(s - 102.0 * (103.0 / 102.0) * math.exp(-(0.0 - b))) < 1e-11
    half = SettlementPrice(H, 0.5)
    half.on_chainlink(0, 100.0, 101.0)
    half.on_chainlink(10 * SEC, 102.0, 102.0)
    s, _ = half.estimate(11 * SEC, 103.0)
    assert abs(s - 102.0 * (103.0 / 102.0) * math.exp(-0.5 * (0.0 - b))) < 1e-11
    plain = SettlementPrice(H, 0.0)
    plain.on_chainlink(0, 100.0, 101.0)
    plain.on_chainlink(10 * SEC, 102.0, 102.0)
    assert abs(plain.estimate(11 * SEC, 103.0)[0] - 103.0) < 1e-12
    # repeats and late ones are ignored
    assert not sp.on_chainlink(10 * SEC, 1.0, 1.0)
    assert not sp.on_chainlink(5 * SEC, 1.0, 1.0)
    assert sp.late == 1 and sp.pairs == 2
    assert sp.estimate(11 * SEC, None) == (None, "no Binance price")


def test_settlement_price_lookup_and_staleness():
    book = {0: 101.0, 20 * SEC: 100.0}
    sp = SettlementPrice(10.0, 1.0, binance_at=book.get, max_age_sec=30.0)
    assert sp.on_chainlink(0, 100.0)
    assert not sp.on_chainlink(5 * SEC, 100.5)                # no Binance price at 5 s
    assert sp.unpaired == 1 and sp.cl == 100.0
    assert sp.on_chainlink(20 * SEC, 99.0)                    # λ = 2^-2 since the last pair
    x1, x2 = math.log(100 / 101), math.log(99 / 100)
    assert abs(sp.basis - (0.25 * x1 + x2) / 1.25) < 1e-16
    assert sp.estimate(50 * SEC, 100.0)[1] is None
    s, why = sp.estimate(51 * SEC, 100.0)
    assert s is None and why.startswith("Chainlink stale")


def test_price_smoother():
    ps = PriceSmoother(2.0)
    assert ps.value is None
    assert ps.update(0, 100.0) == pytest.approx(100.0, rel=1e-15)
    v = ps.update(2 * SEC, 121.0)                             # one half-life: halfway in logs
    assert abs(v - 110.0) < 1e-10
    assert ps.update(2 * SEC, 500.0) == v                     # no time passed


def test_twap_tracker_is_the_settlements_mean_so_far():
    """A = the mean of the observations in (T − L, now] (settlement.twap_mean), not a time average
    of the step function: at now = T it is the settlement value itself."""
    tw = TwapTracker()
    tw.reset_window(100 * SEC, 160 * SEC)                     # the span (100, 160]
    tw.on_value(90 * SEC, 10.0)                               # before the span
    tw.on_value(100 * SEC, 11.0)                              # at T − L: outside (T − L, T]
    assert tw.average(99 * SEC) is None and tw.average(105 * SEC) is None
    tw.on_value(110 * SEC, 20.0)
    tw.on_value(115 * SEC, 30.0)
    assert tw.average(112 * SEC) == 20.0
    # (20 + 30) / 2; the step function's time average over [100, 120] read (100+100+150)/20 = 17.5
    assert tw.average(120 * SEC) == 25.0
    tw.on_value(115 * SEC, 99.0)                              # a repeat: the first one stands
    tw.on_value(160 * SEC, 40.0)                              # at T: inside
    tw.on_value(161 * SEC, 1e6)                               # after T: outside
    assert tw.average(300 * SEC) == 30.0                      # (20 + 30 + 40) / 3, clipped at T
    seeded = TwapTracker()
    seeded.reset_window(100 * SEC, 160 * SEC, [(90 * SEC, 10.0), (110 * SEC, 20.0), (115 * SEC, 30.0)])
    assert seeded.obs == [(110 * SEC, 20.0), (115 * SEC, 30.0)] and seeded.average(120 * SEC) == 25.0
    off = TwapTracker()
    off.on_value(110 * SEC, 20.0)
    assert off.average(120 * SEC) is None and off.obs == []   # no TWAP window


def test_twap_running_average_at_the_end_is_the_settlement():
    from actors.decide import settlement
    obs = [(t * SEC, 100.0 + (t * 7919 % 13) / 8.0) for t in range(30, 101)]
    tw = TwapTracker()
    tw.reset_window(40 * SEC, 100 * SEC, obs)
    assert tw.average(100 * SEC) == settlement.settlement_price(obs, 100 * SEC, True, 60)[0]
    assert tw.average(100 * SEC) == sum(p for t, p in obs if 40 * SEC < t) / 60
    assert tw.average(70 * SEC) == sum(p for t, p in obs if 40 * SEC < t <= 70 * SEC) / 30


# --- FairValue -------------------------------------------------------------------------------

def window(twap=False, L=0):
    return SimpleNamespace(start_s=1000, end_s=1900, twap_enabled=twap, twap_lookback_sec=L)


def test_fair_value_reasons():
    fv = FairValue(10.0, binance_at=lambda t: 100.0)
    w = window()
    args = dict(binance_price_fast=100.0, binance_price_smooth=100.0, sigma_fast=1e-4,
                sigma_blend=1e-4)
    r = fv.snapshot(999 * SEC, w, 100.0, (999 * SEC - 1, 100.0), **args)
    assert r["fast"] is None and r["reason"] == "window not started"
    r = fv.snapshot(1900 * SEC, w, 100.0, None, **args)
    assert r["reason"] == "window ended"
    r = fv.snapshot(1500 * SEC, w, None, None, **args)
    assert r["reason"] == "no price to beat" and r["tau_s"] == 400.0
    r = fv.snapshot(1500 * SEC, w, 100.0, None, 100.0, None, None, 1e-4)
    assert r["fast"] is None and r["smooth"] is None
    assert r["reason"] == "fast: no sigma; smooth: no Binance price"
    assert fv.snapshot(1500 * SEC, None, 100.0, None, **args)["reason"] == "no window"
    empty = FairValue(10.0).snapshot(1500 * SEC, w, 100.0, None, **args)
    assert empty["reason"].startswith("fast: no Chainlink observation")


def test_fair_value_point():
    book = {1400 * SEC: 60_100.0}
    fv = FairValue(10.0, binance_at=book.get)
    w = window()
    now = 1500 * SEC
    r = fv.snapshot(now, w, 60_000.0, (1400 * SEC, 60_050.0), 60_200.0, 60_150.0, 1e-4, 2e-4,
                    bias_score=0.5, drift_k=0.01)
    assert r["reason"] is None and r["twap"] is False and r["tau_s"] == 400.0
    sf = 60_050.0 * 60_200.0 / 60_100.0
    ss = 60_050.0 * 60_150.0 / 60_100.0
    assert abs(r["s"]["fast"] - sf) < 1e-8 and abs(r["s"]["smooth"] - ss) < 1e-8
    mu_f, mu_s = 0.01 * 0.5 * 1e-4, 0.01 * 0.5 * 2e-4
    assert abs(r["fast"] - prob_up(sf, 60_000.0, 1e-4, 400.0, mu_f * 400.0)) < 1e-12
    assert abs(r["smooth"] - prob_up(ss, 60_000.0, 2e-4, 400.0, mu_s * 400.0)) < 1e-12
    assert r["drift_rate"] == {"fast": mu_f, "smooth": mu_s}


def test_fair_value_twap():
    book = {t * SEC: 100.0 for t in range(1800, 1900)}
    fv = FairValue(10.0, binance_at=book.get)
    w = window(True, 60)                                      # averaging over (1840, 1900]
    args = dict(binance_price_fast=101.0, binance_price_smooth=100.5, sigma_fast=1e-4,
                sigma_blend=2e-4)
    r = fv.snapshot(1830 * SEC, w, 100.0, (1830 * SEC, 100.0), **args)
    assert r["twap"] and r["twap_avg"] is None and r["tau_s"] == 70.0
    assert abs(r["tau_eff_s"] - 30.0) < 1e-12
    assert abs(r["fast"] - twap_prob_up(101.0, 100.0, 1e-4, 70.0, 60.0)) < 1e-12
    # inside the span before its first observation: no A, the averaged part taken at S (shift 0)
    r = fv.snapshot(1845 * SEC, w, 100.0, None, **args)
    assert r["twap_avg"] is None and r["reason"] is None
    sf = r["s"]["fast"]
    assert r["fast"] == twap_prob_up(sf, 100.0, 1e-4, 55.0, 60.0, running_avg=sf)
    fv.snapshot(1850 * SEC, w, 100.0, (1850 * SEC, 102.0), **args)
    r = fv.snapshot(1860 * SEC, w, 100.0, None, **args)
    # (1840, 1860] holds one observation, 102 at 1850: A = 102 (the settlement's mean; the old
    # time average of the step function, 100 over [1840,1850) and 102 after, read 101)
    assert r["twap_avg"] == 102.0
    assert r["tau_s"] == 40.0 and abs(r["tau_eff_s"] - 40.0 ** 3 / (3 * 3600)) < 1e-12
    b = fv.settle.basis
    sf = 101.0 * math.exp(b)                                  # S = 102·B_now/100·exp(−(x_c − b))
    assert abs(r["s"]["fast"] - sf) < 1e-10
    assert r["fast"] == twap_prob_up(r["s"]["fast"], 100.0, 1e-4, 40.0, 60.0, running_avg=102.0)
    # a compute that (re)starts inside the span: the observations already seen seed it
    late = FairValue(10.0, binance_at=book.get)
    for ts, px in ((1830 * SEC, 100.0), (1850 * SEC, 102.0)):
        late.on_chainlink(ts, px)
    assert late.snapshot(1860 * SEC, w, 100.0, None, **args)["twap_avg"] == 102.0
    # a new window resets the running average
    w2 = SimpleNamespace(start_s=1900, end_s=2800, twap_enabled=True, twap_lookback_sec=60)
    r = fv.snapshot(1950 * SEC, w2, 100.0, None, **args)
    assert r["twap_avg"] is None and r["tau_s"] == 850.0


# --- the settlement source by the window's rule --------------------------------------------------

def ruled(rule, start_s=1000, end_s=1900):
    return SimpleNamespace(start_s=start_s, end_s=end_s, twap_enabled=False, twap_lookback_sec=0, rule=rule)


def test_a_binance_candle_window_prices_on_the_candle_market_not_chainlink():
    from actors.decide.settlement import Rule
    fv = FairValue(10.0, binance_at=lambda t: 60_100.0)
    fv.on_chainlink(1400 * SEC, 60_050.0)                     # Chainlink is not its source
    w = ruled(Rule("binance", "BTCUSDT", "candle", candle_tf="1h"))
    r = fv.snapshot(1500 * SEC, w, 60_000.0, None, 60_200.0, 60_150.0, 1e-4, 2e-4,
                    source_price={"fast": 60_030.0, "smooth": 60_020.0})
    assert r["source"] == "binance" and r["twap"] is False and r["tau_s"] == 400.0
    assert r["s"] == {"fast": 60_030.0, "smooth": 60_020.0}
    assert r["fast"] == prob_up(60_030.0, 60_000.0, 1e-4, 400.0)
    assert r["smooth"] == prob_up(60_020.0, 60_000.0, 2e-4, 400.0)
    r = fv.snapshot(1500 * SEC, w, 60_000.0, None, 60_200.0, 60_150.0, 1e-4, 2e-4,
                    source_price={"fast": None, "smooth": None})
    assert r["fast"] is None and r["reason"] == ("fast: no settlement-source price; "
                                                 "smooth: no settlement-source price")
    # daily: the settlement is the close of the 1m candle opening at the end, 60 s later
    d = ruled(Rule("binance", "BTCUSDT", "candle_close", candle_tf="1m"))
    r = fv.snapshot(1500 * SEC, d, 60_000.0, None, sigma_fast=1e-4, sigma_blend=1e-4,
                    source_price={"fast": 60_030.0, "smooth": 60_030.0})
    assert r["tau_s"] == 460.0 and r["fast"] == prob_up(60_030.0, 60_000.0, 1e-4, 460.0)


def test_a_chainlink_rule_decides_twap_over_the_documents_flags():
    from actors.decide.settlement import Rule
    fv = FairValue(10.0, binance_at=lambda t: 100.0)
    for t in range(1800, 1911):
        fv.on_chainlink(t * SEC, 100.0 + (t >= 1850))
    w = ruled(Rule("chainlink", "btc/usd", "twap", twap_lookback_sec=60))
    r = fv.snapshot(1830 * SEC, w, 100.0, None, 100.0, 100.0, 1e-4, 1e-4)
    assert r["twap"] is True and r["twap_lookback_sec"] == 60.0 and r["source"] == "chainlink"
    # the TWAP tracker averages the span (1840, 1900] so far: 1841..1849 at 100, 1850..1899 at 101
    assert fv.snapshot(1900 * SEC - 1, w, 100.5, None, 100.0, 100.0, 1e-4, 1e-4)["twap_avg"] == \
        pytest.approx((9 * 100.0 + 50 * 101.0) / 59, rel=1e-12)
    point = ruled(Rule("chainlink", "btc/usd", "point"))
    assert fv.snapshot(1830 * SEC, point, 100.0, None, 100.0, 100.0, 1e-4, 1e-4)["twap"] is False
