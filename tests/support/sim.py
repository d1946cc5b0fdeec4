"""The simulator in-process for the sim's socket tests: both Binance venues on ports the OS picks,
WebSocket clients with short closing handshakes, deadline-bounded receives, and a background
reader that keeps every frame with its arrival time."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

import orjson
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from actors.sim.server import serve
from config.settings import Settings
from tests.support.wait import wait_for_async


@dataclass(frozen=True)
class Ports:
    futures: int
    spot: int

    @property
    def fhttp(self) -> str:
        return f"http://127.0.0.1:{self.futures}"

    @property
    def shttp(self) -> str:
        return f"http://127.0.0.1:{self.spot}"

    def fws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.futures}{path}"

    def sws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.spot}{path}"


@contextlib.asynccontextmanager
async def running_sim(rate: float = 400.0, **kw):
    """Both venues on ports the OS picks; yields Ports; stops the sim afterwards.

    `sim_*` keyword arguments go to Settings, the others to serve()."""
    settings_kw = {k: kw.pop(k) for k in list(kw) if k.startswith("sim_")}
    settings = Settings(sim_trade_rate=rate, **settings_kw)
    loop = asyncio.get_running_loop()
    ready, spot_ready = loop.create_future(), loop.create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, port=0, spot_port=0, ready=ready,
                                     spot_ready=spot_ready, stop=stop, **kw))
    done, _ = await asyncio.wait({spot_ready, task}, timeout=5,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready.done() and spot_ready.done(), "sim did not start"
    try:
        yield Ports(ready.result(), spot_ready.result())
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def connect(url: str, **kw):
    """A test client with a short closing handshake (a client that stopped reading would wait
    close_timeout for the server's close frame behind unread data)."""
    kw.setdefault("close_timeout", 0.2)
    kw.setdefault("max_size", None)
    return ws_connect(url, **kw)


async def recv(ws, deadline: float):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return await asyncio.wait_for(ws.recv(), left)


async def recv_json(ws, deadline: float):
    return json.loads(await recv(ws, deadline))


def pairs(text: str):
    """JSON with key order kept (objects as lists of pairs)."""
    return json.loads(text, object_pairs_hook=list)


def keys(text_or_pairs) -> list[str]:
    p = pairs(text_or_pairs) if isinstance(text_or_pairs, (str, bytes)) else text_or_pairs
    return [k for k, _ in p]


class Reader:
    """Reads one connection in the background: (monotonic time, frame) pairs; optional PINGs."""

    def __init__(self, ws, ping_every: float | None = None):
        self.ws = ws
        self.frames: list[tuple[float, str]] = []
        self.closed: BaseException | str | None = None
        self.task = asyncio.create_task(self._run())
        self.pinger = asyncio.create_task(self._ping(ping_every)) if ping_every else None

    async def _run(self):
        try:
            async for msg in self.ws:
                self.frames.append((time.monotonic(), msg))
        except ConnectionClosed as exc:
            self.closed = exc
        if self.closed is None:
            self.closed = "closed cleanly"

    async def _ping(self, every: float):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                await self.ws.send("PING")

    def texts(self, since: float = 0.0) -> list[str]:
        return [m for t, m in self.frames if t >= since]

    def objs(self, since: float = 0.0) -> list[dict]:
        """Every JSON object received (arrays flattened), skipping control text."""
        return self.objs_of(self.texts(since))

    @staticmethod
    def objs_of(texts) -> list[dict]:
        """The JSON objects of some frames (arrays flattened), skipping control text."""
        out = []
        for m in texts:
            if m in ("", "PONG"):
                continue
            d = orjson.loads(m)
            out.extend(d if isinstance(d, list) else [d])
        return out

    def since(self, t: float) -> list[str]:
        return self.texts(since=t)

    def max_gap(self, t0: float, t1: float) -> float:
        """The longest time in [t0, t1] without a frame."""
        ts = [t0] + [ts for ts, _ in self.frames if t0 <= ts <= t1] + [t1]
        return max(b - a for a, b in zip(ts, ts[1:]))

    async def wait(self, cond, timeout: float = 5.0, what: str = "condition"):
        """wait_for_async, polling every 10 ms while this reader keeps collecting."""
        return await wait_for_async(cond, timeout, what, interval=0.01)

    def stop(self):
        self.task.cancel()
        if self.pinger:
            self.pinger.cancel()
