"""The feeds' WebSocket clients against a real websockets server on 127.0.0.1: every test that
checks behaviour runs over both transports (WS_TRANSPORT: websockets, the default, and picows) with
the same assertions; the one that spies on wsclient's re-buffering internals checks those on
websockets only (picows reads into its own buffer) and the delivered bytes on both."""
from __future__ import annotations

import asyncio
import struct

import pytest
from websockets.asyncio.server import serve

from actors.feed.transport import MODULES, connector
from actors.feed.wsclient import HandshakeRefused, WsClosed

TRANSPORTS = list(MODULES)          # websockets, picows


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _server(handler):
    srv = await serve(handler, "127.0.0.1", 0, compression=None)
    return srv, srv.sockets[0].getsockname()[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_frames_pings_fragments_and_close(transport):
    connect = connector(transport)

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


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_handshake_refusal_and_http_errors(transport):
    connect = connector(transport)

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


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("raw,code,failure", [
    (bytes((0x81, 0x80 | 1)) + b"\x00\x00\x00\x00a", 1002, "masked_or_rsv"),   # a masked frame from the server
    (bytes((0xC1, 1)) + b"a", 1002, "masked_or_rsv"),                           # RSV1 without an extension
    (bytes((0x83, 0)), 1002, "unknown_opcode"),                                 # reserved opcode
    (bytes((0x81, 127)) + struct.pack("!Q", 1 << 30), 1009, "frame_too_big"),   # over max_size
])
def test_protocol_errors_fail_the_connection(raw, code, failure, transport):
    connect = connector(transport)

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

    closed = run(main())
    assert (closed.code, closed.failure) == (code, failure)


def _frame(op: int, payload: bytes, fin: bool) -> bytes:
    """An unmasked server frame (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes((0x80 * fin | op,))
    if n < 126:
        head += bytes((n,))
    elif n < 1 << 16:
        head += bytes((126,)) + struct.pack("!H", n)
    else:
        head += bytes((127,)) + struct.pack("!Q", n)
    return head + payload


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fragmented_messages_are_capped_at_max_size_in_total(transport):
    """Each fragment is under max_size, their sum is not: close 1009 (kind message_too_big) on the
    header of the fragment that crosses it, before its bytes are held. Before: fragments were
    reassembled without limit (200 MB held against a 4 MB max_size). Exactly max_size is fine."""
    cap, piece = 64 * 1024, b"z" * (16 * 1024)
    connect = connector(transport)

    async def main():
        server_saw: list = []

        async def handler(ws):
            ok = _frame(1, piece, False) + 2 * _frame(0, piece, False) + _frame(0, piece, True)   # = cap
            too_big = _frame(2, piece, False) + 4 * _frame(0, piece, False)                     # cap + 16 KiB
            ws.transport.write(ok + too_big)
            await ws.wait_closed()
            server_saw.append(ws.close_code)

        srv, port = await _server(handler)
        got: list[bytes] = []
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.extend(frames), max_size=cap)
        with pytest.raises(WsClosed) as e:
            await asyncio.wait_for(ws.closed, 5)
        for _ in range(100):
            if server_saw:
                break
            await asyncio.sleep(0.02)
        srv.close()
        return got, ws, e.value, server_saw

    got, ws, closed, server_saw = run(main())
    assert got == [piece * 4]
    assert (closed.code, closed.failure) == (1009, "message_too_big")
    # exactly the 4 fragments within max_size held: the one crossing the cap was never appended
    assert ws._frag is not None and len(ws._frag) == 4 and ws._frag_size == cap
    assert server_saw == [1009]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_data_frame_inside_a_fragmented_message_is_a_protocol_error(transport):
    connect = connector(transport)

    async def main():
        async def handler(ws):
            ws.transport.write(_frame(1, b"part", False) + _frame(1, b"new", True))
            await ws.wait_closed()

        srv, port = await _server(handler)
        got: list[bytes] = []
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.extend(frames))
        with pytest.raises(WsClosed) as e:
            await asyncio.wait_for(ws.closed, 5)
        srv.close()
        return got, e.value

    got, closed = run(main())
    assert got == [] and (closed.code, closed.failure) == (1002, "interleaved_message")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_frame_spanning_many_reads_is_parsed_once(transport):
    """A 1 MiB frame written in 1 KiB pieces reaches the client in many reads; its bytes are
    appended and parsed once when complete. Before: every read re-copied and re-parsed the whole
    buffer, quadratic (here ~1000 reads -> ~500 MiB scanned)."""
    size = 1 << 20
    body = bytes(range(256)) * (size // 256)
    connect = connector(transport)
    spied = transport == "websockets"                     # wsclient's internals; picows parses in C

    async def main():
        async def handler(ws):
            await ws.recv()                               # the client's spies are in place
            raw = _frame(2, body, True) + _frame(1, b"after", True)
            for i in range(0, len(raw), 1024):
                ws.transport.write(raw[i:i + 1024])
                await asyncio.sleep(0)                    # let the client read this piece alone
            await ws.wait_closed()

        srv, port = await _server(handler)
        got: list[bytes] = []
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.extend(frames), max_size=2 * size)
        parsed, reads = [], [0]
        if spied:
            parse, receive = ws._parse, ws.data_received
            ws._parse = lambda data: (parsed.append(len(data)), parse(data))[1]
            ws.data_received = lambda data: (reads.__setitem__(0, reads[0] + 1), receive(data))[1]
        ws.send_text(b"go")
        for _ in range(500):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        await ws.close()
        srv.close()
        return got, parsed, reads[0]

    got, parsed, reads = run(main())
    assert got == [body, b"after"]
    if not spied:
        return
    assert reads >= 50, reads                             # the frame really came in many reads
    # linear: the big frame is scanned once, when whole (plus what came with its first read)
    assert sum(n > 64 * 1024 for n in parsed) == 1 and sum(parsed) < size + 64 * 1024, parsed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_frame_of_one_read_comes_in_one_call(transport):
    """60 frames (a ping among them) written at once arrive in one read: one on_frames call, in
    order, with one timestamp, the ping among them counted (its pong: test_frames_pings_...); a
    second write is a second call. On picows this checks that the frames of a
    read, which picows hands over one by one, are flushed once, at the read's last frame."""
    connect = connector(transport)

    async def main():
        got: list[tuple[list[bytes], int]] = []

        async def handler(ws):
            await ws.recv()
            frames = [_frame(1, b"m%d" % i, True) for i in range(60)]
            frames.insert(30, _frame(9, b"ping-30", True))
            ws.transport.write(b"".join(frames))
            await ws.recv()                               # the client's "next" after the first call
            ws.transport.write(_frame(2, b"second", True))
            await ws.wait_closed()

        srv, port = await _server(handler)
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.append((list(frames), ts)))
        ws.send_text(b"go")
        for _ in range(500):
            if got:
                break
            await asyncio.sleep(0.01)
        ws.send_text(b"next")
        for _ in range(500):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        pings = ws.pings
        await ws.close()
        srv.close()
        return got, pings

    got, pings = run(main())
    assert [frames for frames, _ in got] == [[b"m%d" % i for i in range(60)], [b"second"]]
    assert got[0][1] < got[1][1] and pings == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("close,code,reason", [
    (_frame(8, struct.pack("!H", 1000), True), 1000, ""),
    (_frame(8, struct.pack("!H", 1001) + b"going away", True), 1001, "going away"),
    (_frame(8, struct.pack("!H", 4003) + b"app code", True), 4003, "app code"),
    (_frame(8, b"", True), 1005, ""),                         # a close without a status code
])
def test_a_server_close_gives_its_code_and_reason_and_is_echoed(transport, close, code, reason):
    connect = connector(transport)

    async def main():
        echoed = asyncio.Event()
        seen: list[int | None] = []

        async def handler(ws):
            ws.transport.write(_frame(1, b"last", True) + close)
            try:
                await ws.recv()
            except Exception:          # noqa: BLE001 - our echo ends websockets' side
                pass
            rcvd = ws.protocol.close_rcvd
            seen.append(rcvd.code if rcvd is not None else None)
            echoed.set()

        srv, port = await _server(handler)
        got: list[bytes] = []
        ws = await connect(f"ws://127.0.0.1:{port}/x", lambda frames, ts: got.extend(frames))
        with pytest.raises(WsClosed) as e:
            await asyncio.wait_for(ws.closed, 5)
        await asyncio.wait_for(echoed.wait(), 5)
        srv.close()
        return got, e.value, seen

    got, closed, seen = run(main())
    assert got == [b"last"]
    assert (closed.code, closed.reason, closed.failure) == (code, reason, None)
    assert seen == [code]                                 # the server received our echo


def test_a_failed_link_is_counted_by_kind():
    """The feed shell counts the links wsclient failed, per kind (heartbeat `ws_failures`)."""
    from actors.feed.shell import ConnState, Feed
    from actors.venues.envelope import ConnPlan

    async def main():
        conn = ConnState(ConnPlan.__new__(ConnPlan))
        for exc in (WsClosed(1009, "failed: x", "message_too_big"), WsClosed(1009, "failed: y", "message_too_big"),
                    WsClosed(1000, "bye"), WsClosed(1002, "failed: z", "masked_or_rsv")):
            f = asyncio.get_running_loop().create_future()
            f.set_exception(exc)
            Feed._link_ended(conn, f)
            f.exception()
        return conn.ws_failures

    assert run(main()) == {"message_too_big": 2, "masked_or_rsv": 1}
