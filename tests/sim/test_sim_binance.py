"""The sim's Binance futures server over real sockets on 127.0.0.1.

Every wait is on a condition with a deadline; negative checks ("never delivers X") are made
within a window in which the positive control (X's sibling stream) delivered plenty.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from actors.sim.server import serve
from actors.venues.binance import parse as binance_parse
from config.settings import Settings

PRICE = re.compile(r"^\d+\.\d{2}$")
QTY = re.compile(r"^\d+\.\d{3}$")
AGG_KEYS = ["e", "E", "a", "s", "p", "q", "nq", "f", "l", "T", "m"]
BOOK_KEYS = ["e", "u", "s", "b", "B", "a", "A", "T", "E"]


@contextlib.asynccontextmanager
async def sim(rate: float = 400.0, **serve_kw):
    """A running sim on a port the OS picks; yields the port; stops it (gracefully) afterwards."""
    settings_kw = {k: serve_kw.pop(k) for k in list(serve_kw) if k.startswith("sim_")}
    settings = Settings(sim_trade_rate=rate, **settings_kw)
    ready = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, port=0, spot_port=0, ready=ready, stop=stop,
                                     **serve_kw))
    done, _ = await asyncio.wait({ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready.done(), "sim did not start"
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def connect(url, **kw):
    """A test client. A client that stops reading pauses its socket (websockets' flow control),
    so its closing handshake would wait close_timeout for the server's close frame behind the
    unread data: keep that wait short."""
    kw.setdefault("close_timeout", 0.2)
    return ws_connect(url, **kw)


def _pairs(text):
    return json.loads(text, object_pairs_hook=list)


async def _recv(ws, deadline: float):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return await asyncio.wait_for(ws.recv(), left)


def test_wrong_route_is_acked_then_silent():
    async def main():
        async with sim(rate=400) as port:
            url = f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker"
            async with connect(url) as ws:
                counts = {"btcusdt@aggTrade": 0, "btcusdt@bookTicker": 0}
                deadline = time.monotonic() + 8
                while counts["btcusdt@aggTrade"] < 200:
                    msg = json.loads(await _recv(ws, deadline))
                    counts[msg["stream"]] += 1
                assert counts["btcusdt@bookTicker"] == 0
                # both are listed as subscribed: the venue acks the wrong-route stream
                await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
                while True:
                    msg = await _recv(ws, deadline)
                    if '"id"' in msg:
                        break
                    assert json.loads(msg)["stream"] == "btcusdt@aggTrade"
                assert msg == '{"result":["btcusdt@aggTrade","btcusdt@bookTicker"],"id":3}'
            # and the same stream on its own route delivers, while aggTrade there is silent
            url = f"ws://127.0.0.1:{port}/public/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade"
            async with connect(url) as ws:
                n = 0
                deadline = time.monotonic() + 8
                while n < 200:
                    msg = json.loads(await _recv(ws, deadline))
                    assert msg["stream"] == "btcusdt@bookTicker"
                    n += 1
    asyncio.run(main())


def test_frames_are_exactly_the_live_format_and_sequences_hold():
    async def main():
        async with sim(rate=400) as port:
            m_url = f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade"
            p_url = f"ws://127.0.0.1:{port}/public/ws/btcusdt@bookTicker"
            async with connect(m_url) as mws, connect(p_url) as pws:
                deadline = time.monotonic() + 8
                aggs, books = [], []
                while len(aggs) < 100:
                    raw = await _recv(mws, deadline)
                    assert isinstance(raw, str)               # text frames
                    assert ", " not in raw and '": ' not in raw   # compact JSON
                    env = _pairs(raw)
                    assert [k for k, _ in env] == ["stream", "data"]
                    assert env[0][1] == "btcusdt@aggTrade"
                    aggs.append(env[1][1])
                while len(books) < 100:
                    raw = await _recv(pws, deadline)
                    books.append(_pairs(raw))                 # raw mode: no envelope
            for d in aggs:
                assert [k for k, _ in d] == AGG_KEYS
                v = dict(d)
                assert v["e"] == "aggTrade" and v["s"] == "BTCUSDT"
                assert PRICE.match(v["p"]) and QTY.match(v["q"]) and v["nq"] == v["q"]
                assert round(float(v["p"]) * 100) % 10 == 0            # on the 0.10 tick
                assert float(v["q"]) >= 0.001
                assert all(type(v[k]) is int for k in ("E", "a", "f", "l", "T"))
                assert type(v["m"]) is bool and v["T"] <= v["E"] and v["f"] <= v["l"]
            a = [dict(d)["a"] for d in aggs]
            assert a == list(range(a[0], a[0] + len(a)))                # no gaps to one client
            chain = [(dict(x)["l"], dict(y)["f"]) for x, y in zip(aggs, aggs[1:])]
            assert all(f == last + 1 for last, f in chain)
            for d in books:
                assert [k for k, _ in d] == BOOK_KEYS
                v = dict(d)
                assert v["e"] == "bookTicker" and v["s"] == "BTCUSDT"
                assert all(PRICE.match(v[k]) for k in ("b", "a"))
                assert all(QTY.match(v[k]) for k in ("B", "A"))
                assert float(v["b"]) < float(v["a"]) and v["T"] <= v["E"]
            u = [dict(d)["u"] for d in books]
            assert all(y > x for x, y in zip(u, u[1:]))
    asyncio.run(main())


def test_sim_frames_parse_with_the_project_parser():
    parser = binance_parse

    async def main():
        async with sim(rate=400) as port:
            got = {}
            async with connect(f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade") as m, \
                    connect(f"ws://127.0.0.1:{port}/public/stream?streams=btcusdt@bookTicker") as p:
                deadline = time.monotonic() + 5
                got["trade"] = await _recv(m, deadline)
                got["quote"] = await _recv(p, deadline)
        return got
    got = asyncio.run(main())
    for kind, frame in got.items():
        assert parser.parse_frame(frame, time.time_ns()).kind == kind


def test_live_subscribe_unsubscribe_and_combined_property():
    async def main():
        async with sim(rate=400) as port:
            async with connect(f"ws://127.0.0.1:{port}/market/stream") as ws:
                deadline = time.monotonic() + 8
                await ws.send('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}')
                assert await _recv(ws, deadline) == '{"result":null,"id":1}'
                first = json.loads(await _recv(ws, deadline))
                assert first["stream"] == "btcusdt@aggTrade"
                # raw payloads after SET_PROPERTY combined=false
                await ws.send('{"method":"SET_PROPERTY","params":["combined",false],"id":5}')
                while (msg := await _recv(ws, deadline)).startswith('{"stream"'):
                    pass
                assert msg == '{"result":null,"id":5}'
                assert json.loads(await _recv(ws, deadline))["e"] == "aggTrade"
                await ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":312}')
                while (msg := await _recv(ws, deadline)).startswith('{"e"'):
                    pass
                assert msg == '{"result":null,"id":312}'
                # nothing is pushed after the ack: the next frame is the reply to the next request
                t_ack = time.monotonic()
                while time.monotonic() - t_ack < 0.3:
                    await asyncio.sleep(0.05)
                await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":4}')
                assert await _recv(ws, deadline) == '{"result":[],"id":4}'
    asyncio.run(main())


def test_bad_requests_get_binance_error_frames():
    async def main():
        async with sim(rate=10) as port:
            async with connect(f"ws://127.0.0.1:{port}/public/stream") as ws:
                deadline = time.monotonic() + 5
                await ws.send('{"method":"SUBSCRIB","params":["btcusdt@bookTicker"],"id":7}')
                r = json.loads(await _recv(ws, deadline))
                assert r["id"] == 7 and r["error"]["code"] == 2
                assert r["error"]["msg"].startswith("Invalid request: unknown variant `SUBSCRIB`")
                await ws.send("not json")
                r = json.loads(await _recv(ws, deadline))
                assert r["id"] is None and r["error"]["code"] == 3
                await ws.send('{"method":"SUBSCRIBE","params":["BTCUSDT@bookTicker"],"id":8}')
                assert await _recv(ws, deadline) == \
                    '{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":8}'
                await ws.send('{"method":"GET_PROPERTY","params":["combined"],"id":9}')
                assert await _recv(ws, deadline) == '{"result":true,"id":9}'
    asyncio.run(main())


def test_more_than_ten_messages_per_second_closes_the_connection():
    async def main():
        async with sim(rate=10) as port:
            # ten in a burst are fine: all answered, connection open
            async with connect(f"ws://127.0.0.1:{port}/market/stream", ping_interval=None) as ws:
                deadline = time.monotonic() + 5
                for i in range(10):
                    await ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
                for i in range(10):
                    assert await _recv(ws, deadline) == f'{{"result":[],"id":{i}}}'
            # fifteen in a burst: closed by the server
            async with connect(f"ws://127.0.0.1:{port}/market/stream", ping_interval=None) as ws:
                deadline = time.monotonic() + 5
                for i in range(15):
                    await ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
                replies = 0
                with pytest.raises(ConnectionClosed):
                    while True:
                        await _recv(ws, deadline)
                        replies += 1
                assert replies <= 10
                assert ws.close_code == 1008
    asyncio.run(main())


def test_connection_lifetime_is_enforced_by_the_server():
    async def main():
        async with sim(rate=50, sim_conn_lifetime_sec=1.0) as port:
            url = f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade"
            async with connect(url) as ws:
                t0 = time.monotonic()
                deadline = t0 + 6
                with pytest.raises(ConnectionClosed):
                    while True:
                        await _recv(ws, deadline)
                elapsed = time.monotonic() - t0
                assert 0.8 < elapsed < 3.0
                assert ws.close_code == 1001
    asyncio.run(main())


def test_unknown_paths_are_404_and_rest_answers():
    async def main():
        async with sim(rate=10) as port:
            for path in ("/ws/btcusdt@aggTrade", "/stream?streams=btcusdt@aggTrade", "/private/ws", "/x"):
                with pytest.raises(InvalidStatus) as exc:
                    async with connect(f"ws://127.0.0.1:{port}{path}"):
                        pass
                assert exc.value.response.status_code == 404
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
                before = time.time_ns() // 1_000_000
                r = await c.get("/fapi/v1/time")
                after = time.time_ns() // 1_000_000
                assert r.status_code == 200
                assert r.headers["content-type"] == "application/json"
                assert list(r.json()) == ["serverTime"]
                assert before <= r.json()["serverTime"] <= after
                r = await c.get("/fapi/v1/ping")
                assert r.status_code == 200 and r.json() == {}
                assert (await c.get("/fapi/v1/nope")).status_code == 404
    asyncio.run(main())


def test_on_sent_hook_sees_every_frame_before_the_client_does():
    sent: dict[tuple[str, int], int] = {}

    def on_sent(stream, key, ts_ns):
        sent[(stream, key)] = ts_ns

    async def main():
        async with sim(rate=400, on_sent=on_sent) as port:
            url = f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade"
            async with connect(url) as ws:
                deadline = time.monotonic() + 5
                n = 0
                while n < 100:
                    msg = json.loads(await _recv(ws, deadline))
                    recv_ns = time.time_ns()
                    a = msg["data"]["a"]
                    ts = sent[("btcusdt@aggTrade", a)]
                    assert ts <= recv_ns
                    assert msg["data"]["E"] * 1_000_000 <= ts      # never sent before its E
                    n += 1
    asyncio.run(main())


def test_no_pong_gets_the_client_dropped_and_pings_are_sent():
    """A raw TCP client that never answers pings: the server pings, then drops it."""
    async def main():
        async with sim(rate=10, ping_interval=0.2, ping_timeout=0.4) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /market/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101")
            t0 = time.monotonic()
            data = await asyncio.wait_for(reader.read(), 5)      # until the server closes
            elapsed = time.monotonic() - t0
            writer.close()
            opcodes = []
            i = 0
            while i + 2 <= len(data):
                op, ln = data[i] & 0x0F, data[i + 1] & 0x7F
                opcodes.append(op)
                i += 2 + ln
            assert opcodes[0] == 0x9                  # a ping
            assert 0x8 in opcodes                     # then a close frame (1011 keepalive timeout)
            assert 0.3 < elapsed < 3.0
    asyncio.run(main())


def test_a_slow_consumer_is_dropped_and_does_not_stall_the_others(caplog):
    async def main():
        async with sim(rate=5_000, max_send_buffer=64 << 10) as port:
            url = f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@aggTrade"
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            slow_port = sock.getsockname()[1]
            async with connect(url, sock=sock, max_queue=4) as slow, connect(url) as fast:
                deadline = time.monotonic() + 30
                dropped = f"dropping slow consumer ('127.0.0.1', {slow_port})"
                n_fast = 0
                while dropped not in caplog.text:         # the fast one keeps receiving
                    await _recv(fast, deadline)           # (the kernel buffers fill first)
                    n_fast += 1
                t_drop = time.monotonic()
                while time.monotonic() - t_drop < 0.3:    # and goes on after the drop
                    await _recv(fast, deadline)
                    n_fast += 1
                assert fast.state.name == "OPEN" and n_fast > 1000
                assert "dropping slow consumer" not in caplog.text.replace(dropped, "")
                # the slow one, once it reads, finds the stream cut (no closing handshake). What
                # the kernels buffered before the cut (up to tcp_wmem's maximum on the sim's side)
                # comes first, through a 4 KiB window: on a loaded machine that takes seconds,
                # hence a deadline of its own
                drain_deadline = time.monotonic() + 60
                with pytest.raises(ConnectionClosedError):
                    while True:
                        await _recv(slow, drain_deadline)
    with caplog.at_level("WARNING", logger="sim"):
        asyncio.run(main())
