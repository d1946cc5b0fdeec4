"""The `feed_spot` actor: Binance spot into shm rings and `tick.spot.*`.

The streams are actors.venues.binance.spot's plan: aggTrade, bookTicker, partial depth, and the
klines of the candle each followed Binance-settled up/down series settles on (ring
`names.SPOT_RINGS["kline"]`). A `serverShutdown` from the venue rotates the connection
make-before-break (the feed shell's ROTATE_KINDS).
"""
from __future__ import annotations

from config.settings import Settings

from actors.feed.shell import run_feed
from actors.venues.binance import spot as binance_spot


def main(settings: Settings) -> None:
    run_feed(settings, binance_spot, "feed_spot")
