"""The settings contract of issue 14: the seed README's names and defaults, aliases, the followed
series and their window lengths, what the switches turn off, and the warnings about variables that
look like ours but are not."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from config.settings import (ALIASES, ENV_FIELDS, SETTING_NAMES, SETTING_PREFIXES, Settings, SettingsError,
                             consistency_warnings, load_settings, unknown_variable_warnings, unknown_variables,
                             window_secs)
from ipc import names

ROOT = Path(__file__).resolve().parents[2]

# The seed README's settings table: variable, the text of its default (None: no default), the
# typed value the settings hold.
SEED = [
    ("SYMBOL", "BTCUSDT", "BTCUSDT"),
    ("LOG_LEVEL", "INFO", "INFO"),
    ("HTTP_HOST", "127.0.0.1", "127.0.0.1"),     # the one allowed change from the seed
    ("HTTP_PORT", "8000", 8000),
    ("FUTURES_WS", "wss://fstream.binance.com", "wss://fstream.binance.com"),
    ("SPOT_WS", "wss://stream.binance.com:9443", "wss://stream.binance.com:9443"),
    ("DEPTH_ENABLED", "true", True),
    ("DEPTH_SPEED", "100ms", "100ms"),
    ("TOPN", "10", 10),
    ("CONTEXT_ENABLED", "true", True),
    ("CONTEXT_TFS", "1m,5m,15m,1h", ("1m", "5m", "15m", "1h")),
    ("CONTEXT_BOOTSTRAP_LIMIT", "500", 500),
    ("TAAPI_ENABLED", "true", True),
    ("TAAPI_SECRET", None, None),
    ("TAAPI_EXCHANGE", "binancefutures", "binancefutures"),
    ("TAAPI_TFS", "1m,5m,15m,1h", ("1m", "5m", "15m", "1h")),
    ("POLYMARKET_ENABLED", "true", True),
    ("POLYMARKET_WS_URL", "wss://ws-subscriptions-clob.polymarket.com/ws/market",
     "wss://ws-subscriptions-clob.polymarket.com/ws/market"),
    ("POLYMARKET_STALE_THRESHOLD_SEC", "5.0", 5.0),
    ("POLYMARKET_MIN_DEPTH", "200.0", 200.0),
    ("POLYMARKET_MAX_SPREAD_BPS", "500.0", 500.0),
    ("POLY_UP_IS_YES", "true", True),
    ("SLICE_USD", "20.0", 20.0),
    ("MAX_SLICES_PER_WINDOW", "30", 30),
    ("MAX_USD_PER_WINDOW", "300.0", 300.0),
    ("COOLDOWN_SEC", "2.0", 2.0),
    ("EDGE_BUFFER_BPS", "25.0", 25.0),
    ("RECORD_ENABLED", "false", False),
    ("RECORD_DIR", "data/recordings", "data/recordings"),
    ("RECORD_BUFFER_SIZE", "100", 100),
]


pytestmark = pytest.mark.usefixtures("clean_settings_env")    # tests/unit/conftest.py


def value(s: Settings, var: str):
    sec, field = ENV_FIELDS[var.lower()]
    return getattr(getattr(s, sec), field)


# --- the seed's table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("var,text,typed", SEED, ids=[r[0] for r in SEED])
def test_seed_default(var, text, typed):
    assert value(load_settings(), var) == typed
    assert type(value(load_settings(), var)) is type(typed)
    if text is not None:              # the seed's text of the default reads back as the default
        assert value(load_settings(**{var.lower(): text}), var) == typed


def test_seed_rows_in_readme_and_env_example():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration\n"):readme.index("## Documentation\n")]
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, flags=re.M))
    env_example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                       if line and not line.startswith("#"))
    for var, text, _ in SEED:
        assert rows[var].strip() == (f"`{text}`" if text is not None else "(none)"), var
        assert env_example[var] == (text or ""), var


def test_taapi_enabled_without_a_secret_is_local(tmp_path, caplog):
    """The seed's TAAPI_ENABLED=true with no TAAPI_SECRET: indicators computed locally, said once."""
    from actors.clients.indicator_source import IndicatorEngine
    s = load_settings(shm_dir=str(tmp_path), shm_prefix="taapi")
    assert s.context.taapi_enabled and s.context.taapi_secret is None
    with caplog.at_level("WARNING"):
        engine = IndicatorEngine(s, pub=None, topic=b"context.BTCUSDT")
    assert engine.mode == "local" and engine.client is None
    assert "TAAPI_ENABLED without TAAPI_SECRET: indicators are computed locally" in caplog.text
    # every TAAPI timeframe is a context timeframe by default: each has its klines
    assert all(st.reader is not None for st in engine.tfs.values()) and list(engine.tfs) == ["1m", "5m", "15m", "1h"]
    assert IndicatorEngine(s.replace(taapi_secret="k"), pub=None, topic=b"x").mode == "taapi"


