"""The backtest's scoring, pure and incremental: edge documents in, the report out.

A SLICE buys `SLICE_USD` of the chosen side at the asks the edge engine walked (its `spent_usd`,
`shares`, `fee_usd`); each window is labelled by ITS rule, the one its edge documents carry
(`rule`: Chainlink point or TWAP, the Binance hourly candle, the daily 1m candle closes), with the
one settlement module (actors/decide/settlement.py `beat_price`, `settle`, `winner`): the price to
beat is the venue's number when an edge document gave one (`price_to_beat.source == "venue"`),
else the rule's from the Chainlink observations and Binance spot candles; Up wins when the
settlement is at or above it. `windows_of` and `label` are shared with calibrate.

`Scorer` takes the documents one by one (`add`), the settlement data as it arrives (`observe`,
`candle`) and the event time (`advance`): a window is labelled once the event time is
FINAL_GRACE_NS past the instant its settlement is fixed (settlement.settles_at_ns), and then only
its report row is kept (its slices: at most MAX_SLICES_PER_WINDOW), so the state is the open
windows, the settlement data they can still read (KEEP_DATA_NS before the oldest open window) and
one float per tick per series (the exact edge percentiles). `report()` labels what is still open
with what it holds. `score(edges, obs, candles)` is the same Scorer over a list, every window
labelled on the data given.

Invariants: nothing here places an order; a window whose settlement the data does not cover is
reported unsettled (its status says why), never guessed; series are scored apart; a document
without a window, or of a window no document gives a valid rule for, counts as a tick and its
decision but has no window row.
"""
from __future__ import annotations

from array import array

import numpy as np

from ipc import names
from actors.decide import settlement
from actors.decide.settlement import Candle, Rule

SEC_NS = 1_000_000_000
FINAL_GRACE_NS = 300 * SEC_NS     # late data (a Chainlink snapshot backfilling a hole) still counts
KEEP_DATA_NS = 3600 * SEC_NS      # settlement data kept before the oldest open window's start
NO_META_KEEP_NS = 3600 * SEC_NS   # a window no document gave a rule for: forgotten this long after its last doc


def window_key(doc: dict) -> tuple[str, str] | None:
    """(series, slug) of an edge document or decision-log line, None when it names no window."""
    series, slug = doc.get("series"), doc.get("window")
    return (series, slug) if isinstance(series, str) and isinstance(slug, str) and slug else None


def _meta_of(doc: dict, key: tuple[str, str]) -> dict | None:
    try:
        rule = Rule.from_doc(doc["rule"])
        start, end = int(doc["window_start_ns"]), int(doc["window_end_ns"])
    except (KeyError, TypeError, ValueError):
        return None
    return {"series": key[0], "slug": key[1], "start_ns": start, "end_ns": end, "rule": rule,
            "venue_price": None}


def _venue_price(doc: dict) -> float | None:
    ptb = doc.get("price_to_beat")
    if isinstance(ptb, dict) and ptb.get("source") == settlement.VENUE and ptb.get("price") is not None:
        return float(ptb["price"])
    return None


def windows_of(docs) -> dict[tuple[str, str], dict]:
    """(series, slug) -> {series, slug, start_ns, end_ns, rule (settlement.Rule), venue_price}:
    every window the documents (edge documents or decision-log lines) name with its rule; the
    venue's price to beat is the last one a document gave. Documents without a window or a valid
    rule are skipped."""
    out: dict[tuple[str, str], dict] = {}
    for doc in docs:
        key = window_key(doc)
        if key is None:
            continue
        w = out.get(key)
        if w is None:
            w = _meta_of(doc, key)
            if w is None:
                continue
            out[key] = w
        vp = _venue_price(doc)
        if vp is not None:
            w["venue_price"] = vp
    return out


def label(w: dict, obs: list[tuple[int, float]], candles: list[Candle]) -> dict:
    """One window's outcome by its rule: price_to_beat (+ source), settlement, status ("ok", else
    why not: the settlement's or the price to beat's "pending" / "incomplete") and winner."""
    rule = w["rule"]
    ptb, ptb_src, ptb_st = settlement.beat_price(rule, w["start_ns"], w.get("venue_price"),
                                                 obs=obs, candles=candles)
    price, st = settlement.settle(rule, w["start_ns"], w["end_ns"], obs=obs, candles=candles)
    out = {"price_to_beat": ptb, "price_to_beat_source": ptb_src, "settlement": price, "winner": None,
           "status": st if st != "ok" else ("ok" if ptb is not None else f"price to beat {ptb_st}")}
    if out["status"] == "ok":
        out["winner"] = settlement.winner(price, ptb)
    return out


