"""`GET /stream`: the dashboard's Server-Sent Events, fed from the ZeroMQ bus by one hub per API
worker.

The hub holds ONE SUB socket to the bus (`edge.<SYMBOL>.`, `features.<SYMBOL>`, `bar.`), opened
when the first stream starts and closed when the last ends: publishers skip building messages
nobody subscribes to (ipc.bus.Publisher.wants), so an idle dashboard costs compute nothing. Every
PUSH_INTERVAL_MS it flushes the latest message of each topic that changed (`Coalescer`, pure),
serialized once to SSE bytes, into every client's bounded queue; health (from shared memory) once
per HEALTH_INTERVAL_MS, a `: ping` comment every PING_INTERVAL_SEC.

Invariants:
- a message is sent as its publisher's payload bytes (one JSON line; re-encoded only when the raw
  bytes hold a line break, which orjson never writes but junk could); SSE `event:` names the topic
  family (`edge`, `features`, `bar`), each `data:` is one JSON line;
- a message that is not a stamped JSON object of this PAYLOAD_VERSION on a known topic is skipped
  and counted (`tdc_api_stream_bus_skipped_total{reason}`): junk on the bus never ends a stream;
- a client whose queue is over CLIENT_QUEUE_BYTES (it does not read) is disconnected (its stream
  ends; EventSource reconnects and the page reloads history) and counted
  (`tdc_api_stream_dropped_total{reason="queue_full"}`); the others lose nothing;
- at most MAX_STREAM_CLIENTS streams per worker: over it a JSON 503 (`reason="over_limit"`);
- nothing here blocks the worker's loop: the socket is zmq.asyncio, reads are non-blocking in
  batches of RECV_BATCH, health is one shared-memory read per interval whatever the client count;
- every stream yields at least once per HEALTH_INTERVAL_MS, so falcon notices a client gone
  (its disconnect watch is checked after each event) within that time.
"""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter, deque
from typing import Callable

import falcon
import falcon.asgi
import orjson
import zmq
import zmq.asyncio

from ipc import names
from ipc.bus import ENVELOPE_REASONS, PAYLOAD_VERSION, envelope

log = logging.getLogger("api")

PUSH_INTERVAL_MS = 250
HEALTH_INTERVAL_MS = 1000
PING_INTERVAL_SEC = 15
RETRY_MS = 2000
MAX_STREAM_CLIENTS = 64
CLIENT_QUEUE_BYTES = 4 * 1024 * 1024
SUB_RCVHWM = 10_000            # messages queued at the hub's socket (a few seconds of every topic)
RECV_BATCH = 1000              # messages read per wake-up before the loop looks at its clocks again

SKIP_REASONS = (*ENVELOPE_REASONS, "version", "unknown_topic", "too_large")
DROP_REASONS = ("queue_full", "over_limit")
EVENT_STREAM = "text/event-stream"


# --- pure: topics, SSE bytes, coalescing, documents -----------------------------------------------
def event_of(topic: str, symbol: str | None = None, followed: tuple[str, ...] | None = None) -> str | None:
    """The SSE event name of a bus topic; None for a topic the stream does not carry. Only this
    system's topics (its `symbol`, its `followed` series, compute's bar timeframes and venues) are
    carried, so the topics a hub keeps are a small fixed set whatever a stray publisher sends
    (None: any symbol, any series)."""
    if (edge := names.parse_edge_topic(topic)) is not None:
        sym, series = edge
        ok = (symbol is None or sym == symbol) and (followed is None or series in followed)
        return "edge" if ok else None
    if (bar := names.parse_bar_topic(topic)) is not None:
        tf, venue, sym = bar
        ok = tf in names.BAR_TFS and venue in names.BINANCE_VENUES and (symbol is None or sym == symbol)
        return "bar" if ok else None
    if topic.startswith(names.FEATURES_PREFIX):
        sym = topic[len(names.FEATURES_PREFIX):]
        return "features" if (sym == symbol if symbol is not None else "." not in sym) else None
    return None


