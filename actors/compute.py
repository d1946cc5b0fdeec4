"""The `compute` actor: on a fixed tick, read every ring since its cursor, derive features, publish.

Invariants:
- the tick is scheduled on absolute deadlines (`k·TICK_MS`), so it never drifts; a tick that ends
  past the next deadline is counted as an overrun and the schedule skips to the next slot;
- each tick reads each ring once from its cursor: work is proportional to what arrived;
- gap records are counted (quality) and never enter a computation; lapped readers count overruns;
- no feature math lives here: it is in actors/features; this module only wires and schedules.
"""
from __future__ import annotations

import logging
import signal
import time
from collections import deque

import numpy as np

from config.settings import Settings
from ipc.bus import STATE_TOPIC, Publisher, bar_topic, features_topic
from ipc.ring import RingReader
from ipc.schema import DTYPES, FLAG_GAP, ring_name
from ipc.state import Heartbeat, Registry, StateBlock

from .features.bars import TF_SEC, BarBuilder
from .features.book import top_of_book
from .features.flow import Cvd

log = logging.getLogger("compute")

TRADE_VENUES = ("futures", "spot")
KEEP_CLOSED_BARS = 120
GAP_MEMORY_NS = 30 * 1_000_000_000     # a gap keeps quality DEGRADED this long


class VenueState:
    """Readers and feature state of one venue's trade and quote rings."""

    def __init__(self, s: Settings, venue: str):
        self.venue = venue
        mk = lambda kind: RingReader(s.shm_dir, ring_name(s.shm_prefix, s.symbol, venue, kind),
                                     DTYPES[kind])
        self.trades_r, self.quotes_r = mk("trade"), mk("quote")
        grace = s.bar_late_grace_ms * 1_000_000
        self.bars = {tf: BarBuilder(tf, venue, grace) for tf in TF_SEC}
        self.closed = {tf: deque(maxlen=KEEP_CLOSED_BARS) for tf in TF_SEC}
        self.cvd = Cvd()
        self.last_trade: np.void | None = None
        self.last_quote: np.void | None = None
        self.latency_ns: int | None = None      # recv − event, to run bar clocks on exchange time
        self.gaps = 0
        self.last_gap_ns = 0

    def _filter(self, recs: np.ndarray) -> np.ndarray:
        gap = (recs["flags"] & FLAG_GAP) != 0
        if gap.any():
            self.gaps += int(gap.sum())
            self.last_gap_ns = int(recs["ts_recv_ns"][gap][-1])
            recs = recs[~gap]
        return recs

    def step(self, now_ns: int) -> list[dict]:
        """Consume new records; return the bars closed by this step."""
        trades = self._filter(self.trades_r.read())
        quotes = self._filter(self.quotes_r.read())
        closed: list[dict] = []
        if len(quotes):
            self.last_quote = quotes[-1]
            if quotes[-1]["ts_event_ns"] > 0:
                self.latency_ns = int(quotes[-1]["ts_recv_ns"] - quotes[-1]["ts_event_ns"])
        if len(trades):
            self.last_trade = trades[-1]
            self.latency_ns = int(trades[-1]["ts_recv_ns"] - trades[-1]["ts_event_ns"])
            self.cvd.update(trades)
            for tf, b in self.bars.items():
                closed.extend(b.update(trades))
        if self.latency_ns is not None:
            clock = now_ns - self.latency_ns
            for b in self.bars.values():
                closed.extend(b.close_due(clock))
        for bar in closed:
            self.closed[bar["tf"]].append(bar)
        return closed

    def active(self) -> bool:
        return self.last_trade is not None or self.last_quote is not None

    def features(self, now_ns: int) -> dict:
        out: dict = {"cvd": self.cvd.snapshot()}
        t = self.last_trade
        if t is not None:
            out.update(last_price=float(t["price"]), last_trade_id=int(t["trade_id"]),
                       trade_age_ms=(now_ns - int(t["ts_recv_ns"])) / 1e6)
        else:
            out.update(last_price=None, trade_age_ms=None, last_price_reason="no trade yet")
        q = self.last_quote
        if q is not None:
            out["book"] = top_of_book(float(q["bid"]), float(q["bid_qty"]), float(q["ask"]),
                                      float(q["ask_qty"]))
            out["book"]["update_id"] = int(q["update_id"])
            out["quote_age_ms"] = (now_ns - int(q["ts_recv_ns"])) / 1e6
        else:
            out.update(book=None, quote_age_ms=None, book_reason="no quote yet")
        out["bars"] = {tf: b.snapshot() for tf, b in self.bars.items()}
        return out

    def quality(self, now_ns: int, stale_ns: int) -> list[str]:
        reasons = []
        for name, r, last in (("trade", self.trades_r, self.last_trade),
                              ("quote", self.quotes_r, self.last_quote)):
            if last is None:
                reasons.append(f"{self.venue}.{name}: no data")
            elif now_ns - int(last["ts_recv_ns"]) > stale_ns:
                reasons.append(f"{self.venue}.{name}: stale {(now_ns - int(last['ts_recv_ns'])) / 1e9:.1f}s")
            if r.overrun:
                reasons.append(f"{self.venue}.{name}: {r.overrun} records overrun")
        if self.last_gap_ns and now_ns - self.last_gap_ns < GAP_MEMORY_NS:
            reasons.append(f"{self.venue}: gap {(now_ns - self.last_gap_ns) / 1e9:.0f}s ago")
        return reasons


