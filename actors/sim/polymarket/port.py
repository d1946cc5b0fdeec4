"""The Polymarket port of the built-in exchange: I/O and timing only (the venue is exchange.py).

One port (`settings.sim.poly_port`) serves, by path:
- `/gamma/markets?slug=..`, `/gamma/events?slug=..`      Gamma REST  (POLYMARKET_GAMMA_URL=http://h:p/gamma;
  also `?condition_ids=..` / `?clob_token_ids=..` for a window already seen)
- `/clob/book?token_id=..`                               CLOB REST   (POLYMARKET_CLOB_URL=http://h:p/clob)
- `/ws/market`                                           CLOB market WebSocket (POLYMARKET_WS_URL)
- `/rtds`                                                RTDS WebSocket (POLYMARKET_RTDS_URL=ws://h:p/rtds)
- `POST /__sim/fault`, `GET /__sim/stats`                the sim's fault injection and counters

Fault kinds on this port (JSON body {"kind": .., ...}; `stream` is "market" (the CLOB WS), "rtds",
or a token id; without it a fault covers the whole port):
- stall {seconds[, stream|asset]}: no data frame of what it covers is sent for S s (lost; PONGs
  still flow; a dump asked meanwhile leaves the stalled tokens out);
- drop [stream]: connections aborted (TCP reset); disconnect [stream]: closed with 1001;
- malformed {count[, stream|asset]}: the next N frames replaced by ones the parsers reject;
- tick_size {asset}: a tick_size_change of that market now (0.01 <-> 0.001), the fresh `book`
  0.1-0.6 s later;
- gamma404 {count}: the next N Gamma lookups answer `[]`;
- silent_book {asset, seconds}: no frame for that token for S s while the others flow, then its
  full `book` again;
- thin_book {asset[, seconds]}: a thin episode of that market now (one side's best 10 levels
  shrink to 5-8 shares for S s, default 10), to exercise depth vetoes;
- clear: ends every fault (a silent book is resynced at once).

Keepalive: the venue asks clients to send the text `PING` (CLOB every 10 s, RTDS every 5 s) and
answers `PONG`; its server-side limits are not documented (a third-party report: idle CLOB
connections die after ~60 s). Here a connection that sent no text frame (PING or anything else;
WebSocket control frames do not count) for `sim_poly_idle_sec` (CLOB) / `sim_rtds_idle_sec` (RTDS)
is closed without a close frame, as an idle proxy does. The server sends no WebSocket pings.

Writes are synchronous (frames handed to the transport without awaiting drain), so replies and
stream frames keep their order; a client whose unsent backlog passes `max_send_buffer` is dropped.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from actors.sim.polymarket.exchange import PolyVenue
from actors.sim.polymarket.fault_rules import FaultError, parse_fault
from actors.sim.http import SimConn, json_response

log = logging.getLogger("sim")

CLOB_PATH = "/ws/market"
RTDS_PATHS = ("/rtds", "/rtds/")


class PolyServer:
    """The running port: `venue`, `port` (bound), `task` (the timing loop)."""

    def __init__(self, venue: PolyVenue, clock: Callable[[], int], max_send_buffer: int):
        self.venue = venue
        self.clock = clock
        self.max_send_buffer = max_send_buffer
        self.port = 0
        self.task: asyncio.Task | None = None
        self.dropped_slow = 0
        self._closing: set[asyncio.Task] = set()

    # --- writing ---------------------------------------------------------------------------
    def write(self, conn, texts) -> None:
        proto = conn.protocol
        if proto.state is not State.OPEN or conn.transport is None:
            return
        try:
            for t in texts:
                proto.send_text(t.encode())
            conn.transport.writelines(proto.data_to_send())
        except Exception as exc:        # a transport closing under us: its handler cleans up
            log.debug("sim: poly write to %s failed: %r", conn.remote_address, exc)
            return
        self.venue.frames_sent += len(texts)
        tr = conn.transport
        if tr.get_write_buffer_size() > self.max_send_buffer:
            log.warning("sim: dropping slow Polymarket consumer %s (%d bytes unsent)",
                        conn.remote_address, tr.get_write_buffer_size())
            self.dropped_slow += 1
            self._forget(conn)
            tr.abort()

    def send(self, frames) -> None:
        per: dict = {}
        for conns, text, _kind in frames:
            for c in conns:
                per.setdefault(c, []).append(text)
        for c, texts in per.items():
            self.write(c, texts)

    def _forget(self, conn) -> None:
        self.venue.clob_close(conn)
        self.venue.rtds_close(conn)

    def _conns(self, stream: str | None) -> list:
        v = self.venue
        if stream == "market":
            return list(v.clob)
        if stream == "rtds":
            return list(v.rtds)
        return [*v.clob, *v.rtds]

    # --- the loop ----------------------------------------------------------------------------
    async def loop(self, min_sleep: float = 0.005, max_sleep: float = 0.1) -> None:
        v = self.venue
        while True:
            mono = time.monotonic()
            self.send(v.step(self.clock(), mono))
            for conn in v.idle(mono):
                log.info("sim: closing idle Polymarket connection %s", conn.remote_address)
                self._forget(conn)
                if conn.transport is not None:
                    conn.transport.close()
            delay = (v.next_due_ns() - self.clock()) / 1e9
            await asyncio.sleep(min(max(delay, min_sleep), max_sleep))

    # --- HTTP --------------------------------------------------------------------------------
    def process_request(self, conn: SimConn, request: Request) -> Response | None:
        path = request.path
        route = path.partition("?")[0]
        v = self.venue
        if route.startswith("/__sim/"):
            return self._sim_route(conn, request, route)
        if request.method != "GET":
            return conn.respond(405, "Method Not Allowed\n")
        if route == CLOB_PATH:
            conn.poly_kind = "clob"
            return None
        if route in RTDS_PATHS:
            conn.poly_kind = "rtds"
            return None
        ans = v.http(path, self.clock())
        if ans is None:
            return conn.respond(404, "Not Found\n")
        return json_response(conn, ans[0], ans[1])

    def _sim_route(self, conn: SimConn, request: Request, route: str) -> Response:
        v = self.venue
        if route == "/__sim/stats" and request.method == "GET":
            body = v.stats(self.clock(), time.monotonic())
            body["port"] = self.port
            body["dropped_slow"] = self.dropped_slow
            return json_response(conn, 200, orjson.dumps(body).decode())
        if route == "/__sim/fault" and request.method == "POST":
            try:
                f = parse_fault(conn.http_body)
                log.warning("sim: polymarket fault %s", f)
                ans, frames = v.apply_fault(f, self.clock(), time.monotonic())
            except FaultError as exc:
                return json_response(conn, 400, orjson.dumps({"ok": False, "error": str(exc)}).decode())
            self.send(frames)
            if f["kind"] in ("drop", "disconnect"):
                conns = self._conns(f.get("stream"))
                for c in conns:
                    self._forget(c)
                    if f["kind"] == "drop":
                        if c.transport is not None:
                            c.transport.abort()
                    else:
                        t = asyncio.get_running_loop().create_task(c.close(1001, ""))
                        self._closing.add(t)
                        t.add_done_callback(self._closing.discard)
                ans["connections"] = len(conns)
            return json_response(conn, 200, orjson.dumps(ans).decode())
        return conn.respond(404, "Not Found\n")

    # --- WebSocket ---------------------------------------------------------------------------
    async def handler(self, conn: SimConn) -> None:
        v = self.venue
        kind = getattr(conn, "poly_kind", None)
        mono = time.monotonic()
        if kind == "clob":
            v.clob_open(conn, mono)
            on_text = v.on_clob_text
        else:
            self.write(conn, v.rtds_open(conn, mono))
            on_text = v.on_rtds_text
        log.info("sim: polymarket %s connection %s", kind, conn.remote_address)
        try:
            async for msg in conn:
                if conn not in v.clob and conn not in v.rtds:
                    break                      # dropped or closed by the sim meanwhile
                replies = on_text(conn, msg, self.clock(), time.monotonic())
                if replies:
                    self.write(conn, replies)
        except ConnectionClosed:
            pass
        finally:
            self._forget(conn)


@contextlib.asynccontextmanager
async def serving(settings, market, port: int, *, clock: Callable[[], int],
                  max_send_buffer: int = 8 << 20, spot=None):
    """Listen on `port` (0: the OS picks) and run the venue's loop; yields the PolyServer.
    `spot`: the sim's Binance spot venue (its klines settle the Binance-candle windows)."""
    venue = PolyVenue(settings, market, clock(), spot=spot)
    srv = PolyServer(venue, clock, max_send_buffer)
    async with ws_serve(srv.handler, settings.sim.host, port, process_request=srv.process_request,
                        create_connection=SimConn, compression=None, ping_interval=None,
                        server_header=None, max_size=1 << 20,
                        logger=logging.getLogger("sim.ws")) as wss:
        srv.port = wss.sockets[0].getsockname()[1]
        log.info("sim: Polymarket on http://%s:%d (/gamma, /clob, /ws/market, /rtds)",
                 settings.sim.host, srv.port)
        srv.task = asyncio.create_task(srv.loop())
        try:
            yield srv
        finally:
            srv.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await srv.task
            wss.close()
            await wss.wait_closed()
