"""The `compute` actor: on a fixed tick, read every ring since its cursor, derive features, publish.

Invariants:
- the tick is scheduled on absolute deadlines (`k·TICK_MS`), so it never drifts; a tick that ends
  past the next deadline is counted as an overrun and the schedule skips to the next slot; between
  ticks the actor answers control requests (ZMQ_CONTROL_URL, REP) and nothing else;
- each tick reads each ring once from its cursor: work is proportional to what arrived;
- gap records are counted (quality) and never enter a computation; lapped readers count overruns;
- an explicit anchor (POST /control/anchor/reset) is kept in the shm block `anchor`, so a restarted
  compute keeps it; without one, CVD and VWAP anchor at 00:00 UTC;
- no feature math lives here: it is in actors/features; this module only wires and schedules;
- venues play roles given as data (`ComputePlan`, built once from ipc.names): which venues carry
  trades and quotes, which one is primary (quality's BAD, the edge engine's price, the anchor
  shown), which two are the basis legs and which one has the mark price and liquidations; no code
  here names a venue.
"""
from __future__ import annotations

import logging
import signal
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import orjson
import zmq

from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.bus import Publisher
from ipc.names import STATE_TOPIC, bar_topic, edge_topic, features_topic
from ipc.ring import RingReader
from ipc.schema import DTYPES, FLAG_GAP, KLINE
from ipc.state import Heartbeat, Registry, StateBlock

from actors.decide.engine import EdgeEngine
from actors.features.bars import BarBuilder
from actors.features.basis import Basis
from actors.features.bias import Bias
from actors.features.book import top_of_book
from actors.features.depth import BookImbalance
from actors.features.docs import BarsDoc, FeaturesDoc, QualityDoc, StateEventDoc
from actors.features.flow import Cvd
from actors.features.impulse import Impulse
from actors.features.liquidations import Liquidations
from actors.features.quality import QualityParams, StreamInput, VenueInput, assess
from actors.features.rvol import Rvol
from actors.features.volatility import Volatility
from actors.features.vwap import AnchoredVwap
from actors.obs.histogram import TICK_DURATION_BOUNDS_MS, Histogram

log = logging.getLogger("compute")

KEEP_CLOSED_BARS = 120
TICK_STATS = 4096
ANCHOR_BLOCK_BYTES = 4096
QUALITY_REPUBLISH_NS = 1_000_000_000   # an unchanged quality is republished this often
HEARTBEAT_EVERY_NS = 500_000_000


@dataclass(frozen=True, kw_only=True)
class ComputePlan:
    """The role of each venue in compute (module docstring)."""
    trade_venues: tuple[str, ...]      # rings trade/quote/depth: bars, CVD, VWAP, book, ...
    primary: str                       # quality BAD, edge engine input, anchor shown
    basis_legs: tuple[str, str]        # (perpetual leg, spot leg) of the basis
    mark_source: str                   # rings mark and liquidation

    def __post_init__(self):
        if self.primary not in self.trade_venues or not set(self.basis_legs) <= set(self.trade_venues):
            raise ValueError(f"plan names a venue it does not read: {self}")

    @classmethod
    def default(cls) -> "ComputePlan":
        return cls(trade_venues=names.BINANCE_VENUES, primary=names.FUTURES,
                   basis_legs=(names.FUTURES, names.SPOT), mark_source=names.FUTURES)