def test_bias_weights_cover_only_fetched_timeframes_by_default():
    s = load_settings()
    assert s.features.bias_weights == "1m:1,5m:1,15m:1,1h:1"
    assert consistency_warnings(s) == []
    assert consistency_warnings(s.replace(bias_weights="1m:1,4h:2,1d:0")) == [
        "BIAS_WEIGHTS: 4h weighted but not in CONTEXT_TFS=1m,5m,15m,1h: no klines there, so the bias "
        "score stays None"]
    assert consistency_warnings(s.replace(bias_weights="4h:1", context_enabled="false")) == []


def test_new_decision_settings():
    s = load_settings()
    assert (s.decisions.edge_binance_max_age_ms, s.decisions.edge_min_price,
            s.decisions.fair_chainlink_max_age_sec) == (1000.0, 0.03, 5.0)
    assert load_settings(edge_min_price="0").decisions.edge_min_price == 0.0
    for var, bad in (("EDGE_MIN_PRICE", "1"), ("EDGE_MIN_PRICE", "-0.1"), ("EDGE_BINANCE_MAX_AGE_MS", "0")):
        with pytest.raises(SettingsError, match=var):
            load_settings(**{var.lower(): bad})


# --- aliases -----------------------------------------------------------------------------------------
def test_alias_table():
    assert ALIASES == {"polymarket_clob_ws": "polymarket_ws_url"}


def test_alias_in_env_dotenv_and_kwargs(monkeypatch, tmp_path):
    assert load_settings(polymarket_clob_ws="ws://a:1/ws").venues.polymarket_ws_url == "ws://a:1/ws"
    assert Settings(polymarket_clob_ws="ws://b:1").venues.polymarket_ws_url == "ws://b:1"
    assert Settings().replace(POLYMARKET_CLOB_WS="ws://c:1").venues.polymarket_ws_url == "ws://c:1"
    (tmp_path / ".env").write_text("POLYMARKET_CLOB_WS=ws://dotenv:1\n")
    assert load_settings().venues.polymarket_ws_url == "ws://dotenv:1"
    monkeypatch.setenv("polymarket_clob_ws", "ws://env:1")       # any case, as every variable
    assert load_settings().venues.polymarket_ws_url == "ws://env:1"


