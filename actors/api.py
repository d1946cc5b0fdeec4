"""The `api` actor: a Falcon ASGI app under gunicorn with uvicorn workers
(actors/obs/uvicorn_front.py: an idle or half-sent connection costs a file descriptor, never a
worker); it reads shared memory only.

Invariants:
- no request waits on another actor (control requests excepted, with a timeout, off the event
  loop): every GET is a seqlock read of a state block or of the heartbeat registry;
- a state block or heartbeat slot that does not decode (torn, junk) is "no data": 503 for a
  block, the actor left out for a slot; never a 500, never a 200 with the junk; counted in
  `tdc_api_undecodable_total{segment}`;
- /health names an actor in a crash loop (its heartbeat's `starts.crash_loop`) as a problem (503);
- JSON everywhere through one media handler (orjson); bad input is a 4xx with a JSON error;
  an unexpected fault is a 500 with a JSON error and no stack trace (it is logged instead);
- every error body is `{"title", "description"}` JSON whatever the client's Accept header says
  (falcon would answer XML to an XML-preferring client): unknown route 404, unknown method 405,
  bad query 400 (a `series` that is not a known series name included), a valid series this
  system does not follow 404, bad or missing token 401 (compared in constant time), control disabled 403,
  body over MAX_BODY_BYTES 413 (checked on Content-Length before routing, and again while
  reading), a chunked body (no Content-Length: falcon would read it as empty) 411, a body that
  is not application/json 415;
- the blocks that hold every followed series (`/latest/edge`, `/latest/polymarket`) are served
  whole without a query, and one series' document with `?series=<series>`;
- `GET /openapi.json` describes every route (actors/obs/openapi.py); the tests fuzz the app against it.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time

import falcon
import falcon.asgi
import orjson

from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.state import Registry, StateBlock, pid_running

log = logging.getLogger("api")

JSON = falcon.MEDIA_JSON
BOOK_VENUES = names.BINANCE_VENUES


def _dumps(obj) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


_undecodable = None


def count_undecodable(segment: str) -> None:
    """prometheus_client imported lazily, as in actors/obs/uvicorn_front.py."""
    global _undecodable
    if _undecodable is None:
        from prometheus_client import Counter
        _undecodable = Counter("tdc_api_undecodable", "state blocks or heartbeat slots read that did not "
                               "decode (torn or junk), served as no data", ["segment"], registry=None)
        log.warning("a shared-memory segment did not decode: %s (served as no data; counted)", segment)
    _undecodable.labels(segment).inc()


def undecodable_count(segment: str) -> float:
    """This process's count for `segment` (tests)."""
    return 0.0 if _undecodable is None else _undecodable.labels(segment)._value.get()


def _decodes(data) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


_HB_TYPES = {"pid": int, "alive_ns": int, "start_ns": int}


def _heartbeat_ok(hb) -> bool:
    return isinstance(hb, dict) and all(type(hb.get(k)) is t for k, t in _HB_TYPES.items())


def _crash_loop(hb: dict) -> dict | None:
    """The heartbeat's `starts` (actors' start history, see supervision) when it says crash loop."""
    st = hb.get("starts")
    if isinstance(st, dict) and st.get("crash_loop") is True:
        return st
    return None