def _gap_split(recs: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(data records, number of gap records, recv time of the last gap or 0)."""
    gap = (recs["flags"] & FLAG_GAP) != 0
    if not gap.any():
        return recs, 0, 0
    return recs[~gap], int(gap.sum()), int(recs["ts_recv_ns"][gap][-1])


class VenueState:
    """Readers and feature state of one venue's rings."""

    def __init__(self, s: Settings, venue: str, anchor_ns: int | None, from_oldest: bool = False):
        self.venue = venue
        rings = names.VENUE_RINGS[venue]
        mk = lambda kind: RingReader(s.ipc.shm_dir, rings[kind].name(s.ipc.shm_prefix, s.general.symbol),
                                     DTYPES[kind], from_oldest=from_oldest)
        self.trades_r, self.quotes_r, self.depth_r = mk("trade"), mk("quote"), mk("depth")
        grace = s.features.bar_late_grace_ms * 1_000_000
        self.bars = {tf: BarBuilder(tf, venue, grace_ns=grace) for tf in names.BAR_TFS}
        self.closed = {tf: deque(maxlen=KEEP_CLOSED_BARS) for tf in names.BAR_TFS}
        self.rvol = {tf: Rvol.from_settings(s, tf, venue=venue) for tf in names.BAR_TFS}
        self.cvd = Cvd(anchor_ns=anchor_ns)
        self.vwap = AnchoredVwap(anchor_ns=anchor_ns)
        self.vol = Volatility.from_settings(s)
        self.impulse = Impulse.from_settings(s)
        self.imbalance = BookImbalance.from_settings(s)
        self.grace_ns = grace
        self.last_trade: np.void | None = None
        self.last_quote: np.void | None = None
        self.latency_ns: int | None = None      # recv − event, to run bar clocks on exchange time
        self.gaps = 0
        self.last_gap_ns = 0

    def _take(self, reader: RingReader) -> np.ndarray:
        recs, n, last = _gap_split(reader.read())
        if n:
            self.gaps += n
            self.last_gap_ns = max(self.last_gap_ns, last)
        return recs

    def step(self, now_ns: int) -> tuple[list[dict], np.ndarray]:
        """Consume new records; return the bars this step closed and the new quotes."""
        trades, quotes = self._take(self.trades_r), self._take(self.quotes_r)
        self.imbalance.update(self._take(self.depth_r))
        closed: list[dict] = []
        if len(quotes):
            self.last_quote = quotes[-1]
            if quotes[-1]["ts_event_ns"] > 0:
                self.latency_ns = int(quotes[-1]["ts_recv_ns"] - quotes[-1]["ts_event_ns"])
        if len(trades):
            self.last_trade = trades[-1]
            self.latency_ns = int(trades[-1]["ts_recv_ns"] - trades[-1]["ts_event_ns"])
            self.cvd.update(trades)
            self.vwap.update(trades)
            self.vol.update(trades)
            self.impulse.update(trades)
            for b in self.bars.values():
                closed.extend(b.update(trades))
        if self.latency_ns is not None:
            clock = now_ns - self.latency_ns
            for b in self.bars.values():
                closed.extend(b.close_due(clock))
            self.vol.close_due(clock - self.grace_ns)
        for bar in closed:
            self.closed[bar["tf"]].append(bar)
        for r in self.rvol.values():
            r.update(closed)
        return closed, quotes

    def reset_anchor(self, anchor_ns: int) -> None:
        self.cvd.reset(anchor_ns)
        self.vwap.reset(anchor_ns)

    def active(self) -> bool:
        return self.last_trade is not None or self.last_quote is not None

    def features(self, now_ns: int) -> dict:
        out: dict = {"cvd": self.cvd.snapshot(), "vwap": self.vwap.snapshot(now_ns),
                     "volatility": self.vol.snapshot(now_ns),
                     "impulse": self.impulse.snapshot(self.vol.sigma_fast(),
                                                      now_ns - (self.latency_ns or 0), now_ns),
                     "rvol": {tf: r.snapshot(now_ns) for tf, r in self.rvol.items()},
                     "imbalance": self.imbalance.snapshot(now_ns)}
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
        out["clock_offset_ms"] = self.latency_ns / 1e6 if self.latency_ns is not None else None
        return out

    def quality_input(self) -> VenueInput:
        """What quality needs of this venue (actors/features/quality.py)."""
        streams = tuple(StreamInput(name, None if last is None else int(last["ts_recv_ns"]), r.overrun)
                        for name, r, last in (("trade", self.trades_r, self.last_trade),
                                              ("quote", self.quotes_r, self.last_quote)))
        return VenueInput(self.venue, streams, self.last_gap_ns, self.latency_ns)


class Compute:
    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None,
                 ctx: zmq.Context | None = None, plan: ComputePlan | None = None):
        self.s = s
        self.plan = plan = plan or ComputePlan.default()
        self.pub = pub or Publisher(s.ipc.zmq_xsub_url, sndhwm=s.ipc.zmq_sndhwm)
        self.registry = registry or Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
        # the first compute of a system takes the rings from their first record (the feeds may
        # have written before it came up: a replay's first trades, a live start's first second);
        # a restarted one goes on from now, its bars up to the crash were published already
        first_start = "compute" not in self.registry.read_all()
        self.hb = Heartbeat(self.registry, "compute")
        self.anchor_block = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.ANCHOR_BLOCK, size=ANCHOR_BLOCK_BYTES,
                                       writer=True)
        anchor = (self.anchor_block.read() or {}).get("anchor_ns")
        self.venues = {v: VenueState(s, v, anchor, first_start) for v in plan.trade_venues}
        self.primary = self.venues[plan.primary]
        self.others = tuple(vs for v, vs in self.venues.items() if v != plan.primary)
        mk = lambda venue, kind: RingReader(s.ipc.shm_dir, names.venue_ring(venue, kind).name(s.ipc.shm_prefix, s.general.symbol),
                                            DTYPES[kind], from_oldest=first_start)
        self.mark_r, self.liq_r = mk(plan.mark_source, "mark"), mk(plan.mark_source, "liquidation")
        self.kline_r = {tf: RingReader(s.ipc.shm_dir, names.context_kline_ring(tf).name(s.ipc.shm_prefix, s.general.symbol),
                                       KLINE, from_oldest=True) for tf in s.context.context_tfs}
        self.basis = Basis.from_settings(s)
        perp_leg, spot_leg = plan.basis_legs
        self.basis_update = {perp_leg: self.basis.update_futures, spot_leg: self.basis.update_spot}
        self.quality_params = QualityParams.from_settings(s)
        self.liqs = Liquidations.from_settings(s, clock.now_ns())
        self.bias = Bias.from_settings(s)
        self.blocks = {name: StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, name, writer=True)
                       for name in names.COMPUTE_BLOCKS}
        self.features_topic = features_topic(s.general.symbol).encode()
        self.edge_topic = edge_topic(s.general.symbol).encode()
        self.edge = EdgeEngine(s)
        self.ctx = ctx or zmq.Context.instance()
        self.control = self.ctx.socket(zmq.REP)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.bind(s.ipc.zmq_control_url)
        self.tick_ms = s.general.tick_ms
        self.ticks = self.overruns = self.bars_published = self.control_requests = 0
        self.last_duration_ns = self.max_duration_ns = self.last_jitter_ns = 0
        self._quality: dict | None = None
        self._quality_pub_ns = 0
        self._stop = False
        # the last TICK_STATS ticks' duration and start jitter (ns), for percentiles in the heartbeat
        self._tick_ns = np.zeros((TICK_STATS, 2), dtype=np.int64)
        # every tick's duration since start, for the Prometheus histogram (the window above forgets)
        self.tick_hist = Histogram(TICK_DURATION_BOUNDS_MS)

    # --- one tick -------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        for vs in self.venues.values():
            closed, quotes = vs.step(now_ns)
            for bar in closed:
                self.pub.publish(bar_topic(bar["tf"], vs.venue, self.s.general.symbol), dict(bar))
                self.bars_published += 1
            leg = self.basis_update.get(vs.venue)
            if leg is not None:
                leg(quotes)
        self.basis.update_mark(_gap_split(self.mark_r.read())[0])
        self.liqs.update(_gap_split(self.liq_r.read())[0])
        for r in self.kline_r.values():
            self.bias.update(_gap_split(r.read())[0])
        active = {v: vs for v, vs in self.venues.items() if vs.active()}
        quality = self._quality_doc(now_ns)
        feats: FeaturesDoc = {
            "symbol": self.s.general.symbol, "ts_ns": now_ns, "tick": self.ticks,
            "venues": {v: vs.features(now_ns) for v, vs in active.items()},
            "basis": self.basis.snapshot(now_ns), "liquidations": self.liqs.snapshot(now_ns),
            "bias": self.bias.snapshot(now_ns),
            "anchor": {"anchor_ns": self.primary.cvd.anchor_ns, "explicit": self.primary.cvd.explicit},
            "quality": {"mode": quality["mode"], "reasons": quality["reasons"]}}
        self.blocks[names.FEATURES_BLOCK].write(feats)
        self.pub.publish(self.features_topic, feats)
        bars: BarsDoc = {"symbol": self.s.general.symbol, "ts_ns": now_ns, "venues": {
            v: {tf: {"current": vs.bars[tf].snapshot(), "closed": list(vs.closed[tf])}
                for tf in names.BAR_TFS} for v, vs in active.items()}}
        self.blocks[names.BARS_BLOCK].write(bars)
        self._publish_quality(quality, now_ns)
        edge = self.edge.step(now_ns, feats["venues"].get(self.plan.primary), quality["mode"],
                              feats["bias"].get("score"))
        self.blocks[names.EDGE_BLOCK].write(edge)
        self.pub.publish(self.edge_topic, edge)
        self.ticks += 1

    def _quality_doc(self, now_ns: int) -> dict:
        q = assess(now_ns, self.primary.quality_input(), [vs.quality_input() for vs in self.others],
                   self.overruns, self.ticks, self.quality_params)
        return {"mode": q.mode, "reasons": q.reasons, "tick_overruns": self.overruns}

    def _actor_health(self) -> dict:
        """Every actor's heartbeat, in short, for the `state` topic (wall clock: liveness)."""
        wall = time.time_ns()
        alive_ns = self.s.ipc.health_alive_sec * 1e9
        out = {}
        for name, hb in self.registry.read_all().items():
            age = wall - hb["alive_ns"]
            out[name] = {"pid": hb["pid"], "heartbeat_age_ms": round(age / 1e6, 1),
                         "alive": age <= alive_ns and not hb.get("stopped")}
        return out

    def _publish_quality(self, q: dict, now_ns: int) -> None:
        changed = self._quality is None or (q["mode"], q["reasons"]) != (
            self._quality["mode"], self._quality["reasons"])
        if changed or now_ns - self._quality_pub_ns >= QUALITY_REPUBLISH_NS:
            doc: QualityDoc = {**q, "ts_ns": now_ns, "changed": changed}
            self.blocks[names.QUALITY_BLOCK].write(doc)
            event: StateEventDoc = {**doc, "actors": self._actor_health()}
            self.pub.publish(STATE_TOPIC, event)
            self._quality, self._quality_pub_ns = q, now_ns

    # --- control ------------------------------------------------------------------------------
    def handle_control(self, request: bytes) -> dict:
        """One control request (JSON object with `cmd`); the reply says what was done."""
        try:
            req = orjson.loads(request)
            cmd = req["cmd"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return {"ok": False, "error": "request must be a JSON object with a 'cmd'"}
        self.control_requests += 1
        if cmd == "anchor_reset":
            anchor = req.get("anchor_ns")
            anchor = clock.now_ns() if anchor is None else anchor
            if not isinstance(anchor, int) or anchor < 0:
                return {"ok": False, "error": "anchor_ns must be a non-negative integer"}
            for vs in self.venues.values():
                vs.reset_anchor(anchor)
            self.anchor_block.write({"anchor_ns": anchor, "set_ns": clock.now_ns()})
            self.pub.publish(STATE_TOPIC, {"event": "anchor_reset", "anchor_ns": anchor})
            log.info("anchor reset to %d", anchor)
            return {"ok": True, "anchor_ns": anchor}
        return {"ok": False, "error": f"unknown cmd {cmd!r}"}

    def _serve_control(self, timeout_ms: int) -> None:
        if self.control.poll(max(0, timeout_ms)):
            self.control.send(orjson.dumps(self.handle_control(self.control.recv())))

    # --- schedule ---------------------------------------------------------------------------
    def tick_percentiles(self) -> dict:
        n = min(self.ticks, TICK_STATS)
        if n == 0:
            return {}
        d, j = self._tick_ns[:n, 0] / 1e6, self._tick_ns[:n, 1] / 1e6
        return {"tick_p50_ms": float(np.percentile(d, 50)), "tick_p99_ms": float(np.percentile(d, 99)),
                "jitter_p50_ms": float(np.percentile(j, 50)), "jitter_p99_ms": float(np.percentile(j, 99)),
                "tick_samples": int(n)}

    def counters(self) -> dict:
        return {**self.tick_percentiles(), "ticks": self.ticks, "tick_overruns": self.overruns,
                "tick_last_ms": self.last_duration_ns / 1e6, "tick_max_ms": self.max_duration_ns / 1e6,
                "tick_jitter_ms": self.last_jitter_ns / 1e6, "bars_published": self.bars_published,
                "published": self.pub.sent, "publish_dropped": self.pub.dropped,
                "control_requests": self.control_requests, **self.edge.counters(),
                "ring_overruns": sum(self.ring_overruns().values()),
                "gaps": sum(vs.gaps for vs in self.venues.values())}

    def ring_overruns(self) -> dict[str, int]:
        """Records each of compute's ring readers lost to being lapped, by `<venue>.<kind>`."""
        mark = self.plan.mark_source
        readers = [(names.venue_ring(v, kind), r) for v, vs in self.venues.items()
                   for kind, r in (("trade", vs.trades_r), ("quote", vs.quotes_r))]
        readers += [(names.venue_ring(mark, "mark"), self.mark_r),
                    (names.venue_ring(mark, "liquidation"), self.liq_r)]
        readers += [(names.context_kline_ring(tf), r) for tf, r in self.kline_r.items()]
        return {ring.key(): r.overrun for ring, r in readers}

    def report(self) -> dict:
        """Heartbeat extras for /metrics: histograms by name, overruns by ring."""
        return {"hist": {"tick_duration": self.tick_hist.doc()}, "rings": self.ring_overruns()}

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        period = self.tick_ms * 1_000_000
        deadline = (clock.now_ns() // period + 1) * period
        next_beat = 0
        while not self._stop:
            while (delay := deadline - clock.now_ns()) > 0 and not self._stop:
                self._serve_control(int(clock.wall_sec(delay) * 1e3))
            start = clock.now_ns()
            self.last_jitter_ns = start - deadline
            self.tick(start)
            end = clock.now_ns()
            self._tick_ns[(self.ticks - 1) % TICK_STATS] = (end - start, self.last_jitter_ns)
            self.last_duration_ns = end - start
            self.tick_hist.observe_ns(self.last_duration_ns)
            self.max_duration_ns = max(self.max_duration_ns, self.last_duration_ns)
            deadline += period
            if end > deadline:
                missed = (end - deadline) // period + 1
                self.overruns += missed
                deadline += missed * period
            if end >= next_beat:
                self.hb.beat(self.counters(), **self.report())
                next_beat = end + HEARTBEAT_EVERY_NS
        self.hb.beat(self.counters(), stopped=True, **self.report())
        self.control.close(0)
        self.pub.close()

    def stop(self) -> None:
        self._stop = True


def main(settings: Settings) -> None:
    Compute(settings).run()
