"""The document the decision engine writes every tick (state block `edge`, topic `edge.<SYMBOL>`),
as typed definitions; the same contract as actors/features/docs.py (required keys are the ones
every document carries; more keys may be present; actors/obs/openapi.py derives its schema).
"""

from typing import Any, Literal, NotRequired, TypedDict

from actors.decide.settlement import SettleStatus
from actors.features.docs import EpochNs

Decision = Literal["BUY_UP", "BUY_DOWN", "NONE"]
Action = Literal["SLICE", "HOLD"]


class SettlementDoc(TypedDict):
    price: float | None
    status: SettleStatus
    winner: str | None


class FairDoc(TypedDict):
    fast: float | None
    smooth: float | None
    reason: NotRequired[str | None]
    settlement: NotRequired[SettlementDoc | None]   # once the window has ended


class DecisionDoc(TypedDict):
    decision: Decision
    reason: NotRequired[str]
    vetoes: NotRequired[list[Any]]
    sides: NotRequired[dict[str, Any]]


class AccumulateDoc(TypedDict):
    action: Action
    reason: NotRequired[str]


class EdgeDoc(TypedDict):
    ts_ns: EpochNs
    fair: FairDoc
    edge: DecisionDoc
    accumulate: AccumulateDoc
    symbol: NotRequired[str]
    window: NotRequired[str | None]
    spikes: NotRequired[dict[str, Any]]
