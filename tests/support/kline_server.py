"""A tiny Binance klines REST server for tests: real HTTP on 127.0.0.1, Binance's exact row format.

It serves `GET /fapi/v1/klines` and `GET /api/v3/klines` (symbol, interval, limit, startTime,
endTime, with Binance's semantics) from a deterministic synthetic market on a clock the test
controls, reports the used weight in `X-MBX-USED-WEIGHT-1M` (spot: lower-case), and can be told to
answer the next requests with faults: a status (429/418/5xx/4xx) with headers and a Binance error
body, or a delay before the normal answer (a slow server, for timeouts). Every request is logged
with its monotonic arrival and reply times.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from actors.venues.binance.rest import KLINES_PATH, LIMIT_CAP, klines_weight
from ipc.names import tf_sec as tf_seconds

ERROR_BODIES = {
    429: {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests "
                               "per minute. Please use the websocket for live updates to avoid "
                               "polling the API."},
    418: {"code": -1003, "msg": "Way too much request weight used; IP banned until {until}. Please use "
                               "the websocket for live updates to avoid bans."},
    500: {"code": -1000, "msg": "An unknown error occured while processing the request."},
    503: {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
}


class FakeClock:
    """Wall-clock milliseconds the test sets (the actor's and the server's 'now')."""

    def __init__(self, ms: int):
        self.ms = ms

    def now_ns(self) -> int:
        return self.ms * 1_000_000

    def __call__(self) -> int:
        return self.ms


def kline_row(open_ms: int, tf_ms: int) -> list:
    """One row exactly as Binance sends it; values are a deterministic function of the open time."""
    i = open_ms // tf_ms
    base = 60000 + (i % 997) * 1.5 + tf_ms / 60000
    o = base
    c = base + ((i * 7) % 11 - 5) * 0.1
    h = max(o, c) + 1.25
    lo = min(o, c) - 0.75
    v = 10 + (i % 13) * 0.125
    tb = v / 2
    return [open_ms, f"{o:.8f}", f"{h:.8f}", f"{lo:.8f}", f"{c:.8f}", f"{v:.8f}",
            open_ms + tf_ms - 1, f"{v * base:.8f}", int(i % 500 + 1), f"{tb:.8f}",
            f"{tb * base:.8f}", "0"]


@dataclass
class Fault:
    status: int | None = None          # None: answer normally (after `delay`)
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0                 # seconds before answering
    path: str | None = None            # only for requests to this path (None: any)


@dataclass
class Req:
    path: str
    query: dict
    t_arrive: float                    # monotonic
    t_reply: float = 0.0               # monotonic, just before the status line is sent
    w_arrive: float = 0.0              # wall clock (epoch s) at arrival
    status: int = 0
    rows: int = 0


class KlineServer:
    def __init__(self, clock=None, symbols=("BTCUSDT",)):
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.symbols = set(symbols)
        self.faults: deque[Fault] = deque()
        self.log: list[Req] = []
        self.weight = 0                 # cumulative weight reported in the header
        self.weight_override: int | None = None
        self._lock = threading.Lock()
        self.release = threading.Event()     # ends every pending delay (at close)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> "KlineServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- test controls ------------------------------------------------------------------------
    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def requests(self, path_prefix: str = "") -> list[Req]:
        with self._lock:
            return [r for r in self.log if r.path.startswith(path_prefix)]

    def rows(self, tf: str, first_open_ms: int, last_open_ms: int) -> list[list]:
        tf_ms = tf_seconds(tf) * 1000
        return [kline_row(t, tf_ms) for t in range(first_open_ms, last_open_ms + 1, tf_ms)]

    # --- serving ------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.path is None or f.path == path:
                    self.faults.remove(f)
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        req = Req(parts.path, query, time.monotonic(), w_arrive=time.time())
        with self._lock:
            self.log.append(req)
        fault = self._take_fault(parts.path)
        if fault is not None and fault.delay:
            self.release.wait(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body
            if body is None:
                doc = dict(ERROR_BODIES.get(fault.status, {"code": -1000, "msg": "error"}))
                doc["msg"] = doc["msg"].replace("{until}", str(int(time.time() * 1000) + 60_000))
                body = orjson.dumps(doc)
            self._reply(h, req, fault.status, body, fault.headers)
            return
        status, body, rows = self._klines(parts.path, query)
        req.rows = rows
        self._reply(h, req, status, body, {})

    def _reply(self, h, req: Req, status: int, body: bytes, headers: dict) -> None:
        spot = req.path == KLINES_PATH["spot"]
        with self._lock:
            w = self.weight if self.weight_override is None else self.weight_override
        req.status = status
        req.t_reply = time.monotonic()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json;charset=UTF-8")
            h.send_header("Content-Length", str(len(body)))
            h.send_header("x-mbx-used-weight-1m" if spot else "X-MBX-USED-WEIGHT-1M", str(w))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass        # the client gave up (timeout)

    def _klines(self, path: str, q: dict) -> tuple[int, bytes, int]:
        venue = {v: k for k, v in KLINES_PATH.items()}.get(path)
        if venue is None:
            return 404, b'{"code":-1,"msg":"not found"}', 0
        if q.get("symbol") not in self.symbols:
            return 400, b'{"code":-1121,"msg":"Invalid symbol."}', 0
        try:
            tf_ms = tf_seconds(q.get("interval", "")) * 1000
        except ValueError:
            return 400, b'{"code":-1120,"msg":"Invalid interval."}', 0
        limit = int(q.get("limit", 500))
        if not 1 <= limit <= LIMIT_CAP[venue]:
            return 400, b'{"code":-1130,"msg":"Data sent for parameter \'limit\' is not valid."}', 0
        with self._lock:
            self.weight += klines_weight(venue, limit)
        now = self.clock()
        latest = now // tf_ms * tf_ms
        start, end = q.get("startTime"), q.get("endTime")
        if start is not None:
            first = -(-int(start) // tf_ms) * tf_ms
            last = first + (limit - 1) * tf_ms
            if end is not None:
                last = min(last, int(end) // tf_ms * tf_ms)
            last = min(last, latest)
        else:
            last = latest if end is None else min(latest, int(end) // tf_ms * tf_ms)
            first = last - (limit - 1) * tf_ms
        rows = [kline_row(t, tf_ms) for t in range(first, last + 1, tf_ms)]
        return 200, orjson.dumps(rows), len(rows)
