"""gunicorn configuration for the `api` actor (loaded with `-c python:actors.obs.gunicorn_conf`);
the workers are uvicorn's (actors/obs/uvicorn_front.py), serving the Falcon ASGI app.

The master process writes the api's heartbeat: it is the one supervisord watches, and a registry
slot has a single writer, which several workers could not be.

The master also owns prometheus_client's multiprocess directory, where each worker keeps its
request-latency histogram (actors/obs/metrics.py):
- `on_starting` (before any worker forks) empties it: files left by a previous run whose master
  was killed would otherwise be summed into this run's counts; then it exports
  PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when a worker first imports it;
- `child_exit` marks a dead worker's live-gauge files dead (its counters and histograms stay, so
  the merged totals never go back when a worker is replaced);
- `on_exit` removes the directory, so a stopped system leaves nothing under SHM_DIR.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from ipc.names import prometheus_dir_name

PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it refuses before the app sees it (bad request line,
    header too large, …), as the app's JSON error instead of gunicorn's HTML page. (Only gunicorn's
    own WSGI workers parse HTTP; the API's uvicorn workers answer their refusals in
    actors/obs/uvicorn_front.py, in the same shape.)"""
    import orjson
    from gunicorn import util
    body = orjson.dumps({"title": reason.lower(), "description": mesg})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def _json_errors_everywhere() -> None:
    # gunicorn has no hook for this body: its workers call `gunicorn.util.write_error` by name,
    # so replacing that one function (in the master, before the workers fork) is enough
    from gunicorn import util
    util.write_error = json_error


_json_errors_everywhere()

log = logging.getLogger("api")


def prometheus_dir(settings) -> Path:
    """`<SHM_DIR>/<SHM_PREFIX>.prometheus`: on tmpfs, and named per system like its segments."""
    return Path(settings.ipc.shm_dir) / prometheus_dir_name(settings.ipc.shm_prefix)


def reset_prometheus_dir(path: Path) -> int:
    """Make `path` an empty directory; returns how many stale files it removed."""
    removed = 0
    if path.is_dir():
        for p in path.iterdir():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed += 1
    elif path.exists():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return removed


def on_starting(server):
    from config.settings import load_settings
    path = prometheus_dir(load_settings())
    removed = reset_prometheus_dir(path)
    if removed:
        log.warning("removed %d stale prometheus multiprocess files from %s", removed, path)
    os.environ[PROMETHEUS_ENV] = str(path)      # before any import of prometheus_client here


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid, os.environ.get(PROMETHEUS_ENV))


def on_exit(server):
    path = os.environ.get(PROMETHEUS_ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def when_ready(server):
    from config.settings import load_settings
    from ipc.state import Heartbeat, Registry

    from actors import supervision

    s = load_settings()
    # `run.py api` counted this start, then exec'd gunicorn: carry that history (not a new start)
    supervision.resume_from_env("api")
    hb = Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "api")

    def beat():
        while True:
            hb.beat({"workers": len(server.WORKERS), "bind": f"{s.general.http_host}:{s.general.http_port}"})
            threading.Event().wait(0.5)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
