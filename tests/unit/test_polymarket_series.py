"""actors.venues.polymarket.series: each series' window grid (UTC, ET 4-hour, ET noon, across DST
changes), its Gamma slugs, and the sim/test override of the window length."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from actors.venues.polymarket import series as sr
from actors.venues.polymarket.series import (ASSET_NAMES, DAILY_SLUG_VERIFIED, ET, HOURLY_SLUG_VERIFIED, SERIES,
                                             SeriesSpec, next_window_start, slug, slug_candidates, window_end,
                                             window_start)
from ipc import names

H = 3600


def utc(y, mo, d, h=0, mi=0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp())


def et_wall(ts: int) -> tuple[int, int, int, int, int]:
    t = datetime.fromtimestamp(ts, ET)
    return t.year, t.month, t.day, t.hour, t.minute


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------

def test_series_table():
    assert SERIES == {
        "5m": SeriesSpec("5m", 300, "utc", "numbered", "chainlink"),
        "15m": SeriesSpec("15m", 900, "utc", "numbered", "chainlink"),
        "1h": SeriesSpec("1h", 3600, "utc", "hourly", "binance"),
        "4h": SeriesSpec("4h", 14400, "et", "numbered", "chainlink"),
        "1d": SeriesSpec("1d", 86400, "et_noon", "daily", "binance"),
    }
    assert tuple(SERIES) == names.POLY_SERIES
    assert {k: s.length_sec for k, s in SERIES.items()} == {k: names.tf_sec(k) for k in names.POLY_SERIES}
    assert ASSET_NAMES == {"btc": "bitcoin", "eth": "ethereum", "sol": "solana", "xrp": "xrp"}
    assert set(ASSET_NAMES) == set(names.ASSETS.values())
    assert HOURLY_SLUG_VERIFIED is False and DAILY_SLUG_VERIFIED is False


def test_unknown_series_and_assets():
    for f in (lambda: window_start("2h", 0), lambda: next_window_start("1w", 0), lambda: slug("btc", "3m", 0)):
        with pytest.raises(ValueError, match="unknown up/down series"):
            f()
    with pytest.raises(ValueError, match="unknown up/down asset"):
        slug("doge", "5m", 0)
    for bad in (0, -60, 1.5):
        with pytest.raises(ValueError, match="window_sec"):
            window_start("5m", 100, bad)


# ---------------------------------------------------------------------------------------------
# UTC grids (5m, 15m, 1h)
# ---------------------------------------------------------------------------------------------

def test_utc_grid_floors():
    assert window_start("15m", 1773307200) == 1773306900
    assert window_start("15m", 1773306900) == 1773306900        # a boundary opens its own window
    assert window_start("15m", 1773307799.999) == 1773306900
    assert window_start("15m", 1773307800) == 1773307800
    assert window_start("5m", 1787414400 + 299.999) == 1787414400
    assert window_start("1h", utc(2026, 3, 8, 7, 59)) == utc(2026, 3, 8, 7)
    assert next_window_start("5m", 1787414400) == window_end("5m", 1787414400) == 1787414700
    assert next_window_start("5m", 1787414401) == 1787414700    # the window after the one containing it
    assert window_end("1h", utc(2026, 11, 1, 5)) == utc(2026, 11, 1, 6)


def test_shortened_window_overrides_the_alignment():
    assert window_start("5m", 125, 60) == 120
    assert window_start("1h", 125, 60) == 120 and next_window_start("1h", 120, 60) == 180
    assert window_end("1d", 1000, 20) == 1020
    # 4h on the ET grid: 2026-01-19 21:00Z (4PM EST) is not a multiple of 14400 since the epoch
    t = 1768856400 + 5
    assert window_start("4h", t) == 1768856400
    assert window_start("4h", t, 14400) == 1768856400             # the series' own length: its grid
    assert window_start("4h", t, 20) == t // 20 * 20               # shortened: plain multiples
    assert window_start("4h", t, 7200) == t // 7200 * 7200


# ---------------------------------------------------------------------------------------------
# the ET 4-hour grid (4h)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("slug_,start,wall", [
    ("sol-updown-4h-1768856400", 1768856400, (2026, 1, 19, 16, 0)),   # 21:00Z = 4PM EST
    ("btc-updown-4h-1787414400", 1787414400, (2026, 8, 22, 12, 0)),   # 16:00Z = 12PM EDT
])
def test_4h_slugs_of_public_references(slug_, start, wall):
    assert start == {1768856400: utc(2026, 1, 19, 21), 1787414400: utc(2026, 8, 22, 16)}[start]
    assert et_wall(start) == wall
    asset = slug_.split("-", 1)[0]
    for now in (start, start + 1, start + 4 * H - 1):
        assert window_start("4h", now) == start
        assert slug(asset, "4h", window_start("4h", now)) == slug_
    assert window_start("4h", start - 1) == start - 4 * H
    assert next_window_start("4h", start) == window_end("4h", start) == start + 4 * H


def test_4h_grid_across_the_march_dst_change():
    # 2026-03-08: 2AM EST -> 3AM EDT. ET midnight is 05:00Z, 4AM EDT is 08:00Z: that window is 3 h.
    midnight = utc(2026, 3, 8, 5)
    assert et_wall(midnight) == (2026, 3, 8, 0, 0)
    assert window_start("4h", utc(2026, 3, 8, 4, 59)) == utc(2026, 3, 8, 1)    # 8PM EST on the 7th
    assert window_start("4h", midnight) == midnight
    assert window_start("4h", utc(2026, 3, 8, 7, 30)) == midnight              # 3:30AM EDT
    assert next_window_start("4h", midnight) == utc(2026, 3, 8, 8)             # 4AM EDT
    assert window_end("4h", midnight) - midnight == 3 * H
    assert window_start("4h", utc(2026, 3, 8, 8)) == utc(2026, 3, 8, 8)
    assert next_window_start("4h", utc(2026, 3, 8, 8)) == utc(2026, 3, 8, 12)  # 8AM EDT: 4 h again
    starts = [utc(2026, 3, 7, 21)]
    while len(starts) < 8:
        starts.append(next_window_start("4h", starts[-1]))
    assert [et_wall(s)[2:4] for s in starts] == [(7, 16), (7, 20), (8, 0), (8, 4), (8, 8), (8, 12),
                                                 (8, 16), (8, 20)]
    assert [b - a for a, b in zip(starts, starts[1:])] == [4 * H, 4 * H, 3 * H, 4 * H, 4 * H, 4 * H, 4 * H]


def test_4h_grid_across_the_november_dst_change():
    # 2026-11-01: 2AM EDT -> 1AM EST. ET midnight is 04:00Z, 4AM EST is 09:00Z: that window is 5 h.
    midnight = utc(2026, 11, 1, 4)
    assert et_wall(midnight) == (2026, 11, 1, 0, 0)
    assert window_start("4h", utc(2026, 11, 1, 5, 30)) == midnight       # 1:30AM EDT (first 1:30)
    assert window_start("4h", utc(2026, 11, 1, 6, 30)) == midnight       # 1:30AM EST (second 1:30)
    assert window_start("4h", utc(2026, 11, 1, 8, 59)) == midnight       # 3:59AM EST
    assert next_window_start("4h", midnight) == utc(2026, 11, 1, 9)      # 4AM EST, not 08:00Z
    assert window_end("4h", midnight) - midnight == 5 * H
    assert window_start("4h", utc(2026, 11, 1, 9)) == utc(2026, 11, 1, 9)
    assert slug("btc", "4h", midnight) == f"btc-updown-4h-{midnight}"


# ---------------------------------------------------------------------------------------------
# the ET-noon grid (1d)
# ---------------------------------------------------------------------------------------------

def test_daily_window_is_et_noon_to_et_noon_across_dst():
    # March: noon EST on the 7th (17:00Z) to noon EDT on the 8th (16:00Z): 23 h
    s = utc(2026, 3, 7, 17)
    assert window_start("1d", utc(2026, 3, 8, 15, 59)) == s
    assert window_start("1d", s) == s and window_start("1d", s - 1) == utc(2026, 3, 6, 17)
    assert window_end("1d", s) == utc(2026, 3, 8, 16) and window_end("1d", s) - s == 23 * H
    assert window_start("1d", utc(2026, 3, 8, 16)) == utc(2026, 3, 8, 16)
    assert slug("btc", "1d", s) == "bitcoin-up-or-down-on-march-8-2026"      # the ET date of the END
    # November: noon EDT on Oct 31 (16:00Z) to noon EST on Nov 1 (17:00Z): 25 h
    s = utc(2026, 10, 31, 16)
    assert window_start("1d", utc(2026, 11, 1, 10)) == s
    assert window_end("1d", s) == utc(2026, 11, 1, 17) and window_end("1d", s) - s == 25 * H
    assert slug("eth", "1d", s) == "ethereum-up-or-down-on-november-1-2026"


def test_daily_slug_example():
    s = utc(2026, 12, 1, 17)                                   # Dec 1, noon EST
    assert et_wall(s) == (2026, 12, 1, 12, 0)
    assert window_start("1d", utc(2026, 12, 2, 16, 59)) == s
    assert slug_candidates("btc", "1d", s) == ["bitcoin-up-or-down-on-december-2-2026"]
    assert slug("xrp", "1d", s) == "xrp-up-or-down-on-december-2-2026"
    # year end: the window from Dec 31 noon ET ends on Jan 1 of the next year
    assert slug("sol", "1d", utc(2026, 12, 31, 17)) == "solana-up-or-down-on-january-1-2027"


# ---------------------------------------------------------------------------------------------
# slugs
# ---------------------------------------------------------------------------------------------

def test_numbered_slugs():
    assert slug_candidates("btc", "15m", 1773306900) == ["btc-updown-15m-1773306900"]
    assert slug("btc", "5m", 1773307200) == "btc-updown-5m-1773307200"
    assert slug("eth", "15m", 900) == "eth-updown-15m-900"
    assert slug("xrp", "5m", 1787414400.0) == "xrp-updown-5m-1787414400"


@pytest.mark.parametrize("asset,start,expected", [
    ("btc", utc(2026, 12, 2, 20), "bitcoin-up-or-down-december-2-2026-3pm-et"),      # 3PM EST
    ("btc", 1781870400, "bitcoin-up-or-down-june-19-2026-8am-et"),                   # 12:00Z, EDT
    ("btc", 1768489200, "bitcoin-up-or-down-january-15-2026-10am-et"),               # 15:00Z, EST
    ("eth", 1773288000, "ethereum-up-or-down-march-12-2026-12am-et"),                # 04:00Z = midnight EDT
    ("sol", 1773331200, "solana-up-or-down-march-12-2026-12pm-et"),                  # 16:00Z = noon EDT
    ("xrp", utc(2026, 3, 8, 7), "xrp-up-or-down-march-8-2026-3am-et"),               # right after 2AM EST
])
def test_hourly_slugs_with_year_then_without(asset, start, expected):
    assert slug(asset, "1h", start) == expected
    assert slug_candidates(asset, "1h", start) == [expected, expected.replace("-2026-", "-")]


def test_hourly_slug_on_the_november_fold():
    # 1AM ET happens twice on 2026-11-01 (05:00Z EDT, 06:00Z EST): both are named 1am
    assert slug("btc", "1h", utc(2026, 11, 1, 5)) == "bitcoin-up-or-down-november-1-2026-1am-et"
    assert slug("btc", "1h", utc(2026, 11, 1, 6)) == "bitcoin-up-or-down-november-1-2026-1am-et"
    assert slug("btc", "1h", utc(2026, 11, 1, 7)) == "bitcoin-up-or-down-november-1-2026-2am-et"


# ---------------------------------------------------------------------------------------------
# every grid, any time
# ---------------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.sampled_from(names.POLY_SERIES), st.integers(utc(2024, 1, 1), utc(2030, 1, 1)))
def test_grid_invariants(series, now):
    s = window_start(series, now)
    e = next_window_start(series, s)
    assert s <= now < e and window_end(series, s) == e
    assert window_start(series, e) == e and window_start(series, e - 1) == s
    assert next_window_start(series, now) == e
    sp = SERIES[series]
    if sp.align == "utc":
        assert s % sp.length_sec == 0 and e - s == sp.length_sec
    else:
        _, _, _, hour, minute = et_wall(s)
        assert minute == 0 and (hour % 4 == 0 if sp.align == "et" else hour == 12)
        assert abs((e - s) - sp.length_sec) in (0, H)               # a DST change moves it by an hour
    assert sr.slug(sorted(ASSET_NAMES)[now % 4], series, s)
