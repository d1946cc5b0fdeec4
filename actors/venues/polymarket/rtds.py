"""Polymarket RTDS (`wss://ws-live-data.polymarket.com`): one asset's Chainlink price, pure parsers.

`parse_frame(frame, ts_recv_ns)` returns the one envelope `Decoded(kind, symbol, recs)`
(actors.venues.envelope; `stream` is the payload symbol, '' when none) with `recs` a tuple of
ipc.schema.CHAINLINK tuples. Sans-I/O: bytes in, tuples out.

Invariants:
- The Chainlink stream is per asset: `ipc.names.chainlink_stream(SYMBOL)` ("btc/usd", "eth/usd",
  "sol/usd", "xrp/usd"); `subscribe_msg(stream)` and `parse_frame(..., symbol=stream)` take it
  (default "btc/usd").
- Subscribe with `subscribe_msg(stream)`: `{"action":"subscribe","subscriptions":[{"topic":
  "crypto_prices_chainlink","type":"*","filters":"{\\"symbol\\":\\"btc/usd\\"}"}]}` (the filter is
  a JSON object encoded as a string; the docs' shape, and what many public clients send). Keep the
  connection alive with the text frame `PING` every 5 s.
- kinds: 'price' (an `update`: one record), 'snapshot' (the `subscribe` dump sent after
  subscribing: one record per `payload.data[]` point, flagged FLAG_SNAPSHOT because they are
  backfill, possibly overlapping what an earlier connection delivered), 'other' (valid JSON that is
  not our topic/symbol: no records, the caller counts it; server-side filtering is not to be
  trusted), 'control' (`PONG`, `PING`, empty frames). Anything else raises FrameError.
- Records: ts_event_ns = payload.timestamp (the observation time, ms, on whole seconds) * 1e6;
  ts_sent_ns = the message's top-level `timestamp` (send time, ms) * 1e6, 0 if absent;
  price = int(full_accuracy_value) / 10**18 when it is an integer string (the Chainlink topic:
  value scaled by 1e18; the division is correctly rounded), else float(value). On every captured
  line the two are the same float (`value` is the float rendering of the same number). A price
  that is not in (0, MAX_PRICE] (0, negative, NaN, inf, a full_accuracy_value too big for a
  float) makes the frame `Rejected` with reason 'chainlink:price' (envelope).
- Symbols are matched case-insensitively against the configured stream; another asset's stream
  is 'other'. A snapshot must name its symbol: the Chainlink and the
  Binance sources use distinct symbol formats ("btc/usd" vs "btcusdt"), so a snapshot whose payload
  symbol is ours is accepted under our topic or "crypto_prices" (one public client shows the
  Chainlink dump tagged with the latter); one without a symbol is 'other'.
"""
from __future__ import annotations

import orjson

from ipc.schema import FLAG_SNAPSHOT

from actors.venues.envelope import (FIELD_ERRORS, MAX_PRICE, BadValue, Decoded, FrameError, control_text,
                                    fail, field_error, load_json)
from actors.venues.polymarket.clob import ms_timestamp

__all__ = ["FrameError", "Decoded", "parse_frame", "subscribe_msg", "PING", "PING_INTERVAL_SEC", "TOPIC", "SYMBOL"]

TOPIC = "crypto_prices_chainlink"
SYMBOL = "btc/usd"
PING = b"PING"
PING_INTERVAL_SEC = 5

_MS = 1_000_000
_E18 = 10 ** 18


def subscribe_msg(symbol: str = SYMBOL, topic: str = TOPIC) -> bytes:
    """The subscription to one Chainlink stream (`symbol`: names.chainlink_stream(SYMBOL))."""
    if type(symbol) is not str or not symbol:
        raise ValueError(f"subscribe_msg needs a stream name, not {symbol!r}")
    filters = orjson.dumps({"symbol": symbol}).decode()
    return orjson.dumps({"action": "subscribe",
                         "subscriptions": [{"topic": topic, "type": "*", "filters": filters}]})


def _ms(v: object) -> int:
    # RTDS sends ms as JSON numbers, occasionally as integral floats
    return ms_timestamp(int(v) if type(v) is float and v.is_integer() else v)


def _price(p: dict) -> float:
    fav = p.get("full_accuracy_value")
    if type(fav) is str and fav.isascii() and fav.isdigit():
        try:
            x = int(fav) / _E18
        except OverflowError:                 # more digits than a float holds: overflow
            raise BadValue("price", fav) from None
        raw = fav
    else:
        raw = p["value"]
        if type(raw) not in (int, float, str):
            raise ValueError(f"value {raw!r}")
        try:
            x = float(raw)
        except OverflowError:                 # a huge JSON integer
            raise BadValue("price", raw) from None
    if not 0.0 < x <= MAX_PRICE:              # False for NaN and inf too
        raise BadValue("price", raw)
    return x


def _point(d: object) -> tuple[int, float]:
    if type(d) is not dict:
        raise TypeError("snapshot point is not an object")
    return _ms(d["timestamp"]), _price(d)


_OTHER = Decoded("other", "", ())
_CONTROL = Decoded("control", "", ())


def parse_frame(frame: bytes | str, ts_recv_ns: int, symbol: str = SYMBOL,
                topic: str = TOPIC) -> Decoded:
    """Decode one RTDS frame; records only for `topic`/`symbol`. FrameError if malformed."""
    if control_text(frame) is not None:
        return _CONTROL
    msg = load_json(frame)
    if type(msg) is not dict:
        raise fail("not a JSON object", frame)

    typ = msg.get("type")
    t = msg.get("topic")
    payload = msg.get("payload")
    if type(payload) is not dict or typ not in ("update", "subscribe"):
        return _OTHER        # acks, errors, other message types: nothing to record
    sym = payload.get("symbol")
    sym = sym if type(sym) is str else ""
    want = symbol.lower()
    try:
        sent = msg.get("timestamp")
        ts_sent_ns = 0 if sent is None else _ms(sent) * _MS
        if typ == "update":
            if t != topic or sym.lower() != want:
                return Decoded("other", sym, ())
            obs = _ms(payload["timestamp"])
            return Decoded("price", sym, ((obs * _MS, ts_recv_ns, 0, ts_sent_ns, _price(payload)),))
        # typ == "subscribe": the dump after subscribing
        if sym.lower() != want or t not in (topic, "crypto_prices"):
            return Decoded("other", sym, ())
        data = payload["data"]
        if type(data) is not list:
            raise TypeError("payload.data is not a list")
        recs = tuple((obs * _MS, ts_recv_ns, FLAG_SNAPSHOT, ts_sent_ns, px)
                     for obs, px in map(_point, data))
        return Decoded("snapshot", sym, recs)
    except BadValue as exc:                   # one reason for every form of the Chainlink price
        raise field_error("chainlink", exc, frame) from None
    except FIELD_ERRORS as exc:
        raise field_error(f"{t}/{typ}", exc, frame) from None
