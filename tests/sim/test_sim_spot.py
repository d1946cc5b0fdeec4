"""The sim's Binance spot server over real sockets: exact frame formats, raw and combined paths,
methods, the 5 messages/s limit, pings, and prices moving with futures."""
from __future__ import annotations

import asyncio
import re
import statistics
import time

import pytest
from websockets.exceptions import ConnectionClosed

from actors.venues.binance.parse import parse_frame
from ipc.schema import FLAG_SNAPSHOT
from tests.support.sim import connect, keys, pairs, recv, recv_json, running_sim

P8 = re.compile(r"^\d+\.\d{8}$")
AGG_KEYS = ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]


def _on_tick(p: str) -> bool:       # 0.01
    return p.endswith("000000") and P8.match(p) is not None


def test_spot_frames_are_exactly_the_live_format():
    async def main():
        async with running_sim(rate=400) as ports:
            url = ports.sws("/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker/"
                            "btcusdt@depth10@100ms/btcusdt@depth5/btcusdt@kline_1m")
            async with connect(url) as ws:
                deadline = time.monotonic() + 8
                got: dict[str, list] = {}
                seen_at: dict[str, list] = {}
                last_book = None
                t0 = time.monotonic()
                while time.monotonic() - t0 < 2.3:
                    raw = await recv(ws, deadline)
                    env = pairs(raw)
                    assert keys(env) == ["stream", "data"]
                    stream, data = env[0][1], env[1][1]
                    got.setdefault(stream, []).append(data)
                    seen_at.setdefault(stream, []).append(time.monotonic())
                    rec = parse_frame(raw, time.time_ns())
                    d = dict(data)
                    if stream == "btcusdt@aggTrade":
                        assert rec.kind == "trade"
                        assert keys(data) == AGG_KEYS and d["M"] is True and d["s"] == "BTCUSDT"
                        assert _on_tick(d["p"]) and P8.match(d["q"])
                        assert round(float(d["q"]) * 1e8) % 1000 == 0 and float(d["q"]) > 0
                        assert d["T"] <= d["E"] and d["f"] <= d["l"]
                    elif stream == "btcusdt@kline_1m":
                        k = dict(d["k"])
                        # `x` is true on the frame that closes the minute (it can fall in the capture)
                        assert rec.kind == "kline" and isinstance(k["x"], bool) and k["i"] == "1m"
                        assert P8.match(k["o"]) and P8.match(k["q"])
                    elif stream == "btcusdt@bookTicker":
                        assert rec.kind == "quote"
                        assert keys(data) == ["u", "s", "b", "B", "a", "A"]    # no e, E, T
                        assert _on_tick(d["b"]) and _on_tick(d["a"]) and float(d["b"]) < float(d["a"])
                        last_book = d
                    else:
                        assert rec.kind == "depth" and rec.recs[0][2] == FLAG_SNAPSHOT
                        assert keys(data) == ["lastUpdateId", "bids", "asks"]  # no e, E, s
                        n = 10 if "depth10" in stream else 5
                        bp = [float(p) for p, _ in d["bids"]]
                        ap = [float(p) for p, _ in d["asks"]]
                        assert len(bp) == len(ap) == n
                        assert bp == sorted(bp, reverse=True) and ap == sorted(ap)   # best first
                        assert len(set(bp)) == n and len(set(ap)) == n and bp[0] < ap[0]
                        assert all(_on_tick(p) and P8.match(q) for p, q in d["bids"] + d["asks"])
                        assert d["lastUpdateId"] == last_book["u"]
                        assert d["bids"][0] == [last_book["b"], last_book["B"]]
                        assert d["asks"][0] == [last_book["a"], last_book["A"]]
            a = [dict(x)["a"] for x in got["btcusdt@aggTrade"]]
            assert a == list(range(a[0], a[0] + len(a)))
            u = [dict(x)["u"] for x in got["btcusdt@bookTicker"]]
            assert all(y > x for x, y in zip(u, u[1:]))
            assert len(got["btcusdt@depth10@100ms"]) >= 14        # ~10/s
            # cadence from the spacing of arrivals (a count in a wall-clock window races the loop)
            for stream, period in (("btcusdt@depth5", 1.0), ("btcusdt@kline_1m", 2.0)):
                # (the first frame goes out at subscribe time, the rest on the stream's schedule)
                gaps = [b - a for a, b in zip(seen_at[stream][1:], seen_at[stream][2:])]
                assert got[stream] and all(g > 0.6 * period for g in gaps), (stream, gaps)
    asyncio.run(main())


