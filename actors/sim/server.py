"""The built-in exchange's servers: Binance USD-M futures (WebSocket + REST on one port).

I/O and timing only; the market is actors/sim/market.py, the protocol actors/sim/binance.py.

Scheduling: one market task wakes at the next event's emit time (`Market.next_emit_ns`), never
sooner than `min_sleep` (1 ms: the event loop's timer resolution) nor later than `max_sleep`,
calls `Market.advance(time.time_ns())` and publishes what came due. At the default rate (~40
aggTrade + ~180 bookTicker per s) that is a few hundred cheap wake-ups per second; at high rates
every wake-up carries a batch (up to `batch` events, then it yields to the loop and continues).

Publishing: each event is encoded once per stream (raw payload, and the combined envelope only if
some connection wants it) and queued for every subscribed connection; the batch is then written
to each transport in one `writelines` without awaiting drain (what `websockets.broadcast` does
frame by frame), so one slow client cannot stall the others.
A client whose unsent backlog exceeds `max_send_buffer` bytes is dropped (TCP abort), as the venue
disconnects consumers that cannot keep up; the memory a slow client can pin is thus bounded.

Connections: server ping every `ping_interval` s (180 on futures), dropped if no pong within
`ping_timeout` s (600); closed by the server (1001) after `settings.sim_conn_lifetime_sec`
(the venue's 24 h); more than 10 incoming frames (text, binary, ping, pong) in a second closes the
connection (1008). No permessage-deflate (the venue does not compress either).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from actors.sim import binance
from actors.sim.market import AggTrade, Market

log = logging.getLogger("sim")

OnSent = Callable[[str, int, int], None]
_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)


class _Conn(ServerConnection):
    """A server connection that counts incoming frames against the venue's message limit."""
    session: binance.FuturesSession | None = None
    limited = False
    _close_task: asyncio.Task | None = None

    def process_event(self, event) -> None:
        if (isinstance(event, Frame) and self.session is not None and not self.limited
                and event.opcode in _COUNTED):
            if not self.session.note_incoming(time.monotonic()):
                self.limited = True
                log.warning("sim: %s sent more than %d messages/s: closing", self.remote_address,
                            binance.MSG_LIMIT)
                self._close_task = self.loop.create_task(self.close(1008, "Too many requests"))
        super().process_event(event)