def test_the_environment_wins_over_dotenv_whatever_the_name(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("POLYMARKET_WS_URL=ws://dotenv:1\n")
    monkeypatch.setenv("POLYMARKET_CLOB_WS", "ws://env:1")
    assert load_settings().venues.polymarket_ws_url == "ws://env:1"
    # keyword overrides win over both
    assert load_settings(polymarket_ws_url="ws://kw:1").venues.polymarket_ws_url == "ws://kw:1"


def test_alias_and_setting_agreeing_are_one(monkeypatch):
    monkeypatch.setenv("POLYMARKET_CLOB_WS", "ws://same:1")
    monkeypatch.setenv("POLYMARKET_WS_URL", "ws://same:1")
    assert load_settings().venues.polymarket_ws_url == "ws://same:1"


def test_alias_conflict_names_both(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYMARKET_CLOB_WS", "ws://a:1")
    monkeypatch.setenv("POLYMARKET_WS_URL", "ws://b:1")
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert str(e.value) == ("POLYMARKET_WS_URL and its alias POLYMARKET_CLOB_WS are set in the environment "
                            "to different values, 'ws://b:1' and 'ws://a:1': set only POLYMARKET_WS_URL")
    monkeypatch.delenv("POLYMARKET_CLOB_WS")
    monkeypatch.delenv("POLYMARKET_WS_URL")
    (tmp_path / ".env").write_text("POLYMARKET_CLOB_WS=ws://a:1\nPOLYMARKET_WS_URL=ws://b:1\n")
    with pytest.raises(SettingsError, match="in .env"):
        load_settings()
    with pytest.raises(SettingsError) as e:
        Settings(polymarket_ws_url="ws://b:1", polymarket_clob_ws="ws://a:1")
    assert str(e.value) == ("bad setting(s):\n  POLYMARKET_WS_URL and its alias POLYMARKET_CLOB_WS are set as "
                            "arguments to different values, 'ws://b:1' and 'ws://a:1': set only POLYMARKET_WS_URL")


# --- the followed series --------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,window,windows,secs", [
    ({}, "15m", ("15m",), {"15m": 900}),
    ({"polymarket_window": "1h"}, "1h", ("1h",), {"1h": 3600}),
    ({"polymarket_windows": "5m,15m,1h,4h"}, "5m", ("5m", "15m", "1h", "4h"),
     {"5m": 300, "15m": 900, "1h": 3600, "4h": 14400}),
    ({"polymarket_windows": " 1d , 5m "}, "1d", ("1d", "5m"), {"1d": 86400, "5m": 300}),
    ({"polymarket_windows": "5m,1h", "polymarket_window": "1h"}, "1h", ("5m", "1h"), {"5m": 300, "1h": 3600}),
    ({"polymarket_window_sec": "60"}, "15m", ("15m",), {"15m": 60}),
    ({"polymarket_windows": "5m,1h", "polymarket_window_sec": "60"}, "5m", ("5m", "1h"), {"5m": 60, "1h": 60}),
    ({"polymarket_windows": "5m,1h", "polymarket_window_sec": "5m:20,1h:60"}, "5m", ("5m", "1h"),
     {"5m": 20, "1h": 60}),
    ({"polymarket_windows": "5m,1h", "polymarket_window_sec": " 1h : 60 "}, "5m", ("5m", "1h"),
     {"5m": 300, "1h": 60}),
    ({"polymarket_windows": "5m,1h", "polymarket_window_sec": {"1h": 180}}, "5m", ("5m", "1h"),
     {"5m": 300, "1h": 180}),
    ({"polymarket_window": "5m", "polymarket_window_sec": 300}, "5m", ("5m",), {"5m": 300}),
])
def test_series_and_window_lengths(kw, window, windows, secs):
    v = load_settings(**kw).venues
    assert (v.polymarket_window, v.polymarket_windows, v.window_secs) == (window, windows, secs)


