"""Basis (futures vs spot mid) on the real 2024-08-08 bookTicker captures, against a plain-loop
reference at many sampled instants; mark premium and funding on a markPrice frame of Binance's
documented shape (no real markPrice capture exists).

Alignment is by receive time (`ts_recv_ns`): the spot bookTicker carries no exchange time, so
"the quotes in effect at instant t" are the newest of each venue received at or before t.
"""
from __future__ import annotations

import numpy as np
import pytest

from actors.features.basis import Basis
from actors.venues.binance.parse import parse_frame
from ipc.schema import MARK, QUOTE
from tests.support.fixtures import BINANCE, load_hftbacktest

FUT_QUOTES = BINANCE / "futures_btcusdt_bookTicker_stream_2024-08-08.log"
SPOT_QUOTES = BINANCE / "spot_btcusdt_bookTicker_stream_2024-08-08.log"
MS = 1_000_000


def instants(fut, spot, seed):
    """Sorted sample instants on the receive clock: before, during and after the overlap."""
    rng = np.random.default_rng(seed)
    lo = int(spot["ts_recv_ns"][0]) - 50 * MS
    hi = int(fut["ts_recv_ns"][-1]) + 3000 * MS
    base = np.sort(rng.integers(lo, hi, 700))
    # also exactly at receive times, where "≤ t" matters
    exact = fut["ts_recv_ns"][::97]
    return sorted(set(base.tolist()) | set(exact.tolist()) | {int(spot["ts_recv_ns"][0])})


@pytest.mark.parametrize("max_age_ms", [100.0, 2000.0])
def test_basis_matches_reference(max_age_ms):
    fut = load_hftbacktest(FUT_QUOTES, "quote")
    spot = load_hftbacktest(SPOT_QUOTES, "quote")
    assert (spot["ts_event_ns"] == 0).all()        # hence the alignment by receive time
    f_recv, s_recv = fut["ts_recv_ns"].tolist(), spot["ts_recv_ns"].tolist()
    f_bid, f_ask = fut["bid"].tolist(), fut["ask"].tolist()
    s_bid, s_ask = spot["bid"].tolist(), spot["ask"].tolist()
    basis = Basis(max_age_ms=max_age_ms)
    fi = si = 0            # engine cursors (what a ring reader has delivered)
    rf = rs = -1           # reference: index of the newest quote received at or before t
    seen = {"ok": 0, "stale": 0, "missing": 0}
    for t in instants(fut, spot, 1):
        fz = int(np.searchsorted(fut["ts_recv_ns"], t, side="right"))
        sz = int(np.searchsorted(spot["ts_recv_ns"], t, side="right"))
        basis.update_futures(fut[fi:fz])
        basis.update_spot(spot[si:sz])
        fi, si = fz, sz
        snap = basis.snapshot(now_ns=t)
        while rf + 1 < len(f_recv) and f_recv[rf + 1] <= t:
            rf += 1
        while rs + 1 < len(s_recv) and s_recv[rs + 1] <= t:
            rs += 1
        if rf < 0 or rs < 0:
            assert snap["basis_bps"] is None and "quote yet" in snap["basis_reason"]
            seen["missing"] += 1
            continue
        max_age = max_age_ms * MS
        fresh = t - f_recv[rf] <= max_age and t - s_recv[rs] <= max_age
        assert snap["futures_age_ms"] == pytest.approx((t - f_recv[rf]) / 1e6, abs=1e-9)
        assert snap["skew_ms"] == pytest.approx((f_recv[rf] - s_recv[rs]) / 1e6, abs=1e-9)
        if not fresh:
            assert snap["basis_bps"] is None and "stale" in snap["basis_reason"]
            seen["stale"] += 1
            continue
        fmid = (f_bid[rf] + f_ask[rf]) / 2
        smid = (s_bid[rs] + s_ask[rs]) / 2
        ref = (fmid - smid) / smid * 10000
        assert snap["futures_mid"] == pytest.approx(fmid, rel=1e-12)
        assert snap["spot_mid"] == pytest.approx(smid, rel=1e-12)
        assert snap["basis_bps"] == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert "basis_reason" not in snap
        seen["ok"] += 1
    assert seen["ok"] > 100 and seen["stale"] > 10 and seen["missing"] >= 1


def quote(recv, bid, ask, bq=1.0, aq=1.0):
    q = np.zeros(1, dtype=QUOTE)
    q["ts_recv_ns"], q["bid"], q["ask"], q["bid_qty"], q["ask_qty"] = recv, bid, ask, bq, aq
    return q


