"""The `feed_chainlink` actor: the Chainlink price of SYMBOL's asset, the stream the Chainlink-settled
up/down markets settle on (`names.chainlink_stream`: btc/usd, eth/usd, …).

Runs the generic feed shell on the RTDS venue (actors.venues.polymarket.chainlink): every
observation goes to `names.CHAINLINK_RING` (instrument BTCUSD, ETHUSD, … from SYMBOL) and
`tick.chainlink.price.<instrument>`. No price to beat is kept here: compute estimates it from the
ring by each market's own rule (actors.decide.settlement). The state block `chainlink` holds the
last observation only: `{"ts_ns", "disabled", "stream", "price", "obs_ns", "ts_recv_ns"}`,
rewritten every STATE_SEC.

With POLYMARKET_ENABLED=false or a SYMBOL without up/down markets the actor idles
(actors.feed.idle): no connection, and never another asset's stream.
"""
from __future__ import annotations

import asyncio
import logging

from config.logging import conn_fields
from config.settings import Settings
from ipc import clock
from ipc import names
from ipc.state import StateBlock

from actors.feed.shell import Feed
from actors.venues.polymarket.chainlink import ChainlinkVenue

log = logging.getLogger("feed_chainlink")

STATE_SEC = 0.5


async def _report(venue: ChainlinkVenue, block: StateBlock) -> None:
    while True:
        block.write(venue.state(clock.now_ns()))
        await asyncio.sleep(STATE_SEC)


def main(settings: Settings) -> None:
    block = StateBlock(settings.ipc.shm_dir, settings.ipc.shm_prefix, names.CHAINLINK_BLOCK, writer=True)
    if not settings.polymarket_on:
        from actors.feed.idle import run_disabled     # it logs the one WARNING line with the reason
        reason = settings.polymarket_off_reason
        block.write({"ts_ns": clock.now_ns(), "disabled": reason, "stream": None, "price": None,
                     "obs_ns": None, "ts_recv_ns": None})
        run_disabled(settings, "feed_chainlink", reason)
        return
    import uvloop

    async def run():
        venue = ChainlinkVenue(settings)
        log.info("following the Chainlink stream %s", venue.stream,
                 extra=conn_fields(settings.venues.polymarket_rtds_url, venue.VENUE, venue.stream))
        await Feed(settings, venue, "feed_chainlink").run((_report(venue, block),))

    uvloop.run(run())
