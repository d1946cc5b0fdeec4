"""actors.venues.binance.spot: the spot plan, with the kline streams Binance-settled series need."""
from __future__ import annotations

import pytest

from actors.venues.binance import spot
from actors.venues.binance.parse import Decoded, parse_frame
from config.settings import load_settings
from ipc import names
from tests.support.fixtures import BINANCE, need

BASE = ["btcusdt@aggTrade", "btcusdt@bookTicker"]


def settings(**kw):
    return load_settings(env_file=None, depth_enabled=False, **kw)


def test_settlement_kline_tfs_follow_the_default_rules():
    full = {"5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
    assert spot.settlement_kline_tfs(names.POLY_SERIES, full, "btc") == ("1m", "1h")   # daily: 1m, hourly: 1h
    assert spot.settlement_kline_tfs(["5m", "15m", "4h"], full, "eth") == ()            # Chainlink-settled
    assert spot.settlement_kline_tfs(["1h"], {"1h": 60}, "sol") == ("1m",)              # sim-shortened hour
    assert spot.settlement_kline_tfs(["1h", "1d"], {"1h": 60, "1d": 120}, "xrp") == ("1m",)
    with pytest.raises(ValueError, match="no kline interval"):
        spot.settlement_kline_tfs(["1h"], {"1h": 20}, "btc")


def test_plan_with_explicit_kline_tfs():
    s = settings(polymarket_windows="15m")
    assert spot.streams(s, ()) == BASE
    assert spot.streams(s, ["1h", "1m", "1h"]) == BASE + ["btcusdt@kline_1h", "btcusdt@kline_1m"]
    [p] = spot.plan(s, ("1h",))
    assert p.name == "combined" and p.streams == tuple(BASE + ["btcusdt@kline_1h"])
    assert p.url.endswith("/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker/btcusdt@kline_1h")
    with pytest.raises(ValueError, match="spot kline interval"):
        spot.streams(s, ["7m"])


def test_plan_derives_kline_tfs_from_the_followed_series():
    assert spot.streams(settings(polymarket_windows="5m,15m")) == BASE
    assert spot.streams(settings(polymarket_windows="5m,1h")) == BASE + ["btcusdt@kline_1h"]
    assert spot.streams(settings(polymarket_windows="1h,1d")) == BASE + ["btcusdt@kline_1m", "btcusdt@kline_1h"]
    assert spot.streams(settings(polymarket_windows="1h", polymarket_enabled=False)) == BASE   # side off


def test_spot_klines_parse_into_the_spot_kline_ring():
    assert names.SPOT_RINGS["kline"].kind == "kline"
    for name, closed in (("spot_kline_1m_open.json", 0), ("spot_kline_1m_closed.json", 1)):
        d = spot.parse_frame(need(BINANCE / name).read_bytes(), 5)
        assert (d.kind, d.stream, d.recs[0][6]) == ("kline", "btcusdt@kline_1m", closed)
    assert spot.stream_kind("btcusdt@kline_1h") == "kline"
    assert spot.max_silence_sec("btcusdt@kline_1m", settings()) == 15.0


def test_spot_server_shutdown_asks_for_a_rotation():
    assert spot.parse_frame(b'{"e":"serverShutdown","E":1700000000000}', 1) == Decoded("shutdown", "", ())
    assert parse_frame is spot.parse_frame