class ShmView:
    """What the API reads: the latest-state blocks and the registry."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.blocks = {n: StateBlock(settings.ipc.shm_dir, settings.ipc.shm_prefix, n)
                       for n in (*names.COMPUTE_BLOCKS, names.POLYMARKET_BLOCK)}
        self.registry = Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix)

    def raw(self, name: str) -> bytes | None:
        """The block's JSON bytes as stored, or None (never written, or it does not decode)."""
        data = self.blocks[name].read_bytes()
        if data is None:
            return None
        if not _decodes(data):
            count_undecodable(name)
            return None
        return data

    def doc(self, name: str):
        data = self.blocks[name].read_bytes()
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            count_undecodable(name)
            return None

    def heartbeats(self) -> dict[str, dict]:
        out = {}
        for name in names.HEARTBEAT_NAMES:
            try:
                hb = self.registry.read(name)
            except orjson.JSONDecodeError:
                hb = False
            if hb is None:
                continue
            if not _heartbeat_ok(hb):
                count_undecodable(f"registry.{name}")
                continue
            out[name] = hb
        return out

    def actors(self, now_ns: int) -> dict[str, dict]:
        alive_ns = int(self.s.ipc.health_alive_sec * 1e9)
        stale_ns = int(self.s.ipc.health_data_stale_sec * 1e9)
        data_now_ns = clock.now_ns()     # data time (replay-aware); heartbeats stay on the wall clock
        out = {}
        for name, hb in self.heartbeats().items():
            age_ns = now_ns - hb["alive_ns"]
            running = pid_running(hb["pid"])
            info = {"pid": hb["pid"], "running": running,
                    "alive": running and age_ns <= alive_ns and not hb.get("stopped"),
                    "heartbeat_age_ms": age_ns / 1e6, "uptime_s": (now_ns - hb["start_ns"]) / 1e9,
                    "counters": hb.get("counters", {})}
            # compute's tick histogram, overruns per ring, per-series counters ({series: {name: n}})
            for extra in ("hist", "rings", "series", "starts"):
                if extra in hb:
                    info[extra] = hb[extra]
            for key in ("alert", "recording"):     # the recorder's disk state
                if hb.get(key) is not None:
                    info[key] = hb[key]
            feed = hb.get("feed")
            if feed:
                streams = {}
                for kind, st in feed["streams"].items():
                    last = st.get("last_recv_ns") or 0
                    age = (data_now_ns - last) if last else None
                    quiet = st.get("max_silence_s", 0)
                    if quiet is None:      # may be silent for long (liquidations): never stale
                        fresh = True
                    else:
                        fresh = age is not None and age <= max(stale_ns, quiet * 1e9)
                    streams[kind] = {**st, "age_ms": age / 1e6 if age is not None else None,
                                     "fresh": fresh}
                info["streams"] = streams
                info["connections"] = feed.get("connections", {})
                info["last_venue_error"] = feed.get("last_venue_error", "")
                info["data_fresh"] = bool(streams) and all(v["fresh"] for v in streams.values())
            out[name] = info
        return out


class HealthResource:
    def __init__(self, view: ShmView, required: tuple[str, ...]):
        self.view, self.required = view, required

    async def on_get(self, req, resp):
        now = time.time_ns()
        actors = self.view.actors(now)
        problems = []
        for name in self.required:
            a = actors.get(name)
            if a is None:
                problems.append(f"{name}: never seen")
            elif not a["alive"]:
                why = "process gone" if not a["running"] else f"heartbeat {a['heartbeat_age_ms']:.0f} ms ago"
                problems.append(f"{name}: not alive ({why})")
            elif a.get("data_fresh") is False:
                stale = [k for k, v in a["streams"].items() if not v["fresh"]]
                problems.append(f"{name}: stale data on {', '.join(stale)}")
            if a is not None and (loop := _crash_loop(a)) is not None:
                problems.append(f"{name}: crash loop ({loop.get('recent')} starts in {loop.get('window_sec')} s)")
        resp.media = {"status": "ok" if not problems else "unhealthy", "problems": problems,
                      "required": list(self.required), "actors": actors, "ts_ns": now}
        resp.status = falcon.HTTP_200 if not problems else falcon.HTTP_503


class StateResource:
    def __init__(self, view: ShmView):
        self.view = view

    async def on_get(self, req, resp):
        now = time.time_ns()
        actors = self.view.actors(now)
        resp.media = {"ts_ns": now, "quality": self.view.doc(names.QUALITY_BLOCK), "actors": actors,
                      "alerts": [{"actor": k, "alert": a["alert"]} for k, a in actors.items()
                                 if a.get("alert")]}


class LatestResource:
    """Serves a state block as stored (no decode/encode on the hot path)."""

    def __init__(self, view: ShmView, block: str):
        self.view, self.block = view, block

    async def on_get(self, req, resp):
        data = self.view.raw(self.block)
        if data is None:
            raise falcon.HTTPServiceUnavailable(title="no data yet",
                                                description=f"compute has not written {self.block} yet")
        resp.data = bytes(data)
        resp.content_type = JSON


