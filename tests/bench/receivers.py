"""Receiver processes for the benchmarks; each records (key, recv_ns) and saves a .npy on exit.

  python -m tests.bench.receivers bare URL OUT.npy SECONDS    bare websockets client (orjson parse)
  python -m tests.bench.receivers count URL N                 bare loop throughput over N frames
  python -m tests.bench.receivers zmq  URL TOPIC OUT.npy SECONDS   ZeroMQ subscriber of tick topics
"""
from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import orjson


async def bare(url: str, out: str, seconds: float) -> None:
    from websockets.asyncio.client import connect
    keys, ts = [], []
    end = time.monotonic() + seconds
    async with connect(url, ping_interval=None, max_size=1 << 22, compression=None) as ws:
        while time.monotonic() < end:
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), 1.0)
            except TimeoutError:
                continue
            now = time.time_ns()
            d = orjson.loads(frame)["data"]
            keys.append(d["a"])
            ts.append(now)
    np.save(out, np.array([keys, ts], dtype=np.int64))


async def count(url: str, n: int) -> None:
    """Bare loop: receive and parse n frames; print frames/s from the first to the last."""
    from websockets.asyncio.client import connect
    async with connect(url, ping_interval=None, max_size=1 << 22, compression=None) as ws:
        frame = await ws.recv(decode=False)
        orjson.loads(frame)
        t0 = time.perf_counter()
        for _ in range(n - 1):
            frame = await ws.recv(decode=False)
            orjson.loads(frame)
        dt = time.perf_counter() - t0
    print(orjson.dumps({"frames": n, "seconds": dt, "rate": (n - 1) / dt}).decode())


def zmq_sub(url: str, topic: str, out: str, seconds: float) -> None:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 1_000_000)
    s.connect(url)
    s.setsockopt(zmq.SUBSCRIBE, topic.encode())
    keys, ts = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not s.poll(200):
            continue
        _, payload = s.recv_multipart()
        now = time.time_ns()
        m = orjson.loads(payload)
        if "trade_id" in m:
            keys.append(m["trade_id"])
            ts.append(now)
    np.save(out, np.array([keys, ts], dtype=np.int64))
    s.close()
    ctx.term()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "bare":
        import uvloop
        uvloop.run(bare(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    elif kind == "count":
        import uvloop
        uvloop.run(count(sys.argv[2], int(sys.argv[3])))
    else:
        zmq_sub(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
