"""gunicorn configuration for the `api` actor (loaded with `-c`).

The master process writes the api's heartbeat: it is the one supervisord watches, and a registry
slot has a single writer, which several workers could not be.
"""
from __future__ import annotations

import threading


def when_ready(server):
    from config.settings import load_settings
    from ipc.state import Heartbeat, Registry

    s = load_settings()
    hb = Heartbeat(Registry(s.shm_dir, s.shm_prefix), "api")

    def beat():
        while True:
            hb.beat({"workers": len(server.WORKERS), "bind": f"{s.http_host}:{s.http_port}"})
            threading.Event().wait(0.5)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
