"""Feature math against plain-loop reference computations on real Binance captures (2024-08-08).

The references are written independently here (plain Python over the decoded frames), and the
engine is fed the same records in uneven chunks, as compute would read them from a ring.
"""
from __future__ import annotations


import numpy as np
import pytest

from actors.features.bars import BarBuilder
from ipc.names import BAR_TFS, TIMEFRAME_SEC as TF_SEC
from actors.features.book import top_of_book
from actors.features.flow import DAY_NS, Cvd
from tests.support.fixtures import BINANCE, load_hftbacktest

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SPOT_TRADES = BINANCE / "spot_btcusdt_trade_stream_2024-08-08.log"
FUT_QUOTES = BINANCE / "futures_btcusdt_bookTicker_stream_2024-08-08.log"
SPOT_QUOTES = BINANCE / "spot_btcusdt_bookTicker_stream_2024-08-08.log"


def rel(a, b):
    return pytest.approx(b, rel=1e-9, abs=1e-12)


def reference_bars(trades: np.ndarray, tf_sec: int) -> tuple[list[dict], int]:
    """Plain loops: one bar per bucket that saw an on-time trade, plus the late count."""
    tf_ns = tf_sec * 1_000_000_000
    bars: dict[int, dict] = {}
    open_bucket = None
    late = 0
    cols = zip(*(trades[f].tolist() for f in ("ts_event_ns", "price", "qty", "side", "trade_id")))
    for ts, price, qty, side, tid in cols:
        k = ts // tf_ns
        if open_bucket is not None and k < open_bucket:
            late += 1
            continue
        open_bucket = k
        b = bars.get(k)
        if b is None:
            b = bars[k] = {"open": price, "high": price, "low": price, "volume": 0.0, "buy": 0.0,
                           "sell": 0.0, "notional": 0.0, "trades": 0, "first": tid}
        b["high"] = max(b["high"], price)
        b["low"] = min(b["low"], price)
        b["close"] = price
        b["volume"] += qty
        b["notional"] += price * qty
        if side > 0:
            b["buy"] += qty
        else:
            b["sell"] += qty
        b["trades"] += 1
        b["last"] = tid
        b["start_ns"] = k * tf_ns
    return [bars[k] for k in sorted(bars)], late


def chunks(n: int, seed: int):
    rng = np.random.default_rng(seed)
    i = 0
    while i < n:
        step = int(rng.integers(1, 400))
        yield i, min(n, i + step)
        i += step


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
@pytest.mark.parametrize("tf", list(BAR_TFS))
def test_bars_match_reference(path, tf):
    trades = load_hftbacktest(path, "trade")
    ref, ref_late = reference_bars(trades, TF_SEC[tf])
    b = BarBuilder(tf, "x")
    closed = []
    for a, z in chunks(len(trades), 7):
        closed.extend(b.update(trades[a:z]))
    closed.append(b.snapshot())
    got = [c for c in closed if c["trades"] > 0]
    assert b.late == ref_late
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g["start_ns"] == r["start_ns"]
        assert (g["open"], g["high"], g["low"], g["close"]) == (r["open"], r["high"], r["low"], r["close"])
        assert g["trades"] == r["trades"]
        assert (g["first_trade_id"], g["last_trade_id"]) == (r["first"], r["last"])
        assert g["volume"] == rel(g, r["volume"])
        assert g["buy_volume"] == rel(g, r["buy"])
        assert g["sell_volume"] == rel(g, r["sell"])
        assert g["delta"] == rel(g, r["buy"] - r["sell"])
        assert g["vwap"] == rel(g, r["notional"] / r["volume"])
    # every bucket between the first and the last is present, empty ones flat at the last close
    starts = [c["start_ns"] for c in closed]
    assert starts == list(range(starts[0], starts[-1] + 1, TF_SEC[tf] * 1_000_000_000))
    for prev, cur in zip(closed, closed[1:]):
        if cur["trades"] == 0:
            assert cur["open"] == cur["close"] == prev["close"] and cur["vwap"] is None


def test_bars_of_the_futures_capture_exact_values():
    """Pin a few values of the first complete 1m bar, so a change in definitions shows."""
    trades = load_hftbacktest(FUT_TRADES, "trade")
    ref, _ = reference_bars(trades, 60)
    b = BarBuilder("1m", "futures")
    closed = b.update(trades)
    first_full = closed[1]
    assert first_full["start_ns"] == ref[1]["start_ns"]
    assert first_full["start_ns"] % 60_000_000_000 == 0
    assert first_full["trades"] == ref[1]["trades"]
    assert closed[0]["partial"] is True and first_full["partial"] is False


