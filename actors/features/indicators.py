"""Technical indicators over kline arrays, computed the way TA-Lib computes them (TAAPI is TA-Lib
based, so the local fallback and TAAPI report the same numbers): RSI, MACD, EMA, ATR, Bollinger.

Invariants:
- pure: float64 arrays in (oldest first), arrays of the input's length out, NaN where TA-Lib gives
  no value (its lookback); no I/O, no clock;
- TA-Lib's conventions (default compatibility, no unstable period):
  * EMA(n): k = 2/(n+1), seeded with the SMA of the first n inputs, first value at index n-1;
  * RSI(n) and ATR(n): Wilder smoothing `avg = (avg·(n-1) + x)/n`, seeded with the simple average
    of the first n changes / true ranges, first value at index n;
  * MACD(fast, slow, signal): both EMAs start at index slow-1, so the fast EMA is seeded with the
    SMA of the `fast` inputs ending there (not the first `fast` inputs: TA-Lib's well-known quirk);
    the signal is an EMA of the MACD line; all three first appear at index slow+signal-2;
  * BBANDS(n, k): middle = SMA(n), σ = the window's population standard deviation, bands =
    middle ± k·σ;
  the recursions repeat TA-Lib's operations in TA-Lib's order (running sums, multiply-then-divide),
  so EMA/SMA/MACD line are bit-identical and the rest agree to ~1e-14 (Bollinger σ: 1e-12);
- recursive indicators (EMA, MACD, RSI, ATR) depend on where the series starts; `bundle` always
  uses the newest WINDOW klines, where the start's weight is ~1e-9 ((13/14)^286 for RSI 14), so a
  longer history moves a value by ~1e-9 of itself, and the TAAPI sim and the local path (same
  klines, same window) agree exactly;
- `bundle` returns TAAPI's bulk field names: {"rsi": {"value"}, "macd": {"valueMACD",
  "valueMACDSignal", "valueMACDHist"}, "ema": {"value"}, "atr": {"value"}, "bbands":
  {"valueUpperBand", "valueMiddleBand", "valueLowerBand"}}; an indicator that cannot be computed
  (too few klines, a non-finite input) is None with a reason in the second dict, never a number.
"""
from __future__ import annotations

import numpy as np

from ipc.names import INDICATOR_FIELDS as FIELDS, INDICATOR_PARAMS as PARAMS, INDICATORS

__all__ = ["ema", "sma", "rsi", "macd", "atr", "bbands", "true_range", "bundle", "bundle_klines",
           "PARAMS", "FIELDS", "INDICATORS", "WINDOW", "min_klines"]

# klines an indicator bundle is computed over (the newest ones)
WINDOW = 300

_TA_EPSILON = 0.00000001      # TA-Lib's TA_IS_ZERO / TA_IS_ZERO_OR_NEG threshold


