"""ZeroMQ: the XSUB/XPUB proxy, a stamping publisher and a gap-detecting subscriber.

Invariants:
- every message is multipart `[topic, payload]` (but for the opt-in binary record batches of the
  `bin.` topics, `[topic, header, body]`: ipc/binary.py); the payload is one orjson object carrying `seq`
  (per topic, +1 per message, from 1), `boot` (the publisher's start id), `pub_ts_ns` (the
  publisher's wall clock when it sent it), `ts_ns` and `v` (PAYLOAD_VERSION, the payload schema
  version: bumped whenever a published document changes shape, so a strategy can refuse what it
  does not understand);
- two clocks, two names: a document's own `ts_ns` is its data time (compute's tick on the data
  clock, which runs on recording time under replay) and is never overwritten; only a document
  without one gets the publish time there, so every message still has DESIGN's `ts_ns`;
- publishers connect to the bus's XSUB, subscribers to its XPUB, and filter on topic prefixes; the
  binary batches (`bin.` topics) leave the bus by an XPUB of their own (ZMQ_BIN_URL), so a
  subscriber of everything on ZMQ_PUB_URL never receives a message that is not [topic, JSON];
- nothing is dropped silently on our side of the bus. A publisher's XPUB is ZMQ_XPUB_NODROP: at its
  high-water mark (the bus not keeping up) a send fails with EAGAIN, the message is not sent and is
  counted in `Publisher.dropped` (its one peer is the bus, so nobody else pays for it). The bus's
  XPUB is NODROP too: a message refused because some subscriber's queue is full is counted in
  `Proxy.dropped` and then sent once more in the lossy mode, so every subscriber with room still
  gets it — one stalled subscriber never costs the others a message. libzmq then stops writing to
  the full queue until its reader has drained it, and messages it misses meanwhile are not seen by
  the bus: the count says *that* a subscriber overflowed (and fires the alert), the exact loss is
  the subscriber's own `seq` jump, which `Subscriber` counts as a gap; a new `boot` for a topic is
  a publisher restart, not a gap;
- sockets are created with an explicit linger and high-water mark, and closed by their owner.
"""
from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import zmq

from ipc.binary import MAX_BATCH, BinaryError, decode as decode_binary, encode_header
from ipc.names import BINARY_PREFIX

_DUMPS_OPT = orjson.OPT_SERIALIZE_NUMPY
# 3: tick payloads carry only the levels in use (`tick.*.depth`: n_bids/n_asks long level arrays,
# no 0-price padding slots; ipc/payload.py) (issue 16); 2: Polymarket topics, blocks and edge
# documents keyed by series (issue 14); 1: before. One version for every topic: docs/api.md
# "Topics and payloads" lists each topic's payload under it.
PAYLOAD_VERSION = 3
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


PROXY_HWM = 200_000          # messages queued per peer at the bus, each way
_FORWARD_BATCH = 1024        # messages forwarded per wake-up before subscriptions are looked at again
_raw_recv = zmq.backend.Socket.recv
_MORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_BIN = BINARY_PREFIX.encode()
assert len(_BIN) == 4          # Proxy._forward routes on the first four bytes of a topic


