"""The `feed_spot` actor: Binance spot into shm rings and `tick.spot.*`."""
from __future__ import annotations

from config.settings import Settings

from actors.feed.shell import run_feed
from actors.venues.binance import spot as binance_spot


def main(settings: Settings) -> None:
    run_feed(settings, binance_spot, "feed_spot")
