"""Settings: frozen sections (one per concern), loaded once by run.py (or the gunicorn factory).

Invariants:
- every environment variable of DESIGN.md "Configuration" and the README's settings table is declared
  once, as a field of one section; its variable is the field's name upper-cased, or the name given in
  the section's `ENV` table where the field's name carries a unit the variable does not
  (`decisions.min_depth_usd` is POLYMARKET_MIN_DEPTH); the seed README's names and defaults hold
  (HTTP_HOST 127.0.0.1 is the one change);
- an alias (`ALIASES`: an older name the project used) is accepted wherever its setting is, in the
  environment, `.env` and flat keyword arguments alike; an alias and its setting given in the same
  place with different values is a `SettingsError` naming both;
- `load_settings()` reads the environment and `.env` with pydantic-settings' own sources
  (case-insensitive; an empty value means unset); the environment overrides `.env`, and keyword
  overrides override both; a bad value raises `SettingsError` whose message names the variable;
- `Settings(**flat)` takes the same names as keyword arguments (lower-case variables), without the
  environment: tests and tools build settings that way; it raises `SettingsError` too;
- lists are comma-separated in the environment (`CONTEXT_TFS=1m,5m,1h`);
- a variable that looks like one of ours and is not (`unknown_variables`: our prefixes, or a close
  spelling) is warned about at start, naming the closest real setting; it is never an error;
- derived values (`venues.polymarket_windows`' default, `venues.window_secs`, `polymarket_on`,
  `required_actors`) are pure functions of the fields, recomputed by `replace()`;
- no actor reads `os.environ`: they receive this object, and read `settings.<section>.<field>`;
- every number is finite (no inf, no NaN) and within bounds its unit implies (`unit_bound`: a
  field named `*_sec` is at most MAX_DURATION_SEC, `*_ms` at most as many ms, `*_per_sec` at most
  MAX_RATE_PER_SEC, `*_ns` fits an int64), besides its own bounds;
- rules across fields are checked where their fields are (a section's, or `Settings._across` for
  rules across sections) and their message names every variable involved: an API exposed beyond
  loopback needs API_TOKEN, an API_TOKEN is at least MIN_API_TOKEN_CHARS characters, no two
  listeners share a port or a ZeroMQ endpoint, the fast volatility half-life is not longer than
  the slow one, a recording is flushed at least once per file.
"""
from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsConfigDict

from ipc.names import ACTOR_BY_NAME, ASSETS, CANDLE_SETTLED_SERIES, KLINE_TFS, POLY_SERIES, REQUIRED_ACTORS, asset_of, tf_sec

CsvList = tuple[str, ...]


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


def _csv(v):
    if isinstance(v, str):
        v = tuple(x.strip() for x in v.split(",") if x.strip())
    return tuple(v)


def _known_tfs(v):
    bad = [tf for tf in v if tf not in KLINE_TFS]
    if bad:
        raise ValueError(f"unknown timeframe(s) {bad}; known: {list(KLINE_TFS)}")
    return v


def _ws_url(v: str):
    if not v.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws:// or wss://")
    return v.rstrip("/")


def _http_url(v: str):
    if not v.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return v.rstrip("/")


MIN_API_TOKEN_CHARS = 16
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")          # visible ASCII: what a Bearer header carries
# host names as resolvers take them (an underscore too: container service names have them)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$")


