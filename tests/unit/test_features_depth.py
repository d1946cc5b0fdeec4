"""Top-N book imbalance on the USD-M partial-depth example of Binance's docs
(futures_depth5_docs_example.json: not a capture, no real partial-depth capture exists), decoded by
the project's parser; expected values are computed by hand from the levels in the file."""
from __future__ import annotations

import numpy as np
import orjson
import pytest

from actors.features.depth import BookImbalance, topn_imbalance
from actors.venues.binance.parse import parse_frame
from ipc.schema import DEPTH, FLAG_SNAPSHOT
from tests.support.fixtures import BINANCE, need

RECV = 1_723_161_300_000_000_000


def depth5(stream: bool = True) -> np.ndarray:
    data = orjson.loads(need(BINANCE / "futures_depth5_docs_example.json").read_bytes())
    frame = {"stream": "btcusdt@depth5@100ms", "data": data} if stream else data
    d = parse_frame(orjson.dumps(frame), RECV)
    assert d.kind == "depth"
    return np.array(list(d.recs), dtype=DEPTH)


# the file's levels: bids (worst first as Binance sends them) 7403.89 0.002, 7403.90 3.906,
# 7404.00 1.428, 7404.85 5.239, 7405.43 2.562; asks 7405.96 3.340, 7406.63 4.525, 7407.08 2.475,
# 7407.15 4.800, 7407.20 0.175
BID_ALL = 0.002 + 3.906 + 1.428 + 5.239 + 2.562          # 13.137
ASK_ALL = 3.340 + 4.525 + 2.475 + 4.800 + 0.175          # 15.315


def test_imbalance_of_the_docs_example():
    rec = depth5()[0]
    assert rec["flags"] & FLAG_SNAPSHOT
    got = topn_imbalance(rec, 10)           # N larger than the book: the 5 levels it has
    assert (got["levels_bid"], got["levels_ask"]) == (5, 5)
    assert got["bid_qty"] == pytest.approx(13.137, rel=1e-12)
    assert got["ask_qty"] == pytest.approx(15.315, rel=1e-12)
    assert got["imbalance"] == pytest.approx((13.137 - 15.315) / (13.137 + 15.315), rel=1e-12)
    assert got["imbalance"] == pytest.approx(-0.0765499789118515, rel=1e-12)
    assert (got["best_bid"], got["best_ask"]) == (7405.43, 7405.96)
    # top 3, best first: bids 7405.43 2.562, 7404.85 5.239, 7404.00 1.428; asks 3.340, 4.525, 2.475
    got3 = topn_imbalance(rec, 3)
    b3, a3 = 2.562 + 5.239 + 1.428, 3.340 + 4.525 + 2.475
    assert got3["imbalance"] == pytest.approx((b3 - a3) / (b3 + a3), rel=1e-12)
    assert got3["bid_notional"] == pytest.approx(7405.43 * 2.562 + 7404.85 * 5.239 + 7404.00 * 1.428,
                                                 rel=1e-12)
    assert got3["ask_notional"] == pytest.approx(7405.96 * 3.340 + 7406.63 * 4.525 + 7407.08 * 2.475,
                                                 rel=1e-12)
    got1 = topn_imbalance(rec, 1)
    assert got1["imbalance"] == pytest.approx((2.562 - 3.340) / (2.562 + 3.340), rel=1e-12)


def test_book_imbalance_keeps_the_newest_snapshot_and_skips_diffs():
    bi = BookImbalance(n=5)
    assert bi.snapshot()["reason"] == "no depth snapshot yet"
    bi.update(np.zeros(0, dtype=DEPTH))
    diff = depth5(stream=False)               # a raw depthUpdate decodes as a diff (flags 0)
    assert diff["flags"][0] & FLAG_SNAPSHOT == 0
    bi.update(diff)
    snap = bi.snapshot()
    assert snap["imbalance"] is None and snap["reason"] == "depth records are diffs, not a top-N book"
    snap_rec = depth5()
    other = snap_rec.copy()
    other["bid_qty"][0][:5] = 1.0
    other["ask_qty"][0][:5] = 3.0
    other["update_id"] = 1
    bi.update(np.concatenate([snap_rec, other, diff]))
    snap = bi.snapshot(now_ns=RECV + 250_000_000)
    assert snap["imbalance"] == -0.5 and snap["update_id"] == 1 and snap["diffs"] == 2
    assert snap["age_ms"] == 250.0 and snap["ts_recv_ns"] == RECV


def test_empty_side_crossed_and_zero_size():
    rec = depth5()[0].copy()
    rec["n_asks"] = 0
    assert topn_imbalance(rec, 5)["reason"] == "empty ask side"
    rec = depth5()[0].copy()
    rec["bid_px"][0] = 7406.0
    assert topn_imbalance(rec, 5)["reason"] == "crossed book"
    rec = depth5()[0].copy()
    rec["bid_qty"][:] = 0.0
    rec["ask_qty"][:] = 0.0
    got = topn_imbalance(rec, 5)
    assert got["imbalance"] is None and got["reason"] == "zero size in the top levels"


def test_book_imbalance_from_settings():
    from config.settings import Settings
    assert BookImbalance.from_settings(Settings()).n == 10
