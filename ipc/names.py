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
POLY_SERIES: tuple[str, ...] = ("5m", "15m", "1h")           # Polymarket up/down series, by length


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
BINANCE_VENUES: tuple[str, ...] = (FUTURES, SPOT)       # venues that carry trades and quotes
UPDOWN_SYMBOL = "BTCUPDOWN"      # the instrument of the Polymarket up/down rings
SETTLEMENT_SYMBOL = "BTCUSD"     # the instrument of the Chainlink settlement-price ring
POLY_TOKENS: tuple[str, ...] = ("UP", "DOWN")            # token index 0, 1 in POLY_* records

# --- rings -------------------------------------------------------------------------------------


def segment(prefix: str, symbol: str, venue: str, stream: str) -> str:
    """`<prefix>.<symbol>.<venue>.<stream>`, the segment name of DESIGN.md."""
    return f"{prefix}.{symbol}.{venue}.{stream}"


@dataclass(frozen=True)
class Ring:
    venue: str             # segment and topic venue id
    stream: str            # segment suffix and topic kind
    kind: str              # record kind: a key of ipc.schema.DTYPES
    symbol: str | None = None   # a fixed instrument; None: the configured SYMBOL
    health_label: str | None = None   # its stream in feed health and metrics; None: the kind

    def label(self) -> str:
        """The stream name of this ring in a feed's health document and in metric labels."""
        return self.health_label or self.kind

    def key(self) -> str:
        """`<venue>.<stream>`: this ring in a reader's per-ring counters (compute's overruns by ring)."""
        return f"{self.venue}.{self.stream}"

    def name(self, prefix: str, symbol: str) -> str:
        return segment(prefix, self.symbol or symbol, self.venue, self.stream)

    def topic(self, symbol: str) -> str:
        """Its tick topic for the configured instrument `symbol` (a fixed one wins)."""
        return tick_topic(self.venue, self.stream, self.symbol or symbol)

    def token_topic(self, token: int) -> str:
        """Polymarket rings publish per outcome token: `tick.poly.<stream>.UP|DOWN`."""
        return tick_topic(self.venue, self.stream, POLY_TOKENS[token])


FUTURES_RINGS: dict[str, Ring] = {k: Ring(FUTURES, k, k) for k in
                                  ("trade", "quote", "mark", "liquidation", "depth", "kline")}
SPOT_RINGS: dict[str, Ring] = {k: Ring(SPOT, k, k) for k in ("trade", "quote", "depth")}
POLY_BOOK_RING = Ring(POLY, "book", "poly_book", UPDOWN_SYMBOL, health_label="book")
POLY_TRADE_RING = Ring(POLY, "trade", "poly_trade", UPDOWN_SYMBOL, health_label="trade")
CHAINLINK_RING = Ring(CHAINLINK, "price", "chainlink", SETTLEMENT_SYMBOL)
VENUE_RINGS: dict[str, dict[str, Ring]] = {
    FUTURES: FUTURES_RINGS, SPOT: SPOT_RINGS,
    POLY: {"poly_book": POLY_BOOK_RING, "poly_trade": POLY_TRADE_RING},
    CHAINLINK: {"chainlink": CHAINLINK_RING},
}


def venue_symbol(venue: str, symbol: str) -> str:
    """The instrument a venue's rings (and raw-frame ring) are named by: fixed, or the configured one."""
    fixed = {r.symbol for r in VENUE_RINGS.get(venue, {}).values()} - {None}
    return fixed.pop() if fixed else symbol


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


def edge_topic(symbol: str) -> str:
    return f"edge.{symbol}"


def context_topic(symbol: str) -> str:
    return f"context.{symbol}"


STATE_TOPIC = "state"
POLY_MARKET_TOPIC = "tick.poly.market"
BAR_PREFIX, FEATURES_PREFIX, EDGE_PREFIX = "bar.", "features.", "edge."
POLY_TICK_PREFIX = "tick.poly."
POLY_BOOK_TOPIC_PREFIX = "tick.poly.book."


def poly_book_token(topic: str) -> str:
    """The outcome token (a POLY_TOKENS entry) of a `tick.poly.book.<token>` topic."""
    if not topic.startswith(POLY_BOOK_TOPIC_PREFIX):
        raise ValueError(f"not a Polymarket book topic: {topic!r}")
    return topic[len(POLY_BOOK_TOPIC_PREFIX):]
CHAINLINK_TOPIC_PREFIX = "tick.chainlink.price."
