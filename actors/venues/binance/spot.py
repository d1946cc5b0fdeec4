"""Binance spot: one combined stream (`/stream?streams=…`) with aggTrade, bookTicker, partial depth
and, when a followed up/down series settles on Binance candles, the klines it settles on.

Spot partial depth is only `{lastUpdateId,bids,asks}`: the symbol comes from the stream name, which
`binance.parse_frame` keeps in `Decoded.stream`. Spot offers partial depth every 1000 ms or 100 ms
only: DEPTH_SPEED=500ms maps to the 1000 ms stream. The server pings every 20 s; we send nothing
but pongs, under the spot limit of 5 incoming messages per second. A `serverShutdown` event
decodes to kind "shutdown": the shell rotates that connection (make-before-break).

Klines (`<sym>@kline_<tf>`, ring names.SPOT_RINGS["kline"]): `plan(settings, kline_tfs)` adds one
stream per interval. Without `kline_tfs` they follow from the settings (`settled_kline_tfs`): the
candle interval of every followed series whose DEFAULT settlement source is Binance (the hourly
series: the candle of its window length, "1h", or "1m" when the sim shortens it to 60 s; the daily
series: "1m"). The default is all that is known before Gamma answers; a window whose Gamma
resolution source says otherwise settles as Gamma says (actors/decide/settlement.rule_for), and a
kline stream nobody reads costs one stream on a connection that carries 1024.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from config.settings import Settings
from ipc import names

from actors.decide.settlement import rule_for
from actors.venues.binance import parse as binance
from actors.venues.envelope import ConnPlan
from actors.venues.polymarket.series import spec as series_spec

VENUE = names.SPOT
parse_frame = binance.parse_frame
stream_kind = binance.stream_kind

# an open kline is pushed about every second while the market trades
_SILENCE = {"depth": 5.0, "kline": 15.0}


def settlement_kline_tfs(series: Iterable[str], window_secs: Mapping[str, int], asset: str) -> tuple[str, ...]:
    """The kline intervals the given series settle on by their default rule, in names.KLINE_TFS
    order, each once; () when none settles on Binance candles. `window_secs[series]` is the
    series' (possibly shortened) window length; ValueError when a Binance-settled one has no kline
    interval of that length."""
    tfs = set()
    for key in series:
        if series_spec(key).default_source != "binance":
            continue
        rule = rule_for(key, asset, window_secs[key], "", False, 0)
        tfs.add(rule.candle_tf)
    return tuple(tf for tf in names.KLINE_TFS if tf in tfs)


def settled_kline_tfs(settings: Settings) -> tuple[str, ...]:
    """settlement_kline_tfs of the followed series; () while the Polymarket side is off."""
    if not settings.polymarket_on:
        return ()
    return settlement_kline_tfs(settings.venues.polymarket_windows, settings.venues.window_secs,
                                settings.general.asset)


def streams(settings: Settings, kline_tfs: Iterable[str] | None = None) -> list[str]:
    """The spot streams; `kline_tfs` None: settled_kline_tfs(settings). ValueError on an interval
    that is not a kline interval (names.KLINE_TFS)."""
    s = settings.general.symbol_lower
    out = [f"{s}@aggTrade", f"{s}@bookTicker"]
    if settings.venues.depth_on:
        suffix = "@100ms" if settings.venues.depth_speed == "100ms" else ""
        out.append(f"{s}@depth{settings.venues.topn}{suffix}")
    tfs = settled_kline_tfs(settings) if kline_tfs is None else tuple(kline_tfs)
    for tf in tfs:
        if tf not in names.KLINE_TFS:
            raise ValueError(f"spot kline interval {tf!r}; one of {', '.join(names.KLINE_TFS)}")
    out += [f"{s}@kline_{tf}" for tf in dict.fromkeys(tfs)]
    return out


def plan(settings: Settings, kline_tfs: Iterable[str] | None = None) -> list[ConnPlan]:
    ss = streams(settings, kline_tfs)
    return [ConnPlan("combined", binance.combined_url(settings.venues.spot_ws, binance.SPOT_ROUTE, ss),
                     tuple(ss))]


def max_silence_sec(stream: str, settings: Settings) -> float | None:
    return binance.max_silence_sec(stream, settings, _SILENCE)
