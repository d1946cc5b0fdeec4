"""A typed bus client: every message decoded into the model of its topic family, gaps and
publisher restarts tracked by ipc.bus.Subscriber.

    from ipc.client import Client, Depth, Features
    with Client("tcp://127.0.0.1:5556", ("tick.futures.depth.", "features.")) as bus:
        for topic, m in bus:
            if isinstance(m, Depth):
                best_bid, best_ask = m.bids[0], m.asks[0]     # (price, qty), only real levels

`parse(topic, doc)` is pure: the topic's family (`family`, a dispatch table built from
ipc/names.py) picks the model, pydantic checks the payload against it. `Client` is the thin shell
around a SUB socket.

Invariants:
- one model per topic family; a model declares the fields every payload of its family carries
  (the record models: exactly the fields of their ipc.schema dtype) and keeps any others
  (`model_extra`): documents grow without breaking a client;
- a payload of another schema version (`v` != ipc.bus.PAYLOAD_VERSION) is not decoded: its shape
  may differ (reason `version`);
- nothing a publisher (or anything else on the socket) sends raises out of the receive loop: a
  message that is not two frames, not JSON, not an object, without integer seq/boot stamps, of
  another version, on an unknown topic, or not matching its model is counted in
  `Client.skipped[reason]` and handed on raw (the document, or None when there is none);
- gap and restart bookkeeping (ipc.bus.Subscriber.observe) sees every stamped message, decoded or
  not, so a skipped message is never counted as a lost one.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator, Literal

import numpy as np
import orjson
import zmq
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ipc import names
from ipc.bus import ENVELOPE_REASONS, PAYLOAD_VERSION, Event, Subscriber, TopicTrack, envelope
from ipc.schema import FLAG_GAP

__all__ = [
    "Client", "Message", "PayloadError", "parse", "family", "MODELS", "REASONS",
    "Subscriber", "Event", "TopicTrack", "PAYLOAD_VERSION",
    "Stamped", "Record", "Trade", "Quote", "Mark", "Liquidation", "Depth", "Kline", "PolyBook",
    "PolyTrade", "Chainlink", "TickGap", "Records", "PolyMarket", "Bar", "Features", "Edge", "ContextKline",
    "ContextIndicators", "StateQuality", "AnchorReset",
]

#: why a message was not decoded: each a key of `Client.skipped`
REASONS = (*ENVELOPE_REASONS, "version", "unknown_topic", "malformed")


class PayloadError(ValueError):
    """A payload `parse` cannot decode; `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --- models ------------------------------------------------------------------------------------

class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Stamped(_Doc):
    """What the bus adds to every payload (ipc.bus.Publisher.publish)."""
    seq: int                 # per topic, +1 per message, from 1
    boot: int                # the publisher's start id
    v: int                   # PAYLOAD_VERSION
    ts_ns: int               # data time (the publish time for a document without one)
    pub_ts_ns: int           # the publisher's wall clock at send


class _Head(_Doc):
    ts_event_ns: int         # exchange time; 0 when the venue sends none
    ts_recv_ns: int          # local receive time
    flags: int               # ipc.schema FLAG_GAP | FLAG_SNAPSHOT


class Record(Stamped, _Head):
    """A ring record on its tick topic (ipc/payload.py): the record's fields by dtype name."""

    @property
    def is_gap(self) -> bool:
        return bool(self.flags & FLAG_GAP)


class Trade(Record):
    trade_id: int
    first_id: int
    last_id: int
    price: float
    qty: float
    side: int                # +1 the taker bought, -1 sold


class Quote(Record):
    """bookTicker."""
    update_id: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float


class Mark(Record):
    mark: float
    index: float | None      # null: not sent
    est_settle: float | None
    funding_rate: float | None
    next_funding_ns: int


class Liquidation(Record):
    trade_time_ns: int
    price: float
    avg_price: float
    qty: float
    filled_qty: float
    side: int                # +1 the liquidation order buys (a short was liquidated), -1 sells


def _check_levels(m, fields: tuple[str, ...]):
    for f in fields:
        n = m.n_bids if f.startswith("bid") else m.n_asks
        if len(getattr(m, f)) != n:
            raise ValueError(f"{f} holds {len(getattr(m, f))} levels, its count says {n}")
    return m


class Depth(Record):
    """Top-N depth (a snapshot when flags & FLAG_SNAPSHOT, else a diff): parallel level arrays,
    best-first, exactly n_bids / n_asks long."""
    update_id: int
    first_update_id: int     # -1 for a {lastUpdateId,bids,asks} snapshot
    prev_update_id: int      # -1 when the venue sends no `pu`
    n_bids: int
    n_asks: int
    bid_px: list[float]
    bid_qty: list[float]
    ask_px: list[float]
    ask_qty: list[float]

    @model_validator(mode="after")
    def _n_levels(self):
        return _check_levels(self, ("bid_px", "bid_qty", "ask_px", "ask_qty"))

    @property
    def bids(self) -> list[tuple[float, float]]:
        """(price, qty) per level, best first."""
        return list(zip(self.bid_px, self.bid_qty))

    @property
    def asks(self) -> list[tuple[float, float]]:
        return list(zip(self.ask_px, self.ask_qty))


class KlineFields(_Head):
    open_time_ns: int
    close_time_ns: int
    tf_sec: int
    closed: bool
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    taker_buy_volume: float
    trades: int


class Kline(Record, KlineFields):
    """A kline update (open or closed)."""


class PolyBook(Record):
    """One outcome token's book after an update: best-first level arrays, n_bids / n_asks long;
    best_bid/best_ask null on an empty side."""
    window_start_ns: int
    update_id: int
    token: int               # 0 UP, 1 DOWN (names.POLY_TOKENS)
    n_bids: int
    n_asks: int
    best_bid: float | None
    best_ask: float | None
    last_trade: float | None
    tick_size: float | None
    bid_px: list[float]
    bid_sz: list[float]
    ask_px: list[float]
    ask_sz: list[float]

    @model_validator(mode="after")
    def _n_levels(self):
        return _check_levels(self, ("bid_px", "bid_sz", "ask_px", "ask_sz"))

    @property
    def bids(self) -> list[tuple[float, float]]:
        return list(zip(self.bid_px, self.bid_sz))

    @property
    def asks(self) -> list[tuple[float, float]]:
        return list(zip(self.ask_px, self.ask_sz))


class PolyTrade(Record):
    window_start_ns: int
    token: int
    side: int
    price: float
    size: float
    fee_rate_bps: float | None


class Chainlink(Record):
    ts_sent_ns: int
    price: float


class TickGap(Stamped):
    """A feed's gap message on a tick topic: records before the next one may be missing."""
    gap: Literal[True]
    reason: str
    ts_recv_ns: int
    flags: int


class Records(Stamped):
    """`bin.tick.…`: a batch of a ring's records in their own dtype (ipc/binary.py), decoded with
    numpy without a copy: `records["price"]`, `records["trade_id"]`, … (read-only). `first` is
    the ring index of records[0]: `first + n` is the next batch's `first` when nothing was lost
    between them. A gap record (flags & FLAG_GAP) marks where the feed may have missed data."""
    model_config = ConfigDict(extra="allow", frozen=True, arbitrary_types_allowed=True)
    kind: str                # an ipc.schema.DTYPES kind
    first: int
    n: int
    records: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """Which records are gap markers (a boolean mask)."""
        return (self.records["flags"] & FLAG_GAP) != 0


class PolyMarket(Stamped):
    """`tick.poly.market.<series>`: a window change, metadata change or resolution."""
    series: str
    asset: str
    slug: str
    condition_id: str
    up_token: str
    down_token: str
    window_start_ns: int
    window_end_ns: int
    start_s: int
    end_s: int
    active: bool | None
    closed: bool | None
    rule: dict[str, Any]
    price_to_beat: float | None
    price_to_beat_source: str | None
    final_price: float | None
    resolution: dict[str, Any] | None


class Bar(Stamped):
    """A closed trade bar (`bar.<tf>.<venue>.<SYMBOL>`)."""
    tf: str
    venue: str
    start_ns: int
    end_ns: int
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float
    delta: float
    vwap: float | None
    trades: int
    closed: bool
    buy_volume: float | None = None
    sell_volume: float | None = None


class Quality(_Doc):
    mode: str
    reasons: list[str]


class TopOfBook(_Doc):
    mid: float | None
    spread_bps: float | None
    microprice: float | None
    imbalance: float | None
    bid: float | None = None
    ask: float | None = None


class VenueFeatures(_Doc):
    last_price: float | None
    book: TopOfBook | None
    cvd: dict[str, Any]
    vwap: dict[str, Any]
    bars: dict[str, Any]


class Features(Stamped):
    """`features.<SYMBOL>`, every tick (main fields; the rest stay in `model_extra` and the nested
    dicts)."""
    symbol: str
    tick: int
    venues: dict[str, VenueFeatures]
    anchor: dict[str, Any]
    quality: Quality
    basis: dict[str, Any] | None = None
    bias: dict[str, Any] | None = None


class Fair(_Doc):
    fast: float | None
    smooth: float | None


class Decision(_Doc):
    decision: Literal["BUY_UP", "BUY_DOWN", "NONE"]
    reason: str | None = None
    vetoes: list[dict[str, Any]] = []
    sides: dict[str, dict[str, Any]] = {}


class Edge(Stamped):
    """`edge.<SYMBOL>.<series>`, every tick: the series' fair value, decision and accumulator."""
    fair: Fair
    edge: Decision
    accumulate: dict[str, Any]
    series: str | None = None
    window: str | None = None
    window_start_ns: int | None = None
    window_end_ns: int | None = None
    price_to_beat: dict[str, Any] | None = None
    quality: Quality | None = None


class ContextKline(Stamped):
    """`context.<SYMBOL>`: a closed context kline of one timeframe."""
    tf: str
    kline: KlineFields
    source: str


class ContextIndicators(Stamped):
    """`context.<SYMBOL>`: one timeframe's indicator values (`indicators[tf]`)."""
    tf: str
    indicators: dict[str, dict[str, Any]]


class StateQuality(Stamped):
    """`state`: the quality mode and every actor's heartbeat, on change and every second."""
    mode: str
    reasons: list[str]
    actors: dict[str, dict[str, Any]]


class AnchorReset(Stamped):
    """`state`: the CVD/VWAP anchor was reset."""
    event: Literal["anchor_reset"]
    anchor_ns: int


# --- dispatch ----------------------------------------------------------------------------------

def _by_key(key: str, yes: type[Stamped], no: type[Stamped]) -> Callable[[dict], type[Stamped]]:
    return lambda doc: yes if key in doc else no


#: topic family -> its model (or a chooser of the model by the document, for a topic that carries
#: two kinds of document); the record families are the ipc.schema.DTYPES kinds
MODELS: dict[str, type[Stamped] | Callable[[dict], type[Stamped]]] = {
    "trade": Trade, "quote": Quote, "mark": Mark, "liquidation": Liquidation, "depth": Depth,
    "kline": Kline, "poly_book": PolyBook, "poly_trade": PolyTrade, "chainlink": Chainlink,
    "poly_market": PolyMarket, "bar": Bar, "features": Features, "edge": Edge,
    "context": _by_key("kline", ContextKline, ContextIndicators),
    "state": _by_key("event", AnchorReset, StateQuality),
}
RECORD_FAMILIES = frozenset(("trade", "quote", "mark", "liquidation", "depth", "kline", "poly_book",
                             "poly_trade", "chainlink"))


def _prefixes() -> dict[str, str]:
    """Topic prefix -> family, from the declared rings and topics (ipc/names.py)."""
    out = {names.tick_topic(r.venue, r.topic_kind or r.stream, ""): r.kind
           for rings in names.VENUE_RINGS.values() for r in rings.values()}
    out[names.POLY_MARKET_PREFIX] = "poly_market"
    out[names.BAR_PREFIX] = "bar"
    out[names.FEATURES_PREFIX] = "features"
    out[names.EDGE_PREFIX] = "edge"
    out[names.context_topic("")] = "context"
    return out


_PREFIXES = _prefixes()


@lru_cache(maxsize=4096)
def family(topic: str) -> str | None:
    """The family of a topic (a key of MODELS), or None for a topic this client does not know."""
    if topic == names.STATE_TOPIC:
        return "state"
    parts = topic.split(".")
    for k in (3, 1):              # `tick.<venue>.<kind>.`, then `bar.`, `features.`, ...
        if len(parts) > k:
            fam = _PREFIXES.get(".".join(parts[:k]) + ".")
            if fam is not None:
                return fam
    return None


def parse(topic: str, doc: dict | bytes) -> Stamped:
    """The model of one payload (a decoded document or the payload bytes); PayloadError (its
    `reason` one of REASONS) when it cannot be decoded."""
    if not isinstance(doc, dict):
        try:
            doc = orjson.loads(doc)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise PayloadError("not_json", str(exc)) from None
        if not isinstance(doc, dict):
            raise PayloadError("not_object", type(doc).__name__)
    if doc.get("v") != PAYLOAD_VERSION:
        raise PayloadError("version", f"v={doc.get('v')!r}, this client reads {PAYLOAD_VERSION}")
    if topic.startswith(names.BINARY_PREFIX):
        if not isinstance(doc.get("records"), np.ndarray):     # ipc.bus.envelope decodes the body
            raise PayloadError("malformed", f"{topic}: no records (a binary message has three frames)")
        if family(topic[len(names.BINARY_PREFIX):]) not in RECORD_FAMILIES:
            raise PayloadError("unknown_topic", topic)
        return Records.model_validate(doc)
    fam = family(topic)
    if fam is None:
        raise PayloadError("unknown_topic", topic)
    model = TickGap if fam in RECORD_FAMILIES and doc.get("gap") is True else MODELS[fam]
    if not isinstance(model, type):
        model = model(doc)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise PayloadError("malformed", f"{topic}: {exc.error_count()} errors, "
                                        f"first {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


# --- the shell ---------------------------------------------------------------------------------

@dataclass
class Message:
    topic: str
    model: Stamped | None      # None: not decoded (`error` says why)
    doc: dict | None           # the document as received (None: the payload was not a JSON object)
    lost: int = 0              # messages of this topic missing just before this one (by seq)
    restarted: bool = False    # the topic's publisher restarted (a new boot), not a gap
    error: PayloadError | None = None

    @property
    def value(self) -> Stamped | dict | None:
        """The model, else the raw document, else None."""
        return self.model if self.model is not None else self.doc


class Client:
    """A SUB socket on the bus's XPUB (ZMQ_PUB_URL), subscribed to topic prefixes; `recv` gives
    one decoded `Message`, iteration yields `(topic, model or raw doc or None)` forever.

    Counters: `received` messages, `skipped[reason]` those not decoded (REASONS); per-topic seq
    bookkeeping in `tracks` (ipc.bus.TopicTrack: gaps, lost, restarts)."""

    def __init__(self, url: str, topics: tuple[str, ...] | list[str] = ("",),
                 ctx: zmq.Context | None = None, rcvhwm: int = 100_000):
        self.sub = Subscriber(url, tuple(topics), ctx=ctx, rcvhwm=rcvhwm)
        self.received = 0
        self.skipped: Counter[str] = Counter()

    @property
    def tracks(self) -> dict[str, TopicTrack]:
        return self.sub.tracks

    def recv(self, timeout_ms: int | None = None) -> Message | None:
        """The next message (decoded or counted), or None when nothing came within timeout_ms."""
        sock = self.sub.sock
        if timeout_ms is not None and not sock.poll(timeout_ms):
            return None
        self.received += 1
        topic, doc, reason, detail = envelope(sock.recv_multipart())
        if reason is not None:
            return self._skip(Message(topic, None, doc), PayloadError(reason, detail))
        ev = self.sub.observe(topic, doc)
        msg = Message(topic, None, doc, ev.lost, ev.restarted)
        try:
            msg.model = parse(topic, doc)
        except PayloadError as exc:
            return self._skip(msg, exc)
        return msg

    def _skip(self, msg: Message, err: PayloadError) -> Message:
        self.skipped[err.reason] += 1
        msg.error = err
        return msg

    def __iter__(self) -> Iterator[tuple[str, Stamped | dict | None]]:
        while True:
            m = self.recv()
            yield m.topic, m.value

    def close(self) -> None:
        self.sub.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
