"""The event-time backtest engine: a recording through the production feed and compute code in one
process, as fast as the machine allows.

Every recorded frame, in recorded order (ipc/recording.py `iter_all`: merged by receive time), is
handed to the real feed object of its venue (actors/feed/shell.py `Feed.handle_frames`: the same
pure parsers, continuity and sinks) with its recorded receive time, so its records land in real
rings (ipc/ring.py) under a private SHM prefix; Polymarket goes through the real `PolyFeed`
(actors/feed_poly.py: its Session builds the books and writes the rings, its state block carries
the windows compute reads). Between frames the real compute core (`Compute.tick`) runs on the
TICK_MS grid, the data clock (ipc/clock.py) in manual mode at each instant. What compute publishes
goes to `CapturePublisher`: the edge documents to a callback, the rest counted, never built.

What the live processes do on timers is driven here on event time, between frames, with the
feed's own methods: feed_poly's resolver (Gamma lookups by `PolyFeed.resolve` / `reask`), roller
(`Session.roll`, the market doc, `write_current`), reconciler and resyncer (REST `/book`), and its
state block (`PolyFeed.block`). Their REST requests are answered from the recording's REST frames
exactly as the replay sim answers them (actors/sim/replay.py: the answer recorded last at or before
now, else the first one, else a 404), see `RestAnswers`.

Not driven (the report's `not_driven` lists them): the context actor (its kline rings, bias: it
bootstraps by REST; with FAIR_DRIFT_K = 0, the default, no decision reads the bias), the
Chainlink feed's state block (compute reads the Chainlink ring, not the block), the Polymarket
connection management (subscribe, resubscribe, reconnect: the recording holds what the live
connection delivered), heartbeats and the API.

Invariants:
- the tick at k·TICK_MS sees every frame received at or before it and none after; ticks cover
  (first frame, last frame]: `ticks = last // period − first // period`;
- frames the venue sent in reply (streams "_ack", "_control", "_error") and REST frames are not fed
  to the feeds, as the replay sim does not send them;
- the private prefix's segments are unlinked and the clock released at the end, whatever ends it
  (an error, KeyboardInterrupt);
- `random` is seeded (`seed`): the feeds' backoff jitter, so two runs give the same documents.
"""
from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from config.settings import Settings, load_settings
from ipc import clock, names, recording
from ipc.bus import PAYLOAD_VERSION
from ipc.shm import unlink_prefix
from ipc.state import Registry

from actors.compute import Compute
from actors.feed.shell import Feed
from actors.feed_poly import REPORT_SEC, PolyFeed
from actors.sim.replay import NOT_REPLAYED, rest_key
from actors.venues.binance import futures as binance_futures, spot as binance_spot
from actors.venues.polymarket.chainlink import ChainlinkVenue

log = logging.getLogger("backtest")

SEC_NS = 1_000_000_000
NOT_DRIVEN = ("context (kline rings, bias)", "feed_chainlink state block", "polymarket connection management",
              "heartbeats", "api")


# --- the bus stand-in -----------------------------------------------------------------------------
class CapturePublisher:
    """ipc.bus.Publisher's interface without a socket: a message on one of `capture` goes to
    `on_doc(topic, doc)` (stamped with seq and v as the bus would; no wall time), any other is
    counted (`other`); `wants` is False, so the feeds build no tick message."""

    def __init__(self, capture: set[bytes], on_doc: Callable[[bytes, dict], None]):
        self.capture, self.on_doc = capture, on_doc
        self._seq: dict[bytes, int] = {}
        self.boot = 0
        self.sent = self.dropped = self.skipped = self.other = 0

    def refresh(self) -> None:
        pass

    def wants(self, topic: bytes) -> bool:
        self.skipped += 1
        return False

    def publish(self, topic: str | bytes, doc: dict) -> None:
        t = topic.encode() if isinstance(topic, str) else topic
        self.sent += 1
        if t not in self.capture:
            self.other += 1
            return
        seq = self._seq[t] = self._seq.get(t, 0) + 1
        doc["seq"], doc["v"] = seq, PAYLOAD_VERSION
        self.on_doc(t, doc)

    def close(self) -> None:
        pass


# --- REST answers ---------------------------------------------------------------------------------
class RestAnswers:
    """The recording's REST answers of `services` (Gamma, CLOB /book), answered as the replay sim
    answers them (module docstring). Read once, from those streams' files only."""

    def __init__(self, root: Path, services=("gamma", "clob"), damage: list | None = None):
        self.by_key: dict[tuple, list[tuple[int, int, bytes]]] = {}
        dirs = {recording.safe_stream(s) for s in services}
        for venue in recording.venues(root):
            for f in recording.venue_files(root, venue):
                if f.parent.name not in dirs:
                    continue
                for rec in recording.iter_file(f, damage):
                    if rec.get("conn") != "rest" or "meta" not in rec:
                        continue
                    service, status, target = rec["meta"].split(" ", 2)
                    if service in services:
                        self.by_key.setdefault(rest_key(service, target), []).append(
                            (rec["ts_recv_ns"], int(status), recording.frame_bytes(rec)))
        for v in self.by_key.values():
            v.sort(key=lambda a: a[0])
        self.served = self.missing = 0
        self.missing_targets: dict[str, int] = {}   # "service target" -> the first asking time (ns)

    def answer(self, service: str, target: str, now_ns: int) -> tuple[int, bytes]:
        answers = self.by_key.get(rest_key(service, target))
        if not answers:
            self.missing += 1
            self.missing_targets.setdefault(f"{service} {target}", now_ns)
            return 404, b'{"error": "not in the recording"}'
        best = answers[0]
        for a in answers:
            if a[0] > now_ns:
                break
            best = a
        self.served += 1
        return best[1], best[2]


