"""Polymarket CLOB: market-channel WebSocket messages and the REST order book, as pure parsers.

`parse_frame(frame, ts_recv_ns)` turns one WebSocket frame into a list of typed messages (one
NamedTuple per JSON object; the `kind` class attribute names the message). `parse_rest_book(body)`
decodes `GET /book?token_id=`. Sans-I/O: bytes in, values out; no sockets, clocks or logging.

Invariants:
- A frame is one JSON object or a JSON array of them (`[]` included). The bare text frames `PONG`
  and `PING` are control, not JSON: they decode to `Pong()` / `Ping()`. An empty (or all
  whitespace) frame decodes to `[]`.
- Anything that is not one of those shapes, or a known event with a missing or unparsable required
  field, raises `FrameError` for the whole frame: a frame is decoded atomically, so a caller never
  applies half of an array. Never another exception type.
- An object whose `event_type` is not known decodes to `Unknown(event_type, ...)` (the caller
  counts it); so does an object without `event_type`.
- Prices and sizes are `float()` of Polymarket's decimal strings (numbers are accepted too); a
  value that is not a number (or a bool) makes the frame malformed. An insane number makes it
  `Rejected` (envelope; reason '<event_type>:<field>', e.g. 'book:price', 'price_change:size'):
  a price outside [0, 1] (NaN and inf included), a size < 0, non-finite or over MAX_QTY, a tick
  size outside (0, 1), any other number non-finite, and a `best_bid_ask` whose bid is above its
  ask (both sent and non-zero). The venue's best fields inside a `price_change` are not checked
  for crossing: an empty side may come as 0, and dropping the frame would drop its level updates.
  Times stay in the venue's unit: `timestamp_ms` (epoch ms, int); `ts_recv_ns` is the caller's.
- Book sides arrive worst-first (bids ascending, asks descending: the best price is the LAST
  element, the opposite of the docs) in every capture; `Book.bids`/`Book.asks` are sorted here,
  best-first (bids descending, asks ascending), whatever order they came in.
- `price_change` comes in two formats, both decoded to `PriceChange(changes=[Change, ...])`:
  current: `price_changes[]` entries, each with asset_id, price, size, side, hash, best_bid,
  best_ask; legacy (2024): one asset's asset_id/price/side/size/hash at the top level (no best
  fields), or the older `changes[]` list of {price, side, size} under a top-level asset_id.
  `Change.size` is the NEW TOTAL size at that level ("0" deletes it); `Change.side` is 'bid'
  (wire BUY) or 'ask' (wire SELL). `best_bid`/`best_ask` are None when not sent.
- The `hash` fields are passed through as strings and never checked: they are unreliable.
- `last_trade_price.side` is the taker's side (BUY/SELL), decoded to +1 / -1 as in POLY_TRADE.
- Unknown keys are ignored: Polymarket adds fields without notice (`tick_size`,
  `last_trade_price`, `transaction_hash` all appeared over time).
- `new_market` and `market_resolved` (sent with `custom_feature_enabled: true`) name their market
  by `market` (the condition id; `condition_id` in newer messages, which must agree when both are
  sent) and their tokens by `assets_ids` (or `clob_token_ids`; the two must agree when both are
  sent). A new market's outcomes, when sent, pair with its tokens one to one; a resolution's
  `winning_asset_id` must be one of its `assets_ids` when those are sent. Any other combination is
  malformed (FrameError), never guessed.
- Subscriptions: `subscribe_msg` is the first message on a connection; tokens are added to or
  dropped from a live connection with `update_msg(ids, "subscribe" | "unsubscribe")` (the
  documented `{"assets_ids", "operation", "custom_feature_enabled"}` form), never by resending
  the initial message.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Union

import orjson

from actors.venues.envelope import (FIELD_ERRORS, MAX_QTY, BadValue, FrameError, control_text, fail,
                                    field_error, load_json)

__all__ = [
    "FrameError", "Book", "Change", "PriceChange", "LastTrade", "TickSizeChange", "BestBidAsk",
    "NewMarket", "MarketResolved", "Pong", "Ping", "Unknown", "Msg",
    "parse_frame", "parse_rest_book", "subscribe_msg", "update_msg", "OPERATIONS", "trade_record", "PING", "PING_INTERVAL_SEC",
    "MARKET_WS_PATH",
]

PING = b"PING"                     # send as a text frame every PING_INTERVAL_SEC; the server answers "PONG"
PING_INTERVAL_SEC = 10
MARKET_WS_PATH = "/ws/market"      # wss://ws-subscriptions-clob.polymarket.com/ws/market

_MS = 1_000_000
_NAN = float("nan")

Level = tuple[float, float]        # (price, size)


# ---------------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------------

class Book(NamedTuple):
    """A full book of one token (WS `book` event or REST `/book`). Levels are best-first."""
    asset_id: str
    market: str
    bids: list[Level]              # descending price
    asks: list[Level]              # ascending price
    hash: str
    timestamp_ms: int
    tick_size: float | None        # newer WS snapshots and REST only
    last_trade_price: float | None  # newer WS snapshots and REST; "" on the wire -> None
    min_order_size: float | None   # REST only
    neg_risk: bool | None          # REST only
    ts_recv_ns: int
    kind = "book"


class Change(NamedTuple):
    """One level update of a `price_change`: `size` is the new total at `price` (0 deletes)."""
    asset_id: str
    side: str                      # 'bid' (wire BUY) or 'ask' (wire SELL)
    price: float
    size: float
    hash: str
    best_bid: float | None         # the venue's best bid of asset_id after this event (None: not sent)
    best_ask: float | None


class PriceChange(NamedTuple):
    market: str
    changes: list[Change]          # in wire order; apply in this order
    timestamp_ms: int
    legacy: bool                   # True for the 2024 single-asset shapes
    ts_recv_ns: int
    kind = "price_change"


class LastTrade(NamedTuple):
    asset_id: str
    market: str
    price: float
    size: float
    side: int                      # +1 the taker bought, -1 sold
    fee_rate_bps: float
    timestamp_ms: int
    transaction_hash: str | None   # 2026 captures only
    ts_recv_ns: int
    kind = "last_trade_price"


class TickSizeChange(NamedTuple):
    """After this, the asset's book is unusable until the next `book` snapshot."""
    asset_id: str
    market: str
    old_tick_size: float
    new_tick_size: float
    timestamp_ms: int
    ts_recv_ns: int
    kind = "tick_size_change"


