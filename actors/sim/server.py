"""The built-in exchange's servers: Binance USD-M futures and spot, WebSocket + REST, one process.

I/O and timing only. The markets are actors/sim/market.py and binance/spot_market.py (spot follows
the futures latent price, so both venues move together with a small basis); protocols
binance/codec.py (futures) and binance/spot_market.py (spot); depth binance/depth_book.py; klines
binance/kline_bars.py; mark price and liquidations binance/mark.py; REST binance/rest_api.py; faults
faults.py; per-venue wiring binance/venue.py; fan-out binance/hub.py.

Ports: futures on `settings.sim.port` (routes `/public/...`, `/market/...`, REST `/fapi/v1/...`),
spot on `settings.sim.spot_port` (`/ws...`, `/stream?streams=...`, REST `/api/v3/...`),
Polymarket on `settings.sim.poly_port` (Gamma `/gamma/...`, CLOB `/clob/...`, `/ws/market`, RTDS
`/rtds`: actors/sim/polymarket/port.py, driven by the futures market). Each port also answers the
sim-only `POST /__sim/fault` and `GET /__sim/stats` (faults.py; polymarket/port.py for Polymarket).

Scheduling: one task runs both venues. It wakes at the next market event's emit time
(`Market.next_emit_ns`, which includes spot) or the next timer (depth, kline, mark), never sooner
than `min_sleep` nor later than `max_sleep`; calls `advance(clock())` on both markets and
publishes what came due, then closes klines and runs the due timers. At the default rate that is
a few hundred cheap wake-ups per second; at high rates each wake-up carries a batch (up to `batch`
events, then it yields to the loop and continues).

Connections: server ping every `ping_interval` s (futures 180, spot 20), dropped if no pong within
`ping_timeout` s (futures 600, spot 60); closed by the server (1001) after
`settings.sim.conn_lifetime_sec` (the venue's 24 h), a spot connection getting the venue's
`serverShutdown` event `spot_market.notice_sec(lifetime)` before (the `server_shutdown` fault sends
it at once and closes after its seconds); more incoming frames (text, binary, ping,
pong) than the venue allows in a second (futures 10, spot 5) closes the connection (1008). No
permessage-deflate (the venue does not compress either).

HTTP: the WebSocket server's `process_request` answers REST GETs. websockets only parses GET
requests without a body, so a POST's body is taken off the byte stream before websockets sees the
request (actors/sim/http.py, `SimConn`) and handed to the route on the connection.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import orjson
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from actors.sim.binance import codec as binance
from actors.sim.binance import kline_bars as kl
from actors.sim.binance import spot_market as sp
from actors.sim import taapi_bulk as sim_taapi
from actors.sim.faults import FaultError, parse_fault
from actors.sim.binance.hub import OnSent
from actors.sim.market import Market
from actors.sim.binance.venue import Venue
from actors.sim.http import SimConn, json_response
from actors.sim.polymarket import port as poly_server

log = logging.getLogger("sim")

def build_venues(settings, market: Market, *, max_send_buffer: int,
                 spot_market: sp.SpotMarket | None = None) -> tuple[Venue, Venue]:
    """The futures venue on `market` and the spot venue following it, with their histories."""
    spot = spot_market or sp.SpotMarket.from_settings(settings, market)
    start_ms = market.book_ticker_now().T
    fut_hist = kl.History.synthesize(market.instrument, seed=settings.sim.seed,
                                     start_ms=start_ms, start_price=market.book()[0],
                                     trade_rate=market.trade_rate,
                                     first_tid=market.next_ids()[1], params=market.params)
    spot_size = kl.order_size_mean(spot.params)
    spot_hist = kl.History.follow(
        fut_hist, spot.instrument, seed=settings.sim.seed, start_price=spot.book()[0],
        basis_bps=market.basis_bps(), first_tid=spot.next_ids()[1],
        vol_ratio=spot.trade_rate / market.trade_rate * spot_size
        / kl.order_size_mean(market.params),
        fill_size=spot_size / kl.fills_mean(spot.params), params=market.params)
    fut = Venue("futures", market, seed=settings.sim.seed, ban_sec=settings.sim.rest_ban_sec,
                max_send_buffer=max_send_buffer, history=fut_hist,
                liquidation_rate=settings.sim.liquidation_rate_per_sec)
    spv = Venue("spot", spot, seed=settings.sim.seed + 1, ban_sec=settings.sim.rest_ban_sec,
                max_send_buffer=max_send_buffer, history=spot_hist, fut_market=market)
    return fut, spv


async def _market_loop(market: Market, venues: tuple[Venue, Venue], clock: Callable[[], int], *,
                       min_sleep: float, max_sleep: float, batch: int) -> None:
    fut, spv = venues
    spot = spv.market
    behind_warned = 0.0
    while True:
        now = clock()
        now_s = time.monotonic()
        now_ms = now // 1_000_000
        fev = market.advance(now, batch)
        sev = spot.advance(now, batch)
        if fev:
            fut.on_events(fev, now_s)
        if sev:
            spv.on_events(sev, now_s)
        for v in venues:
            v.after_events(now_ms, now_s)
            v.run_jobs(now_ms, now_s)
        if fev:
            lag_s = (now - fev[0].emit_ns) / 1e9
            if lag_s > 1.0 and time.monotonic() - behind_warned > 10.0:
                behind_warned = time.monotonic()
                log.warning("sim: market publishing %.1f s behind real time (rate too high for "
                            "this process?)", lag_s)
        if len(fev) >= batch or len(sev) >= batch:
            await asyncio.sleep(0)
            continue
        wake = min(market.next_emit_ns(), min(v.next_due_ms() for v in venues) * 1_000_000)
        delay = (wake - clock()) / 1e9
        await asyncio.sleep(min(max(delay, min_sleep), max_sleep))


async def serve(settings, *, on_sent: OnSent | None = None, stop: asyncio.Event | None = None,
                port: int | None = None, ready: asyncio.Future | None = None,
                ping_interval: float | None = 180.0, ping_timeout: float | None = 600.0,
                max_send_buffer: int = 8 << 20, market: Market | None = None,
                min_sleep: float = 0.002, max_sleep: float = 0.05, batch: int = 2000,
                heartbeat=None, spot_port: int | None = None,
                spot_ready: asyncio.Future | None = None,
                spot_ping_interval: float | None = 20.0, spot_ping_timeout: float | None = 60.0,
                clock: Callable[[], int] | None = None, poly_port: int | None = None,
                poly_ready: asyncio.Future | None = None) -> None:
    """Run both venues on `settings.sim.host` until `stop` is set.

    port / spot_port / poly_port: override `settings.sim.port` / `settings.sim.spot_port` /
    `settings.sim.poly_port` (0: the OS picks; poly_port follows port=0 when not given).
    ready / spot_ready / poly_ready: futures set to the bound futures / spot / Polymarket port.
    The Polymarket + RTDS port (actors/sim/polymarket/port.py) is driven by the futures market.
    on_sent(stream, key, ts_ns): called right after each futures frame is handed to the
    transports (key: aggTrade `a`, bookTicker and depth `u`, otherwise `E`; ts_ns:
    time.time_ns()). market: a futures Market to run instead of `Market.from_settings(settings,
    now)` (the spot market follows it). heartbeat(counters): called every 0.5 s.
    clock: the venue clock in epoch ns (default time.time_ns); tests shift it to put a kline
    boundary a few seconds away.
    """
    clock = clock or time.time_ns
    if market is None:
        market = Market.from_settings(settings, clock())
    venues = build_venues(settings, market, max_send_buffer=max_send_buffer)
    fut, spv = venues
    taapi = sim_taapi.TaapiSim.from_settings(settings, fut, spv)    # POST /taapi/bulk
    fut.on_sent = on_sent
    lifetime = float(settings.sim.conn_lifetime_sec)
    stop = stop or asyncio.Event()
    ports: dict[str, int] = {}

    def make_process_request(v: Venue):
        def process_request(conn: SimConn, request: Request) -> Response | None:
            path = request.path
            now_ms = clock() // 1_000_000
            if path.startswith("/__sim/"):
                return sim_route(v, conn, request, now_ms)
            if v.futures and taapi.owns(path):
                return json_response(conn, *taapi.answer(request.method, path, conn.http_body, now_ms))
            if request.method != "GET":
                return conn.respond(405, "Method Not Allowed\n")
            ip = conn.remote_address[0] if conn.remote_address else "?"
            forced = v.faults.rest_override if v.rest.routes.get(path.partition("?")[0]) else None
            ans = v.rest.handle(path, ip, now_ms, forced() if forced else None)
            if ans is not None:
                return json_response(conn, ans[0], ans[2], ans[1])
            if v.futures:
                parsed = binance.parse_ws_path(path)
                if parsed is None:
                    return conn.respond(404, "Not Found\n")
                route, comb, streams = parsed
                conn.session = binance.FuturesSession(route, comb, streams)
            else:
                parsed = sp.parse_spot_path(path)
                if parsed is None:
                    return conn.respond(404, "Not Found\n")
                conn.session = sp.SpotSession(*parsed)
            return None
        return process_request

    def sim_route(v: Venue, conn: SimConn, request: Request, now_ms: int) -> Response:
        p = request.path.partition("?")[0]
        if p == "/__sim/stats" and request.method == "GET":
            body = v.stats(now_ms)
            body["ports"] = ports
            return json_response(conn, 200, orjson.dumps(body).decode())
        if p == "/__sim/fault" and request.method == "POST":
            try:
                f = parse_fault(conn.http_body)
                ans = v.apply_fault(f, now_ms)
            except FaultError as exc:
                return json_response(conn, 400, orjson.dumps({"ok": False, "error": str(exc)}).decode())
            log.warning("sim: %s fault %s", v.name, f)
            return json_response(conn, 200, orjson.dumps(ans).decode())
        return conn.respond(404, "Not Found\n")

    def make_handler(v: Venue):
        hub = v.hub
        # spot announces the lifetime close with serverShutdown (binance/spot_market.py)
        notice = 0.0 if v.futures else sp.notice_sec(lifetime)

        async def answer(conn: SimConn, seconds: float) -> bool:
            """Answer the client's messages for `seconds`; True: the time ran out (still open)."""
            sess = conn.session
            try:
                async with asyncio.timeout(seconds):
                    async for msg in conn:
                        if conn.limited:
                            break
                        reply = sess.handle(msg)
                        hub.sync(conn)
                        await conn.send(reply)
                    if conn.limited:
                        await conn.wait_closed()
            except TimeoutError:
                return True
            return False

        async def handler(conn: SimConn) -> None:
            assert conn.session is not None
            hub.attach(conn)
            log.info("sim: %s connection %s %s", v.name, conn.remote_address, conn.request.path)
            try:
                expired = await answer(conn, lifetime - notice)
                if expired and notice > 0:
                    hub.send_direct(conn, v.shutdown_frame(clock() // 1_000_000))
                    expired = await answer(conn, notice)
                if expired:
                    log.info("sim: closing %s after its %.0f s lifetime", conn.remote_address,
                             lifetime)
                    hub.detach(conn)
                    await conn.close(1001, "")
            except ConnectionClosed:
                pass
            finally:
                hub.detach(conn)
        return handler

    def ws(v: Venue, p: int, pi, pt):
        return ws_serve(make_handler(v), settings.sim.host, p,
                        process_request=make_process_request(v), create_connection=SimConn,
                        compression=None, ping_interval=pi, ping_timeout=pt, server_header=None,
                        logger=logging.getLogger("sim.ws"))

    fport = settings.sim.port if port is None else port
    sport = settings.sim.spot_port if spot_port is None else spot_port
    pport = poly_port if poly_port is not None else (0 if port == 0 else settings.sim.poly_port)
    async with ws(fut, fport, ping_interval, ping_timeout) as fsrv, \
            ws(spv, sport, spot_ping_interval, spot_ping_timeout) as ssrv, \
            poly_server.serving(settings, market, pport, clock=clock,
                                max_send_buffer=max_send_buffer, spot=spv) as psrv:
        ports["futures"] = fsrv.sockets[0].getsockname()[1]
        ports["spot"] = ssrv.sockets[0].getsockname()[1]
        log.info("sim: Binance futures on ws://%s:%d (/public, /market, /fapi/v1), spot on "
                 "ws://%s:%d (/ws, /stream, /api/v3)", settings.sim.host, ports["futures"],
                 settings.sim.host, ports["spot"])
        for fut_ready, bound in ((ready, ports["futures"]), (spot_ready, ports["spot"]),
                                 (poly_ready, psrv.port)):
            if fut_ready is not None and not fut_ready.done():
                fut_ready.set_result(bound)
        task = asyncio.create_task(_market_loop(market, venues, clock, min_sleep=min_sleep,
                                                max_sleep=max_sleep, batch=batch))
        stop_wait = asyncio.create_task(stop.wait())

        async def beat() -> None:
            while True:
                heartbeat({"frames_sent": fut.hub.frames_sent, "connections": len(fut.hub.conns),
                           "dropped_slow": fut.hub.dropped_slow, "trades": market.n_trades,
                           "spot_frames_sent": spv.hub.frames_sent,
                           "spot_connections": len(spv.hub.conns),
                           "spot_trades": spv.market.n_trades,
                           "poly_frames_sent": psrv.venue.frames_sent,
                           "poly_connections": len(psrv.venue.clob) + len(psrv.venue.rtds)})
                await asyncio.sleep(0.5)

        beat_task = asyncio.create_task(beat()) if heartbeat is not None else stop_wait
        try:
            done, _ = await asyncio.wait({task, stop_wait, psrv.task},
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in (task, psrv.task):
                if t in done:
                    t.result()   # the market or Polymarket task died: raise its error
        finally:
            for t in (task, stop_wait, beat_task):
                t.cancel()
            fsrv.close()
            ssrv.close()
            await fsrv.wait_closed()
            await ssrv.wait_closed()
    log.info("sim: stopped (futures %d, spot %d frames sent; %d slow consumers dropped)",
             fut.hub.frames_sent, spv.hub.frames_sent, fut.hub.dropped_slow + spv.hub.dropped_slow)
