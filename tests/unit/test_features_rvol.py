"""RVOL on the closed bars of BarBuilder, fed the real 2024-08-08 trades in uneven chunks, against a
plain-loop reference that buckets the raw trades itself."""
from __future__ import annotations

import pytest

from actors.features.bars import BarBuilder
from ipc.names import BAR_TFS, TIMEFRAME_SEC as TF_SEC
from actors.features.rvol import Rvol
from tests.support.fixtures import BINANCE, load_hftbacktest
from tests.support.trades import chunks

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SPOT_TRADES = BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log"
SEC = 1_000_000_000


def ref_rvol(ts_list, q_list, tf_sec, n):
    """(rvol, volume of the newest closed bar, number of full closed bars) by plain loops.

    Buckets from the first trade's (partial, skipped) to the newest trade's (still open);
    a bucket without trades has volume 0."""
    tf = tf_sec * SEC
    vol = {}
    for ts, q in zip(ts_list, q_list):
        k = ts // tf
        vol[k] = vol.get(k, 0.0) + q
    first, last = ts_list[0] // tf, ts_list[-1] // tf
    closed = [vol.get(k, 0.0) for k in range(first + 1, last)]
    if not closed:
        return None, None, 0
    if len(closed) < n + 1:
        return None, closed[-1], len(closed)
    total = 0.0
    for v in closed[-n - 1:-1]:
        total += v
    mean = total / n
    return (closed[-1] / mean if mean > 0 else None), closed[-1], len(closed)


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
@pytest.mark.parametrize("tf,n", [("5s", 20), ("15s", 5), ("1m", 1)])
def test_rvol_matches_reference(path, tf, n):
    trades = load_hftbacktest(path, "trade")
    ts_all, q_all = trades["ts_event_ns"].tolist(), trades["qty"].tolist()
    bb = {t: BarBuilder(t, "x") for t in BAR_TFS}
    rv = Rvol(tf, n, venue="x")
    computed = 0
    for a, z in chunks(len(trades), 17, top=300):
        closed = []
        for b in bb.values():
            closed.extend(b.update(trades[a:z]))
        rv.update(closed)                      # bars of every tf mixed, as compute collects them
        if z == 0:
            continue
        snap = rv.snapshot()
        r, v, nbars = ref_rvol(ts_all[:z], q_all[:z], TF_SEC[tf], n)
        if nbars == 0:
            assert snap["rvol"] is None and snap["reason"] == "no closed bar yet"
            continue
        assert snap["volume"] == pytest.approx(v, rel=1e-9, abs=1e-12)
        assert snap["bars"] == min(nbars, n + 1)
        if r is None:
            assert snap["rvol"] is None
            assert snap["reason"].startswith("warming up") or snap["reason"].startswith("no volume")
        else:
            assert snap["rvol"] == pytest.approx(r, rel=1e-9)
            computed += 1
    assert computed > 0


def bar(start_s, volume, tf="5s", partial=False, closed=True, venue="x"):
    return {"tf": tf, "venue": venue, "start_ns": start_s * SEC, "end_ns": (start_s + TF_SEC[tf]) * SEC,
            "volume": volume, "closed": closed, "partial": partial}


def test_rvol_exact_values_partial_empty_and_holes():
    rv = Rvol("5s", 3, venue="x")
    assert rv.snapshot()["reason"] == "no closed bar yet"
    rv.update([])
    rv.update([bar(0, 99.0, partial=True), bar(5, 2.0), bar(10, 0.0), bar(15, 4.0)])
    snap = rv.snapshot()
    assert snap["rvol"] is None and snap["reason"] == "warming up: 2 of 3 previous bars"
    rv.update([bar(20, 3.0), bar(20, 50.0), bar(25, 1.0, closed=False), bar(25, 7.0, tf="15s"),
               bar(25, 7.0, venue="y")])
    snap = rv.snapshot(now_ns=27 * SEC)
    # newest 3.0 over mean(2, 0, 4) = 2; the repeated bar, the open one and other tf/venue ignored
    assert snap["rvol"] == 1.5 and snap["mean_volume"] == 2.0 and snap["bar_end_ns"] == 25 * SEC
    assert snap["age_ms"] == 2000.0
    rv.update([bar(25, 0.0), bar(30, 0.0), bar(35, 0.0), bar(40, 0.0)])
    snap = rv.snapshot()
    assert snap["rvol"] is None and snap["reason"] == "no volume in the previous 3 bars"
    # a hole (bars 45..55 missing): the history restarts
    rv.update([bar(60, 5.0)])
    snap = rv.snapshot()
    assert rv.restarts == 1 and snap["bars"] == 1 and snap["rvol"] is None
    assert snap["reason"] == "warming up: 0 of 3 previous bars"


def test_rvol_from_settings():
    from config.settings import Settings
    assert Rvol.from_settings(Settings(), "1m").n == 20