def test_basis_exact_value_and_bad_quotes():
    b = Basis(max_age_ms=1000)
    snap = b.snapshot(now_ns=10)
    assert snap["basis_reason"] == "no futures quote yet; no spot quote yet"
    b.update_futures(quote(1_000 * MS, 60010.0, 60012.0))
    b.update_spot(np.zeros(0, dtype=QUOTE))
    b.update_spot(quote(1_200 * MS, 59990.0, 59990.5))
    snap = b.snapshot(now_ns=1_900 * MS)
    assert snap["basis_bps"] == pytest.approx((60011.0 - 59990.25) / 59990.25 * 1e4, rel=1e-12)
    assert snap["skew_ms"] == -200.0 and snap["spot_age_ms"] == 700.0
    # futures exactly max_age old is still fresh; 1 ns more is stale
    assert b.snapshot(now_ns=2_000 * MS)["basis_bps"] is not None
    snap = b.snapshot(now_ns=2_000 * MS + 1)
    assert snap["basis_bps"] is None and snap["basis_reason"].startswith("futures quote stale")
    b.update_spot(quote(1_950 * MS, 60000.0, 59999.0))
    assert b.snapshot(now_ns=1_960 * MS)["basis_reason"] == "spot crossed quote"
    b.update_spot(quote(1_950 * MS, 0.0, 59999.0))
    assert b.snapshot(now_ns=1_960 * MS)["basis_reason"] == "spot empty quote"


# Binance's documented markPriceUpdate shape (as in tests/unit/test_binance_parsers.py): mark
# 11794.15, index 11784.62659091, funding rate 0.00038167, next funding 1562306400000 ms, E 1562305380000
MARK_FRAME = (b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
              b'"s":"BTCUSDT","p":"11794.15000000","P":"11784.25641265",'
              b'"i":"11784.62659091","r":"0.00038167","T":1562306400000}}')


def mark_rec(frame: bytes, recv: int) -> np.ndarray:
    d = parse_frame(frame, recv)
    assert d.kind == "mark"
    return np.array(list(d.recs), dtype=MARK)


def test_mark_premium_and_funding_exact():
    e = 1562305380000 * MS
    recv = e + 40 * MS
    b = Basis(max_age_ms=1000, mark_max_age_ms=5000)
    assert b.snapshot(now_ns=recv)["mark_reason"] == "no mark price yet"
    b.update_mark(mark_rec(MARK_FRAME, recv))
    snap = b.snapshot(now_ns=recv + 2_500 * MS)
    assert snap["mark"] == 11794.15 and snap["index"] == 11784.62659091
    assert snap["premium_bps"] == pytest.approx((11794.15 - 11784.62659091) / 11784.62659091 * 1e4,
                                                rel=1e-12)   # ≈ 8.08 bp
    assert snap["funding_rate"] == 0.00038167
    assert snap["funding_bps"] == pytest.approx(3.8167, rel=1e-12)
    assert snap["next_funding_ns"] == 1562306400000 * MS
    # 1020 s from E to T, minus the 2.5 s elapsed since the record was received
    assert snap["time_to_funding_sec"] == pytest.approx(1020 - 2.5, abs=1e-9)
    assert snap["mark_age_ms"] == 2500.0 and snap["mark_ts_ns"] == e
    stale = b.snapshot(now_ns=recv + 5_000 * MS + 1)
    assert stale["premium_bps"] is None and stale["funding_rate"] is None
    assert stale["mark_reason"].startswith("mark price stale")


def test_mark_without_index_or_funding_fields():
    frame = MARK_FRAME.replace(b'"i":"11784.62659091",', b"").replace(b'"r":"0.00038167",', b"")
    frame = frame.replace(b',"T":1562306400000', b"")
    b = Basis()
    b.update_mark(mark_rec(frame, 5))
    snap = b.snapshot(now_ns=6)
    assert snap["mark"] == 11794.15
    assert snap["premium_bps"] is None and snap["premium_reason"] == "no index price in the mark record"
    assert snap["funding_rate"] is None and "funding_reason" in snap
    assert snap["time_to_funding_sec"] is None and "next_funding_reason" in snap


def test_basis_from_settings():
    from config.settings import Settings
    b = Basis.from_settings(Settings())
    assert (b.max_age_ns, b.mark_max_age_ns) == (2000 * MS, 5000 * MS)