def api_token_form(v: str) -> str:
    """API_TOKEN's syntax: at least MIN_API_TOKEN_CHARS visible ASCII characters. ValueError says
    what is wrong without echoing the token."""
    if not _TOKEN_CHARS.match(v):
        raise ValueError("must be visible ASCII only (no spaces, no control or non-ASCII characters)")
    if len(v) < MIN_API_TOKEN_CHARS:
        raise ValueError(f"has {len(v)} characters; at least {MIN_API_TOKEN_CHARS} are needed "
                         f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    return v


def http_host_form(v: str) -> str:
    """HTTP_HOST's syntax: an IPv4 address, a host name, or an IPv6 address in brackets ([::1]),
    as gunicorn's `--bind host:port` takes it. ValueError otherwise."""
    if v.startswith("[") and v.endswith("]"):
        try:
            ipaddress.IPv6Address(v[1:-1])
        except ValueError:
            raise ValueError(f"{v!r} is not an IPv6 address in brackets") from None
        return v
    if ":" in v:
        raise ValueError("a host only: no scheme or port (HTTP_PORT is the port); an IPv6 address "
                         "goes in brackets, e.g. [::1]")
    try:
        ipaddress.IPv4Address(v)
        return v
    except ValueError:
        pass
    if not _HOSTNAME.match(v) or v.replace(".", "").isdigit():
        raise ValueError(f"{v!r} is neither an IPv4 address, a host name nor [IPv6]")
    return v


def is_loopback_host(host: str) -> bool:
    """A host whose listener only this machine reaches: 127.0.0.0/8, [::1], `localhost`. Any other
    name may resolve anywhere, so it counts as exposed."""
    h = host[1:-1] if host.startswith("[") else host
    if h.lower() == "localhost" or h.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


MIN_WINDOW_SEC = 10


def _window_sec_value(text: Any, series: str | None = None) -> int:
    where = f"{series}: " if series else ""
    try:
        n = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{where}{str(text).strip()!r} is not a whole number of seconds") from None
    if n < MIN_WINDOW_SEC:
        raise ValueError(f"{where}{n} s is shorter than {MIN_WINDOW_SEC} s")
    return n


def window_sec_form(raw: Any) -> int | str | None:
    """POLYMARKET_WINDOW_SEC's syntax, before the followed series are known: None (unset), an int
    (every followed series), or a `series:sec` list, returned in the canonical `5m:20,1h:60` form
    (a mapping is accepted from keyword arguments). Raises ValueError."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number of seconds")
    if isinstance(raw, int):
        return _window_sec_value(raw)
    if isinstance(raw, Mapping):
        items = [(str(k).strip(), v) for k, v in raw.items()]
    else:
        text = str(raw).strip()
        if ":" not in text:
            return _window_sec_value(text)
        items = []
        for part in text.split(","):
            key, sep, val = part.partition(":")
            if not sep or not key.strip():
                raise ValueError(f"{part.strip()!r} is not series:seconds (e.g. 5m:20,1h:60)")
            items.append((key.strip(), val))
    out: dict[str, int] = {}
    for key, val in items:
        if key not in POLY_SERIES:
            raise ValueError(f"unknown series {key!r}; known: {', '.join(POLY_SERIES)}")
        if key in out:
            raise ValueError(f"series {key} given twice")
        out[key] = _window_sec_value(val, key)
    if not out:
        raise ValueError("names no series")
    return ",".join(f"{k}:{v}" for k, v in out.items())


# the window lengths a candle-settled series can have: the hourly settles on the candle of its
# window's length, the daily on 1m closes (whole minutes)
_CANDLE_SECS = {"1h": frozenset(tf_sec(t) for t in KLINE_TFS), "1d": range(60, 86401, 60)}
_CANDLE_HINT = {"1h": "a kline interval: " + ", ".join(f"{tf_sec(t)}" for t in KLINE_TFS if tf_sec(t) <= 3600) + " s",
                "1d": "whole minutes"}


@functools.lru_cache(maxsize=64)
def _window_secs(raw: int | str | None, windows: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    form = window_sec_form(raw)
    given: dict[str, int]
    if form is None:
        given = {}
    elif isinstance(form, int):
        given = dict.fromkeys(windows, form)
    else:
        given = {k: int(v) for k, v in (p.split(":") for p in form.split(","))}
        extra = [k for k in given if k not in windows]
        if extra:
            raise ValueError(f"POLYMARKET_WINDOW_SEC names {', '.join(extra)}, not followed "
                             f"(POLYMARKET_WINDOWS={','.join(windows)})")
    out = []
    for series in windows:
        sec = given.get(series, tf_sec(series))
        if sec > tf_sec(series):
            raise ValueError(f"POLYMARKET_WINDOW_SEC: {sec} s is longer than the {series} series "
                             f"({tf_sec(series)} s)")
        if series in CANDLE_SETTLED_SERIES and sec not in _CANDLE_SECS[series]:
            raise ValueError(f"POLYMARKET_WINDOW_SEC: the {series} series settles on Binance candles, so its "
                             f"window must be a candle length ({_CANDLE_HINT[series]}), not {sec} s")
        out.append((series, sec))
    return tuple(out)


def window_secs(raw: int | str | Mapping | None, windows: Iterable[str]) -> dict[str, int]:
    """Each followed series' window length in seconds: POLYMARKET_WINDOW_SEC (`raw`: unset, an int
    for every series, or `series:sec` pairs for some of them) over the series' own length. Pure;
    raises ValueError naming POLYMARKET_WINDOW_SEC."""
    form = window_sec_form(raw)
    return dict(_window_secs(form, tuple(windows)))


# the bounds a field's unit implies (its name's suffix; see `unit_bound`)
MAX_DURATION_SEC = 7 * 86400          # no pause, window, period or age of ours is longer than a week
MAX_RATE_PER_SEC = 1e6
MAX_INT64 = (1 << 63) - 1


def unit_bound(field: str) -> tuple[float, str] | None:
    """(the largest |value|, its text) a field's unit allows, by the name's suffix; None: no unit
    bound (prices, USD, bps, counts: their own bounds and finiteness only)."""
    if field.endswith("_per_sec"):
        return MAX_RATE_PER_SEC, f"{MAX_RATE_PER_SEC:g} per second"
    if field.endswith("_sec"):
        return MAX_DURATION_SEC, f"{MAX_DURATION_SEC} s (7 days)"
    if field.endswith("_ms"):
        return MAX_DURATION_SEC * 1000, f"{MAX_DURATION_SEC * 1000} ms (7 days)"
    if field.endswith("_ns"):
        return MAX_INT64, "an int64 of ns"
    return None


class Section(BaseModel):
    # allow_inf_nan: `FEED_STALE_SEC=inf` would switch staleness off, `CLOCK_OFFSET_MS=inf` kill
    # every actor at its first clock read
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    ENV: ClassVar[dict[str, str]] = {}           # field -> variable, where they differ

    @classmethod
    def env_name(cls, field: str) -> str:
        return cls.ENV.get(field, field).upper()

    @field_validator("*")
    @classmethod
    def _unit_bound(cls, v, info: ValidationInfo):
        # 1e300 s is finite but overflows every `int(sec * 1e9)` downstream
        bound = unit_bound(info.field_name)
        if bound is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
            if abs(v) > bound[0]:
                raise ValueError(f"{v!r} is beyond {bound[1]}")
        return v


class General(Section):
    symbol: str = Field("BTCUSDT", pattern=r"^[A-Z0-9]{2,20}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_dir: str = "logs"
    # a loopback address or name keeps the API local; anything else needs API_TOKEN
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(2, ge=1, le=64)
    # Bearer token of /control; unset: control refused. At least MIN_API_TOKEN_CHARS visible ASCII
    api_token: str | None = None
    tick_ms: int = Field(100, ge=10, le=10_000)

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, v):
        return v.upper() if isinstance(v, str) else v

    @field_validator("http_host")
    @classmethod
    def _host(cls, v: str):
        return http_host_form(v)

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, v):
        if v == "":
            return None             # as in the environment: empty means unset
        if isinstance(v, str):
            api_token_form(v)
        return v

    @model_validator(mode="after")
    def _exposed_needs_token(self):
        if self.api_token is None and not is_loopback_host(self.http_host):
            raise ValueError(
                f"HTTP_HOST={self.http_host} serves the API beyond this machine, and API_TOKEN is unset: "
                f"set API_TOKEN (at least {MIN_API_TOKEN_CHARS} characters), or HTTP_HOST=127.0.0.1")
        return self

    @property
    def symbol_lower(self) -> str:
        return self.symbol.lower()

    @property
    def asset(self) -> str | None:
        """The up/down asset of SYMBOL (BTCUSDT -> btc; ipc.names.ASSETS), None: no up/down market."""
        return asset_of(self.symbol)


class Venues(Section):
    """The live venues: every URL (the sim and tests stand in for them) and how the feeds use them."""
    futures_ws: str = "wss://fstream.binance.com"
    spot_ws: str = "wss://stream.binance.com:9443"
    futures_rest: str = "https://fapi.binance.com"
    spot_rest: str = "https://api.binance.com"
    depth_enabled: bool = True
    depth_speed: Literal["100ms", "500ms", "none"] = "100ms"
    topn: int = 10                                   # depth levels: 5, 10 or 20
    # a stream silent for this long on an open connection gets the connection replaced
    feed_stale_sec: float = Field(10.0, gt=0)
    # proactive make-before-break rotation ahead of the venue's 24 h disconnect
    # (under 24 h: the venue closes a connection at 24 h, and a rotation must come first)
    feed_rotate_sec: float = Field(23.5 * 3600, gt=0, lt=24 * 3600)
    feed_backoff_max_sec: float = Field(30.0, gt=0, le=600)
    # the feeds' WebSocket transport (actors.feed.transport): websockets' handshake with our frame
    # parser, or picows (the optional `picows` extra; no proxy tunnel)
    ws_transport: Literal["websockets", "picows"] = "websockets"
    # the Polymarket side (feed_poly, feed_chainlink; compute's edge): off also when SYMBOL has no
    # up/down market (Settings.polymarket_on)
    polymarket_enabled: bool = True
    # the followed up/down series (ipc.names.POLY_SERIES): POLYMARKET_WINDOWS, a comma list, or the
    # one-series form POLYMARKET_WINDOW; after validation both are set (polymarket_window is the
    # first followed series)
    polymarket_window: str = "15m"
    polymarket_windows: CsvList = ()
    # the window length: unset (each series' own), an int (every followed series) or `5m:20,1h:60`
    # (the raw, canonical form; read `window_secs`, never this)
    polymarket_window_sec: int | str | None = None
    polymarket_gamma_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    polymarket_ws_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"   # CLOB market WS
    polymarket_rtds_url: str = "wss://ws-live-data.polymarket.com"
    poly_up_is_yes: bool = True
    polymarket_reconcile_sec: float = Field(30.0, gt=0)    # REST /book cross-check period
    taapi_url: str = "https://api.taapi.io"

    @field_validator("futures_ws", "spot_ws", "polymarket_ws_url", "polymarket_rtds_url")
    @classmethod
    def _ws(cls, v: str):
        return _ws_url(v)

    @field_validator("futures_rest", "spot_rest", "polymarket_gamma_url", "polymarket_clob_url", "taapi_url")
    @classmethod
    def _http(cls, v: str):
        return _http_url(v)

    @field_validator("ws_transport")
    @classmethod
    def _transport_installed(cls, v: str):
        # refused at start, not at the first connect deep in a feed's read loop
        import importlib.util
        if v == "picows" and importlib.util.find_spec("picows") is None:
            raise ValueError("picows is not installed (pip install 'tdc-collector[picows]')")
        return v

    @field_validator("topn")
    @classmethod
    def _topn(cls, v: int):
        if v not in (5, 10, 20):
            raise ValueError("must be 5, 10 or 20 (the venue's partial-depth sizes)")
        return v

    @field_validator("polymarket_window")
    @classmethod
    def _series(cls, v: str):
        if v not in POLY_SERIES:
            raise ValueError(f"unknown series {v!r}; known: {', '.join(POLY_SERIES)}")
        return v

    @field_validator("polymarket_windows", mode="before")
    @classmethod
    def _series_list(cls, v):
        out = _csv(v)
        if not out:
            raise ValueError("names no series")
        bad = [x for x in out if x not in POLY_SERIES]
        if bad:
            raise ValueError(f"unknown series {bad}; known: {', '.join(POLY_SERIES)}")
        dup = sorted({x for x in out if out.count(x) > 1})
        if dup:
            raise ValueError(f"series {', '.join(dup)} given twice")
        return out

    @field_validator("polymarket_window_sec", mode="before")
    @classmethod
    def _window_sec(cls, v):
        return window_sec_form(v)

    @model_validator(mode="after")
    def _windows(self):
        # POLYMARKET_WINDOW is the one-series form of POLYMARKET_WINDOWS: a list given wins, and a
        # POLYMARKET_WINDOW given beside it must be one of its series (else which one was meant?)
        if not self.polymarket_windows:
            object.__setattr__(self, "polymarket_windows", (self.polymarket_window,))
        elif "polymarket_window" in self.model_fields_set:
            if self.polymarket_window not in self.polymarket_windows:
                raise ValueError(
                    f"POLYMARKET_WINDOW={self.polymarket_window} is not one of POLYMARKET_WINDOWS="
                    f"{','.join(self.polymarket_windows)}: set one of them (POLYMARKET_WINDOW is the "
                    f"one-series form)")
        else:
            object.__setattr__(self, "polymarket_window", self.polymarket_windows[0])
        _window_secs(self.polymarket_window_sec, self.polymarket_windows)   # raises on a bad key
        return self

    @property
    def window_secs(self) -> dict[str, int]:
        """Every followed series' window length in seconds (POLYMARKET_WINDOW_SEC over the series'
        own length, ipc.names.tf_sec): what feeds, compute and the sim use."""
        return dict(_window_secs(self.polymarket_window_sec, self.polymarket_windows))

    @property
    def depth_on(self) -> bool:
        return self.depth_enabled and self.depth_speed != "none"


class Context(Section):
    """The context actor: REST klines bootstrap and TAAPI (or local) indicators."""
    # off: the context actor only heartbeats (no klines: bias and local indicators stay empty)
    context_enabled: bool = True
    context_tfs: CsvList = ("1m", "5m", "15m", "1h")
    # klines per timeframe at start; more than one request holds (1500) is fetched in pages
    context_bootstrap_limit: int = Field(500, ge=1, le=20_000)
    # the venue's REST request-weight limits per IP per minute (REQUEST_WEIGHT in exchangeInfo)
    context_weight_limit_futures: int = Field(2400, ge=1, le=1_000_000)
    context_weight_limit_spot: int = Field(6000, ge=1, le=1_000_000)
    # self-throttle: wait for the next minute once the used weight passes this share of the limit
    context_weight_throttle_frac: float = Field(0.8, gt=0, le=1)
    context_rest_timeout_sec: float = Field(10.0, gt=0, le=300)
    # retries of one REST call (timeouts, connection errors, 5xx, 429, 418) before it fails
    context_rest_retries: int = Field(4, ge=0, le=100)
    # cap of the jittered exponential backoff between REST retries and failed syncs
    context_rest_backoff_max_sec: float = Field(60.0, gt=0, le=600)
    # a 418 (IP ban) without Retry-After or a ban end: stop REST calls this long (at most the
    # 10 min any REST pause lasts: actors/venues/binance/rest.py MAX_PAUSE_SEC)
    context_ban_default_sec: float = Field(120.0, gt=0, le=600)
    # a closed kline the stream has not delivered this long after its close is fetched by REST
    context_stream_grace_sec: float = Field(5.0, gt=0)
    # TAAPI without a secret falls back to local indicators (actors/clients/indicator_source.py)
    taapi_enabled: bool = True
    taapi_secret: str | None = None
    taapi_tfs: CsvList = ("1m", "5m", "15m", "1h")
    taapi_rate_per_sec: float = Field(1.0, gt=0, le=1000)
    # TAAPI exchange: binance (spot) or binancefutures (USD-M: the klines the local fallback uses)
    taapi_exchange: str = Field("binancefutures", pattern=r"^[a-z0-9]{2,32}$")

    @field_validator("context_tfs", "taapi_tfs", mode="before")
    @classmethod
    def _lists(cls, v):
        return _csv(v)

    @field_validator("context_tfs", "taapi_tfs")
    @classmethod
    def _tfs(cls, v):
        return _known_tfs(v)


class Features(Section):
    bar_late_grace_ms: int = Field(250, ge=0)
    quality_max_skew_ms: float = Field(1000.0, gt=0)  # |receive − exchange time| over this: DEGRADED
    rvol_bars: int = Field(20, ge=1)                  # RVOL baseline: mean volume of this many bars
    vol_halflife_fast_sec: float = Field(30.0, gt=0)  # fast EWMA half-life of 1 s log returns
    vol_halflife_slow_sec: float = Field(300.0, gt=0)  # slow EWMA half-life of 1 s log returns
    vol_blend_fast_weight: float = Field(0.5, ge=0, le=1)  # sigma_blend = w*fast + (1-w)*slow
    vol_warmup_samples: int = Field(30, ge=1)         # 1 s returns before any sigma is published
    impulse_horizon_sec: float = Field(10.0, gt=0)    # impulse: return over this many seconds
    impulse_z_threshold: float = Field(3.0, gt=0)     # impulse flagged when |z| exceeds this
    basis_max_age_ms: float = Field(2000.0, gt=0)     # basis: max age of each venue's quote
    mark_max_age_ms: float = Field(5000.0, gt=0)      # premium/funding: max age of the mark record
    liq_window_sec: float = Field(300.0, gt=0)        # liquidations: rolling window
    liq_large_usd: float = Field(100_000.0, ge=0)     # a liquidation this large (USD) is flagged
    liq_large_keep: int = Field(10, ge=1)             # how many large liquidations are listed
    bias_ema_n: int = Field(20, ge=1)                 # bias: EMA and ATR length, in klines
    bias_k: float = Field(1.0, gt=0)                  # bias: tanh gain on (close - EMA)/ATR
    # bias: per-timeframe weights, tf:weight comma-separated; the score waits for every timeframe
    # of positive weight, so each must be in CONTEXT_TFS (a start warning says so otherwise)
    bias_weights: str = Field("1m:1,5m:1,15m:1,1h:1",
                              pattern=(r"^\s*\d+[smhdw]\s*:\s*\d+(\.\d+)?\s*"
                                       r"(,\s*\d+[smhdw]\s*:\s*\d+(\.\d+)?\s*)*$"))

    @model_validator(mode="after")
    def _halflives(self):
        if self.vol_halflife_fast_sec > self.vol_halflife_slow_sec:
            raise ValueError(f"VOL_HALFLIFE_FAST_SEC={self.vol_halflife_fast_sec:g} is longer than "
                             f"VOL_HALFLIFE_SLOW_SEC={self.vol_halflife_slow_sec:g}: the fast EWMA must "
                             f"not be the slower one")
        return self


class Decisions(Section):
    """Fair value, edge and its vetoes, accumulate, the decision log."""
    ENV: ClassVar[dict[str, str]] = {"min_depth_usd": "polymarket_min_depth",
                                     "stale_threshold_sec": "polymarket_stale_threshold_sec",
                                     "max_spread_bps": "polymarket_max_spread_bps",
                                     "depth_levels": "polymarket_depth_levels"}
    slice_usd: float = Field(20.0, gt=0)
    max_slices_per_window: int = Field(30, ge=0)
    max_usd_per_window: float = Field(300.0, ge=0)
    cooldown_sec: float = Field(2.0, ge=0)
    edge_buffer_bps: float = Field(25.0, ge=0)
    edge_min_time_left_sec: float = Field(30.0, ge=0)      # veto: too close to the window end
    # veto: the Binance microprice's quote older than this (its receive time)
    edge_binance_max_age_ms: float = Field(1000.0, gt=0)
    # veto: a side whose average fill price is below this (longshots)
    edge_min_price: float = Field(0.03, ge=0, lt=1)
    stale_threshold_sec: float = Field(5.0, gt=0)          # veto: a book older than this
    max_spread_bps: float = Field(500.0, gt=0)             # veto: a wider book
    min_depth_usd: float = Field(200.0, ge=0)              # veto: less USD than this on the ask levels
    depth_levels: int = Field(5, ge=1, le=20)              # ...of this many levels
    decision_log_dir: str = "data/decisions"
    fair_basis_halflife_sec: float = Field(300.0, gt=0)    # Binance-Chainlink log-basis EWMA
    fair_smooth_halflife_sec: float = Field(5.0, gt=0)     # smooth mode: Binance price EWMA
    # no fair value from a Chainlink value older than this (its receive time)
    fair_chainlink_max_age_sec: float = Field(5.0, gt=0)
    fair_drift_k: float = Field(0.0)                       # drift = k · bias · sigma per second
    spike_window_sec: float = Field(60.0, gt=0)            # spike/dip: rolling window of mids
    spike_z_threshold: float = Field(3.0, gt=0)
    spike_min_samples: int = Field(20, ge=2)
    spike_min_std: float = Field(0.005, ge=0)              # floor of the mid std (half a tick)


class Record(Section):
    ENV: ClassVar[dict[str, str]] = {"buffer_frames": "record_buffer_size"}
    record_enabled: bool = False
    record_dir: str = "data/recordings"
    buffer_frames: int = Field(100, ge=1)             # frames buffered per file before a flush
    record_flush_sec: float = Field(1.0, gt=0)        # ...or this long, whichever comes first
    record_rotate_sec: int = Field(3600, ge=1)        # one file per venue, stream and this period
    # per feed: raw frames awaiting the recorder; a multiple of 8 (the frame ring's alignment)
    record_ring_bytes: int = Field(64 << 20, ge=1 << 16, le=1 << 30)

    @field_validator("record_ring_bytes")
    @classmethod
    def _aligned(cls, v: int):
        if v % 8:
            raise ValueError(f"must be a multiple of 8 (the frame ring's alignment), e.g. {v - v % 8}")
        return v

    @model_validator(mode="after")
    def _flush_within_rotate(self):
        if self.record_flush_sec > self.record_rotate_sec:
            raise ValueError(f"RECORD_FLUSH_SEC={self.record_flush_sec:g} is longer than RECORD_ROTATE_SEC="
                             f"{self.record_rotate_sec}: a file would be closed before its first flush")
        return self


class Replay(Section):
    """Internal plumbing of `python run.py --replay DIR`: the data clock maps wall time to recording time."""
    replay_dir: str | None = None
    replay_speed: float = Field(1.0, gt=0, le=1000)
    replay_origin_ns: int = Field(0, ge=0)            # recording time at replay_wall0_ns (0: live)
    replay_wall0_ns: int = Field(0, ge=0)
    # the data clock runs this far ahead of the wall clock (negative: behind); fault drills only
    clock_offset_ms: float = 0.0


class Ipc(Section):
    zmq_pub_url: str = "tcp://127.0.0.1:5556"
    zmq_xsub_url: str = "tcp://127.0.0.1:5555"
    zmq_control_url: str = "tcp://127.0.0.1:5557"
    # the bus's second XPUB: the binary record batches (`bin.tick.…`, ipc/binary.py) only
    zmq_bin_url: str = "tcp://127.0.0.1:5558"
    zmq_sndhwm: int = Field(100_000, ge=1, le=(1 << 31) - 1)      # a C int in libzmq
    shm_dir: str = "/dev/shm"
    shm_prefix: str = Field("tdc", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    ring_capacity: int = Field(1 << 16, ge=16, le=1 << 24)
    # an actor whose heartbeat is older than this is reported dead by /health
    health_alive_sec: float = Field(3.0, gt=0)
    # a stream with no record for this long makes /health 503 and quality DEGRADED
    health_data_stale_sec: float = Field(5.0, gt=0)
    # actors that must be alive (and, for feeds, fresh) for /health to answer 200
    health_required: CsvList = REQUIRED_ACTORS

    @field_validator("health_required", mode="before")
    @classmethod
    def _lists(cls, v):
        return _csv(v)

    @field_validator("health_required")
    @classmethod
    def _known_actors(cls, v):
        bad = [a for a in v if a not in ACTOR_BY_NAME]
        if bad:
            raise ValueError(f"unknown actor(s) {bad}; known: {list(ACTOR_BY_NAME)}")
        return v

    @field_validator("zmq_pub_url", "zmq_xsub_url", "zmq_control_url", "zmq_bin_url")
    @classmethod
    def _zmq_url(cls, v: str):
        if not v.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError("must be a ZeroMQ endpoint (tcp://host:port or ipc://path)")
        return v


class Sim(Section):
    """The built-in exchange (`python run.py --sim`)."""
    ENV: ClassVar[dict[str, str]] = {
        "host": "sim_host", "port": "sim_port", "spot_port": "sim_spot_port", "poly_port": "sim_poly_port",
        "seed": "sim_seed", "trade_rate_per_sec": "sim_trade_rate", "start_price": "sim_start_price",
        "conn_lifetime_sec": "sim_conn_lifetime_sec", "spot_trade_ratio": "sim_spot_trade_ratio",
        "rest_ban_sec": "sim_rest_ban_sec", "liquidation_rate_per_sec": "sim_liquidation_rate",
        "poly_update_rate_per_sec": "sim_poly_update_rate", "poly_trade_rate_per_sec": "sim_poly_trade_rate",
        "poly_meta_delay_sec": "sim_poly_meta_delay_sec", "poly_twap": "sim_poly_twap",
        "poly_market_resolved": "sim_poly_market_resolved", "poly_idle_sec": "sim_poly_idle_sec",
        "rtds_idle_sec": "sim_rtds_idle_sec", "taapi_rate_per_sec": "sim_taapi_rate_per_sec",
        "taapi_block_sec": "sim_taapi_block_sec"}
    host: str = "127.0.0.1"
    port: int = Field(9100, ge=1024, le=65000)          # Binance USD-M futures (WS + REST)
    spot_port: int = Field(9101, ge=1024, le=65000)     # Binance spot (WS + REST)
    # Polymarket (Gamma, CLOB REST + market WS) and RTDS, one port (actors/sim/polymarket/port.py)
    poly_port: int = Field(9102, ge=1024, le=65000)
    seed: int = Field(42, ge=0, le=(1 << 63) - 1)      # numpy's generators take no negative seed
    trade_rate_per_sec: float = Field(40.0, gt=0)       # mean aggTrade frames per second
    start_price: float = Field(65_000.0, gt=0, le=1e9)
    conn_lifetime_sec: float = Field(24 * 3600.0, gt=0)
    spot_trade_ratio: float = Field(0.5, gt=0, le=10)   # spot taker rate / futures taker rate
    rest_ban_sec: float = Field(120.0, gt=0)            # REST IP ban (418) after ignoring a 429
    liquidation_rate_per_sec: float = Field(0.03, gt=0, le=100)   # on a calm tape
    poly_update_rate_per_sec: float = Field(6.0, gt=0, le=1000)   # book changes per live window
    poly_trade_rate_per_sec: float = Field(0.3, gt=0, le=100)     # trades per live window
    # Gamma publishes priceToBeat this long after the window start, and resolves this long after its end
    poly_meta_delay_sec: float = Field(10.0, ge=0)
    poly_twap: bool = True                      # markets settle on the 60 s Chainlink TWAP
    poly_market_resolved: bool = False          # send market_resolved (the venue was seen not to)
    poly_idle_sec: float = Field(60.0, gt=0)    # CLOB WS: close a client silent this long
    rtds_idle_sec: float = Field(10.0, gt=0)    # RTDS: close a client silent this long
    # TAAPI bulk endpoint (actors/sim/taapi_bulk.py): the plan rate it enforces (0: TAAPI_RATE_PER_SEC)
    # and how long a key stays blocked after a 429
    taapi_rate_per_sec: float = Field(0.0, ge=0)
    taapi_block_sec: float = Field(10.0, gt=0)


SECTIONS: dict[str, type[Section]] = {
    "general": General, "venues": Venues, "context": Context, "features": Features,
    "decisions": Decisions, "record": Record, "replay": Replay, "ipc": Ipc, "sim": Sim}
# environment variable (lower case) -> (section, field): every setting, once
ENV_FIELDS: dict[str, tuple[str, str]] = {
    cls.env_name(f).lower(): (sec, f) for sec, cls in SECTIONS.items() for f in cls.model_fields}
_FIELD_ENV = {v: k for k, v in ENV_FIELDS.items()}
assert len(ENV_FIELDS) == sum(len(c.model_fields) for c in SECTIONS.values()), "a variable named twice"

# Aliases: alias variable (lower case) -> the setting's variable. An older name the project used
# instead of the seed's; accepted wherever the setting is (environment, .env, keyword arguments).
ALIASES: dict[str, str] = {
    "polymarket_clob_ws": "polymarket_ws_url",
}
assert all(a not in ENV_FIELDS and c in ENV_FIELDS for a, c in ALIASES.items()), "a bad alias"
# every name a setting may be given by (lower case)
SETTING_NAMES: frozenset[str] = frozenset(ENV_FIELDS) | frozenset(ALIASES)

# Actors a setting can switch off (they then run actors/feed/idle.py: heartbeat only). Names of
# ipc.names.ACTORS; the reasons come from Settings.disabled_actors.
_POLYMARKET_ACTORS = ("feed_poly", "feed_chainlink")
assert all(a in ACTOR_BY_NAME for a in (*_POLYMARKET_ACTORS, "context"))


def resolve_aliases(flat: Mapping[str, Any], where: str = "as arguments") -> dict[str, Any]:
    """Flat variables (any case) with aliases replaced by their settings' names (lower case);
    other names are kept as given (lower-cased). Two names of one setting (it and an alias)
    present with different values raise SettingsError naming both (`where` says where they were
    given); with the same value, they are one."""
    out: dict[str, Any] = {}
    via: dict[str, str] = {}          # setting -> the name its value was given by
    for k, v in flat.items():
        name = k.lower()
        canon = ALIASES.get(name, name)
        if canon in out and via[canon] != name:
            if str(out[canon]).strip() != str(v).strip():
                # the setting's own name first in the message
                (n1, v1), (n2, v2) = sorted(((via[canon], out[canon]), (name, v)),
                                            key=lambda p: p[0] != canon)
                both = (f"{n1.upper()} and its alias {n2.upper()}" if n1 == canon else
                        f"{n1.upper()} and {n2.upper()} (aliases of {canon.upper()})")
                raise SettingsError(f"{both} are set {where} to different values, {v1!r} and "
                                    f"{v2!r}: set only {canon.upper()}")
            if name != canon:
                continue              # the same value: keep the setting's own name
        out[canon], via[canon] = v, name
    return out


def _tcp_port(url: str) -> int | None:
    """The port of a `tcp://host:port` endpoint; None for other transports or a wildcard port."""
    if not url.startswith("tcp://"):
        return None
    port = url.rpartition(":")[2]
    return int(port) if port.isdigit() and int(port) > 0 else None


def listener_clashes(s: "Settings") -> list[str]:
    """Listeners of one stack that would bind the same port or ZeroMQ endpoint (the second bind
    fails, and its actor crash-loops): one message per clash, naming the variables. The sim's
    ports count, as `--sim` runs it beside the stack. Pure."""
    ports: dict[int, list[str]] = {}
    for var, port in (("HTTP_PORT", s.general.http_port), ("SIM_PORT", s.sim.port),
                      ("SIM_SPOT_PORT", s.sim.spot_port), ("SIM_POLY_PORT", s.sim.poly_port)):
        ports.setdefault(port, []).append(var)
    urls: dict[str, list[str]] = {}
    for var in ("zmq_pub_url", "zmq_xsub_url", "zmq_control_url", "zmq_bin_url"):
        url = getattr(s.ipc, var)
        port = _tcp_port(url)
        if port is not None:
            ports.setdefault(port, []).append(var.upper())
        else:
            urls.setdefault(url, []).append(var.upper())
    out = [f"{' and '.join(v)} share port {port}: each listener needs its own"
           for port, v in ports.items() if len(v) > 1]
    out += [f"{' and '.join(v)} are one endpoint ({url}): each needs its own"
            for url, v in urls.items() if len(v) > 1]
    return out


# variables whose values a message never repeats
SECRET_VARIABLES: frozenset[str] = frozenset({"api_token", "taapi_secret"})


def _explain(exc: ValidationError) -> str:
    """One line per error, each naming its variable (model-level checks name theirs themselves);
    the value given is repeated, except a secret's."""
    lines = []
    for err in exc.errors():
        loc, msg = err["loc"], err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        if len(loc) >= 2 and (loc[0], loc[1]) in _FIELD_ENV:
            var = _FIELD_ENV[(loc[0], loc[1])]
            got = "hidden" if var in SECRET_VARIABLES else repr(err.get("input"))
            lines.append(f"{var.upper()}: {msg} (got {got})")
        else:
            lines.append(msg)
    return "bad setting(s):\n  " + "\n  ".join(lines)


