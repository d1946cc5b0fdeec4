"""One series' current up/down window as the decision engine sees it: a frozen view parsed from
feed_poly's market document (`series.<s>.window` of the `polymarket` state block). Pure.

Invariants:
- `Window.from_doc` is the only place that reads the market document's window keys; fair value,
  edge and the accumulator take a `Window` (or anything with the same attributes: tests pass
  gamma.WindowInfo), never the raw dict;
- `start_ns` / `end_ns` are the document's own epoch-ns boundaries (feed_poly derives them from the
  Gamma metadata), `start_s` / `end_s` the same in whole seconds;
- `rule` (actors/decide/settlement.Rule) is how the window settles: the document's own `rule`,
  else (an older document) `settlement.rule_for` from its resolution source and TWAP flags;
  `twap_enabled` / `twap_lookback_sec` follow the rule (TWAP only for a Chainlink TWAP rule);
- `price_to_beat` is the venue's number only when `price_to_beat_source` is "venue" (Gamma's
  eventMetadata.priceToBeat); anything else is not the venue's and the engine estimates it;
- `fee` is the market's schedule: fee = C·rate·(p·(1−p))^exponent per fill, `taker_only` as the
  venue says it (we take liquidity, so we pay it either way: actors/decide/edge.py);
- `min_size` is the market's orderMinSize in shares (0: none known).
"""
from __future__ import annotations

from dataclasses import dataclass

from actors.decide import settlement

VENUE = settlement.VENUE    # price_to_beat_source of the venue's own number


@dataclass(frozen=True)
class Fee:
    rate: float          # fee of a fill of C shares at p = C·rate·(p·(1−p))^exponent
    exponent: float
    taker_only: bool = True


@dataclass(frozen=True, kw_only=True)
class Window:
    slug: str
    start_s: int
    end_s: int
    start_ns: int
    end_ns: int
    active: bool
    closed: bool
    accepting_orders: bool
    twap_enabled: bool
    twap_lookback_sec: int
    fee: Fee
    series: str | None = None
    asset: str | None = None
    rule: settlement.Rule | None = None
    min_size: float = 0.0
    tick_size: float | None = None
    price_to_beat: float | None = None            # the venue's number (source "venue"), else None
    final_price: float | None = None
    resolution: dict | None = None                # {"winner", "source", "ts_ns"} once resolved
    up_token: str | None = None
    down_token: str | None = None

    @property
    def length_sec(self) -> int:
        return self.end_s - self.start_s

    @classmethod
    def from_doc(cls, doc: dict | None, series: str | None = None) -> "Window | None":
        """The view of a market document's window; None when there is no current window.
        `series` names the series when the document does not (an older feed)."""
        if not doc:
            return None
        series = doc.get("series") or series
        if doc.get("rule"):
            rule = settlement.Rule.from_doc(doc["rule"])
        else:
            rule = settlement.rule_for(series, doc.get("asset") or "", doc["end_s"] - doc["start_s"],
                                       doc.get("resolution_source") or "",
                                       bool(doc.get("twap_enabled")), int(doc.get("twap_lookback_sec") or 0))
        twap = rule.method == "twap" and rule.twap_lookback_sec > 0
        ptb = doc.get("price_to_beat") if doc.get("price_to_beat_source") == VENUE else None
        return cls(slug=doc["slug"], start_s=doc["start_s"], end_s=doc["end_s"],
                   start_ns=doc["window_start_ns"], end_ns=doc["window_end_ns"],
                   active=doc["active"], closed=doc["closed"],
                   accepting_orders=doc["accepting_orders"], twap_enabled=twap,
                   twap_lookback_sec=rule.twap_lookback_sec if twap else 0,
                   fee=Fee(rate=doc["fee_rate"], exponent=doc["fee_exponent"],
                           taker_only=bool(doc.get("fee_taker_only", True))),
                   series=series, asset=doc.get("asset"), rule=rule,
                   min_size=float(doc.get("min_size") or 0.0), tick_size=doc.get("tick_size"),
                   price_to_beat=ptb, final_price=doc.get("final_price"),
                   resolution=doc.get("resolution"), up_token=doc.get("up_token"),
                   down_token=doc.get("down_token"))