@pytest.mark.parametrize("kw,message", [
    ({"polymarket_windows": "5m,2h"}, "POLYMARKET_WINDOWS: unknown series ['2h']; known: 5m, 15m, 1h, 4h, 1d (got '5m,2h')"),
    ({"polymarket_windows": "5m,1h,5m"}, "POLYMARKET_WINDOWS: series 5m given twice (got '5m,1h,5m')"),
    ({"polymarket_windows": " ,"}, "POLYMARKET_WINDOWS: names no series (got ' ,')"),
    ({"polymarket_window": "2m"}, "POLYMARKET_WINDOW: unknown series '2m'; known: 5m, 15m, 1h, 4h, 1d (got '2m')"),
    ({"polymarket_windows": "5m,1h", "polymarket_window": "15m"},
     "POLYMARKET_WINDOW=15m is not one of POLYMARKET_WINDOWS=5m,1h: set one of them (POLYMARKET_WINDOW is the "
     "one-series form)"),
    ({"polymarket_window_sec": "9"}, "POLYMARKET_WINDOW_SEC: 9 s is shorter than 10 s (got '9')"),
    ({"polymarket_window_sec": "1m"}, "POLYMARKET_WINDOW_SEC: '1m' is not a whole number of seconds (got '1m')"),
    ({"polymarket_window_sec": "901"}, "POLYMARKET_WINDOW_SEC: 901 s is longer than the 15m series (900 s)"),
    ({"polymarket_window_sec": "5m:20"}, "POLYMARKET_WINDOW_SEC names 5m, not followed (POLYMARKET_WINDOWS=15m)"),
    ({"polymarket_window_sec": "15m:20,15m:30"}, "POLYMARKET_WINDOW_SEC: series 15m given twice (got '15m:20,15m:30')"),
    ({"polymarket_window_sec": "2h:20"}, "POLYMARKET_WINDOW_SEC: unknown series '2h'; known: 5m, 15m, 1h, 4h, 1d (got '2h:20')"),
    ({"polymarket_window_sec": "15m=20"}, "POLYMARKET_WINDOW_SEC: '15m=20' is not a whole number of seconds (got '15m=20')"),
    ({"polymarket_window_sec": "15m:20,:5"}, "POLYMARKET_WINDOW_SEC: ':5' is not series:seconds (e.g. 5m:20,1h:60) (got '15m:20,:5')"),
    ({"polymarket_window_sec": "15m:5"}, "POLYMARKET_WINDOW_SEC: 15m: 5 s is shorter than 10 s (got '15m:5')"),
    # a candle-settled series (Binance by default) on a window length its candles do not have:
    # refused at start, not a feed crash-looping on every Gamma answer
    ({"polymarket_windows": "1h", "polymarket_window_sec": "1h:20"},
     "POLYMARKET_WINDOW_SEC: the 1h series settles on Binance candles, so its window must be a candle "
     "length (a kline interval: 60, 180, 300, 900, 1800, 3600 s), not 20 s"),
    ({"polymarket_windows": "5m,1d", "polymarket_window_sec": "90"},
     "POLYMARKET_WINDOW_SEC: the 1d series settles on Binance candles, so its window must be a candle "
     "length (whole minutes), not 90 s"),
])
def test_series_errors_name_the_variable(kw, message):
    with pytest.raises(SettingsError) as e:
        load_settings(**kw)
    assert str(e.value) == "bad setting(s):\n  " + message


def test_a_shortened_hourly_window_must_be_a_kline_interval_in_the_environment(monkeypatch):
    monkeypatch.setenv("POLYMARKET_WINDOWS", "1h")
    monkeypatch.setenv("POLYMARKET_WINDOW_SEC", "1h:20")
    with pytest.raises(SettingsError, match=r"^bad setting\(s\):\n  POLYMARKET_WINDOW_SEC: the 1h series settles on "
                                            r"Binance candles, .*not 20 s$"):
        load_settings()
    monkeypatch.setenv("POLYMARKET_WINDOW_SEC", "1h:60")
    assert load_settings().venues.window_secs == {"1h": 60}


def test_window_secs_pure_function():
    assert window_secs(None, ("5m", "1h")) == {"5m": 300, "1h": 3600}
    assert window_secs(60, ("5m", "1h")) == {"5m": 60, "1h": 60}
    assert window_secs("1h:180", ("5m", "1h")) == {"5m": 300, "1h": 180}
    # a candle-settled series' window must be a candle length (a crash-looping feed otherwise)
    with pytest.raises(ValueError, match=r"the 1h series settles on Binance candles.*not 90 s"):
        window_secs("1h:90", ("5m", "1h"))
    with pytest.raises(ValueError, match=r"the 1d series settles on Binance candles.*\(whole minutes\), not 90 s"):
        window_secs(90, ("1d",))
    assert window_secs(120, ("1d",)) == {"1d": 120}
    with pytest.raises(ValueError, match="names 4h, not followed"):
        window_secs({"4h": 60}, ("5m",))


def test_replace_recomputes_derived_values():
    s = load_settings(polymarket_window="5m")
    assert s.replace(polymarket_window="1h").venues.window_secs == {"1h": 3600}
    t = s.replace(polymarket_windows="5m,15m", polymarket_window_sec="15m:60")
    assert (t.venues.polymarket_window, t.venues.window_secs) == ("5m", {"5m": 300, "15m": 60})
    assert t.replace(tick_ms=200).venues.window_secs == {"5m": 300, "15m": 60}


