"""The sim serving a recording (`python run.py --replay DIR [--speed X]`): same ports, same routes.

Each recorded WebSocket frame is sent, byte for byte, on the route its connection came from, when
the data clock (ipc/clock.py, shared by every actor of the replay) reaches its receive time: the
feeds stamp it, age it and bucket it as they did when it was recorded, at any speed. REST answers
the feeds and the context actor received are served back to the same requests.

Routes, by the recorded venue and connection:
  futures market|public -> futures port /market/…|/public/…    spot combined -> spot port /stream…
  poly market -> poly port /ws/market    chainlink rtds -> poly port /rtds
  REST: futures -> futures port /…    gamma -> poly port /gamma/…    clob -> poly port /clob/…
A REST request is matched on service, path and query without its time parameters (the clock
makes them differ by milliseconds); the answer recorded last at or before now is served, else the
first one, else a JSON 404.

Invariants:
- frames the venue sent in reply to the client (acks, PONGs: streams "_ack", "_control",
  "_error") are not replayed; the replay server answers the client's `PING` text itself;
- a frame due while no client is connected on its route is lost, as on the venue; except at the
  start: a route's first frame waits (up to FIRST_CLIENT_WAIT_SEC) for the feed to connect;
- every connection on a route gets the same frames in recorded order (`broadcast`);
- `done` in the heartbeat (and GET /__sim/stats) turns true after the last frame was sent.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.asyncio.server import broadcast, serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from ipc import recording
from ipc import clock

log = logging.getLogger("sim")

NOT_REPLAYED = ("_ack", "_control", "_error")
FIRST_CLIENT_WAIT_SEC = 30.0
TIME_PARAMS = ("startTime", "endTime", "timestamp")
WS_ROUTES = {("futures", "market"): ("futures", "/market"), ("futures", "public"): ("futures", "/public"),
             ("spot", "combined"): ("spot", "/stream"), ("poly", "market"): ("poly", "/ws/market"),
             ("chainlink", "rtds"): ("poly", "/rtds")}
REST_ROUTES = {"futures": ("futures", ""), "spot": ("spot", ""), "gamma": ("poly", "/gamma"),
               "clob": ("poly", "/clob")}


def rest_key(service: str, target: str) -> tuple:
    parts = urlsplit(target)
    query = tuple(sorted((k, v) for k, v in parse_qsl(parts.query) if k not in TIME_PARAMS))
    return service, parts.path, query


class Recording:
    """The frames to send per route, and the REST answers, loaded from a recording directory."""

    def __init__(self, root: Path):
        self.ws: dict[tuple[str, str], list[tuple[int, str | bytes]]] = {}
        self.rest: dict[tuple, list[tuple[int, int, bytes]]] = {}
        self.unrouted = 0
        for venue, rec in recording.iter_all(Path(root)):
            if rec["stream"] in NOT_REPLAYED:
                continue
            if rec["conn"] == "rest":
                service, status, target = rec["meta"].split(" ", 2)
                self.rest.setdefault(rest_key(service, target), []).append(
                    (rec["ts_recv_ns"], int(status), recording.frame_bytes(rec)))
                continue
            route = WS_ROUTES.get((venue, rec["conn"]))
            if route is None:
                self.unrouted += 1
                continue
            payload = rec["frame"] if "frame" in rec else recording.frame_bytes(rec)
            self.ws.setdefault(route, []).append((rec["ts_recv_ns"], payload))
        firsts = [v[0][0] for v in self.ws.values() if v]
        lasts = [v[-1][0] for v in self.ws.values() if v]
        self.start_ns = min(firsts) if firsts else 0
        self.end_ns = max(lasts) if lasts else 0
        self.frames = sum(len(v) for v in self.ws.values())

    def answer(self, key: tuple, now_ns: int) -> tuple[int, bytes] | None:
        answers = self.rest.get(key)
        if not answers:
            return None
        best = answers[0]
        for a in answers:
            if a[0] <= now_ns:
                best = a
        return best[1], best[2]


def first_frame_ns(root: Path) -> int:
    """Receive time of the first frame of a recording (the replay clock's origin)."""
    firsts = []
    for venue in recording.venues(Path(root)):
        for rec in recording.iter_venue(Path(root), venue):
            if rec["conn"] != "rest" and rec["stream"] not in NOT_REPLAYED:
                firsts.append(rec["ts_recv_ns"])
                break
    if not firsts:
        raise ValueError(f"{root}: no recorded frames")
    return min(firsts)


class ReplayServer:
    def __init__(self, rec: Recording):
        self.rec = rec
        self.conns: dict[tuple[str, str], set] = {route: set() for route in WS_ROUTES.values()}
        self.sent = 0
        self.lost_no_client = 0
        self.done = False

    def stats(self) -> dict:
        return {"replay": {"done": self.done, "frames_sent": self.sent, "frames": self.rec.frames,
                           "lost_no_client": self.lost_no_client, "start_ns": self.rec.start_ns,
                           "end_ns": self.rec.end_ns, "clock_ns": clock.now_ns(),
                           "connections": sum(len(c) for c in self.conns.values())}}

    async def pump(self, route, frames) -> None:
        conns = self.conns[route]
        deadline = asyncio.get_running_loop().time() + FIRST_CLIENT_WAIT_SEC
        while not conns and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)            # the first frames wait for the feed's first connect
        i, n = 0, len(frames)
        while i < n:
            wait_ns = frames[i][0] - clock.now_ns()
            if wait_ns > 0:
                await asyncio.sleep(min(clock.wall_sec(wait_ns), 0.5))
                continue
            now = clock.now_ns()
            j = i
            while j < n and frames[j][0] <= now:
                j += 1
            for _, payload in frames[i:j]:
                if conns:
                    broadcast(conns, payload)
                else:
                    self.lost_no_client += 1
            self.sent += j - i
            i = j
            await asyncio.sleep(0)          # let the clients' writes and reads run

    def process_request(self, port_name: str):
        def handle(conn, request):
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return None
            parts = urlsplit(request.path)
            if parts.path == "/__sim/stats":
                return _json(200, orjson.dumps(self.stats()))
            for service, (pname, prefix) in REST_ROUTES.items():
                if pname != port_name or not parts.path.startswith(prefix):
                    continue
                target = request.path[len(prefix):]
                found = self.rec.answer(rest_key(service, target), clock.now_ns())
                if found is not None:
                    return _json(found[0], found[1])
            return _json(404, orjson.dumps({"error": f"not in the recording: {request.path}"}))
        return handle

    def handler(self, port_name: str):
        async def handle(conn) -> None:
            path = urlsplit(conn.request.path).path
            route = next((r for r in self.conns if r[0] == port_name and path.startswith(r[1])), None)
            if route is None:
                await conn.close(1008, "no such stream route in the recording")
                return
            self.conns[route].add(conn)
            try:
                async for msg in conn:
                    if msg in ("PING", "ping"):
                        await conn.send("PONG")
            except ConnectionClosed:
                pass
            finally:
                self.conns[route].discard(conn)
        return handle


