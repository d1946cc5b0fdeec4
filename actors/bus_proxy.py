"""The `bus` actor: the ZeroMQ XSUB/XPUB proxy every publisher and subscriber meets at."""
from __future__ import annotations

import logging
import signal
import threading

import zmq

from config.settings import Settings
from ipc.bus import run_proxy
from ipc.state import Heartbeat, Registry

log = logging.getLogger("bus")


def main(settings: Settings) -> None:
    ctx = zmq.Context()
    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), "bus")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    proxy = threading.Thread(target=run_proxy, name="proxy", daemon=True,
                             args=(settings.ipc.zmq_xsub_url, settings.ipc.zmq_pub_url, ctx))
    proxy.start()
    log.info("bus up: publishers -> %s, subscribers -> %s", settings.ipc.zmq_xsub_url, settings.ipc.zmq_pub_url)
    while not stop.wait(0.5):
        if not proxy.is_alive():
            raise SystemExit("bus proxy thread ended")   # supervisord restarts us
        hb.beat({"xsub": settings.ipc.zmq_xsub_url, "xpub": settings.ipc.zmq_pub_url})
    hb.beat({}, stopped=True)
    ctx.term()
