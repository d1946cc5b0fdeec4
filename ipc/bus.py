"""ZeroMQ: the XSUB/XPUB proxy, a stamping publisher and a gap-detecting subscriber.

Invariants:
- every message is multipart `[topic, payload]`; the payload is one orjson object carrying `seq`
  (per topic, +1 per message, from 1), `boot` (the publisher's start id), `pub_ts_ns` (the
  publisher's wall clock when it sent it) and `ts_ns`;
- two clocks, two names: a document's own `ts_ns` is its data time (compute's tick on the data
  clock, which runs on recording time under replay) and is never overwritten; only a document
  without one gets the publish time there, so every message still has DESIGN's `ts_ns`;
- publishers connect to the bus's XSUB, subscribers to its XPUB, and filter on topic prefixes;
- a PUB socket drops silently at its high-water mark: loss is visible only as a `seq` jump, which
  `Subscriber` counts as a gap; a new `boot` for a topic is a publisher restart, not a gap;
- sockets are created with an explicit linger and high-water mark, and closed by their owner.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

import orjson
import zmq

_DUMPS_OPT = orjson.OPT_SERIALIZE_NUMPY
# pyzmq's Python-level Socket.send/send_multipart re-derive flags through enum arithmetic on every
# call (2.4 µs per message); the Cython base send with plain int flags costs 0.44 µs for both parts.
_raw_send = zmq.backend.Socket.send
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_NOBLOCK = int(zmq.NOBLOCK)


def new_boot_id() -> int:
    """Unique per publisher start: start time in ns mixed with the pid."""
    return (time.time_ns() << 8 ^ os.getpid()) & ((1 << 63) - 1)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free right now (bound and released: the caller takes it at once),
    for a private bus or server next to a running system (the backtest's replay)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run_proxy(xsub_url: str, xpub_url: str, ctx: zmq.Context | None = None) -> None:
    """The bus: bind XSUB (publishers connect) and XPUB (subscribers connect), forward forever."""
    ctx = ctx or zmq.Context.instance()
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    for s in (xsub, xpub):
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 200_000)
        s.setsockopt(zmq.RCVHWM, 200_000)
    xsub.bind(xsub_url)
    xpub.bind(xpub_url)
    try:
        zmq.proxy(xsub, xpub)
    except zmq.ZMQError as exc:
        # the context was terminated (or destroyed, which closes our sockets): a clean stop
        if exc.errno not in (zmq.ETERM, zmq.ENOTSOCK):
            raise
    finally:
        if not xsub.closed:
            xsub.close(0)
        if not xpub.closed:
            xpub.close(0)


class Publisher:
    """An XPUB socket connected to the bus's XSUB; stamps seq/boot/pub_ts_ns (and a missing ts_ns).

    XPUB rather than PUB so the publisher sees the subscriptions the bus forwards upstream (the
    bus's XSUB replays them to every publisher that connects): `wants(topic)` lets a hot path skip
    building a message no one has subscribed to. Sending is PUB's: filtered by subscription, never
    blocking, dropped at the high-water mark. `seq` counts the messages sent on a topic, so a
    subscriber sees no gap for the messages skipped while no one listened.
    """

    def __init__(self, url: str, ctx: zmq.Context | None = None, sndhwm: int = 100_000,
                 linger_ms: int = 500, bind: bool = False):
        self._ctx = ctx or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, linger_ms)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        (self.sock.bind if bind else self.sock.connect)(url)
        self.boot = new_boot_id()
        self._seq: dict[bytes, int] = {}
        self._subs: dict[bytes, int] = {}      # prefix -> subscribe count (the bus sends each once)
        self._wants: dict[bytes, bool] = {}
        self.sent = 0
        self.dropped = 0
        self.skipped = 0                        # messages not built: no subscriber for the topic

    def refresh(self) -> None:
        """Take the subscription changes the bus forwarded (cheap when there are none)."""
        sock = self.sock
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            msg = sock.recv(zmq.NOBLOCK)
            if not msg:
                continue
            prefix = bytes(msg[1:])
            n = self._subs.get(prefix, 0) + (1 if msg[0] == 1 else -1)
            if n > 0:
                self._subs[prefix] = n
            else:
                self._subs.pop(prefix, None)
            self._wants.clear()

    def wants(self, topic: bytes) -> bool:
        """True if some subscriber's prefix matches `topic` (as of the last `refresh`)."""
        w = self._wants.get(topic)
        if w is None:
            w = self._wants[topic] = any(topic.startswith(p) for p in self._subs)
        if not w:
            self.skipped += 1
        return w

    def publish(self, topic: str | bytes, doc: dict) -> None:
        """Send `doc` (mutated: seq/boot/pub_ts_ns added, ts_ns only if absent) on `topic`; never
        blocks."""
        t = topic.encode() if isinstance(topic, str) else topic
        seq = self._seq.get(t, 0) + 1
        self._seq[t] = seq
        doc["seq"] = seq
        doc["boot"] = self.boot
        wall = doc["pub_ts_ns"] = time.time_ns()
        if "ts_ns" not in doc:          # a document's own ts_ns is data time: never overwritten
            doc["ts_ns"] = wall
        try:
            # PUB never blocks: at its high-water mark it drops (seen by subscribers as a seq gap)
            _raw_send(self.sock, t, _MORE_NOBLOCK)
            _raw_send(self.sock, orjson.dumps(doc, option=_DUMPS_OPT), _NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self.sock.close()


@dataclass
class TopicTrack:
    boot: int = 0
    seq: int = 0
    received: int = 0
    gaps: int = 0          # gap events
    lost: int = 0          # messages missing by seq
    restarts: int = 0      # publisher restarts seen (boot changed)


@dataclass
class Event:
    topic: str
    msg: dict
    lost: int = 0          # messages missing just before this one
    restarted: bool = False


@dataclass
class Subscriber:
    """A SUB socket on the bus's XPUB with per-topic gap and restart detection."""
    url: str
    prefixes: tuple[str, ...] = ("",)
    ctx: zmq.Context | None = None
    rcvhwm: int = 100_000
    tracks: dict[str, TopicTrack] = field(default_factory=dict)

    def __post_init__(self):
        self.ctx = self.ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        self.sock.connect(self.url)
        for p in self.prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())

    def recv(self, timeout_ms: int | None = None) -> Event | None:
        """The next message, or None on timeout."""
        if timeout_ms is not None and not self.sock.poll(timeout_ms):
            return None
        t, payload = self.sock.recv_multipart()
        topic = t.decode()
        msg = orjson.loads(payload)
        return self.observe(topic, msg)

    def observe(self, topic: str, msg: dict) -> Event:
        tr = self.tracks.get(topic)
        if tr is None:
            tr = self.tracks[topic] = TopicTrack()
        ev = Event(topic, msg)
        boot, seq = msg.get("boot"), msg.get("seq")
        if tr.received and boot != tr.boot:
            tr.restarts += 1
            ev.restarted = True
        elif tr.received and seq != tr.seq + 1:
            missing = max(0, seq - tr.seq - 1)
            tr.gaps += 1
            tr.lost += missing
            ev.lost = missing
        tr.boot, tr.seq = boot, seq
        tr.received += 1
        return ev

    def close(self) -> None:
        self.sock.close(0)
