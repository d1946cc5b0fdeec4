"""The venue-agnostic feed shell: connect, read, parse, write rings, publish ticks, reconnect.

A venue module supplies the plan (which connections carry which streams) and a pure
`parse_frame(frame, ts_recv_ns) -> Decoded`; this shell does only I/O, timing and wiring.

Invariants:
- a read loop never dies of one frame: a malformed frame is counted, logged once (truncated) and
  skipped; an unknown message is counted; an error reply from the venue is counted and logged;
- records are written to the ring before they are published, so a subscriber that sees a tick can
  always find it in shared memory;
- per kind, a record whose id is not newer than the last one written is a duplicate and dropped
  (rotation overlaps two connections); a jump in a contiguous id (aggTrade `a`) is counted as a gap;
- after any reconnect, a gap record goes into each ring of that connection and a gap message onto
  its tick topic, so consumers know data may be missing;
- a connection with no data for FEED_STALE_SEC is closed and reopened (pings prove nothing), with
  capped, jittered exponential backoff and unlimited retries.
"""
from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import websockets
from websockets.asyncio.client import connect

from config.logging import LogOnce
from config.settings import Settings
from ipc.bus import Publisher, tick_topic
from ipc.ring import RingWriter
from ipc.schema import DTYPES, FLAG_GAP, ring_name
from ipc.state import Heartbeat, Registry

log = logging.getLogger("feed")

# Which field orders records of a kind, and whether consecutive records must be id+1 (gap check).
ID_FIELDS: dict[str, tuple[str, bool]] = {
    "trade": ("trade_id", True),
    "quote": ("update_id", False),
    "depth": ("update_id", False),
}


@dataclass(frozen=True)
class ConnPlan:
    name: str                  # e.g. "market", "public"
    url: str
    streams: tuple[str, ...]   # venue stream names carried by this connection


class Venue(Protocol):
    VENUE: str                 # "futures", "spot", ...

    def plan(self, settings: Settings) -> list[ConnPlan]: ...
    def parse_frame(self, frame: bytes, ts_recv_ns: int): ...
    def stream_kind(self, stream: str) -> str | None: ...


@dataclass
class Sink:
    """One stream kind of one venue: its ring, its tick topic and its continuity counters."""
    kind: str
    ring: RingWriter
    topic: bytes
    names: tuple[str, ...]
    id_index: int | None
    contiguous: bool
    last_id: int | None = None
    written: int = 0
    duplicates: int = 0
    id_gaps: int = 0
    ids_missing: int = 0
    last_recv_ns: int = 0
    last_event_ns: int = 0

    def accept(self, rec: tuple, pub: Publisher) -> bool:
        if self.id_index is not None:
            rid = rec[self.id_index]
            last = self.last_id
            if last is not None:
                if rid <= last:
                    self.duplicates += 1
                    return False
                if self.contiguous and rid != last + 1:
                    self.id_gaps += 1
                    self.ids_missing += rid - last - 1
            self.last_id = rid
        self.ring.append(rec)
        self.written += 1
        self.last_recv_ns = rec[1]
        self.last_event_ns = rec[0]
        pub.publish(self.topic, dict(zip(self.names, rec)))
        return True

    def mark_gap(self, pub: Publisher, reason: str) -> None:
        now = time.time_ns()
        self.ring.append_gap(now)
        pub.publish(self.topic, {"gap": True, "reason": reason, "ts_recv_ns": now,
                                 "flags": FLAG_GAP})

    def counters(self) -> dict:
        return {"written": self.written, "duplicates": self.duplicates, "id_gaps": self.id_gaps,
                "ids_missing": self.ids_missing, "last_recv_ns": self.last_recv_ns,
                "last_event_ns": self.last_event_ns, "ring_count": self.ring.count}


@dataclass
class ConnState:
    plan: ConnPlan
    connects: int = 0
    reconnects: int = 0
    frames: int = 0
    bytes: int = 0
    last_frame_ns: int = 0
    stream_last_ns: dict[str, int] = field(default_factory=dict)
    connected: bool = False
    last_error: str = ""


