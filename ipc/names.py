"""The naming authority: every actor, timeframe, shared-memory segment and ZeroMQ topic, declared once.

Writers and readers import the same declaration; no ring, block or topic string is built anywhere
else. What DESIGN.md fixes (segment `<prefix>.<symbol>.<venue>.<stream>`, the topics of "ZeroMQ")
is spelled here and only here.

Invariants:
- `ACTORS` is the one list of processes: run.py dispatches on it, supervisord.conf has one program
  per entry (a test checks), HEALTH_REQUIRED defaults to its `required` ones, and the heartbeat
  registry gives each name in `HEARTBEAT_NAMES` (the actors, then the tools) a fixed slot in that order;
- `TIMEFRAME_SEC` is the one timeframe table: compute's trade bars (`BAR_TFS`), Binance kline
  intervals (`KLINE_TFS`) and Polymarket up/down series (`POLY_SERIES`) are subsets of it;
- a `Ring` names what one writer writes: its venue, stream and record kind (a key of
  `ipc.schema.DTYPES`); its segment and tick topic follow from the instrument symbol;
- venue ids are data (`FUTURES`, `SPOT`, ...): shared code takes them from here, never from a literal.
"""
from __future__ import annotations

from dataclasses import dataclass

# --- actors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    name: str          # `python run.py <name>`, the supervisord program, the registry slot
    module: str        # the process module; its `main(settings)` runs the actor
    required: bool     # in HEALTH_REQUIRED's default: /health is 503 while it is dead or stale
    supervised: bool = True   # a [program:] of supervisord.conf (the example strategy is run by hand)


ACTORS: tuple[Actor, ...] = (
    Actor("bus", "actors.bus_proxy", True),
    Actor("feed_futures", "actors.feed_futures", True),
    Actor("feed_spot", "actors.feed_spot", True),
    Actor("feed_poly", "actors.feed_poly", True),
    Actor("feed_chainlink", "actors.feed_chainlink", True),
    Actor("context", "actors.context", True),
    Actor("compute", "actors.compute", True),
    Actor("api", "actors.api", False),
    Actor("recorder", "actors.recorder", False),
    Actor("sim", "actors.sim_exchange", False),
    Actor("strategy", "actors.strategy", False, supervised=False),
)
ACTOR_BY_NAME: dict[str, Actor] = {a.name: a for a in ACTORS}
REQUIRED_ACTORS: tuple[str, ...] = tuple(a.name for a in ACTORS if a.required)
# processes that heartbeat without being supervised actors (the TUI, the bench, tests)
TOOL_HEARTBEATS = ("tui", "bench", "test")
HEARTBEAT_NAMES: tuple[str, ...] = tuple(a.name for a in ACTORS) + TOOL_HEARTBEATS

# --- timeframes --------------------------------------------------------------------------------

TIMEFRAME_SEC: dict[str, int] = {
    "1s": 1, "5s": 5, "15s": 15,
    "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800,
    "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200,
    "1d": 86400, "3d": 259200, "1w": 604800,
}
BAR_TFS: tuple[str, ...] = ("5s", "15s", "1m")              # compute's bars on trade time
KLINE_TFS: tuple[str, ...] = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
# Polymarket up/down series, by length (each one's slugs, alignment and default settlement rule:
# actors/venues/polymarket/series.py)
POLY_SERIES: tuple[str, ...] = ("5m", "15m", "1h", "4h", "1d")
# the series whose markets settle on Binance spot candles unless Gamma says otherwise (the hourly
# on the candle of the window's length, the daily on 1m candle closes): their (shortened) window
# length must be one the candles have; series.py checks its SERIES table agrees
CANDLE_SETTLED_SERIES: tuple[str, ...] = ("1h", "1d")


def tf_sec(tf: str) -> int:
    """Seconds of a timeframe name; ValueError naming the known ones otherwise."""
    try:
        return TIMEFRAME_SEC[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAME_SEC)}") from None


# --- indicators ------------------------------------------------------------------------------

# The indicators the context actor keeps (TAAPI bulk requests, or computed locally by
# actors/features/indicators.py): TAAPI's parameter names, sent as they are, and the output fields.
INDICATOR_PARAMS: dict[str, dict[str, float]] = {
    "rsi": {"period": 14},
    "macd": {"optInFastPeriod": 12, "optInSlowPeriod": 26, "optInSignalPeriod": 9},
    "ema": {"period": 20},
    "atr": {"period": 14},
    "bbands": {"period": 20, "stddev": 2},
}
INDICATOR_FIELDS: dict[str, tuple[str, ...]] = {
    "rsi": ("value",),
    "macd": ("valueMACD", "valueMACDSignal", "valueMACDHist"),
    "ema": ("value",),
    "atr": ("value",),
    "bbands": ("valueUpperBand", "valueMiddleBand", "valueLowerBand"),
}
INDICATORS: tuple[str, ...] = tuple(INDICATOR_PARAMS)

