"""The latest Polymarket book of each outcome token of one series, from its book ring's records.
Pure: fed the POLY_BOOK records a reader took (ipc.schema.POLY_BOOK), in ring order.

Invariants:
- a book is keyed by (window_start_ns, token): a record of one window never feeds another, so the
  engine asks for the window its market document names (`book`) and nothing else;
- the newest record of a key wins: each record is the whole top of the book after an update, so
  the latest one is the book (records in between are never needed, a lapped reader loses nothing
  it would have used);
- a gap record (FLAG_GAP) naming a window and token invalidates that book until its next record
  (data may be missing: the feed resends a snapshot); a gap record naming no window
  (window_start_ns 0: the feed shell's own marker after a restart) invalidates every book;
- windows older than the oldest one still asked for are dropped (`prune`), so the state stays small.
"""
from __future__ import annotations

import numpy as np

from ipc.schema import FLAG_GAP

GAP = "gap"             # a book invalidated by a gap record


def _levels(px: np.ndarray, sz: np.ndarray, n: int) -> list[tuple[float, float]]:
    return list(zip(px[:n].tolist(), sz[:n].tolist()))


def book_doc(rec) -> dict:
    """One POLY_BOOK record as the engine uses it: real levels only, best-first."""
    nb, na = int(rec["n_bids"]), int(rec["n_asks"])
    bids, asks = _levels(rec["bid_px"], rec["bid_sz"], nb), _levels(rec["ask_px"], rec["ask_sz"], na)
    return {"window_start_ns": int(rec["window_start_ns"]), "token": int(rec["token"]),
            "update_id": int(rec["update_id"]), "ts_recv_ns": int(rec["ts_recv_ns"]),
            "ts_event_ns": int(rec["ts_event_ns"]), "bids": bids, "asks": asks,
            "best_bid": bids[0][0] if bids else None, "best_ask": asks[0][0] if asks else None}


class SeriesBooks:
    """(window_start_ns, token) -> the latest book, or GAP (module docstring)."""

    def __init__(self):
        self.books: dict[tuple[int, int], dict | str] = {}
        self.records = 0
        self.gaps = 0
        self.last_gap_ns = 0          # receive time of the last gap record (quality)

    def update(self, recs: np.ndarray) -> None:
        n = len(recs)
        if not n:
            return
        self.records += n
        win = recs["window_start_ns"].tolist()
        tok = recs["token"].tolist()
        gap = (recs["flags"] & FLAG_GAP).tolist()
        latest: dict[tuple[int, int], int | str] = {}   # this batch: key -> record index or GAP
        for i in range(n):
            if gap[i]:
                self.gaps += 1
                if win[i] == 0:
                    # a gap that names no book: every book known so far, and every one of this batch
                    for k in self.books:
                        self.books[k] = GAP
                    for k in latest:
                        latest[k] = GAP
                    continue
                latest[(win[i], tok[i])] = GAP
            else:
                latest[(win[i], tok[i])] = i
        if any(gap):
            self.last_gap_ns = max(self.last_gap_ns, int(recs["ts_recv_ns"][np.flatnonzero(gap)[-1]]))
        for k, i in latest.items():
            self.books[k] = GAP if i == GAP else book_doc(recs[i])

    def book(self, window_start_ns: int, token: int) -> dict | str | None:
        """The latest book of that window's token, GAP (invalid until its next record) or None
        (nothing received for it)."""
        return self.books.get((window_start_ns, token))

    def prune(self, oldest_window_ns: int) -> None:
        for k in [k for k in self.books if k[0] < oldest_window_ns]:
            del self.books[k]