class Settings(BaseModel):
    """Every section; build with `load_settings()` (environment) or `Settings(**flat)` (no environment)."""
    model_config = ConfigDict(frozen=True)
    general: General = General()
    venues: Venues = Venues()
    context: Context = Context()
    features: Features = Features()
    decisions: Decisions = Decisions()
    record: Record = Record()
    replay: Replay = Replay()
    ipc: Ipc = Ipc()
    sim: Sim = Sim()

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    @model_validator(mode="after")
    def _across(self):
        """Rules across sections (each section checks its own)."""
        clashes = listener_clashes(self)
        if clashes:
            raise ValueError("; ".join(clashes))
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any):
        """Flat variables (`tick_ms=250`, aliases too) are sorted into their sections; unknown
        ones are errors."""
        if not isinstance(data, dict) or not any(k not in SECTIONS for k in data):
            return data
        out: dict[str, dict] = {}
        flat = resolve_aliases({k: v for k, v in data.items() if k not in SECTIONS})
        for k, v in data.items():
            if k in SECTIONS:
                out.setdefault(k, {}).update(v if isinstance(v, dict) else dict(v))
        for k, v in flat.items():
            try:
                sec, f = ENV_FIELDS[k]
            except KeyError:
                raise ValueError(f"unknown setting {k.upper()}") from None
            out.setdefault(sec, {})[f] = v
        return out

    def replace(self, **flat) -> "Settings":
        """A copy with some variables changed (flat names, as `Settings(**flat)`), validated again.
        Only the fields that were given are carried over, so derived defaults (the followed
        series, their window lengths) follow the new values."""
        data = {name: getattr(self, name).model_dump(include=getattr(self, name).model_fields_set)
                for name in SECTIONS}
        for k, v in resolve_aliases(flat).items():
            try:
                sec, f = ENV_FIELDS[k]
            except KeyError:
                raise SettingsError(f"unknown setting {k.upper()}") from None
            data[sec][f] = v
        return Settings(**data)

    # --- what the switches turn off ------------------------------------------------------------
    @property
    def polymarket_off_reason(self) -> str | None:
        """Why the Polymarket side is off (None: it is on)."""
        if not self.venues.polymarket_enabled:
            return "POLYMARKET_ENABLED=false"
        if self.general.asset is None:
            return (f"SYMBOL={self.general.symbol} has no Polymarket up/down market "
                    f"(known: {', '.join(ASSETS)})")
        return None

    @property
    def polymarket_on(self) -> bool:
        """POLYMARKET_ENABLED and SYMBOL has an up/down market: feed_poly and feed_chainlink run."""
        return self.polymarket_off_reason is None

    @property
    def disabled_actors(self) -> dict[str, str]:
        """Actors switched off by these settings -> why (they heartbeat `{"disabled": why}`)."""
        out: dict[str, str] = {}
        reason = self.polymarket_off_reason
        if reason is not None:
            out.update(dict.fromkeys(_POLYMARKET_ACTORS, reason))
        if not self.context.context_enabled:
            out["context"] = "CONTEXT_ENABLED=false"
        return out

    @property
    def required_actors(self) -> tuple[str, ...]:
        """HEALTH_REQUIRED less the actors these settings switch off: what /health requires."""
        off = self.disabled_actors
        return tuple(a for a in self.ipc.health_required if a not in off)