class BestBidAsk(NamedTuple):
    """Sent only with `custom_feature_enabled: true`. None: the field was absent or empty."""
    asset_id: str
    market: str
    best_bid: float | None
    best_ask: float | None
    spread: float | None
    timestamp_ms: int
    ts_recv_ns: int
    kind = "best_bid_ask"


class NewMarket(NamedTuple):
    """A market was listed: its condition id, token ids (paired with `outcomes`) and slug."""
    id: str                        # the Gamma market id ("" when not sent)
    market: str                    # condition id
    slug: str
    question: str
    asset_ids: list[str]           # token ids, in the order of `outcomes`
    outcomes: list[str]            # [] when not sent
    tick_size: float | None
    active: bool | None
    timestamp_ms: int
    ts_recv_ns: int
    kind = "new_market"

    @property
    def condition_id(self) -> str:
        return self.market


class MarketResolved(NamedTuple):
    """A market resolved: the winning token and outcome name."""
    id: str
    market: str                    # condition id
    asset_ids: list[str]           # [] when not sent
    winning_asset_id: str
    winning_outcome: str           # "Up", "Down", "Yes", ...; "" when not sent
    timestamp_ms: int
    ts_recv_ns: int
    kind = "market_resolved"

    @property
    def condition_id(self) -> str:
        return self.market


class Pong(NamedTuple):
    ts_recv_ns: int
    kind = "pong"


class Ping(NamedTuple):
    ts_recv_ns: int
    kind = "ping"


class Unknown(NamedTuple):
    event_type: str                # '' when the object had none
    raw: dict
    ts_recv_ns: int
    kind = "unknown"


Msg = Union[Book, PriceChange, LastTrade, TickSizeChange, BestBidAsk, NewMarket, MarketResolved,
            Pong, Ping, Unknown]


# ---------------------------------------------------------------------------------------------
# field helpers: raise ValueError/TypeError/KeyError, turned into FrameError by the envelope
# ---------------------------------------------------------------------------------------------

def _num(v: object, field: str = "value") -> float:
    """A finite number; ValueError when `v` is not a number at all, BadValue(field) when it is
    NaN or infinite ("NaN", "inf", "1e400")."""
    if type(v) is str or type(v) is int or type(v) is float:
        x = float(v)
        if math.isfinite(x):
            return x
        raise BadValue(field, v)
    raise ValueError(f"not a number: {v!r}")


def _opt_num(v: object, field: str = "value") -> float | None:
    return None if v is None or v == "" else _num(v, field)


