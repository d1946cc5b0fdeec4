"""GET /stream (actors/web/push.py): Server-Sent Events from a real bus (ipc.bus Proxy + Publisher on
127.0.0.1) through the real app under uvicorn with the guarded protocol, read off raw sockets; and
once under the real front (gunicorn with the ApiWorker, as actors.api.main starts it).

Checked: the exact SSE bytes of published edge/features/bar documents; coalescing (the latest
message of an interval); a client that does not read is dropped and counted while another gets
everything; the hub's subscription is gone once the last client leaves (the publisher stops
wanting the topics); 503 over the client limit; junk on the bus counted and skipped; under
gunicorn, /health answers at once with streams open, a stream outlives the request and
keep-alive timeouts, and a stop with streams open ends within the graceful time."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace

import orjson
import pytest
import uvicorn
import zmq

from actors import api
from actors.features.bars import BarBuilder
from actors.obs import uvicorn_front as front
from actors.web import push
from config.settings import load_settings
from ipc import names
from ipc.bus import Proxy, Publisher
from ipc.shm import unlink_prefix
from tests.support.api import edge_doc, market_doc
from tests.support.fixtures import BINANCE, load_hftbacktest, need
from tests.support.ports import free_port
from tests.support.system import ROOT
from tests.support.wait import wait_for

FUT_TRADES = BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log"
SYM = "BTCUSDT"
EDGE_15M = names.edge_topic(SYM, "15m")
FEATURES = names.features_topic(SYM)


def real_bars(n: int) -> list[dict]:
    """Closed 5 s futures bars of the real trade capture (compute's BarBuilder)."""
    trades = load_hftbacktest(need(FUT_TRADES), "trade")
    return BarBuilder("5s", "futures").update(trades)[:n]


def frame(event: str, doc: dict) -> bytes:
    """What a published (stamped) document must arrive as."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n\n"


# --- a real bus ---------------------------------------------------------------------------------
@pytest.fixture
def bus():
    ctx = zmq.Context()
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = Proxy(xsub, xpub, ctx)
    th = threading.Thread(target=proxy.run, daemon=True)
    th.start()
    pub = Publisher(xsub, ctx)
    b = SimpleNamespace(xsub=xsub, xpub=xpub, pub=pub, ctx=ctx)
    try:
        yield b
    finally:
        pub.sock.close(0)
        ctx.term()
        th.join(5)


def wanted(pub: Publisher, topic: str) -> bool:
    pub.refresh()
    return pub.wants(topic.encode())


# --- the app on a real socket ----------------------------------------------------------------------
class Server:
    def __init__(self, app):
        self.port = free_port()
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, http=front.GuardedHttpProtocol, ws="none",
                             lifespan="off", access_log=False, log_level="warning", limit_concurrency=256,
                             timeout_keep_alive=2, loop="asyncio")
        self.server = uvicorn.Server(cfg)
        self.th = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.th.start()
        wait_for(lambda: self.server.started, 10, "uvicorn to start")

    def stop(self):
        self.server.should_exit = True
        self.th.join(10)


@pytest.fixture
def served(bus, env):
    _, prefix = env
    s = load_settings(shm_prefix=prefix, zmq_pub_url=bus.xpub, polymarket_windows="15m,1h")
    app = api.create_app(api.ShmView(s), s)
    srv = Server(app)
    srv.hub = app._router.find("/stream")[0].hub
    try:
        yield srv
    finally:
        srv.hub.close()       # ends every stream first: a failed test's open client cannot hold the stop
        srv.stop()


class Sse:
    """A raw HTTP/1.1 client of /stream: the head, then the chunked body decoded as it comes."""

    def __init__(self, port: int, path: str = "/stream"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.s.recv(65536)
            assert chunk, "closed before the head"
            raw += chunk
        head, _, self.raw = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.body = b""
        self.ended = self.eof = False

    def _dechunk(self) -> None:
        while not self.ended:
            size_line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            if size == 0:
                self.ended = True
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def pump(self, timeout: float = 0.05) -> None:
        """Read what has arrived (waiting at most `timeout`)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    self.eof = True
                    break
                self.raw += chunk
                self.s.settimeout(0.001)
        except (socket.timeout, TimeoutError, BlockingIOError):
            pass
        except ConnectionResetError:
            self.eof = True
        self._dechunk()

    def events(self) -> list[tuple[str, bytes]]:
        """(event name or ':' for a comment block, data) of each complete event so far."""
        out = []
        for block in self.body.split(b"\n\n")[:-1]:
            name, data = "message", b""
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    name = ":"
                elif line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = line[6:]
            out.append((name, data))
        return out

    def of(self, event: str) -> list[bytes]:
        return [d for n, d in self.events() if n == event]

    def until(self, cond, timeout: float, what: str):
        def check():
            self.pump()
            return cond(self)
        return wait_for(check, timeout, what)

    def close(self):
        self.s.close()


def test_hello_then_the_exact_bytes_of_edge_features_and_bar_documents(served, bus):
    c = Sse(served.port)
    assert c.status == 200
    assert c.headers["content-type"] == "text/event-stream"
    assert c.headers["cache-control"] == "no-cache"
    assert c.headers["transfer-encoding"] == "chunked"
    assert c.headers["content-security-policy"].startswith("default-src 'none'")
    c.until(lambda x: x.of("hello"), 5, "hello")
    assert c.body.startswith(b"retry: 2000\nevent: hello\ndata: ")
    hello = orjson.loads(c.of("hello")[0])
    assert {k: v for k, v in hello.items() if k != "ts_ns"} == {
        "symbol": SYM, "series": ["15m", "1h"], "tick_ms": 100, "push_interval_ms": 250}
    assert abs(hello["ts_ns"] - time.time_ns()) < 5e9
    for topic in (EDGE_15M, FEATURES, "bar.5s.futures.BTCUSDT"):
        wait_for(lambda: wanted(bus.pub, topic), 5, f"the hub's subscription to {topic}")
    assert not wanted(bus.pub, "tick.futures.trade.BTCUSDT")        # only what the page shows
    m = market_doc("15m", 1_723_161_000, 900)
    edge = edge_doc("15m", 1_723_161_256_322_000_000, m)
    feats = {"symbol": SYM, "ts_ns": 1_723_161_256_322_000_000, "venues": {"futures": {"last_price": 61800.3}},
             "quality": {"mode": "OK", "reasons": []}}
    bar = real_bars(2)[1]
    assert (bar["tf"], bar["venue"], bar["closed"]) == ("5s", "futures", True)
    bus.pub.publish(EDGE_15M, edge)
    bus.pub.publish(FEATURES, feats)
    bus.pub.publish(names.bar_topic("5s", "futures", SYM), bar)
    c.until(lambda x: x.of("edge") and x.of("features") and x.of("bar"), 5, "the three documents")
    expected = frame("edge", edge) + frame("features", feats) + frame("bar", bar)
    assert expected in c.body                   # one flush, in the order they arrived, byte for byte
    assert orjson.loads(c.of("bar")[0])["close"] == bar["close"]
    # health from shared memory (nothing heartbeats in this test: no actors, no quality yet)
    health = orjson.loads(c.until(lambda x: x.of("health"), 3, "health")[0])
    assert health["actors"] == {} and health["quality"] == {"mode": None, "reasons": []}
    c.close()


def test_many_messages_in_one_interval_arrive_as_the_latest(served, bus):
    c = Sse(served.port)
    wait_for(lambda: wanted(bus.pub, EDGE_15M), 5, "subscription")
    m = market_doc("15m", 1_723_161_000, 900)
    docs = [edge_doc("15m", 1_723_161_256_000_000_000 + k * 1_000_000, m, fair_up=0.5 + k / 1000) for k in range(50)]
    for d in docs:                      # 50 messages well inside one 250 ms interval
        bus.pub.publish(EDGE_15M, d)
    c.until(lambda x: any(orjson.loads(e)["seq"] == 50 for e in x.of("edge")), 5, "the last edge doc")
    c.pump(0.6)                         # two more flush intervals: nothing else may come
    edges = c.of("edge")
    assert len(edges) <= 2, len(edges)  # (at most one interval boundary fell inside the burst)
    assert frame("edge", docs[-1]) in c.body
    assert orjson.loads(edges[-1])["edge"]["sides"]["UP"]["fair"] == 0.549
    c.close()


def test_junk_on_the_bus_is_counted_and_skipped_and_the_stream_lives(served, bus):
    c = Sse(served.port)
    wait_for(lambda: wanted(bus.pub, EDGE_15M), 5, "subscription")
    junk = bus.ctx.socket(zmq.XPUB)
    junk.setsockopt(zmq.LINGER, 0)
    junk.connect(bus.xsub)
    wait_for(lambda: junk.poll(50) and junk.recv(), 5, "the bus to forward a subscription to the junk publisher")
    before = {r: push.bus_skipped_count(r) for r in push.SKIP_REASONS}
    junk.send_multipart([EDGE_15M.encode(), b"{not json"])
    junk.send_multipart([EDGE_15M.encode(), b"[1, 2]"])
    junk.send_multipart([EDGE_15M.encode(), b'{"seq": "1", "boot": 2}'])
    junk.send_multipart([EDGE_15M.encode(), b'{"seq": 1, "boot": 2, "v": 1}'])
    junk.send_multipart([EDGE_15M.encode(), b"a", b"b"])
    junk.send_multipart([b"bar.bogus", b'{"seq": 1, "boot": 2, "v": 3}'])    # subscribed to, not a bar
    # a bar topic of no timeframe compute builds: a stray publisher's topics are not kept
    junk.send_multipart([b"bar.junk0.x.BTCUSDT", b'{"seq": 1, "boot": 2, "v": 3}'])
    # one stamped message bigger than an eighth of a client's queue would drop every client
    junk.send_multipart([EDGE_15M.encode(), b'{"seq": 1, "boot": 2, "v": 3, "pad": "'
                         + b"x" * (push.CLIENT_QUEUE_BYTES // 8) + b'"}'])
    good = edge_doc("15m", 1_723_161_256_000_000_000, market_doc("15m", 1_723_161_000, 900))
    bus.pub.publish(EDGE_15M, good)
    c.until(lambda x: x.of("edge"), 5, "the good document after the junk")
    delta = {r: push.bus_skipped_count(r) - before[r] for r in push.SKIP_REASONS}
    assert delta == {"frames": 1, "not_json": 1, "not_object": 1, "stamps": 1, "version": 1, "unknown_topic": 2,
                     "too_large": 1}
    assert set(served.hub.last) <= {EDGE_15M}
    assert c.of("edge") == [orjson.dumps(good)]
    junk.close(0)
    c.close()


def test_over_the_client_limit_is_a_json_503(served):
    served.hub.max_clients = 3
    before = push.dropped_count("over_limit")
    streams = [Sse(served.port) for _ in range(3)]
    assert [s.status for s in streams] == [200, 200, 200]
    over = Sse(served.port)
    assert over.status == 503 and over.headers["content-type"] == "application/json"
    assert over.headers["retry-after"] == "2"
    assert "content-security-policy" in over.headers
    n = int(over.headers["content-length"])
    over.until(lambda x: len(x.raw) >= n, 3, "the 503 body")
    assert orjson.loads(over.raw[:n]) == {"title": "too many streams",
                                          "description": "this worker serves at most 3 streams; retry"}
    assert push.dropped_count("over_limit") - before == 1
    streams[0].close()      # a slot frees once falcon sees the client gone (within a health interval)
    wait_for(lambda: len(served.hub.clients) == 2, 5, "the closed stream to leave")
    again = Sse(served.port)
    assert again.status == 200
    for s in (*streams[1:], over, again):
        s.close()


def test_the_last_client_out_closes_the_subscription(served, bus):
    a, b = Sse(served.port), Sse(served.port)
    wait_for(lambda: wanted(bus.pub, EDGE_15M), 5, "subscription")
    assert served.hub.opened == 1 and len(served.hub.clients) == 2
    old = edge_doc("15m", 1_723_161_256_000_000_000, market_doc("15m", 1_723_161_000, 900))
    bus.pub.publish(EDGE_15M, old)
    b.until(lambda x: x.of("edge"), 5, "an edge doc")
    a.close()
    wait_for(lambda: len(served.hub.clients) == 1, 5, "one client to leave")
    assert served.hub.sock is not None and wanted(bus.pub, EDGE_15M)
    b.close()
    wait_for(lambda: served.hub.sock is None, 5, "the hub to close its socket")
    wait_for(lambda: not wanted(bus.pub, EDGE_15M) and not wanted(bus.pub, FEATURES), 5,
             "the publisher to see nobody subscribes")
    c = Sse(served.port)            # and a new client opens it again
    wait_for(lambda: wanted(bus.pub, EDGE_15M), 5, "subscription again")
    assert served.hub.opened == 2
    # ... without the previous session's documents: its first events are hello, then health
    c.until(lambda x: x.of("health"), 5, "the first health event")
    assert c.of("edge") == [] and served.hub.last == {}
    c.close()


def test_a_reader_that_stops_reading_is_cut_by_the_front(served, bus, monkeypatch):
    """Its TCP buffers full, the stream's send waits in drain(): after WRITE_STALL_SEC the front
    aborts the connection (counted), and the stream leaves the hub."""
    monkeypatch.setattr(front, "WRITE_STALL_SEC", 0.3)
    served.hub.queue_bytes = 1 << 30                 # so the front, not the hub's queue, cuts it
    before = front.refused_count("stalled_reader")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", served.port))
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")        # and never read
    wait_for(lambda: wanted(bus.pub, FEATURES), 5, "subscription")
    big = {"symbol": SYM, "ts_ns": 1, "pad": "x" * (1 << 20)}
    deadline = time.monotonic() + 20
    while front.refused_count("stalled_reader") == before:
        assert time.monotonic() < deadline, "the front to cut the stalled reader"
        bus.pub.publish(FEATURES, dict(big))
        time.sleep(0.05)
    wait_for(lambda: not served.hub.clients, 5, "the cut stream to leave the hub")
    assert front.refused_count("stalled_reader") - before == 1
    s.close()


def test_a_client_that_does_not_read_is_dropped_and_counted_the_others_get_everything(bus):
    """The hub itself on a real bus: one client never takes from its queue."""
    queue_bytes = 64 * 1024
    edge = edge_doc("15m", 1_723_161_256_000_000_000, market_doc("15m", 1_723_161_000, 900))
    one = len(frame("edge", {**edge, "seq": 100, "boot": bus.pub.boot, "v": 3, "pub_ts_ns": time.time_ns()}))
    n_msgs = 2 * queue_bytes // one + 2       # well over the stuck client's queue

    async def run():
        hub = push.Hub(bus.xpub, push.stream_prefixes(SYM), lambda: {"hi": 1}, lambda: {"ok": 1},
                       queue_bytes=queue_bytes, interval_ms=20, health_ms=60_000)
        stuck, reader = hub.join(), hub.join()
        got = []

        async def read():
            async for f in hub.events(reader):
                got.append(f.serialize())
        task = asyncio.create_task(read())
        deadline = time.monotonic() + 5
        while not wanted(bus.pub, EDGE_15M):
            assert time.monotonic() < deadline, "subscription"
            await asyncio.sleep(0.01)
        before = push.dropped_count("queue_full")
        sent = []
        for k in range(n_msgs):
            d = {**edge, "ts_ns": edge["ts_ns"] + k}
            bus.pub.publish(EDGE_15M, d)
            sent.append(d)
            # one message per flush, nothing coalesced: the next is published once this one arrived
            deadline = time.monotonic() + 5
            while frame("edge", d) not in b"".join(got[-3:]):
                assert time.monotonic() < deadline, f"the reader to get message {k}"
                await asyncio.sleep(0.002)
        deadline = time.monotonic() + 5
        while frame("edge", sent[-1]) not in b"".join(got):
            assert time.monotonic() < deadline, "the reader to get the last message"
            await asyncio.sleep(0.01)
        body = b"".join(got)
        assert stuck.closed == "queue_full" and stuck not in hub.clients
        assert push.dropped_count("queue_full") - before == 1
        assert all(frame("edge", d) in body for d in sent)          # the reader lost nothing
        assert body.startswith(b"retry: 2000\nevent: hello\ndata: {\"hi\":1}\n\n")
        assert reader in hub.clients and hub.sock is not None
        hub.close()
        await asyncio.wait_for(task, 2)
        assert hub.sock is None

    asyncio.run(run())


def test_coalescer_is_pure_latest_per_topic_in_first_change_order():
    co = push.Coalescer()
    stamp = {"seq": 1, "boot": 7, "v": 3}
    assert co.offer([b"bar.5s.futures.BTCUSDT", orjson.dumps({**stamp, "close": 1.0})]) is None
    assert co.offer([EDGE_15M.encode(), orjson.dumps({**stamp, "x": 1})]) is None
    assert co.offer([b"bar.5s.futures.BTCUSDT", orjson.dumps({**stamp, "seq": 2, "close": 2.0})]) is None
    assert co.offer([EDGE_15M.encode(), b'{"seq": 2,\n "boot": 7, "v": 3}']) is None    # a line break: re-encoded
    assert co.offer([b"tick.futures.trade.BTCUSDT", orjson.dumps(stamp)]) == "unknown_topic"
    assert co.flush() == [("bar.5s.futures.BTCUSDT", b'event: bar\ndata: {"seq":2,"boot":7,"v":3,"close":2.0}\n\n'),
                          (EDGE_15M, b'event: edge\ndata: {"seq":2,"boot":7,"v":3}\n\n')]
    assert co.flush() == [] and co.received == 5 and co.skipped == {"unknown_topic": 1}


def test_health_doc_keeps_what_the_page_shows():
    actors = {"feed_futures": {"pid": 1, "running": True, "alive": True, "heartbeat_age_ms": 12.5,
                               "uptime_s": 3600.25, "counters": {"x": 1}, "streams": {"trade": {"written": 3, "age_ms": 4.0,
                                                                           "fresh": True}}},
              "compute": {"pid": 2, "running": False, "alive": False, "heartbeat_age_ms": 9000.0,
                          "uptime_s": 41.5}}
    q = {"mode": "DEGRADED", "reasons": ["spot.trade: no data"], "tick_overruns": 0}
    assert push.health_doc(actors, q, 5) == {
        "ts_ns": 5, "quality": {"mode": "DEGRADED", "reasons": ["spot.trade: no data"]},
        "actors": {"feed_futures": {"alive": True, "running": True, "heartbeat_age_ms": 12.5,
                                    "uptime_s": 3600.25, "streams": {"trade": {"age_ms": 4.0, "fresh": True}}},
                   "compute": {"alive": False, "running": False, "heartbeat_age_ms": 9000.0, "uptime_s": 41.5,
                               "streams": {}}}}


# --- under the real front: gunicorn + ApiWorker, as actors.api.main execs it -------------------------
N_STREAMS = 20


def _get_ms(port: int, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), (time.perf_counter() - t0) * 1e3


def test_streams_under_gunicorn_outlive_the_timeouts_and_end_within_the_graceful_time(bus, tmp_path):
    prefix = "ws" + uuid.uuid4().hex[:8]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZMQ_", "SHM_", "HTTP_", "API_"))}
    env.update(SHM_PREFIX=prefix, HTTP_PORT=str(port), ZMQ_PUB_URL=bus.xpub, API_WORKERS="1",
               PYTHONUNBUFFERED="1")
    log = open(tmp_path / "api.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from config.settings import load_settings; "
                             "from actors.api import main; main(load_settings())"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    streams = []
    try:
        wait_for(lambda: _get_ms(port, "/openapi.json")[0] == 200, 30, "gunicorn to serve")
        streams = [Sse(port) for _ in range(N_STREAMS)]
        assert all(s.status == 200 for s in streams)
        wait_for(lambda: wanted(bus.pub, EDGE_15M), 5, "the worker's hub to subscribe")
        t_open = time.monotonic()
        worst_ms, n, all_ms = 0.0, 0, []
        m = market_doc("15m", 1_723_161_000, 900)
        # past the request timeout and the keep-alive timeout, the streams idle-read meanwhile
        while time.monotonic() - t_open < max(front.REQUEST_TIMEOUT_SEC, api.KEEP_ALIVE_SEC) + 1.5:
            status, ms = _get_ms(port, "/health")
            assert status in (200, 503)       # (no actor heartbeats here: unhealthy, but answered)
            worst_ms, n = max(worst_ms, ms), n + 1
            all_ms.append(ms)
            for s in streams:
                s.pump(0.001)
            time.sleep(0.1)
        # answered at once while the streams are open (a stalled worker would take seconds); the
        # worst case has a loaded CI machine's margin, the tail itself is the bench's
        assert sorted(all_ms)[len(all_ms) // 2] < 50 and worst_ms < 1000, (worst_ms, sorted(all_ms)[-5:])
        last = edge_doc("15m", 1_723_161_256_000_000_000, m)
        bus.pub.publish(EDGE_15M, last)
        for s in streams:
            s.until(lambda x: frame("edge", last) in x.body, 5, "the edge doc on every stream")
            assert not s.eof and len(s.of("health")) >= 5
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)        # the master, as supervisord stops it
        proc.wait(timeout=front.GRACEFUL_SEC + 5)
        stop_s = time.monotonic() - t0
        for s in streams:
            s.until(lambda x: x.eof, 2, "the stream to end")
        assert stop_s < front.GRACEFUL_SEC, stop_s
        text = (tmp_path / "api.log").read_text(errors="replace")
        assert "Exception in ASGI application" not in text and "Cancel" not in text, text
        print(f"\n{N_STREAMS} streams: /health worst {worst_ms:.1f} ms over {n} requests; stop {stop_s:.2f} s")
    finally:
        for s in streams:
            s.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
        unlink_prefix("/dev/shm", prefix)
