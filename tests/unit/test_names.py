"""ipc.names is the one naming authority: the actor list drives run.py, supervisord.conf, the
heartbeat registry and HEALTH_REQUIRED; rings and topics are the DESIGN.md names."""
from __future__ import annotations

import configparser
import importlib
from pathlib import Path

import pytest

from config.settings import Settings
from ipc import names

ROOT = Path(__file__).resolve().parents[2]


def test_supervisord_runs_exactly_the_supervised_actors():
    conf = configparser.RawConfigParser()
    conf.read(ROOT / "supervisord.conf")
    programs = {s.split(":", 1)[1]: conf[s]["command"] for s in conf.sections() if s.startswith("program:")}
    assert set(programs) == {a.name for a in names.ACTORS if a.supervised}
    for name, command in programs.items():
        assert command.endswith(f"-m actors {name}"), (name, command)


def test_every_actor_module_has_a_main():
    for a in names.ACTORS:
        assert callable(importlib.import_module(a.module).main), a.name
        assert a.module.count(".") == 1, f"{a.module}: processes live at the top of actors/"


def test_registry_and_health_defaults_come_from_the_actor_list():
    assert names.HEARTBEAT_NAMES[: len(names.ACTORS)] == tuple(a.name for a in names.ACTORS)
    assert len(set(names.HEARTBEAT_NAMES)) == len(names.HEARTBEAT_NAMES)
    assert Settings().ipc.health_required == names.REQUIRED_ACTORS == (
        "bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink", "context", "compute")


def test_ring_and_topic_names_are_the_design_names():
    assert names.FUTURES_RINGS["trade"].name("tdc", "BTCUSDT") == "tdc.BTCUSDT.futures.trade"
    assert names.FUTURES_RINGS["quote"].topic("BTCUSDT") == "tick.futures.quote.BTCUSDT"
    assert names.SPOT_RINGS["depth"].topic("ETHUSDT") == "tick.spot.depth.ETHUSDT"
    assert names.poly_book_ring("15m").name("tdc", "BTCUSDT") == "tdc.BTCUPDOWN.poly.book_15m"
    assert names.poly_book_ring("1h").name("tdc", "ETHUSDT") == "tdc.ETHUPDOWN.poly.book_1h"
    assert [names.poly_book_ring("5m").token_topic(t) for t in (0, 1)] == [
        "tick.poly.book.5m.UP", "tick.poly.book.5m.DOWN"]
    assert names.poly_trade_ring("4h").token_topic(1) == "tick.poly.trade.4h.DOWN"
    assert names.poly_market_topic("1d") == "tick.poly.market.1d"
    assert names.CHAINLINK_RING.name("tdc", "BTCUSDT") == "tdc.BTCUSD.chainlink.price"
    assert names.CHAINLINK_RING.topic("BTCUSDT") == "tick.chainlink.price.BTCUSD"
    assert names.CHAINLINK_RING.topic("SOLUSDT") == "tick.chainlink.price.SOLUSD"
    assert names.SPOT_RINGS["kline"].name("tdc", "BTCUSDT") == "tdc.BTCUSDT.spot.kline"
    assert names.accumulate_block("15m") == "accumulate_15m"
    with pytest.raises(ValueError, match="unknown up/down series"):
        names.poly_book_ring("2h")
    assert names.context_kline_ring("5m").name("p", "BTCUSDT") == "p.BTCUSDT.context.kline_5m"
    assert names.frame_ring_name("p", "BTCUSD", "chainlink") == "p.BTCUSD.chainlink.frames"
    assert names.venue_symbol(names.CHAINLINK, "BTCUSDT") == "BTCUSD"
    assert names.venue_symbol(names.FUTURES, "ETHUSDT") == "ETHUSDT"
    assert (names.bar_topic("5s", "spot", "BTCUSDT"), names.features_topic("X"), names.edge_topic("X", "15m"),
            names.context_topic("X")) == ("bar.5s.spot.BTCUSDT", "features.X", "edge.X.15m", "context.X")
    with pytest.raises(ValueError, match="no ring declared"):
        names.venue_ring(names.SPOT, "mark")


def test_segment_and_topic_parsers_invert_the_builders(tmp_path):
    """Every name a reader parses or globs is one the builders make (and nothing else matches)."""
    assert names.FUTURES_RINGS["trade"].key() == "futures.trade"
    assert names.context_kline_ring("1m").key() == "context.kline_1m"
    assert names.block_segment("p", names.FEATURES_BLOCK) == "p.state.features"
    assert names.registry_segment("p") == "p.registry"
    assert names.prometheus_dir_name("p") == "p.prometheus"
    made = [names.frame_ring_name("p", names.venue_symbol(v, "BTCUSDT"), v) for v in names.VENUE_RINGS]
    for n in made + ["p.BTCUSDT.futures.trade", "p.registry", "q.BTCUSDT.spot.frames"]:
        (tmp_path / n).touch()
    assert sorted(x.name for x in tmp_path.glob(names.frame_ring_glob("p"))) == sorted(made)
    assert [names.frame_ring_venue(n) for n in made] == list(names.VENUE_RINGS)
    with pytest.raises(ValueError, match="not a frame ring"):
        names.frame_ring_venue("p.BTCUSDT.futures.trade")
    assert names.parse_bar_topic(names.bar_topic("15s", names.SPOT, "BTCUSDT")) == ("15s", "spot", "BTCUSDT")
    assert names.parse_bar_topic(names.features_topic("BTCUSDT")) is None
    assert names.parse_bar_topic("bar.5s.spot") is None
    assert [names.parse_poly_topic(names.poly_book_ring("1h").token_topic(i)) for i in (0, 1)] == [
        ("book", "1h", "UP"), ("book", "1h", "DOWN")]
    assert names.parse_poly_topic(names.poly_market_topic("15m")) is None
    assert names.parse_poly_topic("tick.poly.book.2h.UP") is None
    assert names.parse_edge_topic(names.edge_topic("BTCUSDT", "4h")) == ("BTCUSDT", "4h")
    assert names.parse_edge_topic(names.features_topic("BTCUSDT")) is None


def test_assets_name_the_updown_instruments():
    """SYMBOL's asset names the slugs, the Chainlink stream and the Polymarket/Chainlink rings; a
    symbol without an up/down market has no asset."""
    assert [names.asset_of(s) for s in ("BTCUSDT", "ethusdt", "SOLUSDT", "XRPUSDT", "BNBUSDT")] == [
        "btc", "eth", "sol", "xrp", None]
    assert (names.poly_symbol("ETHUSDT"), names.settlement_symbol("XRPUSDT"),
            names.chainlink_stream("SOLUSDT")) == ("ETHUPDOWN", "XRPUSD", "sol/usd")
    assert names.venue_symbol(names.POLY, "SOLUSDT") == "SOLUPDOWN"


def test_one_timeframe_table():
    for subset in (names.BAR_TFS, names.KLINE_TFS, names.POLY_SERIES):
        assert set(subset) <= set(names.TIMEFRAME_SEC)
    assert [names.tf_sec(t) for t in names.BAR_TFS] == [5, 15, 60]
    assert names.tf_sec("4h") == 14400
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        names.tf_sec("7m")