def _price(v: object, field: str = "price") -> float:
    p = _num(v, field)
    if not 0.0 <= p <= 1.0:
        raise BadValue(field, v)
    return p


def _opt_price(v: object, field: str = "price") -> float | None:
    return None if v is None or v == "" else _price(v, field)


def _size(v: object, field: str = "size") -> float:
    s = _num(v, field)
    if not 0.0 <= s <= MAX_QTY:
        raise BadValue(field, v)
    return s


def _tick(v: object, field: str) -> float:
    t = _num(v, field)
    if not 0.0 < t < 1.0:
        raise BadValue(field, v)
    return t


def _opt_tick(v: object, field: str = "tick_size") -> float | None:
    return None if v is None or v == "" else _tick(v, field)


_MAX_MS = (2**63 - 1) // _MS     # the ns value must fit the int64 ring fields


def ms_timestamp(v: object) -> int:
    """A Polymarket ms timestamp: a decimal string ("1786728467006") or an int, fitting int64 ns."""
    if type(v) is int:
        t = v
    elif type(v) is str and v.isascii() and v.isdigit():
        t = int(v)
    else:
        raise ValueError(f"not a ms timestamp: {v!r}")
    if not 0 <= t <= _MAX_MS:
        raise ValueError(f"ms timestamp out of range: {v!r}")
    return t


def _str(v: object) -> str:
    if type(v) is not str:
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _opt_str(v: object) -> str:
    return "" if v is None else _str(v)


def _str_list(v: object) -> list[str]:
    if type(v) is not list or any(type(x) is not str for x in v):
        raise TypeError("expected a list of strings")
    return list(v)


def _opt_bool(v: object) -> bool | None:
    if v is None:
        return None
    if type(v) is not bool:
        raise TypeError(f"expected a boolean, got {v!r}")
    return v


_SIDE = {"BUY": "bid", "SELL": "ask"}
_TAKER = {"BUY": 1, "SELL": -1}


def _side(v: object) -> str:
    s = _SIDE.get(v) if type(v) is str else None
    if s is None:
        raise ValueError(f"side {v!r}")
    return s


def _levels(v: object, bids: bool) -> list[Level]:
    if type(v) is not list:
        raise TypeError("book side is not a list")
    out = []
    for lv in v:
        if type(lv) is not dict:
            raise TypeError("book level is not an object")
        out.append((_price(lv["price"]), _size(lv["size"])))
    # Sort on ingest: the venue sends sides worst-first, the docs say best-first.
    out.sort(key=lambda x: x[0], reverse=bids)
    return out


# ---------------------------------------------------------------------------------------------
# typed decoders
# ---------------------------------------------------------------------------------------------

def _book(d: dict, ts_recv_ns: int) -> Book:
    return Book(
        asset_id=_str(d["asset_id"]), market=_opt_str(d.get("market")),
        bids=_levels(d["bids"], True), asks=_levels(d["asks"], False),
        hash=_opt_str(d.get("hash")), timestamp_ms=ms_timestamp(d["timestamp"]),
        tick_size=_opt_tick(d.get("tick_size")),
        last_trade_price=_opt_price(d.get("last_trade_price"), "last_trade_price"),
        min_order_size=_opt_num(d.get("min_order_size"), "min_order_size"), neg_risk=_opt_bool(d.get("neg_risk")),
        ts_recv_ns=ts_recv_ns,
    )


def _change(e: dict, asset_id: str | None = None, hash_: str | None = None) -> Change:
    if type(e) is not dict:
        raise TypeError("price change entry is not an object")
    return Change(
        asset_id=_str(e["asset_id"]) if asset_id is None else asset_id,
        side=_side(e["side"]), price=_price(e["price"]), size=_size(e["size"]),
        hash=_opt_str(e.get("hash")) if hash_ is None else hash_,
        best_bid=_opt_price(e.get("best_bid"), "best_bid"), best_ask=_opt_price(e.get("best_ask"), "best_ask"),
    )


def _price_change(d: dict, ts_recv_ns: int) -> PriceChange:
    market = _opt_str(d.get("market"))
    ts = ms_timestamp(d["timestamp"])
    batch = d.get("price_changes")
    if batch is not None:
        if type(batch) is not list:
            raise TypeError("price_changes is not a list")
        return PriceChange(market, [_change(e) for e in batch], ts, False, ts_recv_ns)
    asset_id = _str(d["asset_id"])
    hash_ = _opt_str(d.get("hash"))
    changes = d.get("changes")
    if changes is not None:
        # 2024 docs shape: one asset, a list of {price, side, size}, one hash for the event.
        if type(changes) is not list:
            raise TypeError("changes is not a list")
        return PriceChange(market, [_change(e, asset_id, hash_) for e in changes], ts, True, ts_recv_ns)
    # 2024 capture shape: one level of one asset at the top level.
    return PriceChange(market, [_change(d, asset_id, hash_)], ts, True, ts_recv_ns)