class _Hub:
    """Who receives which stream, and the publishing of events to them."""

    def __init__(self, codec: binance.FuturesCodec, max_send_buffer: int):
        self.codec = codec
        self.max_send_buffer = max_send_buffer
        self.conns: set[_Conn] = set()
        self._raw: dict[str, set[_Conn]] = {}
        self._comb: dict[str, set[_Conn]] = {}
        self.frames_sent = 0
        self.dropped_slow = 0

    def attach(self, conn: _Conn) -> None:
        self.conns.add(conn)
        self.sync(conn)

    def detach(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        for d in (self._raw, self._comb):
            for s in d.values():
                s.discard(conn)

    def sync(self, conn: _Conn) -> None:
        """Re-index `conn` after its subscriptions or combined flag changed."""
        for d in (self._raw, self._comb):
            for s in d.values():
                s.discard(conn)
        sess = conn.session
        if sess is None or conn not in self.conns:
            return
        target = self._comb if sess.combined else self._raw
        for stream in sess.delivered_streams():
            target.setdefault(stream, set()).add(conn)

    def publish(self, events: list, on_sent: OnSent | None) -> None:
        """Encode each event once per stream, queue it for every receiver, then flush.

        Like `websockets.broadcast` (no awaiting drain, no backpressure), but all the frames of a
        batch go to a connection's transport in one `writelines` (one syscall per connection per
        batch instead of one per frame).
        """
        codec = self.codec
        agg_stream, book_streams = codec.agg_stream, (codec.book_stream, "!bookTicker")
        raw_d, comb_d = self._raw, self._comb
        out: dict[_Conn, list[bytes]] = {}
        sent: list[tuple[str, int]] = []
        for ev in events:
            if type(ev) is AggTrade:
                streams, key, enc = (agg_stream,), ev.a, codec.agg_trade
            else:
                streams, key, enc = book_streams, ev.u, codec.book_ticker
            payload = None
            for stream in streams:
                raw = raw_d.get(stream)
                comb = comb_d.get(stream)
                if not raw and not comb:
                    continue
                if payload is None:
                    payload = enc(ev)
                if raw:
                    data = payload.encode()
                    for conn in raw:
                        q = out.get(conn)
                        if q is None:
                            out[conn] = [data]
                        else:
                            q.append(data)
                if comb:
                    data = binance.combined(stream, payload).encode()
                    for conn in comb:
                        q = out.get(conn)
                        if q is None:
                            out[conn] = [data]
                        else:
                            q.append(data)
                sent.append((stream, key))
        if not out:
            return
        for conn, frames in out.items():
            proto = conn.protocol
            if proto.state is not State.OPEN or conn.send_in_progress is not None:
                continue
            try:
                for data in frames:
                    proto.send_text(data)
                conn.transport.writelines(proto.data_to_send())
            except Exception as exc:   # a transport closing under us: its handler cleans up
                log.debug("sim: write to %s failed: %r", conn.remote_address, exc)
        if on_sent is not None:
            for stream, key in sent:
                on_sent(stream, key, time.time_ns())
        self.frames_sent += len(sent)
        self._drop_slow()

    def _drop_slow(self) -> None:
        limit = self.max_send_buffer
        for conn in list(self.conns):
            tr = conn.transport
            if tr is not None and tr.get_write_buffer_size() > limit:
                log.warning("sim: dropping slow consumer %s (%d bytes unsent)",
                            conn.remote_address, tr.get_write_buffer_size())
                self.dropped_slow += 1
                self.detach(conn)
                tr.abort()


def _json_response(conn: ServerConnection, status: int, body: str) -> Response:
    resp = conn.respond(status, body)
    del resp.headers["Content-Type"]
    resp.headers["Content-Type"] = "application/json"
    return resp


async def _market_loop(market: Market, hub: _Hub, on_sent: OnSent | None, *, min_sleep: float,
                       max_sleep: float, batch: int) -> None:
    behind_warned = 0.0
    while True:
        now = time.time_ns()
        events = market.advance(now, batch)
        if events:
            hub.publish(events, on_sent)
            lag_s = (now - events[0].emit_ns) / 1e9
            if lag_s > 1.0 and time.monotonic() - behind_warned > 10.0:
                behind_warned = time.monotonic()
                log.warning("sim: market publishing %.1f s behind real time (rate too high for "
                            "this process?)", lag_s)
            if len(events) >= batch:
                await asyncio.sleep(0)
                continue
        delay = (market.next_emit_ns() - time.time_ns()) / 1e9
        await asyncio.sleep(min(max(delay, min_sleep), max_sleep))


async def serve(settings, *, on_sent: OnSent | None = None, stop: asyncio.Event | None = None,
                port: int | None = None, ready: asyncio.Future | None = None,
                ping_interval: float | None = 180.0, ping_timeout: float | None = 600.0,
                max_send_buffer: int = 8 << 20, market: Market | None = None,
                min_sleep: float = 0.002, max_sleep: float = 0.05, batch: int = 2000,
                heartbeat=None) -> None:
    """Run the futures server on `settings.sim_host`:`settings.sim_port` until `stop` is set.

    port: overrides `settings.sim_port` (0 lets the OS pick). ready: a future set to the bound
    port once listening. on_sent(stream, key, ts_ns): called right after each frame is handed to
    the transports (key: aggTrade `a`, bookTicker `u`; ts_ns: time.time_ns()). market: a Market to
    run instead of `Market.from_settings(settings, now)`. heartbeat(counters): called every 0.5 s.
    """
    if market is None:
        market = Market.from_settings(settings, time.time_ns())
    codec = binance.FuturesCodec(market.instrument)
    hub = _Hub(codec, max_send_buffer)
    lifetime = float(settings.sim_conn_lifetime_sec)
    stop = stop or asyncio.Event()

    def process_request(conn: _Conn, request: Request) -> Response | None:
        rest = binance.rest(request.path, time.time_ns() // 1_000_000)
        if rest is not None:
            return _json_response(conn, rest[0], rest[1])
        parsed = binance.parse_ws_path(request.path)
        if parsed is None:
            return conn.respond(404, "Not Found\n")
        route, comb, streams = parsed
        conn.session = binance.FuturesSession(route, comb, streams)
        return None

    async def handler(conn: _Conn) -> None:
        sess = conn.session
        assert sess is not None
        hub.attach(conn)
        log.info("sim: connection %s %s", conn.remote_address, conn.request.path)
        try:
            async with asyncio.timeout(lifetime):
                async for msg in conn:
                    if conn.limited:
                        break
                    reply = sess.handle(msg)
                    hub.sync(conn)
                    await conn.send(reply)
                if conn.limited:
                    await conn.wait_closed()
        except TimeoutError:
            log.info("sim: closing %s after its %.0f s lifetime", conn.remote_address, lifetime)
            hub.detach(conn)
            await conn.close(1001, "")
        except ConnectionClosed:
            pass
        finally:
            hub.detach(conn)

    async with ws_serve(handler, settings.sim_host, settings.sim_port if port is None else port,
                        process_request=process_request, create_connection=_Conn,
                        compression=None, ping_interval=ping_interval, ping_timeout=ping_timeout,
                        server_header=None, logger=logging.getLogger("sim.ws")) as server:
        bound = server.sockets[0].getsockname()[1]
        log.info("sim: Binance futures on ws://%s:%d (/public, /market, /fapi/v1)",
                 settings.sim_host, bound)
        if ready is not None and not ready.done():
            ready.set_result(bound)
        task = asyncio.create_task(_market_loop(market, hub, on_sent, min_sleep=min_sleep,
                                                max_sleep=max_sleep, batch=batch))
        stop_wait = asyncio.create_task(stop.wait())

        async def beat() -> None:
            while True:
                heartbeat({"frames_sent": hub.frames_sent, "connections": len(hub.conns),
                           "dropped_slow": hub.dropped_slow, "trades": market.n_trades})
                await asyncio.sleep(0.5)

        beat_task = asyncio.create_task(beat()) if heartbeat is not None else stop_wait
        try:
            done, _ = await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()   # the market task died: raise its error
        finally:
            for t in (task, stop_wait, beat_task):
                t.cancel()
            server.close()
            await server.wait_closed()
    log.info("sim: stopped (%d frames sent, %d slow consumers dropped)", hub.frames_sent,
             hub.dropped_slow)


def main(settings) -> None:
    """Run the sim under uvloop until SIGTERM/SIGINT, then close connections gracefully."""
    import uvloop

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop, heartbeat=hb.beat)

    from ipc.state import Heartbeat, Registry
    hb = Heartbeat(Registry(settings.shm_dir, settings.shm_prefix), "sim")
    uvloop.run(_run())
