"""Settlement: what each up/down window settles on, its price to beat and its settlement. Pure.

THE one settlement module of the project: fair value (decide/fair.py), compute's price-to-beat
estimate, the example strategy, the backtest and calibrate all call `rule_for` / `price_to_beat` /
`settle` (or the Chainlink helper `settlement_price` under them) and `winner`, so they cannot
disagree.

A window's `Rule` comes from its Gamma metadata (`rule_for`): the resolution source (a Chainlink
stream, or the Binance candles), point or TWAP and the TWAP length. Rules:
- point (Chainlink): the price at t is the observation AT t (timestamp == t), else the last one
  before t, if it is at most MAX_MISSING_OBS observation steps (2 s) before t. Why: the venue uses
  the Chainlink Data Streams report for timestamp t; reports are stamped on whole seconds, so the
  report of second t is the one stamped t; a report stamped later, even by a fraction, observed
  the price after t, while without a report at t the last one before it is the price in force at
  t — but only a recent one: behind a hole in our data (a reconnect) the last one we have may be
  far from what the venue used, so the answer is "incomplete", never a stale guess. The price to
  beat is that price at the window start, the settlement that price at the end (the same
  function, `settlement_price(obs, t)`);
- twap (Chainlink, `twapEnabled`): the mean of the observations in (t − L, t], at the start for the
  price to beat and at the end for the settlement, and only when the history reaches back to the
  span's first second (an observation at or before t − L + 1 s) and covers the span: at most
  MAX_MISSING_OBS of its L one-second observations missing, and no hole longer than that anywhere
  in it; else "incomplete", never a guess from part of it. That mean is `twap_mean`, the one
  definition: fair value's running average inside the span is `twap_mean` over (t − L, now];
- a Chainlink price at t is known once an observation at or after t has arrived (observations come
  in time order, so nothing at or before t can follow it); before that it is "pending"; with no
  observation at or before t at all it is "incomplete";
- candle (Binance, hourly): the candle of the window's length opening at the start: price to beat =
  its open (known from its first update, open or closed), settlement = its close once closed;
- candle_close (Binance, daily): price to beat = the close of the 1m candle opening at the start,
  settlement = the close of the 1m candle opening at the end, each once that candle is closed;
- the candles a window reads are `candle_keys(rule, start, end)` (a caller that bounds its candle
  history keeps those);
- candles come in any order; for one (open_time_ns, tf_sec) the latest update (the later in the
  sequence) wins, except that a closed candle is final: a later open update of it is ignored. A
  wanted candle that is absent while a later candle of the same interval is present was missed:
  "incomplete" (else "pending");
- Up wins on ≥ (`up_wins`: the tie settlement == price to beat is Up), whatever the rule;
- gap records never count: callers pass only real observations.

`rule_for` reads the resolution source: Chainlink ("chain.link"/"chainlink") -> point, or twap
when twapEnabled with a lookback; Binance -> the pair the URL names in capitals (BTC_USDT ->
BTCUSDT; else the asset's USDT pair), "candle" on the window-length kline, or "candle_close" on
1m klines for the daily series; nothing known -> the series' default (series.SERIES
default_source) with `assumed=True`. The rule says what the venue settles on; whether the
collector has that stream (the configured SYMBOL's spot klines, its Chainlink stream) is the
caller's to check.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal, NamedTuple, Sequence

from ipc.names import ASSETS, KLINE_TFS, TIMEFRAME_SEC, tf_sec

from actors.venues.polymarket.series import spec as series_spec

__all__ = [
    "SettleStatus", "Rule", "rule_for", "Candle", "price_to_beat", "settle", "up_wins", "winner",
    "settled_path", "settlement_price", "twap_start_ns", "twap_span", "twap_mean", "candle_keys",
    "candle_from_kline", "candle_key", "supersedes", "beat_price", "settles_at_ns", "PriceSource", "VENUE", "ESTIMATE",
    "SOURCES", "METHODS", "SEC_NS", "OBSERVATION_STEP_NS", "MAX_MISSING_OBS",
]

SEC_NS = 1_000_000_000
OBSERVATION_STEP_NS = SEC_NS      # Chainlink observations fall on whole seconds
# observations a Chainlink price may miss and still be known: a point price from at most this many
# steps before t, a TWAP span missing at most this many seconds and no longer hole
MAX_MISSING_OBS = 2

SettleStatus = Literal["ok", "pending", "incomplete"]
# where a price to beat comes from: the venue's own number (Gamma's priceToBeat), else this
# module's estimate by the market's rule over the caller's history
PriceSource = Literal["venue", "estimate"]
VENUE: PriceSource = "venue"
ESTIMATE: PriceSource = "estimate"

SOURCES = ("chainlink", "binance")
METHODS: dict[str, tuple[str, ...]] = {"chainlink": ("point", "twap"), "binance": ("candle", "candle_close")}
_SYMBOL_OF_ASSET = {a: sym for sym, a in ASSETS.items()}
# a Binance trade URL names its pair BASE_QUOTE in capitals (https://www.binance.com/en/trade/BTC_USDT);
# lower-case path parts (`funding_rate`) are not pairs
_PAIR = re.compile(r"(?<![A-Za-z0-9])([A-Z0-9]{2,15})_([A-Z0-9]{2,10})(?![A-Za-z0-9])")


# ---------------------------------------------------------------------------------------------
# the rule of a window
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    source: str            # "chainlink" | "binance"
    stream: str            # chainlink: "btc/usd"; binance: the spot symbol "BTCUSDT"
    method: str            # "point" | "twap" | "candle" | "candle_close"
    twap_lookback_sec: int = 0
    candle_tf: str | None = None     # binance: the kline interval (names.KLINE_TFS)
    assumed: bool = False            # Gamma gave no resolution source: the series' default

    def __post_init__(self):
        if self.source not in METHODS:
            raise ValueError(f"rule source {self.source!r}; known: {', '.join(SOURCES)}")
        if self.method not in METHODS[self.source]:
            raise ValueError(f"rule method {self.method!r} for {self.source}; known: "
                             f"{', '.join(METHODS[self.source])}")
        if type(self.stream) is not str or not self.stream:
            raise ValueError(f"rule stream {self.stream!r}")
        if type(self.twap_lookback_sec) is not int or self.twap_lookback_sec < 0:
            raise ValueError(f"twap_lookback_sec {self.twap_lookback_sec!r}")
        if (self.method == "twap") != (self.twap_lookback_sec > 0):
            raise ValueError(f"{self.method}: twap_lookback_sec {self.twap_lookback_sec} "
                             "(> 0 exactly for twap)")
        if self.source == "binance":
            if self.candle_tf not in KLINE_TFS:
                raise ValueError(f"candle_tf {self.candle_tf!r}; a kline interval: {', '.join(KLINE_TFS)}")
        elif self.candle_tf is not None:
            raise ValueError(f"{self.source} rule with a candle_tf {self.candle_tf!r}")
        if type(self.assumed) is not bool:
            raise ValueError(f"assumed {self.assumed!r}")

    @property
    def candle_sec(self) -> int:
        """The candle interval in seconds (0 for a Chainlink rule)."""
        return tf_sec(self.candle_tf) if self.candle_tf else 0

    def doc(self) -> dict:
        """JSON-able; round-trips through Rule.from_doc."""
        return asdict(self)

    @classmethod
    def from_doc(cls, d: dict) -> "Rule":
        """The Rule of a `doc()`; ValueError on a missing, unknown or bad field."""
        if type(d) is not dict:
            raise ValueError(f"a rule doc is an object, not {type(d).__name__}")
        fields = ("source", "stream", "method", "twap_lookback_sec", "candle_tf", "assumed")
        extra = set(d) - set(fields)
        if extra:
            raise ValueError(f"unknown rule doc keys {sorted(extra)}")
        missing = [k for k in fields[:3] if k not in d]
        if missing:
            raise ValueError(f"rule doc without {missing}")
        return cls(**d)


def _kline_tf(window_sec: int) -> str:
    for tf in KLINE_TFS:
        if TIMEFRAME_SEC[tf] == window_sec:
            return tf
    raise ValueError(f"a Binance-candle window of {window_sec} s has no kline interval "
                     f"(one of {', '.join(KLINE_TFS)})")


def _binance_rule(series: str, asset: str, window_sec: int, source: str, assumed: bool) -> Rule:
    m = _PAIR.search(source)
    if m:
        stream = (m.group(1) + m.group(2)).upper()
    else:
        stream = _SYMBOL_OF_ASSET.get(asset) or f"{asset.upper()}USDT"
    if series_spec(series).align == "et_noon":
        # daily: the close of the 1m candle at ET noon, end against start
        return Rule("binance", stream, "candle_close", candle_tf="1m", assumed=assumed)
    return Rule("binance", stream, "candle", candle_tf=_kline_tf(window_sec), assumed=assumed)


def _chainlink_rule(asset: str, twap_enabled: bool, twap_lookback_sec: int, assumed: bool) -> Rule:
    lookback = int(twap_lookback_sec or 0)
    if twap_enabled and lookback > 0:
        return Rule("chainlink", f"{asset}/usd", "twap", twap_lookback_sec=lookback, assumed=assumed)
    return Rule("chainlink", f"{asset}/usd", "point", assumed=assumed)


def rule_for(series: str, asset: str, window_sec: int, resolution_source: str,
             twap_enabled: bool, twap_lookback_sec: int) -> Rule:
    """The settlement rule of one window from its Gamma metadata.

    resolution_source naming Chainlink ("chain.link"/"chainlink") -> chainlink, TWAP when
    twap_enabled with a lookback > 0, else point, stream f"{asset}/usd"; naming Binance ->
    binance, the symbol from the URL's BASE_QUOTE pair (BTC_USDT -> BTCUSDT), else the asset's;
    the daily series settles "candle_close" on 1m candles, any other "candle" on the candle of
    window_sec (3600 -> "1h"; 60 -> "1m" when the sim shortens it: ValueError if no kline
    interval is that long). Empty or unknown -> the series' default source, assumed=True.
    """
    sp = series_spec(series)
    if not asset:
        raise ValueError("rule_for needs the asset")
    src = (resolution_source or "").strip()
    low = src.lower()
    if "chain.link" in low or "chainlink" in low:
        return _chainlink_rule(asset, twap_enabled, twap_lookback_sec, False)
    if "binance" in low:
        return _binance_rule(series, asset, window_sec, src, False)
    if sp.default_source == "binance":
        return _binance_rule(series, asset, window_sec, "", True)
    return _chainlink_rule(asset, twap_enabled, twap_lookback_sec, True)


# ---------------------------------------------------------------------------------------------
# the Chainlink rules (point, twap)
# ---------------------------------------------------------------------------------------------

def _ts(o: tuple[int, float]) -> int:
    return o[0]


def up_wins(settlement: float, price_to_beat: float) -> bool:
    """The venue's rule: Up wins when the settlement is at or above the price to beat."""
    return settlement >= price_to_beat


