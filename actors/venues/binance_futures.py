"""Binance USD-M futures: which streams the feed asks for, and on which route.

Since 2026 the venue splits its combined streams: `/public/stream` carries bookTicker and depth,
`/market/stream` carries aggTrade, markPrice, forceOrder and kline. A stream on the wrong route is
acked and then silent, so the plan groups streams by `binance.futures_route`.
"""
from __future__ import annotations

from config.settings import Settings

from . import binance
from ..feed import ConnPlan

VENUE = "futures"
parse_frame = binance.parse_frame
stream_kind = binance.stream_kind


def streams(settings: Settings) -> list[str]:
    s = settings.symbol_lower
    return [f"{s}@aggTrade", f"{s}@bookTicker"]


def plan(settings: Settings) -> list[ConnPlan]:
    by_route: dict[str, list[str]] = {}
    for stream in streams(settings):
        by_route.setdefault(binance.futures_route(stream), []).append(stream)
    return [ConnPlan(route.strip("/").split("/")[0], binance.combined_url(settings.futures_ws, route, ss),
                     tuple(ss))
            for route, ss in sorted(by_route.items())]
