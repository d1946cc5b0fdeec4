"""The dashboard's history: which ticks become samples, and the sample records, pure (no I/O).

compute offers each series' edge document and its features document every tick; a sampler
answers the record to append to the series' (or the market's) history ring, or None. The API
(actors/web/history.py) reads the rings back with the code tables below.

Invariants:
- a series is sampled once per `period_ms = max(TICK_MS, window_sec·1000 / 2000)` bucket of data
  time (window_sec: the series' configured length, `venues.window_secs`) (`ts_ns // period`: ~2000 samples per window whatever the tick), and also at once whenever
  its decision, its action, its veto mask or its window changes, and at every SLICE: every decision
  change and every slice is a record, exactly;
- the market is sampled once per 1000 ms bucket of data time;
- `settlement` is the price of the window's rule source (`rule.source`: Chainlink's, or the
  Binance candle's for the candle-settled series), `chainlink` always Chainlink's;
- records are built from the documents compute already has (the edge doc's `inputs`, `fair`,
  `edge.sides`, `accumulate`, `quality`; the features doc's venues, basis, liquidations): nothing
  is computed a second time; a missing value is NaN, a missing window 0, an unknown code -1;
- `VETO_CODES` names every `_veto("code", ...)` of actors/decide/edge.py (a test reads its source);
  a code not in the table sets the last bit, "other".
"""
from __future__ import annotations

import math

from ipc.names import FUTURES, POLY_TOKENS, SPOT
from ipc.schema import MARKET_SAMPLE, WINDOW_SAMPLE

from actors.features.quality import MODES

NAN = math.nan
MARKET_PERIOD_MS = 1000
POINTS_PER_WINDOW = 2000     # the series' sampling aims at this many samples per window

DECISIONS: tuple[str, ...] = ("NONE", "BUY_UP", "BUY_DOWN")
ACTIONS: tuple[str, ...] = ("HOLD", "SLICE")
SLICE_SIDES: tuple[str | None, ...] = (None, *POLY_TOKENS)       # 0 none, 1 UP, 2 DOWN
QUALITY_MODES: tuple[str, ...] = MODES
VETO_CODES: tuple[str, ...] = (
    # decision-wide (side None)
    "no_window", "window_not_started", "window_ended", "window_inactive", "time_left",
    "quality", "no_fair", "settlement_source",
    "binance_missing", "binance_stale", "chainlink_missing", "chainlink_stale",
    "candle_missing", "candle_stale", "arbitrage",
    # per side
    "stale", "no_asks", "no_bids", "crossed", "spread", "depth", "partial_fill", "min_price",
    "min_size",
    "other",                                  # any code not above (always the last bit)
)
assert len(VETO_CODES) <= 32, "veto_mask is a u4"
_VETO_BIT = {c: 1 << i for i, c in enumerate(VETO_CODES)}
_OTHER_BIT = _VETO_BIT["other"]
_DECISION = {d: i for i, d in enumerate(DECISIONS)}
_ACTION = {a: i for i, a in enumerate(ACTIONS)}
_SIDE = {s: i for i, s in enumerate(SLICE_SIDES)}
_QUALITY = {m: i for i, m in enumerate(QUALITY_MODES)}


def _f(x) -> float:
    """A document's number as f8: None (or anything not a number) is NaN."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else NAN


def _d(doc, key: str) -> dict:
    v = doc.get(key) if isinstance(doc, dict) else None
    return v if isinstance(v, dict) else {}


def veto_mask(codes) -> int:
    """The mask of veto codes (bit i: VETO_CODES[i]; unknown codes: the "other" bit)."""
    m = 0
    for c in codes:
        m |= _VETO_BIT.get(c, _OTHER_BIT)
    return m


def veto_codes(mask: int) -> list[str]:
    """The codes of a mask, in table order."""
    return [c for c, b in _VETO_BIT.items() if mask & b]


def code_name(table: tuple, i: int):
    """A table's name of code `i` (None when out of range: -1, unknown)."""
    return table[i] if 0 <= i < len(table) else None


def edge_vetoes(doc: dict) -> list[str]:
    """Every veto code of an edge document: `edge.vetoes` and `edge.sides.*.vetoes`."""
    edge = _d(doc, "edge")
    out = [v.get("code") for v in edge.get("vetoes") or () if isinstance(v, dict)]
    for side in (edge.get("sides") or {}).values():
        if isinstance(side, dict):
            out += [v.get("code") for v in side.get("vetoes") or () if isinstance(v, dict)]
    return out