def _last_trade(d: dict, ts_recv_ns: int) -> LastTrade:
    side = _TAKER.get(d["side"]) if type(d["side"]) is str else None
    if side is None:
        raise ValueError(f"side {d['side']!r}")
    fee = d.get("fee_rate_bps")
    tx = d.get("transaction_hash")
    return LastTrade(
        asset_id=_str(d["asset_id"]), market=_opt_str(d.get("market")),
        price=_price(d["price"]), size=_size(d["size"]), side=side,
        fee_rate_bps=0.0 if fee is None or fee == "" else _num(fee, "fee_rate_bps"),
        timestamp_ms=ms_timestamp(d["timestamp"]), transaction_hash=None if tx is None else _str(tx),
        ts_recv_ns=ts_recv_ns,
    )


def _tick_size_change(d: dict, ts_recv_ns: int) -> TickSizeChange:
    return TickSizeChange(
        asset_id=_str(d["asset_id"]), market=_opt_str(d.get("market")),
        old_tick_size=_tick(d["old_tick_size"], "old_tick_size"),
        new_tick_size=_tick(d["new_tick_size"], "new_tick_size"),
        timestamp_ms=ms_timestamp(d["timestamp"]), ts_recv_ns=ts_recv_ns,
    )


def _best_bid_ask(d: dict, ts_recv_ns: int) -> BestBidAsk:
    bb, ba = _opt_price(d.get("best_bid"), "best_bid"), _opt_price(d.get("best_ask"), "best_ask")
    if bb is not None and ba is not None and ba > 0.0 and bb > ba:     # 0: an empty side
        raise BadValue("crossed", (d["best_bid"], d["best_ask"]))
    return BestBidAsk(
        asset_id=_str(d["asset_id"]), market=_opt_str(d.get("market")), best_bid=bb, best_ask=ba,
        spread=_opt_num(d.get("spread"), "spread"), timestamp_ms=ms_timestamp(d["timestamp"]),
        ts_recv_ns=ts_recv_ns,
    )


def _id(v: object) -> str:
    # a non-empty string id (token, condition); "" would match nothing and is a malformed frame
    if type(v) is not str or not v:
        raise ValueError(f"expected a non-empty id string, got {v!r}")
    return v


def _ids(v: object) -> list[str]:
    ids = _str_list(v)
    for a in ids:
        _id(a)
    return ids


def _condition_id(d: dict) -> str:
    m, c = d.get("market"), d.get("condition_id")
    if m is None and c is None:
        raise KeyError("market")
    if m is not None and c is not None and m != c:
        raise ValueError(f"market {m!r} != condition_id {c!r}")
    return _id(m if m is not None else c)


def _token_ids(d: dict, required: bool) -> list[str]:
    a, c = d.get("assets_ids"), d.get("clob_token_ids")
    if a is None and c is None:
        if required:
            raise KeyError("assets_ids")
        return []
    ids = _ids(a if a is not None else c)
    if a is not None and c is not None and _ids(c) != ids:
        raise ValueError("assets_ids and clob_token_ids disagree")
    return ids


def _new_market(d: dict, ts_recv_ns: int) -> NewMarket:
    ids = _token_ids(d, True)
    if not ids:
        raise ValueError("new_market without token ids")
    outcomes = d.get("outcomes")
    outcomes = [] if outcomes is None else _str_list(outcomes)
    if outcomes and len(outcomes) != len(ids):
        raise ValueError(f"{len(outcomes)} outcomes for {len(ids)} token ids")
    return NewMarket(
        id=_opt_str(d.get("id")), market=_condition_id(d), slug=_opt_str(d.get("slug")),
        question=_opt_str(d.get("question")), asset_ids=ids, outcomes=outcomes,
        tick_size=_opt_tick(d.get("order_price_min_tick_size")), active=_opt_bool(d.get("active")),
        timestamp_ms=ms_timestamp(d["timestamp"]), ts_recv_ns=ts_recv_ns,
    )