def series_param(req, followed: tuple[str, ...], off_reason: str | None) -> str | None:
    """The `series` query parameter: None when absent; 400 when it is not one value of
    names.POLY_SERIES; 404 when it is a series this system does not follow."""
    given = req.get_param_as_list("series")
    if given is None:
        return None
    if len(given) != 1 or given[0] not in names.POLY_SERIES:
        raise falcon.HTTPBadRequest(title="bad series",
                                    description=f"series must be one of {', '.join(names.POLY_SERIES)}")
    series = given[0]
    if series not in followed:
        why = (f"the Polymarket side is off: {off_reason}" if off_reason else
               f"followed: {', '.join(followed) or 'none'} (POLYMARKET_WINDOWS)")
        raise falcon.HTTPNotFound(title="series not followed", description=f"{series} is not followed; {why}")
    return series


class SeriesLatestResource:
    """A block holding every followed series (`{"ts_ns", "series": {<series>: ...}, ...}`): without a
    query the whole block as stored (no decode/encode); with `?series=` one series' document,
    `one(block, series, entry)` of the block's entry for it (no entry yet: 503)."""

    def __init__(self, view: ShmView, block: str, followed: tuple[str, ...], off_reason: str | None, one):
        self.view, self.block, self.followed, self.off_reason, self.one = view, block, followed, off_reason, one

    def _missing(self) -> falcon.HTTPError:
        return falcon.HTTPServiceUnavailable(title="no data yet", description=f"{self.block} is not written yet")

    async def on_get(self, req, resp):
        series = series_param(req, self.followed, self.off_reason)
        if series is None:
            data = self.view.raw(self.block)
            if data is None:
                raise self._missing()
            resp.data = bytes(data)
            resp.content_type = JSON
            return
        doc = self.view.doc(self.block)
        if not isinstance(doc, dict):
            raise self._missing()
        entry = (doc.get("series") or {}).get(series) if isinstance(doc.get("series"), dict) else None
        out = self.one(doc, series, entry) if isinstance(entry, dict) else None
        if out is None:
            raise falcon.HTTPServiceUnavailable(title="no data yet",
                                                description=f"{self.block} has nothing for {series} yet")
        resp.media = out


def _edge_of(block: dict, series: str, entry: dict) -> dict:
    """/latest/edge?series=: that series' edge document as compute wrote it."""
    return entry


def _poly_of(block: dict, series: str, entry: dict) -> dict:
    """/latest/polymarket?series=: that series' window, next window, books and resolved windows,
    with the block's time and switch."""
    return {"ts_ns": block.get("ts_ns"), "series": series, "disabled": block.get("disabled"), **entry}


class BookResource:
    def __init__(self, view: ShmView):
        self.view = view

    async def on_get(self, req, resp):
        given = req.get_param_as_list("venue", required=True)
        venue = given[0]
        if len(given) != 1 or venue not in BOOK_VENUES:
            raise falcon.HTTPBadRequest(title="bad venue",
                                        description=f"venue must be one of {', '.join(BOOK_VENUES)}")
        feats = self.view.doc(names.FEATURES_BLOCK)
        v = (feats or {}).get("venues", {}).get(venue)
        if v is None or v.get("book") is None:
            raise falcon.HTTPServiceUnavailable(title="no book yet", description=f"no {venue} quote yet")
        resp.media = {"venue": venue, "ts_ns": feats["ts_ns"], "book": v["book"],
                      "quote_age_ms": v["quote_age_ms"]}


MAX_BODY_BYTES = 4096
CONTROL_TIMEOUT_MS = 2000


