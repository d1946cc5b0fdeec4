"""The `bus` actor: the ZeroMQ XSUB/XPUB proxy every publisher and subscriber meets at.

Its heartbeat carries the proxy's counters (ipc.bus.Proxy): `published` messages forwarded and
`publish_dropped` messages a full subscriber queue refused (the same names as every publisher's,
so /metrics' tdc_zmq_publish_dropped_messages and its alert cover the bus too)."""
from __future__ import annotations

import logging
import signal
import threading

import zmq

from config.settings import Settings
from ipc.bus import Proxy
from ipc.state import Heartbeat, Registry

log = logging.getLogger("bus")


def main(settings: Settings) -> None:
    ctx = zmq.Context()
    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), "bus")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    bus = Proxy(settings.ipc.zmq_xsub_url, settings.ipc.zmq_pub_url, ctx, bin_url=settings.ipc.zmq_bin_url)
    proxy = threading.Thread(target=bus.run, name="proxy", daemon=True)
    proxy.start()
    log.info("bus up: publishers -> %s, subscribers -> %s, binary batches -> %s", settings.ipc.zmq_xsub_url,
             settings.ipc.zmq_pub_url, settings.ipc.zmq_bin_url)
    while not stop.wait(0.5):
        if not proxy.is_alive():
            raise SystemExit("bus proxy thread ended")   # supervisord restarts us
        hb.beat({**bus.counters(), "xsub": settings.ipc.zmq_xsub_url, "xpub": settings.ipc.zmq_pub_url,
                 "xbin": settings.ipc.zmq_bin_url})
    hb.beat(bus.counters(), stopped=True)
    ctx.term()
