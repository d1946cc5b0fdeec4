"""The `compute` actor: on a fixed tick, read every ring since its cursor, derive features, publish.

Invariants:
- the tick is scheduled on absolute deadlines (`k·TICK_MS`), so it never drifts; a tick that ends
  past the next deadline is counted as an overrun and the schedule skips to the next slot; between
  ticks the actor answers control requests (ZMQ_CONTROL_URL, ipc/control.py: token required,
  junk counted and answered, never raised) and nothing else;
- each tick reads each ring once from its cursor: work is proportional to what arrived;
- gap records are counted (quality) and never enter a computation; lapped readers count overruns,
  and quality remembers the last one (the tick it was seen) as long as a gap;
- an explicit anchor (POST /control/anchor/reset) is kept in the shm block `anchor`, so a restarted
  compute keeps it; without one, CVD and VWAP anchor at 00:00 UTC;
- before the first tick (`warm_up`, actors/warmup.py) each venue's session state is rebuilt exactly
  from the ring, 1m klines and aggTrades, within WARMUP_BUDGET_SEC: CVD and VWAP since the anchor
  equal an uninterrupted run's, whether compute restarted or started mid-day; the trade rings are
  read from their oldest record for it;
- no insane value reaches the feature math (actors/features/sane.py): dropped, counted per
  `<venue>.<kind>:<reason>` (`skipped`);
- no feature math lives here: it is in actors/features; this module only wires and schedules;
- venues play roles given as data (`ComputePlan`, built once from ipc.names): which venues carry
  trades and quotes, which one is primary (quality's BAD, the edge engines' price, the anchor
  shown), which two are the basis legs, which one has the mark price and liquidations, and which
  one is the candle source (the market whose candles, and so whose price, a Binance-candle
  up/down window settles on); no code here names a venue;
- one edge engine per followed up/down series (`venues.polymarket_windows`), publishing
  `edge.<SYMBOL>.<series>` every tick; the `edge` block holds them all
  (`{"ts_ns", "symbol", "disabled", "series": {<series>: edge document}}`). With the Polymarket
  side off (`polymarket_on` false) there is no engine, the block says `{"disabled": reason}` and
  the features go on;
- the global quality names every input (the venues, Chainlink, each series' books); each edge
  document carries the quality of its own inputs only (actors/decide/engine.py);
- compute is the one writer of the dashboard's history rings (`names.MARKET_HISTORY_RING`,
  `names.window_history_ring(series)`): samples of the features and edge documents of the tick,
  chosen by actors/decide/history.py (no second computation, no extra encode).
"""
from __future__ import annotations

import asyncio
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
from ipc.control import ControlServer
from ipc import names
from ipc.bus import Publisher
from ipc.names import STATE_TOPIC, bar_topic, features_topic
from ipc.ring import RingReader, RingWriter
from ipc.schema import DTYPES, FLAG_GAP, KLINE, RING_DTYPES
from ipc.state import Heartbeat, Registry, StateBlock

from actors.decide.engine import EdgeEngine, SharedInputs
from actors.decide.history import MarketSampler, WindowSampler
from actors.features.bars import BarBuilder
from actors.features.basis import Basis
from actors.features.bias import Bias
from actors.features.book import top_of_book
from actors.features.depth import BookImbalance
from actors.features.docs import BarsDoc, FeaturesDoc, QualityDoc, StateEventDoc
from actors.features.flow import Cvd
from actors.features.impulse import Impulse
from actors.features.liquidations import Liquidations
from actors.features.quality import OverrunClock, QualityParams, VenueInput, assess
from actors.features.rvol import Rvol
from actors.features.sane import sane
from actors.features.volatility import Volatility
from actors.features.vwap import AnchoredVwap
from actors.obs.histogram import TICK_DURATION_BOUNDS_MS, Histogram
from actors.warmup import warm_all

log = logging.getLogger("compute")

