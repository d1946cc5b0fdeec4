"""A bench-only sender: serves pre-encoded aggTrade frames as fast as the client drains them.

The frames are real sim output (the sim's Market and codecs, the live field set of each venue:
USD-M futures, or spot with its `M` field and no `nq`). They are framed once as unmasked server
WebSocket frames and written to the transport in large blocks, so the sender costs little CPU and
the receiver is what is measured. Every connection on a data route (`/market…` for futures,
`/stream…` for spot, `/ws…`) gets the same stream: aggTrade ids run 1..N; other routes (the
futures `/public` route) are acked and silent, as on the venue. The market is generated for at
most GENERATED trades and cycled with ids continuing (the generator, not the encoding, is what
costs time to start). Run: python -m tests.bench.firehose PORT N_FRAMES [futures|spot]
"""
from __future__ import annotations

import asyncio
import struct
import sys
import time

GENERATED = 20_000


def make_frames(n: int, venue: str = "futures") -> list[bytes]:
    from actors.sim.binance.codec import FuturesCodec, combined
    from actors.sim.market import AggTrade, Market
    from actors.sim.binance.spot_market import SpotCodec
    m = Market(seed=7, trade_rate=5000, start_price=65000.0, start_ns=time.time_ns())
    codec = (FuturesCodec if venue == "futures" else SpotCodec)(m.instrument)
    events: list[AggTrade] = []
    now = m.next_emit_ns()
    while len(events) < min(n, GENERATED):
        now += 50_000_000
        events.extend(ev for ev in m.advance(now) if isinstance(ev, AggTrade))
    return [combined(codec.agg_stream, codec.agg_trade(events[i % len(events)]._replace(a=i + 1))).encode()
            for i in range(n)]


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + struct.pack("!H", n) + payload
    return bytes((0x81, 127)) + struct.pack("!Q", n) + payload


async def serve(port: int, n: int, venue: str = "futures", ready: asyncio.Future | None = None) -> None:
    from websockets.asyncio.server import serve as ws_serve
    blob_frames = [ws_frame(f) for f in make_frames(n, venue)]
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
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "futures"))
