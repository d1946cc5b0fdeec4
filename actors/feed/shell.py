"""The venue-agnostic feed shell: connect, read, parse, write rings, publish ticks, rotate, reconnect.

A venue module supplies the plan (which connections carry which streams: ConnPlan), a pure
`parse_frame(frame, ts_recv_ns) -> Decoded` (actors.venues.envelope), `stream_kind` (a stream's
ring: its key in ipc.names.VENUE_RINGS[VENUE], which is the record kind for a venue with one ring
per kind, and e.g. `poly_book_15m` for a venue with one ring per series) and `max_silence_sec`;
this shell does only I/O, timing and wiring. Which records are new is
actors.feed.continuity's; ring writes and publishing are actors.feed.sink's.

Invariants:
- a read loop never dies of one frame: a malformed frame is counted, logged once (truncated) and
  skipped; an unknown message is counted; an error reply from the venue is counted and logged;
- a frame whose values are insane (the parser's `Rejected`: price <= 0, NaN, inf, a crossed
  quote, ...) is skipped whole and counted in `parse_errors` and, per reason, in `rejected`
  (`{"trade:price": 3}`); none of its records reaches a ring;
- records go to the ring before they are published, so a subscriber that sees a tick finds it in
  shared memory;
- every record of a frame (`Decoded.recs`, one or many) goes through the one loop of handle_frames;
- one sink per ring (several rings may hold the same record kind); per ring, duplicates are
  dropped and id gaps counted (actors.feed.continuity);
- after a reconnect (or a restart of this process) a gap record goes into each affected ring and a
  gap message onto its tick topic;
- rotation is make-before-break: the successor connection opens while the old one still feeds the
  sinks; its records are held back until the old connection has delivered up to the successor's
  first record on every stream (or a timeout), then the old one is closed and the held records are
  replayed through de-duplication: no gap and no duplicate. Rotation happens ahead of the venue's
  24 h disconnect (FEED_ROTATE_SEC), when a stream that was delivering goes quiet for longer
  than the venue says it may (then with a gap marker, since data may have been lost), and when
  the venue announces that it will close the connection (a frame decoded to a kind of
  ROTATE_KINDS, e.g. Binance's serverShutdown: reason "server_shutdown");
- a connection with no data at all for FEED_STALE_SEC is replaced the same way (pings prove
  nothing); a closed connection is reopened with capped, jittered exponential backoff, forever;
  a successor that fails to open (or closes during the switch) is retried with the same backoff
  while the old link keeps feeding, never on every 0.5 s check (`rotation_failures`);
- a stream that never delivers after its connection opened is reported (`silent_streams`), not
  rotated over and over: on Binance that is a stream on the wrong route.
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

from config.logging import LogOnce, conn_fields, redact_url
from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.bus import Publisher
from ipc.framering import FrameTap
from ipc.ring import RingWriter
from ipc.schema import DTYPES
from ipc.state import Heartbeat, Registry

from actors.feed import wsclient
from actors.feed.transport import connector
from actors.feed.sink import Sink
from actors.venues.envelope import ConnPlan
from actors.venues.http import backoff_sec

log = logging.getLogger("feed")

OPEN_ERRORS = (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI)
ROTATE_OVERLAP_SEC = 10.0      # give up waiting for the old connection to catch up after this
HOLD_MAX = 100_000             # frames a successor may hold back before the switch is forced
RECONNECT_BASE_SEC = 0.25      # first reconnect delay; doubles per failed attempt up to FEED_BACKOFF_MAX_SEC
# Decoded kinds by which a venue says "this connection is going away": rotate it make-before-break
# (a venue without rotation, ROTATE False, reconnects), with this reason
ROTATE_KINDS: dict[str, str] = {"shutdown": "server_shutdown"}


class Venue(Protocol):
    """What a venue (a module, or an object holding a session) provides; its rings are
    ipc.names.VENUE_RINGS[VENUE], and `stream_kind(stream)` names a stream's ring by its key there
    (None: not a stream of this venue). Optional, each used by any venue that has it:
    - KEEPALIVE: (interval_sec, text) sent while connected (an application-level ping);
    - ROTATE (default True): False for a venue whose state lives in a session (books): a stale
      connection is reconnected instead of replaced make-before-break, and a quiet stream is the
      session's business, not a reason to reconnect;
    - poll(conn_name, fresh, now_ns) -> (send, restart): the subscription messages to send now
      (fresh: on a new connection; send None: not ready to connect yet) and a reason to start
      the connection over (or None);
    - on_gap(streams, reason): the venue marks its own gaps (instead of a gap record per ring);
    - tick(ring, rec) -> (topic, message): the venue's topic per record of the ring (an
      ipc.names.Ring) (default: the ring's one topic);
    - counters() / health(): extra keys for the heartbeat's counters and feed health."""
    VENUE: str

    def plan(self, settings: Settings) -> list[ConnPlan]: ...
    def parse_frame(self, frame: bytes, ts_recv_ns: int): ...
    def stream_kind(self, stream: str) -> str | None: ...
    def max_silence_sec(self, stream: str, settings: Settings) -> float | None: ...


class NotReady(Exception):
    """The venue has nothing to subscribe yet: do not connect (and do not count a failure)."""


@dataclass
class ConnState:
    plan: ConnPlan
    connects: int = 0
    reconnects: int = 0
    rotations: int = 0
    stale_rotations: int = 0
    shutdown_rotations: int = 0    # rotations the venue asked for (ROTATE_KINDS)
    frames: int = 0
    bytes: int = 0
    last_frame_ns: int = 0
    silent_streams: list[str] = field(default_factory=list)
    connected: bool = False
    opened_ns: int = 0
    last_error: str = ""
    rotation_failures: int = 0     # successors that failed to open or closed during the switch
    rotate_attempt: int = 0        # failures in a row: the backoff's exponent (0 after a rotation)
    rotate_after: float = 0.0      # monotonic time before which no successor is tried
    ws_failures: dict[str, int] = field(default_factory=dict)   # links we failed, by wsclient.FAILURES kind


class _Link:
    """One open WebSocket of a connection slot and what it has delivered."""

    def __init__(self, held: bool = False):
        self.ws: wsclient.FastWebSocket | None = None
        self.opened_ns = clock.now_ns()
        self.last_frame_ns = 0
        self.seen: dict[str, int] = {}          # stream -> last receive time on this link
        self.first_key: dict[str, object] = {}  # stream -> key of its first record (successor)
        self.held: list | None = [] if held else None   # successor: held back until the switch
        self.task: asyncio.Future | None = None  # resolves (with an error) when the link ends
        self.ping_due = 0.0                      # monotonic time of the next keepalive
        self.rotate_reason: str | None = None    # the venue announced this link's end (ROTATE_KINDS)


class Feed:
    """Wires a venue's connections to its sinks; one instance per feed process."""

    def __init__(self, settings: Settings, venue: Venue, actor: str,
                 publisher: Publisher | None = None, registry: Registry | None = None):
        self.s, self.venue, self.actor = settings, venue, actor
        self.pub = publisher or Publisher(settings.ipc.zmq_xsub_url, sndhwm=settings.ipc.zmq_sndhwm)
        self.registry = registry or Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix)
        self.hb = Heartbeat(self.registry, actor)
        self.plans = venue.plan(settings)
        self.conns = [ConnState(p) for p in self.plans]
        self.sinks: dict[str, Sink] = {}           # ring key (VENUE_RINGS[VENUE]) -> its sink
        self.stream_sink: dict[str, Sink] = {}
        self.stream_ring: dict[str, str] = {}      # stream -> ring key
        self.silence_ns: dict[str, int | None] = {}
        for p in self.plans:
            for stream in p.streams:
                key = venue.stream_kind(stream)
                if key is None:
                    raise ValueError(f"{venue.VENUE}: no ring for stream {stream!r}")
                self.stream_ring[stream] = key
                self.stream_sink[stream] = self._sink(key)
                quiet = venue.max_silence_sec(stream, settings)
                self.silence_ns[stream] = int(quiet * 1e9) if quiet else None
        # per ring, the longest silence any of its streams may keep (None: may be silent for long)
        self.kind_silence_s: dict[str, float | None] = {}
        for stream, lim in self.silence_ns.items():
            key = self.stream_ring[stream]
            if lim is None or self.kind_silence_s.get(key, 0.0) is None:
                self.kind_silence_s[key] = None
            else:
                self.kind_silence_s[key] = max(self.kind_silence_s.get(key, 0.0), lim / 1e9)
        self.rotate = getattr(venue, "ROTATE", True)
        self.poll = getattr(venue, "poll", None)
        self.parse_errors = self.unknown = self.venue_errors = self.acks = 0
        self.rejected: dict[str, int] = {}         # '<kind>:<field>' (envelope.Rejected) -> frames
        self.last_venue_error = ""
        self._log_once = LogOnce(log)
        self._stop = asyncio.Event()
        self._in_frames = False        # inside handle_frames: a record written waits for the read's flush
        # the recorder's tap: every frame received, before anything else looks at it
        self.on_frame: Callable[[str, str, bytes, int], None] | None = FrameTap.from_settings(
            settings, names.venue_symbol(venue.VENUE, settings.general.symbol), venue.VENUE)

    def _sink(self, key: str) -> Sink:
        """The sink of the ring `key` (VENUE_RINGS[VENUE]), made on first use."""
        if key not in self.sinks:
            spec = names.venue_ring(self.venue.VENUE, key)
            ring = RingWriter(self.s.ipc.shm_dir, spec.name(self.s.ipc.shm_prefix, self.s.general.symbol),
                              DTYPES[spec.kind], self.s.ipc.ring_capacity)
            tick = getattr(self.venue, "tick", None)
            if tick is not None:     # the Sink asks by record kind; the venue is told the ring
                tick = (lambda _kind, rec, _tick=tick, _ring=spec: _tick(_ring, rec))
            sym = self.s.general.symbol
            self.sinks[key] = Sink(spec.kind, ring, spec.topic(sym).encode(), tick, spec.binary_topic(sym).encode())
            if not ring.created:
                # a restarted feed: whatever happened while it was down is unknown
                self._mark_gaps([s for s, k in self._stream_kinds() if k == key], "restart")
        return self.sinks[key]

    def _stream_kinds(self):
        return [(st, self.venue.stream_kind(st)) for p in self.plans for st in p.streams]

    def _mark_gaps(self, streams, reason: str) -> None:
        on_gap = getattr(self.venue, "on_gap", None)
        if on_gap is not None:
            on_gap(list(streams), reason)
            return
        for sink in {id(k): k for k in (self._sink(self.venue.stream_kind(st)) for st in streams)}.values():
            sink.mark_gap(self.pub, reason)

    def write(self, stream: str, rec: tuple, observe_age: bool = True) -> bool:
        """A record a venue session made outside the frame loop (or of a frame it consumed)."""
        sink = self.stream_sink[stream]
        try:
            return sink.accept(rec, self.pub, observe_age)
        except (ValueError, TypeError, OverflowError) as exc:
            self._unstorable(sink, exc, b"")
            return False
        finally:
            if not self._in_frames:        # inside a read, the read's end flushes the batch
                sink.flush(self.pub)

    # --- the hot path ---------------------------------------------------------------------
    def handle_frames(self, conn: ConnState, frames: list[bytes], ts_recv_ns: int,
                      link: _Link | None = None) -> None:
        """Every frame of one read (they share a receive time), in order; then the read's records
        go out on the binary topics as one batch per ring."""
        self._in_frames = True
        try:
            self._frames(conn, frames, ts_recv_ns, link)
        finally:
            self._in_frames = False
            for sink in self.sinks.values():
                sink.flush(self.pub)

    def _frames(self, conn: ConnState, frames: list[bytes], ts_recv_ns: int, link: _Link | None) -> None:
        conn.frames += len(frames)
        conn.last_frame_ns = ts_recv_ns
        self.pub.refresh()
        parse, sinks, pub, on_frame = self.venue.parse_frame, self.stream_sink, self.pub, self.on_frame
        seen = held = None
        if link is not None:
            link.last_frame_ns = ts_recv_ns
            seen, held = link.seen, link.held
        nbytes = 0
        pending: dict[Sink, list[tuple]] = {}       # sink -> the records of this read, in order
        last_frame: dict[Sink, bytes] = {}
        for frame in frames:
            nbytes += len(frame)
            try:
                d = parse(frame, ts_recv_ns)
            except ValueError as exc:
                if on_frame is not None:
                    on_frame(conn.plan.name, "_malformed", frame, ts_recv_ns)
                self.parse_errors += 1
                reason = getattr(exc, "reason", None)
                if reason is not None:
                    self.count_rejected(reason)
                self._log_once(f"parse:{conn.plan.name}:{reason or ''}", "bad frame on %s: %s; frame=%r",
                               conn.plan.name, exc, frame[:200], extra=self._fields(conn))
                continue
            if on_frame is not None:
                on_frame(conn.plan.name, d.stream or f"_{d.kind}", frame, ts_recv_ns)
            sink = sinks.get(d.stream)
            if sink is None or d.kind != sink.kind:
                self._other(conn, d, frame, link)
                continue
            sink.frames += 1
            sink.bytes += len(frame)
            if seen is not None:
                seen[d.stream] = ts_recv_ns
                if held is not None:               # a successor during rotation: hold back
                    if d.stream not in link.first_key and d.recs:
                        link.first_key[d.stream] = sink.key(d.recs[0])
                    for rec in d.recs:
                        held.append((frame, sink, rec))
                    continue
            got = pending.get(sink)
            if got is None:
                got = pending[sink] = []
            got.extend(d.recs)
            last_frame[sink] = frame
        conn.bytes += nbytes
        for sink, recs in pending.items():       # the read's records, one block per ring
            for rec, exc in sink.accept_read(recs, pub):      # parsed, but not storable
                self._unstorable(sink, exc, repr(rec).encode() if len(recs) > 1 else last_frame[sink])

    def _other(self, conn: ConnState, d, frame: bytes, link: _Link | None = None) -> None:
        if d.kind in ROTATE_KINDS:
            reason = ROTATE_KINDS[d.kind]
            if link is not None and link.rotate_reason is None:
                link.rotate_reason = reason       # _supervise starts the rotation
                log.warning("%s announced the end of connection %s (%s): rotating",
                            self.venue.VENUE, conn.plan.name, reason,
                            extra=self._fields(conn, event="rotate", reason=reason))
        elif d.kind in ("ack", "control"):
            self.acks += 1
        elif d.kind == "error":
            msg = d.recs[0] if d.recs else None
            self.venue_errors += 1
            self.last_venue_error = str(msg)[:300]
            log.error("venue error reply on %s: %s", conn.plan.name, msg, extra=self._fields(conn))
        else:
            self.unknown += 1
            self._log_once(f"unknown:{d.stream}", "unexpected message on %s (kind=%s stream=%s): %r",
                           conn.plan.name, d.kind, d.stream, frame[:200],
                           extra=self._fields(conn, stream=d.stream))

    def _fields(self, conn: ConnState, **more) -> dict:
        """A log record's connection fields (config.logging.conn_fields): url, venue, streams, conn."""
        return conn_fields(conn.plan.url, self.venue.VENUE, conn.plan.streams, conn=conn.plan.name, **more)

    def count_rejected(self, reason: str) -> None:
        """One frame (or REST answer) rejected for an insane value, by its reason '<kind>:<field>'."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _unstorable(self, sink: Sink, exc: Exception, frame: bytes) -> None:
        self.parse_errors += 1
        self._log_once(f"store:{sink.kind}", "record not storable (%s): %r", exc, frame[:200])

    # --- connections ------------------------------------------------------------------------
    async def _open(self, conn: ConnState, held: bool = False) -> _Link:
        """Connect; frames flow into the sinks (or, `held`, into the link) from the first one."""
        link = _Link(held)
        send: list[bytes] = []
        if self.poll is not None:
            send, _ = self.poll(conn.plan.name, True, clock.now_ns())
            if send is None:
                raise NotReady(conn.plan.name)
        link.ws = await connector(self.s.venues.ws_transport)(
            conn.plan.url, lambda frames, ts: self.handle_frames(conn, frames, ts, link),
            open_timeout=10)
        link.opened_ns = clock.now_ns()
        link.task = link.ws.closed
        link.task.add_done_callback(lambda f: self._link_ended(conn, f))
        for msg in (*conn.plan.subscribe, *send):
            link.ws.send_text(msg)
        link.ping_due = time.monotonic()
        return link

    async def run_connection(self, conn: ConnState) -> None:
        attempt = 0
        link: _Link | None = None
        while not self._stop.is_set():
            if link is None:
                try:
                    link = await self._open(conn)
                except NotReady:              # the venue has nothing to subscribe yet
                    await self._sleep(0.2)
                    continue
                except OPEN_ERRORS as exc:
                    conn.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("connect %s failed: %s", conn.plan.name, conn.last_error,
                                extra=self._fields(conn, event="connect_failed", error=type(exc).__name__,
                                                   attempt=attempt + 1))
                    await self._backoff(attempt, conn)
                    attempt += 1
                    continue
                conn.connects += 1
                conn.opened_ns = link.opened_ns
                conn.reconnects += conn.connects > 1
                log.info("connected %s %s", conn.plan.name, redact_url(conn.plan.url),
                         extra=self._fields(conn, event="connected", proxy=link.ws.proxy,
                                            reconnects=conn.reconnects))
            conn.connected = True
            try:
                link = await self._supervise(conn, link)
                attempt = 0
            except (websockets.ConnectionClosed, OSError) as exc:
                conn.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("connection %s ended: %s", conn.plan.name, conn.last_error,
                            extra=self._fields(conn, event="closed", error=type(exc).__name__,
                                               code=getattr(exc, "code", None)))
                if link is not None and not link.task.done():
                    await self._close(link)       # ended by us (stale, restart): close it first
                # from now on data may be missing: say so before anything else arrives
                self._mark_gaps(conn.plan.streams, "disconnect")
                if clock.now_ns() - (link.opened_ns if link else 0) > 60e9:
                    attempt = 0           # it was healthy for a while: retry fast
                link = None
                conn.connected = False
                await self._backoff(attempt, conn)
                attempt += 1
        if link is not None:
            await self._close(link)
        conn.connected = False

    async def _backoff(self, attempt: int, conn: ConnState) -> None:
        delay = backoff_sec(attempt, RECONNECT_BASE_SEC, self.s.venues.feed_backoff_max_sec,
                            random.uniform(0.5, 1.0))
        log.info("reconnecting %s in %.2f s", conn.plan.name, delay,
                 extra=self._fields(conn, event="backoff", attempt=attempt + 1, retry_in_sec=round(delay, 3)))
        await self._sleep(delay)

    async def _sleep(self, sec: float) -> None:
        """Sleep, or less if the feed is stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), sec)
        except TimeoutError:
            pass

    async def _supervise(self, conn: ConnState, link: _Link) -> _Link:
        """Watch one live link; return its successor after a rotation, raise when it closes."""
        keepalive = getattr(self.venue, "KEEPALIVE", None)
        while True:
            # every 0.5 s, or sooner when a rotation's backoff ends
            wait = min(0.5, max(0.0, conn.rotate_after - time.monotonic())) or 0.5
            done, _ = await asyncio.wait({link.task}, timeout=wait)
            if done:
                link.task.result()           # raises ConnectionClosed (or a bug: let it show)
            if self._stop.is_set():
                return link
            if keepalive is not None and time.monotonic() >= link.ping_due:
                link.ws.send_text(keepalive[1])
                link.ping_due = time.monotonic() + keepalive[0]
            if self.poll is not None:
                send, restart = self.poll(conn.plan.name, False, clock.now_ns())
                for msg in send or ():
                    link.ws.send_text(msg)
                if restart is not None:
                    raise wsclient.WsClosed(None, restart)
            reason, lost = self._rotation_reason(conn, link)
            if reason is None:
                continue
            if not self.rotate:
                raise wsclient.WsClosed(None, reason)
            if time.monotonic() < conn.rotate_after:
                continue                     # a failed successor: backing off (the old link still feeds)
            successor = await self._rotate(conn, link, reason, lost)
            if successor is not None:
                return successor

    def _rotation_reason(self, conn: ConnState, link: _Link) -> tuple[str | None, list[str]]:
        now = clock.now_ns()
        if link.rotate_reason is not None:     # the venue said it will close this link: nothing lost yet
            return link.rotate_reason, []
        if self.rotate and now - link.opened_ns > self.s.venues.feed_rotate_sec * 1e9:
            return "age", []
        stale_sec = conn.plan.stale_sec or self.s.venues.feed_stale_sec
        if now - max(link.last_frame_ns, link.opened_ns) > stale_sec * 1e9:
            return "no data", list(conn.plan.streams)
        if not self.rotate:
            return None, []
        stale = [s for s, last in link.seen.items()
                 if (lim := self.silence_ns[s]) is not None and now - last > lim]
        if stale:
            return "stale " + ",".join(stale), stale
        grace = max(self.s.venues.feed_stale_sec * 1e9, 5e9)
        if now - link.opened_ns > grace:
            silent = [s for s in conn.plan.streams
                      if s not in link.seen and self.silence_ns[s] is not None]
            if silent != conn.silent_streams:
                if silent:
                    log.error("streams acked but never delivering on %s: %s (wrong route?)",
                              conn.plan.name, silent, extra=self._fields(conn, silent_streams=silent))
                conn.silent_streams = silent
        return None, []

    async def _rotate(self, conn: ConnState, old: _Link, reason: str, lost: list[str]) -> _Link | None:
        """Make before break. Returns the successor, or None if it could not be opened."""
        try:
            new = await self._open(conn, held=True)
        except OPEN_ERRORS as exc:
            conn.last_error = f"rotation ({reason}): {type(exc).__name__}: {exc}"
            self._rotation_failed(conn)       # keep the old one; try again after the backoff
            log.warning("could not open a successor for %s: %s", conn.plan.name, conn.last_error,
                        extra=self._fields(conn, event="rotation_failed", reason=reason,
                                           error=type(exc).__name__,
                                           retry_in_sec=round(conn.rotate_after - time.monotonic(), 3)))
            return None
        log.info("rotating %s (%s)", conn.plan.name, reason,
                 extra=self._fields(conn, event="rotate", reason=reason, proxy=new.ws.proxy))
        deadline = time.monotonic() + ROTATE_OVERLAP_SEC
        while time.monotonic() < deadline and len(new.held) < HOLD_MAX:
            if old.task.done() or new.task.done() or self._caught_up(old, new, lost):
                break
            await asyncio.sleep(0.02)
        if new.task.done() and new.task.exception() is not None:
            held, new.held = new.held, None
            await self._close(new)
            log.warning("successor for %s closed during rotation", conn.plan.name,
                        extra=self._fields(conn, event="rotation_failed", reason=reason,
                                           error=repr(new.task.exception())))
            self._rotation_failed(conn)
            return None
        await self._close(old)
        held, new.held = new.held, None
        for frame, sink, rec in held:         # the old link is gone: replay through de-dup
            try:
                sink.accept(rec, self.pub)
            except (ValueError, TypeError, OverflowError) as exc:
                self._unstorable(sink, exc, frame)
        for sink in self.sinks.values():
            sink.flush(self.pub)
        for stream in lost:                   # data may be missing where a stream went stale
            self.stream_sink[stream].mark_gap(self.pub, f"stale: {reason}")
        conn.rotations += 1
        conn.stale_rotations += bool(lost)
        conn.shutdown_rotations += reason in ROTATE_KINDS.values()
        conn.opened_ns = new.opened_ns
        conn.rotate_attempt, conn.rotate_after = 0, 0.0
        return new

    @staticmethod
    def _link_ended(conn: ConnState, closed: asyncio.Future) -> None:
        """Count a link we failed (a frame or message over max_size, a protocol error) by kind."""
        exc = None if closed.cancelled() else closed.exception()
        kind = getattr(exc, "failure", None)
        if kind is not None:
            conn.ws_failures[kind] = conn.ws_failures.get(kind, 0) + 1

    def _rotation_failed(self, conn: ConnState) -> None:
        """No successor this time: the next try waits as a reconnect would (capped, jittered
        exponential backoff; a venue bans an IP that retries every half second)."""
        conn.rotation_failures += 1
        conn.rotate_after = time.monotonic() + backoff_sec(
            conn.rotate_attempt, RECONNECT_BASE_SEC, self.s.venues.feed_backoff_max_sec, random.uniform(0.5, 1.0))
        conn.rotate_attempt += 1

    def _caught_up(self, old: _Link, new: _Link, ignore: list[str]) -> bool:
        """The old link has delivered up to the successor's first record on every stream that it
        still delivers (seen in the last second, not among the stale `ignore`d ones)."""
        if not new.first_key:
            return False
        recent = clock.now_ns() - 1_000_000_000
        for stream, first in new.first_key.items():
            if stream in ignore or old.seen.get(stream, 0) < recent:
                continue
            sink = self.stream_sink[stream]
            if not sink.cont.ordered:         # no order to compare: the de-dup set covers it
                continue
            last = sink.last_key(first[0])
            if last is None or last < first[1]:
                return False
        return True

    async def _close(self, link: _Link) -> None:
        await link.ws.close()
        if link.task.done() and not link.task.cancelled():
            link.task.exception()        # retrieved: a closed link's error is expected here

    # --- health -----------------------------------------------------------------------------
    def counters(self) -> dict:
        return {"frames": sum(c.frames for c in self.conns),
                "parse_errors": self.parse_errors, "rejected": dict(self.rejected),
                "unknown": self.unknown, "acks": self.acks,
                "venue_errors": self.venue_errors,
                "published": self.pub.sent, "publish_dropped": self.pub.dropped,
                "publish_skipped": self.pub.skipped,
                "reconnects": sum(c.reconnects for c in self.conns),
                "rotations": sum(c.rotations for c in self.conns),
                "shutdown_rotations": sum(c.shutdown_rotations for c in self.conns),
                "rotation_failures": sum(c.rotation_failures for c in self.conns),
                "ws_failures": _sum_counts(c.ws_failures for c in self.conns),
                "id_gaps": sum(s.id_gaps for s in self.sinks.values()),
                "duplicates": sum(s.duplicates for s in self.sinks.values()),
                **(self.on_frame.counters() if self.on_frame is not None else {}),
                **(self.venue.counters() if hasattr(self.venue, "counters") else {})}

    def health(self) -> dict:
        now = clock.now_ns()
        return {
            "venue": self.venue.VENUE,
            "last_venue_error": self.last_venue_error,
            "connections": {c.plan.name: {"connected": c.connected, "frames": c.frames,
                                          "bytes": c.bytes, "reconnects": c.reconnects,
                                          "rotations": c.rotations,
                                          "stale_rotations": c.stale_rotations,
                                          "shutdown_rotations": c.shutdown_rotations,
                                          "rotation_failures": c.rotation_failures,
                                          "ws_failures": dict(c.ws_failures),
                                          "age_s": (now - c.opened_ns) / 1e9 if c.opened_ns else None,
                                          "last_error": c.last_error,
                                          "silent_streams": c.silent_streams}
                            for c in self.conns},
            "streams": {names.venue_ring(self.venue.VENUE, k).label():
                        {**s.counters(),
                         "age_ms": (now - s.last_recv_ns) / 1e6 if s.last_recv_ns else None,
                         "max_silence_s": self.kind_silence_s.get(k)}
                        for k, s in self.sinks.items()},
            **(self.venue.health() if hasattr(self.venue, "health") else {}),
        }

    async def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self.hb.beat(self.counters(), feed=self.health())
            try:
                await asyncio.wait_for(self._stop.wait(), 0.5)
            except TimeoutError:
                pass

    async def run(self, extra: tuple = ()) -> None:
        """Run every connection and the heartbeat, and the actor's `extra` coroutines, until stopped.
        An extra task that fails is a bug, not a venue fault: it is logged and the process exits 1
        (supervisord restarts it)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = [asyncio.create_task(self.run_connection(c)) for c in self.conns]
        others = [asyncio.create_task(c) for c in extra]
        hb = asyncio.create_task(self._heartbeat())
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop, *others], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stop and not t.cancelled() and t.exception() is not None]
        self._stop.set()
        await asyncio.wait(tasks, timeout=5)
        for t in tasks + others + [hb, stop]:
            t.cancel()
        for t in failed:
            log.error("%s task failed", self.actor, exc_info=t.exception())
        await asyncio.gather(*tasks, *others, hb, stop, return_exceptions=True)
        self.hb.beat(self.counters(), feed=self.health(), stopped=True)
        self.pub.close()
        if failed:
            raise SystemExit(1)

    def stop(self) -> None:
        self._stop.set()


def _sum_counts(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            out[k] = out.get(k, 0) + n
    return out


def run_feed(settings: Settings, venue: Venue, actor: str) -> None:
    import uvloop
    uvloop.run(Feed(settings, venue, actor).run())
