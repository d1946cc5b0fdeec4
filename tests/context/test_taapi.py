"""The `context` actor's indicators on real transports: TAAPI polling against the sim's TAAPI
endpoint (the real sim server on 127.0.0.1, which also serves the klines REST), and the local
fallback against the test klines server; real shm (a unique prefix per test, every segment
unlinked) and a real ZeroMQ socket for the `context.<SYMBOL>` messages.

The actor runs in-process on its own thread and event loop (tests/support/context.py's
Actor), the sim on another. Every wait is on a condition with a deadline; the timing assertions
are "no request while blocked" and "waited at least the block / backoff".
"""
from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest

from actors.context import context_ring
from actors.features import indicators as ind
from actors.sim.server import serve
from config.settings import Settings, load_settings
from ipc import names
from ipc.ring import RingReader
from ipc.schema import KLINE
from ipc.state import StateBlock
from tests.support.kline_server import FakeClock, KlineServer
from tests.support.context import Actor, Sub
from tests.support.wait import wait_for

SHM_DIR = "/dev/shm"
SECRET = "s3cret-test"
MS = 1_000_000
M1 = 60_000
T0 = 1_700_000_030_000


class WallClock:
    @staticmethod
    def now_ns() -> int:
        return time.time_ns()


class SimThread:
    """The real sim (both Binance venues, Polymarket, TAAPI) on ports the OS picks, own loop."""

    def __init__(self, **settings_kw):
        self.settings = Settings(sim_trade_rate=5.0, taapi_secret=SECRET, **settings_kw)
        self.port: int | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.exc: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = self._loop.create_future()
            task = asyncio.create_task(serve(self.settings, port=0, spot_port=0, ready=ready,
                                             stop=self._stop))
            done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
            self.port = ready.result()
            self._ready.set()
            await task
        try:
            asyncio.run(main())
        except BaseException as exc:
            self.exc = exc
            self._ready.set()

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(15) and self.exc is None, f"sim did not start: {self.exc!r}"
        return self

    def __exit__(self, *a):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the sim did not stop"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/taapi/__stats", timeout=5).json()


@pytest.fixture
def sub():
    s = Sub()
    yield s
    s.close()


def ctx_settings(prefix, rest_url, sub, **kw):
    kw.setdefault("context_tfs", ("1m", "5m"))
    kw.setdefault("context_bootstrap_limit", 400)
    kw.setdefault("context_stream_grace_sec", 1.0)
    kw.setdefault("context_rest_backoff_max_sec", 4.0)
    return load_settings(shm_dir=SHM_DIR, shm_prefix=prefix, futures_rest=rest_url,
                         zmq_xsub_url=f"tcp://127.0.0.1:{sub.port}", **kw)


def taapi_settings(prefix, sim, sub, **kw):
    kw.setdefault("taapi_enabled", True)
    kw.setdefault("taapi_secret", SECRET)
    kw.setdefault("taapi_rate_per_sec", 5.0)
    return ctx_settings(prefix, sim.url, sub, taapi_url=f"{sim.url}/taapi",
                        taapi_exchange="binancefutures", **kw)


def block(s) -> dict:
    return StateBlock(SHM_DIR, s.ipc.shm_prefix, names.INDICATORS_BLOCK).read() or {}


def entries(s) -> dict:
    return block(s).get("tfs", {})


def have_values(s, tfs, source):
    e = entries(s)
    return all(e.get(tf, {}).get("source") == source and e[tf].get("rsi") is not None for tf in tfs) and e


def ring(s, tf) -> np.ndarray:
    return RingReader(SHM_DIR, context_ring(s.ipc.shm_prefix, s.general.symbol, tf), KLINE, from_oldest=True).read()


def assert_values(entry: dict, expect: dict, rel: float = 1e-12):
    for name in ind.INDICATORS:
        assert entry[name] is not None, (name, entry["errors"])
        assert set(entry[name]) == set(ind.FIELDS[name])
        for f in ind.FIELDS[name]:
            assert entry[name][f] == pytest.approx(expect[name][f], rel=rel, abs=1e-9), (name, f)