def winner(settlement: float, price_to_beat: float) -> str:
    """"UP" or "DOWN" (names.POLY_TOKENS order)."""
    return "UP" if up_wins(settlement, price_to_beat) else "DOWN"


def settled_path(decision_log_dir: str | Path) -> Path:
    """Where the strategy appends its settled windows and calibrate reads them:
    `<decision_log_dir>/../strategy/settled.jsonl`."""
    return Path(decision_log_dir).resolve().parent / "strategy" / "settled.jsonl"


def twap_start_ns(end_ns: int, lookback_sec: float) -> int:
    """The start of a TWAP averaging span (t − lookback, t]."""
    return end_ns - int(lookback_sec * SEC_NS)


def settlement_price(obs: Iterable[tuple[int, float]], end_ns: int, twap: bool = False,
                     lookback_sec: float = 0.0) -> tuple[float | None, SettleStatus]:
    """The Chainlink price at `end_ns` (any t: the window end for the settlement, its start for
    the price to beat): (price, "ok"), or (None, "pending" | "incomplete"), from observations
    [(ts_ns, price)] in increasing time order (module docstring)."""
    obs = obs if isinstance(obs, (list, tuple)) else list(obs)
    if not obs or obs[-1][0] < end_ns:
        return None, "pending"
    hi = bisect_right(obs, end_ns, key=_ts)           # obs[:hi] are at or before end_ns
    max_hole_ns = (MAX_MISSING_OBS + 1) * OBSERVATION_STEP_NS
    if not (twap and lookback_sec > 0):
        if not hi or end_ns - obs[hi - 1][0] >= max_hole_ns:
            return None, "incomplete"
        return obs[hi - 1][1], "ok"
    lo_ns = twap_start_ns(end_ns, lookback_sec)
    if obs[0][0] > lo_ns + OBSERVATION_STEP_NS:
        return None, "incomplete"
    lo, hi = twap_span(obs, lo_ns, end_ns)            # obs[lo:hi] are in (lo_ns, end_ns]
    want = int(lookback_sec * SEC_NS) // OBSERVATION_STEP_NS
    if hi - lo < want - MAX_MISSING_OBS:
        return None, "incomplete"
    prev = lo_ns
    for t, _ in obs[lo:hi]:
        if t - prev > max_hole_ns:
            return None, "incomplete"
        prev = t
    if end_ns - prev >= max_hole_ns:
        return None, "incomplete"
    return _mean(obs, lo, hi), "ok"