def _market_resolved(d: dict, ts_recv_ns: int) -> MarketResolved:
    ids = _token_ids(d, False)
    win = _id(d["winning_asset_id"])
    if ids and win not in ids:
        raise ValueError(f"winning_asset_id {win!r} is not one of assets_ids")
    return MarketResolved(
        id=_opt_str(d.get("id")), market=_condition_id(d), asset_ids=ids,
        winning_asset_id=win, winning_outcome=_opt_str(d.get("winning_outcome")),
        timestamp_ms=ms_timestamp(d["timestamp"]), ts_recv_ns=ts_recv_ns,
    )


_BY_EVENT: dict[str, Callable[[dict, int], Msg]] = {
    "book": _book,
    "price_change": _price_change,
    "last_trade_price": _last_trade,
    "tick_size_change": _tick_size_change,
    "best_bid_ask": _best_bid_ask,
    "new_market": _new_market,
    "market_resolved": _market_resolved,
}


# ---------------------------------------------------------------------------------------------
# envelope
# ---------------------------------------------------------------------------------------------

def _decode_obj(d: dict, ts_recv_ns: int, frame: bytes | str) -> Msg:
    et = d.get("event_type")
    dec = _BY_EVENT.get(et) if type(et) is str else None
    if dec is None:
        return Unknown(et if type(et) is str else "", d, ts_recv_ns)
    try:
        return dec(d, ts_recv_ns)
    except FIELD_ERRORS as exc:
        raise field_error(et, exc, frame) from None


def parse_frame(frame: bytes | str, ts_recv_ns: int) -> list[Msg]:
    """Decode one market-channel frame into messages, in wire order; FrameError if malformed."""
    ctl = control_text(frame)
    if ctl is not None:
        return [Pong(ts_recv_ns)] if ctl == "PONG" else [Ping(ts_recv_ns)] if ctl == "PING" else []
    msg = load_json(frame)
    if type(msg) is dict:
        return [_decode_obj(msg, ts_recv_ns, frame)]
    if type(msg) is list:
        out = []
        for d in msg:
            if type(d) is not dict:
                raise fail("array element is not an object", frame)
            out.append(_decode_obj(d, ts_recv_ns, frame))
        return out
    raise fail("not a JSON object or array", frame)


def parse_rest_book(body: bytes | str, ts_recv_ns: int = 0) -> Book:
    """Decode a CLOB `GET /book?token_id=` answer (an empty side is a valid, empty list)."""
    d = load_json(body)
    if type(d) is not dict:
        raise fail("/book: not a JSON object", body)
    if "error" in d and "bids" not in d:
        raise fail(f"/book: error answer {d.get('error')!r}", body)
    try:
        return _book(d, ts_recv_ns)
    except FIELD_ERRORS as exc:
        raise field_error("/book", exc, body) from None


# ---------------------------------------------------------------------------------------------
# outgoing messages and records
# ---------------------------------------------------------------------------------------------

OPERATIONS = ("subscribe", "unsubscribe")


def _check_ids(asset_ids: list[str], what: str) -> list[str]:
    if isinstance(asset_ids, (str, bytes)) or not asset_ids or \
            any(type(a) is not str or not a for a in asset_ids):
        raise ValueError(f"{what} needs a non-empty list of token ids (strings)")
    return list(asset_ids)


def subscribe_msg(asset_ids: list[str]) -> bytes:
    """`{"assets_ids":[...],"type":"market","custom_feature_enabled":true}` (this key order): the
    FIRST message on a connection.

    `custom_feature_enabled` turns on `best_bid_ask`, `new_market` and `market_resolved`.
    """
    return orjson.dumps({"assets_ids": _check_ids(asset_ids, "subscribe_msg"), "type": "market",
                         "custom_feature_enabled": True})


def update_msg(asset_ids: list[str], operation: str) -> bytes:
    """`{"assets_ids":[...],"operation":"subscribe"|"unsubscribe","custom_feature_enabled":true}`
    (this key order): add tokens to, or drop them from, a live connection (docs.polymarket.com,
    market channel, "Subscribe to more assets")."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation {operation!r}; one of {', '.join(OPERATIONS)}")
    return orjson.dumps({"assets_ids": _check_ids(asset_ids, "update_msg"), "operation": operation,
                         "custom_feature_enabled": True})


def trade_record(t: LastTrade, token: int, window_start_ns: int) -> tuple:
    """A `last_trade_price` as an ipc.schema.POLY_TRADE tuple (token 0 = UP, 1 = DOWN)."""
    return (t.timestamp_ms * _MS, t.ts_recv_ns, 0, window_start_ns, token, t.side,
            t.price, t.size, t.fee_rate_bps)
