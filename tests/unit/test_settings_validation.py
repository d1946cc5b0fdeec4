"""Settings that would disable a safety, kill an actor or expose the API are refused at start, each
with a message naming the variable(s) (issue 15, item 9): non-finite numbers, unit bounds,
RECORD_RING_BYTES' alignment, HTTP_HOST beyond loopback without API_TOKEN, short tokens, listeners
sharing a port, and the rules across fields."""
from __future__ import annotations

import pytest
from annotated_types import Le, Lt

from config.settings import (ENV_FIELDS, MAX_DURATION_SEC, MIN_API_TOKEN_CHARS, SECTIONS, Settings, SettingsError,
                             consistency_warnings, http_host_form, is_loopback_host, listener_clashes,
                             load_settings, unit_bound)

pytestmark = pytest.mark.usefixtures("clean_settings_env")    # tests/unit/conftest.py

TOKEN = "t0ken-of-16-chars"
# every float setting, as (variable, field name)
FLOATS = [(cls.env_name(f), f) for cls in SECTIONS.values() for f, fi in cls.model_fields.items()
          if fi.annotation is float]


def refused(monkeypatch, **env) -> str:
    """The start error with these variables in the environment (load_settings, as run.py)."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as e:
        load_settings()
    return str(e.value)


def test_every_float_setting_is_listed():
    # the parametrization below covers them all: a new float field is covered without a new line
    assert len(FLOATS) == 56
    assert ("FEED_STALE_SEC", "feed_stale_sec") in FLOATS and ("CLOCK_OFFSET_MS", "clock_offset_ms") in FLOATS


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e400"])
@pytest.mark.parametrize("var,field", FLOATS, ids=[v for v, _ in FLOATS])
def test_non_finite_floats_are_refused_naming_the_variable(monkeypatch, var, field, value):
    msg = refused(monkeypatch, **{var: value})
    assert msg == f"bad setting(s):\n  {var}: Input should be a finite number (got {value!r})"


@pytest.mark.parametrize("var,field", [(v, f) for v, f in FLOATS if unit_bound(f) is not None],
                         ids=[v for v, f in FLOATS if unit_bound(f) is not None])
def test_unit_bounds_refuse_huge_values(monkeypatch, var, field):
    # finite, but `int(1e300 * 1e9)` downstream is an OverflowError: the field's own upper bound
    # refuses it, else its unit's
    sec, _ = ENV_FIELDS[var.lower()]
    fi = SECTIONS[sec].model_fields[field]
    own = [m for m in fi.metadata if isinstance(m, (Le, Lt))]
    if own:
        why = (f"Input should be less than or equal to {own[0].le}" if isinstance(own[0], Le)
               else f"Input should be less than {own[0].lt}")
    else:
        why = f"1e+300 is beyond {unit_bound(field)[1]}"
    assert refused(monkeypatch, **{var: "1e300"}) == f"bad setting(s):\n  {var}: {why} (got '1e300')"


def test_unit_bounds_by_suffix():
    assert unit_bound("feed_stale_sec") == (MAX_DURATION_SEC, "604800 s (7 days)")
    assert unit_bound("quality_max_skew_ms") == (MAX_DURATION_SEC * 1000, "604800000 ms (7 days)")
    assert unit_bound("trade_rate_per_sec") == (1e6, "1e+06 per second")
    assert unit_bound("replay_origin_ns") == ((1 << 63) - 1, "an int64 of ns")
    assert unit_bound("slice_usd") is None and unit_bound("topn") is None


def test_clock_offset_is_bounded_both_ways():
    for v in (-1e12, 1e12):
        with pytest.raises(SettingsError, match=r"CLOCK_OFFSET_MS: .* is beyond 604800000 ms \(7 days\)"):
            Settings(clock_offset_ms=v)
    assert Settings(clock_offset_ms=-3000).replay.clock_offset_ms == -3000.0
    assert Settings(clock_offset_ms=MAX_DURATION_SEC * 1000).replay.clock_offset_ms == 604_800_000.0


@pytest.mark.parametrize("value,ok", [("65536", True), ("67108864", True), ("65537", False),
                                      ("65540", False), ("1073741824", True), ("1073741832", False),
                                      ("65528", False)])
def test_record_ring_bytes_multiple_of_8_and_bounded(monkeypatch, value, ok):
    if ok:
        monkeypatch.setenv("RECORD_RING_BYTES", value)
        assert load_settings().record.record_ring_bytes == int(value)
        return
    msg = refused(monkeypatch, RECORD_RING_BYTES=value)
    assert msg.startswith("bad setting(s):\n  RECORD_RING_BYTES: ")
    if int(value) % 8 and 65536 <= int(value) <= 1 << 30:
        assert f"must be a multiple of 8 (the frame ring's alignment), e.g. {int(value) // 8 * 8}" in msg


@pytest.mark.parametrize("env,message", [
    ({"ZMQ_SNDHWM": str(1 << 40)}, "ZMQ_SNDHWM: Input should be less than or equal to 2147483647"),
    ({"RING_CAPACITY": str(1 << 30)}, "RING_CAPACITY: Input should be less than or equal to 16777216"),
    ({"FEED_ROTATE_SEC": "86400"}, "FEED_ROTATE_SEC: Input should be less than 86400"),
    ({"FEED_BACKOFF_MAX_SEC": "3600"}, "FEED_BACKOFF_MAX_SEC: Input should be less than or equal to 600"),
    ({"CONTEXT_BAN_DEFAULT_SEC": "1e5"}, "CONTEXT_BAN_DEFAULT_SEC: Input should be less than or equal to 600"),
    ({"TAAPI_RATE_PER_SEC": "1e9"}, "TAAPI_RATE_PER_SEC: Input should be less than or equal to 1000"),
    ({"SIM_SEED": "-1"}, "SIM_SEED: Input should be greater than or equal to 0"),
    ({"REPLAY_SPEED": "1e6"}, "REPLAY_SPEED: Input should be less than or equal to 1000"),
])
def test_bounds_that_would_kill_an_actor(monkeypatch, env, message):
    assert message in refused(monkeypatch, **env)


# --- the API's exposure and its token -----------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "[::]", "api.example.com", "api_server"])
def test_an_exposed_api_needs_a_token(monkeypatch, host):
    msg = refused(monkeypatch, HTTP_HOST=host)
    assert msg == (f"bad setting(s):\n  HTTP_HOST={host} serves the API beyond this machine, and API_TOKEN "
                   f"is unset: set API_TOKEN (at least 16 characters), or HTTP_HOST=127.0.0.1")
    monkeypatch.setenv("API_TOKEN", TOKEN)
    s = load_settings()
    assert (s.general.http_host, s.general.api_token) == (host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_loopback_needs_no_token(monkeypatch, host):
    monkeypatch.setenv("HTTP_HOST", host)
    s = load_settings()
    assert (s.general.http_host, s.general.api_token) == (host, None)


def test_loopback_hosts():
    assert [is_loopback_host(h) for h in ("127.0.0.1", "127.9.9.9", "localhost", "LOCALHOST", "[::1]",
                                          "0.0.0.0", "[::]", "10.0.0.1", "host", "a.localhost")] == \
        [True, True, True, True, True, False, False, False, False, True]


@pytest.mark.parametrize("host,message", [
    ("::1", "a host only: no scheme or port (HTTP_PORT is the port); an IPv6 address goes in brackets, e.g. [::1]"),
    ("0.0.0.0:8000", "a host only: no scheme or port"),
    ("http://0.0.0.0", "a host only: no scheme or port"),
    ("[nope]", "'[nope]' is not an IPv6 address in brackets"),
    ("999.1.1.1", "'999.1.1.1' is neither an IPv4 address, a host name nor [IPv6]"),
    ("two words", "'two words' is neither an IPv4 address, a host name nor [IPv6]"),
])
def test_http_host_form(monkeypatch, host, message):
    msg = refused(monkeypatch, HTTP_HOST=host, API_TOKEN=TOKEN)
    assert msg.startswith(f"bad setting(s):\n  HTTP_HOST: {message}"), msg
    assert http_host_form("[::1]") == "[::1]" and http_host_form("my-host.lan") == "my-host.lan"


@pytest.mark.parametrize("token,message", [
    ("x", "API_TOKEN: has 1 characters; at least 16 are needed"),
    ("fifteen-chars!!", "API_TOKEN: has 15 characters; at least 16 are needed"),
    ("has a space in it ok", "API_TOKEN: must be visible ASCII only (no spaces, no control or non-ASCII characters)"),
    ("tökén-with-ümlauts", "API_TOKEN: must be visible ASCII only"),
])
def test_short_or_unsendable_tokens_are_refused_without_echoing_them(monkeypatch, token, message):
    msg = refused(monkeypatch, API_TOKEN=token)
    assert message in msg and msg.endswith("(got hidden)"), msg
    assert token not in msg


def test_a_token_of_the_minimum_length_and_an_empty_one():
    assert MIN_API_TOKEN_CHARS == 16
    assert Settings(api_token="a" * 16).general.api_token == "a" * 16
    assert Settings(api_token="").general.api_token is None       # empty: unset, as in .env


# --- listeners, and rules across fields ---------------------------------------------------------

@pytest.mark.parametrize("kw,message", [
    ({"http_port": 9100}, "HTTP_PORT and SIM_PORT share port 9100: each listener needs its own"),
    ({"sim_spot_port": 9102}, "SIM_SPOT_PORT and SIM_POLY_PORT share port 9102: each listener needs its own"),
    ({"zmq_control_url": "tcp://127.0.0.1:5556"},
     "ZMQ_PUB_URL and ZMQ_CONTROL_URL share port 5556: each listener needs its own"),
    ({"http_port": 5555}, "HTTP_PORT and ZMQ_XSUB_URL share port 5555: each listener needs its own"),
    ({"zmq_pub_url": "ipc:///tmp/x.sock", "zmq_xsub_url": "ipc:///tmp/x.sock"},
     "ZMQ_PUB_URL and ZMQ_XSUB_URL are one endpoint (ipc:///tmp/x.sock): each needs its own"),
])
def test_listeners_sharing_a_port_are_refused(kw, message):
    with pytest.raises(SettingsError) as e:
        Settings(**kw)
    assert str(e.value) == "bad setting(s):\n  " + message


def test_listener_clashes_pure():
    assert listener_clashes(Settings()) == []
    s = Settings(zmq_pub_url="tcp://*:7000", zmq_xsub_url="tcp://127.0.0.1:7001",
                 zmq_control_url="ipc:///tmp/c.sock")
    assert listener_clashes(s) == []
    with pytest.raises(SettingsError, match="HTTP_PORT and SIM_PORT and SIM_SPOT_PORT share port 9101"):
        Settings(http_port=9101, sim_port=9101, sim_spot_port=9101)


def test_fast_half_life_not_longer_than_the_slow_one():
    with pytest.raises(SettingsError) as e:
        Settings(vol_halflife_fast_sec=400)
    assert str(e.value) == ("bad setting(s):\n  VOL_HALFLIFE_FAST_SEC=400 is longer than VOL_HALFLIFE_SLOW_SEC=300: "
                            "the fast EWMA must not be the slower one")
    assert Settings(vol_halflife_fast_sec=300).features.vol_halflife_fast_sec == 300.0


def test_a_recording_file_is_flushed_before_it_rotates():
    with pytest.raises(SettingsError) as e:
        Settings(record_rotate_sec=5, record_flush_sec=6)
    assert str(e.value) == ("bad setting(s):\n  RECORD_FLUSH_SEC=6 is longer than RECORD_ROTATE_SEC=5: "
                            "a file would be closed before its first flush")
    assert Settings(record_rotate_sec=5, record_flush_sec=5).record.record_rotate_sec == 5


def test_replace_checks_the_rules_again():
    s = Settings(api_token=TOKEN, http_host="0.0.0.0")
    with pytest.raises(SettingsError, match="HTTP_HOST=0.0.0.0 serves the API beyond this machine"):
        Settings(http_host="0.0.0.0")
    assert s.replace(tick_ms=200).general.http_host == "0.0.0.0"
    with pytest.raises(SettingsError, match="must be a multiple of 8"):
        s.replace(record_ring_bytes=100_001)


def test_warnings_for_settings_that_never_trade():
    assert consistency_warnings(Settings()) == []
    assert consistency_warnings(Settings(slice_usd=500, max_usd_per_window=300)) == [
        "SLICE_USD=500 is more than MAX_USD_PER_WINDOW=300: no slice is ever accumulated"]
    assert consistency_warnings(Settings(polymarket_windows="5m,15m", edge_min_time_left_sec=300)) == [
        "EDGE_MIN_TIME_LEFT_SEC=300 is at least the window of 5m (300 s): the edge there is always vetoed"]
    # Polymarket off: no edge to veto
    assert consistency_warnings(Settings(polymarket_windows="5m", edge_min_time_left_sec=300,
                                         polymarket_enabled=False)) == []