def sse_frame(event: str, data: bytes) -> bytes:
    """One SSE event; `data` must be one line (no CR/LF)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def one_line(raw: bytes, doc) -> bytes:
    """`raw` (the JSON `doc` decoded from) when it is one line, else `doc` re-encoded."""
    if b"\n" in raw or b"\r" in raw:
        return orjson.dumps(doc)
    return raw


def json_event(event: str, doc) -> bytes:
    return sse_frame(event, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))


PING = b": ping\n\n"


class Coalescer:
    """The latest message of each topic since the last flush. `offer` takes one message's frames
    (counting what it skips in `skipped[reason]`); `flush` returns the SSE frames of the topics
    that changed, in the order each first changed, and forgets them."""

    def __init__(self, event_of: Callable[[str], str | None] = event_of,
                 max_bytes: int | None = None) -> None:
        self.event_of, self.max_bytes = event_of, max_bytes
        self._pending: dict[str, tuple[str, bytes, dict]] = {}
        self.skipped: Counter = Counter()
        self.received = 0

    def offer(self, frames: list[bytes]) -> str | None:
        """None when taken, else the skip reason (one of SKIP_REASONS)."""
        self.received += 1
        # a message bigger than a slice of a client's queue would drop every client at each flush
        if self.max_bytes is not None and len(frames) > 1 and len(frames[1]) > self.max_bytes:
            self.skipped["too_large"] += 1
            return "too_large"
        topic, doc, reason, _ = envelope(frames)
        if reason is None and doc.get("v") != PAYLOAD_VERSION:
            reason = "version"
        event = self.event_of(topic) if reason is None else None
        if reason is None and event is None:
            reason = "unknown_topic"
        if reason is not None:
            self.skipped[reason] += 1
            return reason
        self._pending[topic] = (event, frames[1], doc)
        return None

    def flush(self) -> list[tuple[str, bytes]]:
        """[(topic, SSE frame)] of every topic that changed since the last flush."""
        out = [(t, sse_frame(ev, one_line(raw, doc))) for t, (ev, raw, doc) in self._pending.items()]
        self._pending.clear()
        return out


def hello_doc(symbol: str, followed: tuple[str, ...], tick_ms: int, now_ns: int) -> dict:
    return {"symbol": symbol, "series": list(followed), "tick_ms": tick_ms,
            "push_interval_ms": PUSH_INTERVAL_MS, "ts_ns": now_ns}


def health_doc(actors: dict, quality, now_ns: int) -> dict:
    """The `health` event from ShmView.actors() and the quality block: the page's health panel."""
    q = quality if isinstance(quality, dict) else {}
    out = {}
    for name, a in actors.items():
        streams = a.get("streams") or {}
        out[name] = {"alive": a.get("alive"), "running": a.get("running"),
                     "heartbeat_age_ms": a.get("heartbeat_age_ms"), "uptime_s": a.get("uptime_s"),
                     "streams": {k: {"age_ms": st.get("age_ms"), "fresh": st.get("fresh")}
                                 for k, st in streams.items()}}
    return {"ts_ns": now_ns, "quality": {"mode": q.get("mode"), "reasons": list(q.get("reasons") or [])},
            "actors": out}


# --- metrics (prometheus_client lazily, multiprocess-safe as the API's others) ----------------------
_metrics = None


def _m():
    global _metrics
    if _metrics is None:
        from prometheus_client import Counter as PCounter, Gauge
        _metrics = (
            Gauge("tdc_api_stream_clients", "SSE streams open (GET /stream), summed over the workers",
                  registry=None, multiprocess_mode="livesum"),
            PCounter("tdc_api_stream_dropped", "SSE streams refused or ended by the server, by reason "
                     "(queue_full: the client did not read; over_limit: MAX_STREAM_CLIENTS)", ["reason"],
                     registry=None),
            PCounter("tdc_api_stream_bus_skipped", "bus messages the stream hub skipped (not a stamped JSON "
                     "object of this payload version on a known topic), by reason", ["reason"], registry=None))
    return _metrics


def dropped_count(reason: str) -> float:
    """This process's count (tests)."""
    return 0.0 if _metrics is None else _metrics[1].labels(reason)._value.get()


def bus_skipped_count(reason: str) -> float:
    return 0.0 if _metrics is None else _metrics[2].labels(reason)._value.get()


