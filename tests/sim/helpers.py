"""Shared helpers of the sim's socket tests: a running sim on free ports, clients, waits."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from websockets.asyncio.client import connect as ws_connect

from actors.sim.server import serve
from config.settings import Settings


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