def _json(status: int, body: bytes) -> Response:
    reason = {200: "OK", 404: "Not Found"}.get(status, "Status")
    return Response(status, reason, Headers({"Content-Type": "application/json",
                                            "Content-Length": str(len(body))}), body)


async def serve(settings, *, stop: asyncio.Event, heartbeat=None) -> None:
    rec = Recording(Path(settings.replay.replay_dir))
    srv = ReplayServer(rec)
    log.info("sim: replaying %s: %d frames, %.1f s of data at speed %g", settings.replay.replay_dir,
             rec.frames, (rec.end_ns - rec.start_ns) / 1e9, clock.speed())
    ports = {"futures": settings.sim.port, "spot": settings.sim.spot_port, "poly": settings.sim.poly_port}
    servers = []
    for name, port in ports.items():
        servers.append(await ws_serve(srv.handler(name), settings.sim.host, port,
                                      process_request=srv.process_request(name), compression=None,
                                      max_size=None, ping_interval=20, ping_timeout=60))
    pumps = [asyncio.create_task(srv.pump(route, frames)) for route, frames in rec.ws.items()]

    async def finish() -> None:
        await asyncio.gather(*pumps)
        srv.done = True
        log.info("sim: replay done: %d frames sent, %d with no client", srv.sent, srv.lost_no_client)

    fin = asyncio.create_task(finish())
    while not stop.is_set():
        if heartbeat is not None:
            heartbeat(srv.stats()["replay"])
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass
    fin.cancel()
    for p in pumps:
        p.cancel()
    for s in servers:
        s.close()
        await s.wait_closed()
