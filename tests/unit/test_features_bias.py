"""Bias (multi-timeframe direction score) on real BTCUSDT 1m klines (spot_klines_rest.json, decoded
by actors.venues.binance.rest.parse_klines) and constructed klines of other timeframes, against
hand-computed values and a plain-loop reference of the definitions in actors/features/bias.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from actors.features.bias import Bias, parse_weights
from ipc.names import tf_sec
from actors.venues.binance.rest import parse_klines
from ipc.schema import KLINE
from tests.support.fixtures import BINANCE, need

MS = 1_000_000
RECV = 1634944380000 * MS + 5 * MS        # after the close of the last of the 10 rows


def spot_1m() -> np.ndarray:
    body = need(BINANCE / "spot_klines_rest.json").read_bytes()
    k = parse_klines(body, "1m", RECV)
    assert len(k) == 10 and k["closed"].all()
    return k


def ref_direction(highs, lows, closes, n, k):
    """Plain loops: the direction after these klines, None before n + 1 of them, "zero ATR"."""
    m = len(closes)
    if m < n + 1:
        return None
    ema = 0.0
    for i in range(n):
        ema += closes[i]
    ema /= n
    for i in range(n, m):
        ema = ema + 2.0 / (n + 1) * (closes[i] - ema)
    trs = []
    for i in range(1, m):
        trs.append(max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1])))
    atr = 0.0
    for i in range(n):
        atr += trs[i]
    atr /= n
    for tr in trs[n:]:
        atr = atr + (tr - atr) / n
    if atr == 0:
        return "zero ATR"
    return math.tanh(k * (closes[-1] - ema) / atr)


def test_direction_of_real_1m_klines_hand_computed():
    b = Bias({"1m": 1.0}, n=3, k=1.0)
    kl = spot_1m()
    b.update(kl[:3])
    snap = b.snapshot()
    assert snap["score"] is None and "warming up: 3 of 4 klines" in snap["reason"]
    b.update(kl[3:4])
    # closes 60719.27, 60771.81, 60768.71, 60786.56; EMA seed = their first 3 averaged,
    # α = 2/4: e4 = (60753.263333… + 60786.56) / 2 = 60769.911666…
    # TR2 = 60780.41 − 60707.00 = 73.41, TR3 = 60799.13 − 60745.24 = 53.89,
    # TR4 = 60807.52 − 60756.51 = 51.01; ATR4 = 178.31 / 3 = 59.436666…
    e4 = ((60719.27 + 60771.81 + 60768.71) / 3 + 60786.56) / 2
    a4 = (73.41 + 53.89 + 51.01) / 3
    d4 = math.tanh((60786.56 - e4) / a4)                  # ≈ tanh(0.2801) ≈ 0.2730
    snap = b.snapshot(now_ns=RECV + 1000 * MS)
    tf = snap["tfs"]["1m"]
    assert tf["ema"] == pytest.approx(e4, rel=1e-12) and tf["atr"] == pytest.approx(a4, rel=1e-9)
    assert tf["direction"] == pytest.approx(d4, rel=1e-9)
    assert d4 == pytest.approx(0.27302, abs=1e-4)
    assert snap["score"] == tf["direction"]               # one timeframe: the score is its direction
    assert tf["age_ms"] == 1000.0 and tf["last_close_ns"] == 1634944019999 * MS


@pytest.mark.parametrize("n,k", [(1, 1.0), (3, 0.5), (5, 2.0), (9, 1.0)])
def test_direction_matches_reference_in_uneven_chunks(n, k):
    kl = spot_1m()
    h, l, c = kl["high"].tolist(), kl["low"].tolist(), kl["close"].tolist()
    b = Bias({"1m": 1.0}, n=n, k=k)
    done = 0
    for a, z in ((0, 2), (2, 2), (2, 3), (3, 7), (7, 7), (7, 10)):
        b.update(kl[a:z])
        done = z
        ref = ref_direction(h[:done], l[:done], c[:done], n, k)
        got = b.snapshot()["tfs"]["1m"]
        if ref is None:
            assert got["direction"] is None and got["reason"].startswith("warming up")
        elif ref == "zero ATR":       # n = 1: the last row is flat at the previous close
            assert got["direction"] is None and got["reason"] == "zero ATR"
        else:
            assert got["direction"] == pytest.approx(ref, rel=1e-9, abs=1e-15)
            assert b.snapshot()["score"] == got["direction"]


def kline(tf_sec, i, o, h, l, c, closed=1, base_ms=1634943600000):
    r = np.zeros(1, dtype=KLINE)
    open_ns = (base_ms + i * tf_sec * 1000) * MS
    r["open_time_ns"], r["close_time_ns"] = open_ns, open_ns + tf_sec * 1000 * MS - MS
    r["ts_recv_ns"], r["tf_sec"], r["closed"] = RECV, tf_sec, closed
    r["open"], r["high"], r["low"], r["close"] = o, h, l, c
    return r


def test_score_combines_timeframes_with_weights():
    b = Bias("1m:1,5m:3,1h:0", n=2, k=1.0)
    # 5m: closes 100, 110, 104: EMA seed 105, e3 = 105 + (2/3)(104 − 105) = 104.333…;
    # TR2 = max(12, |112 − 100|, |100 − 100|) = 12, TR3 = max(10, |108 − 110|, |98 − 110|) = 12;
    # ATR3 = (12 + 12) / 2 = 12; d = tanh((104 − 104.333…) / 12)
    five = np.concatenate([kline(300, 0, 99, 101, 97, 100), kline(300, 1, 100, 112, 100, 110),
                           kline(300, 2, 110, 108, 98, 104)])
    kl = spot_1m()
    b.update(np.concatenate([kl[:2], five[:2]]))
    snap = b.snapshot()
    assert snap["score"] is None and snap["reason"].startswith("not ready: 1m (warming up")
    assert "5m (warming up: 2 of 3 klines)" in snap["reason"]
    assert "1h" not in snap["reason"]                  # weight 0: not required
    b.update(np.concatenate([kl[2:3], five[2:]]))
    d5 = math.tanh((104 - (105 + 2 / 3 * (104 - 105))) / 12)
    d1 = ref_direction(kl["high"][:3].tolist(), kl["low"][:3].tolist(), kl["close"][:3].tolist(),
                       2, 1.0)
    snap = b.snapshot()
    assert snap["tfs"]["5m"]["direction"] == pytest.approx(d5, rel=1e-12)
    assert snap["score"] == pytest.approx((1 * d1 + 3 * d5) / 4, rel=1e-12)
    assert -1 <= snap["score"] <= 1 and snap["tfs"]["1h"]["direction"] is None


def test_open_duplicate_and_hole():
    b = Bias({"5m": 1.0}, n=2, k=1.0)
    b.update(kline(300, 0, 1, 2, 0.5, 1.5))
    b.update(kline(300, 1, 1, 3, 1, 2, closed=0))       # an open kline: ignored
    b.update(kline(300, 0, 1, 2, 0.5, 9.0))             # not newer: a duplicate
    b.update(kline(60, 0, 1, 2, 0.5, 1.5))              # a timeframe without weight: ignored
    t = b.tfs["5m"]
    assert (t.m, t.dups) == (1, 1)
    b.update(np.concatenate([kline(300, 1, 1, 2, 1, 2), kline(300, 2, 2, 2, 2, 2)]))
    # closes 1.5, 2, 2: EMA seed 1.75, e3 = 1.75 + (2/3)·0.25 = 1.91666…;
    # TR2 = max(2 − 1, |2 − 1.5|, |1 − 1.5|) = 1, TR3 = max(0, 0, 0) = 0, ATR3 = 0.5
    assert b.snapshot()["score"] == pytest.approx(math.tanh((2 - (1.75 + 0.25 * 2 / 3)) / 0.5),
                                                  rel=1e-12)
    b.update(kline(300, 5, 2, 2, 2, 2))                 # klines 3 and 4 missing: restart
    snap = b.snapshot()
    assert t.restarts == 1 and snap["score"] is None
    assert snap["tfs"]["5m"]["reason"] == "warming up: 1 of 3 klines"
    b.update(np.concatenate([kline(300, 6, 2, 2, 2, 2), kline(300, 7, 2, 2, 2, 2)]))
    snap = b.snapshot()
    assert snap["score"] is None and snap["tfs"]["5m"]["reason"] == "zero ATR"


def test_weights_and_timeframes_parse():
    assert parse_weights(" 1m:1, 4h:2.5 ") == {"1m": 1.0, "4h": 2.5}
    assert tf_sec("15m") == 900 and tf_sec("1d") == 86400
    for bad in ("1m", "1m:1,xx:2", "1m:-1", "1m:0", "0m:1"):
        with pytest.raises(ValueError):
            parse_weights(bad)


def test_bias_from_settings():
    from config.settings import Settings
    b = Bias.from_settings(Settings())
    assert set(b.weights) == {"1m", "5m", "15m", "1h"} and (b.n, b.k) == (20, 1.0)   # = CONTEXT_TFS
    assert b.snapshot()["reason"].startswith("not ready: 1m (no closed kline yet)")
