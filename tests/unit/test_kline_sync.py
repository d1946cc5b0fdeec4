"""The pure kline-sync bookkeeping of the context actor (actors/venues/binance/kline_sync.py)."""
from __future__ import annotations

import numpy as np
import pytest

from actors.venues.binance.kline_sync import (MIN_RING_CAPACITY, classify, is_due, kline_doc, page_limit,
                                              ring_capacity, sync_start)
from ipc.schema import KLINE

M1 = 60_000
NOW = 1_700_000_123_456          # 1_700_000_100_000 is the open of the minute in progress


def test_ring_capacity():
    assert ring_capacity(10) == MIN_RING_CAPACITY == 2048
    assert ring_capacity(1500) == 3000


@pytest.mark.parametrize("next_open, expect", [
    (None, (1_700_000_100_000 - 4 * M1, False)),                 # first bootstrap: the window
    (1_700_000_100_000 - 2 * M1, (1_700_000_100_000 - 2 * M1, False)),   # resume where the ring ends
    (1_700_000_100_000 - 4 * M1, (1_700_000_100_000 - 4 * M1, False)),   # exactly the window start
    (1_700_000_100_000 - 9 * M1, (1_700_000_100_000 - 4 * M1, True)),    # down too long: give up
])
def test_sync_start(next_open, expect):
    assert sync_start(NOW, M1, 5, next_open) == expect


def test_page_limit():
    assert page_limit(0, 4 * M1, M1, 1500) == 5
    assert page_limit(0, 4 * M1 - 1, M1, 1500) == 4
    assert page_limit(0, 10_000 * M1, M1, 1500) == 1500
    assert page_limit(M1, 0, M1, 1500) == 0
    assert page_limit(M1, M1, M1, 1500) == 1


def test_classify_and_is_due():
    assert classify(None, 5 * M1, M1) == "first"
    assert classify(5 * M1, 5 * M1, M1) == "dup"
    assert classify(5 * M1, 4 * M1, M1) == "dup"
    assert classify(5 * M1, 6 * M1, M1) == "next"
    assert classify(5 * M1, 8 * M1, M1) == "gap"
    assert not is_due(6 * M1 + 1999, 5 * M1, M1, 2000)
    assert is_due(6 * M1 + 2000, 5 * M1, M1, 2000)


def test_kline_doc():
    rec = np.zeros(1, KLINE)[0]
    rec["open_time_ns"] = 1_700_000_040_000_000_000
    doc = kline_doc(rec)
    assert list(doc) == list(KLINE.names)
    assert doc["open_time_ns"] == 1_700_000_040_000_000_000 and type(doc["open_time_ns"]) is int
