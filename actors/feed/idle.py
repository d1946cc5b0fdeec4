"""An actor switched off by the settings: it heartbeats that it is off, and does nothing else.

feed_poly and feed_chainlink run this when the Polymarket side is off (`Settings.polymarket_on`:
POLYMARKET_ENABLED=false, or a SYMBOL with no up/down market), context when CONTEXT_ENABLED=false
(`Settings.disabled_actors` gives each one's reason). supervisord keeps every program defined
whatever the settings, so an off actor stays a running, visibly idle process instead of one that
exits and is restarted over and over.

Invariants:
- no connection and no segment other than its registry slot: the heartbeat is
  `{"counters": {"disabled": reason}, "disabled": reason}` (the counters are what /state and
  /health show of an actor; a non-numeric counter is not a metric), every HEARTBEAT_SEC;
- the reason is logged once, at WARNING, at start (the "clear log line");
- SIGTERM or SIGINT ends it cleanly: a last heartbeat marked `stopped`, then return;
- /health does not require it (`Settings.required_actors` leaves disabled actors out).
"""
from __future__ import annotations

import logging
import signal
import threading

from config.settings import Settings
from ipc.state import Heartbeat, Registry

log = logging.getLogger("idle")

HEARTBEAT_SEC = 0.5


def run_disabled(settings: Settings, actor_name: str, reason: str) -> None:
    """Heartbeat `{"disabled": reason}` as `actor_name` until SIGTERM/SIGINT; blocks. Signal
    handlers are installed only from the main thread (elsewhere the caller owns the process)."""
    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), actor_name)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.warning("%s is off: %s (heartbeat only, no connection)", actor_name, reason)
    counters = {"disabled": reason}
    while True:
        hb.beat(counters, disabled=reason)
        if stop.wait(HEARTBEAT_SEC):
            break
    hb.beat(counters, disabled=reason, stopped=True)
    log.info("%s stopped", actor_name)
