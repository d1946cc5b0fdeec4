"""The documents the edge engines write every tick (topic `edge.<SYMBOL>.<series>`: one series'
`EdgeDoc`; state block `edge`: `EdgeBlockDoc`, every series), as typed definitions; the same
contract as actors/features/docs.py (required keys are the ones every document carries; more keys
may be present; actors/obs/openapi.py derives its schema).
"""

from typing import Any, Literal, NotRequired, TypedDict

from actors.decide.settlement import PriceSource, SettleStatus
from actors.features.docs import EpochNs, FeaturesQualityDoc

Decision = Literal["BUY_UP", "BUY_DOWN", "NONE"]
Action = Literal["SLICE", "HOLD"]


class SettlementDoc(TypedDict):
    price: float | None
    status: SettleStatus
    winner: str | None


class PriceToBeatDoc(TypedDict):
    """The venue's number ("venue": Gamma's priceToBeat) or compute's estimate by the market's rule
    ("estimate"); None with status "pending" until one is known."""
    price: float | None
    source: PriceSource | None
    method: str | None                  # the rule's method: point, twap, candle, candle_close
    status: SettleStatus | None


class RuleDoc(TypedDict):
    source: str                         # chainlink | binance
    stream: str
    method: str
    twap_lookback_sec: int
    candle_tf: str | None
    assumed: bool


class BinanceInputDoc(TypedDict):
    venue: str
    price: float | None                 # the primary venue's microprice
    age_ms: float | None                # receive-time age of its quote
    max_age_ms: float                   # EDGE_BINANCE_MAX_AGE_MS


class ChainlinkInputDoc(TypedDict):
    stream: NotRequired[str]            # the Chainlink stream compute reads (names.chainlink_stream)
    price: float | None
    obs_ns: EpochNs | None              # the observation's own time
    age_ms: float | None                # receive-time age
    obs_age_ms: float | None            # observation-time age
    max_age_ms: float                   # FAIR_CHAINLINK_MAX_AGE_SEC · 1000


class BookInputDoc(TypedDict):
    age_ms: float | None                # now − the record's receive time
    update_id: int | None
    best_bid: float | None
    best_ask: float | None
    reason: NotRequired[str]            # why there is no usable book


class KlineInputDoc(TypedDict):
    open_time_ns: EpochNs
    tf_sec: int
    open: float
    close: float
    closed: bool
    age_ms: float


class CandleInputDoc(TypedDict):
    """A Binance-candle window's settlement source: the candle source venue's price and candle."""
    venue: str
    stream: NotRequired[str]            # the symbol whose candles compute reads (SYMBOL)
    price: float | None
    age_ms: float | None
    max_age_ms: float
    kline: KlineInputDoc | None


class InputsDoc(TypedDict):
    binance: BinanceInputDoc
    chainlink: ChainlinkInputDoc
    books: dict[str, BookInputDoc]      # UP, DOWN
    candle: CandleInputDoc | None


class FairDoc(TypedDict):
    fast: float | None
    smooth: float | None
    reason: NotRequired[str | None]
    settlement: NotRequired[SettlementDoc | None]   # once the window has ended


class VetoDoc(TypedDict):
    code: str
    side: str | None
    reason: str


class SideDoc(TypedDict):
    fair: float | None
    avg_price: float | None
    fee_per_share: float | None
    cost_per_share: float | None        # all-in: avg_price + fee_per_share
    edge: float | None                  # fair − cost_per_share, probability
    edge_bps: float | None              # edge · 1e4, against EDGE_BUFFER_BPS
    return_on_cost: float | None        # edge / cost_per_share
    ev_usd: float | None                # edge · shares
    shares: float
    spent_usd: float
    fee_usd: float
    filled: bool
    levels_used: int
    best_bid: float | None
    best_ask: float | None
    spread_bps: float | None
    depth_usd: float
    age_ms: float | None
    vetoes: list[VetoDoc]


class ArbitrageDoc(TypedDict):
    ask_sum: float | None
    cost_sum: float | None
    flagged: bool


class DecisionDoc(TypedDict):
    decision: Decision
    reason: NotRequired[str]
    vetoes: NotRequired[list[VetoDoc]]
    sides: NotRequired[dict[str, SideDoc]]
    arbitrage: NotRequired[ArbitrageDoc]


class AccumulateDoc(TypedDict):
    action: Action
    reason: NotRequired[str]


class PreviousWindowDoc(TypedDict):
    """The last window that ended: its settlement by the rule, and the venue's resolution."""
    window: str
    window_start_ns: EpochNs
    window_end_ns: EpochNs
    rule: RuleDoc
    price_to_beat: PriceToBeatDoc
    settlement: SettlementDoc
    resolution: dict[str, Any] | None
    final_price: float | None


class EdgeDoc(TypedDict):
    ts_ns: EpochNs
    fair: FairDoc
    edge: DecisionDoc
    accumulate: AccumulateDoc
    symbol: NotRequired[str]
    series: NotRequired[str]
    window: NotRequired[str | None]
    window_start_ns: NotRequired[EpochNs | None]
    window_end_ns: NotRequired[EpochNs | None]
    price_to_beat: NotRequired[PriceToBeatDoc]
    rule: NotRequired[RuleDoc | None]
    inputs: NotRequired[InputsDoc]
    spikes: NotRequired[dict[str, Any]]
    quality: NotRequired[FeaturesQualityDoc]        # this decision's own inputs
    previous: NotRequired[PreviousWindowDoc | None]


class EdgeBlockDoc(TypedDict):
    """The `edge` state block (/latest/edge): every followed series' EdgeDoc."""
    ts_ns: EpochNs
    symbol: str
    disabled: str | None                # why the Polymarket side is off; None: on
    series: dict[str, EdgeDoc]
