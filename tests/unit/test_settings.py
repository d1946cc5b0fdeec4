"""Settings: names, defaults, the .env.example listing, and errors that name the variable."""
from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ENV_FIELDS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("clean_settings_env")    # tests/unit/conftest.py


def test_defaults_of_the_design():
    s = load_settings()
    assert s.general.http_host == "127.0.0.1"
    assert s.general.tick_ms == 100
    assert s.venues.futures_rest == "https://fapi.binance.com"
    assert s.venues.spot_rest == "https://api.binance.com"
    assert s.venues.polymarket_gamma_url == "https://gamma-api.polymarket.com"
    assert s.venues.polymarket_clob_url == "https://clob.polymarket.com"
    assert s.venues.polymarket_rtds_url == "wss://ws-live-data.polymarket.com"
    assert s.ipc.zmq_pub_url == "tcp://127.0.0.1:5556"
    assert s.venues.polymarket_window == "15m" and s.venues.polymarket_windows == ("15m",)
    assert s.venues.polymarket_window_sec is None and s.venues.window_secs == {"15m": 900}
    assert s.general.api_token is None


def test_env_and_lists(monkeypatch):
    monkeypatch.setenv("CONTEXT_TFS", "1m, 1h")
    monkeypatch.setenv("POLYMARKET_WINDOW", "5m")
    monkeypatch.setenv("symbol", "ethusdt")
    s = load_settings()
    assert s.context.context_tfs == ("1m", "1h")
    assert s.venues.window_secs == {"5m": 300}
    assert s.general.symbol == "ETHUSDT" and s.general.asset == "eth"


def test_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("TICK_MS=250\nTOPN=20\n")
    s = load_settings()
    assert (s.general.tick_ms, s.venues.topn) == (250, 20)


@pytest.mark.parametrize("var,value", [("TOPN", "7"), ("TICK_MS", "abc"), ("FUTURES_WS", "http://x"),
                                       ("CONTEXT_TFS", "1m,2x"), ("ZMQ_PUB_URL", "localhost:1"),
                                       ("HEALTH_REQUIRED", "bus,nobody"), ("DEPTH_SPEED", "1s")])
def test_bad_value_names_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert var in str(e.value)


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(Exception):
        s.general.tick_ms = 5


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names == {n.upper() for n in ENV_FIELDS}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# ") and "undocumented" not in lines[i - 1], line


def test_a_copy_of_env_example_loads(tmp_path, monkeypatch):
    """`cp .env.example .env` is a valid configuration: empty values mean the default."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.general.api_token is None and s.venues.window_secs == {"15m": 900} and s.replay.replay_dir is None
    # and every value .env.example shows is the default
    defaults = load_settings(env_file=None)
    for sec in ("general", "venues", "context", "features", "decisions", "record", "replay", "ipc", "sim"):
        assert getattr(s, sec).model_dump() == getattr(defaults, sec).model_dump(), sec


def test_sections_group_the_settings_and_names_carry_units():
    from config.settings import SECTIONS
    s = load_settings(polymarket_min_depth="75", record_buffer_size="10", sim_trade_rate="5")
    assert (s.decisions.min_depth_usd, s.record.buffer_frames, s.sim.trade_rate_per_sec) == (75.0, 10, 5.0)
    # every variable belongs to exactly one section field, and every section field has one variable
    assert len(set(ENV_FIELDS.values())) == len(ENV_FIELDS)
    assert sum(len(c.model_fields) for c in SECTIONS.values()) == len(ENV_FIELDS) == 126


def test_an_unknown_override_and_a_replaced_copy():
    with pytest.raises(SettingsError, match="NOT_A_SETTING"):
        load_settings(not_a_setting=1)
    s = load_settings()
    t = s.replace(tick_ms=250, polymarket_min_depth=10)
    assert (t.general.tick_ms, t.decisions.min_depth_usd, s.general.tick_ms) == (250, 10.0, 100)
    with pytest.raises(Exception):
        s.replace(tick_ms=1)          # validated again: TICK_MS >= 10
