"""Binance spot: one combined stream (`/stream?streams=…`) with aggTrade, bookTicker and partial depth.

Spot partial depth is only `{lastUpdateId,bids,asks}`: the symbol comes from the stream name, which
`binance.parse_frame` keeps in `Decoded.stream`. Spot offers partial depth every 1000 ms or 100 ms
only: DEPTH_SPEED=500ms maps to the 1000 ms stream. The server pings every 20 s; we send nothing
but pongs, under the spot limit of 5 incoming messages per second.
"""
from __future__ import annotations

from config.settings import Settings
from ipc import names

from actors.venues.binance import parse as binance
from actors.venues.envelope import ConnPlan

VENUE = names.SPOT
parse_frame = binance.parse_frame
stream_kind = binance.stream_kind

_SILENCE = {"depth": 5.0}


def streams(settings: Settings) -> list[str]:
    s = settings.general.symbol_lower
    out = [f"{s}@aggTrade", f"{s}@bookTicker"]
    if settings.venues.depth_on:
        suffix = "@100ms" if settings.venues.depth_speed == "100ms" else ""
        out.append(f"{s}@depth{settings.venues.topn}{suffix}")
    return out


def plan(settings: Settings) -> list[ConnPlan]:
    ss = streams(settings)
    return [ConnPlan("combined", binance.combined_url(settings.venues.spot_ws, binance.SPOT_ROUTE, ss),
                     tuple(ss))]


def max_silence_sec(stream: str, settings: Settings) -> float | None:
    return binance.max_silence_sec(stream, settings, _SILENCE)