# --- reading the environment and .env ------------------------------------------------------------
class _EnvBase(BaseSettings):
    # the sources only: names are matched by resolve_aliases/ENV_FIELDS, values left raw for the
    # sections to validate; an empty value (`API_TOKEN=` in a copied .env.example) means "unset"
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False)


def read_sources(env_file: str | None = ".env") -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(environment, .env): every variable of each, names lower-cased, values as given (None for a
    .env line without `=`), read by pydantic-settings' own sources."""
    environ = dict(EnvSettingsSource(_EnvBase, case_sensitive=False).env_vars)
    dotenv = dict(DotEnvSettingsSource(_EnvBase, env_file=env_file, case_sensitive=False).env_vars)
    return environ, dotenv


def _given(source: Mapping[str, str | None], where: str) -> dict[str, str]:
    """A source's values for our settings (aliases resolved), empty values dropped."""
    ours = {k: v for k, v in source.items() if k in SETTING_NAMES and v is not None and v != ""}
    return resolve_aliases(ours, where)


def load_settings(env_file: str | None = ".env", **overrides) -> Settings:
    """Build the settings from `.env`, the environment (which wins) and `overrides` (flat,
    lower-case variable names or aliases; win over both); raise SettingsError naming each bad
    variable."""
    bad = [k for k in overrides if k.lower() not in SETTING_NAMES]
    if bad:
        raise SettingsError("unknown setting(s): " + ", ".join(k.upper() for k in bad))
    environ, dotenv = read_sources(env_file)
    flat = {**_given(dotenv, "in .env"), **_given(environ, "in the environment"),
            **resolve_aliases(overrides)}
    return Settings(**flat)