class AnchorResetResource:
    """POST /control/anchor/reset: body optional `{"anchor_ns": int}` (default: now)."""

    def __init__(self, settings: Settings):
        self.token = settings.general.api_token
        self.url = settings.ipc.zmq_control_url

    async def on_post(self, req, resp):
        if not self.token:
            raise falcon.HTTPForbidden(title="control disabled",
                                       description="set API_TOKEN to enable /control endpoints")
        auth = req.get_header("Authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise falcon.HTTPUnauthorized(title="bad token", description="Authorization: Bearer <API_TOKEN>",
                                          challenges=["Bearer"])
        # (a body over the limit by Content-Length was refused before routing: BodyLimit)
        if req.content_length is None and req.get_header("Transfer-Encoding"):
            # falcon reads a body without Content-Length as empty: a chunked body would be ignored
            # and the anchor reset to now, not to the anchor_ns it asked for
            raise falcon.HTTPLengthRequired(title="length required",
                                            description="send the body with a Content-Length")
        raw = await req.bounded_stream.read(MAX_BODY_BYTES + 1)
        if raw and (req.content_type or "").partition(";")[0].strip().lower() != JSON:
            raise falcon.HTTPUnsupportedMediaType(title="unsupported content type",
                                                  description=f"a body must be {JSON}")
        if len(raw) > MAX_BODY_BYTES:          # defence in depth: BodyLimit refused it already
            raise falcon.HTTPContentTooLarge(title="body too large", description=f"at most {MAX_BODY_BYTES} bytes")
        anchor = None
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise falcon.HTTPBadRequest(title="bad JSON", description="the body must be a JSON object")
            if not isinstance(body, dict) or set(body) - {"anchor_ns"}:
                raise falcon.HTTPBadRequest(title="bad body", description='expected {"anchor_ns": int} or nothing')
            anchor = body.get("anchor_ns")
            # JSON Schema counts 1.7e18 as an integer (a number with no fraction): accept it, as
            # the OpenAPI document says; a fraction, a bool or a string is refused
            if type(anchor) is float and anchor.is_integer() and 0 <= anchor < 2 ** 63:
                anchor = int(anchor)
            if anchor is not None and (type(anchor) is not int or not 0 <= anchor < 2 ** 63):
                raise falcon.HTTPBadRequest(title="bad anchor_ns",
                                            description="anchor_ns must be an integer epoch time in ns")
        from ipc import control
        # a blocking round trip (fresh socket, timeout): off the event loop, so that every other
        # connection of this worker is served meanwhile
        reply = await asyncio.to_thread(control.request, self.url, self.token,
                                        {"cmd": "anchor_reset", "anchor_ns": anchor}, CONTROL_TIMEOUT_MS)
        if reply is None:
            raise falcon.HTTPServiceUnavailable(title="compute did not answer",
                                                description=f"no reply within {CONTROL_TIMEOUT_MS} ms")
        if not isinstance(reply, dict) or not reply.get("ok"):
            reason = reply.get("reason") if isinstance(reply, dict) else None
            err = str(reply.get("error", "") if isinstance(reply, dict) else "malformed reply")
            if reason == "bad_args":            # checked above, so compute's own rule disagreed
                raise falcon.HTTPBadRequest(title="rejected", description=err)
            if reason == "expired":             # compute read it too late: nothing was done
                raise falcon.HTTPServiceUnavailable(title="compute did not answer", description=err)
            # not the client's fault: compute's token differs from ours, or its handler failed
            raise falcon.HTTPBadGateway(title="compute refused", description=f"{reason}: {err}")
        resp.media = reply


class MetricsResource:
    def __init__(self, registry):
        from prometheus_client import CONTENT_TYPE_LATEST
        self.registry = registry
        self.content_type = CONTENT_TYPE_LATEST

    async def on_get(self, req, resp):
        from prometheus_client import generate_latest
        resp.data = generate_latest(self.registry)
        resp.content_type = self.content_type


class OpenApiResource:
    def __init__(self, doc: dict):
        self.data = orjson.dumps(doc)      # built once: the document is a function of the code

    async def on_get(self, req, resp):
        resp.data = self.data
        resp.content_type = JSON


class BodyLimit:
    """Refuses a declared body over MAX_BODY_BYTES on any route, before routing or auth."""

    async def process_request(self, req, resp):
        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(title="body too large",
                                             description=f"at most {MAX_BODY_BYTES} bytes")


