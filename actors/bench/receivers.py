"""Receiver processes for the benchmarks; each records (key, recv_ns) and saves a .npy on exit.

  python -m actors.bench.receivers bare URL OUT.npy SECONDS    bare websockets client (orjson parse)
  python -m actors.bench.receivers count URL N                 bare loop throughput over N frames
  python -m actors.bench.receivers count-picows URL N          the same over a bare picows client
  python -m actors.bench.receivers zmq  URL TOPIC OUT.npy SECONDS   ZeroMQ subscriber of tick topics
      (OUT "-": save nothing)
  python -m actors.bench.receivers zmq-bin URL TOPIC OUT.npy SECONDS  the typed client (ipc.client)
      on a binary topic (`bin.tick.…`): every batch decoded into numpy records
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


async def count_picows(url: str, n: int) -> None:
    """`count` over picows: a listener parses each frame with orjson in picows' frame callback
    (the payload as a memoryview, no copy); frames/s from the first to the n-th."""
    from picows import WSListener, WSMsgType, ws_connect
    done = asyncio.get_running_loop().create_future()

    class Count(WSListener):
        seen, t0 = 0, 0.0

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type is not WSMsgType.TEXT and frame.msg_type is not WSMsgType.BINARY:
                return
            orjson.loads(frame.get_payload_as_memoryview())
            self.seen += 1
            if self.seen == 1:
                self.t0 = time.perf_counter()
            elif self.seen == n and not done.done():
                done.set_result(time.perf_counter() - self.t0)
                transport.disconnect()

        def on_ws_disconnected(self, transport) -> None:
            if not done.done():
                done.set_exception(ConnectionError(f"closed after {self.seen} of {n} frames"))

    await ws_connect(Count, url, max_frame_size=1 << 22)
    dt = await done
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
    if out != "-":                      # "-": count only
        np.save(out, np.array([keys, ts], dtype=np.int64))
    s.close()
    ctx.term()


def zmq_bin(url: str, topic: str, out: str, seconds: float) -> None:
    """The typed client on a binary record topic: each batch's trade ids and one receive time."""
    from ipc.client import Client, Records
    keys, ts = [], []
    end = time.monotonic() + seconds
    with Client(url, (topic,), rcvhwm=1_000_000) as c:
        c.sub.sock.setsockopt(__import__("zmq").LINGER, 0)
        while time.monotonic() < end:
            m = c.recv(200)
            if m is None or not isinstance(m.model, Records):
                continue
            now = time.time_ns()
            recs = m.model.records
            data = recs[recs["flags"] == 0]
            keys.append(data["trade_id"].astype(np.int64))
            ts.append(np.full(len(data), now, dtype=np.int64))
    if out != "-":                      # "-": count only
        np.save(out, np.array([np.concatenate(keys) if keys else np.zeros(0, np.int64),
                               np.concatenate(ts) if ts else np.zeros(0, np.int64)], dtype=np.int64))


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "bare":
        import uvloop
        uvloop.run(bare(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    elif kind == "count":
        import uvloop
        uvloop.run(count(sys.argv[2], int(sys.argv[3])))
    elif kind == "count-picows":
        import uvloop
        uvloop.run(count_picows(sys.argv[2], int(sys.argv[3])))
    elif kind == "zmq-bin":
        zmq_bin(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        zmq_sub(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