# --- what the switches turn off ------------------------------------------------------------------------
@pytest.mark.parametrize("kw,asset,reason", [
    ({}, "btc", None),
    ({"symbol": "ethusdt"}, "eth", None),
    ({"symbol": "SOLUSDT"}, "sol", None),
    ({"symbol": "XRPUSDT"}, "xrp", None),
    ({"symbol": "BNBUSDT"}, None,
     "SYMBOL=BNBUSDT has no Polymarket up/down market (known: BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT)"),
    ({"polymarket_enabled": "false"}, "btc", "POLYMARKET_ENABLED=false"),
    ({"polymarket_enabled": "false", "symbol": "BNBUSDT"}, None, "POLYMARKET_ENABLED=false"),
])
def test_polymarket_on_and_off_reason(kw, asset, reason):
    s = load_settings(**kw)
    assert (s.general.asset, s.polymarket_off_reason, s.polymarket_on) == (asset, reason, reason is None)


def test_effective_required_actors():
    assert names.REQUIRED_ACTORS == ("bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink",
                                     "context", "compute")
    s = load_settings()
    assert (s.required_actors, s.disabled_actors) == (names.REQUIRED_ACTORS, {})
    s = load_settings(symbol="BNBUSDT")
    reason = s.polymarket_off_reason
    assert s.disabled_actors == {"feed_poly": reason, "feed_chainlink": reason}
    assert s.required_actors == ("bus", "feed_futures", "feed_spot", "context", "compute")
    s = load_settings(context_enabled="false", polymarket_enabled="false")
    assert s.disabled_actors == {"feed_poly": "POLYMARKET_ENABLED=false",
                                 "feed_chainlink": "POLYMARKET_ENABLED=false", "context": "CONTEXT_ENABLED=false"}
    assert s.required_actors == ("bus", "feed_futures", "feed_spot", "compute")
    # HEALTH_REQUIRED is still the user's list: an actor it leaves out stays out
    s = load_settings(context_enabled="false", health_required="bus,context,compute")
    assert s.required_actors == ("bus", "compute")


def test_health_does_not_require_disabled_actors(tmp_path):
    from falcon import testing

    from actors.api import ShmView, create_app
    from ipc.state import Heartbeat, Registry
    shm = str(tmp_path)
    for symbol, status, required in (
            ("BNBUSDT", 200, ["bus", "feed_futures", "feed_spot", "context", "compute"]),
            ("BTCUSDT", 503, list(names.REQUIRED_ACTORS))):
        s = load_settings(symbol=symbol, shm_dir=shm, shm_prefix="h" + symbol[:3].lower(),
                          zmq_control_url="tcp://127.0.0.1:1")
        reg = Registry(shm, s.ipc.shm_prefix)
        for a in ("bus", "feed_futures", "feed_spot", "context", "compute"):
            Heartbeat(reg, a).beat({})
        r = testing.TestClient(create_app(ShmView(s), s)).simulate_get("/health")
        assert (r.status_code, r.json["required"]) == (status, required), r.json["problems"]
        if status == 503:
            assert r.json["problems"] == ["feed_poly: never seen", "feed_chainlink: never seen"]


# --- variables that look like ours ---------------------------------------------------------------------
def test_prefixes_come_from_the_settings():
    assert {"POLYMARKET", "POLY", "CONTEXT", "TAAPI", "RECORD", "SIM", "FAIR", "EDGE", "SPIKE"} <= SETTING_PREFIXES
    assert SETTING_PREFIXES == {n.upper().split("_")[0] for n in ENV_FIELDS}
    assert "PATH" not in SETTING_PREFIXES and "HOME" not in SETTING_PREFIXES


def test_unknown_variables_exact():
    got = unknown_variables(["POLYMARKET_WS", "polymarket_clob_ws", "POLYMARKET_WS_URL", "PATH", "HOME",
                             "PYTHONPATH", "TOP_N", "CONTEXT_TF", "COOLDOWN", "SIM_NOPE_NOTHING_LIKE_IT",
                             "HTTP_PROXY", "https_proxy", "SUPERVISOR_ENABLED", "TDC_RUN_DIR", "poly_up_is_no",
                             "EDGEBUFFER_BPS", "POLYMARKET_WS", "SLICEUSD", "LANG", "TERM"])
    assert got == [("CONTEXT_TF", "CONTEXT_TFS"), ("COOLDOWN", "COOLDOWN_SEC"),
                   ("EDGEBUFFER_BPS", "EDGE_BUFFER_BPS"), ("POLYMARKET_WS", "POLYMARKET_WS_URL"),
                   ("POLY_UP_IS_NO", "POLY_UP_IS_YES"), ("SIM_NOPE_NOTHING_LIKE_IT", None),
                   ("SLICEUSD", "SLICE_USD"), ("TOP_N", "TOPN")]


