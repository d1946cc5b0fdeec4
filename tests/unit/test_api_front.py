"""The API's HTTP front (actors/obs/uvicorn_front.py) on a real socket: uvicorn with the guarded
protocol serving the real app (create_app over real shared memory) on 127.0.0.1, in a thread.

Checked: idle and half-sent connections cost no worker (a GET is answered at once while they are
open) and are closed after the request timeout (a JSON 408 for a half-sent head, nothing for an
idle connect), counted by reason; the head limits answer JSON 414/431 and bad HTTP a JSON 400
(uvicorn's own is text/plain); over capacity a JSON 503; an answer sent before the body was read
closes the connection; keep-alive still serves several requests on one connection."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import orjson
import pytest
import uvicorn

from actors import api
from actors.obs import uvicorn_front as front
from config.settings import load_settings
from ipc.state import StateBlock
from ipc import names
from tests.support.ports import free_port
from tests.support.wait import wait_for

TIMEOUT_SEC = 0.6      # the front's request timeout in these tests (5 s in the system)


class Server:
    """uvicorn.Server with the guarded protocol on a free port, in a thread with its own loop."""

    def __init__(self, app, limit_concurrency: int | None = 64):
        self.port = free_port()
        self.config = uvicorn.Config(app, host="127.0.0.1", port=self.port, http=front.GuardedHttpProtocol,
                                     ws="none", lifespan="off", access_log=False, log_level="warning",
                                     limit_concurrency=limit_concurrency, timeout_keep_alive=2, loop="asyncio")
        self.server = uvicorn.Server(self.config)
        self.th = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.th.start()
        wait_for(lambda: self.server.started, 10, "uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.th.join(10)


@pytest.fixture
def server(env, monkeypatch):
    monkeypatch.setattr(front, "REQUEST_TIMEOUT_SEC", TIMEOUT_SEC)
    url, prefix = env
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, api_token="s3cret-token-0123456789")
    StateBlock(s.ipc.shm_dir, prefix, names.FEATURES_BLOCK, writer=True).write({"ts_ns": 1, "venues": {}})
    srv = Server(api.create_app(api.ShmView(s), s))
    try:
        yield srv
    finally:
        srv.stop()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_answer(s: socket.socket, close_wait: float = 1.0) -> tuple[int | None, dict, bytes, bool]:
    """One response: (status, headers, body, closed after it). Reads the body by Content-Length,
    then whether the server closed (within `close_wait` s)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return (None, {}, b"", True) if not buf else (_parse(buf)[0], _parse(buf)[1], b"", True)
        buf += chunk
    status, headers, body = _parse(buf)
    need = int(headers.get("content-length", 0))
    while len(body) < need:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    s.settimeout(close_wait)
    try:
        closed = s.recv(1) == b""
    except (socket.timeout, TimeoutError):
        closed = False
    except ConnectionResetError:
        closed = True
    return status, headers, body, closed


def _parse(buf: bytes):
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def ask(port: int, raw: bytes):
    with connect(port) as s:
        s.sendall(raw)
        return read_answer(s)


def counts() -> dict[str, float]:
    return {r: front.refused_count(r) for r in front.REFUSAL_REASONS}