def _serialize_error(req, resp, exc: falcon.HTTPError) -> None:
    """Every error as JSON, whatever the Accept header (falcon's default may answer XML)."""
    resp.data = orjson.dumps(exc.to_dict())
    resp.content_type = JSON


async def _unexpected(req, resp, ex, params):
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="internal error",
                                         description="the error was logged")


def create_app(view: ShmView, settings: Settings, prometheus_dir=None) -> falcon.asgi.App:
    """`prometheus_dir`: the multiprocess directory under gunicorn (see actors/obs/metrics.py)."""
    from actors.obs.metrics import ApiMetrics
    from actors.obs.openapi import build_openapi
    api_metrics = ApiMetrics(view, prometheus_dir)
    from actors.web.pages import SecurityHeaders
    app = falcon.asgi.App(media_type=JSON, middleware=[api_metrics, SecurityHeaders(), BodyLimit()])
    app.set_error_serializer(_serialize_error)
    handler = falcon.media.JSONHandler(dumps=_dumps, loads=orjson.loads)
    app.req_options.media_handlers[JSON] = handler
    app.resp_options.media_handlers[JSON] = handler
    app.add_error_handler(Exception, _unexpected)
    app.add_route("/health", HealthResource(view, settings.required_actors))
    app.add_route("/state", StateResource(view))
    app.add_route("/latest/features", LatestResource(view, names.FEATURES_BLOCK))
    app.add_route("/latest/bars", LatestResource(view, names.BARS_BLOCK))
    app.add_route("/latest/book", BookResource(view))
    followed = tuple(settings.venues.polymarket_windows) if settings.polymarket_on else ()
    off = None if settings.polymarket_on else settings.polymarket_off_reason
    app.add_route("/latest/polymarket", SeriesLatestResource(view, names.POLYMARKET_BLOCK, followed, off, _poly_of))
    app.add_route("/latest/edge", SeriesLatestResource(view, names.EDGE_BLOCK, followed, off, _edge_of))
    app.add_route("/metrics", MetricsResource(api_metrics.registry))
    app.add_route("/openapi.json", OpenApiResource(build_openapi(MAX_BODY_BYTES)))
    app.add_route("/control/anchor/reset", AnchorResetResource(settings))
    from actors.web.history import add_history_routes
    add_history_routes(app, view, settings)
    from actors.web.pages import add_page_routes
    from actors.web.push import add_stream_route
    add_stream_route(app, view, settings)
    add_page_routes(app)
    return app


def asgi_app() -> falcon.asgi.App:
    """gunicorn's app factory (`actors.api:asgi_app()`): settings are loaded once per worker."""
    from config.logging import setup_logging
    from config.settings import load_settings
    settings = load_settings()
    clock.configure_from(settings)
    setup_logging("api", settings.general.log_level)
    from actors.obs.gunicorn_conf import PROMETHEUS_ENV, prometheus_dir
    # under our gunicorn config the master has set up the multiprocess directory for the
    # workers' latency histograms; without it (a bare gunicorn) each worker counts alone
    multi = prometheus_dir(settings) if os.environ.get(PROMETHEUS_ENV) else None
    return create_app(ShmView(settings), settings, multi)


WORKER_CLASS = "actors.obs.uvicorn_front.ApiWorker"
# per worker: open connections (idle ones included: uvicorn's limit_concurrency counts them) and
# in-flight requests; over it, a JSON 503. Well under the default 1024 open files.
WORKER_CONNECTIONS = 512
KEEP_ALIVE_SEC = 5


def main(settings: Settings) -> None:
    """Exec gunicorn so that supervisord manages the gunicorn master directly."""
    import sys
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{settings.general.http_host}:{settings.general.http_port}",
            "--workers", str(settings.general.api_workers), "--worker-class", WORKER_CLASS,
            "--worker-connections", str(WORKER_CONNECTIONS), "--keep-alive", str(KEEP_ALIVE_SEC),
            "--graceful-timeout", "5", "--timeout", "30", "--log-level", "warning",
            "--worker-tmp-dir", settings.ipc.shm_dir, "-c", "python:actors.obs.gunicorn_conf",
            "actors.api:asgi_app()"]
    os.execv(sys.executable, args)
