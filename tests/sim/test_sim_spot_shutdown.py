"""Binance spot `serverShutdown` over real sockets: the `server_shutdown` fault (the event now on raw
and combined connections, streams going on, then a 1001 close after its seconds; futures refuses
it), and the event sent before the lifetime close."""
from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from actors.sim.binance import spot_market as sp
from actors.sim.faults import ainject, astats
from actors.venues.binance.parse import parse_frame
from tests.support.sim import Reader, connect, running_sim


def _shutdowns(rd: Reader) -> list[tuple[float, dict]]:
    return [(t, orjson.loads(m)) for t, m in rd.frames if '"serverShutdown"' in m]


def test_server_shutdown_fault_warns_then_closes_every_spot_connection():
    async def main():
        async with running_sim(rate=200) as ports:
            async with connect(ports.sws("/ws/btcusdt@aggTrade")) as raw, \
                    connect(ports.sws("/stream?streams=btcusdt@aggTrade")) as comb:
                rr, rc = Reader(raw), Reader(comb)
                await rr.wait(lambda: rr.frames and rc.frames, 3, "trades on both")
                before_ms = time.time_ns() // 1_000_000
                t0 = time.monotonic()
                ans = await ainject(ports.shttp, "server_shutdown", seconds=1.0)
                assert ans == {"ok": True, "kind": "server_shutdown", "venue": "spot",
                               "connections": 2, "close_in_sec": 1.0}
                for rd in (rr, rc):
                    await rd.wait(lambda: _shutdowns(rd), 2, "serverShutdown")
                    (t_sd, ev), = _shutdowns(rd)
                    assert list(ev) == ["e", "E"] and ev["e"] == "serverShutdown"
                    assert before_ms <= ev["E"] <= time.time_ns() // 1_000_000
                    frame = next(m for _, m in rd.frames if '"serverShutdown"' in m)
                    assert parse_frame(frame, 0).kind == "shutdown"      # the consumer's decoder
                    # the streams go on until the close, which comes with 1001 about 1 s later
                    await rd.wait(lambda: rd.closed is not None, 3, "the close")
                    assert any(t > t_sd and '"aggTrade"' in m for t, m in rd.frames)
                    assert rd.ws.close_code == 1001
                assert 0.9 < time.monotonic() - t0 < 2.5
                st = await astats(ports.shttp)
                assert st["server_shutdown_sent"] == 2
                assert st["faults"]["applied"]["server_shutdown"] == 1
                # a connection opened afterwards is not affected
                async with connect(ports.sws("/ws/btcusdt@aggTrade")) as late:
                    rl = Reader(late)
                    await rl.wait(lambda: len(rl.frames) >= 3, 3, "trades on a new connection")
                    assert not _shutdowns(rl) and rl.closed is None
                    rl.stop()
            # futures documents no such event: refused
            async with httpx.AsyncClient(timeout=5) as c:
                r = await c.post(f"{ports.fhttp}/__sim/fault", json={"kind": "server_shutdown"})
            assert r.status_code == 400 and "spot" in r.json()["error"]
    asyncio.run(main())


@pytest.mark.parametrize("seconds", [-1, "x"])
def test_server_shutdown_fault_checks_its_seconds(seconds):
    async def main():
        async with running_sim(rate=50) as ports:
            async with httpx.AsyncClient(timeout=5) as c:
                r = await c.post(f"{ports.shttp}/__sim/fault",
                                 json={"kind": "server_shutdown", "seconds": seconds})
            assert r.status_code == 400 and "seconds" in r.json()["error"]
    asyncio.run(main())


def test_spot_lifetime_close_is_announced_by_server_shutdown():
    lifetime = 2.0
    assert sp.notice_sec(lifetime) == 0.5 and sp.notice_sec(86_400) == 600.0

    async def main():
        async with running_sim(rate=100, sim_conn_lifetime_sec=lifetime) as ports:
            async with connect(ports.sws("/stream?streams=btcusdt@aggTrade")) as ws:
                t0 = time.monotonic()
                rd = Reader(ws)
                await rd.wait(lambda: rd.closed is not None, 5, "the lifetime close")
                t_close = time.monotonic()
                (t_sd, ev), = _shutdowns(rd)
                assert ev["e"] == "serverShutdown"
                assert 1.3 < t_sd - t0 < 1.9                  # lifetime - notice = 1.5 s
                assert 0.3 < t_close - t_sd < 1.0             # the notice is 0.5 s
                assert ws.close_code == 1001
            # futures: closed at its lifetime, without the event
            async with connect(ports.fws("/market/stream?streams=btcusdt@aggTrade")) as fw:
                rf = Reader(fw)
                await rf.wait(lambda: rf.closed is not None, 5, "the futures lifetime close")
                assert not _shutdowns(rf) and fw.close_code == 1001
    asyncio.run(main())