def _arr(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def sma(x, n: int) -> np.ndarray:
    """Simple moving average, TA-Lib's running sum (first value at index n-1)."""
    x = _arr(x)
    out = _nan(len(x))
    if n < 1 or len(x) < n:
        return out
    xs = x.tolist()
    total = 0.0
    for i in range(n - 1):
        total += xs[i]
    trailing = 0
    for i in range(n - 1, len(xs)):
        total += xs[i]
        out[i] = total / n
        total -= xs[trailing]
        trailing += 1
    return out


def _ema_from(xs: list[float], n: int, start: int) -> list[float]:
    """EMA(n) values from index `start` on, seeded with the SMA of xs[start-n+1 .. start]."""
    total = 0.0
    for i in range(start - n + 1, start + 1):
        total += xs[i]
    prev = total / n
    k = 2.0 / (n + 1)
    out = [prev]
    for i in range(start + 1, len(xs)):
        prev = (xs[i] - prev) * k + prev
        out.append(prev)
    return out


def ema(x, n: int) -> np.ndarray:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n inputs."""
    x = _arr(x)
    out = _nan(len(x))
    if n < 1 or len(x) < n:
        return out
    out[n - 1:] = _ema_from(x.tolist(), n, n - 1)
    return out


def macd(close, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, ...]:
    """(macd, signal, hist); TA-Lib seeds both EMAs at index slow-1 (see the module docstring)."""
    x = _arr(close)
    m, s, h = _nan(len(x)), _nan(len(x)), _nan(len(x))
    if slow < fast:                       # TA-Lib swaps them
        fast, slow = slow, fast
    start = slow - 1
    lookback = start + signal - 1
    if fast < 1 or signal < 1 or len(x) <= lookback:
        return m, s, h
    xs = x.tolist()
    slow_e = _ema_from(xs, slow, start)
    fast_e = _ema_from(xs, fast, start)
    line = [f - sl for f, sl in zip(fast_e, slow_e)]
    sig = _ema_from(line, signal, signal - 1)
    m[lookback:] = line[signal - 1:]
    s[lookback:] = sig
    h[lookback:] = m[lookback:] - s[lookback:]
    return m, s, h


def rsi(close, n: int = 14) -> np.ndarray:
    """Wilder's RSI; 0 where average gain + loss is (near) zero, as TA-Lib."""
    x = _arr(close)
    out = _nan(len(x))
    if n < 2 or len(x) <= n:
        return out
    xs = x.tolist()
    gain = loss = 0.0
    prev = xs[0]
    for i in range(1, n + 1):
        d = xs[i] - prev
        prev = xs[i]
        if d < 0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n

    def value(g: float, lo: float) -> float:
        t = g + lo
        return 100.0 * (g / t) if not -_TA_EPSILON < t < _TA_EPSILON else 0.0

    out[n] = value(gain, loss)
    for i in range(n + 1, len(xs)):
        d = xs[i] - prev
        prev = xs[i]
        loss *= n - 1
        gain *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        loss /= n
        gain /= n
        out[i] = value(gain, loss)
    return out


def true_range(high, low, close) -> np.ndarray:
    """TA-Lib's TRANGE: max(h−l, |c₋₁−h|, |c₋₁−l|), from index 1."""
    hi, lo, c = _arr(high), _arr(low), _arr(close)
    out = _nan(len(c))
    if len(c) > 1:
        prev_c = c[:-1]
        out[1:] = np.maximum(np.maximum(hi[1:] - lo[1:], np.abs(prev_c - hi[1:])),
                             np.abs(prev_c - lo[1:]))
    return out


def atr(high, low, close, n: int = 14) -> np.ndarray:
    """Wilder's average true range; first value (index n) is the mean of TR[1..n]."""
    c = _arr(close)
    out = _nan(len(c))
    if n < 2 or len(c) <= n:
        return out
    tr = true_range(high, low, close).tolist()
    total = 0.0
    for i in range(1, n + 1):
        total += tr[i]
    prev = total / n
    out[n] = prev
    for i in range(n + 1, len(tr)):
        prev *= n - 1
        prev += tr[i]
        prev /= n
        out[i] = prev
    return out


def bbands(close, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower): SMA(n) ± k·σ, σ the population standard deviation of the window.

    σ is taken around the window's mean (two passes), as the TA-Lib this is checked against
    (0.6+) does to within 1e-12: the old running E[x²] − mean² loses ~7 digits at BTC prices.
    """
    x = _arr(close)
    mid = sma(x, n)
    up, lo = _nan(len(x)), _nan(len(x))
    if n < 2 or len(x) < n:
        return up, mid, lo
    win = np.lib.stride_tricks.sliding_window_view(x, n)
    m = mid[n - 1:]
    var = ((win - m[:, None]) ** 2).mean(axis=1)
    # TA-Lib's TA_IS_ZERO_OR_NEG: a variance below 1e-8 is a flat window, σ = 0 exactly (the
    # running mean's last-ulp error would otherwise leave a 1e-10 band width)
    dev = np.sqrt(np.where(var < _TA_EPSILON, 0.0, var)) * k
    up[n - 1:] = m + dev
    lo[n - 1:] = m - dev
    return up, mid, lo


def min_klines(indicator: str) -> int:
    """Klines needed for the indicator's first value."""
    p = PARAMS[indicator]
    if indicator == "macd":
        return int(max(p["optInSlowPeriod"], p["optInFastPeriod"]) + p["optInSignalPeriod"] - 1)
    if indicator in ("rsi", "atr"):
        return int(p["period"]) + 1
    return int(p["period"])


def bundle(close, high, low) -> tuple[dict[str, dict | None], dict[str, str]]:
    """The newest value of every indicator over the newest WINDOW klines.

    Returns (values, errors): values[indicator] is a dict of TAAPI's field names, or None when it
    cannot be computed, with the reason in errors[indicator].
    """
    c, hi, lo = _arr(close), _arr(high), _arr(low)
    if not (len(c) == len(hi) == len(lo)):
        raise ValueError(f"close/high/low lengths differ: {len(c)}, {len(hi)}, {len(lo)}")
    c, hi, lo = c[-WINDOW:], hi[-WINDOW:], lo[-WINDOW:]
    values: dict[str, dict | None] = {}
    errors: dict[str, str] = {}
    finite = bool(np.isfinite(c).all() and np.isfinite(hi).all() and np.isfinite(lo).all())
    for name in INDICATORS:
        need = min_klines(name)
        if not finite:
            values[name], errors[name] = None, "non-finite kline values"
            continue
        if len(c) < need:
            values[name], errors[name] = None, f"needs {need} klines, have {len(c)}"
            continue
        p = PARAMS[name]
        if name == "rsi":
            out = (rsi(c, int(p["period"])),)
        elif name == "macd":
            out = macd(c, int(p["optInFastPeriod"]), int(p["optInSlowPeriod"]),
                       int(p["optInSignalPeriod"]))
        elif name == "ema":
            out = (ema(c, int(p["period"])),)
        elif name == "atr":
            out = (atr(hi, lo, c, int(p["period"])),)
        else:
            out = bbands(c, int(p["period"]), float(p["stddev"]))
        values[name] = {f: float(a[-1]) for f, a in zip(FIELDS[name], out)}
    return values, errors


def bundle_klines(recs: np.ndarray) -> tuple[dict[str, dict | None], dict[str, str]]:
    """`bundle` over KLINE records (ipc.schema.KLINE, oldest first, data records only)."""
    return bundle(recs["close"], recs["high"], recs["low"])