def twap_span(obs: Sequence[tuple[int, float]], lo_ns: int, hi_ns: int) -> tuple[int, int]:
    """(lo, hi): obs[lo:hi] are the observations in (lo_ns, hi_ns] of a time-ordered sequence."""
    hi = bisect_right(obs, hi_ns, key=_ts)
    return bisect_right(obs, lo_ns, key=_ts, hi=hi), hi


def _mean(obs: Sequence[tuple[int, float]], lo: int, hi: int) -> float:
    return sum(p for _, p in obs[lo:hi]) / (hi - lo)


def twap_mean(obs: Sequence[tuple[int, float]], lo_ns: int, hi_ns: int) -> float | None:
    """The TWAP's own average: the mean of the observations in (lo_ns, hi_ns], None when there is
    none. With lo_ns = t − L and hi_ns = t it is the settlement value (`settlement_price`, which
    also checks the span is covered); with hi_ns = now < t it is the running average so far (fair
    value's A), by the same definition."""
    lo, hi = twap_span(obs, lo_ns, hi_ns)
    return _mean(obs, lo, hi) if hi > lo else None


# ---------------------------------------------------------------------------------------------
# the Binance candle rules (candle, candle_close)
# ---------------------------------------------------------------------------------------------

class Candle(NamedTuple):
    open_time_ns: int
    tf_sec: int
    open: float
    close: float
    closed: bool


