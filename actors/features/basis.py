"""Basis: futures vs spot mid, mark premium and funding. Pure, incremental (keeps the newest
records).

Definitions (DESIGN.md "Features"):
- mid = (bid + ask) / 2 of the newest bookTicker (QUOTE) record of each venue (book.top_of_book);
- basis_bps = (futures_mid − spot_mid) / spot_mid · 1e4;
- the two quotes are aligned by receive time (`ts_recv_ns`), not exchange time: the spot
  bookTicker carries no exchange time. Both must be fresh at `now_ns` (local clock):
  now_ns − ts_recv_ns ≤ max_age for each, else basis is None with the reason; `skew_ms` is
  (futures ts_recv_ns − spot ts_recv_ns) / 1e6;
- from the newest markPrice (MARK) record, fresh when now_ns − ts_recv_ns ≤ mark_max_age:
  premium_bps = (mark − index) / index · 1e4; funding_rate = r (per funding interval, a fraction),
  funding_bps = r·1e4; next_funding_ns = T; time_to_funding_sec = (T − t_ex) / 1e9 where
  t_ex = ts_event_ns + (now_ns − ts_recv_ns) is the exchange clock estimated from the mark record
  (its event time advanced by the local time elapsed since it was received);
- a missing index or funding rate (NaN in the record), or T = 0, gives None with a reason.
Only the newest record of each stream is used, so an update costs O(1) whatever its size.

Parameters (settings): BASIS_MAX_AGE_MS (quotes), MARK_MAX_AGE_MS (mark). Gap records must be
filtered out by the caller.
"""
from __future__ import annotations

import math

import numpy as np

from actors.features.book import top_of_book

MS = 1_000_000


class Basis:
    def __init__(self, max_age_ms: float = 2000.0, mark_max_age_ms: float = 5000.0):
        self.max_age_ns = int(max_age_ms * MS)
        self.mark_max_age_ns = int(mark_max_age_ms * MS)
        self.fut: np.void | None = None
        self.spot: np.void | None = None
        self.mark: np.void | None = None

    @classmethod
    def from_settings(cls, s) -> "Basis":
        return cls(max_age_ms=s.features.basis_max_age_ms, mark_max_age_ms=s.features.mark_max_age_ms)

    def update_futures(self, quotes: np.ndarray) -> None:
        if len(quotes):
            self.fut = quotes[-1].copy()

    def update_spot(self, quotes: np.ndarray) -> None:
        if len(quotes):
            self.spot = quotes[-1].copy()

    def update_mark(self, marks: np.ndarray) -> None:
        if len(marks):
            self.mark = marks[-1].copy()

    def _mid(self, name: str, q, now_ns: int) -> tuple[float | None, str | None]:
        if q is None:
            return None, f"no {name} quote yet"
        age = now_ns - int(q["ts_recv_ns"])
        if age > self.max_age_ns:
            return None, f"{name} quote stale ({age / MS:.0f} ms > {self.max_age_ns / MS:.0f} ms)"
        b = top_of_book(float(q["bid"]), float(q["bid_qty"]), float(q["ask"]), float(q["ask_qty"]))
        if b["mid"] is None:
            return None, f"{name} {b['reason']}"
        return b["mid"], None

    def snapshot(self, now_ns: int) -> dict:
        out: dict = {}
        for name, q in (("futures", self.fut), ("spot", self.spot)):
            out[f"{name}_recv_ns"] = None if q is None else int(q["ts_recv_ns"])
            out[f"{name}_age_ms"] = None if q is None else (now_ns - int(q["ts_recv_ns"])) / MS
        fmid, freason = self._mid("futures", self.fut, now_ns)
        smid, sreason = self._mid("spot", self.spot, now_ns)
        out.update(futures_mid=fmid, spot_mid=smid, basis_bps=None,
                   skew_ms=(None if self.fut is None or self.spot is None else
                            (int(self.fut["ts_recv_ns"]) - int(self.spot["ts_recv_ns"])) / MS))
        if freason or sreason:
            out["basis_reason"] = "; ".join(r for r in (freason, sreason) if r)
        else:
            out["basis_bps"] = (fmid - smid) / smid * 1e4
        out.update(self._mark_values(now_ns))
        return out

    def _mark_values(self, now_ns: int) -> dict:
        m = self.mark
        out = {"mark": None, "index": None, "premium_bps": None, "funding_rate": None,
               "funding_bps": None, "next_funding_ns": None, "time_to_funding_sec": None,
               "mark_ts_ns": None if m is None else int(m["ts_event_ns"]),
               "mark_age_ms": None if m is None else (now_ns - int(m["ts_recv_ns"])) / MS}
        if m is None:
            out["mark_reason"] = "no mark price yet"
            return out
        age = now_ns - int(m["ts_recv_ns"])
        if age > self.mark_max_age_ns:
            out["mark_reason"] = (f"mark price stale ({age / MS:.0f} ms > "
                                  f"{self.mark_max_age_ns / MS:.0f} ms)")
            return out
        mark, index, rate = float(m["mark"]), float(m["index"]), float(m["funding_rate"])
        nxt = int(m["next_funding_ns"])
        out["mark"] = mark
        if math.isfinite(index) and index > 0:
            out.update(index=index, premium_bps=(mark - index) / index * 1e4)
        else:
            out["premium_reason"] = "no index price in the mark record"
        if math.isfinite(rate):
            out.update(funding_rate=rate, funding_bps=rate * 1e4)
        else:
            out["funding_reason"] = "no funding rate in the mark record"
        if nxt > 0:
            t_ex = int(m["ts_event_ns"]) + age
            out.update(next_funding_ns=nxt, time_to_funding_sec=(nxt - t_ex) / 1e9)
        else:
            out["next_funding_reason"] = "no next funding time in the mark record"
        return out