def test_idle_and_half_sent_connections_cost_no_worker_and_are_closed(server):
    c0 = counts()
    half = [connect(server.port) for _ in range(8)]
    for s in half:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")          # no blank line: never complete
    idle = [connect(server.port) for _ in range(8)]                  # connect and say nothing
    t0 = time.monotonic()
    status, _, body, _ = ask(server.port, b"GET /latest/features HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answered_ms = (time.monotonic() - t0) * 1e3
    assert status == 200 and orjson.loads(body) == {"ts_ns": 1, "venues": {}}
    assert answered_ms < 200, answered_ms
    for s in half:          # a JSON 408, then closed
        st, h, b, closed = read_answer(s)
        assert (st, h["content-type"], h["connection"], closed) == (408, "application/json", "close", True)
        assert orjson.loads(b) == {"title": "request timeout",
                                   "description": f"the request was not complete within {TIMEOUT_SEC:g} s"}
    for s in idle:          # closed without a word
        assert read_answer(s) == (None, {}, b"", True)
    elapsed = time.monotonic() - t0
    assert TIMEOUT_SEC * 0.9 <= elapsed < TIMEOUT_SEC + 3, elapsed
    c1 = counts()
    assert c1["slow_request"] - c0["slow_request"] == 8
    assert c1["idle_connection"] - c0["idle_connection"] == 8
    for s in half + idle:
        s.close()


def test_a_slow_body_is_closed_and_keep_alive_serves_in_time(server):
    c0 = counts()
    with connect(server.port) as s:        # two requests on one connection, then a stalled body
        for _ in range(2):
            s.sendall(b"GET /latest/features HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, _, closed = read_answer(s, close_wait=0.1)
            assert (st, closed) == (200, False)
        s.sendall(b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer s3cret-token-0123456789\r\nContent-Length: 10\r\n\r\n{\"a")
        t0 = time.monotonic()
        s.settimeout(TIMEOUT_SEC + 3)
        assert s.recv(65536) == b""      # the app never got its body: closed, no answer in its name
        assert time.monotonic() - t0 < TIMEOUT_SEC + 2
    assert counts()["slow_request"] - c0["slow_request"] == 1


REFUSALS = [
    ("garbage", b"GARBAGE\r\n\r\n", 400, "bad_http"),
    ("binary", bytes(range(256)) + b"\r\n\r\n", 400, "bad_http"),
    ("bad version", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_http"),
    ("made-up method", b"FROB /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_http"),
    ("length and chunked", b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n{}", 400, "bad_http"),
    ("url over 4094", b"GET /health?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "url_too_long"),
    ("101 headers", b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(101)) + b"\r\n",
     431, "too_many_headers"),
    ("header over 8190", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "header_too_large"),
    ("head over 64 KiB", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70000, 431, "head_too_large"),
    ("declared body over the limit", b"POST /x HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413, "body_too_large"),
]


@pytest.mark.parametrize("raw,status,kind", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals_are_json_and_counted(server, raw, status, kind):
    c0 = counts()
    st, h, body, closed = ask(server.port, raw)
    assert (st, h.get("content-type"), h.get("connection"), closed) == (status, "application/json", "close", True)
    doc = orjson.loads(body)
    assert set(doc) == {"title", "description"} and isinstance(doc["description"], str)
    assert doc["title"] == {400: "bad request", 413: "body too large", 414: "uri too long",
                            431: "request header fields too large"}[status]
    c1 = counts()
    assert {k: c1[k] - c0[k] for k in c1 if c1[k] != c0[k]} == {kind: 1}


def test_titles_of_the_front_refusals():
    raw = front.json_response(431, "Request Header Fields Too Large", "more than 100 header fields")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"HTTP/1.1 431 Request Header Fields Too Large", b"content-type: application/json",
                                   b"content-length: %d" % len(body), b"connection: close"]
    assert orjson.loads(body) == {"title": "request header fields too large",
                                  "description": "more than 100 header fields"}


def test_declared_body_over_the_limit_is_refused_at_the_head(server):
    c0 = counts()
    st, h, body, closed = ask(server.port, b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    assert (st, h["content-type"], closed) == (413, "application/json", True)
    assert orjson.loads(body) == {"title": "body too large", "description": f"at most {api.MAX_BODY_BYTES} bytes"}
    assert counts()["body_too_large"] - c0["body_too_large"] == 1


def test_answer_before_the_body_was_read_closes(server):
    # a wrong token is refused on the first body chunk; the rest of the body is never read as a request
    with connect(server.port) as s:
        s.sendall(b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer nope\r\nContent-Length: 4000\r\n\r\n" + b" " * 100)
        st, h, body, closed = read_answer(s)
    assert (st, h["content-type"], closed) == (401, "application/json", True)
    assert orjson.loads(body)["title"] == "bad token"


def test_over_capacity_is_a_json_503(env, monkeypatch):
    url, prefix = env
    s = load_settings(shm_prefix=prefix, zmq_control_url=url)
    srv = Server(api.create_app(api.ShmView(s), s), limit_concurrency=2)
    try:
        held = [connect(srv.port) for _ in range(2)]
        wait_for(lambda: len(srv.server.server_state.connections) >= 2, 5, "two connections held")
        c0 = counts()
        st, h, body, closed = ask(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (st, h["content-type"], h["retry-after"], closed) == (503, "application/json", "1", True)
        assert orjson.loads(body) == {"title": "over capacity",
                                      "description": "too many open connections on this worker; retry"}
        assert counts()["over_capacity"] - c0["over_capacity"] == 1
        for x in held:
            x.close()
    finally:
        srv.stop()


def test_a_slow_control_round_trip_does_not_block_the_worker(server, monkeypatch):
    """compute answering a control request late (here 1 s) delays that request only: the round
    trip runs in a thread, and the worker's event loop serves other connections meanwhile."""
    from ipc import control
    calls = []

    def slow_request(url, token, doc, timeout_ms):
        calls.append((token, doc, timeout_ms))
        time.sleep(1.0)
        return {"ok": True, "anchor_ns": 42}

    monkeypatch.setattr(control, "request", slow_request)
    with connect(server.port) as post:
        post.sendall(b"POST /control/anchor/reset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer s3cret-token-0123456789\r\nContent-Length: 17\r\n\r\n"
                     b'{"anchor_ns": 42}')
        wait_for(lambda: calls, 5, "the control call to start")
        t0 = time.monotonic()
        st, _, body, _ = ask(server.port, b"GET /latest/features HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert st == 200 and (time.monotonic() - t0) < 0.5
        st, _, body, _ = read_answer(post, close_wait=0.1)
    assert (st, orjson.loads(body)) == (200, {"ok": True, "anchor_ns": 42})
    assert calls == [("s3cret-token-0123456789", {"cmd": "anchor_reset", "anchor_ns": 42}, api.CONTROL_TIMEOUT_MS)]


async def tiny_app(scope, receive, send):
    """An ASGI app for the worker-process test below (gunicorn imports it from this module)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_workers_exit_when_their_master_is_killed(tmp_path):
    """kill -9 of the gunicorn master: its uvicorn worker notices within PARENT_CHECK_SEC and exits
    (an orphan would keep serving the port, and the restarted master could not bind it)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path
    from tests.drills.tools import children, pid_alive
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    p = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                          "--worker-class", api.WORKER_CLASS, "--worker-tmp-dir", str(tmp_path),
                          "--log-level", "warning", "tests.unit.test_api_front:tiny_app"],
                         cwd=root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ask(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[2] == b"ok", 20,
                 "the worker to answer")
        workers = children(p.pid)
        assert len(workers) == 1
        os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
        t0 = time.monotonic()
        wait_for(lambda: not any(pid_alive(w) for w in workers), 5, "the orphaned worker to exit")
        assert time.monotonic() - t0 < front.PARENT_CHECK_SEC + front.GRACEFUL_SEC + 1
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
