"""The current up/down window as the decision engine sees it: a frozen view parsed from feed_poly's
market document (the `window` of the `polymarket` state block). Pure.

Invariants:
- `Window.from_doc` is the only place that reads the market document's window keys; fair value,
  edge and the accumulator take a `Window` (or anything with the same attributes: tests pass
  gamma.WindowInfo), never the raw dict;
- `start_ns` / `end_ns` are the document's own epoch-ns boundaries (feed_poly derives them from the
  Gamma metadata), `start_s` / `end_s` the same in whole seconds.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fee:
    rate: float          # taker fee per share = rate·(p·(1−p))^exponent
    exponent: float


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

    @classmethod
    def from_doc(cls, doc: dict | None) -> "Window | None":
        """The view of a market document's window; None when there is no current window."""
        if not doc:
            return None
        return cls(slug=doc["slug"], start_s=doc["start_s"], end_s=doc["end_s"],
                   start_ns=doc["window_start_ns"], end_ns=doc["window_end_ns"],
                   active=doc["active"], closed=doc["closed"],
                   accepting_orders=doc["accepting_orders"], twap_enabled=doc["twap_enabled"],
                   twap_lookback_sec=doc["twap_lookback_sec"],
                   fee=Fee(rate=doc["fee_rate"], exponent=doc["fee_exponent"]))