# --- variables that look like ours but are not -----------------------------------------------------
# Well-known variables of other programs that share one of our prefixes (HTTP_): never warned about.
FOREIGN_VARIABLES: frozenset[str] = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
                                               "FTP_PROXY"})
# our prefixes: the first `_`-segment of every setting's variable (POLYMARKET, POLY, CONTEXT, SIM, ...)
SETTING_PREFIXES: frozenset[str] = frozenset(n.upper().split("_", 1)[0] for n in ENV_FIELDS)
# difflib ratios: a name at least this close to a setting is a misspelling of it (even without our
# prefix); a suggestion must be at least SUGGEST_CUTOFF close
CLOSE_CUTOFF, SUGGEST_CUTOFF = 0.85, 0.6
_CANONICAL = sorted(n.upper() for n in ENV_FIELDS)
_ALL_NAMES = sorted(n.upper() for n in SETTING_NAMES)


def unknown_variables(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """The names (any case) that look like one of our settings and are not one (nor an alias):
    those whose first `_`-segment is one of our prefixes (SETTING_PREFIXES), and those spelled
    close to a setting (difflib ratio >= CLOSE_CUTOFF). Each as (NAME, the closest setting by
    difflib, None when none is SUGGEST_CUTOFF close), sorted by name. FOREIGN_VARIABLES are never
    reported. Pure."""
    out: dict[str, str | None] = {}
    for raw in names:
        name = raw.upper()
        if name.lower() in SETTING_NAMES or name in FOREIGN_VARIABLES or name in out:
            continue
        # `COOLDOWN` or `COOLDOWN_...`: one of our prefixes
        ours = name.partition("_")[0] in SETTING_PREFIXES
        if not ours and not difflib.get_close_matches(name, _ALL_NAMES, n=1, cutoff=CLOSE_CUTOFF):
            continue
        best = difflib.get_close_matches(name, _ALL_NAMES, n=1, cutoff=SUGGEST_CUTOFF)
        out[name] = ALIASES.get(best[0].lower(), best[0].lower()).upper() if best else None
    return sorted(out.items())


def unknown_variable_message(name: str, suggestion: str | None, where: str = "") -> str:
    """`POLYMARKET_WS: not a setting; did you mean POLYMARKET_WS_URL?` (+ ` (in .env)`)."""
    text = (f"{name}: not a setting; did you mean {suggestion}?" if suggestion else
            f"{name}: not a setting (no setting is spelled like it; .env.example lists them all)")
    return f"{text} ({where})" if where else text


def unknown_variable_warnings(env_file: str | None = ".env") -> list[str]:
    """One message per variable of the environment or `.env` that looks like ours and is not."""
    environ, dotenv = read_sources(env_file)
    out = []
    for name, suggestion in unknown_variables([*environ, *dotenv]):
        low = name.lower()
        where = " and ".join(w for w, src in (("in the environment", environ), ("in .env", dotenv))
                             if low in src)
        out.append(unknown_variable_message(name, suggestion, where))
    return out


def consistency_warnings(s: Settings) -> list[str]:
    """Valid settings that will not do what they seem to (a start warning each, never an error)."""
    out = []
    if s.context.context_enabled:
        # BIAS_WEIGHTS' syntax is the field's pattern: `tf:weight,...`; the bias score waits for
        # every positively weighted timeframe (actors/features/bias.py)
        weights = [(tf.strip(), float(w)) for tf, w in
                   (p.split(":") for p in s.features.bias_weights.split(",") if p.strip())]
        missing = [tf for tf, w in weights if w > 0 and tf not in s.context.context_tfs]
        if missing:
            out.append(f"BIAS_WEIGHTS: {', '.join(missing)} weighted but not in CONTEXT_TFS="
                       f"{','.join(s.context.context_tfs)}: no klines there, so the bias score "
                       f"stays None")
    d = s.decisions
    if d.slice_usd > d.max_usd_per_window:
        out.append(f"SLICE_USD={d.slice_usd:g} is more than MAX_USD_PER_WINDOW={d.max_usd_per_window:g}: "
                   f"no slice is ever accumulated")
    if s.polymarket_on:
        short = {k: v for k, v in s.venues.window_secs.items() if d.edge_min_time_left_sec >= v}
        if short:
            out.append(f"EDGE_MIN_TIME_LEFT_SEC={d.edge_min_time_left_sec:g} is at least the window of "
                       + ", ".join(f"{k} ({v} s)" for k, v in short.items())
                       + ": the edge there is always vetoed")
    return out


def start_warnings(s: Settings, env_file: str | None = ".env") -> list[str]:
    """Everything run.py warns about when it loads the settings."""
    return unknown_variable_warnings(env_file) + consistency_warnings(s)
