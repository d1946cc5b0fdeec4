"""The `sim` actor: the built-in exchange (actors/sim) on 127.0.0.1, generating a market or replaying
a recording (REPLAY_DIR), until SIGTERM/SIGINT; then connections are closed gracefully."""
from __future__ import annotations

import asyncio
import signal

from config.settings import Settings
from ipc.state import Heartbeat, Registry


def main(settings: Settings) -> None:
    import uvloop

    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), "sim")
    if settings.replay.replay_dir:                 # serve a recording instead of generating a market
        from actors.sim.replay import serve
        beat = lambda counters: hb.beat({}, replay=counters)  # noqa: E731
    else:
        from actors.sim.server import serve
        beat = hb.beat

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop, heartbeat=beat)

    uvloop.run(_run())