# --- TAAPI -----------------------------------------------------------------------------------------

def test_taapi_values_land_in_shm_and_on_the_bus(prefix, sub):
    with SimThread(sim_taapi_rate_per_sec=5.0) as sim:
        s = taapi_settings(prefix, sim, sub, taapi_tfs=("1m", "5m"))
        with Actor(s, WallClock) as a:
            got = wait_for(lambda: have_values(s, ("1m", "5m"), "taapi"), 20, "TAAPI values in shm")
            for tf, tf_ms in (("1m", M1), ("5m", 5 * M1)):
                e = got[tf]
                candle_ns = e["kline_open_ns"]
                # the newest closed candle when it was asked
                assert candle_ns % (tf_ms * MS) == 0 and candle_ns <= (time.time_ns() // MS - tf_ms) * MS
                assert e["errors"] == {} and e["error"] is None and e["updates"] >= 1
                assert 0 <= e["age_ms"] < 20_000 and e["ts_ns"] <= time.time_ns()
                # the same numbers as the local path on the context's own ring (klines from the
                # same sim, through REST): one computation, two transports
                (recs,) = wait_for(lambda: (lambda r: [r] if (r["open_time_ns"] == candle_ns).any() else None)(
                    ring(s, tf)), 15, f"{tf} ring up to the TAAPI candle")
                recs = recs[recs["open_time_ns"] <= candle_ns][-ind.WINDOW:]
                assert len(recs) == ind.WINDOW
                assert_values(e, ind.bundle_klines(recs)[0])
            msgs = wait_for(lambda: [m for m in sub.messages() if "indicators" in m] or None, 5,
                              "indicator messages")
            hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["taapi_ok"] >= 2 and h, 5,
                            "heartbeat with TAAPI counters")
            stats = sim.stats()
        c = hb["counters"]
        assert c["indicators_taapi"] == 1 and c["taapi_429"] == 0 and c["taapi_errors"] == 0
        assert c["taapi_requests"] == c["taapi_ok"] == stats["answers"]["200"]
        assert stats["blocked_hits"] == 0 and set(stats["answers"]) == {"200"}
    for m in msgs:
        ((tf, e),) = m["indicators"].items()
        assert m["tf"] == tf and e["source"] == "taapi" and "kline" not in m
        assert set(ind.INDICATORS) <= set(e) and e["ts_ns"] > 0
    assert {m["tf"] for m in msgs} == {"1m", "5m"}
    final = block(s)
    assert final["mode"] == "taapi" and final["taapi"]["ok"] >= 2 and final["window"] == ind.WINDOW


def test_a_429_is_honoured(prefix, sub):
    block_sec = 2.0
    with SimThread(sim_taapi_rate_per_sec=0.5, sim_taapi_block_sec=block_sec) as sim:
        # the client thinks its plan allows 20/s; the sim allows 0.5/s after a burst of 2
        s = taapi_settings(prefix, sim, sub, taapi_tfs=("1m", "5m", "15m"), taapi_rate_per_sec=20.0)
        with Actor(s, WallClock) as a:
            wait_for(lambda: have_values(s, ("1m", "5m", "15m"), "taapi"), 20,
                       "TAAPI values for every tf despite the 429")
            stats = sim.stats()
            hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["taapi_ok"] >= 3 and h, 5,
                            "heartbeat")
            e = entries(s)
    log = stats["log"]
    statuses = [st for _, st in log]
    assert statuses[:3] == [200, 200, 429] and statuses.count(200) >= 3
    # honoured: not one request while the key was blocked (each would lengthen the block)...
    assert stats["blocked_hits"] == 0
    blocked = [t for t, st in log if st == 429]
    for t429 in blocked:
        assert not [t for t, _ in log if t429 < t < t429 + block_sec * 1000], log
    # ...and the next one came only after the block
    i = statuses.index(429)
    assert log[i + 1][0] - log[i][0] >= block_sec * 1000
    c = hb["counters"]
    assert c["taapi_429"] == len(blocked) >= 1 and c["taapi_requests"] == len(log)
    assert all(e[tf]["source"] == "taapi" for tf in ("1m", "5m", "15m"))


