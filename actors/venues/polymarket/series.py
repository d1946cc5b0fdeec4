"""Polymarket up/down series: each one's window grid, its Gamma slugs and its default settlement
source. Pure: no I/O, no clock (`now_s` is an argument).

What is known (public references; only the 5m slug has a captured Gamma answer):
- 5m, 15m: `<asset>-updown-<series>-<start>`, `start` the window start in Unix seconds, a multiple
  of the window length since the epoch (`btc-updown-5m-1787414400`, 2026-08-22 16:00Z); they settle
  on the asset's Chainlink stream (point, or TWAP since 2026-08; Gamma says which).
- 4h: `<asset>-updown-4h-<start>` too, but the starts lie on the ET four-hour grid (12AM, 4AM, 8AM,
  12PM, 4PM, 8PM America/New_York wall clock): `sol-updown-4h-1768856400` = 2026-01-19 21:00Z =
  4PM EST, `btc-updown-4h-1787414400` = 2026-08-22 16:00Z = 12PM EDT. Chainlink-settled.
- 1h: ET-dated, not numbered: `bitcoin-up-or-down-<month>-<day>-<year>-<h><am|pm>-et` (seen in
  2026) and the older no-year `bitcoin-up-or-down-<month>-<day>-<h><am|pm>-et` (2025); the asset
  is spelled out (ASSET_NAMES). Hour boundaries are the same in UTC and ET (ET offsets are whole
  hours), so the grid is the UTC one. Settles on the Binance 1h candle (open vs close).
  HOURLY_SLUG_VERIFIED: no Gamma answer was captured for it.
- 1d: `bitcoin-up-or-down-on-<month>-<day>-<year>`, the window from ET noon to the next ET noon;
  the slug names the ET date of the window END. Settles on the close of the Binance 1m candle
  opening at ET noon (the end's against the start's). DAILY_SLUG_VERIFIED: third-party clients
  and market pages only, no Gamma answer captured.

Invariants:
- SERIES has exactly the keys of ipc.names.POLY_SERIES, in that order (checked at import), and
  ASSET_NAMES exactly the assets of ipc.names.ASSETS;
- a window is [start, next_window_start) and `window_end` is that next start: on the "et" and
  "et_noon" grids the wall-clock step is fixed, so a window spanning a DST change is an hour
  shorter (March) or longer (November) than `length_sec`; grid points themselves (0/4/8/12/16/20 h,
  noon) never fall in a DST gap or fold, so they are always unambiguous;
- `window_sec` given and different from the series' length (the sim and tests shorten windows)
  overrides the series' alignment: windows are then plain multiples of `window_sec` since the epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ipc.names import ASSETS, CANDLE_SETTLED_SERIES, POLY_SERIES, tf_sec

__all__ = [
    "SeriesSpec", "SERIES", "ASSET_NAMES", "HOURLY_SLUG_VERIFIED", "DAILY_SLUG_VERIFIED", "ET",
    "spec", "window_start", "next_window_start", "window_end", "slug_candidates", "slug",
]

ET = ZoneInfo("America/New_York")
HOURLY_SLUG_VERIFIED = False   # the 1h slug forms come from third-party clients, not a Gamma capture
DAILY_SLUG_VERIFIED = False    # the 1d slug and its ET-noon window: market pages only, no capture


@dataclass(frozen=True)
class SeriesSpec:
    key: str            # names.POLY_SERIES entry
    length_sec: int     # names.tf_sec(key)
    align: str          # "utc": starts are multiples of the length since the epoch (5m, 15m, 1h);
                        # "et": multiples of the length from ET midnight (4h: 12AM/4AM/.. ET);
                        # "et_noon": daily, ET noon to ET noon (1d)
    slug_form: str      # "numbered" (<asset>-updown-<series>-<start>), "hourly", "daily"
    default_source: str # "chainlink" or "binance": what the series settles on when Gamma's
                        # resolutionSource says nothing


_ALIGNS = ("utc", "et", "et_noon")
_SLUG_FORMS = ("numbered", "hourly", "daily")
_SOURCES = ("chainlink", "binance")

SERIES: dict[str, SeriesSpec] = {
    "5m": SeriesSpec("5m", tf_sec("5m"), "utc", "numbered", "chainlink"),
    "15m": SeriesSpec("15m", tf_sec("15m"), "utc", "numbered", "chainlink"),
    "1h": SeriesSpec("1h", tf_sec("1h"), "utc", "hourly", "binance"),
    "4h": SeriesSpec("4h", tf_sec("4h"), "et", "numbered", "chainlink"),
    "1d": SeriesSpec("1d", tf_sec("1d"), "et_noon", "daily", "binance"),
}
if {k for k, v in SERIES.items() if v.default_source == "binance"} != set(CANDLE_SETTLED_SERIES):
    raise ImportError("series.SERIES default sources disagree with ipc.names.CANDLE_SETTLED_SERIES")
if tuple(SERIES) != POLY_SERIES:
    raise ImportError(f"series.SERIES keys {tuple(SERIES)} != ipc.names.POLY_SERIES {POLY_SERIES}")
for _s in SERIES.values():
    if _s.align not in _ALIGNS or _s.slug_form not in _SLUG_FORMS or _s.default_source not in _SOURCES:
        raise ImportError(f"bad series spec {_s}")
    if _s.align == "et" and 86400 % _s.length_sec:
        raise ImportError(f"{_s.key}: an ET grid needs a length dividing a day")

# the asset as the ET-dated (hourly, daily) slugs spell it
ASSET_NAMES: dict[str, str] = {"btc": "bitcoin", "eth": "ethereum", "sol": "solana", "xrp": "xrp"}
if set(ASSET_NAMES) != set(ASSETS.values()):
    raise ImportError(f"series.ASSET_NAMES {sorted(ASSET_NAMES)} != ipc.names.ASSETS assets "
                      f"{sorted(ASSETS.values())}")

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_NOON_H = 12


def spec(series: str) -> SeriesSpec:
    """The SeriesSpec of a series; ValueError naming the known ones otherwise."""
    try:
        return SERIES[series]
    except KeyError:
        raise ValueError(f"unknown up/down series {series!r}; known: {', '.join(SERIES)}") from None


def _plain(sp: SeriesSpec, window_sec: int | None) -> int | None:
    """The plain epoch-multiple length to use, or None: the series' own alignment."""
    if window_sec is None or window_sec == sp.length_sec:
        return None if sp.align != "utc" else sp.length_sec
    if type(window_sec) is not int or window_sec <= 0:
        raise ValueError(f"window_sec must be a positive int, not {window_sec!r}")
    return window_sec