class Compute:
    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None):
        self.s = s
        self.pub = pub or Publisher(s.zmq_xsub_url, sndhwm=s.zmq_sndhwm)
        self.hb = Heartbeat(registry or Registry(s.shm_dir, s.shm_prefix), "compute")
        self.venues = {v: VenueState(s, v) for v in TRADE_VENUES}
        self.blocks = {name: StateBlock(s.shm_dir, s.shm_prefix, name, writer=True)
                       for name in ("features", "bars", "quality")}
        self.features_topic = features_topic(s.symbol).encode()
        self.tick_ms = s.tick_ms
        self.ticks = 0
        self.overruns = 0
        self.last_duration_ns = 0
        self.max_duration_ns = 0
        self.last_jitter_ns = 0
        self.bars_published = 0
        self._quality: dict | None = None
        self._quality_pub_ns = 0
        self._stop = False

    # --- one tick -------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        for vs in self.venues.values():
            for bar in vs.step(now_ns):
                self.pub.publish(bar_topic(bar["tf"], vs.venue, self.s.symbol), dict(bar))
                self.bars_published += 1
        active = {v: vs for v, vs in self.venues.items() if vs.active()}
        quality = self._quality_doc(now_ns)
        feats = {"symbol": self.s.symbol, "ts_ns": now_ns, "tick": self.ticks,
                 "venues": {v: vs.features(now_ns) for v, vs in active.items()},
                 "quality": {"mode": quality["mode"], "reasons": quality["reasons"]}}
        self.blocks["features"].write(feats)
        self.pub.publish(self.features_topic, feats)
        self.blocks["bars"].write({"symbol": self.s.symbol, "ts_ns": now_ns, "venues": {
            v: {tf: {"current": vs.bars[tf].snapshot(), "closed": list(vs.closed[tf])}
                for tf in TF_SEC} for v, vs in active.items()}})
        self._publish_quality(quality, now_ns)
        self.ticks += 1

    def _quality_doc(self, now_ns: int) -> dict:
        stale_ns = int(self.s.health_data_stale_sec * 1e9)
        fut = self.venues["futures"]
        reasons = fut.quality(now_ns, stale_ns)
        for v, vs in self.venues.items():
            if v != "futures" and vs.active():
                reasons += vs.quality(now_ns, stale_ns)
        bad = fut.last_trade is None and fut.last_quote is None or any(
            "no data" in r or "stale" in r for r in reasons if r.startswith("futures."))
        mode = "BAD" if bad else ("DEGRADED" if reasons else "OK")
        return {"mode": mode, "reasons": reasons, "tick_overruns": self.overruns}

    def _publish_quality(self, q: dict, now_ns: int) -> None:
        changed = self._quality is None or (q["mode"], q["reasons"]) != (
            self._quality["mode"], self._quality["reasons"])
        if changed or now_ns - self._quality_pub_ns >= 1_000_000_000:
            doc = {**q, "ts_ns": now_ns, "changed": changed}
            self.blocks["quality"].write(doc)
            self.pub.publish(STATE_TOPIC, doc)
            self._quality, self._quality_pub_ns = q, now_ns

    # --- schedule ---------------------------------------------------------------------------
    def counters(self) -> dict:
        return {"ticks": self.ticks, "tick_overruns": self.overruns,
                "tick_last_ms": self.last_duration_ns / 1e6, "tick_max_ms": self.max_duration_ns / 1e6,
                "tick_jitter_ms": self.last_jitter_ns / 1e6, "bars_published": self.bars_published,
                "published": self.pub.sent, "publish_dropped": self.pub.dropped,
                "ring_overruns": sum(vs.trades_r.overrun + vs.quotes_r.overrun
                                     for vs in self.venues.values()),
                "gaps": sum(vs.gaps for vs in self.venues.values())}

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        period = self.tick_ms * 1_000_000
        deadline = (time.time_ns() // period + 1) * period
        next_beat = 0
        while not self._stop:
            delay = deadline - time.time_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            start = time.time_ns()
            self.last_jitter_ns = start - deadline
            self.tick(start)
            end = time.time_ns()
            self.last_duration_ns = end - start
            self.max_duration_ns = max(self.max_duration_ns, self.last_duration_ns)
            deadline += period
            if end > deadline:
                missed = (end - deadline) // period + 1
                self.overruns += missed
                deadline += missed * period
            if end >= next_beat:
                self.hb.beat(self.counters())
                next_beat = end + 500_000_000
        self.hb.beat(self.counters(), stopped=True)
        self.pub.close()

    def stop(self) -> None:
        self._stop = True


def main(settings: Settings) -> None:
    Compute(settings).run()
