"""Liquidations (forceOrder): no real capture exists, so constructed LIQUIDATION records (and one
frame of Binance's documented shape through the project's parser) with hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from actors.features.liquidations import Liquidations
from actors.venues.binance.parse import parse_frame
from ipc.schema import LIQUIDATION

SEC = 1_000_000_000
T0 = 1_723_161_000 * SEC

LIQ_FRAME = (b'{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1568014460893,"o":{'
             b'"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910",'
             b'"X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}}')


def liqs(rows):
    """rows: (recv offset s, side, price, avg_price, qty, filled_qty)."""
    r = np.zeros(len(rows), dtype=LIQUIDATION)
    for i, (dt, side, p, ap, q, z) in enumerate(rows):
        recv = T0 + int(dt * SEC)
        r[i] = (recv - 30_000_000, recv, 0, recv - 31_000_000, p, ap, q, z, side)
    return r


def test_rolling_window_sides_large_and_expiry():
    lq = Liquidations(window_sec=60, large_usd=100_000, keep=2, start_ns=T0)
    snap = lq.snapshot(T0)
    assert snap["count"] == 0 and snap["long_notional"] == 0.0 and snap["largest"] is None
    assert snap["largest_reason"] == "no liquidation in the last 60 s" and snap["full_window"] is False
    lq.update(liqs([]))
    lq.update(liqs([
        (1.0, -1, 60000.0, 60010.0, 2.0, 2.0),    # long, 120 020 USD: large
        (5.0, +1, 61000.0, 61005.0, 0.5, 0.5),    # short, 30 502.5
        (20.0, -1, 59000.0, 0.0, 1.0, 0.0),       # long, not filled: price·qty = 59 000
    ]))
    lq.update(liqs([(30.0, +1, 60000.0, 60000.0, 3.0, 2.0)]))   # short, 120 000 (filled part): large
    snap = lq.snapshot(T0 + 40 * SEC)
    assert snap["long_notional"] == pytest.approx(120_020.0 + 59_000.0, rel=1e-15)
    assert snap["short_notional"] == pytest.approx(30_502.5 + 120_000.0, rel=1e-15)
    assert snap["net_notional"] == pytest.approx(150_502.5 - 179_020.0, rel=1e-15)
    assert (snap["long_count"], snap["short_count"], snap["count"]) == (2, 2, 4)
    assert snap["largest"]["notional"] == 120_020.0 and snap["largest"]["liquidated"] == "long"
    assert snap["largest"]["age_ms"] == 39_000.0
    assert [x["notional"] for x in snap["large"]] == [120_000.0, 120_020.0]   # newest first
    assert snap["age_ms"] == 10_000.0 and snap["full_window"] is False
    # window (now − 60 s, now]: at now = T0 + 61 s the first record (recv T0 + 1 s) is out
    snap = lq.snapshot(T0 + 61 * SEC)
    assert snap["long_notional"] == 59_000.0 and snap["count"] == 3 and snap["full_window"] is True
    assert snap["largest"]["notional"] == 120_000.0
    # everything expired: sums are zero, the large list still remembers
    snap = lq.snapshot(T0 + 200 * SEC)
    assert snap["count"] == 0 and snap["short_notional"] == 0.0 and snap["largest"] is None
    assert len(snap["large"]) == 2 and snap["large"][1]["age_ms"] == 199_000.0
    # keep = 2: a third large one pushes the oldest out of the list
    lq.update(liqs([(210.0, -1, 50000.0, 50000.0, 10.0, 10.0)]))
    snap = lq.snapshot(T0 + 210 * SEC)
    assert [x["notional"] for x in snap["large"]] == [500_000.0, 120_000.0]
    assert snap["total"] == 5


def test_threshold_is_inclusive_and_future_records_wait():
    lq = Liquidations(window_sec=10, large_usd=1000, keep=5)
    lq.update(liqs([(0.0, 1, 100.0, 100.0, 10.0, 10.0), (0.5, 1, 100.0, 100.0, 9.99, 9.99)]))
    snap = lq.snapshot(T0 + SEC)
    assert [x["notional"] for x in snap["large"]] == [1000.0]
    assert snap["from_ns"] == T0
    # a record received after `now` is not yet in the window ending at now
    snap = lq.snapshot(T0 + SEC // 4)
    assert snap["count"] == 1


def test_documented_force_order_frame():
    d = parse_frame(LIQ_FRAME, 1568014460893 * 1_000_000 + 7)
    assert d.kind == "liquidation"
    lq = Liquidations(window_sec=300, large_usd=100, keep=3)
    lq.update(np.array(list(d.recs), dtype=LIQUIDATION))
    snap = lq.snapshot(1568014460893 * 1_000_000 + 1 * SEC)
    # SELL 0.014 filled at 9910: a long liquidated, 138.74 USD
    assert snap["long_notional"] == pytest.approx(9910 * 0.014, rel=1e-15) and snap["long_count"] == 1
    assert snap["short_notional"] == 0.0
    assert snap["large"][0]["liquidated"] == "long" and snap["large"][0]["side"] == -1


def test_liquidations_from_settings():
    from config.settings import Settings
    lq = Liquidations.from_settings(Settings())
    assert (lq.window_sec, lq.large_usd, lq.large.maxlen) == (300.0, 100_000.0, 10)