# --- the shell: clients, the hub, the resource -------------------------------------------------------
class StreamClient:
    """One stream's bounded queue of SSE bytes."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.queue: deque[bytes] = deque()
        self.nbytes = 0
        self.closed: str | None = None       # why the server ended it
        self.sent = 0
        self._ready = asyncio.Event()

    def put(self, frame: bytes) -> bool:
        """False when the queue would go over its limit (the frame is not queued)."""
        if self.nbytes + len(frame) > self.limit:
            return False
        self.queue.append(frame)
        self.nbytes += len(frame)
        self._ready.set()
        return True

    def close(self, reason: str) -> None:
        self.closed = reason
        self.queue.clear()
        self.nbytes = 0
        self._ready.set()

    async def take(self) -> bytes | None:
        """Everything queued, as one chunk; None once the server ended the stream."""
        while not self.queue and self.closed is None:
            self._ready.clear()
            await self._ready.wait()
        if self.closed is not None:
            return None
        data = b"".join(self.queue)
        self.queue.clear()
        self.nbytes = 0
        self.sent += len(data)
        return data


class Frame(falcon.asgi.SSEvent):
    """Bytes already in SSE form: falcon sends `serialize()`'s result as it is."""
    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:       # (SSEvent's fields are never read)
        self.raw = raw

    def serialize(self, handler=None) -> bytes:
        return self.raw


