"""`python run.py bench polyedge`: how long a Polymarket book update takes to reach a decision.

The whole system runs (`run.py --sim`, TICK_MS as configured, default 100). A bus subscriber keeps
every `tick.poly.book.<series>.<token>` and `edge.<SYMBOL>.<series>` message with its arrival time,
and a REST poller asks `/latest/edge?series=<s>` back to back. For each book update (series, token,
window, update_id, received by feed_poly at `ts_recv_ns`):
- baseline: the book tick itself reaching the subscriber (feed receive -> ring -> bus);
- edge topic: the first edge document whose `inputs.books.<token>.update_id` is at least it;
- REST: the first /latest/edge answer that has it.
Latency = arrival (this host's CLOCK_REALTIME) − ts_recv_ns. The edge paths wait for compute's next
tick, so their floor is the bus path and their p50 about half a tick above it.
"""
from __future__ import annotations

import bisect
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import zmq

from ipc import names

SYMBOL = "BTCUSDT"


def _pcts_ms(lat_ns: list[int]) -> dict:
    a = np.asarray(lat_ns, dtype=np.float64) / 1e6
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max())}


class _Tap:
    """Every book tick and edge document with its arrival wall time (a thread; SUB socket)."""

    def __init__(self, url: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        for p in (names.POLY_TICK_PREFIX + "book.", names.EDGE_PREFIX + SYMBOL):
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())
        self.sock.connect(url)
        self.books: list[tuple[int, str, str, int, int, int]] = []   # arrival, series, token, window, uid, recv
        self.edges: list[tuple[int, dict]] = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(100):
                continue
            topic, payload = self.sock.recv_multipart()
            now = time.time_ns()
            t = topic.decode()
            m = orjson.loads(payload)
            p = names.parse_poly_topic(t)
            if p is not None:
                self.books.append((now, p[1], p[2], m["window_start_ns"], m["update_id"], m["ts_recv_ns"]))
            elif names.parse_edge_topic(t) is not None:
                self.edges.append((now, m))

    def close(self) -> None:
        self.stop.set()
        self.t.join(5)
        self.sock.close(0)
        self.ctx.term()


def _rest_poller(base: str, series: tuple[str, ...], out: list, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=5) as c:
        while not stop.is_set():
            for s in series:
                try:
                    r = c.get("/latest/edge", params={"series": s})
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    out.append((time.time_ns(), s, r.json()))


def _first_seen(book: tuple, arrivals: list[tuple[int, str, int, dict]], i: int,
                horizon_ns: int = 5_000_000_000) -> int | None:
    """Arrival time of the first edge doc from index i on (time-ordered) of the book's series and
    window that includes the update; None if none within horizon_ns of its receipt."""
    _, series, token, window, uid, recv = book
    for t, s, start, books in arrivals[i:]:
        if t - recv > horizon_ns:
            return None
        if s != series or start != window:
            continue
        got = (books.get(token) or {}).get("update_id")
        if got is not None and got >= uid:
            return t
    return None


def _new_data(books: list[tuple]) -> list[tuple]:
    """The book records that carry data newer than any before them of their book: a warm book
    written at a rollover or a REST correction keeps the stream's last receive time (its age goes
    on), so it is not a new update to time."""
    last: dict[tuple[str, str], int] = {}
    out = []
    for b in books:
        if b[5] > last.get((b[1], b[2]), 0):
            out.append(b)
            last[(b[1], b[2])] = b[5]
    return out


def _index(docs: list[tuple[int, str, dict]]) -> list[tuple[int, str, int, dict]]:
    out = []
    for t, s, d in docs:
        if d.get("window_start_ns") is None:
            continue
        out.append((t, s, d["window_start_ns"], (d.get("inputs") or {}).get("books") or {}))
    out.sort(key=lambda x: x[0])
    return out


def _latencies(books: list[tuple], arrivals: list[tuple[int, str, int, dict]]) -> list[int]:
    times = [a[0] for a in arrivals]
    lat = []
    for b in books:
        # only docs that arrived after the update was received can include it
        t = _first_seen(b, arrivals, bisect.bisect_left(times, b[5]))
        if t is not None:
            lat.append(t - b[5])
    return lat


def bench_polyedge(seconds: float = 30.0, tick_ms: int = 100, windows: str = "5m,15m") -> dict:
    from tests.support.system import System
    from tests.support.wait import wait_for
    tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-polyedge-"))
    series = tuple(windows.split(","))
    system = System(tmp)
    system.start(("--sim",), TICK_MS=str(tick_ms), POLYMARKET_WINDOWS=windows, LOG_LEVEL="WARNING")
    tap = None
    rest: list = []
    stop = threading.Event()
    try:
        tap = _Tap(system.pub_url)
        wait_for(lambda: any(d.get("window_start_ns") for _, d in tap.edges), 60, "a first edge document")
        poller = threading.Thread(target=_rest_poller, args=(system.http, series, rest, stop), daemon=True)
        t0 = time.time_ns()
        poller.start()
        time.sleep(seconds)        # the measuring window itself (a benchmark, not a test)
        stop.set()
        poller.join(10)
        books = _new_data([b for b in tap.books if b[5] >= t0 + 1_000_000_000
                           and b[0] <= time.time_ns() - 1_000_000_000])
        edges = _index([(t, d["series"], d) for t, d in tap.edges])
        rest_docs = _index([(t, s, d) for t, s, d in rest])
    finally:
        stop.set()
        if tap is not None:
            tap.close()
        system.stop_checked()
    return {"tick_ms": tick_ms, "series": list(series), "seconds": seconds, "book_updates": len(books),
            "bus": _pcts_ms([b[0] - b[5] for b in books]),
            "edge_topic": _pcts_ms(_latencies(books, edges)),
            "rest": _pcts_ms(_latencies(books, rest_docs)), "rest_answers": len(rest)}
