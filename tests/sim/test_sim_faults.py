"""Fault injection over real sockets: every kind observed by a client exactly as specified, and
/__sim/stats matching what a client received."""
from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from actors.sim.faults import ainject, astats
from actors.venues.binance.parse import FrameError, parse_frame
from tests.support.sim import Reader, connect, running_sim
from tests.support.wait import wait_for_async


def _data(msg: str) -> dict:
    d = orjson.loads(msg)
    return d.get("data", d)


async def _ping_ok(ws) -> float:
    t0 = time.monotonic()
    waiter = await ws.ping()
    await asyncio.wait_for(waiter, 0.5)
    return time.monotonic() - t0


def test_stall_one_stream_then_all_keeps_connections_and_pings():
    async def main():
        async with running_sim(rate=400) as ports:
            async with connect(ports.fws("/market/stream?streams=btcusdt@aggTrade")) as a, \
                    connect(ports.fws("/public/stream?streams=btcusdt@bookTicker")) as b:
                ra, rb = Reader(a), Reader(b)
                await ra.wait(lambda: len(ra.frames) > 20)
                # one stream: aggTrade stops for 0.8 s, bookTicker goes on
                ans = await ainject(ports.fhttp, "stall", seconds=0.8, stream="btcusdt@aggTrade")
                assert ans == {"ok": True, "kind": "stall", "venue": "futures"}
                t0 = time.monotonic()
                before = _data(ra.frames[-1][1])["a"]
                await asyncio.sleep(0.4)
                assert await _ping_ok(a) < 0.5                 # pings and pongs still flow
                await ra.wait(lambda: ra.since(t0 + 0.75))
                t1 = time.monotonic()
                assert ra.max_gap(t0 + 0.05, t1) >= 0.65
                assert len([m for ts, m in rb.frames if t0 < ts < t0 + 0.7]) > 30
                after = _data(ra.since(t0 + 0.75)[0])["a"]
                assert after > before + 1                       # generated meanwhile: lost
                # every stream: both stop for 0.6 s
                await ainject(ports.fhttp, "stall", seconds=0.6)
                t2 = time.monotonic()
                await asyncio.sleep(0.3)
                assert await _ping_ok(b) < 0.5
                await ra.wait(lambda: ra.since(t2 + 0.55) and rb.since(t2 + 0.55))
                t3 = time.monotonic()
                assert ra.max_gap(t2 + 0.05, t3) >= 0.45 and rb.max_gap(t2 + 0.05, t3) >= 0.45
                assert ra.closed is None and rb.closed is None
                st = await astats(ports.fhttp)
                assert st["streams"]["btcusdt@aggTrade"]["stalled"] > 0
                assert st["faults"]["applied"]["stall"] == 2
                ra.stop()
                rb.stop()
    asyncio.run(main())


def test_drop_aborts_and_disconnect_closes_with_1001():
    async def main():
        async with running_sim(rate=100) as ports:
            for kind in ("drop", "disconnect"):
                async with connect(ports.fws("/market/stream?streams=btcusdt@aggTrade")) as a, \
                        connect(ports.fws("/public/ws/btcusdt@bookTicker")) as b:
                    ra, rb = Reader(a), Reader(b)
                    await ra.wait(lambda: ra.frames and rb.frames)
                    ans = await ainject(ports.fhttp, kind)
                    assert ans["ok"] and ans["connections"] == 2
                    await ra.wait(lambda: ra.closed is not None and rb.closed is not None)
                    for ws in (a, b):
                        if kind == "drop":
                            assert ws.protocol.close_rcvd is None          # no close frame: aborted
                        else:
                            assert ws.protocol.close_rcvd is not None and ws.close_code == 1001
            st = await astats(ports.fhttp)
            assert st["connections"] == 0 and st["connections_total"] == 4
    asyncio.run(main())


