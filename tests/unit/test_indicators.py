"""actors/features/indicators.py against TA-Lib (the C library TAAPI is built on), on real Binance
data from ../shared/fixtures/binance (read in place, never copied):

- `spot_klines_rest.json`: a real `GET /api/v3/klines` answer (10 one-minute rows, 2021-10-22),
  parsed by the context's own parser; too short for the default periods, so short ones are used;
- 1-second klines built from three real trade captures (Binance's own 1s klines are the same
  aggregation: OHLC of the trades in each second, a second without trades flat at the previous
  close): spot `@trade` 2024-08-08 (346 s), USD-M `@trade` 2024-08-08 (224 s), spot
  `@aggTrade` 2021-04-04 (92 s). No capture holds a long real kline series (SOURCES.md: the
  kline stream captures span two minutes), so these are the longest real price paths there are.

Every output position is compared, so the lookback (where TA-Lib gives NaN) and the seeding
conventions are checked, not just the last value; the tolerance is 1e-12 relative.
"""
from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from actors.features import indicators as ind
from actors.venues.binance import rest as br
from tests.support.fixtures import BINANCE, need

talib = pytest.importorskip("talib", reason="TA-Lib (requirements-dev.txt) is the reference")

FIX = need(BINANCE, module=True)

RTOL = 1e-12
TRADE_CAPTURES = {
    "spot_trade_2024": "spot_btcusdt_trade_stream_2024-08-08.log",
    "futures_trade_2024": "futures_btcusdt_trade_stream_2024-08-08.log",
    "spot_aggtrade_2021": "spot_btcusdt_aggTrade_stream_2021-04-04.log",
}


def klines_1s(name: str) -> dict[str, np.ndarray]:
    """1 s OHLC of a real trade capture (lines `<recv time> <combined-stream frame>`)."""
    trades = []
    for line in (FIX / name).read_bytes().splitlines():
        if b"{" not in line:
            continue
        d = orjson.loads(line[line.index(b"{"):])["data"]
        if d.get("X", "MARKET") == "MARKET":
            trades.append((int(d["T"]), float(d["p"])))
    t = np.array([x[0] for x in trades]) // 1000
    p = np.array([x[1] for x in trades])
    assert (np.diff(t) >= 0).all()
    secs = np.arange(t[0], t[-1] + 1)
    o, h, lo, c = (np.empty(len(secs)) for _ in range(4))
    prev = p[0]
    for i, s in enumerate(secs):
        px = p[(t == s)]
        if len(px):
            o[i], h[i], lo[i], c[i] = px[0], px.max(), px.min(), px[-1]
        else:                       # no trade this second: Binance's kline is flat at the close
            o[i] = h[i] = lo[i] = c[i] = prev
        prev = c[i]
    return {"open": o, "high": h, "low": lo, "close": c}


@pytest.fixture(scope="module", params=sorted(TRADE_CAPTURES))
def real(request):
    k = klines_1s(TRADE_CAPTURES[request.param])
    assert len(k["close"]) >= 90 and np.ptp(k["close"]) > 0
    return k


@pytest.fixture(scope="module")
def rest_klines():
    recs = br.parse_klines((FIX / "spot_klines_rest.json").read_bytes(), "1m", 0, 2**62)
    assert len(recs) == 10 and recs["closed"].all()
    return recs