class Proxy:
    """The bus: XSUB (publishers connect) -> XPUB (subscribers connect), forwarding subscriptions
    upstream and messages downstream, counting what a full subscriber queue refused (module
    docstring). `zmq.proxy` cannot count: its XPUB drops silently.

    Counters (plain ints, read by the bus actor's heartbeat from another thread):
    `received` messages from publishers, `forwarded` messages sent on (all of them: a refused one
    goes out lossy), `dropped` messages a full subscriber queue refused, `subscriptions`
    subscribe/unsubscribe messages forwarded upstream.
    """

    def __init__(self, xsub_url: str, xpub_url: str, ctx: zmq.Context | None = None,
                 hwm: int = PROXY_HWM, bin_url: str | None = None):
        ctx = ctx or zmq.Context.instance()
        self.xsub = ctx.socket(zmq.XSUB)
        self.xpub = ctx.socket(zmq.XPUB)
        # the binary record batches (BINARY_PREFIX topics) have an XPUB of their own (ZMQ_BIN_URL), so
        # a subscriber of everything on ZMQ_PUB_URL still gets only [topic, JSON] messages; without
        # one (tests, bin_url None) they go out with the rest
        self.xbin = ctx.socket(zmq.XPUB) if bin_url else None
        self.outs = [x for x in (self.xpub, self.xbin) if x is not None]
        for s in (self.xsub, *self.outs):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, hwm)
            s.setsockopt(zmq.RCVHWM, hwm)
        for s in self.outs:
            s.setsockopt(zmq.XPUB_NODROP, 1)
        self.xsub.bind(xsub_url)
        self.xpub.bind(xpub_url)
        if self.xbin is not None:
            self.xbin.bind(bin_url)
        self.received = self.forwarded = self.dropped = self.subscriptions = 0

    def counters(self) -> dict:
        return {"received": self.received, "published": self.forwarded,
                "publish_dropped": self.dropped, "subscriptions": self.subscriptions}

    def run(self) -> None:
        """Forward until the context is terminated (or destroyed, which closes our sockets)."""
        xsub = self.xsub
        poller = zmq.Poller()
        poller.register(xsub, zmq.POLLIN)
        for out in self.outs:
            poller.register(out, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                for out in self.outs:
                    if out in ready:
                        self._subscriptions(out)
                if xsub in ready:
                    self._forward()
        except zmq.ZMQError as exc:
            if exc.errno not in (zmq.ETERM, zmq.ENOTSOCK):
                raise
        finally:
            for s in (xsub, *self.outs):
                if not s.closed:
                    s.close(0)

    def _subscriptions(self, xpub: zmq.Socket) -> None:
        xsub = self.xsub
        while True:
            try:
                msg = _raw_recv(xpub, _NOBLOCK)
            except zmq.Again:
                return
            _raw_send(xsub, msg, _NOBLOCK)       # XSUB's upstream sends never block
            self.subscriptions += 1

    def _forward(self) -> None:
        xsub, json_out, bin_out = self.xsub, self.xpub, self.xbin or self.xpub
        recv, send, more = _raw_recv, _raw_send, xsub.get
        n = 0
        for _ in range(_FORWARD_BATCH):
            try:
                part = recv(xsub, _NOBLOCK)
            except zmq.Again:
                break
            n += 1
            xpub = bin_out if part[:4] == _BIN else json_out
            lossy = False
            while True:                 # each part goes on as it comes; the rest follows at once
                flags = _MORE_NOBLOCK if more(_RCVMORE) else _NOBLOCK
                try:
                    send(xpub, part, flags)
                except zmq.Again:
                    # a full subscriber queue refused it (libzmq checks the mark per message, so
                    # only a first part is refused): count it, then send it lossy to every
                    # subscriber with room; the message is finished either way, never left half-sent
                    if not lossy:
                        self.dropped += 1
                        lossy = True
                        xpub.setsockopt(zmq.XPUB_NODROP, 0)
                    send(xpub, part, flags)
                if flags == _NOBLOCK:
                    break
                part = recv(xsub, 0)
            if lossy:
                xpub.setsockopt(zmq.XPUB_NODROP, 1)
        self.received += n
        self.forwarded += n


def run_proxy(xsub_url: str, xpub_url: str, ctx: zmq.Context | None = None, bin_url: str | None = None) -> None:
    """The bus without counters to read (tests): bind, forward until the context ends."""
    Proxy(xsub_url, xpub_url, ctx, bin_url=bin_url).run()


class Publisher:
    """An XPUB socket connected to the bus's XSUB; stamps seq/boot/pub_ts_ns (and a missing ts_ns).

    XPUB rather than PUB so the publisher sees the subscriptions the bus forwards upstream (the
    bus's XSUB replays them to every publisher that connects): `wants(topic)` lets a hot path skip
    building a message no one has subscribed to. Sending is filtered by subscription and never
    blocks; at the high-water mark (ZMQ_XPUB_NODROP) a message is refused and counted in
    `dropped` instead of vanishing. `seq` counts the messages sent on a topic (refused ones
    included, so subscribers see the loss as a gap), and no gap for the messages skipped while no
    one listened.
    """

    def __init__(self, url: str, ctx: zmq.Context | None = None, sndhwm: int = 100_000,
                 linger_ms: int = 500, bind: bool = False):
        self._ctx = ctx or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, linger_ms)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)     # EAGAIN at the high-water mark: counted
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
        """Send `doc` (mutated: seq/boot/v/pub_ts_ns added, ts_ns only if absent) on `topic`; never
        blocks."""
        t = topic.encode() if isinstance(topic, str) else topic
        seq = self._seq.get(t, 0) + 1
        self._seq[t] = seq
        doc["seq"] = seq
        doc["boot"] = self.boot
        doc["v"] = PAYLOAD_VERSION
        wall = doc["pub_ts_ns"] = time.time_ns()
        if "ts_ns" not in doc:          # a document's own ts_ns is data time: never overwritten
            doc["ts_ns"] = wall
        body = orjson.dumps(doc, option=_DUMPS_OPT)
        try:
            # NODROP + NOBLOCK: at the high-water mark the topic part is refused, nothing is sent
            _raw_send(self.sock, t, _MORE_NOBLOCK)
        except zmq.Again:
            self.dropped += 1                   # subscribers see it as a seq gap
            return
        try:
            _raw_send(self.sock, body, _NOBLOCK)
        except zmq.Again:
            # libzmq checks the mark per message, so a message whose first part went is taken
            # whole; should that ever change, finish it lossy rather than leave half a message
            self.sock.setsockopt(zmq.XPUB_NODROP, 0)
            try:
                _raw_send(self.sock, body, _NOBLOCK)
            finally:
                self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        self.sent += 1

    def publish_records(self, topic: bytes, kind: str, first: int, views) -> None:
        """Send records of `kind` (numpy views, e.g. ipc.ring.RingWriter.written's, the first at
        ring index `first`) on the binary topic `topic`, at most ipc.binary.MAX_BATCH per message
        (ipc/binary.py's three frames); never blocks, a refused message counted in `dropped`."""
        sock = self.sock
        for view in views:
            for at in range(0, len(view), MAX_BATCH):
                part = view[at:at + MAX_BATCH]
                seq = self._seq.get(topic, 0) + 1
                self._seq[topic] = seq
                header = encode_header(kind, seq, self.boot, PAYLOAD_VERSION, time.time_ns(), first, len(part))
                first += len(part)
                try:
                    _raw_send(sock, topic, _MORE_NOBLOCK)
                except zmq.Again:
                    self.dropped += 1
                    continue
                # the first part went, so libzmq takes the whole message (see publish)
                _raw_send(sock, header, _MORE_NOBLOCK)
                _raw_send(sock, part, _NOBLOCK)
                self.sent += 1

    def close(self) -> None:
        self.sock.close()


