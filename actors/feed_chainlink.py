"""The `feed_chainlink` actor: the Chainlink BTC/USD price the up/down markets settle on.

Runs the generic feed shell on the RTDS venue, and keeps the price to beat of every window: the
first observation at or after the window start (observations fall on whole seconds, so normally
exactly at it). Gamma publishes `priceToBeat` only some time after a window starts; until then the
consumers take ours. Written to the state block `chainlink`:
`{"price", "obs_ns", "windows": {"<start_s>": {"price", "obs_ns", "exact"}}, "window_sec"}`.
"""
from __future__ import annotations

import asyncio
import logging

from config.settings import Settings
from ipc import names
from ipc.ring import RingReader
from ipc.schema import CHAINLINK
from ipc.state import StateBlock

from actors.feed.shell import Feed
from actors.decide.settlement import PriceToBeat
from actors.venues.polymarket import chainlink

log = logging.getLogger("feed_chainlink")


async def _track(settings: Settings) -> None:
    reader = RingReader(settings.ipc.shm_dir, names.CHAINLINK_RING.name(settings.ipc.shm_prefix, settings.general.symbol),
                        CHAINLINK, from_oldest=True)
    block = StateBlock(settings.ipc.shm_dir, settings.ipc.shm_prefix, names.CHAINLINK_BLOCK, writer=True)
    ptb = PriceToBeat(settings.venues.polymarket_window_sec)
    while True:
        recs = reader.read()
        if len(recs):
            ptb.update(recs)
            block.write(ptb.doc(settings.venues.polymarket_window_sec))
        await asyncio.sleep(0.2)


def main(settings: Settings) -> None:
    import uvloop

    async def run():
        feed = Feed(settings, chainlink, "feed_chainlink")
        tracker = asyncio.create_task(_track(settings))
        try:
            await feed.run()
        finally:
            tracker.cancel()

    uvloop.run(run())
