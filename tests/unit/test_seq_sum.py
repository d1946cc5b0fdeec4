"""Running totals do not depend on how the stream was cut into reads (replay reproduces live)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from actors.features import seq_sum
from actors.features.bars import BarBuilder
from ipc.schema import TRADE


def _trades(qtys, prices):
    t = np.zeros(len(qtys), dtype=TRADE)
    t["ts_event_ns"] = np.arange(len(qtys)) * 100_000_000 + 1_700_000_000_000_000_000
    t["qty"], t["price"] = qtys, prices
    t["side"] = np.where(np.arange(len(qtys)) % 3 == 0, -1, 1)
    t["trade_id"] = np.arange(len(qtys))
    return t


@settings(max_examples=200, deadline=None)
@given(q=st.lists(st.floats(0.001, 50, allow_nan=False), min_size=2, max_size=60),
       cuts=st.lists(st.integers(1, 59), max_size=8))
def test_bars_same_whatever_the_chunking(q, cuts):
    prices = 65000 + np.arange(len(q)) * 0.1
    t = _trades(q, prices)
    whole, chunked = BarBuilder("5s", "futures"), BarBuilder("5s", "futures")
    a = whole.update(t) + whole.close_due(2_000_000_000_000_000_000)
    b, prev = [], 0
    for c in sorted({c for c in cuts if c < len(t)}) + [len(t)]:
        b += chunked.update(t[prev:c])
        prev = c
    b += chunked.close_due(2_000_000_000_000_000_000)
    assert a == b


def test_seq_sum_is_left_to_right():
    x = np.array([1e16, 1.0, -1e16, 1.0])
    assert seq_sum(0.0, x) == ((((0.0 + 1e16) + 1.0) - 1e16) + 1.0) == 1.0
    assert seq_sum(seq_sum(0.0, x[:2]), x[2:]) == seq_sum(0.0, x)