def candle_from_kline(rec) -> Candle:
    """A Candle from an ipc.schema.KLINE record (a numpy record or a row of a structured array)."""
    return Candle(int(rec["open_time_ns"]), int(rec["tf_sec"]), float(rec["open"]),
                  float(rec["close"]), bool(rec["closed"]))


def candle_key(c: Candle) -> tuple[int, int]:
    """The one key of a candle, `(tf_sec, open_time_ns)`, as `candle_keys` names them."""
    return c.tf_sec, c.open_time_ns


def supersedes(held: Candle | None, update: Candle) -> bool:
    """Whether `update` (the later in the sequence) replaces the `held` update of the same candle:
    the latest update wins, except that a closed candle is final."""
    return held is None or not held.closed


def _candle(candles: Iterable[Candle], open_time_ns: int, tf: int) -> tuple[Candle | None, bool]:
    """(the latest update of the candle (open_time_ns, tf), whether a later candle of tf exists)."""
    found: Candle | None = None
    later = False
    for c in candles:
        if c.tf_sec != tf:
            continue
        if c.open_time_ns == open_time_ns:
            if supersedes(found, c):
                found = c
        elif c.open_time_ns > open_time_ns:
            later = True
    return found, later


def _candle_value(candles, open_time_ns: int, tf: int, field: str,
                  need_closed: bool) -> tuple[float | None, SettleStatus]:
    c, later = _candle(candles, open_time_ns, tf)
    if c is None:
        return None, "incomplete" if later else "pending"
    if need_closed and not c.closed:
        return None, "pending"
    return getattr(c, field), "ok"