def latest_candles(candles) -> list[Candle]:
    """One Candle per (open time, interval): its latest update, a closed one final (the rule of
    settlement.settle), in open-time order."""
    held: dict[tuple[int, int], Candle] = {}
    for c in candles:
        k = settlement.candle_key(c)
        if settlement.supersedes(held.get(k), c):
            held[k] = c
    return sorted(held.values(), key=lambda c: (c.open_time_ns, c.tf_sec))


def _pcts(xs) -> dict:
    pct = (lambda q: float(np.percentile(xs, q)) if len(xs) else None)
    return {"n": len(xs), "p5": pct(5), "p25": pct(25), "p50": pct(50), "p75": pct(75), "p95": pct(95),
            "max": max(xs) if len(xs) else None}


def _series_order(s: str):
    return (names.POLY_SERIES.index(s), s) if s in names.POLY_SERIES else (len(names.POLY_SERIES), s)


class Scorer:
    """The report, built one edge document at a time (module docstring)."""

    def __init__(self, final_grace_ns: int = FINAL_GRACE_NS, keep_data_ns: int = KEEP_DATA_NS):
        self.final_grace_ns, self.keep_data_ns = final_grace_ns, keep_data_ns
        self.ticks = 0
        self.per: dict[str, dict] = {}                  # series -> its report part
        self._edge: dict[str, array] = {}               # series -> best-side edge_bps per tick
        # open windows: (series, slug) -> {"meta": windows_of's dict or None, "row": the report
        # row once it has a slice, "last_ns": its last document}
        self.open: dict[tuple[str, str], dict] = {}
        self.finalized = 0
        self._obs: dict[int, float] = {}                # Chainlink observation ns -> price
        self._candles: dict[tuple[int, int], Candle] = {}
        self.now_ns = 0

    # --- inputs ---------------------------------------------------------------------------------
    def add(self, doc: dict) -> None:
        series = doc.get("series") or "?"
        r = self.per.get(series)
        if r is None:
            r = self.per[series] = {"ticks": 0, "decisions": {}, "windows": {}}
            self._edge[series] = array("d")
        self.ticks += 1
        r["ticks"] += 1
        e = doc.get("edge") or {}
        d = e.get("decision", "NONE")
        r["decisions"][d] = r["decisions"].get(d, 0) + 1
        bps = [s.get("edge_bps") for s in (e.get("sides") or {}).values() if s.get("edge_bps") is not None]
        if bps:
            self._edge[series].append(max(bps))
        key = window_key(doc)
        if key is None:
            return
        w = self.open.get(key)
        if w is None:
            if key[1] in self.per[key[0]]["windows"]:
                return                     # a document of a window already labelled: too late to change it
            w = self.open[key] = {"meta": None, "row": None, "pending": [], "last_ns": 0}
        if w["meta"] is None:
            w["meta"] = _meta_of(doc, key)
        if w["meta"] is not None:
            vp = _venue_price(doc)
            if vp is not None:
                w["meta"]["venue_price"] = vp
        w["last_ns"] = max(w["last_ns"], int(doc.get("ts_ns") or 0))
        acc = doc.get("accumulate") or {}
        if acc.get("action") != "SLICE":
            return
        side = e["sides"][acc["side"]]
        sl = {"ts_ns": doc["ts_ns"], "side": acc["side"], "spent_usd": side["spent_usd"],
              "shares": side["shares"], "fee_usd": side["fee_usd"],
              "avg_price": side["avg_price"], "edge_bps": side.get("edge_bps"),
              "return_on_cost": side.get("return_on_cost")}
        w["pending"].append(sl)
        self._place(key, w, r)

    def _place(self, key, w: dict, r: dict) -> None:
        """A window's slices go into its report row once its meta is known (the row's place in
        the report: the window's first slice, as the batch score has it)."""
        m = w["meta"]
        if m is None or not w["pending"]:
            return
        if w["row"] is None:
            w["row"] = r["windows"][key[1]] = {"start_ns": m["start_ns"], "end_ns": m["end_ns"],
                                               "rule": m["rule"].doc(), "slices": []}
        w["row"]["slices"] += w["pending"]
        w["pending"] = []

    def observe(self, obs_ns: int, price: float) -> None:
        """One Chainlink observation (a repeat of an instant: the last one stands)."""
        self._obs[int(obs_ns)] = float(price)

    def candle(self, c: Candle) -> None:
        k = settlement.candle_key(c)
        if settlement.supersedes(self._candles.get(k), c):
            self._candles[k] = c

    # --- time -----------------------------------------------------------------------------------
    def advance(self, now_ns: int) -> int:
        """Label the windows whose settlement is final by now; how many were labelled."""
        self.now_ns = now_ns
        due = []
        for key, w in self.open.items():
            m = w["meta"]
            if m is None:
                if now_ns - w["last_ns"] > NO_META_KEEP_NS:
                    due.append(key)
            elif now_ns >= settlement.settles_at_ns(m["rule"], m["end_ns"]) + self.final_grace_ns:
                due.append(key)
        if not due:
            return 0
        obs, candles = self.obs(), self.candles()
        for key in due:
            self._finalize(key, self.open.pop(key), obs, candles)
        self._prune()
        return len(due)

    def obs(self) -> list[tuple[int, float]]:
        return sorted(self._obs.items())

    def candles(self) -> list[Candle]:
        return sorted(self._candles.values(), key=lambda c: (c.open_time_ns, c.tf_sec))

    def _finalize(self, key, w: dict, obs, candles) -> None:
        self._place(key, w, self.per[key[0]])
        row = w["row"]
        if row is None:              # no slice (or no rule): nothing to report for it
            return
        row.update(label(w["meta"], obs, candles))
        row["cost_usd"] = sum(s["spent_usd"] + s["fee_usd"] for s in row["slices"])
        if row["winner"] is None:
            row["pnl_usd"] = None
        else:
            payoff = sum(s["shares"] for s in row["slices"] if s["side"] == row["winner"])
            row["pnl_usd"] = payoff - row["cost_usd"]
        self.finalized += 1

    def _prune(self) -> None:
        """Drop the settlement data no open window can read any more."""
        starts = [w["meta"]["start_ns"] for w in self.open.values() if w["meta"] is not None]
        keep_from = (min(starts) if starts else self.now_ns) - self.keep_data_ns
        for t in [t for t in self._obs if t < keep_from]:
            del self._obs[t]
        for k in [k for k in self._candles if k[1] < keep_from]:
            del self._candles[k]

    # --- the report -----------------------------------------------------------------------------
    def report(self, obs: list[tuple[int, float]] | None = None, candles: list[Candle] | None = None) -> dict:
        """Every window still open labelled on `obs`/`candles` (default: the data held), then the
        report: per series (ticks, decisions, best-side edge_bps distribution, slices, the
        windows it bought in with their labels and PnL, pnl_usd), and the totals (ticks,
        decisions, slices, pnl_usd)."""
        obs = self.obs() if obs is None else obs
        candles = self.candles() if candles is None else list(candles)
        for key in list(self.open):
            self._finalize(key, self.open.pop(key), obs, candles)
        total = 0.0
        for series, r in self.per.items():
            r["edge_bps"] = _pcts(self._edge[series])
            r["slices"] = sum(len(w["slices"]) for w in r["windows"].values())
            r["pnl_usd"] = 0.0
            for row in r["windows"].values():
                if row["pnl_usd"] is not None:
                    r["pnl_usd"] += row["pnl_usd"]
            total += r["pnl_usd"]
        decisions: dict[str, int] = {}
        for r in self.per.values():
            for d, n in r["decisions"].items():
                decisions[d] = decisions.get(d, 0) + n
        return {"ticks": self.ticks, "decisions": decisions, "slices": sum(r["slices"] for r in self.per.values()),
                "series": {s: self.per[s] for s in sorted(self.per, key=_series_order)}, "pnl_usd": total}


def score(edges, obs: list[tuple[int, float]], candles=()) -> dict:
    """The report of a list of edge documents, every window labelled on `obs` (Chainlink
    [(ns, price)], sorted) and `candles` (Scorer.report)."""
    sc = Scorer()
    for doc in edges:
        sc.add(doc)
    return sc.report(obs, list(candles))