#: why a message off the bus is not a stamped document: each a key of `Subscriber.skipped`
ENVELOPE_REASONS = ("frames", "not_json", "not_object", "stamps")


def envelope(frames: list[bytes]) -> tuple[str, dict | None, str | None, str]:
    """(topic, doc, reason, detail) of one message's frames: reason None when it is [topic, a JSON
    object with integer seq and boot], or on a binary topic (BINARY_PREFIX) [topic, header, body]
    (ipc/binary.py: doc is the header with the decoded records under "records"); else one of
    ENVELOPE_REASONS, or for a binary message one of ipc.binary's (doc kept when it decoded)."""
    topic = frames[0].decode("utf-8", "replace") if frames else ""
    if len(frames) == 3 and topic.startswith(BINARY_PREFIX):
        try:
            doc, recs = decode_binary(frames[1], frames[2])
        except BinaryError as exc:
            return topic, None, exc.reason, exc.detail
        doc["records"] = recs
        return topic, doc, None, ""
    if len(frames) != 2:
        return topic, None, "frames", f"{len(frames)} frames"
    try:
        doc = orjson.loads(frames[1])
    except orjson.JSONDecodeError as exc:
        return topic, None, "not_json", str(exc)
    if not isinstance(doc, dict):
        return topic, None, "not_object", type(doc).__name__
    if type(doc.get("seq")) is not int or type(doc.get("boot")) is not int:
        return topic, doc, "stamps", "seq/boot not integers"
    return topic, doc, None, ""


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
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.ctx = self.ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        self.sock.connect(self.url)
        for p in self.prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())

    def recv(self, timeout_ms: int | None = None) -> Event | None:
        """The next message, or None on timeout or when the message is not a stamped JSON object
        (counted in `skipped[reason]`, ENVELOPE_REASONS: junk on the bus never raises here)."""
        if timeout_ms is not None and not self.sock.poll(timeout_ms):
            return None
        topic, msg, reason, _ = envelope(self.sock.recv_multipart())
        if reason is not None:
            self.skipped[reason] += 1
            return None
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
