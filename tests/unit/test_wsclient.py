"""The lean WebSocket client against a real websockets server on 127.0.0.1."""
from __future__ import annotations

import asyncio
import struct

import pytest
from websockets.asyncio.server import serve

from actors.feed.wsclient import HandshakeRefused, WsClosed, connect


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _server(handler):
    srv = await serve(handler, "127.0.0.1", 0, compression=None)
    return srv, srv.sockets[0].getsockname()[1]


def test_frames_pings_fragments_and_close():
    async def main():
        pong_seen = asyncio.Event()

        async def handler(ws):
            await ws.send("hello")
            await ws.send(b"bin")
            await ws.send("x" * 70_000)                 # 64-bit length header
            await ws.send("y" * 300)                    # 16-bit length header
            await ws.send(["frag1", "frag2"])           # fragmented message
            waiter = await ws.ping(b"p1")
            await waiter                                # our client answered the ping
            pong_seen.set()
            await ws.send("echo:" + await ws.recv())
            await ws.close(1001, "going away")

        srv, port = await _server(handler)
        got: list[bytes] = []
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.extend(frames))
        await asyncio.wait_for(pong_seen.wait(), 5)
        ws.send_text(b"hi")
        with pytest.raises(WsClosed) as e:
            await asyncio.wait_for(ws.closed, 5)
        srv.close()
        return got, ws, e.value

    got, ws, closed = run(main())
    assert got == [b"hello", b"bin", b"x" * 70_000, b"y" * 300, b"frag1frag2", b"echo:hi"]
    assert ws.pings == 1
    assert (closed.code, closed.reason) == (1001, "going away")


def test_handshake_refusal_and_http_errors():
    async def main():
        async def handler(ws):
            await ws.close()

        def reject(conn, request):
            return conn.respond(404, "no such route\n")

        srv = await serve(handler, "127.0.0.1", 0, process_request=reject)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeRefused) as e:
            await connect(f"ws://127.0.0.1:{port}/nope", lambda *a: None)
        srv.close()
        await srv.wait_closed()
        with pytest.raises(OSError):
            await connect(f"ws://127.0.0.1:{port}/gone", lambda *a: None, open_timeout=2)
        return e.value

    exc = run(main())
    assert str(exc).endswith("HTTP/1.1 404 Not Found")


@pytest.mark.parametrize("raw,code", [
    (bytes((0x81, 0x80 | 1)) + b"\x00\x00\x00\x00a", 1002),   # a masked frame from the server
    (bytes((0xC1, 1)) + b"a", 1002),                           # RSV1 without an extension
    (bytes((0x83, 0)), 1002),                                  # reserved opcode
    (bytes((0x81, 127)) + struct.pack("!Q", 1 << 30), 1009),   # over max_size
])
def test_protocol_errors_fail_the_connection(raw, code):
    async def main():
        async def handler(ws):
            ws.transport.write(raw)                   # bytes a correct server would never send
            await ws.wait_closed()

        srv, port = await _server(handler)
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda *a: None)
        with pytest.raises(WsClosed) as e:
            await asyncio.wait_for(ws.closed, 5)
        srv.close()
        return e.value

    assert run(main()).code == code
