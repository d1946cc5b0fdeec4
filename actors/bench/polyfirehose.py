"""A bench-only Polymarket server: Gamma and CLOB REST from the sim's venue, and on the CLOB market
WebSocket pre-encoded real sim book traffic as fast as the client drains it.

The traffic is the sim's own (actors.sim.polymarket.exchange.PolyVenue: its books, codecs and
wire format), generated once at start in fast-forwarded time for one subscriber of the followed
series' CURRENT windows, with the feed's own subscribe message (so `best_bid_ask` comes as it would
on the venue): `price_change` batches, `book` resends, `last_trade_price`, `best_bid_ask`. It is
framed once as unmasked server WebSocket frames and written in large blocks, so the sender costs
little CPU and the receiver is what is measured (as actors/bench/firehose.py does for Binance).
The update rate is the sim's maximum per window (SIM_POLY_UPDATE_RATE), so the stream spans a few
seconds of venue time; its timestamps run ahead of the receive clock (ages are not measured here).

Per connection: the first text message must be a subscribe (`assets_ids`) naming every current
token; it is answered with the `book` dump of the tokens it names (current and next windows, as
the venue does), then, once the gate is open, with the N frames; every asset id in them is a current
token, so one the client subscribed. `PING` is answered `PONG`. Any other path is the venue's REST
(`/gamma/...`, `/clob/...`, answered by the same PolyVenue at the wall clock) or the bench's:
  GET /__bench/stats   {"frames", "expected": {record kind: count}, "current", "tokens"}
  GET /__bench/hold    close the gate: new connections get their dump, then wait
  GET /__bench/go      open it (the default): waiting and new connections stream

`expected` is what a correct feed writes for the stream (the dump excluded): one `poly_book`
record per book a `price_change` touched (`book_change`, only while that book is valid), per `book`
(`book_snapshot`), per `tick_size_change` (`book_gap`, the book invalid until its next `book`), and
one `poly_trade` record per `last_trade_price` (`trade`).
Run: python -m actors.bench.polyfirehose PORT N_FRAMES   (settings from the environment, as the
feed reads them: SYMBOL, POLYMARKET_WINDOWS, POLYMARKET_WINDOW_SEC, SIM_SEED, SIM_POLY_*)
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import NamedTuple

import orjson

from actors.bench.firehose import ws_frame

STEP_NS = 10_000_000            # fast-forward step of the venue's clock while generating
BLOCK_FRAMES = 512


class Traffic(NamedTuple):
    frames: list[bytes]               # the stream, in order (current windows' tokens only)
    dump: dict[str, dict]             # token -> its `book` dump at the stream's start
    current: list[str]                # the current windows' tokens (UP, DOWN per series)
    tokens: list[str]                 # current and next windows' tokens
    expected: dict[str, int]          # record kind -> records a feed writes for `frames`
    by_event: dict[str, int]          # event_type -> messages in `frames`


def _windows(venue, now_s: float) -> tuple[list[str], list[str]]:
    cur, nxt = [], []
    for s in venue.followed:
        sch = venue.cat[(venue.asset, s)]
        start = sch.start_of(now_s)
        cur += sch.window(start).tokens
        nxt += sch.window(sch.next_start(start)).tokens
    return cur, nxt


def _expect(msgs: list[dict], valid: dict[str, bool], expected: dict[str, int], by_event: dict[str, int]) -> None:
    """The records a feed writes for one frame's messages (the module docstring's rule)."""
    for m in msgs:
        et = m["event_type"]
        by_event[et] = by_event.get(et, 0) + 1
        if et == "price_change":
            expected["book_change"] += len({c["asset_id"] for c in m["price_changes"] if valid[c["asset_id"]]})
        elif et == "book":
            valid[m["asset_id"]] = True
            expected["book_snapshot"] += 1
        elif et == "tick_size_change":
            valid[m["asset_id"]] = False
            expected["book_gap"] += 1
        elif et == "last_trade_price":
            expected["trade"] += 1


def make_traffic(settings, n: int, now_ns: int) -> tuple[object, Traffic]:
    """(the venue, left at the stream's end, to answer REST; the traffic) for n frames from now."""
    from actors.sim.market import Market
    from actors.sim.polymarket.exchange import PolyVenue
    from actors.venues.polymarket.clob import subscribe_msg
    if n < 1:
        raise ValueError("the stream needs at least one frame")
    venue = PolyVenue(settings, Market.from_settings(settings, now_ns), now_ns)
    if venue.asset is None or not venue.followed:
        raise ValueError(f"{settings.general.symbol} has no up/down market to stream")
    mono = time.monotonic()
    venue.step(now_ns, mono)                       # the live windows' books start moving from now
    current, nxt = _windows(venue, now_ns / 1e9)
    dumper, sub = object(), object()               # connections are opaque keys to the venue
    venue.clob_open(dumper, mono)
    dump = {b["asset_id"]: b for text in venue.on_clob_text(dumper, subscribe_msg(current + nxt), now_ns, mono)
            for b in orjson.loads(text)}
    venue.clob_close(dumper)
    venue.clob_open(sub, mono)
    venue.on_clob_text(sub, subscribe_msg(current), now_ns, mono)
    frames: list[bytes] = []
    expected = dict.fromkeys(("book_change", "book_snapshot", "book_gap", "trade"), 0)
    by_event: dict[str, int] = {}
    valid = dict.fromkeys(current, True)
    t = now_ns
    while len(frames) < n:
        t += STEP_NS
        for conns, text, _kind in venue.step(t, mono):
            if sub in conns and len(frames) < n:
                frames.append(text.encode())
                d = orjson.loads(text)
                _expect(d if isinstance(d, list) else [d], valid, expected, by_event)
    venue.clob_close(sub)
    return venue, Traffic(frames, dump, current, current + nxt, expected, by_event)


class PolyFirehose:
    """The server's state: the traffic framed in blocks, the gate, and the venue for REST."""

    def __init__(self, venue, traffic: Traffic):
        self.venue, self.t = venue, traffic
        framed = [ws_frame(f) for f in traffic.frames]
        self.blocks = [b"".join(framed[i:i + BLOCK_FRAMES]) for i in range(0, len(framed), BLOCK_FRAMES)]
        self.gate = asyncio.Event()
        self.gate.set()
        self.streams = self.refused = 0

    def stats(self) -> dict:
        return {"frames": len(self.t.frames), "expected": self.t.expected, "by_event": self.t.by_event,
                "current": self.t.current, "tokens": self.t.tokens, "streams": self.streams,
                "refused": self.refused}

    def process_request(self, conn, request):
        from actors.sim.http import json_response
        route = request.path.partition("?")[0]
        if route == "/ws/market":
            return None
        if route == "/__bench/stats":
            return json_response(conn, 200, orjson.dumps(self.stats()).decode())
        if route in ("/__bench/hold", "/__bench/go"):
            (self.gate.clear if route == "/__bench/hold" else self.gate.set)()
            return json_response(conn, 200, orjson.dumps({"open": self.gate.is_set()}).decode())
        ans = self.venue.http(request.path, time.time_ns())
        if ans is None:
            return conn.respond(404, "Not Found\n")
        return json_response(conn, ans[0], ans[1])

    async def handler(self, conn) -> None:
        from websockets.exceptions import ConnectionClosed
        tr = conn.transport
        try:
            first = await conn.recv(decode=False)
            try:
                ids = orjson.loads(first).get("assets_ids")
            except (orjson.JSONDecodeError, AttributeError):
                ids = None
            if not isinstance(ids, list) or not set(self.t.current) <= set(ids):
                self.refused += 1              # the stream would name tokens it did not subscribe
                await conn.close(1008, "subscribe every current token first")
                return
            books = [self.t.dump[a] for a in dict.fromkeys(ids) if a in self.t.dump]
            if books:
                tr.write(ws_frame(orjson.dumps(books)))
            await self.gate.wait()
            self.streams += 1
            # flow control by the transport's pause/resume (the connection's drain), not by polling
            # the buffer: a short sleep under uvloop spins and takes CPU from the receiver
            tr.set_write_buffer_limits(high=4 << 20)
            for block in self.blocks:
                tr.write(block)
                await conn.drain()
            async for msg in conn:             # afterwards: keepalive only
                if msg == "PING":
                    tr.write(ws_frame(b"PONG"))
        except (ConnectionClosed, ConnectionError):
            pass


async def serve(port: int, n: int, ready: asyncio.Future | None = None, settings=None) -> None:
    from websockets.asyncio.server import serve as ws_serve
    from config.settings import load_settings
    s = settings or load_settings()
    venue, traffic = make_traffic(s, n, time.time_ns())
    fh = PolyFirehose(venue, traffic)
    async with ws_serve(fh.handler, "127.0.0.1", port, process_request=fh.process_request, compression=None,
                        ping_interval=None, max_size=1 << 22, logger=logging.getLogger("polyfirehose")) as server:
        if ready is not None:
            ready.set_result(server.sockets[0].getsockname()[1])
        await asyncio.Future()


if __name__ == "__main__":
    import uvloop
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