def same(mine, ref, rtol=RTOL, atol=0.0):
    mine, ref = np.asarray(mine), np.asarray(ref)
    assert mine.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref), err_msg="lookback (NaN) differs")
    np.testing.assert_allclose(mine[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=rtol, atol=atol)


# --- every position, default periods, real 1 s klines --------------------------------------------

def test_ema_sma(real):
    c = real["close"]
    for n in (5, 12, 20, 26, 30):
        same(ind.ema(c, n), talib.EMA(c, timeperiod=n))
        same(ind.sma(c, n), talib.SMA(c, timeperiod=n))


def test_rsi(real):
    c = real["close"]
    for n in (2, 7, 14):
        same(ind.rsi(c, n), talib.RSI(c, timeperiod=n))


def test_macd(real):
    c = real["close"]
    for fast, slow, sig in ((12, 26, 9), (5, 13, 4), (26, 12, 9)):     # TA-Lib swaps fast > slow
        ref = talib.MACD(c, fastperiod=fast, slowperiod=slow, signalperiod=sig)
        mine = ind.macd(c, fast, slow, sig)
        scale = float(np.nanmax(np.abs(ref[0])))
        for m, r in zip(mine, ref):
            # the histogram is a difference of near-equal numbers: tolerance on the line's scale
            same(m, r, atol=RTOL * scale)


def test_atr(real):
    h, lo, c = real["high"], real["low"], real["close"]
    same(ind.true_range(h, lo, c), talib.TRANGE(h, lo, c))
    for n in (2, 5, 14):
        same(ind.atr(h, lo, c, n), talib.ATR(h, lo, c, timeperiod=n))


def test_bbands(real):
    c = real["close"]
    for n, k in ((20, 2.0), (5, 2.0), (20, 1.5)):
        ref = talib.BBANDS(c, timeperiod=n, nbdevup=k, nbdevdn=k, matype=0)
        for m, r in zip(ind.bbands(c, n, k), ref):
            same(m, r)
        # the band width itself (σ), not only band levels dominated by the price
        same(ind.bbands(c, n, k)[0] - ind.bbands(c, n, k)[1], ref[0] - ref[1], rtol=1e-9)


# --- the bundle: TAAPI's field names, last values ----------------------------------------------------

def test_bundle_last_values_match_talib(real):
    values, errors = ind.bundle(real["close"], real["high"], real["low"])
    assert errors == {}
    w = slice(-ind.WINDOW, None)            # the bundle's window (test_bundle_uses_the_newest_window)
    c, h, lo = real["close"][w], real["high"][w], real["low"][w]
    m, s, hist = talib.MACD(c, 12, 26, 9)
    up, mid, low = talib.BBANDS(c, 20, 2, 2, 0)
    expect = {
        "rsi": {"value": talib.RSI(c, 14)[-1]},
        "macd": {"valueMACD": m[-1], "valueMACDSignal": s[-1], "valueMACDHist": hist[-1]},
        "ema": {"value": talib.EMA(c, 20)[-1]},
        "atr": {"value": talib.ATR(h, lo, c, 14)[-1]},
        "bbands": {"valueUpperBand": up[-1], "valueMiddleBand": mid[-1], "valueLowerBand": low[-1]},
    }
    assert {k: sorted(v) for k, v in values.items()} == {k: sorted(v) for k, v in expect.items()}
    for name, fields in expect.items():
        for f, ref in fields.items():
            atol = RTOL * abs(m[-1]) if f == "valueMACDHist" else 0.0
            assert values[name][f] == pytest.approx(float(ref), rel=RTOL, abs=atol), (name, f)
            assert type(values[name][f]) is float


def test_bundle_uses_the_newest_window():
    k = klines_1s(TRADE_CAPTURES["spot_trade_2024"])
    c, h, lo = k["close"], k["high"], k["low"]
    assert len(c) > ind.WINDOW
    values, _ = ind.bundle(c, h, lo)
    w = slice(-ind.WINDOW, None)
    assert values["ema"]["value"] == pytest.approx(talib.EMA(c[w], 20)[-1], rel=RTOL)
    assert values["macd"]["valueMACD"] == pytest.approx(talib.MACD(c[w], 12, 26, 9)[0][-1], rel=RTOL)
    assert values["atr"]["value"] == pytest.approx(talib.ATR(h[w], lo[w], c[w], 14)[-1], rel=RTOL)


def test_bundle_null_with_reason_when_too_short_or_not_finite(real):
    c, h, lo = real["close"], real["high"], real["low"]
    values, errors = ind.bundle(c[:25], h[:25], lo[:25])
    assert values["macd"] is None and errors["macd"] == "needs 34 klines, have 25"
    assert values["rsi"] is not None and values["bbands"] is not None and values["ema"] is not None
    values, errors = ind.bundle(c[:14], h[:14], lo[:14])
    assert values["rsi"] is None and errors["rsi"] == "needs 15 klines, have 14"
    assert values["atr"] is None and values["ema"] is None and values["bbands"] is None
    bad = c.copy()
    bad[-3] = math.nan
    values, errors = ind.bundle(bad, h, lo)
    assert all(v is None for v in values.values())
    assert set(errors.values()) == {"non-finite kline values"}
    with pytest.raises(ValueError, match="lengths differ"):
        ind.bundle(c, h[:-1], lo)


# --- the real REST klines, through the context's parser ---------------------------------------------

def test_real_rest_klines_short_periods(rest_klines):
    c, h, lo = (np.ascontiguousarray(rest_klines[f]) for f in ("close", "high", "low"))
    same(ind.ema(c, 5), talib.EMA(c, 5))
    same(ind.rsi(c, 5), talib.RSI(c, 5))
    same(ind.atr(h, lo, c, 5), talib.ATR(h, lo, c, 5))
    for m, r in zip(ind.bbands(c, 5, 2.0), talib.BBANDS(c, 5, 2, 2, 0)):
        same(m, r)
    for m, r in zip(ind.macd(c, 3, 5, 3), talib.MACD(c, 3, 5, 3)):
        same(m, r, atol=RTOL * 100)
    # known values of that response (BTCUSDT 1m, 2021-10-22 23:03..23:12 UTC)
    assert c[0] == 60719.27 and ind.sma(c, 10)[-1] == pytest.approx(float(np.mean(c)), rel=1e-15)


def test_flat_series_edge_cases():
    c = np.full(60, 60000.0)
    assert ind.rsi(c, 14)[-1] == talib.RSI(c, 14)[-1] == 0.0          # TA-Lib: 0 when flat
    up, mid, lo = ind.bbands(c, 20, 2.0)
    assert up[-1] == mid[-1] == lo[-1] == 60000.0
    assert ind.atr(c, c, c, 14)[-1] == 0.0
