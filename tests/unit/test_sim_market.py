"""The sim's market generator: determinism, venue invariants, and realistic statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from actors.sim.market import FUTURES_BTCUSDT, AggTrade, BookTicker, Market

T0 = 1_780_000_000_000_000_000   # an arbitrary epoch ns start
S = 1_000_000_000


def _run(seed=42, rate=40.0, seconds=120.0, steps=None, **kw):
    m = Market(seed=seed, trade_rate=rate, start_price=65_000.0, start_ns=T0, **kw)
    end = T0 + int(seconds * S)
    out = []
    if steps is None:
        out = m.advance(end)
    else:
        t = T0
        for dt in steps:
            t = min(end, t + dt)
            batch = m.advance(t)
            assert all(e.emit_ns <= t for e in batch)
            out.extend(batch)
        out.extend(m.advance(end))
    return m, out


def _split(events):
    ag = [e for e in events if type(e) is AggTrade]
    bk = [e for e in events if type(e) is BookTicker]
    return ag, bk


@pytest.fixture(scope="module")
def long_run():
    """10 simulated minutes at the default rate (shared by the statistics tests)."""
    return _run(seed=7, rate=40.0, seconds=600.0)


def test_deterministic_for_a_seed_whatever_the_call_pattern():
    _, a = _run(seed=3, seconds=60)
    rng = np.random.default_rng(0)
    _, b = _run(seed=3, seconds=60, steps=[int(x) for x in rng.integers(1, 50_000_000, 10_000)])
    _, c = _run(seed=3, seconds=60, steps=[7 * S // 1000] * 10_000)
    assert len(a) > 5_000
    assert a == b == c
    _, d = _run(seed=4, seconds=60)
    assert d[:100] != a[:100]


def test_max_events_limits_a_call_and_keeps_the_rest():
    m1, full = _run(seed=5, seconds=20)
    m2 = Market(seed=5, trade_rate=40.0, start_price=65_000.0, start_ns=T0)
    got = []
    while True:
        batch = m2.advance(T0 + 20 * S, max_events=37)
        assert len(batch) <= 37
        if not batch:
            break
        got.extend(batch)
    assert got == full


def test_agg_trade_ids_consecutive_and_fill_ranges_chain(long_run):
    _, ev = long_run
    ag, _ = _split(ev)
    assert len(ag) > 10_000
    a = np.array([e.a for e in ag])
    f = np.array([e.f for e in ag])
    last = np.array([e.l for e in ag])
    assert (np.diff(a) == 1).all()
    assert (last >= f).all()
    assert (f[1:] == last[:-1] + 1).all()
    assert a[0] > 2 ** 31 and f[0] > 2 ** 32          # realistic magnitudes (int32 bugs show)
    fills = last - f + 1
    assert 1.5 < fills.mean() < 4.0 and fills.max() >= 5   # 1..several fills per aggTrade


def test_prices_on_tick_quantities_in_lots_book_never_crossed(long_run):
    _, ev = long_run
    ag, bk = _split(ev)
    tick = FUTURES_BTCUSDT.tick_units
    assert all(e.price % tick == 0 and e.price > 0 for e in ag)
    assert all(e.qty >= 1 for e in ag)
    assert all(e.bid % tick == 0 and e.ask % tick == 0 for e in bk)
    assert all(e.bid < e.ask and e.bid_qty >= 1 and e.ask_qty >= 1 for e in bk)
    # takers trade at the touch and walk the book: where a millisecond holds exactly one
    # bookTicker (the one after that taker order), the book before it is the previous one
    bT = np.array([e.T for e in bk])
    first = np.searchsorted(bT, [e.T for e in ag], side="left")
    after = np.searchsorted(bT, [e.T for e in ag], side="right")
    checked = 0
    for e, i, j in zip(ag, first, after):
        if j - i != 1 or i == 0:
            continue
        before, post = bk[i - 1], bk[i]
        checked += 1
        if e.m:      # taker sold into the bids
            assert post.bid <= e.price <= before.bid
        else:
            assert before.ask <= e.price <= post.ask
    assert checked > 1000


def test_spread_is_usually_one_tick(long_run):
    _, ev = long_run
    _, bk = _split(ev)
    ticks = np.array([(e.ask - e.bid) // FUTURES_BTCUSDT.tick_units for e in bk])
    assert (ticks == 1).mean() > 0.9
    assert ticks.max() >= 2          # sweeps do widen it sometimes


def test_book_ticker_update_id_strictly_increasing_by_irregular_steps(long_run):
    _, ev = long_run
    _, bk = _split(ev)
    du = np.diff([e.u for e in bk])
    assert (du > 0).all()
    assert len(set(du.tolist())) > 100          # irregular
    assert np.percentile(du, 90) > 10 * np.percentile(du, 10)


def test_times_T_le_E_monotone_E_per_stream_and_emit_order(long_run):
    _, ev = long_run
    ag, bk = _split(ev)
    for xs in (ag, bk):
        T = np.array([e.T for e in xs])
        E = np.array([e.E for e in xs])
        assert (E >= T).all()
        assert (np.diff(E) >= 0).all()
        assert (np.diff(T) >= 0).all()
    lag = np.array([e.E - e.T for e in ag])
    assert np.median(lag) <= 10 and lag.max() < 300        # a few ms, sometimes batched
    emit = np.array([e.emit_ns for e in ev])
    assert (np.diff(emit) >= 0).all()
    assert all(e.emit_ns >= e.E * 1_000_000 for e in ev)


def test_trade_sizes_are_heavy_tailed(long_run):
    _, ev = long_run
    ag, _ = _split(ev)
    q = np.array([e.qty for e in ag[:10_000]]) / 1000.0     # BTC
    med = np.median(q)
    assert 0.005 <= med <= 0.05
    assert (q <= 0.5).mean() > 0.9                            # mostly 0.001-0.5 BTC
    assert q.min() == 0.001
    assert q.max() / med > 200                                # occasional multi-BTC prints
    assert (q >= 2.0).sum() >= 5
    # a lognormal alone with the body's sigma would not reach this far into the tail
    assert np.percentile(q, 99.9) / np.percentile(q, 99) > 2.0


def test_trade_arrivals_are_bursty_with_the_configured_mean(long_run):
    m, ev = long_run
    ag, _ = _split(ev)
    assert 0.5 * 40 < m.n_orders / 600 < 1.6 * 40
    T = np.array([e.T for e in ag])
    counts = np.bincount((T - T[0]) // 1000)
    assert counts.var() / counts.mean() > 3.0                 # Poisson would give ~1


def test_realised_volatility_is_btc_like(long_run):
    _, ev = long_run
    _, bk = _split(ev)
    T = np.array([e.T for e in bk])
    mid = np.array([(e.bid + e.ask) / 2 for e in bk], dtype=float)
    sec = (T - T[0]) // 1000
    idx = np.searchsorted(sec, np.arange(sec[-1] + 1), side="right") - 1
    r = np.diff(np.log(mid[idx]))
    ann = r.std() * math.sqrt(365 * 86400)
    assert 0.25 < ann < 1.2


def test_taker_side_predicts_the_next_move(long_run):
    _, ev = long_run
    ag, bk = _split(ev)
    T = np.array([e.T for e in bk])
    mid = np.array([(e.bid + e.ask) / 2 for e in bk], dtype=float)
    aT = np.array([e.T for e in ag])
    side = np.array([-1.0 if e.m else 1.0 for e in ag])
    i0 = np.searchsorted(T, aT, side="left") - 1
    i1 = np.searchsorted(T, aT + 250, side="right") - 1
    ok = i0 >= 0
    move = np.sign(mid[i1[ok]] - mid[i0[ok]])
    assert np.corrcoef(side[ok], move)[0, 1] > 0.05


def test_mids_and_spot_basis():
    m, _ = _run(seed=11, seconds=120)
    fut = m.futures_mid()
    assert abs(fut / m.fair_price() - 1) < 5e-4
    spot = m.spot_mid()
    assert spot < m.fair_price() * 1.001
    assert abs(m.fair_price() / spot - 1) * 1e4 == pytest.approx(abs(m.basis_bps()), rel=1e-6)
    assert -10 < m.basis_bps() < 15


def test_from_settings_uses_the_sim_settings():
    from config.settings import Settings
    s = Settings(sim_seed=9, sim_trade_rate=100.0, sim_start_price=30_000.0)
    a = Market.from_settings(s, T0).advance(T0 + 5 * S)
    b = Market(seed=9, trade_rate=100.0, start_price=30_000.0, start_ns=T0).advance(T0 + 5 * S)
    assert a == b and len(a) > 100
    first_book = next(e for e in a if type(e) is BookTicker)
    assert abs(first_book.bid / 100 - 30_000) < 100