# --- venues and instruments --------------------------------------------------------------------

FUTURES, SPOT, POLY, CHAINLINK, CONTEXT = "futures", "spot", "poly", "chainlink", "context"
HISTORY = "history"          # compute's history rings for the dashboard (not a venue: no feed)
BINANCE_VENUES: tuple[str, ...] = (FUTURES, SPOT)       # venues that carry trades and quotes
POLY_TOKENS: tuple[str, ...] = ("UP", "DOWN")            # token index 0, 1 in POLY_* records

# The Binance symbol -> the up/down asset: the Gamma slugs (`btc-updown-15m-<start>`) and the
# Chainlink stream (`btc/usd`) are named by it. A symbol not listed has no up/down market.
ASSETS: dict[str, str] = {"BTCUSDT": "btc", "ETHUSDT": "eth", "SOLUSDT": "sol", "XRPUSDT": "xrp"}


def asset_of(symbol: str) -> str | None:
    """The up/down asset of a Binance symbol (BTCUSDT -> btc), or None: no up/down market."""
    return ASSETS.get(symbol.upper())


def _asset_or_base(symbol: str) -> str:
    # a symbol without an up/down market still names its (never written) Polymarket segments
    return asset_of(symbol) or symbol.lower()


def poly_symbol(symbol: str) -> str:
    """The instrument of the asset's Polymarket up/down rings: BTCUSDT -> BTCUPDOWN."""
    return f"{_asset_or_base(symbol).upper()}UPDOWN"


def settlement_symbol(symbol: str) -> str:
    """The instrument of the asset's Chainlink settlement-price ring: BTCUSDT -> BTCUSD."""
    return f"{_asset_or_base(symbol).upper()}USD"


def chainlink_stream(symbol: str) -> str:
    """The asset's Chainlink stream on RTDS (`crypto_prices_chainlink` symbol): BTCUSDT -> btc/usd."""
    return f"{_asset_or_base(symbol)}/usd"


# how a ring's instrument follows from the configured SYMBOL
_INSTRUMENT = {"symbol": lambda s: s, "updown": poly_symbol, "settlement": settlement_symbol}

# --- rings -------------------------------------------------------------------------------------


def segment(prefix: str, symbol: str, venue: str, stream: str) -> str:
    """`<prefix>.<symbol>.<venue>.<stream>`, the segment name of DESIGN.md."""
    return f"{prefix}.{symbol}.{venue}.{stream}"


@dataclass(frozen=True)
class Ring:
    venue: str             # segment and topic venue id
    stream: str            # segment suffix (and topic kind, unless `topic_kind` is given)
    kind: str              # record kind: a key of ipc.schema.RING_DTYPES
    instrument: str = "symbol"   # "symbol" (SYMBOL itself), "updown" or "settlement": see _INSTRUMENT
    health_label: str | None = None   # its stream in feed health and metrics; None: the kind
    series: str | None = None         # a Polymarket up/down series (POLY_SERIES) the ring belongs to
    topic_kind: str | None = None     # the topic's kind when it differs from the segment stream

    def label(self) -> str:
        """The stream name of this ring in a feed's health document and in metric labels."""
        return self.health_label or self.kind

    def key(self) -> str:
        """`<venue>.<stream>`: this ring in a reader's per-ring counters (compute's overruns by ring)."""
        return f"{self.venue}.{self.stream}"

    def instrument_of(self, symbol: str) -> str:
        """The instrument this ring is named by, for the configured SYMBOL."""
        return _INSTRUMENT[self.instrument](symbol)

    def name(self, prefix: str, symbol: str) -> str:
        """The segment for the configured SYMBOL `symbol`."""
        return segment(prefix, self.instrument_of(symbol), self.venue, self.stream)

    def topic(self, symbol: str) -> str:
        """Its tick topic for the configured SYMBOL `symbol`."""
        return tick_topic(self.venue, self.topic_kind or self.stream, self.instrument_of(symbol))

    def binary_topic(self, symbol: str) -> str:
        """Its binary batch topic (ipc/binary.py): one per ring, `bin.` + its tick topic; a
        Polymarket series ring's carries both tokens: `bin.tick.poly.<kind>.<series>`."""
        if self.series is not None:
            return binary_topic(f"{POLY_TICK_PREFIX}{self.topic_kind or self.stream}.{self.series}")
        return binary_topic(self.topic(symbol))

    def token_topic(self, token: int) -> str:
        """A Polymarket series ring publishes per outcome token: `tick.poly.<kind>.<series>.UP|DOWN`."""
        if self.series is None:
            raise ValueError(f"{self.key()} is not a Polymarket series ring")
        return poly_topic(self.topic_kind or self.stream, self.series, POLY_TOKENS[token])