class _NullBlock:
    """A StateBlock that keeps nothing: compute's output blocks, which only the API reads."""

    def write(self, doc) -> None:
        pass


def _done(coro):
    """Run a coroutine that never waits on I/O (its REST answers come from the recording) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("an event-time REST call waited on I/O")


class EventPoly(PolyFeed):
    """feed_poly's PolyFeed with its REST answered from the recording and its timed tasks stepped
    on event time (`step`); every decision is PolyFeed's and its Session's own."""

    def __init__(self, s: Settings, pub, registry: Registry, answers: RestAnswers):
        super().__init__(s, pub, registry)
        self.answers = answers
        self._bases = {"gamma": s.venues.polymarket_gamma_url, "clob": s.venues.polymarket_clob_url}
        self._next_resolve = self._next_reconcile = self._next_report = 0
        self._attempt = 0

    async def _get(self, host: str, url: str, **kw) -> httpx.Response:
        u = httpx.URL(url) if kw.get("params") is None else httpx.URL(url, params=kw["params"])
        # PolyFeed's hosts are the recorded services ("gamma", "clob")
        status, body = self.answers.answer(host, str(u)[len(self._bases[host]):], clock.now_ns())
        r = httpx.Response(status, content=body, request=httpx.Request("GET", u))
        r.raise_for_status()
        return r

    def step(self, now_ns: int) -> None:
        """What feed_poly's resolver, roller, resyncer, reconciler and reporter tasks do by `now_ns`:
        their one-pass methods, on event time."""
        now_s = now_ns / 1e9
        if now_ns >= self._next_resolve or self._wake_resolver.is_set():
            ok = _done(self.resolve_pass(now_s, now_s, gather=_in_turn))
            self._attempt = 0 if ok else self._attempt + 1
            self._wake_resolver.clear()
            self._next_resolve = now_ns + int(self.resolve_delay_sec(ok, self._attempt) * SEC_NS)
        self.roll_pass(now_ns)
        if self.session.resync_pending or self._wake_resync.is_set():
            _done(self.resync_pass())
        if now_ns >= self._next_reconcile:
            if self._next_reconcile:
                _done(self.reconcile_pass())
            self._next_reconcile = now_ns + int(self.s.venues.polymarket_reconcile_sec * SEC_NS)
        if self._dirty.is_set() or now_ns >= self._next_report:
            self._dirty.clear()
            self.state.write(self.block())
            self._next_report = now_ns + int(REPORT_SEC * SEC_NS)


async def _in_turn(*coros) -> list:
    """asyncio.gather for the event-time engine: each request answered in turn, from the recording."""
    return [await c for c in coros]


# --- the run --------------------------------------------------------------------------------------
@dataclass
class Stats:
    """What the engine did, for the summary and the progress bar."""
    frames: int = 0                 # frames fed to a feed
    skipped: dict = field(default_factory=dict)   # frames not fed, by reason
    ticks: int = 0
    edges: int = 0
    first_ns: int = 0
    last_ns: int = 0
    wall_sec: float = 0.0
    rest_served: int = 0
    rest_missing: int = 0
    rest_missing_targets: dict = field(default_factory=dict)   # what the recording had no answer for
    damage: int = 0

    @property
    def events(self) -> int:
        return self.frames + self.ticks

    def doc(self) -> dict:
        span = (self.last_ns - self.first_ns) / 1e9 if self.last_ns else 0.0
        return {"frames": self.frames, "ticks": self.ticks, "events": self.events, "edges": self.edges,
                "frames_skipped": dict(self.skipped), "first_ns": self.first_ns, "last_ns": self.last_ns,
                "event_sec": span, "wall_sec": round(self.wall_sec, 3),
                "events_per_sec": round(self.events / self.wall_sec, 1) if self.wall_sec > 0 else None,
                "frames_per_sec": round(self.frames / self.wall_sec, 1) if self.wall_sec > 0 else None,
                "ticks_per_sec": round(self.ticks / self.wall_sec, 1) if self.wall_sec > 0 else None,
                "speedup": round(span / self.wall_sec, 1) if self.wall_sec > 0 else None,
                "rest_served": self.rest_served, "rest_missing": self.rest_missing,
                "rest_missing_targets": dict(list(self.rest_missing_targets.items())[:20]),
                "damaged_parts": self.damage, "not_driven": list(NOT_DRIVEN)}


def backtest_settings(rec_dir: Path, work: Path, prefix: str, decision_log_dir: Path, **overrides) -> Settings:
    """The settings of an event-time run: the environment's, on a private prefix and control
    socket, recording off, the replay directory set (so no REST warm-up, as under replay)."""
    return load_settings(shm_prefix=prefix, zmq_control_url=f"ipc://{work / 'control'}",
                         decision_log_dir=str(decision_log_dir), record_enabled=False,
                         replay_dir=str(rec_dir), **overrides)


def run(rec_dir: Path, *, on_edge: Callable[[dict], None],
        on_frame: Callable[[str, dict, bytes], None] | None = None,
        on_second: Callable[[int, Stats], None] | None = None,
        decision_log_dir: Path | None = None, seed: int = 0, settings_overrides: dict | None = None) -> Stats:
    """Replay `rec_dir` in event time. `on_edge(doc)`: every edge document compute publishes, as it
    does; `on_frame(venue, rec, frame)`: every data frame after its feed took it; `on_second(now_ns,
    stats)`: once per event second crossed (progress, scoring, flushing)."""
    rec_dir = Path(rec_dir)
    work = Path(tempfile.mkdtemp(prefix="tdc-bt-"))
    prefix = "bt" + uuid.uuid4().hex[:10]
    stats = Stats()
    random.seed(seed)
    try:
        s = backtest_settings(rec_dir, work, prefix, decision_log_dir or work / "decisions",
                              **(settings_overrides or {}))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if s.decisions.fair_drift_k:
        log.warning("FAIR_DRIFT_K=%g: the bias (context actor) is not driven in event time: its score is None",
                    s.decisions.fair_drift_k)
    damage: list = []
    t0 = time.monotonic()
    compute = None
    try:
        answers = RestAnswers(rec_dir, damage=damage)
        edge_topics = {names.edge_topic(s.general.symbol, k).encode() for k in s.venues.polymarket_windows}

        def captured(topic: bytes, doc: dict) -> None:
            stats.edges += 1
            on_edge(doc)

        pub = CapturePublisher(edge_topics, captured)
        reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
        feeds: dict[str, Feed] = {
            names.FUTURES: Feed(s, binance_futures, "feed_futures", publisher=pub, registry=reg),
            names.SPOT: Feed(s, binance_spot, "feed_spot", publisher=pub, registry=reg)}
        poly = None
        if s.polymarket_on:
            feeds[names.CHAINLINK] = Feed(s, ChainlinkVenue(s), "feed_chainlink", publisher=pub, registry=reg)
            poly = EventPoly(s, pub, reg, answers)
            feeds[names.POLY] = poly.feed
        conns = {v: {c.plan.name: c for c in f.conns} for v, f in feeds.items()}
        period = s.general.tick_ms * 1_000_000
        next_tick = next_second = 0

        def tick_until(ts_ns: int, inclusive: bool) -> None:
            nonlocal next_tick, next_second
            while next_tick < ts_ns or (inclusive and next_tick == ts_ns):
                clock.advance_to(next_tick)
                if poly is not None:
                    poly.step(next_tick)
                compute.tick(next_tick)
                stats.ticks += 1
                if next_tick >= next_second:
                    if on_second is not None:
                        stats.wall_sec = time.monotonic() - t0
                        on_second(next_tick, stats)
                    next_second = (next_tick // SEC_NS + 1) * SEC_NS
                next_tick += period

        for venue, rec in recording.iter_all(rec_dir, damage):
            stream = rec["stream"]
            why = ("reply" if stream in NOT_REPLAYED else "rest" if rec.get("conn") == "rest"
                   else None if venue in feeds else "venue not followed")
            if why is not None:
                stats.skipped[why] = stats.skipped.get(why, 0) + 1
                continue
            ts = rec["ts_recv_ns"]
            if compute is None:          # the first frame: the clock starts, compute comes up
                clock.set_manual(ts)
                stats.first_ns = ts
                next_tick = (ts // period + 1) * period
                next_second = next_tick
                compute = Compute(s, pub=pub, registry=reg)
                # compute's own blocks are for the API and /metrics (not driven): not serialized
                compute.blocks = {k: _NullBlock() for k in compute.blocks}
                compute.warm_up()
            tick_until(ts, False)
            clock.advance_to(ts)
            feed = feeds[venue]
            conn = conns[venue].get(rec.get("conn")) or feed.conns[0]
            frame = recording.frame_bytes(rec)
            feed.handle_frames(conn, [frame], ts)
            stats.frames += 1
            stats.last_ns = max(stats.last_ns, ts)
            if on_frame is not None:
                on_frame(venue, rec, frame)
        if compute is None:
            raise ValueError(f"{rec_dir}: no recorded frames")
        tick_until(stats.last_ns, True)
        stats.rest_served, stats.rest_missing = answers.served, answers.missing
        stats.rest_missing_targets = answers.missing_targets
        stats.damage = len(damage)
        stats.wall_sec = time.monotonic() - t0
        if on_second is not None:
            on_second(stats.last_ns, stats)
        return stats
    finally:
        if compute is not None:
            compute.control.close()
        clock.release()
        unlink_prefix(s.ipc.shm_dir, prefix)
        shutil.rmtree(work, ignore_errors=True)
