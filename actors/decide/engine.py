"""The edge engine: fair value → edge → decision → accumulate → decision log, once per tick.

compute calls `EdgeEngine.step` after its features; this module only wires the pure parts of
actors/decide (fair, spikes, edge, accumulate, settlement) to their inputs, each built keyword-only
by its own `from_settings`:
- the current window (a `window.Window` parsed from its document) and both books: the
  `polymarket` state block written by feed_poly;
- the Chainlink settlement price: `names.CHAINLINK_RING` (feed_chainlink);
- the Binance price (futures microprice) and σ: compute's futures features.

Invariants: it never places an order (a strategy acts on `edge.<SYMBOL>`); a decision is logged
when the accumulator takes a slice or when the decision (or its vetoes) changes, with its inputs;
the accumulator's per-window state lives in the shm block `accumulate`, so caps and cooldown
survive a compute restart and reset at rollover.
"""
from __future__ import annotations

from collections import deque

from config.settings import Settings
from ipc.ring import RingReader
from ipc import names
from ipc.schema import CHAINLINK, FLAG_GAP
from ipc.state import StateBlock

from actors.decide.decision_log import DecisionLog
from actors.decide.accumulate import Accumulator
from actors.decide.edge import EdgeParams, evaluate
from actors.decide.fair import FairValue, PriceSmoother
from actors.decide.spikes import SpikeDetector
from actors.decide.window import Window

PRICE_HISTORY = 20_000        # (ts, price) samples kept for the Chainlink-time Binance lookup
ACCUMULATE_BLOCK_BYTES = 4096
NO_WINDOW = {"action": "HOLD", "reason": "no_window"}


class EdgeEngine:
    def __init__(self, s: Settings):
        self.s = s
        self.poly = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.POLYMARKET_BLOCK)
        self.chainlink_r = RingReader(s.ipc.shm_dir, names.CHAINLINK_RING.name(s.ipc.shm_prefix, s.general.symbol),
                                      CHAINLINK, from_oldest=True)
        self._ts: deque[int] = deque(maxlen=PRICE_HISTORY)
        self._px: deque[float] = deque(maxlen=PRICE_HISTORY)
        self.fair = FairValue.from_settings(s, binance_at=self.binance_at)
        self.smooth = PriceSmoother(halflife_sec=s.decisions.fair_smooth_halflife_sec)
        self.spikes = {side: SpikeDetector.from_settings(s) for side in names.POLY_TOKENS}
        self.params = EdgeParams.from_settings(s)
        self.acc = Accumulator.from_settings(s, store=StateBlock(
            s.ipc.shm_dir, s.ipc.shm_prefix, names.ACCUMULATE_BLOCK, size=ACCUMULATE_BLOCK_BYTES, writer=True))
        self.log = DecisionLog(dir=s.decisions.decision_log_dir)
        self._window_start: int | None = None
        self._last_key = None
        self.slices = 0

    def binance_at(self, ts_ns: int) -> float | None:
        """The Binance price in force at `ts_ns` (the last sample at or before it). Chainlink
        observations are about a second old, so a scan from the newest sample is short."""
        for i in range(len(self._ts) - 1, -1, -1):
            if self._ts[i] <= ts_ns:
                return self._px[i]
        return None

    def step(self, now_ns: int, fut: dict | None, quality_mode: str, bias_score: float | None) -> dict:
        book = (fut or {}).get("book") or {}
        micro = book.get("microprice")
        smooth = None
        if micro is not None:
            self._ts.append(now_ns)
            self._px.append(micro)
            smooth = self.smooth.update(now_ns, micro)
        cl = self.chainlink_r.read()
        for ts, px, flags in zip(cl["ts_event_ns"].tolist(), cl["price"].tolist(), cl["flags"].tolist()):
            if not flags & FLAG_GAP:
                self.fair.on_chainlink(ts, px)
        poly = self.poly.read() or {}
        wdoc = poly.get("window")
        window = Window.from_doc(wdoc)
        if window is not None and window.start_ns != self._window_start:
            self._window_start = window.start_ns
            for d in self.spikes.values():
                d.reset()
        vol = (fut or {}).get("volatility") or {}
        fair = self.fair.snapshot(now_ns, window, price_to_beat=(wdoc or {}).get("price_to_beat"),
                                  binance_price_fast=micro, binance_price_smooth=smooth,
                                  sigma_fast=vol.get("sigma_fast"), sigma_blend=vol.get("sigma_blend"),
                                  bias_score=bias_score, drift_k=self.s.decisions.fair_drift_k)
        books = {}
        for side in names.POLY_TOKENS:
            b = (poly.get("books") or {}).get(side) or {}
            books[side] = {"asks": b.get("asks") or [], "bids": b.get("bids") or [],
                           "age_s": b.get("age_s") if b.get("valid") else None}
            if b.get("mid") is not None:
                self.spikes[side].update(now_ns, b["mid"])
        fair_up = fair.get("fast")
        decision = evaluate(now_ns, window, fair_up, books, quality_mode, self.params)
        action = self.acc.consider(now_ns, window.start_ns, decision) if window is not None \
            else dict(NO_WINDOW)
        doc = {"symbol": self.s.general.symbol, "ts_ns": now_ns, "window": wdoc and wdoc["slug"], "fair": fair,
               "edge": decision, "accumulate": action,
               "spikes": {side: d.snapshot(now_ns) for side, d in self.spikes.items()}}
        key = (decision["decision"], tuple(v["code"] for v in decision["vetoes"]))
        if action.get("action") == "SLICE" or key != self._last_key:
            self.log.write(doc, now_ns)
            self._last_key = key
        self.slices += action.get("action") == "SLICE"
        return doc

    def counters(self) -> dict:
        st = self.log.stats()
        return {"slices": self.slices, "decision_log_lines": st["lines"], "decision_log_errors": st["errors"]}