def test_a_wrong_secret_is_counted_and_backed_off_never_fatal(prefix, sub):
    with SimThread(sim_taapi_rate_per_sec=50.0) as sim:
        s = taapi_settings(prefix, sim, sub, taapi_tfs=("5m",), taapi_secret="not-the-secret",
                           taapi_rate_per_sec=50.0)
        with Actor(s, WallClock) as a:
            hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["taapi_errors"] >= 3 and h,
                            15, "three failed TAAPI calls")
            e = entries(s)["5m"]
            stats = sim.stats()
            assert a.thread.is_alive()
    times = [t for t, _ in stats["log"]]
    assert set(st for _, st in stats["log"]) == {401}
    # capped exponential backoff with jitter in [0.5, 1]: >= 0.5 s, then >= 1 s between calls
    gaps = np.diff(times)
    assert gaps[0] >= 500 and gaps[1] >= 1000, gaps
    assert e["rsi"] is None and e["source"] == "taapi" and "auth" in e["error"] and e["failures"] >= 3
    c = hb["counters"]
    assert c["taapi_ok"] == 0 and c["taapi_errors"] == c["taapi_requests"] >= 3
    assert hb["counters"]["klines_appended"] > 0         # the klines go on regardless


# --- local fallback ----------------------------------------------------------------------------------

@pytest.mark.parametrize("enabled,secret", [(False, None), (True, None), (False, SECRET)])
def test_local_fallback_from_the_context_klines(prefix, sub, enabled, secret):
    clock = FakeClock(T0)
    with KlineServer(clock) as server:
        s = ctx_settings(prefix, server.url, sub, taapi_enabled=enabled, taapi_secret=secret,
                         taapi_tfs=("1m", "5m", "15m"), context_stream_grace_sec=0.2)
        with Actor(s, clock) as a:
            wait_for(a.bootstrapped, 15, "bootstrap")
            got = wait_for(lambda: have_values(s, ("1m", "5m"), "local"), 10, "local values")
            for tf in ("1m", "5m"):
                recs = ring(s, tf)
                assert got[tf]["kline_open_ns"] == recs["open_time_ns"][-1]
                assert got[tf]["klines"] == ind.WINDOW
                assert_values(got[tf], ind.bundle_klines(recs[-ind.WINDOW:])[0], rel=0)
            # a timeframe the context does not hold: no values, and why
            e15 = got["15m"]
            assert all(e15[n] is None for n in ind.INDICATORS) and "not in CONTEXT_TFS" in e15["error"]
            # the next 1m kline (REST catch-up once due) moves the 1m values
            first = got["1m"]["kline_open_ns"]
            clock.ms += M1
            e = wait_for(lambda: (lambda x: x if x.get("kline_open_ns") == first + M1 * MS else None)(
                entries(s).get("1m", {})), 15, "1m values for the next kline")
            recs = ring(s, "1m")
            assert recs["open_time_ns"][-1] == first + M1 * MS
            assert_values(e, ind.bundle_klines(recs[-ind.WINDOW:])[0], rel=0)
            assert e["updates"] >= 2
            hb = wait_for(lambda: (h := a.heartbeat()) and h["counters"]["indicator_updates"] >= 3 and h,
                            5, "heartbeat")
            msgs = wait_for(lambda: (lambda ms: ms if {m["tf"] for m in ms} >= {"1m", "5m"} else None)(
                [m for m in sub.messages() if "indicators" in m]), 5, "indicator messages")
    assert block(s)["mode"] == "local" and block(s)["taapi"] is None
    c = hb["counters"]
    assert c["indicators_taapi"] == 0 and c["taapi_requests"] == 0 and c["indicator_errors"] == 0
    assert all(m["indicators"][m["tf"]]["source"] == "local" for m in msgs)
    assert [m["indicators"]["1m"]["kline_open_ns"] for m in msgs if m["tf"] == "1m"][-2:] == [
        first, first + M1 * MS]
