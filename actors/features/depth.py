"""Top-N book imbalance from a partial-depth (DEPTH) record. Pure.

Definitions (DESIGN.md "Features"), on one DEPTH record holding a whole top-N book
(`FLAG_SNAPSHOT`: the `@depth<N>` partial-depth stream or a REST snapshot), levels best-first:
- levels used per side: n_b = min(N, n_bids), n_a = min(N, n_asks);
- B = Σ bid_qty[0..n_b), A = Σ ask_qty[0..n_a) (base-asset quantities);
- imbalance = (B − A) / (B + A), in [−1, 1], positive when more size rests on the bid;
- also bid_notional = Σ bid_px·bid_qty and ask_notional likewise, over the same levels.
None with a reason: no snapshot record yet, an empty side, a crossed book (best bid ≥ best ask)
or zero total size. A depth diff (`depth@100ms`, flags without FLAG_SNAPSHOT) lists changed levels,
not the book: `BookImbalance.update` skips it (counted in `diffs`).
Parameter (setting): TOPN (N).
Gap records must be filtered out by the caller.
"""
from __future__ import annotations

import numpy as np

from ipc.schema import FLAG_SNAPSHOT


def topn_imbalance(rec, n: int) -> dict:
    """Imbalance over the top `n` levels of one DEPTH record (assumed a whole book)."""
    nb = min(n, int(rec["n_bids"]))
    na = min(n, int(rec["n_asks"]))
    out = {"n": n, "levels_bid": nb, "levels_ask": na, "imbalance": None, "bid_qty": None,
           "ask_qty": None, "bid_notional": None, "ask_notional": None}
    if nb == 0 or na == 0:
        out["reason"] = "empty bid side" if nb == 0 else "empty ask side"
        return out
    bpx, bq = rec["bid_px"][:nb].tolist(), rec["bid_qty"][:nb].tolist()
    apx, aq = rec["ask_px"][:na].tolist(), rec["ask_qty"][:na].tolist()
    if bpx[0] >= apx[0]:
        out["reason"] = "crossed book"
        return out
    b, a = sum(bq), sum(aq)
    out.update(bid_qty=b, ask_qty=a, best_bid=bpx[0], best_ask=apx[0],
               bid_notional=sum(p * q for p, q in zip(bpx, bq)),
               ask_notional=sum(p * q for p, q in zip(apx, aq)))
    if b + a > 0:
        out["imbalance"] = (b - a) / (b + a)
    else:
        out["reason"] = "zero size in the top levels"
    return out


class BookImbalance:
    """Keeps the newest top-N book of one venue's depth ring."""

    def __init__(self, n: int = 10):
        self.n = int(n)
        self.rec: np.void | None = None
        self.diffs = 0

    @classmethod
    def from_settings(cls, s) -> "BookImbalance":
        return cls(n=s.venues.topn)

    def update(self, recs: np.ndarray) -> None:
        if len(recs) == 0:
            return
        snap = np.flatnonzero(recs["flags"] & FLAG_SNAPSHOT)
        self.diffs += len(recs) - len(snap)
        if len(snap):
            self.rec = recs[snap[-1]].copy()

    def snapshot(self, now_ns: int | None = None) -> dict:
        r = self.rec
        if r is None:
            out = {"n": self.n, "imbalance": None,
                   "reason": ("depth records are diffs, not a top-N book" if self.diffs
                              else "no depth snapshot yet")}
        else:
            out = topn_imbalance(r, self.n)
            out.update(update_id=int(r["update_id"]), ts_event_ns=int(r["ts_event_ns"]),
                       ts_recv_ns=int(r["ts_recv_ns"]))
            if now_ns is not None:
                out["age_ms"] = (now_ns - int(r["ts_recv_ns"])) / 1e6
        out["diffs"] = self.diffs
        return out