def test_the_real_environment_of_a_shell_is_quiet():
    common = ["PATH", "HOME", "PYTHONPATH", "PYTHONUNBUFFERED", "VIRTUAL_ENV", "SHELL", "USER", "LOGNAME",
              "HOSTNAME", "TERM", "LANG", "LC_ALL", "PWD", "OLDPWD", "SHLVL", "XDG_RUNTIME_DIR",
              "SSH_AUTH_SOCK", "TZ", "CI", "PYTEST_CURRENT_TEST", "PROMETHEUS_MULTIPROC_DIR", "TDC_PYTHON",
              "TDC_ROOT", "TDC_RUN_DIR", "TDC_LOG_DIR", "TDC_WITH_SIM", "TDC_RECORD", "SUPERVISOR_ENABLED",
              "SUPERVISOR_PROCESS_NAME", "SUPERVISOR_GROUP_NAME", "SUPERVISOR_SERVER_URL", "HTTP_PROXY",
              "HTTPS_PROXY", "NO_PROXY", "http_proxy", "no_proxy", "INVOCATION_ID", "JOURNAL_STREAM",
              "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "COLUMNS", "LINES", "TMPDIR"]
    assert unknown_variables(common) == []
    assert unknown_variables(SETTING_NAMES) == []


def test_unknown_variable_warnings_from_env_and_dotenv(monkeypatch, tmp_path):
    for k in list(os.environ):
        monkeypatch.delenv(k)
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setenv("POLYMARKET_WS", "wss://x")
    monkeypatch.setenv("TOP_N", "5")
    (tmp_path / ".env").write_text("TOP_N=5\nCONTEXT_TF=1m\nPOLYMARKET_CLOB_WS=ws://a:1\nSIM_ZZZ=\nHOME=/root\n")
    assert unknown_variable_warnings() == [
        "CONTEXT_TF: not a setting; did you mean CONTEXT_TFS? (in .env)",
        "POLYMARKET_WS: not a setting; did you mean POLYMARKET_WS_URL? (in the environment)",
        "SIM_ZZZ: not a setting (no setting is spelled like it; .env.example lists them all) (in .env)",
        "TOP_N: not a setting; did you mean TOPN? (in the environment and in .env)",
    ]
    # never an error: the settings load, unknown names ignored
    assert load_settings().venues.topn == 10


def test_sim_environment_replaces_an_alias(monkeypatch, tmp_path):
    """`run.py --sim` points POLYMARKET_WS_URL at the sim; a user's POLYMARKET_CLOB_WS (the alias)
    must not contradict it in the actors' environment."""
    from actors import cli
    monkeypatch.setenv("TDC_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("POLYMARKET_CLOB_WS", "wss://live.example/ws/market")
    s = load_settings()
    env = cli.supervisor_env(s, with_sim=True)
    assert "POLYMARKET_CLOB_WS" not in env
    assert env["POLYMARKET_WS_URL"] == f"ws://127.0.0.1:{s.sim.poly_port}/ws/market"
    live = cli.supervisor_env(s, with_sim=False)
    assert live["POLYMARKET_CLOB_WS"] == "wss://live.example/ws/market" and "POLYMARKET_WS_URL" not in live


def test_run_py_logs_one_warning_per_variable(monkeypatch, tmp_path, caplog):
    from actors import cli
    monkeypatch.setenv("POLYMARKET_WINDOWSS", "5m")
    (tmp_path / ".env").write_text("SLICEUSD=5\n")
    s = load_settings(bias_weights="1m:1,4h:1")
    with caplog.at_level("WARNING", logger="settings"):
        got = cli.warn_settings(s)
    expected = ["POLYMARKET_WINDOWSS: not a setting; did you mean POLYMARKET_WINDOWS? (in the environment)",
                "SLICEUSD: not a setting; did you mean SLICE_USD? (in .env)",
                "BIAS_WEIGHTS: 4h weighted but not in CONTEXT_TFS=1m,5m,15m,1h: no klines there, so the bias "
                "score stays None"]
    assert got == expected
    assert [(r.levelname, r.name, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "settings", m) for m in expected]