class Feed:
    """Wires a venue's connections to its sinks; one instance per feed process."""

    def __init__(self, settings: Settings, venue: Venue, actor: str,
                 publisher: Publisher | None = None, registry: Registry | None = None):
        self.s, self.venue, self.actor = settings, venue, actor
        self.pub = publisher or Publisher(settings.zmq_xsub_url, sndhwm=settings.zmq_sndhwm)
        self.registry = registry or Registry(settings.shm_dir, settings.shm_prefix)
        self.hb = Heartbeat(self.registry, actor)
        self.plans = venue.plan(settings)
        self.conns = [ConnState(p) for p in self.plans]
        self.sinks: dict[str, Sink] = {}
        self.stream_sink: dict[str, Sink] = {}
        for p in self.plans:
            for stream in p.streams:
                kind = venue.stream_kind(stream)
                if kind is None:
                    raise ValueError(f"{venue.VENUE}: no record kind for stream {stream!r}")
                self.stream_sink[stream] = self._sink(kind)
        self.parse_errors = 0
        self.unknown = 0
        self.venue_errors = 0
        self.acks = 0
        self._log_once = LogOnce(log)
        self._stop = asyncio.Event()
        self.on_frame: Callable[[str, bytes, int], None] | None = None   # recorder hook

    def _sink(self, kind: str) -> Sink:
        if kind not in self.sinks:
            dtype = DTYPES[kind]
            ring = RingWriter(self.s.shm_dir,
                              ring_name(self.s.shm_prefix, self.s.symbol, self.venue.VENUE, kind),
                              dtype, self.s.ring_capacity)
            id_field = ID_FIELDS.get(kind)
            self.sinks[kind] = Sink(
                kind, ring, tick_topic(self.venue.VENUE, kind, self.s.symbol).encode(), dtype.names,
                dtype.names.index(id_field[0]) if id_field else None,
                id_field[1] if id_field else False)
            if not ring.created:
                # A restarted feed: whatever happened while it was down is unknown.
                self.sinks[kind].mark_gap(self.pub, "restart")
        return self.sinks[kind]

    # --- the hot path ---------------------------------------------------------------------
    def handle_frame(self, conn: ConnState, frame: bytes, ts_recv_ns: int) -> None:
        conn.frames += 1
        conn.bytes += len(frame)
        conn.last_frame_ns = ts_recv_ns
        if self.on_frame is not None:
            self.on_frame(conn.plan.name, frame, ts_recv_ns)
        try:
            d = self.venue.parse_frame(frame, ts_recv_ns)
        except ValueError as exc:
            self.parse_errors += 1
            self._log_once(f"parse:{conn.plan.name}", "bad frame on %s: %s; frame=%r",
                           conn.plan.name, exc, frame[:200])
            return
        sink = self.stream_sink.get(d.stream)
        if sink is not None and d.kind == sink.kind:
            conn.stream_last_ns[d.stream] = ts_recv_ns
            sink.accept(d.rec, self.pub)
        elif d.kind == "ack":
            self.acks += 1
        elif d.kind == "error":
            self.venue_errors += 1
            log.error("venue error reply on %s: %s", conn.plan.name, d.rec)
        else:
            self.unknown += 1
            self._log_once(f"unknown:{d.stream}", "unexpected message on %s (kind=%s stream=%s): %r",
                           conn.plan.name, d.kind, d.stream, frame[:200])

    # --- connections ------------------------------------------------------------------------
    async def run_connection(self, conn: ConnState) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                async with connect(conn.plan.url, ping_interval=None, max_size=1 << 22,
                                   open_timeout=10, close_timeout=2, compression=None) as ws:
                    conn.connected = True
                    conn.connects += 1
                    if conn.connects > 1:
                        conn.reconnects += 1
                        for stream in conn.plan.streams:
                            self.stream_sink[stream].mark_gap(self.pub, "reconnect")
                    log.info("connected %s %s", conn.plan.name, conn.plan.url)
                    watchdog = asyncio.create_task(self._watchdog(conn, ws))
                    try:
                        while True:
                            frame = await ws.recv(decode=False)
                            self.handle_frame(conn, frame, time.time_ns())
                            attempt = 0
                    finally:
                        watchdog.cancel()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.ConnectionClosed,
                    websockets.InvalidHandshake, websockets.InvalidURI) as exc:
                conn.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("connection %s ended: %s", conn.plan.name, conn.last_error)
            finally:
                conn.connected = False
            if self._stop.is_set():
                break
            delay = min(self.s.feed_backoff_max_sec, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                pass

    async def _watchdog(self, conn: ConnState, ws) -> None:
        """Close a connection that delivers nothing for FEED_STALE_SEC (it may still answer pings)."""
        stale_ns = int(self.s.feed_stale_sec * 1e9)
        opened = time.time_ns()
        while True:
            await asyncio.sleep(min(1.0, self.s.feed_stale_sec / 4))
            last = max(conn.last_frame_ns, opened)
            if time.time_ns() - last > stale_ns:
                log.warning("no data on %s for %.1fs: reconnecting", conn.plan.name,
                            (time.time_ns() - last) / 1e9)
                await ws.close(code=1000, reason="stale")
                return

    # --- health -----------------------------------------------------------------------------
    def counters(self) -> dict:
        return {"parse_errors": self.parse_errors, "unknown": self.unknown, "acks": self.acks,
                "venue_errors": self.venue_errors,
                "published": self.pub.sent, "publish_dropped": self.pub.dropped,
                "reconnects": sum(c.reconnects for c in self.conns)}

    def health(self) -> dict:
        now = time.time_ns()
        return {
            "venue": self.venue.VENUE,
            "connections": {c.plan.name: {"connected": c.connected, "frames": c.frames,
                                          "bytes": c.bytes, "reconnects": c.reconnects,
                                          "last_error": c.last_error,
                                          "silent_streams": [s for s in c.plan.streams
                                                             if s not in c.stream_last_ns]}
                            for c in self.conns},
            "streams": {k: {**s.counters(),
                            "age_ms": (now - s.last_recv_ns) / 1e6 if s.last_recv_ns else None}
                        for k, s in self.sinks.items()},
        }

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self.hb.beat(self.counters(), feed=self.health())
            try:
                await asyncio.wait_for(self._stop.wait(), 0.5)
            except TimeoutError:
                pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.create_task(self.run_connection(c)) for c in self.conns]
        tasks.append(asyncio.create_task(self._heartbeat()))
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.hb.beat(self.counters(), feed=self.health(), stopped=True)
        self.pub.close()

    def stop(self) -> None:
        self._stop.set()


def run_feed(settings: Settings, venue: Venue, actor: str) -> None:
    import uvloop
    uvloop.run(Feed(settings, venue, actor).run())