def test_malformed_frames_replace_real_ones_and_fail_the_parser():
    async def main():
        async with running_sim(rate=400) as ports:
            async with connect(ports.fws("/market/stream?streams=btcusdt@aggTrade")) as a:
                ra = Reader(a)
                await ra.wait(lambda: len(ra.frames) > 5)
                await ainject(ports.fhttp, "malformed", count=4, stream="btcusdt@aggTrade")
                n0 = len(ra.frames)
                await ra.wait(lambda: len(ra.frames) > n0 + 40)
                ra.stop()
                good, bad = [], []
                for _, msg in ra.frames:
                    try:
                        d = parse_frame(msg, 1)
                        good.append(d.recs[0][3])
                    except FrameError:
                        bad.append(msg)
                assert len(bad) == 4
                # one of each: truncated, not JSON, wrong type, missing field
                assert sum(1 for m in bad if m.startswith('{"stream"') and not m.endswith("}}")) == 1
                assert sum(1 for m in bad if "Bad Gateway" in m) == 1
                assert sum(1 for m in bad if '"p":"abc"' in m) == 1
                assert sum(1 for m in bad if m.endswith("}}") and '"p":' not in m) == 1
                jumps = [y - x for x, y in zip(good, good[1:])]
                assert sorted(jumps)[-1] == 5 and jumps.count(1) == len(jumps) - 1   # 4 lost
                st = await astats(ports.fhttp)
                assert st["streams"]["btcusdt@aggTrade"]["malformed"] == 4
            # spot, raw frames, no stream given: the next 3 frames of any stream
            async with connect(ports.sws("/ws/btcusdt@bookTicker")) as b:
                rb = Reader(b)
                await rb.wait(lambda: len(rb.frames) > 5)
                await ainject(ports.shttp, "malformed", count=3)
                n0 = len(rb.frames)
                await rb.wait(lambda: len(rb.frames) > n0 + 30)
                rb.stop()
                bad = 0
                for _, msg in rb.frames:
                    try:
                        assert parse_frame(msg, 1).kind == "quote"
                    except FrameError:
                        bad += 1
                assert bad == 3
    asyncio.run(main())


def test_gap_jumps_agg_ids_and_breaks_depth_continuity_once():
    async def main():
        async with running_sim(rate=400) as ports:
            async with connect(ports.fws("/market/ws/btcusdt@aggTrade")) as a, \
                    connect(ports.fws("/public/ws/btcusdt@depth5@100ms")) as d, \
                    connect(ports.sws("/ws/btcusdt@aggTrade")) as s:
                ra, rd, rs = Reader(a), Reader(d), Reader(s)
                await ra.wait(lambda: len(rd.frames) > 3 and len(rs.frames) > 3)
                n = (len(ra.frames), len(rd.frames), len(rs.frames))   # before the faults
                assert (await ainject(ports.fhttp, "gap", count=5))["ok"]
                assert (await ainject(ports.shttp, "gap", count=2))["ok"]
                await ra.wait(lambda: len(ra.frames) > n[0] + 20 and len(rd.frames) > n[1] + 5
                              and len(rs.frames) > n[2] + 10)
                for r in (ra, rd, rs):
                    r.stop()
                ids = [orjson.loads(m)["a"] for _, m in ra.frames]
                jumps = [y - x for x, y in zip(ids, ids[1:])]
                assert jumps.count(6) == 1 and jumps.count(1) == len(jumps) - 1
                ids = [orjson.loads(m)["a"] for _, m in rs.frames]
                jumps = [y - x for x, y in zip(ids, ids[1:])]
                assert jumps.count(3) == 1 and jumps.count(1) == len(jumps) - 1
                dep = [orjson.loads(m) for _, m in rd.frames]
                breaks = [i for i, (x, y) in enumerate(zip(dep, dep[1:])) if y["pu"] != x["u"]]
                assert len(breaks) == 1 and breaks[0] + 1 >= n[1]   # once, after the fault
    asyncio.run(main())


