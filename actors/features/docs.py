"""The documents compute writes (state blocks `features`, `bars`, `quality`; topics
`features.<SYMBOL>`, `bar.*`, `state`), as typed definitions.

Invariants:
- these TypedDicts are the one statement of each document's shape: compute builds them, and
  actors/obs/openapi.py derives the REST API's schemas from them (actors/obs/jsonschema.py);
- a key without `NotRequired` is one every document carries and clients may rely on; the others
  may be absent (a value that cannot be computed is null with a `<field>_reason`); documents may
  carry more keys than declared here (they grow without breaking a client);
- `EpochNs` is epoch time in ns on the data clock (recording time under replay); the publisher's
  wall clock is `pub_ts_ns`, added on the bus only (ipc/bus.py).
"""

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from ipc import names

from actors.features.quality import Mode

EpochNs = Annotated[int, "epoch time, ns"]
# the bar timeframes, spelled by ipc.names (Literal of a tuple: its members)
BarTf = Literal[names.BAR_TFS]            # type: ignore[valid-type]


class TopOfBookDoc(TypedDict):
    mid: float | None
    spread_bps: float | None
    microprice: float | None
    imbalance: float | None
    bid: NotRequired[float]
    ask: NotRequired[float]
    bid_qty: NotRequired[float]
    ask_qty: NotRequired[float]
    update_id: NotRequired[int]
    reason: NotRequired[str]


class BarDoc(TypedDict):
    tf: BarTf
    venue: str
    start_ns: EpochNs
    end_ns: EpochNs
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float
    delta: float
    vwap: float | None
    trades: int
    closed: bool
    buy_volume: NotRequired[float]
    sell_volume: NotRequired[float]
    notional: NotRequired[float]
    first_trade_id: NotRequired[int | None]
    last_trade_id: NotRequired[int | None]
    partial: NotRequired[bool]


class BarSeriesDoc(TypedDict):
    current: BarDoc | None
    closed: list[BarDoc]


class BarsDoc(TypedDict):
    symbol: str
    ts_ns: EpochNs
    venues: Annotated[dict[str, dict[str, BarSeriesDoc]], "venue -> timeframe -> bars"]


class CvdDoc(TypedDict):
    cvd: float | None
    anchor_ns: NotRequired[int | None]
    trades: NotRequired[int]
    last_trade_id: NotRequired[int | None]


class VwapDoc(TypedDict):
    vwap: float | None
    sigma: NotRequired[float | None]
    dev_bps: NotRequired[float | None]
    dev_sigma: NotRequired[float | None]


class VenueFeaturesDoc(TypedDict):
    cvd: CvdDoc
    vwap: VwapDoc
    last_price: float | None
    book: TopOfBookDoc | None
    bars: dict[str, Any]
    volatility: NotRequired[dict[str, Any]]
    impulse: NotRequired[dict[str, Any]]
    rvol: NotRequired[dict[str, Any]]
    imbalance: NotRequired[dict[str, Any]]
    trade_age_ms: NotRequired[float | None]
    quote_age_ms: NotRequired[float | None]
    clock_offset_ms: NotRequired[float | None]
    last_trade_id: NotRequired[int]
    last_price_reason: NotRequired[str]
    book_reason: NotRequired[str]


class BiasDoc(TypedDict, total=False):
    score: float | None


class AnchorDoc(TypedDict):
    anchor_ns: int | None
    explicit: bool


class FeaturesQualityDoc(TypedDict):
    """A quality mode and its reasons (actors/features/quality.py): the global one here and in the
    `quality` block; each edge document carries one for its own inputs."""
    mode: Mode
    reasons: list[str]


class FeaturesDoc(TypedDict):
    symbol: str
    ts_ns: EpochNs
    tick: int
    venues: dict[str, VenueFeaturesDoc]
    anchor: AnchorDoc
    quality: FeaturesQualityDoc
    basis: NotRequired[dict[str, Any]]
    liquidations: NotRequired[dict[str, Any]]
    bias: NotRequired[BiasDoc]


class QualityDoc(TypedDict):
    mode: Mode
    reasons: list[str]
    tick_overruns: NotRequired[int]
    ts_ns: NotRequired[EpochNs]
    changed: NotRequired[bool]


class ActorHealthDoc(TypedDict):
    pid: int
    heartbeat_age_ms: float          # wall clock: liveness
    alive: bool


class StateEventDoc(QualityDoc):
    """The `state` topic: the quality document plus every actor's heartbeat, in short."""
    actors: dict[str, ActorHealthDoc]
