"""The `feed_futures` actor: Binance USD-M futures into shm rings and `tick.futures.*`."""
from __future__ import annotations

from config.settings import Settings

from actors.feed.shell import run_feed
from actors.venues.binance import futures as binance_futures


def main(settings: Settings) -> None:
    run_feed(settings, binance_futures, "feed_futures")