# ---------------------------------------------------------------------------------------------
# price to beat and settlement, any rule
# ---------------------------------------------------------------------------------------------

def candle_keys(rule: Rule, start_ns: int, end_ns: int) -> tuple[tuple[int, int], ...]:
    """The candles (tf_sec, open_time_ns) a window's price to beat and settlement read (none for a
    Chainlink rule): "candle" the one opening at the start, "candle_close" the 1m candles opening
    at the start and at the end. A caller that keeps a bounded candle history keeps these."""
    if rule.method == "candle":
        return ((rule.candle_sec, start_ns),)
    if rule.method == "candle_close":
        return ((rule.candle_sec, start_ns), (rule.candle_sec, end_ns))
    return ()


def price_to_beat(rule: Rule, start_ns: int, *, obs: Sequence[tuple[int, float]] = (),
                  candles: Iterable[Candle] = ()) -> tuple[float | None, SettleStatus]:
    """The window's price to beat by its rule (module docstring): (price, "ok") or
    (None, "pending" | "incomplete"). obs: Chainlink [(ts_ns, price)] in time order; candles: any
    order."""
    if rule.method == "point":
        return settlement_price(obs, start_ns)
    if rule.method == "twap":
        return settlement_price(obs, start_ns, True, rule.twap_lookback_sec)
    if rule.method == "candle":
        return _candle_value(candles, start_ns, rule.candle_sec, "open", False)
    return _candle_value(candles, start_ns, rule.candle_sec, "close", True)     # candle_close


def settles_at_ns(rule: Rule, end_ns: int) -> int:
    """When the window's settlement value is fixed: its end, except for "candle_close", whose
    settlement is the close of the candle opening at the end."""
    return end_ns + rule.candle_sec * SEC_NS if rule.method == "candle_close" else end_ns


def beat_price(rule: Rule, start_ns: int, venue_price: float | None, *,
               obs: Sequence[tuple[int, float]] = (),
               candles: Iterable[Candle] = ()) -> tuple[float | None, PriceSource | None, SettleStatus]:
    """(price, source, status): the venue's number when it gave one (VENUE, "ok"), else the
    rule's estimate (`price_to_beat`: ESTIMATE, or None while it is not known)."""
    if venue_price is not None:
        return float(venue_price), VENUE, "ok"
    price, status = price_to_beat(rule, start_ns, obs=obs, candles=candles)
    return price, (ESTIMATE if price is not None else None), status


def settle(rule: Rule, start_ns: int, end_ns: int, *, obs: Sequence[tuple[int, float]] = (),
           candles: Iterable[Candle] = ()) -> tuple[float | None, SettleStatus]:
    """The window's settlement price by its rule (module docstring); the same statuses."""
    if rule.method == "point":
        return settlement_price(obs, end_ns)
    if rule.method == "twap":
        return settlement_price(obs, end_ns, True, rule.twap_lookback_sec)
    if rule.method == "candle":
        return _candle_value(candles, start_ns, rule.candle_sec, "close", True)
    return _candle_value(candles, end_ns, rule.candle_sec, "close", True)       # candle_close
