"""Settings: one frozen pydantic-settings model, loaded once by run.py (or the gunicorn factory).

Invariants:
- every variable of DESIGN.md "Configuration" is a field here, named as the environment variable
  (case-insensitive), read from the environment or `.env`;
- a bad value raises `SettingsError` whose message names the variable (`load_settings`);
- lists are comma-separated in the environment (`CONTEXT_TFS=1m,5m,1h`);
- no actor reads `os.environ`: they receive this object.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ipc.names import ACTOR_BY_NAME, KLINE_TFS, REQUIRED_ACTORS, tf_sec

CsvList = Annotated[tuple[str, ...], NoDecode]



class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


class Settings(BaseSettings):
    # an empty value (`API_TOKEN=` in a copied .env.example) means "unset": the default applies
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      frozen=True, case_sensitive=False, env_ignore_empty=True)

    # --- general -------------------------------------------------------------------------
    symbol: str = Field("BTCUSDT", pattern=r"^[A-Z0-9]{2,20}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_dir: str = "logs"
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    api_workers: int = Field(2, ge=1, le=64)
    api_token: str | None = None
    tick_ms: int = Field(100, ge=10, le=10_000)

    # --- Binance -------------------------------------------------------------------------
    futures_ws: str = "wss://fstream.binance.com"
    spot_ws: str = "wss://stream.binance.com:9443"
    futures_rest: str = "https://fapi.binance.com"
    spot_rest: str = "https://api.binance.com"
    depth_enabled: bool = True
    depth_speed: Literal["100ms", "500ms", "none"] = "100ms"
    topn: int = 10                                   # 5, 10 or 20
    # a stream silent for this long on an open connection gets the connection replaced
    feed_stale_sec: float = Field(10.0, gt=0)
    # proactive make-before-break rotation ahead of the venue's 24 h disconnect
    feed_rotate_sec: float = Field(23.5 * 3600, gt=0)
    feed_backoff_max_sec: float = Field(30.0, gt=0)

    # --- context (klines) and TAAPI ------------------------------------------------------
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
    taapi_url: str = "https://api.taapi.io"
    taapi_tfs: CsvList = ("5m", "15m", "1h")
    taapi_rate_per_sec: float = Field(1.0, gt=0)
    # TAAPI exchange: binance (spot) or binancefutures (USD-M: the klines the local fallback uses)
    taapi_exchange: str = Field("binance", pattern=r"^[a-z0-9]{2,32}$")

    # --- Polymarket / Chainlink ----------------------------------------------------------
    polymarket_window: Literal["5m", "15m", "1h"] = "15m"
    polymarket_window_sec: int | None = Field(None, ge=10)
    polymarket_gamma_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    polymarket_clob_ws: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    polymarket_rtds_url: str = "wss://ws-live-data.polymarket.com"
    polymarket_stale_threshold_sec: float = Field(10.0, gt=0)
    polymarket_max_spread_bps: float = Field(500.0, gt=0)
    polymarket_min_depth: float = Field(50.0, ge=0)
    poly_up_is_yes: bool = True
    polymarket_reconcile_sec: float = Field(30.0, gt=0)    # REST /book cross-check period

    # --- decisions -----------------------------------------------------------------------
    slice_usd: float = Field(10.0, gt=0)
    max_slices_per_window: int = Field(5, ge=0)
    max_usd_per_window: float = Field(50.0, ge=0)
    cooldown_sec: float = Field(30.0, ge=0)
    edge_buffer_bps: float = Field(100.0, ge=0)
    edge_min_time_left_sec: float = Field(30.0, ge=0)      # veto: too close to the window end
    polymarket_depth_levels: int = Field(5, ge=1, le=20)   # depth veto: USD of this many ask levels
    decision_log_dir: str = "data/decisions"
    fair_basis_halflife_sec: float = Field(300.0, gt=0)    # Binance-Chainlink log-basis EWMA
    fair_smooth_halflife_sec: float = Field(5.0, gt=0)     # smooth mode: Binance price EWMA
    fair_chainlink_max_age_sec: float = Field(60.0, gt=0)  # older Chainlink value: no fair value
    fair_drift_k: float = Field(0.0)                       # drift = k · bias · sigma per second
    spike_window_sec: float = Field(60.0, gt=0)            # spike/dip: rolling window of mids
    spike_z_threshold: float = Field(3.0, gt=0)
    spike_min_samples: int = Field(20, ge=2)
    spike_min_std: float = Field(0.005, ge=0)              # floor of the mid std (half a tick)

    # --- recording -----------------------------------------------------------------------
    record_enabled: bool = False
    record_dir: str = "data/records"
    record_buffer_size: int = Field(1000, ge=1)       # frames buffered per file before a flush
    record_flush_sec: float = Field(1.0, gt=0)        # ...or this long, whichever comes first
    record_rotate_sec: int = Field(3600, ge=1)        # one file per venue, stream and this period
    record_ring_bytes: int = Field(64 << 20, ge=1 << 16)   # per feed: raw frames awaiting the recorder

    # --- replay (python run.py --replay DIR): the data clock maps wall time to recording time --
    replay_dir: str | None = None
    replay_speed: float = Field(1.0, gt=0)
    replay_origin_ns: int = Field(0, ge=0)            # recording time at replay_wall0_ns (0: live)
    replay_wall0_ns: int = Field(0, ge=0)
    # the data clock runs this far ahead of the wall clock (negative: behind); fault drills only
    clock_offset_ms: float = 0.0

    # --- IPC -----------------------------------------------------------------------------
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

    # --- features ------------------------------------------------------------------------
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

    # --- the built-in exchange (sim) -----------------------------------------------------
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(9100, ge=1024, le=65000)          # Binance USD-M futures (WS + REST)
    sim_spot_port: int = Field(9101, ge=1024, le=65000)     # Binance spot (WS + REST)
    sim_seed: int = 42
    sim_trade_rate: float = Field(40.0, gt=0)       # mean aggTrade frames per second
    sim_start_price: float = Field(65_000.0, gt=0)
    sim_conn_lifetime_sec: float = Field(24 * 3600.0, gt=0)
    sim_spot_trade_ratio: float = Field(0.5, gt=0, le=10)   # spot taker rate / futures taker rate
    sim_rest_ban_sec: float = Field(120.0, gt=0)    # REST IP ban (418) after ignoring a 429
    sim_liquidation_rate: float = Field(0.03, gt=0, le=100)   # liquidations/s on a calm tape
    # Polymarket (Gamma, CLOB REST + market WS) and RTDS, one port (actors/sim/polymarket/port.py)
    sim_poly_port: int = Field(9102, ge=1024, le=65000)
    sim_poly_update_rate: float = Field(6.0, gt=0, le=1000)   # book changes/s per live window
    sim_poly_trade_rate: float = Field(0.3, gt=0, le=100)     # trades/s per live window
    # Gamma publishes priceToBeat this long after the window start, and resolves this long after its end
    sim_poly_meta_delay_sec: float = Field(10.0, ge=0)
    sim_poly_twap: bool = True                      # markets settle on the 60 s Chainlink TWAP
    sim_poly_market_resolved: bool = False          # send market_resolved (the venue was seen not to)
    sim_poly_idle_sec: float = Field(60.0, gt=0)    # CLOB WS: close a client silent this long
    sim_rtds_idle_sec: float = Field(10.0, gt=0)    # RTDS: close a client silent this long
    # TAAPI bulk endpoint (actors/sim/taapi_bulk.py): the plan rate it enforces (0: TAAPI_RATE_PER_SEC)
    # and how long a key stays blocked after a 429
    sim_taapi_rate_per_sec: float = Field(0.0, ge=0)
    sim_taapi_block_sec: float = Field(10.0, gt=0)

    @field_validator("context_tfs", "taapi_tfs", "health_required", mode="before")
    @classmethod
    def _split_csv(cls, v):
        if isinstance(v, str):
            v = tuple(x.strip() for x in v.split(",") if x.strip())
        return tuple(v)

    @field_validator("context_tfs", "taapi_tfs")
    @classmethod
    def _known_tfs(cls, v):
        bad = [tf for tf in v if tf not in KLINE_TFS]
        if bad:
            raise ValueError(f"unknown timeframe(s) {bad}; known: {list(KLINE_TFS)}")
        return v

    @field_validator("health_required")
    @classmethod
    def _known_actors(cls, v):
        bad = [a for a in v if a not in ACTOR_BY_NAME]
        if bad:
            raise ValueError(f"unknown actor(s) {bad}; known: {list(ACTOR_BY_NAME)}")
        return v

    @field_validator("topn")
    @classmethod
    def _topn(cls, v: int):
        if v not in (5, 10, 20):
            raise ValueError("must be 5, 10 or 20 (the venue's partial-depth sizes)")
        return v

    @field_validator("symbol", mode="before")
    @classmethod
    def _upper(cls, v):
        return v.upper() if isinstance(v, str) else v

    @field_validator("futures_ws", "spot_ws", "polymarket_clob_ws", "polymarket_rtds_url")
    @classmethod
    def _ws_url(cls, v: str):
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return v.rstrip("/")

    @field_validator("futures_rest", "spot_rest", "polymarket_gamma_url", "polymarket_clob_url",
                     "taapi_url")
    @classmethod
    def _http_url(cls, v: str):
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("zmq_pub_url", "zmq_xsub_url", "zmq_control_url")
    @classmethod
    def _zmq_url(cls, v: str):
        if not v.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError("must be a ZeroMQ endpoint (tcp://host:port or ipc://path)")
        return v

    @model_validator(mode="after")
    def _window(self):
        if self.polymarket_window_sec is None:
            object.__setattr__(self, "polymarket_window_sec", tf_sec(self.polymarket_window))
        return self

    # --- derived -------------------------------------------------------------------------
    @property
    def symbol_lower(self) -> str:
        return self.symbol.lower()

    @property
    def depth_on(self) -> bool:
        return self.depth_enabled and self.depth_speed != "none"


def load_settings(**overrides) -> Settings:
    """Build the settings; raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("bad setting(s):\n  " + "\n  ".join(lines)) from None
