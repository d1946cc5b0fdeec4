"""Exact sums of decimal prices and quantities, in integers. Pure.

Binance sends prices and quantities as decimal strings with at most 8 decimals, and its klines'
volumes are exact sums of those decimals. Sums kept in units of 1e-8 (quantity, price), 1e-16
(price·quantity) and 1e-24 (quantity·price²) as Python integers are therefore exact: they do not
depend on how the trades were chunked, and a sum rebuilt from klines (taker-buy volume, quote
volume) equals the sum of the same trades to the last unit. Values are converted to float once,
correctly rounded (Python's int / int).

A float that came from such a string is brought back to its units by rounding x·1e8, exact for
|x| below ~1e7 (the float's error is then far below half a unit); a venue with more than 8
decimals would be rounded to 8 (none of ours has).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np

SCALE = 10 ** 8


def units(x: np.ndarray) -> np.ndarray:
    """Floats (prices or quantities) as int64 units of 1e-8."""
    return np.rint(np.asarray(x, dtype=np.float64) * SCALE).astype(np.int64)


def dec_units(s: str, scale: int = SCALE) -> int:
    """A decimal string in units of 1/scale, exactly; ValueError if it is not a finite decimal
    or has more digits than the scale holds."""
    try:
        d = Decimal(s) * scale
    except (InvalidOperation, TypeError):
        raise ValueError(f"not a decimal: {s!r}") from None
    if not d.is_finite() or d != d.to_integral_value():
        raise ValueError(f"not a decimal with at most {len(str(scale)) - 1} places: {s!r}")
    return int(d)


def qp_sums(q: np.ndarray, p: np.ndarray) -> tuple[int, int]:
    """(Σ q·p, Σ q·p²) exactly, in one pass (Python integers: the products overflow int64)."""
    pl = p.tolist()
    qp = list(map(int.__mul__, q.tolist(), pl))
    return sum(qp), sum(map(int.__mul__, qp, pl))