def test_raw_paths_and_live_subscribe():
    async def main():
        async with running_sim(rate=400) as ports:
            async with connect(ports.sws("/ws/btcusdt@bookTicker")) as b, \
                    connect(ports.sws("/ws/btcusdt@depth20@100ms")) as d, \
                    connect(ports.sws("/ws")) as w:
                deadline = time.monotonic() + 5
                raw = await recv(b, deadline)
                assert raw.startswith('{"u":') and parse_frame(raw, 1).kind == "quote"
                raw = await recv(d, deadline)
                assert raw.startswith('{"lastUpdateId":') and parse_frame(raw, 1).kind == "depth"
                await w.send('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}')
                assert await recv(w, deadline) == '{"result":null,"id":1}'
                raw = await recv(w, deadline)
                assert raw.startswith('{"e":"aggTrade"') and parse_frame(raw, 1).kind == "trade"
                await w.send('{"method":"SUBSCRIBE","params":["btcusdt@markPrice"],"id":2}')
                while (msg := await recv(w, deadline)).startswith('{"e"'):
                    pass
                assert msg == '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}'
    asyncio.run(main())


def test_spot_follows_futures_with_a_small_basis_and_trades_on_its_own():
    async def main():
        async with running_sim(rate=400) as ports:
            async with connect(ports.fws("/public/ws/btcusdt@bookTicker")) as fb, \
                    connect(ports.sws("/ws/btcusdt@bookTicker")) as sb, \
                    connect(ports.fws("/market/ws/btcusdt@aggTrade")) as fa, \
                    connect(ports.sws("/ws/btcusdt@aggTrade")) as sa:
                mids = {}
                counts = {"fa": [], "sa": []}
                basis = []

                async def read(ws, name):
                    while True:
                        d = await recv_json(ws, time.monotonic() + 10)
                        if name in counts:
                            counts[name].append(d)
                        else:
                            mids[name] = (float(d["b"]) + float(d["a"])) / 2
                tasks = [asyncio.create_task(read(w, n)) for w, n in
                         ((fb, "f"), (sb, "s"), (fa, "fa"), (sa, "sa"))]
                t0 = time.monotonic()
                while time.monotonic() - t0 < 2.5:
                    await asyncio.sleep(0.05)
                    if "f" in mids and "s" in mids:
                        basis.append((mids["f"] / mids["s"] - 1) * 1e4)
                for t in tasks:
                    t.cancel()
            assert len(basis) > 20
            assert max(abs(b) for b in basis) < 15                 # a few bps, never more
            assert -2 < statistics.median(basis) < 8
            fa_ids = {d["a"] for d in counts["fa"]}
            sa_ids = {d["a"] for d in counts["sa"]}
            assert not fa_ids & sa_ids                              # separate trade streams
            ratio = len(counts["sa"]) / len(counts["fa"])
            assert 0.2 < ratio < 1.0, ratio                         # ~0.5x the futures rate
            fq = statistics.median(float(d["q"]) for d in counts["fa"])
            sq = statistics.median(float(d["q"]) for d in counts["sa"])
            assert sq < fq                                          # smaller spot trades
    asyncio.run(main())


def test_more_than_five_messages_per_second_closes_a_spot_connection():
    async def main():
        async with running_sim(rate=10) as ports:
            async with connect(ports.sws("/ws"), ping_interval=None) as ws:
                deadline = time.monotonic() + 5
                for i in range(5):
                    await ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
                for i in range(5):
                    assert await recv(ws, deadline) == f'{{"result":[],"id":{i}}}'
            async with connect(ports.sws("/ws"), ping_interval=None) as ws:
                deadline = time.monotonic() + 5
                for i in range(8):
                    await ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
                replies = 0
                with pytest.raises(ConnectionClosed):
                    while True:
                        await recv(ws, deadline)
                        replies += 1
                assert replies <= 5 and ws.close_code == 1008
    asyncio.run(main())


def test_spot_server_pings_and_unknown_paths_are_404():
    async def main():
        async with running_sim(rate=10, spot_ping_interval=0.2, spot_ping_timeout=0.4) as ports:
            reader, writer = await asyncio.open_connection("127.0.0.1", ports.spot)
            writer.write(b"GET /ws/btcusdt@aggTrade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101")
            data = await asyncio.wait_for(reader.read(), 5)   # until dropped for not ponging
            writer.close()
            ops = []
            i = 0
            while i + 2 <= len(data):
                ln = data[i + 1] & 0x7F
                hdr = 2
                if ln == 126:
                    ln, hdr = int.from_bytes(data[i + 2:i + 4], "big"), 4
                ops.append(data[i] & 0x0F)
                i += hdr + ln
            assert 0x9 in ops and 0x8 in ops                  # a ping, then the close
            for path in ("/market/stream?streams=btcusdt@aggTrade", "/x", "/api/v3/nothing"):
                r = await asyncio.open_connection("127.0.0.1", ports.spot)
                r[1].write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert (await asyncio.wait_for(r[0].readline(), 5)).startswith(b"HTTP/1.1 404")
                r[1].close()
    asyncio.run(main())