def test_close_due_closes_on_event_clock_with_grace():
    trades = load_hftbacktest(FUT_TRADES, "trade")[:50]
    b = BarBuilder("5s", "futures", grace_ns=250_000_000)
    b.update(trades)
    end = (b.bucket + 1) * b.tf_ns
    assert b.close_due(end + 249_000_000) == []
    out = b.close_due(end + 250_000_000)
    assert len(out) == 1 and out[0]["end_ns"] == end and out[0]["closed"] is True
    assert b.bucket * b.tf_ns == end


@pytest.mark.parametrize("path", [FUT_TRADES, SPOT_TRADES], ids=["futures", "spot"])
def test_cvd_matches_reference(path):
    trades = load_hftbacktest(path, "trade")
    cvd = Cvd()
    for a, z in chunks(len(trades), 11):
        cvd.update(trades[a:z])
    # the session anchor is 00:00 UTC of the latest trade: the spot capture crosses midnight
    anchor = max(trades["ts_event_ns"].tolist()) // DAY_NS * DAY_NS
    ref, n = 0.0, 0
    for ts, qty, side in zip(trades["ts_event_ns"].tolist(), trades["qty"].tolist(),
                             trades["side"].tolist()):
        if ts >= anchor:
            ref += qty if side > 0 else -qty
            n += 1
    snap = cvd.snapshot()
    assert snap["cvd"] == pytest.approx(ref, rel=1e-9)
    assert snap["trades"] == n
    assert snap["anchor_ns"] == anchor
    assert snap["last_trade_id"] == int(trades["trade_id"][-1])


def test_cvd_explicit_anchor_ignores_earlier_trades():
    trades = load_hftbacktest(FUT_TRADES, "trade")
    mid = int(trades["ts_event_ns"][len(trades) // 2])
    cvd = Cvd(anchor_ns=mid)
    cvd.update(trades)
    ref = sum((q if sd > 0 else -q) for ts, q, sd in zip(trades["ts_event_ns"].tolist(),
              trades["qty"].tolist(), trades["side"].tolist()) if ts >= mid)
    assert cvd.value == pytest.approx(ref, rel=1e-9)
    assert cvd.from_ns >= mid


def test_cvd_rolls_at_utc_midnight():
    from ipc.schema import TRADE
    t = np.zeros(3, dtype=TRADE)
    t["ts_event_ns"] = [DAY_NS - 2, DAY_NS - 1, DAY_NS + 5]
    t["qty"], t["side"], t["trade_id"] = [1.0, 2.0, 4.0], [1, -1, 1], [1, 2, 3]
    cvd = Cvd()
    cvd.update(t[:2])
    assert cvd.value == -1.0 and cvd.anchor_ns == 0
    cvd.update(t[2:])
    assert cvd.value == 4.0 and cvd.anchor_ns == DAY_NS and cvd.trades == 1


@pytest.mark.parametrize("path", [FUT_QUOTES, SPOT_QUOTES], ids=["futures", "spot"])
def test_microprice_matches_reference(path):
    quotes = load_hftbacktest(path, "quote")
    sample = quotes[:: max(1, len(quotes) // 500)]
    for bid, bq, ask, aq in zip(*(sample[f].tolist() for f in ("bid", "bid_qty", "ask", "ask_qty"))):
        got = top_of_book(bid, bq, ask, aq)
        assert got["microprice"] == pytest.approx((bid * aq + ask * bq) / (bq + aq), rel=1e-12)
        assert got["mid"] == pytest.approx((bid + ask) / 2, rel=1e-12)
        assert got["spread_bps"] == pytest.approx((ask - bid) / ((bid + ask) / 2) * 1e4, rel=1e-9)
        assert got["imbalance"] == pytest.approx((bq - aq) / (bq + aq), rel=1e-9, abs=1e-15)
        assert bid <= got["microprice"] <= ask


def test_microprice_first_futures_quote_exact():
    quotes = load_hftbacktest(FUT_QUOTES, "quote")
    q = quotes[0]
    got = top_of_book(float(q["bid"]), float(q["bid_qty"]), float(q["ask"]), float(q["ask_qty"]))
    # b=61800.20 B=2.507 a=61800.30 A=2.510 (first line of the capture)
    assert got["microprice"] == pytest.approx((61800.20 * 2.510 + 61800.30 * 2.507) / (2.507 + 2.510), rel=1e-15)


def test_book_rejects_crossed_and_empty():
    assert top_of_book(0.0, 1.0, 10.0, 1.0)["microprice"] is None
    crossed = top_of_book(11.0, 1.0, 10.0, 1.0)
    assert crossed["microprice"] is None and crossed["reason"] == "crossed quote"
