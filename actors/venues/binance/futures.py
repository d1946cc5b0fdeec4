"""Binance USD-M futures: which streams the feed asks for, on which route, and how quiet each may be.

Since 2026 the venue splits its combined streams: `/public/stream` carries bookTicker and depth,
`/market/stream` carries aggTrade, markPrice, forceOrder and kline. A stream on the wrong route is
acked and then silent, so the plan groups streams by `binance.futures_route`.

Streams are requested in the URL, so the only frames we send are pongs to the server's pings
(every 3 min): far under the venue's 10 incoming messages per second.
"""
from __future__ import annotations

from config.settings import Settings
from ipc import names

from actors.venues.binance import parse as binance
from actors.venues.envelope import ConnPlan

VENUE = names.FUTURES
parse_frame = binance.parse_frame
stream_kind = binance.stream_kind

# Longest normal silence per record kind (s); None: may be silent for minutes (quiet market,
# no liquidation). markPrice@1s ticks every second, partial depth every 100/500 ms, an open
# kline is pushed every 250 ms while it changes.
_SILENCE = {"mark": 5.0, "depth": 5.0, "kline": 15.0, "liquidation": None}


def streams(settings: Settings) -> list[str]:
    s = settings.general.symbol_lower
    out = [f"{s}@aggTrade", f"{s}@markPrice@1s", f"{s}@forceOrder", f"{s}@bookTicker"]
    out += [f"{s}@kline_{tf}" for tf in settings.context.context_tfs]
    if settings.venues.depth_on:
        out.append(f"{s}@depth{settings.venues.topn}@{settings.venues.depth_speed}")
    return out


def plan(settings: Settings) -> list[ConnPlan]:
    by_route: dict[str, list[str]] = {}
    for stream in streams(settings):
        by_route.setdefault(binance.futures_route(stream), []).append(stream)
    return [ConnPlan(route.strip("/").split("/")[0],
                     binance.combined_url(settings.venues.futures_ws, route, ss), tuple(ss))
            for route, ss in sorted(by_route.items())]


def max_silence_sec(stream: str, settings: Settings) -> float | None:
    return binance.max_silence_sec(stream, settings, _SILENCE)