def window_period_ms(window_sec: int, tick_ms: int) -> int:
    """The sampling period of a series: max(TICK_MS, window_sec·1000 / POINTS_PER_WINDOW)."""
    return max(int(tick_ms), int(window_sec) * 1000 // POINTS_PER_WINDOW)


def window_record(doc: dict, mask: int | None = None) -> tuple:
    """The `window_sample` record (a tuple in WINDOW_SAMPLE field order) of one edge document."""
    ts = int(doc["ts_ns"])
    edge, acc, inputs = _d(doc, "edge"), _d(doc, "accumulate"), _d(doc, "inputs")
    sides = edge.get("sides") if isinstance(edge.get("sides"), dict) else {}
    up, down = _d(sides, POLY_TOKENS[0]), _d(sides, POLY_TOKENS[1])
    params = _d(edge, "params")
    buffer_bps = params.get("edge_buffer_bps")
    action = acc.get("action")
    slices = acc.get("slices")
    return (ts, ts, 0, slices if isinstance(slices, int) else -1,
            int(doc.get("window_start_ns") or 0), int(doc.get("window_end_ns") or 0),
            _f(_d(inputs, "binance").get("price")), _f(_d(inputs, "chainlink").get("price")),
            _f(_d(inputs, "chainlink" if _d(doc, "rule").get("source", "chainlink") == "chainlink"
                  else "candle").get("price")),
            _f(_d(doc, "price_to_beat").get("price")), _f(edge.get("fair_up")),   # what the edge used
            _f(up.get("best_bid")), _f(up.get("best_ask")), _f(down.get("best_bid")), _f(down.get("best_ask")),
            _f(up.get("edge")), _f(down.get("edge")), _f(up.get("return_on_cost")), _f(down.get("return_on_cost")),
            _f(buffer_bps) / 1e4, _f(edge.get("time_left_s")),
            _f(acc.get("slice_usd")) if action == "SLICE" else 0.0, _f(acc.get("usd")),
            veto_mask(edge_vetoes(doc)) if mask is None else mask,
            _DECISION.get(edge.get("decision"), -1), _ACTION.get(action, -1),
            _SIDE.get(acc.get("side"), 0) if action == "SLICE" else 0,
            _QUALITY.get(_d(doc, "quality").get("mode"), -1))


class WindowSampler:
    """One series' sampling rule (module docstring): `offer(doc)` -> a record to append, or None."""

    def __init__(self, window_sec: int, tick_ms: int):
        self.period_ns = window_period_ms(window_sec, tick_ms) * 1_000_000
        self._bucket: int | None = None
        self._key: tuple | None = None
        self.samples = self.events = 0       # records answered; of them, for a change or a slice

    def offer(self, doc: dict) -> tuple | None:
        edge, acc = _d(doc, "edge"), _d(doc, "accumulate")
        mask = veto_mask(edge_vetoes(doc))
        action = acc.get("action")
        key = (edge.get("decision"), action, mask, doc.get("window_start_ns"))
        bucket = int(doc["ts_ns"]) // self.period_ns
        event = key != self._key or action == "SLICE"
        if not event and bucket == self._bucket:
            return None
        self._key, self._bucket = key, bucket
        self.samples += 1
        self.events += event
        return window_record(doc, mask)


def _venue_num(venues: dict, venue: str, *path) -> float:
    v = venues.get(venue)
    for p in path:
        if not isinstance(v, dict):
            return NAN
        v = v.get(p)
    return _f(v)


def market_record(feats: dict, legs: tuple[str, str] = (FUTURES, SPOT)) -> tuple:
    """The `market_sample` record (a tuple in MARKET_SAMPLE field order) of one features document.
    legs: the venues of the (perpetual, spot) fields, compute's basis legs."""
    ts = int(feats["ts_ns"])
    venues = _d(feats, "venues")
    perp, spot = legs
    basis, liqs = _d(feats, "basis"), _d(feats, "liquidations")
    return (ts, ts, 0, _QUALITY.get(_d(feats, "quality").get("mode"), -1),
            _venue_num(venues, perp, "last_price"), _venue_num(venues, spot, "last_price"),
            _venue_num(venues, perp, "book", "mid"), _venue_num(venues, spot, "book", "mid"),
            _venue_num(venues, perp, "cvd", "cvd"), _venue_num(venues, spot, "cvd", "cvd"),
            _f(basis.get("basis_bps")), _f(basis.get("mark")),
            _f(liqs.get("long_notional")), _f(liqs.get("short_notional")))


class MarketSampler:
    """The market's sampling rule: one record per MARKET_PERIOD_MS bucket of data time."""

    def __init__(self, legs: tuple[str, str] = (FUTURES, SPOT)):
        self.legs = legs
        self._bucket: int | None = None
        self.samples = 0

    def offer(self, feats: dict) -> tuple | None:
        bucket = int(feats["ts_ns"]) // (MARKET_PERIOD_MS * 1_000_000)
        if bucket == self._bucket:
            return None
        self._bucket = bucket
        self.samples += 1
        return market_record(feats, self.legs)


# the tuples above follow the dtypes' field order: checked once at import
assert len(WINDOW_SAMPLE.names) == 28 and len(MARKET_SAMPLE.names) == 14
