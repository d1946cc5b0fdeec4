"""Trade data builders and the plain-loop volatility reference shared by the feature tests:
uneven chunks (as a ring reader returns them), TRADE records from (ts, price) rows, and the
EWMA volatility computed second by second from its definitions (actors/features/volatility.py)."""
from __future__ import annotations

import math

import numpy as np

from ipc.schema import TRADE

SEC = 1_000_000_000


def chunks(n: int, seed: int, top: int = 400):
    """Uneven [a, z) slices covering 0..n, some of them empty, as a ring reader returns them."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < n:
        step = int(rng.integers(0, top))
        yield i, min(n, i + step)
        i += step


def ref_vol(ts_list, p_list, h_fast, h_slow, w, warmup, clock_ns=None):
    """Plain loops over the definitions. Returns (sigma_fast, sigma_slow, sigma_blend, returns)."""
    closes = []                  # [second, last price of that second], seconds increasing
    for ts, p in zip(ts_list, p_list):
        k = ts // SEC
        if closes and k < closes[-1][0]:
            continue             # late
        if closes and k == closes[-1][0]:
            closes[-1][1] = p
        else:
            closes.append([k, p])
    if not closes:
        return None, None, None, 0
    end = closes[-1][0]                              # the open second is not final
    if clock_ns is not None and clock_ns // SEC > end:
        end = clock_ns // SEC
    samples = []
    price = None
    j = 0
    for k in range(closes[0][0], end):
        if j < len(closes) and closes[j][0] == k:
            price = closes[j][1]
            j += 1
        samples.append(price)
    rets = []
    for i in range(1, len(samples)):
        rets.append(math.log(samples[i] / samples[i - 1]))
    sig = []
    for h in (h_fast, h_slow):
        lam = 2.0 ** (-1.0 / h)
        s = wsum = 0.0
        for r in rets:
            s = lam * s + r * r
            wsum = lam * wsum + 1.0
        sig.append(math.sqrt(s / wsum) if wsum > 0 else None)
    if len(rets) < warmup:
        return None, None, None, len(rets)
    return sig[0], sig[1], w * sig[0] + (1 - w) * sig[1], len(rets)


def make_trades(rows):
    t = np.zeros(len(rows), dtype=TRADE)
    for i, (ts, p) in enumerate(rows):
        t[i]["ts_event_ns"] = ts
        t[i]["ts_recv_ns"] = ts + 5_000_000
        t[i]["price"] = p
        t[i]["qty"] = 1.0
        t[i]["side"] = 1
        t[i]["trade_id"] = i + 1
    return t
