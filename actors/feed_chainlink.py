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
from ipc.ring import RingReader
from ipc.schema import CHAINLINK, FLAG_GAP, ring_name
from ipc.state import StateBlock

from .feed import Feed
from .venues import chainlink

log = logging.getLogger("feed_chainlink")
KEEP_WINDOWS = 96


class PriceToBeat:
    """Window start -> first observation at or after it. Pure: fed with CHAINLINK records."""

    def __init__(self, window_sec: int):
        self.window_ns = window_sec * 1_000_000_000
        self.windows: dict[int, dict] = {}
        self.last: tuple[int, float] | None = None

    def update(self, recs) -> bool:
        """Records in increasing observation time (the ring's order). True if a window was added."""
        changed = False
        for obs_ns, price, flags in zip(recs["ts_event_ns"].tolist(), recs["price"].tolist(),
                                        recs["flags"].tolist()):
            if flags & FLAG_GAP:
                continue
            boundary = obs_ns // self.window_ns * self.window_ns       # latest window start <= obs
            first_after = obs_ns == boundary or (self.last is not None and self.last[0] < boundary)
            key = boundary // 1_000_000_000
            if first_after and key not in self.windows:
                self.windows[key] = {"price": price, "obs_ns": obs_ns, "exact": obs_ns == boundary}
                changed = True
            self.last = (obs_ns, price)
        while len(self.windows) > KEEP_WINDOWS:
            self.windows.pop(min(self.windows))
        return changed

    def doc(self, window_sec: int) -> dict:
        return {"price": self.last[1] if self.last else None, "obs_ns": self.last[0] if self.last else None,
                "window_sec": window_sec, "windows": {str(k): v for k, v in sorted(self.windows.items())}}


async def _track(settings: Settings, feed: Feed) -> None:
    reader = RingReader(settings.shm_dir, ring_name(settings.shm_prefix, chainlink.SYMBOL, chainlink.VENUE,
                                                    "price"), CHAINLINK, from_oldest=True)
    block = StateBlock(settings.shm_dir, settings.shm_prefix, "chainlink", writer=True)
    ptb = PriceToBeat(settings.polymarket_window_sec)
    while True:
        recs = reader.read()
        if len(recs):
            ptb.update(recs)
            block.write(ptb.doc(settings.polymarket_window_sec))
        await asyncio.sleep(0.2)


def main(settings: Settings) -> None:
    import uvloop

    async def run():
        feed = Feed(settings, chainlink, "feed_chainlink")
        tracker = asyncio.create_task(_track(settings, feed))
        try:
            await feed.run()
        finally:
            tracker.cancel()

    uvloop.run(run())
