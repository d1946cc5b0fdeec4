"""The latest book per (window, token) of a series' ring records (actors/decide/books.py): newest
record wins, other windows never mix in, gap records invalidate (one token, or every book)."""
from __future__ import annotations

import numpy as np

from actors.decide.books import GAP, SeriesBooks
from ipc.schema import FLAG_GAP, POLY_BOOK

W1, W2 = 1_800_000_000 * 10**9, 1_800_000_300 * 10**9


def recs(*rows):
    out = np.zeros(len(rows), POLY_BOOK)
    for i, (win, token, uid, flags, ask) in enumerate(rows):
        out[i]["window_start_ns"], out[i]["token"], out[i]["update_id"] = win, token, uid
        out[i]["flags"], out[i]["ts_recv_ns"] = flags, 1_000 + uid
        if ask is not None:
            out[i]["n_asks"], out[i]["ask_px"][0], out[i]["ask_sz"][0] = 1, ask, 10.0
            out[i]["n_bids"], out[i]["bid_px"][0], out[i]["bid_sz"][0] = 1, ask - 0.01, 5.0
    return out


def test_newest_record_per_window_and_token():
    b = SeriesBooks()
    b.update(recs((W1, 0, 1, 0, 0.50), (W1, 0, 2, 0, 0.52), (W2, 0, 3, 0, 0.99), (W1, 1, 4, 0, 0.47)))
    up = b.book(W1, 0)
    assert (up["update_id"], up["asks"], up["bids"], up["ts_recv_ns"]) == (2, [(0.52, 10.0)], [(0.51, 5.0)], 1002)
    assert up["best_ask"] == 0.52 and up["best_bid"] == 0.51
    assert b.book(W2, 0)["update_id"] == 3 and b.book(W1, 1)["update_id"] == 4
    assert b.book(W2, 1) is None
    b.prune(W2)
    assert b.book(W1, 0) is None and b.book(W2, 0)["update_id"] == 3


def test_gaps_invalidate_until_the_next_record():
    b = SeriesBooks()
    # in one batch: UP data then its gap; DOWN data; the next window's UP after UP's gap
    b.update(recs((W1, 0, 1, 0, 0.5), (W1, 1, 2, 0, 0.5), (W1, 0, 3, FLAG_GAP, None), (W2, 0, 4, 0, 0.5)))
    assert b.book(W1, 0) == GAP and b.book(W1, 1)["update_id"] == 2 and b.book(W2, 0)["update_id"] == 4
    assert b.gaps == 1 and b.last_gap_ns == 1003
    b.update(recs((W1, 0, 5, 0, 0.6)))
    assert b.book(W1, 0)["update_id"] == 5
    # a gap naming no window (window_start_ns 0): every book, including earlier ones of this batch;
    # a record after it is valid again
    b.update(recs((W1, 1, 6, 0, 0.4), (0, 0, 7, FLAG_GAP, None), (W1, 1, 8, 0, 0.45)))
    assert b.book(W1, 0) == GAP and b.book(W2, 0) == GAP
    assert b.book(W1, 1)["update_id"] == 8
