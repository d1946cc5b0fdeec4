"""Shared helpers of the sim's Polymarket socket tests: a running sim with a shifted clock and a
book rebuilt from the frames (the background WebSocket reader is tests/support/sim.Reader)."""
from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import httpx

from actors.sim.server import serve
from config.settings import Settings

from actors.venues.polymarket import clob as pmv
from actors.venues.polymarket import gamma as gmv
from actors.venues.polymarket import rtds as rtv
from actors.venues.polymarket.book import OrderBook

NS = 1_000_000_000


@dataclass
class PolySim:
    port: int
    settings: Settings
    offset_ns: int
    # one HTTP client for the sim's lifetime (building one costs ~0.1 s of CA-bundle loading)
    client: httpx.AsyncClient | None = None
    spot_port: int = 0            # the sim's Binance spot port (klines of the hourly markets)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def now_s(self) -> float:
        return (time.time_ns() + self.offset_ns) / NS

    async def get(self, path: str, **params) -> httpx.Response:
        return await self.client.get(self.http + path, params=params)

    async def get_abs(self, url: str, **params) -> httpx.Response:
        """GET another port of the same sim (the spot REST, for instance)."""
        return await self.client.get(url, params=params)

    async def stats(self) -> dict:
        return (await self.get("/__sim/stats")).json()

    async def fault(self, kind: str, **params) -> dict:
        r = await self.client.post(self.http + "/__sim/fault", json={"kind": kind, **params})
        assert r.status_code == 200, r.text
        return r.json()


@contextlib.asynccontextmanager
async def poly_sim(window_sec: int | str = 20, lead: float | None = None, windows: str = "5m", **kw):
    """A sim (all venues, OS-picked ports) following `windows` (POLYMARKET_WINDOWS, default the 5m
    series) with `window_sec` windows (POLYMARKET_WINDOW_SEC: an int, or `5m:20,1h:60`).

    lead: shift the sim clock so that the current window of the first followed series ends `lead`
    seconds from now (its windows must be plain multiples of their length: shortened, or 5m/15m/1h).
    `sim_*` / `polymarket_*` / `symbol` keyword arguments go to Settings."""
    skw = {k: kw.pop(k) for k in list(kw) if k.startswith(("sim_", "polymarket_")) or k == "symbol"}
    skw.setdefault("sim_trade_rate", 100.0)
    settings = Settings(polymarket_windows=windows, polymarket_window_sec=window_sec, **skw)
    off = 0
    if lead is not None:
        w = settings.venues.window_secs[settings.venues.polymarket_windows[0]] * NS
        off = int((w - int(lead * NS) - time.time_ns() % w) % w)
    loop = asyncio.get_running_loop()
    ready, spot_ready, poly_ready = (loop.create_future() for _ in range(3))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, port=0, spot_port=0, poly_port=0, ready=ready,
                                     spot_ready=spot_ready, poly_ready=poly_ready, stop=stop,
                                     clock=lambda: time.time_ns() + off, **kw))
    done, _ = await asyncio.wait({poly_ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert poly_ready.done(), "sim did not start"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            yield PolySim(poly_ready.result(), settings, off, client, spot_ready.result())
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def new_book():
    return OrderBook()


def _f(x) -> float | None:
    return None if x in (None, "") else float(x)


class Books:
    """Books of some tokens rebuilt from CLOB frames (plain JSON into the consumer's OrderBook);
    counts mismatches of the venue's best_bid/best_ask; keeps the levels
    at each hash seen, to compare with a REST answer."""

    def __init__(self, tokens):
        self.b = {t: new_book() for t in tokens}
        self.bad_best: list = []
        self.checked = 0
        self.at_hash: dict[str, tuple] = {}
        self.tick_changes: list[dict] = []

    def _keep(self, tok, h):
        bk = self.b[tok]
        if bk.valid:
            self.at_hash[h] = (tok, bk.levels("bid"), bk.levels("ask"))

    def apply(self, d: dict) -> None:
        et = d.get("event_type")
        if et == "book" and d["asset_id"] in self.b:
            bk = self.b[d["asset_id"]]
            bk.apply_snapshot([(float(x["price"]), float(x["size"])) for x in d["bids"]],
                              [(float(x["price"]), float(x["size"])) for x in d["asks"]],
                              int(d["timestamp"]), _f(d.get("tick_size")))
            self._keep(d["asset_id"], d["hash"])
        elif et == "price_change":
            for e in d["price_changes"]:
                tok = e["asset_id"]
                if tok not in self.b:
                    continue
                bk = self.b[tok]
                bk.apply_change("bid" if e["side"] == "BUY" else "ask", float(e["price"]),
                                float(e["size"]))
                if bk.valid:
                    self.checked += 1
                    if not bk.check_best(_f(e["best_bid"]), _f(e["best_ask"])):
                        self.bad_best.append((e, bk.best_bid(), bk.best_ask()))
                    self._keep(tok, e["hash"])
        elif et == "tick_size_change" and d["asset_id"] in self.b:
            self.tick_changes.append(d)
            self.b[d["asset_id"]].invalidate("tick", float(d["new_tick_size"]))

    def mid(self, tok) -> float | None:
        bk = self.b[tok]
        bb, ba = bk.best_bid(), bk.best_ask()
        return None if bb is None or ba is None or not bk.valid else (bb + ba) / 2