class Hub:
    """One per worker: the bus socket, the coalescer and the clients (module docstring)."""

    def __init__(self, url: str, prefixes: tuple[str, ...], hello: Callable[[], dict],
                 health: Callable[[], dict], *, max_clients: int = MAX_STREAM_CLIENTS,
                 queue_bytes: int = CLIENT_QUEUE_BYTES, interval_ms: int = PUSH_INTERVAL_MS,
                 health_ms: int = HEALTH_INTERVAL_MS, ping_sec: float = PING_INTERVAL_SEC,
                 event_of: Callable[[str], str | None] = event_of):
        self.url, self.prefixes, self.hello, self.health = url, prefixes, hello, health
        self.event_of = event_of
        self.max_clients, self.queue_bytes = max_clients, queue_bytes
        self.interval_s, self.health_s, self.ping_s = interval_ms / 1e3, health_ms / 1e3, ping_sec
        self.clients: set[StreamClient] = set()
        self.coalescer = self._coalescer()
        self.last: dict[str, bytes] = {}     # topic -> its latest frame, for a client that joins
        self.last_health: bytes | None = None
        self.sock: zmq.asyncio.Socket | None = None
        self.opened = 0                      # sockets opened (tests)
        self._ctx: zmq.asyncio.Context | None = None
        self._task: asyncio.Task | None = None

    # clients
    def join(self) -> StreamClient | None:
        """A new client with its hello (and the latest of every topic) queued; None when full."""
        if len(self.clients) >= self.max_clients:
            _m()[1].labels("over_limit").inc()
            return None
        c = StreamClient(self.queue_bytes)
        c.put(b"retry: %d\n" % RETRY_MS + json_event("hello", self.hello()))
        for frame in self.last.values():
            c.put(frame)
        if self.last_health is not None:
            c.put(self.last_health)
        self.clients.add(c)
        _m()[0].set(len(self.clients))
        if self._task is None:
            self._open()
        return c

    def leave(self, c: StreamClient) -> None:
        """Idempotent; the last client out closes the socket."""
        if c not in self.clients:
            return
        self.clients.discard(c)
        _m()[0].set(len(self.clients))
        if not self.clients:
            self._close()

    def _drop(self, c: StreamClient, reason: str) -> None:
        log.warning("SSE client dropped: %s (%d bytes queued)", reason, c.nbytes)
        c.close(reason)
        _m()[1].labels(reason).inc()
        self.leave(c)

    def broadcast(self, frame: bytes) -> None:
        for c in list(self.clients):
            if not c.put(frame):
                self._drop(c, "queue_full")

    async def events(self, c: StreamClient):
        """The client's stream (resp.sse): ends when the server drops it; the client leaves when
        it ends or is abandoned (falcon stops iterating once the client is gone)."""
        try:
            while (data := await c.take()) is not None:
                yield Frame(data)
        finally:
            self.leave(c)

    # the socket
    def _open(self) -> None:
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, SUB_RCVHWM)
        sock.connect(self.url)
        for p in self.prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, p.encode())
        self.sock = sock
        self.opened += 1
        self.coalescer = self._coalescer()
        self.last.clear()
        self.last_health = None
        self._task = asyncio.get_running_loop().create_task(self._run(sock), name="sse-hub")

    def _coalescer(self) -> Coalescer:
        return Coalescer(self.event_of, max_bytes=self.queue_bytes // 8)

    def _close(self) -> None:
        # what this socket received is of the past: a client joining later must not get it first
        self.last.clear()
        self.last_health = None
        task, self._task = self._task, None
        sock, self.sock = self.sock, None
        if task is not None:
            task.cancel()
        if sock is not None:
            sock.close(0)          # at once: the bus forwards the unsubscription now

    def close(self) -> None:
        """End every stream and close the socket and context (tests, shutdown)."""
        for c in list(self.clients):
            c.close("closed")
            self.clients.discard(c)
        self._close()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def _run(self, sock) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_flush, next_health, next_ping = now + self.interval_s, now, now + self.ping_s
        while True:
            try:
                wait_ms = max(0.0, min(next_flush, next_health, next_ping) - loop.time()) * 1e3
                if await sock.poll(wait_ms, zmq.POLLIN):
                    await self._drain(sock)
                now = loop.time()
                if now >= next_flush:
                    for topic, frame in self.coalescer.flush():
                        self.last[topic] = frame
                        self.broadcast(frame)
                    next_flush = max(next_flush + self.interval_s, now)
                if now >= next_health:
                    next_health = max(next_health + self.health_s, now)
                    try:
                        self.last_health = json_event("health", self.health())
                    except Exception:       # a heartbeat that does not read: the stream goes on
                        log.exception("SSE hub: health document failed")
                        self.last_health = PING
                    self.broadcast(self.last_health)
                if now >= next_ping:
                    self.broadcast(PING)
                    next_ping = now + self.ping_s
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as exc:
                if sock.closed or exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.exception("SSE hub: bus error")
                await asyncio.sleep(self.interval_s)
            except Exception:           # never leave the streams without a hub
                log.exception("SSE hub: unexpected error")
                await asyncio.sleep(self.interval_s)

    async def _drain(self, sock) -> None:
        offer, skipped = self.coalescer.offer, _m()[2]
        for _ in range(RECV_BATCH):
            try:
                frames = await sock.recv_multipart(zmq.NOBLOCK)    # done at once (pyzmq short-circuits)
            except zmq.Again:
                return
            reason = offer(frames)
            if reason is not None:
                skipped.labels(reason).inc()


class StreamResource:
    def __init__(self, hub: Hub):
        self.hub = hub

    async def on_get(self, req, resp):
        c = self.hub.join()
        if c is None:
            raise falcon.HTTPServiceUnavailable(
                title="too many streams", retry_after=RETRY_MS // 1000,
                description=f"this worker serves at most {self.hub.max_clients} streams; retry")
        resp.content_type = EVENT_STREAM
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")     # a buffering reverse proxy would hold events
        gen = self.hub.events(c)
        # a stream falcon never starts iterating (an error after the responder) still leaves
        weakref.finalize(gen, self.hub.leave, c)
        resp.sse = gen


def stream_prefixes(symbol: str) -> tuple[str, ...]:
    return (names.edge_topic(symbol, ""), names.features_topic(symbol), names.BAR_PREFIX)


def make_hub(view, settings, **kw) -> Hub:
    followed = tuple(settings.venues.polymarket_windows) if settings.polymarket_on else ()
    sym = settings.general.symbol

    def hello() -> dict:
        return hello_doc(sym, followed, settings.general.tick_ms, time.time_ns())

    def health() -> dict:
        now = time.time_ns()
        return health_doc(view.actors(now), view.doc(names.QUALITY_BLOCK), now)

    return Hub(settings.ipc.zmq_pub_url, stream_prefixes(sym), hello, health,
               event_of=lambda topic: event_of(topic, sym, followed), **kw)


def add_stream_route(app, view, settings, **kw) -> Hub:
    """`GET /stream` on `app`; returns its hub (one per app, so one per worker)."""
    hub = make_hub(view, settings, **kw)
    app.add_route("/stream", StreamResource(hub))
    return hub