FUTURES_RINGS: dict[str, Ring] = {k: Ring(FUTURES, k, k) for k in
                                  ("trade", "quote", "mark", "liquidation", "depth", "kline")}
# spot klines: the candles hourly up/down markets settle on (subscribed only for those)
SPOT_RINGS: dict[str, Ring] = {k: Ring(SPOT, k, k) for k in ("trade", "quote", "depth", "kline")}
CHAINLINK_RING = Ring(CHAINLINK, "price", "chainlink", "settlement")


def _series_ring(kind: str, record_kind: str, series: str) -> Ring:
    if series not in POLY_SERIES:
        raise ValueError(f"unknown up/down series {series!r}; known: {', '.join(POLY_SERIES)}")
    return Ring(POLY, f"{kind}_{series}", record_kind, "updown", health_label=f"{kind}_{series}",
                series=series, topic_kind=kind)


def poly_book_ring(series: str) -> Ring:
    """One series' UP and DOWN books after every update (feed_poly writes, compute reads)."""
    return _series_ring("book", "poly_book", series)


def poly_trade_ring(series: str) -> Ring:
    """One series' last_trade_price records."""
    return _series_ring("trade", "poly_trade", series)


VENUE_RINGS: dict[str, dict[str, Ring]] = {
    FUTURES: FUTURES_RINGS, SPOT: SPOT_RINGS,
    POLY: {f"{r.kind}_{tf}": r for tf in POLY_SERIES for r in (poly_book_ring(tf), poly_trade_ring(tf))},
    CHAINLINK: {"chainlink": CHAINLINK_RING},
}
_VENUE_INSTRUMENT = {FUTURES: "symbol", SPOT: "symbol", POLY: "updown", CHAINLINK: "settlement",
                     CONTEXT: "symbol", HISTORY: "symbol"}


def venue_symbol(venue: str, symbol: str) -> str:
    """The instrument a venue's rings (and raw-frame ring) are named by, for the configured SYMBOL."""
    return _INSTRUMENT[_VENUE_INSTRUMENT.get(venue, "symbol")](symbol)


def venue_ring(venue: str, kind: str) -> Ring:
    """The ring a venue's feed writes records of `kind` to."""
    try:
        return VENUE_RINGS[venue][kind]
    except KeyError:
        raise ValueError(f"no ring declared for venue {venue!r} kind {kind!r}") from None


def context_kline_ring(tf: str) -> Ring:
    """The context actor's closed klines of one timeframe (bootstrapped by REST, kept by stream)."""
    tf_sec(tf)
    return Ring(CONTEXT, f"kline_{tf}", "kline")


# compute's history (actors/decide/history.py; served by actors/web/history.py): one ring of
# window samples per followed series, one of market samples (1 s each: 16384 = 4.5 h)
WINDOW_HISTORY_CAPACITY = 8192
MARKET_HISTORY_CAPACITY = 16384
MARKET_HISTORY_RING = Ring(HISTORY, "market", "market_sample")


def window_history_ring(series: str) -> Ring:
    """One series' window samples (compute writes, the API reads)."""
    if series not in POLY_SERIES:
        raise ValueError(f"unknown up/down series {series!r}; known: {', '.join(POLY_SERIES)}")
    return Ring(HISTORY, f"window_{series}", "window_sample", series=series)


FRAMES_STREAM = "frames"


def frame_ring_name(prefix: str, symbol: str, venue: str) -> str:
    """A feed's raw-frame ring for the recorder (ipc.framering)."""
    return segment(prefix, symbol, venue, FRAMES_STREAM)


def frame_ring_glob(prefix: str) -> str:
    """A glob over the shm directory matching every feed's raw-frame ring (any symbol, any venue)."""
    return segment(prefix, "*", "*", FRAMES_STREAM)


def frame_ring_venue(name: str) -> str:
    """The venue of a raw-frame ring, from its segment name (`<prefix>.<symbol>.<venue>.frames`)."""
    parts = name.rsplit(".", 3)
    if len(parts) != 4 or parts[3] != FRAMES_STREAM:
        raise ValueError(f"not a frame ring name: {name!r}")
    return parts[2]


