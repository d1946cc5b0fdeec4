"""Settings: frozen sections (one per concern), loaded once by run.py (or the gunicorn factory).

Invariants:
- every environment variable of DESIGN.md "Configuration" and the README's settings table is declared
  once, as a field of one section; its variable is the field's name upper-cased, or the name given in
  the section's `ENV` table where the field's name carries a unit the variable does not
  (`decisions.min_depth_usd` is POLYMARKET_MIN_DEPTH);
- `load_settings()` reads the environment and `.env` (case-insensitive; an empty value means unset),
  and a bad value raises `SettingsError` whose message names the variable;
- `Settings(**flat)` takes the same names as keyword arguments (lower-case variables), without the
  environment: tests and tools build settings that way;
- lists are comma-separated in the environment (`CONTEXT_TFS=1m,5m,1h`);
- no actor reads `os.environ`: they receive this object, and read `settings.<section>.<field>`.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ipc.names import ACTOR_BY_NAME, KLINE_TFS, POLY_SERIES, REQUIRED_ACTORS, tf_sec

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


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ENV: ClassVar[dict[str, str]] = {}           # field -> variable, where they differ

    @classmethod
    def env_name(cls, field: str) -> str:
        return cls.ENV.get(field, field).upper()


class General(Section):
    symbol: str = Field("BTCUSDT", pattern=r"^[A-Z0-9]{2,20}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_dir: str = "logs"
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    api_workers: int = Field(2, ge=1, le=64)
    api_token: str | None = None
    tick_ms: int = Field(100, ge=10, le=10_000)

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, v):
        return v.upper() if isinstance(v, str) else v

    @property
    def symbol_lower(self) -> str:
        return self.symbol.lower()


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
    feed_rotate_sec: float = Field(23.5 * 3600, gt=0)
    feed_backoff_max_sec: float = Field(30.0, gt=0)
    polymarket_window: str = "15m"                   # the up/down series (a key of ipc.names.POLY_SERIES)
    polymarket_window_sec: int | None = Field(None, ge=10)   # default: the series' length
    polymarket_gamma_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    polymarket_clob_ws: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    polymarket_rtds_url: str = "wss://ws-live-data.polymarket.com"
    poly_up_is_yes: bool = True
    polymarket_reconcile_sec: float = Field(30.0, gt=0)    # REST /book cross-check period
    taapi_url: str = "https://api.taapi.io"

    @field_validator("futures_ws", "spot_ws", "polymarket_clob_ws", "polymarket_rtds_url")
    @classmethod
    def _ws(cls, v: str):
        return _ws_url(v)

    @field_validator("futures_rest", "spot_rest", "polymarket_gamma_url", "polymarket_clob_url", "taapi_url")
    @classmethod
    def _http(cls, v: str):
        return _http_url(v)

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

    @model_validator(mode="after")
    def _window(self):
        if self.polymarket_window_sec is None:
            object.__setattr__(self, "polymarket_window_sec", tf_sec(self.polymarket_window))
        return self

    @property
    def depth_on(self) -> bool:
        return self.depth_enabled and self.depth_speed != "none"


class Context(Section):
    """The context actor: REST klines bootstrap and TAAPI (or local) indicators."""
    context_tfs: CsvList = ("1m", "5m", "15m", "1h", "4h")
    # klines per timeframe at start; more than one request holds (1500) is fetched in pages
    context_bootstrap_limit: int = Field(500, ge=1, le=20_000)
    # the venue's REST request-weight limits per IP per minute (REQUEST_WEIGHT in exchangeInfo)
    context_weight_limit_futures: int = Field(2400, ge=1)
    context_weight_limit_spot: int = Field(6000, ge=1)
    # self-throttle: wait for the next minute once the used weight passes this share of the limit
    context_weight_throttle_frac: float = Field(0.8, gt=0, le=1)
    context_rest_timeout_sec: float = Field(10.0, gt=0)
    # retries of one REST call (timeouts, connection errors, 5xx, 429, 418) before it fails
    context_rest_retries: int = Field(4, ge=0, le=100)
    # cap of the jittered exponential backoff between REST retries and failed syncs
    context_rest_backoff_max_sec: float = Field(60.0, gt=0)
    # a 418 (IP ban) without Retry-After or a ban end: stop REST calls this long
    context_ban_default_sec: float = Field(120.0, gt=0)
    # a closed kline the stream has not delivered this long after its close is fetched by REST
    context_stream_grace_sec: float = Field(5.0, gt=0)
    taapi_enabled: bool = False
    taapi_secret: str | None = None
    taapi_tfs: CsvList = ("5m", "15m", "1h")
    taapi_rate_per_sec: float = Field(1.0, gt=0)
    # TAAPI exchange: binance (spot) or binancefutures (USD-M: the klines the local fallback uses)
    taapi_exchange: str = Field("binance", pattern=r"^[a-z0-9]{2,32}$")

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
    # bias: per-timeframe weights, tf:weight comma-separated
    bias_weights: str = Field("1m:1,5m:1,15m:1,1h:1,4h:1",
                              pattern=(r"^\s*\d+[smhdw]\s*:\s*\d+(\.\d+)?\s*"
                                       r"(,\s*\d+[smhdw]\s*:\s*\d+(\.\d+)?\s*)*$"))


class Decisions(Section):
    """Fair value, edge and its vetoes, accumulate, the decision log."""
    ENV: ClassVar[dict[str, str]] = {"min_depth_usd": "polymarket_min_depth",
                                     "stale_threshold_sec": "polymarket_stale_threshold_sec",
                                     "max_spread_bps": "polymarket_max_spread_bps",
                                     "depth_levels": "polymarket_depth_levels"}
    slice_usd: float = Field(10.0, gt=0)
    max_slices_per_window: int = Field(5, ge=0)
    max_usd_per_window: float = Field(50.0, ge=0)
    cooldown_sec: float = Field(30.0, ge=0)
    edge_buffer_bps: float = Field(100.0, ge=0)
    edge_min_time_left_sec: float = Field(30.0, ge=0)      # veto: too close to the window end
    stale_threshold_sec: float = Field(10.0, gt=0)         # veto: a book older than this
    max_spread_bps: float = Field(500.0, gt=0)             # veto: a wider book
    min_depth_usd: float = Field(50.0, ge=0)               # veto: less USD than this on the ask levels
    depth_levels: int = Field(5, ge=1, le=20)              # ...of this many levels
    decision_log_dir: str = "data/decisions"
    fair_basis_halflife_sec: float = Field(300.0, gt=0)    # Binance-Chainlink log-basis EWMA
    fair_smooth_halflife_sec: float = Field(5.0, gt=0)     # smooth mode: Binance price EWMA
    fair_chainlink_max_age_sec: float = Field(60.0, gt=0)  # older Chainlink value: no fair value
    fair_drift_k: float = Field(0.0)                       # drift = k · bias · sigma per second
    spike_window_sec: float = Field(60.0, gt=0)            # spike/dip: rolling window of mids
    spike_z_threshold: float = Field(3.0, gt=0)
    spike_min_samples: int = Field(20, ge=2)
    spike_min_std: float = Field(0.005, ge=0)              # floor of the mid std (half a tick)


class Record(Section):
    ENV: ClassVar[dict[str, str]] = {"buffer_frames": "record_buffer_size"}
    record_enabled: bool = False
    record_dir: str = "data/records"
    buffer_frames: int = Field(1000, ge=1)            # frames buffered per file before a flush
    record_flush_sec: float = Field(1.0, gt=0)        # ...or this long, whichever comes first
    record_rotate_sec: int = Field(3600, ge=1)        # one file per venue, stream and this period
    record_ring_bytes: int = Field(64 << 20, ge=1 << 16)   # per feed: raw frames awaiting the recorder


class Replay(Section):
    """Internal plumbing of `python run.py --replay DIR`: the data clock maps wall time to recording time."""
    replay_dir: str | None = None
    replay_speed: float = Field(1.0, gt=0)
    replay_origin_ns: int = Field(0, ge=0)            # recording time at replay_wall0_ns (0: live)
    replay_wall0_ns: int = Field(0, ge=0)
    # the data clock runs this far ahead of the wall clock (negative: behind); fault drills only
    clock_offset_ms: float = 0.0


class Ipc(Section):
    zmq_pub_url: str = "tcp://127.0.0.1:5556"
    zmq_xsub_url: str = "tcp://127.0.0.1:5555"
    zmq_control_url: str = "tcp://127.0.0.1:5557"
    zmq_sndhwm: int = Field(100_000, ge=1)
    shm_dir: str = "/dev/shm"
    shm_prefix: str = Field("tdc", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    ring_capacity: int = Field(1 << 16, ge=16)
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

    @field_validator("zmq_pub_url", "zmq_xsub_url", "zmq_control_url")
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
    seed: int = 42
    trade_rate_per_sec: float = Field(40.0, gt=0)       # mean aggTrade frames per second
    start_price: float = Field(65_000.0, gt=0)
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

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any):
        """Flat variables (`tick_ms=250`) are sorted into their sections; unknown ones are errors."""
        if not isinstance(data, dict) or not any(k not in SECTIONS for k in data):
            return data
        out: dict[str, dict] = {}
        for k, v in data.items():
            if k in SECTIONS:
                out.setdefault(k, {}).update(v if isinstance(v, dict) else dict(v))
                continue
            try:
                sec, f = ENV_FIELDS[k.lower()]
            except KeyError:
                raise ValueError(f"unknown setting {k.upper()}") from None
            out.setdefault(sec, {})[f] = v
        return out

    def replace(self, **flat) -> "Settings":
        """A copy with some variables changed (flat names, as `Settings(**flat)`), validated again."""
        data = {name: getattr(self, name).model_dump() for name in SECTIONS}
        for k, v in flat.items():
            try:
                sec, f = ENV_FIELDS[k.lower()]
            except KeyError:
                raise ValueError(f"unknown setting {k.upper()}") from None
            data[sec][f] = v
        return Settings(**data)


# The environment reader: one field per variable, values left raw for the sections to validate.
_UNSET: Any = None


class _EnvBase(BaseSettings):
    # an empty value (`API_TOKEN=` in a copied .env.example) means "unset": the default applies
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)


_Env = create_model("_Env", __base__=_EnvBase,
                    **{name: (Any, Field(default=_UNSET)) for name in ENV_FIELDS})


def load_settings(**overrides) -> Settings:
    """Build the settings from the environment, `.env` and `overrides` (flat, lower-case variable
    names); raise SettingsError naming each bad variable."""
    bad = [k for k in overrides if k.lower() not in ENV_FIELDS]
    if bad:
        raise SettingsError("unknown setting(s): " + ", ".join(k.upper() for k in bad))
    try:
        env = _Env(**overrides)
        flat = {k: v for k, v in env.model_dump().items() if v is not _UNSET}
        return Settings(**flat)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"]
            if len(loc) >= 2 and (loc[0], loc[1]) in _FIELD_ENV:
                name = _FIELD_ENV[(loc[0], loc[1])].upper()
            elif loc and loc[0] in SECTIONS:
                name = loc[0]
            else:
                name = str(loc[0]).upper() if loc else "?"
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("bad setting(s):\n  " + "\n  ".join(lines)) from None