def _et_floor(sp: SeriesSpec, now_s: float) -> datetime:
    """The ET wall-clock grid point at or before now_s (an aware datetime in ET)."""
    t = datetime.fromtimestamp(now_s, ET)
    if sp.align == "et":
        step_h = sp.length_sec // 3600
        return t.replace(hour=t.hour // step_h * step_h, minute=0, second=0, microsecond=0)
    # et_noon: the latest ET noon at or before now
    noon = t.replace(hour=_NOON_H, minute=0, second=0, microsecond=0)
    if noon > t:
        noon = (noon.replace(tzinfo=None) - timedelta(days=1)).replace(tzinfo=ET)
    return noon


def _et_step(sp: SeriesSpec, t: datetime) -> datetime:
    """The next grid point after the grid point `t`: a fixed WALL-CLOCK step, not elapsed time."""
    naive = t.replace(tzinfo=None)
    step = timedelta(days=1) if sp.align == "et_noon" else timedelta(seconds=sp.length_sec)
    # grid points never fall in a DST gap or fold, so attaching ET is unambiguous
    return (naive + step).replace(tzinfo=ET)


def window_start(series: str, now_s: float, window_sec: int | None = None) -> int:
    """The start (Unix s) of the series' window containing now_s.

    window_sec shorter (or otherwise different) than the series (sim/tests): plain multiples of
    window_sec since the epoch.
    """
    sp = spec(series)
    plain = _plain(sp, window_sec)
    if plain is not None:
        return int(now_s // plain) * plain
    return int(_et_floor(sp, now_s).timestamp())


def next_window_start(series: str, start_s: int, window_sec: int | None = None) -> int:
    """The start of the window after the one containing start_s."""
    sp = spec(series)
    plain = _plain(sp, window_sec)
    if plain is not None:
        return (int(start_s) // plain + 1) * plain
    return int(_et_step(sp, _et_floor(sp, start_s)).timestamp())


def window_end(series: str, start_s: int, window_sec: int | None = None) -> int:
    """The end (exclusive, Unix s) of the window containing start_s: the next window's start."""
    return next_window_start(series, start_s, window_sec)


def _asset_name(asset: str) -> str:
    try:
        return ASSET_NAMES[asset]
    except KeyError:
        raise ValueError(f"unknown up/down asset {asset!r}; known: {', '.join(ASSET_NAMES)}") from None


def _hourly(name: str, start_s: int, with_year: bool) -> str:
    t = datetime.fromtimestamp(start_s, ET)
    h12 = t.hour % 12 or 12
    ampm = "am" if t.hour < 12 else "pm"
    year = f"-{t.year}" if with_year else ""
    return f"{name}-up-or-down-{_MONTHS[t.month - 1]}-{t.day}{year}-{h12}{ampm}-et"


def slug_candidates(asset: str, series: str, start_s: int) -> list[str]:
    """The Gamma slugs of the window starting at start_s, to try in order.

    numbered: [f"{asset}-updown-{series}-{start}"]; hourly: ET-dated, with the year then without
    (`bitcoin-up-or-down-december-2-2026-3pm-et`, `bitcoin-up-or-down-december-2-3pm-et`); daily:
    `bitcoin-up-or-down-on-december-2-2026`, the ET date of the window END.
    """
    sp = spec(series)
    name = _asset_name(asset)
    start_s = int(start_s)
    if sp.slug_form == "numbered":
        return [f"{asset}-updown-{series}-{start_s}"]
    if sp.slug_form == "hourly":
        return [_hourly(name, start_s, True), _hourly(name, start_s, False)]
    end = datetime.fromtimestamp(window_end(series, start_s), ET)
    return [f"{name}-up-or-down-on-{_MONTHS[end.month - 1]}-{end.day}-{end.year}"]


def slug(asset: str, series: str, start_s: int) -> str:
    """The first (preferred) slug of slug_candidates."""
    return slug_candidates(asset, series, start_s)[0]
