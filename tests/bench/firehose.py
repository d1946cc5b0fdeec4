"""A bench-only sender: serves pre-encoded aggTrade frames as fast as the client drains them.

The frames are real sim output (the sim's Market and codec, the live field set). They are framed
once as unmasked server WebSocket frames and written to the transport in large blocks, so the
sender costs little CPU and the receiver is what is measured. Every connection, whatever its path,
gets the same stream: frames carry consecutive aggTrade ids from 1, repeated `rounds` times with
ids continuing. Run: python -m tests.bench.firehose PORT N_FRAMES
"""
from __future__ import annotations

import asyncio
import struct
import sys
import time


def make_frames(n: int) -> list[bytes]:
    from actors.sim.binance import FuturesCodec, combined
    from actors.sim.market import AggTrade, Market
    m = Market(seed=7, trade_rate=5000, start_price=65000.0, start_ns=time.time_ns())
    codec = FuturesCodec(m.instrument)
    out: list[bytes] = []
    now = m.next_emit_ns()
    while len(out) < n:
        now += 50_000_000
        for ev in m.advance(now):
            if isinstance(ev, AggTrade):
                ev = ev._replace(a=len(out) + 1)
                out.append(combined(codec.agg_stream, codec.agg_trade(ev)).encode())
    return out[:n]


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", n) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", n) + payload


async def serve(port: int, n: int, ready: asyncio.Future | None = None) -> None:
    from websockets.asyncio.server import serve as ws_serve
    blob_frames = [ws_frame(f) for f in make_frames(n)]
    blocks = [b"".join(blob_frames[i:i + 512]) for i in range(0, n, 512)]

    async def handler(conn):
        if not conn.request.path.startswith(("/market", "/ws", "/stream")):
            await conn.wait_closed()       # other routes: acked and silent, as on the venue
            return
        tr = conn.transport
        for block in blocks:
            while tr.get_write_buffer_size() > 4 << 20:
                await asyncio.sleep(0.0005)
            tr.write(block)
        await conn.wait_closed()

    async with ws_serve(handler, "127.0.0.1", port, compression=None, ping_interval=None) as server:
        if ready is not None:
            ready.set_result(server.sockets[0].getsockname()[1])
        await asyncio.Future()


if __name__ == "__main__":
    import uvloop
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