KEEP_CLOSED_BARS = 120
TICK_STATS = 4096
ANCHOR_BLOCK_BYTES = 4096
QUALITY_REPUBLISH_NS = 1_000_000_000   # an unchanged quality is republished this often
HEARTBEAT_EVERY_NS = 500_000_000
WARMUP_BUDGET_SEC = 10.0     # all venues' warm-up together; past it a venue starts from its ring
FIRST_TRADE_WAIT_SEC = 3.0   # before it, at most: the wait for an empty ring's first trade (REST stops
                             # there); never more than a third of the budget


@dataclass(frozen=True, kw_only=True)
class ComputePlan:
    """The role of each venue in compute (module docstring)."""
    trade_venues: tuple[str, ...]      # rings trade/quote/depth: bars, CVD, VWAP, book, ...
    primary: str                       # quality BAD, edge engine input, anchor shown
    basis_legs: tuple[str, str]        # (perpetual leg, spot leg) of the basis
    mark_source: str                   # rings mark and liquidation
    candle_source: str = names.SPOT    # ring kline and price of a Binance-candle window's settlement
    # the Settings.venues field with each trade venue's REST base URL (the warm-up's klines/aggTrades)
    rest_url_field: tuple[tuple[str, str], ...] = ((names.FUTURES, "futures_rest"), (names.SPOT, "spot_rest"))

    def __post_init__(self):
        if self.primary not in self.trade_venues or not set(self.basis_legs) <= set(self.trade_venues) \
                or self.candle_source not in self.trade_venues:
            raise ValueError(f"plan names a venue it does not read: {self}")

    @classmethod
    def default(cls) -> "ComputePlan":
        return cls(trade_venues=names.BINANCE_VENUES, primary=names.FUTURES,
                   basis_legs=(names.FUTURES, names.SPOT), mark_source=names.FUTURES,
                   candle_source=names.SPOT)


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
        mk = lambda kind, oldest=from_oldest: RingReader(
            s.ipc.shm_dir, rings[kind].name(s.ipc.shm_prefix, s.general.symbol), DTYPES[kind], from_oldest=oldest)
        # trades from the oldest record: the warm-up rebuilds the session from all the ring holds
        self.trades_r, self.quotes_r, self.depth_r = mk("trade", True), mk("quote"), mk("depth")
        self.s, self.anchor_ns = s, anchor_ns
        self.skipped: dict[str, int] = {}      # insane values dropped, by "<kind>:<reason>"
        self.boot_last_id: int | None = None   # the newest trade id the warm-up used
        self.warmup: dict | None = None        # the warm-up's report
        self.overlap = 0                       # live trades the warm-up had already used
        self.reset_features()
        self.grace_ns = s.features.bar_late_grace_ms * 1_000_000
        self.last_quote: np.void | None = None
        self.latency_ns: int | None = None      # recv − event, to run bar clocks on exchange time
        self.gaps = 0
        self.last_gap_ns = 0
        # when each quality-assessed reader was last lapped (an overrun is remembered like a gap)
        self.trades_lapped, self.quotes_lapped = OverrunClock(), OverrunClock()

    def reset_features(self) -> None:
        """The trade features as a fresh start has them (also: a failed warm-up is forgotten)."""
        s, venue, anchor_ns = self.s, self.venue, self.anchor_ns
        grace = s.features.bar_late_grace_ms * 1_000_000
        self.bars = {tf: BarBuilder(tf, venue, grace_ns=grace) for tf in names.BAR_TFS}
        self.closed = {tf: deque(maxlen=KEEP_CLOSED_BARS) for tf in names.BAR_TFS}
        self.rvol = {tf: Rvol.from_settings(s, tf, venue=venue) for tf in names.BAR_TFS}
        self.cvd = Cvd(anchor_ns=anchor_ns)
        self.vwap = AnchoredVwap(anchor_ns=anchor_ns)
        self.vol = Volatility.from_settings(s)
        self.impulse = Impulse.from_settings(s)
        self.imbalance = BookImbalance.from_settings(s)
        self.last_trade: np.void | None = None

    def _take(self, reader: RingReader, kind: str | None = None) -> np.ndarray:
        recs, n, last = _gap_split(reader.read())
        if n:
            self.gaps += n
            self.last_gap_ns = max(self.last_gap_ns, last)
        return recs if kind is None else sane(recs, kind, self.skipped)

    def take_trades(self) -> np.ndarray:
        """New sane trades, without those the warm-up already used (REST may be ahead of the ring).
        The first live trade past the warm-up must follow its last id: one that does not marks
        the warm-up not exact (`missed_ids`); then the warm-up's id is forgotten (ids that
        restart, a sim or a replay looping, must not be dropped for good)."""
        trades = self._take(self.trades_r, "trade")
        if self.boot_last_id is not None and len(trades):
            new = trades["trade_id"] > self.boot_last_id
            if not new.all():
                self.overlap += int((~new).sum())
                trades = trades[new]
            if len(trades):
                missed = int(trades["trade_id"][0]) - self.boot_last_id - 1
                if missed > 0 and self.warmup is not None and self.warmup.get("exact"):
                    self.warmup = {**self.warmup, "exact": False, "missed_ids": missed,
                                   "reason": f"{missed} trade ids between the warm-up and the first "
                                             f"live trade were not received"}
                    log.warning("%s: %s", self.venue, self.warmup["reason"])
                self.boot_last_id = None
        return trades

    def step(self, now_ns: int) -> tuple[list[dict], np.ndarray]:
        """Consume new records; return the bars this step closed and the new quotes."""
        trades, quotes = self.take_trades(), self._take(self.quotes_r, "quote")
        self.trades_lapped.see(self.trades_r.overrun, now_ns)
        self.quotes_lapped.see(self.quotes_r.overrun, now_ns)
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
        out["warmup"] = self.warmup
        out["skipped"] = dict(self.skipped)
        return out

    def quality_input(self) -> VenueInput:
        """What quality needs of this venue (actors/features/quality.py)."""
        streams = tuple(lapped.stream(name, None if last is None else int(last["ts_recv_ns"]))
                        for name, lapped, last in (("trade", self.trades_lapped, self.last_trade),
                                                   ("quote", self.quotes_lapped, self.last_quote)))
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
        self.anchor_ns, self.warmed = anchor, False
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
        # the Polymarket side: one engine per followed series, or none (polymarket off)
        self.poly = self.shared = None
        self.engines: dict[str, EdgeEngine] = {}
        if s.polymarket_on:
            self.poly = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.POLYMARKET_BLOCK)
            self.shared = SharedInputs(s, plan.primary, plan.candle_source)
            self.engines = {series: EdgeEngine(s, series, self.shared)
                            for series in s.venues.polymarket_windows}
        # the dashboard's history rings (one writer: compute), sampled from the docs of the tick
        hist = lambda ring, cap: RingWriter(s.ipc.shm_dir, ring.name(s.ipc.shm_prefix, s.general.symbol),
                                            RING_DTYPES[ring.kind], cap)
        self.market_sampler = MarketSampler(plan.basis_legs)
        self.market_hist = hist(names.MARKET_HISTORY_RING, names.MARKET_HISTORY_CAPACITY)
        self.window_hist = {series: (WindowSampler(s.venues.window_secs[series], s.general.tick_ms),
                                     hist(names.window_history_ring(series), names.WINDOW_HISTORY_CAPACITY))
                            for series in self.engines}
        self._poly_bytes: bytes | None = None
        self._poly_doc: dict = {}
        self.ctx = ctx or zmq.Context.instance()
        # authenticated, junk-proof (ipc/control.py): answered between ticks
        self.control = ControlServer(self.ctx, s.ipc.zmq_control_url, s.general.api_token,
                                     self.handle_control)
        self.tick_ms = s.general.tick_ms
        self.ticks = self.overruns = self.bars_published = 0
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
        if self.engines:
            poly = self._read_poly()
            self.shared.read(now_ns)
            for series, eng in self.engines.items():
                eng.read(poly.get(series))
            # after every engine has its window: which candles their rules still need
            self.shared.keep_candles(set().union(*(eng.candles_needed() for eng in self.engines.values())))
        active = {v: vs for v, vs in self.venues.items() if vs.active()}
        sources = {v: vs.quality_input() for v, vs in self.venues.items()}
        quality = self._quality_doc(now_ns, sources)
        feats: FeaturesDoc = {
            "symbol": self.s.general.symbol, "ts_ns": now_ns, "tick": self.ticks,
            "venues": {v: vs.features(now_ns) for v, vs in active.items()},
            "basis": self.basis.snapshot(now_ns), "liquidations": self.liqs.snapshot(now_ns),
            "bias": self.bias.snapshot(now_ns),
            "anchor": {"anchor_ns": self.primary.cvd.anchor_ns, "explicit": self.primary.cvd.explicit},
            "quality": {"mode": quality["mode"], "reasons": quality["reasons"]}}
        self.blocks[names.FEATURES_BLOCK].write(feats)
        self.pub.publish(self.features_topic, feats)
        if (rec := self.market_sampler.offer(feats)) is not None:
            self.market_hist.append(rec)
        bars: BarsDoc = {"symbol": self.s.general.symbol, "ts_ns": now_ns, "venues": {
            v: {tf: {"current": vs.bars[tf].snapshot(), "closed": list(vs.closed[tf])}
                for tf in names.BAR_TFS} for v, vs in active.items()}}
        self.blocks[names.BARS_BLOCK].write(bars)
        self._publish_quality(quality, now_ns)
        self.blocks[names.EDGE_BLOCK].write(self._edges(now_ns, feats, sources))
        self.ticks += 1

    def _read_poly(self) -> dict:
        """The `series` of feed_poly's block (window metadata), parsed again only when it changed."""
        raw = self.poly.read_bytes()
        if raw != self._poly_bytes:
            self._poly_bytes = raw
            try:
                doc = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                doc = {}
            self._poly_doc = (doc.get("series") if isinstance(doc, dict) else None) or {}
        return self._poly_doc

    def _edges(self, now_ns: int, feats: dict, sources: dict) -> dict:
        """Every engine's step, each published on its own topic; the `edge` block's document."""
        if not self.engines:
            return {"ts_ns": now_ns, "symbol": self.s.general.symbol,
                    "disabled": self.s.polymarket_off_reason, "series": {}}
        self.shared.on_prices(now_ns, feats["venues"])
        docs = {}
        for series, eng in self.engines.items():
            docs[series] = doc = eng.step(now_ns, feats["venues"], feats["bias"].get("score"), sources)
            self.pub.publish(eng.topic, doc)
            sampler, ring = self.window_hist[series]
            if (rec := sampler.offer(doc)) is not None:
                ring.append(rec)
        return {"ts_ns": now_ns, "symbol": self.s.general.symbol, "disabled": None, "series": docs}

    def _quality_doc(self, now_ns: int, sources: dict) -> dict:
        others = [sources[v] for v in self.venues if v != self.plan.primary]
        if self.engines:
            others.append(self.shared.chainlink_quality(
                int(self.s.decisions.fair_chainlink_max_age_sec * 1e9), True))
            others += [eng.quality_input(now_ns) for eng in self.engines.values()]
        q = assess(now_ns, sources[self.plan.primary], others, self.overruns, self.ticks,
                   self.quality_params)
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
    def handle_control(self, req: dict) -> dict:
        """One authenticated control request `{"cmd", args...}`, its arguments already checked
        (ipc/control.py COMMANDS); the reply says what was done."""
        cmd = req["cmd"]
        if cmd == "anchor_reset":
            anchor = req.get("anchor_ns")
            anchor = clock.now_ns() if anchor is None else anchor
            for vs in self.venues.values():
                vs.reset_anchor(anchor)
            self.anchor_block.write({"anchor_ns": anchor, "set_ns": clock.now_ns()})
            self.pub.publish(STATE_TOPIC, {"event": "anchor_reset", "anchor_ns": anchor})
            log.info("anchor reset to %d", anchor)
            return {"ok": True, "anchor_ns": anchor}
        return {"ok": False, "error": f"unknown cmd {cmd!r}"}

    def _serve_control(self, timeout_ms: int) -> None:
        self.control.serve(timeout_ms)

    # --- warm-up ----------------------------------------------------------------------------
    def rest_allowed(self) -> bool:
        """REST warm-up only where a replay could reproduce the state (actors/warmup.py)."""
        return not self.s.record.record_enabled and self.s.replay.replay_dir is None

    def warm_up(self, budget_sec: float = WARMUP_BUDGET_SEC) -> dict:
        """Rebuild every venue's session state before the first tick; the reports by venue."""
        rest = self.rest_allowed()
        urls = {v: getattr(self.s.venues, field) if rest else None
                for v, field in self.plan.rest_url_field if v in self.venues}
        rings = {v: vs.take_trades() for v, vs in self.venues.items()}
        if rest:
            rings = self._first_trades(rings, min(FIRST_TRADE_WAIT_SEC, budget_sec / 3))
        reports = asyncio.run(warm_all(self.venues, rings, urls, symbol=self.s.general.symbol,
                                       anchor_ns=self.anchor_ns, now_ns=clock.now_ns(),
                                       budget_sec=budget_sec))
        for v, rep in reports.items():
            self.venues[v].warmup = rep
            log.info("warm-up %s: %s", v, rep)
        self.warmed = True
        return reports

    def _first_trades(self, rings: dict[str, np.ndarray], wait_sec: float) -> dict[str, np.ndarray]:
        """A ring still empty (compute started with its feed) is given `wait_sec` for a first
        trade, so that REST stops where the ring starts; what arrives is added to it."""
        deadline = time.monotonic() + wait_sec
        while any(not len(r) for r in rings.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
            for v, r in rings.items():
                if not len(r):
                    rings[v] = self.venues[v].take_trades()
        return rings

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
                **self.control.counters(), **self.edge_counters(),
                "ring_overruns": sum(self.ring_overruns().values()),
                "skipped_values": sum(n for vs in self.venues.values() for n in vs.skipped.values()),
                "warmup_overlap": sum(vs.overlap for vs in self.venues.values()),
                "gaps": sum(vs.gaps for vs in self.venues.values())}

    def edge_counters(self) -> dict:
        """The engines' counters, summed over the series."""
        out = {"slices": 0, "decision_log_lines": 0, "decision_log_errors": 0}
        for eng in self.engines.values():
            for k, v in eng.counters().items():
                out[k] = out.get(k, 0) + v
        return out

    def ring_overruns(self) -> dict[str, int]:
        """Records each of compute's ring readers lost to being lapped, by `<venue>.<kind>`."""
        mark = self.plan.mark_source
        readers = [(names.venue_ring(v, kind), r) for v, vs in self.venues.items()
                   for kind, r in (("trade", vs.trades_r), ("quote", vs.quotes_r))]
        readers += [(names.venue_ring(mark, "mark"), self.mark_r),
                    (names.venue_ring(mark, "liquidation"), self.liq_r)]
        readers += [(names.context_kline_ring(tf), r) for tf, r in self.kline_r.items()]
        if self.engines:
            readers += self.shared.readers()
            readers += [(eng.book_ring, eng.book_r) for eng in self.engines.values()]
        return {ring.key(): r.overrun for ring, r in readers}

    def report(self) -> dict:
        """Heartbeat extras for /metrics: histograms by name, overruns by ring, and each series'
        engine counters (`tdc_series_events_total{actor="compute",series,name}`)."""
        return {"hist": {"tick_duration": self.tick_hist.doc()}, "rings": self.ring_overruns(),
                "skipped": {f"{v}.{k}": n for v, vs in self.venues.items() for k, n in vs.skipped.items()},
                "warmup": {v: vs.warmup for v, vs in self.venues.items()},
                "series": {series: eng.counters() for series, eng in self.engines.items()}}

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        if not self.warmed:
            self.hb.beat(self.counters(), warming=True)
            self.warm_up()
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
        self.control.close()
        self.pub.close()

    def stop(self) -> None:
        self._stop = True


def main(settings: Settings) -> None:
    Compute(settings).run()
