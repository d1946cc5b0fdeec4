"""The `api` actor: a Falcon WSGI app under gunicorn; it reads shared memory only.

Invariants:
- no request waits on another actor (control requests excepted, with a timeout): every GET is a
  seqlock read of a state block or of the heartbeat registry;
- JSON everywhere through one media handler (orjson); bad input is a 4xx with a JSON error;
  an unexpected fault is a 500 with a JSON error and no stack trace (it is logged instead);
- every error body is `{"title", "description"}` JSON whatever the client's Accept header says
  (falcon would answer XML to an XML-preferring client): unknown route 404, unknown method 405,
  bad query 400, bad or missing token 401 (compared in constant time), control disabled 403,
  body over MAX_BODY_BYTES 413 (checked on Content-Length before routing, and again while
  reading), a chunked body (no Content-Length: falcon would read it as empty) 411, a body that
  is not application/json 415;
- `GET /openapi.json` describes every route (actors/obs/openapi.py); the tests fuzz the app against it.
"""
from __future__ import annotations

import hmac
import logging
import os
import time

import falcon
import orjson

from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.state import Registry, StateBlock

log = logging.getLogger("api")

JSON = falcon.MEDIA_JSON
BOOK_VENUES = names.BINANCE_VENUES


def _dumps(obj) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _pid_running(pid: int) -> bool:
    """A heartbeat can be fresh for a process that was just killed; ask the kernel too.
    (Actors and the API share a host and pid namespace: supervisord runs them all.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a killed child is a zombie until supervisord reaps it: count that as gone
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


class ShmView:
    """What the API reads: the latest-state blocks and the registry."""

    def __init__(self, settings: Settings):
        self.s = settings
        self.blocks = {n: StateBlock(settings.ipc.shm_dir, settings.ipc.shm_prefix, n)
                       for n in (*names.COMPUTE_BLOCKS, names.POLYMARKET_BLOCK)}
        self.registry = Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix)

    def raw(self, name: str) -> bytes | None:
        return self.blocks[name].read_bytes()

    def doc(self, name: str):
        return self.blocks[name].read()

    def actors(self, now_ns: int) -> dict[str, dict]:
        alive_ns = int(self.s.ipc.health_alive_sec * 1e9)
        stale_ns = int(self.s.ipc.health_data_stale_sec * 1e9)
        data_now_ns = clock.now_ns()     # data time (replay-aware); heartbeats stay on the wall clock
        out = {}
        for name, hb in self.registry.read_all().items():
            age_ns = now_ns - hb["alive_ns"]
            running = _pid_running(hb["pid"])
            info = {"pid": hb["pid"], "running": running,
                    "alive": running and age_ns <= alive_ns and not hb.get("stopped"),
                    "heartbeat_age_ms": age_ns / 1e6, "uptime_s": (now_ns - hb["start_ns"]) / 1e9,
                    "counters": hb.get("counters", {})}
            for extra in ("hist", "rings"):      # compute's tick histogram, overruns per ring
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

    def on_get(self, req, resp):
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
        resp.media = {"status": "ok" if not problems else "unhealthy", "problems": problems,
                      "required": list(self.required), "actors": actors, "ts_ns": now}
        resp.status = falcon.HTTP_200 if not problems else falcon.HTTP_503


class StateResource:
    def __init__(self, view: ShmView):
        self.view = view

    def on_get(self, req, resp):
        now = time.time_ns()
        actors = self.view.actors(now)
        resp.media = {"ts_ns": now, "quality": self.view.doc(names.QUALITY_BLOCK), "actors": actors,
                      "alerts": [{"actor": k, "alert": a["alert"]} for k, a in actors.items()
                                 if a.get("alert")]}


class LatestResource:
    """Serves a state block as stored (no decode/encode on the hot path)."""

    def __init__(self, view: ShmView, block: str):
        self.view, self.block = view, block

    def on_get(self, req, resp):
        data = self.view.raw(self.block)
        if data is None:
            raise falcon.HTTPServiceUnavailable(title="no data yet",
                                                description=f"compute has not written {self.block} yet")
        resp.data = bytes(data)
        resp.content_type = JSON


class BookResource:
    def __init__(self, view: ShmView):
        self.view = view

    def on_get(self, req, resp):
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

    def on_post(self, req, resp):
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
        raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
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
        reply = _control({"cmd": "anchor_reset", "anchor_ns": anchor}, self.url)
        if reply is None:
            raise falcon.HTTPServiceUnavailable(title="compute did not answer",
                                                description=f"no reply within {CONTROL_TIMEOUT_MS} ms")
        if not reply.get("ok"):
            raise falcon.HTTPBadRequest(title="rejected", description=reply.get("error", ""))
        resp.media = reply


def _control(request: dict, url: str) -> dict | None:
    """One REQ/REP round trip with a timeout; a fresh socket each time (a timed-out REQ is stuck)."""
    import zmq
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(url)
        sock.send(orjson.dumps(request))
        if not sock.poll(CONTROL_TIMEOUT_MS):
            return None
        return orjson.loads(sock.recv())
    finally:
        sock.close(0)


class MetricsResource:
    def __init__(self, registry):
        from prometheus_client import CONTENT_TYPE_LATEST
        self.registry = registry
        self.content_type = CONTENT_TYPE_LATEST

    def on_get(self, req, resp):
        from prometheus_client import generate_latest
        resp.data = generate_latest(self.registry)
        resp.content_type = self.content_type


class OpenApiResource:
    def __init__(self, doc: dict):
        self.data = orjson.dumps(doc)      # built once: the document is a function of the code

    def on_get(self, req, resp):
        resp.data = self.data
        resp.content_type = JSON


class BodyLimit:
    """Refuses a declared body over MAX_BODY_BYTES on any route, before routing or auth."""

    def process_request(self, req, resp):
        if (req.content_length or 0) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(title="body too large",
                                             description=f"at most {MAX_BODY_BYTES} bytes")


def _serialize_error(req, resp, exc: falcon.HTTPError) -> None:
    """Every error as JSON, whatever the Accept header (falcon's default may answer XML)."""
    resp.data = orjson.dumps(exc.to_dict())
    resp.content_type = JSON


def _unexpected(req, resp, ex, params):
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(title="internal error",
                                         description="the error was logged")


def create_app(view: ShmView, settings: Settings, prometheus_dir=None) -> falcon.App:
    """`prometheus_dir`: the multiprocess directory under gunicorn (see actors/obs/metrics.py)."""
    from actors.obs.metrics import ApiMetrics
    from actors.obs.openapi import build_openapi
    api_metrics = ApiMetrics(view, prometheus_dir)
    app = falcon.App(media_type=JSON, middleware=[api_metrics, BodyLimit()])
    app.set_error_serializer(_serialize_error)
    handler = falcon.media.JSONHandler(dumps=_dumps, loads=orjson.loads)
    app.req_options.media_handlers[JSON] = handler
    app.resp_options.media_handlers[JSON] = handler
    app.add_error_handler(Exception, _unexpected)
    app.add_route("/health", HealthResource(view, settings.ipc.health_required))
    app.add_route("/state", StateResource(view))
    app.add_route("/latest/features", LatestResource(view, names.FEATURES_BLOCK))
    app.add_route("/latest/bars", LatestResource(view, names.BARS_BLOCK))
    app.add_route("/latest/book", BookResource(view))
    app.add_route("/latest/polymarket", LatestResource(view, names.POLYMARKET_BLOCK))
    app.add_route("/latest/edge", LatestResource(view, names.EDGE_BLOCK))
    app.add_route("/metrics", MetricsResource(api_metrics.registry))
    app.add_route("/openapi.json", OpenApiResource(build_openapi(MAX_BODY_BYTES)))
    app.add_route("/control/anchor/reset", AnchorResetResource(settings))
    return app


def wsgi_app() -> falcon.App:
    """gunicorn's app factory (`actors.api:wsgi_app()`): settings are loaded once per worker."""
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


def main(settings: Settings) -> None:
    """Exec gunicorn so that supervisord manages the gunicorn master directly."""
    import sys
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{settings.general.http_host}:{settings.general.http_port}",
            "--workers", str(settings.general.api_workers), "--worker-class", "sync",
            "--graceful-timeout", "5", "--timeout", "30", "--log-level", "warning",
            "--worker-tmp-dir", settings.ipc.shm_dir, "-c", "python:actors.obs.gunicorn_conf",
            "actors.api:wsgi_app()"]
    os.execv(sys.executable, args)