# --- other shared-memory segments ----------------------------------------------------------------


def block_segment(prefix: str, block: str) -> str:
    """The segment of one state block (ipc.state.StateBlock): `<prefix>.state.<block>`."""
    return f"{prefix}.state.{block}"


def registry_segment(prefix: str) -> str:
    """The heartbeat registry's segment (ipc.state.Registry)."""
    return f"{prefix}.registry"


def prometheus_dir_name(prefix: str) -> str:
    """The directory (under the shm dir) of the API workers' Prometheus multiprocess files."""
    return f"{prefix}.prometheus"


# --- state blocks (ipc.state.StateBlock names) -------------------------------------------------

FEATURES_BLOCK, BARS_BLOCK, QUALITY_BLOCK, EDGE_BLOCK = "features", "bars", "quality", "edge"
ANCHOR_BLOCK, ACCUMULATE_BLOCK = "anchor", "accumulate"
POLYMARKET_BLOCK, CHAINLINK_BLOCK = "polymarket", "chainlink"
CONTEXT_BLOCK, INDICATORS_BLOCK = "context", "indicators"
COMPUTE_BLOCKS = (FEATURES_BLOCK, BARS_BLOCK, QUALITY_BLOCK, EDGE_BLOCK)

# --- topics (DESIGN.md "ZeroMQ") ---------------------------------------------------------------


def tick_topic(venue: str, kind: str, key: str) -> str:
    return f"tick.{venue}.{kind}.{key}"


# a ring's records in their own bytes, batched (ipc/binary.py), beside its JSON tick topic: the tick
# topic under this prefix, so a `tick.` subscriber never receives them and `bin.tick.` takes them all
BINARY_PREFIX = "bin."


def binary_topic(tick: str) -> str:
    """The binary batch topic of a ring whose JSON tick topic is `tick`."""
    return BINARY_PREFIX + tick


def bar_topic(tf: str, venue: str, symbol: str) -> str:
    return f"bar.{tf}.{venue}.{symbol}"


def parse_bar_topic(topic: str) -> tuple[str, str, str] | None:
    """(tf, venue, symbol) of a `bar_topic`; None for any other topic."""
    parts = topic.split(".", 3)
    if len(parts) != 4 or parts[0] + "." != BAR_PREFIX:
        return None
    return parts[1], parts[2], parts[3]


def features_topic(symbol: str) -> str:
    return f"features.{symbol}"


def context_topic(symbol: str) -> str:
    return f"context.{symbol}"


STATE_TOPIC = "state"
BAR_PREFIX, FEATURES_PREFIX, EDGE_PREFIX = "bar.", "features.", "edge."
POLY_TICK_PREFIX = "tick.poly."
POLY_MARKET_PREFIX = "tick.poly.market."
CHAINLINK_TOPIC_PREFIX = "tick.chainlink.price."


def edge_topic(symbol: str, series: str) -> str:
    """One series' edge document, every tick: `edge.<SYMBOL>.<series>` (`edge.<SYMBOL>` prefixes all)."""
    return f"edge.{symbol}.{series}"


def parse_edge_topic(topic: str) -> tuple[str, str] | None:
    """(symbol, series) of an `edge_topic`; None for any other topic."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] + "." != EDGE_PREFIX or parts[2] not in POLY_SERIES:
        return None
    return parts[1], parts[2]


def poly_topic(kind: str, series: str, token: str) -> str:
    """`tick.poly.<book|trade>.<series>.<UP|DOWN>`."""
    return f"{POLY_TICK_PREFIX}{kind}.{series}.{token}"


def parse_poly_topic(topic: str) -> tuple[str, str, str] | None:
    """(kind, series, token) of a `poly_topic`; None for any other topic (the market topic too)."""
    if not topic.startswith(POLY_TICK_PREFIX):
        return None
    parts = topic[len(POLY_TICK_PREFIX):].split(".")
    if len(parts) != 3 or parts[0] not in ("book", "trade") or parts[1] not in POLY_SERIES \
            or parts[2] not in POLY_TOKENS:
        return None
    return parts[0], parts[1], parts[2]


def poly_market_topic(series: str) -> str:
    """A series' window change (and resolution): `tick.poly.market.<series>`."""
    return f"{POLY_MARKET_PREFIX}{series}"


def accumulate_block(series: str) -> str:
    """The accumulator state block of one series (caps and cooldown survive a compute restart)."""
    return f"{ACCUMULATE_BLOCK}_{series}"
