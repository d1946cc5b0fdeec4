"""A small HTTP/1.1 load generator for the REST benchmark: N concurrent connections, closed loop.

Each connection sends one GET, reads the whole response (status line, headers, Content-Length
body), records the latency and sends the next; it keeps the connection alive unless the server
answers `Connection: close` (gunicorn's sync worker always does), in which case it reconnects and
the connect time counts in that request's latency, as it would for any client. It is a raw
asyncio Protocol on uvloop (no HTTP library), so one process drives well over 10,000 requests/s
and leaves most of a core to the server; its own CPU time is reported so the reader sees how the
two cores were shared.

No pip-installable tool fits: wrk, hey and oha are not on PyPI, and locust's Python clients cost
more CPU per request than the server under test.

  python -m actors.bench.loadgen URL [--connections N] [--seconds S] [--warmup S]

prints `{"window": "start"}` and `{"window": "end"}` lines when the measuring window opens and
closes, then one JSON object: requests, rps, p50/p90/p99/p99.9/max latency (ms), errors by kind, the
status codes seen, connections opened, response bytes, and this process's CPU seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
from urllib.parse import urlsplit

import numpy as np
import orjson


class _Conn(asyncio.Protocol):
    """One connection: parses responses as they arrive and resolves `fut` with (status, close)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1              # total bytes of the response in progress, once its headers are in
        self.status = 0
        self.close = False
        self.fut: asyncio.Future | None = None
        self.lost = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            lines = head.split(b"\r\n")
            self.status = int(lines[0].split(b" ", 2)[1])
            length, close = 0, lines[0].startswith(b"http/1.0")
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection":
                    close = v.strip() == b"close"
            self.close = close
            self.need = end + 4 + length
        if len(self.buf) >= self.need:
            extra = len(self.buf) - self.need
            del self.buf[:]
            self.need = -1
            fut, self.fut = self.fut, None
            if fut is not None and not fut.done():
                fut.set_result((self.status, self.close, extra))

    def connection_lost(self, exc) -> None:
        self.lost = True
        fut, self.fut = self.fut, None
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError(f"connection lost: {exc!r}"))


async def run(url: str, connections: int, seconds: float, warmup: float, timeout: float = 5.0,
              on_window=None) -> dict:
    """`on_window("start"|"end")` is called when the measuring window opens and closes (the bench
    samples the server's CPU time then)."""
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: tdc-bench\r\n"
           f"Accept: application/json\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    lat: list[int] = []
    errors: dict[str, int] = {}
    statuses: dict[int, int] = {}
    st = {"connects": 0, "bytes": 0, "measuring": False, "stop": False, "extra": 0}

    def err(kind: str) -> None:
        if st["measuring"]:
            errors[kind] = errors.get(kind, 0) + 1

    async def client() -> None:
        proto: _Conn | None = None
        while not st["stop"]:
            t0 = time.perf_counter_ns()
            try:
                if proto is None or proto.lost:
                    _, proto = await loop.create_connection(_Conn, host, port)
                    st["connects"] += 1
                proto.fut = fut = loop.create_future()
                proto.transport.write(req)
                status, close, extra = await fut
            except (OSError, ConnectionError) as exc:
                err(type(exc).__name__)
                if proto is not None and proto.transport is not None:
                    proto.transport.close()
                proto = None
                await asyncio.sleep(0.01)
                continue
            t1 = time.perf_counter_ns()
            if st["measuring"]:
                lat.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    err(f"http_{status}")
                st["extra"] += extra
            if close:
                proto.transport.close()
                proto = None

    # no per-request timeout (asyncio.wait_for costs a task per request): a request still
    # unanswered `timeout` s after the end of the run counts as a timeout error
    tasks = [loop.create_task(client()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    st["measuring"] = True
    cpu0, t0 = os.times(), time.perf_counter()
    if on_window:
        on_window("start")
    await asyncio.sleep(seconds)
    st["measuring"] = False
    dt = time.perf_counter() - t0
    cpu1 = os.times()
    if on_window:
        on_window("end")
    st["stop"] = True
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:              # a request still unanswered `timeout` s after the end
        t.cancel()
        errors["timeout"] = errors.get("timeout", 0) + 1
    for t in done:
        if t.exception() is not None:
            errors[type(t.exception()).__name__] = errors.get(type(t.exception()).__name__, 0) + 1
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    a = np.array(lat, dtype=np.int64) / 1e6 if lat else np.zeros(1)
    out = {"url": url, "connections": connections, "seconds": dt, "requests": len(lat),
           "rps": len(lat) / dt, "errors": sum(errors.values()), "error_kinds": errors,
           "statuses": {str(k): v for k, v in statuses.items()}, "connects": st["connects"],
           "pipelined_bytes": st["extra"], "loadgen_cpu_s": cpu, "loadgen_cpu_pct": 100 * cpu / dt}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        out[f"{name}_ms"] = float(np.percentile(a, q))
    out["max_ms"] = float(a.max())
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m actors.bench.loadgen")
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args(argv)
    import uvloop

    def window(event: str) -> None:        # for a parent process that samples CPU in the window
        print(orjson.dumps({"window": event}).decode(), flush=True)

    print(orjson.dumps(uvloop.run(run(a.url, a.connections, a.seconds, a.warmup, on_window=window))).decode())


if __name__ == "__main__":
    main()