def test_forced_rest_answers_and_clear():
    async def main():
        async with running_sim(rate=10) as ports:
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as c:
                await ainject(ports.fhttp, "rest429", count=2, retry_after=7)
                for _ in range(2):
                    r = await c.get("/fapi/v1/time")
                    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
                    assert r.json()["code"] == -1003
                    assert (await c.get("/__sim/stats")).status_code == 200   # not counted
                assert (await c.get("/fapi/v1/time")).status_code == 200
                await ainject(ports.fhttp, "rest418", count=1, retry_after=30)
                r = await c.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
                assert r.status_code == 418 and r.headers["Retry-After"] == "30"
                assert (await c.get("/fapi/v1/time")).status_code == 200
                await ainject(ports.fhttp, "rest429", count=5, retry_after=1)
                assert (await ainject(ports.fhttp, "clear"))["ok"]
                assert (await c.get("/fapi/v1/time")).status_code == 200
                # bad requests to the fault route
                for body in (b"nope", b'{"kind":"explode"}', b'{"kind":"stall"}',
                             b'{"kind":"malformed","count":0}', b'{"kind":"gap","extra":1}'):
                    r = await c.post("/__sim/fault", content=body)
                    assert r.status_code == 400 and r.json()["ok"] is False
                assert (await c.get("/__sim/fault")).status_code == 404
                assert (await c.post("/fapi/v1/time", content=b"{}")).status_code == 405
                st = (await c.get("/__sim/stats")).json()
                assert st["faults"]["applied"]["rest429"] == 2 and st["faults"]["rest_pending"] == []
                assert st["rest"]["answers"]["429"] == 2 and st["rest"]["answers"]["418"] == 1
    asyncio.run(main())


@pytest.mark.parametrize("venue", ["futures", "spot"])
def test_stats_match_what_the_client_received(venue):
    async def main():
        async with running_sim(rate=400) as ports:
            if venue == "futures":
                http = ports.fhttp
                url = ports.fws("/public/stream?streams=btcusdt@bookTicker/btcusdt@depth5@100ms")
                extra = ports.fws("/market/stream?streams=btcusdt@aggTrade")
            else:
                http = ports.shttp
                url = ports.sws("/stream?streams=btcusdt@bookTicker/btcusdt@depth5@100ms")
                extra = ports.sws("/stream?streams=btcusdt@aggTrade")
            async with connect(url) as ws, connect(extra) as ws2:
                r1, r2 = Reader(ws), Reader(ws2)
                await r1.wait(lambda: len(r1.frames) > 50 and len(r2.frames) > 20)
                await ainject(http, "stall", seconds=3)          # freeze what is sent

                async def landed():
                    """(stats, keys received per stream) once every frame sent has arrived."""
                    st = await astats(http)
                    got: dict[str, list] = {}
                    for r in (r1, r2):
                        for _, m in r.frames:
                            e = orjson.loads(m)
                            d = e["data"]
                            key = d.get("a") if "aggTrade" in e["stream"] else \
                                d.get("u", d.get("lastUpdateId"))
                            got.setdefault(e["stream"], []).append(key)
                    done = all(st["streams"][k]["frames"] == len(v) for k, v in got.items())
                    return done and (st, got)
                st, got = await wait_for_async(landed, 3, "every frame sent before the stall received")
                for stream, keys_ in got.items():
                    s = st["streams"][stream]
                    assert s["frames"] == len(keys_) and s["last_id"] == keys_[-1], stream
                assert st["connections"] == 2 and st["venue"] == venue
                assert st["ports"] == {"futures": ports.futures, "spot": ports.spot}
                # clear lifts the stall at once
                n = len(r1.frames)
                await ainject(http, "clear")
                await r1.wait(lambda: len(r1.frames) > n, timeout=1.0)
                r1.stop()
                r2.stop()
    asyncio.run(main())


def test_fault_helper_sync_api():
    from actors.sim import faults

    async def main():
        async with running_sim(rate=10) as ports:
            loop = asyncio.get_running_loop()
            ans = await loop.run_in_executor(None, lambda: faults.inject(ports.fhttp, "gap", count=1))
            st = await loop.run_in_executor(None, lambda: faults.stats(ports.fhttp))
            assert ans["ok"] and st["faults"]["applied"]["gap"] == 1
    asyncio.run(main())
