"""Anchored VWAP, its volume-weighted σ and the last price's deviation, on the real 2024-08-08
trades fed in uneven chunks, against a plain-loop reference in exact rational arithmetic.
The spot capture crosses 2024-08-09 00:00 UTC, so the session anchor rolls during it."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from actors.features.flow import DAY_NS
from actors.features.vwap import AnchoredVwap
from ipc.schema import TRADE
from tests.support.fixtures import BINANCE, load_hftbacktest
from tests.support.trades import chunks

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SPOT_TRADES = BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log"
MIDNIGHT = 1_723_161_600 * 1_000_000_000     # 2024-08-09 00:00 UTC


class RefVwap:
    """Plain loops in exact rational arithmetic (fractions.Fraction), so the reference itself has no
    rounding: vwap = Σpq/Σq and σ² = Σqp²/Σq − vwap², the definitions as written, exactly."""

    def __init__(self, ts_list, p_list, q_list):
        self.ts, self.p, self.q = ts_list, p_list, q_list
        self.anchor = None
        self.upto = 0

    def at(self, z, anchor):
        """(vwap, σ, last, n) over trades [0, z) with ts ≥ anchor, or None."""
        if anchor != self.anchor:
            self.anchor, self.upto = anchor, 0
            self.sq = self.spq = self.sqp2 = Fraction(0)
            self.n, self.last = 0, None
        for i in range(self.upto, z):
            if self.ts[i] >= anchor:
                p, q = Fraction(self.p[i]), Fraction(self.q[i])
                self.sq += q
                self.spq += p * q
                self.sqp2 += q * p * p
                self.n += 1
                self.last = self.p[i]
        self.upto = z
        if self.n == 0:
            return None
        vwap = self.spq / self.sq
        var = self.sqp2 / self.sq - vwap * vwap
        last = Fraction(self.last)
        sigma = math.sqrt(var)
        dev_sigma = float((last - vwap) / Fraction(sigma)) if var > 0 else None
        return float(vwap), sigma, self.last, self.n, float((last - vwap) / vwap * 10000), dev_sigma


def ref_vwap(ts_list, p_list, q_list, anchor):
    return RefVwap(ts_list, p_list, q_list).at(len(ts_list), anchor)


def check(snap, ref):
    vwap, sigma, last, n, dev_bps, dev_sigma = ref
    assert snap["trades"] == n and snap["last_price"] == last
    assert snap["vwap"] == pytest.approx(vwap, rel=1e-12)
    assert snap["sigma"] == pytest.approx(sigma, rel=1e-9)
    assert snap["dev_bps"] == pytest.approx(dev_bps, rel=1e-9, abs=1e-12)
    if dev_sigma is not None:
        assert snap["dev_sigma"] == pytest.approx(dev_sigma, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
def test_anchored_vwap_matches_reference(path):
    trades = load_hftbacktest(path, "trade")
    ts_all, p_all, q_all = (trades[f].tolist() for f in ("ts_event_ns", "price", "qty"))
    v = AnchoredVwap()
    ref_engine = RefVwap(ts_all, p_all, q_all)
    checked = rolled = 0
    for a, z in chunks(len(trades), 23):
        v.update(trades[a:z])
        if z == 0:
            continue
        anchor = max(ts_all[:z]) // DAY_NS * DAY_NS
        snap = v.snapshot()
        assert snap["anchor_ns"] == anchor and snap["explicit"] is False
        ref = ref_engine.at(z, anchor)
        if ref is None:         # cannot happen: the newest trade is always after its day's start
            pytest.fail("no trade after the anchor")
        check(snap, ref)
        checked += 1
        rolled += anchor == MIDNIGHT
    assert checked > 20
    if path == SPOT_TRADES:
        assert rolled > 0 and v.anchor_ns == MIDNIGHT
        assert v.from_ns >= MIDNIGHT                   # the sums restarted at the new session
        assert v.trades == sum(1 for t in ts_all if t >= MIDNIGHT)
    else:
        assert v.anchor_ns == MIDNIGHT - DAY_NS and v.from_ns == ts_all[0]


def test_anchored_vwap_explicit_reset():
    trades = load_hftbacktest(FUT_TRADES, "trade")
    ts_all, p_all, q_all = (trades[f].tolist() for f in ("ts_event_ns", "price", "qty"))
    anchor = ts_all[len(ts_all) // 3] + 1
    v = AnchoredVwap()
    v.update(trades[:100])
    v.reset(anchor)
    assert v.snapshot()["vwap"] is None and v.snapshot()["reason"] == "no trade since the anchor"
    for a, z in chunks(len(trades), 29):
        v.update(trades[a:z])          # replayed from the start: trades before the anchor ignored
    snap = v.snapshot()
    assert snap["explicit"] is True and snap["anchor_ns"] == anchor and snap["from_ns"] >= anchor
    check(snap, ref_vwap(ts_all, p_all, q_all, anchor))
    # an explicit anchor does not roll at midnight
    late = trades[-1:].copy()
    late["ts_event_ns"] = MIDNIGHT + 5
    v.update(late)
    assert v.anchor_ns == anchor


def make(rows):
    t = np.zeros(len(rows), dtype=TRADE)
    for i, (ts, p, q) in enumerate(rows):
        t[i]["ts_event_ns"], t[i]["ts_recv_ns"], t[i]["price"], t[i]["qty"] = ts, ts + 1, p, q
        t[i]["side"], t[i]["trade_id"] = 1, i + 1
    return t


def test_anchored_vwap_exact_values_and_midnight_roll():
    v = AnchoredVwap()
    assert v.snapshot()["reason"] == "no trade since the anchor"
    v.update(make([]))
    v.update(make([(DAY_NS - 10, 100.0, 1.0), (DAY_NS - 5, 102.0, 3.0)]))
    snap = v.snapshot(now_ns=DAY_NS - 3)
    # vwap = (100 + 306) / 4 = 101.5; σ² = (1·1.5² + 3·0.5²) / 4 = 0.75
    assert snap["vwap"] == 101.5 and snap["sigma"] == pytest.approx(math.sqrt(0.75), rel=1e-15)
    assert snap["dev_bps"] == pytest.approx(0.5 / 101.5 * 1e4, rel=1e-15)
    assert snap["dev_sigma"] == pytest.approx(0.5 / math.sqrt(0.75), rel=1e-15)
    assert snap["age_ms"] == 1e-6                 # received at DAY_NS − 4
    # a chunk reaching the next UTC day moves the anchor and drops its earlier trades
    v.update(make([(DAY_NS - 1, 500.0, 9.0), (DAY_NS, 110.0, 2.0)]))
    snap = v.snapshot()
    assert snap["anchor_ns"] == DAY_NS and snap["trades"] == 1 and snap["vwap"] == 110.0
    assert snap["sigma"] == 0.0 and snap["dev_sigma"] is None and "dev_sigma_reason" in snap
    # a trade of the previous day arriving later is ignored
    v.update(make([(DAY_NS - 2, 1.0, 1.0)]))
    assert v.snapshot()["trades"] == 1
    v2 = AnchoredVwap()
    v2.update(make([(5, 100.0, 0.0)]))
    assert v2.snapshot()["vwap"] is None and v2.snapshot()["reason"] == "no volume since the anchor"
