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
        assert command.endswith(f"run.py {name}"), (name, command)


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
    assert names.POLY_BOOK_RING.name("tdc", "BTCUSDT") == "tdc.BTCUPDOWN.poly.book"
    assert [names.POLY_BOOK_RING.token_topic(t) for t in (0, 1)] == ["tick.poly.book.UP", "tick.poly.book.DOWN"]
    assert names.POLY_TRADE_RING.token_topic(1) == "tick.poly.trade.DOWN"
    assert names.CHAINLINK_RING.name("tdc", "BTCUSDT") == "tdc.BTCUSD.chainlink.price"
    assert names.CHAINLINK_RING.topic("BTCUSDT") == "tick.chainlink.price.BTCUSD"
    assert names.context_kline_ring("5m").name("p", "BTCUSDT") == "p.BTCUSDT.context.kline_5m"
    assert names.frame_ring_name("p", "BTCUSD", "chainlink") == "p.BTCUSD.chainlink.frames"
    assert names.venue_symbol(names.CHAINLINK, "BTCUSDT") == "BTCUSD"
    assert names.venue_symbol(names.FUTURES, "ETHUSDT") == "ETHUSDT"
    assert (names.bar_topic("5s", "spot", "BTCUSDT"), names.features_topic("X"), names.edge_topic("X"),
            names.context_topic("X")) == ("bar.5s.spot.BTCUSDT", "features.X", "edge.X", "context.X")
    with pytest.raises(ValueError, match="no ring declared"):
        names.venue_ring(names.SPOT, "mark")


def test_one_timeframe_table():
    for subset in (names.BAR_TFS, names.KLINE_TFS, names.POLY_SERIES):
        assert set(subset) <= set(names.TIMEFRAME_SEC)
    assert [names.tf_sec(t) for t in names.BAR_TFS] == [5, 15, 60]
    assert names.tf_sec("4h") == 14400
    with pytest.raises(ValueError, match="unknown timeframe '7m'"):
        names.tf_sec("7m")
