"""Binance USD-M futures and spot: stream names, routes, subscribe messages and pure frame parsers.

`parse_frame(frame, ts_recv_ns)` turns one WebSocket frame into a `Decoded(kind, stream, (rec,))`
(actors.venues.envelope).
It is sans-I/O: bytes in, a record tuple out; no sockets, clocks, logging or global state beyond a
bounded memo of stream names.

Invariants:
- Everything Binance-specific lives here; callers dispatch on `Decoded.kind`, never on the venue.
- For a data kind, `recs` is a 1-tuple of a plain tuple in the exact field order of `ipc.schema.DTYPES[kind]`, so
  `ring[i] = rec` stores it in one assignment. `flags` is 0, or `FLAG_SNAPSHOT` on a depth
  record that is a whole top-N book.
- Times are integer epoch ns (Binance ms * 1_000_000). An exchange time the venue does not send
  (spot bookTicker, spot partial depth) is 0, never the receive time.
- Only the keys a record needs are read; any other key is ignored, because Binance adds fields
  without notice (`nq`, `st`, `ps`, `X`, `M`, ...).
- Prices and quantities are `float()` of Binance's decimal strings. A required key that is missing,
  or a value that does not parse, raises `FrameError`; nothing is defaulted silently except the
  fields documented as optional (mark `i`/`P`/`r` -> NaN, `T`/`E` -> 0, spot `pu` -> -1).
- A value that parses but no venue sends raises `Rejected` (reason '<kind>:<field>', envelope):
  a price outside (0, MAX_PRICE] (0, negative, NaN, inf, "1e400"), a quantity outside
  (0, MAX_QTY] (trades, quotes, book snapshots) or [0, MAX_QTY] (a depth diff, where 0 removes a
  level; kline volumes), a boolean (`m`, `x`) that is not a JSON boolean (`"false"` would flip
  the side), a crossed quote or book snapshot (bid > ask; bid == ask passes: a locked book is not
  impossible mid-match, though no capture shows one), a depth side that is not strictly monotonic,
  a kline whose high/low do not bound its open/close or whose taker-buy volume exceeds its
  volume, a mark with a funding rate outside [-1, 1]. Depth diffs are NOT checked for crossing:
  a diff is a list of changed levels, not a book, and the captures show diffs whose best changed
  bid is above their best changed ask (a removed level next to a new one).
- Depth levels are best-first (bids descending, asks ascending) and hold at most `MAX_LEVELS` per
  side, zero-padded, with `n_bids`/`n_asks` levels used. Each side arrives monotonic but not always
  best-first (futures depth sends bids worst-first), so a side is reversed, never sorted. A diff with more
  than `MAX_LEVELS` levels on a side keeps the `MAX_LEVELS` nearest the touch and loses the rest.
- The kind of a frame comes from its combined-stream name, not from `e`: spot bookTicker and spot
  partial depth carry no `e`. A raw (non-combined) frame is recognised by `e`, or by shape for the
  two spot events without one; a raw `depthUpdate` cannot say whether it is a partial book or a diff,
  so it decodes as a diff (flags 0).
- `serverShutdown` (spot: "sent when the server is about to shutdown, resulting in
  disconnection"; `{"e":"serverShutdown","E":<ms>}`, the shape NautilusTrader's
  BinanceSpotServerShutdownMsg decodes) decodes to `Decoded("shutdown", stream, ())`, whether it
  comes raw, inside a combined-stream envelope (whatever its `stream`), or in the WebSocket-API
  form `{"event":{"e":"serverShutdown",...}}`: the feed shell starts a make-before-break rotation
  of that connection (actors/feed/shell.py ROTATE_KINDS).
- Klines decode the same on spot and futures (`<sym>@kline_<tf>`): spot klines are the candles
  the hourly and daily up/down markets settle on.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import orjson

from ipc.names import TIMEFRAME_SEC
from ipc.schema import FLAG_SNAPSHOT, MAX_LEVELS

from actors.venues.envelope import (FIELD_ERRORS, MAX_PRICE, MAX_QTY, BadValue, Decoded, FrameError,
                                    fail, field_error)

__all__ = [
    "FrameError", "Decoded", "parse_frame", "stream_kind", "check_kline",
    "FUTURES_MARKET_ROUTE", "FUTURES_PUBLIC_ROUTE", "SPOT_ROUTE",
    "futures_route", "combined_url", "subscribe_msg", "unsubscribe_msg",
]

SHUTDOWN_EVENT = "serverShutdown"
FUTURES_MARKET_ROUTE = "/market/stream"
FUTURES_PUBLIC_ROUTE = "/public/stream"
SPOT_ROUTE = "/stream"

_MS = 1_000_000
_NAN = float("nan")
_ZEROS = (0.0,) * MAX_LEVELS
# a kline's quote volume is price times volume: its bound is theirs
_MAX_NOTIONAL = MAX_PRICE * MAX_QTY
# the first bid of a strictly descending side may be MAX_PRICE itself
_ABOVE_MAX_PRICE = MAX_PRICE * 2.0
# the smallest float above 0: the lower bound of a value that must be positive (a book level's
# quantity, an optional price that was sent)
_MIN_POSITIVE = 5e-324
# ---------------------------------------------------------------------------------------------
# typed decoders: data dict -> record tuple (field order of ipc.schema.DTYPES[kind])
# ---------------------------------------------------------------------------------------------

def _trade_values(d: dict) -> tuple[float, float, int]:
    """(price, qty, side) of a trade; BadValue when one is insane."""
    p = float(d["p"])
    q = float(d["q"])
    # the chained comparisons are False for NaN, so they reject it too
    if not 0.0 < p <= MAX_PRICE:
        raise BadValue("price", d["p"])
    if not 0.0 < q <= MAX_QTY:
        raise BadValue("qty", d["q"])
    m = d["m"]
    # m: the buyer is the maker, so the aggressor sold. Only a JSON boolean: "false" is truthy.
    if m is True:
        return p, q, -1
    if m is False:
        return p, q, 1
    raise BadValue("m", m)


def _trade_agg(d: dict, ts_recv_ns: int) -> tuple:
    p, q, side = _trade_values(d)
    return (int(d["T"]) * _MS, ts_recv_ns, 0, int(d["a"]), int(d["f"]), int(d["l"]), p, q, side)


def _trade_plain(d: dict, ts_recv_ns: int) -> tuple:
    t = int(d["t"])
    p, q, side = _trade_values(d)
    # A plain trade is one fill: it is its own first and last id, so id continuity checks work
    # the same way on both trade streams.
    return (int(d["T"]) * _MS, ts_recv_ns, 0, t, t, t, p, q, side)


def _quote(d: dict, ts_recv_ns: int) -> tuple:
    # Futures send T (match time) and E; spot sends neither.
    t = d.get("T") or d.get("E") or 0
    b, bq, a, aq = float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"])
    if not 0.0 < b <= MAX_PRICE:
        raise BadValue("bid", d["b"])
    if not 0.0 < a <= MAX_PRICE:
        raise BadValue("ask", d["a"])
    if not 0.0 < bq <= MAX_QTY:
        raise BadValue("bid_qty", d["B"])
    if not 0.0 < aq <= MAX_QTY:
        raise BadValue("ask_qty", d["A"])
    if b > a:
        raise BadValue("crossed", (d["b"], d["a"]))
    return (int(t) * _MS, ts_recv_ns, 0, int(d["u"]), b, bq, a, aq)


def _opt_float(d: dict, key: str, field: str, lo: float, hi: float) -> float:
    # The index, the settlement estimate and funding may come absent or as "": NaN says "not
    # given", where 0 would read as a real price or rate. A value sent must lie in [lo, hi]
    # ("NaN" sent is insane, not "not given").
    v = d.get(key)
    if v is None or v == "":
        return _NAN
    x = float(v)
    if not lo <= x <= hi:
        raise BadValue(field, v)
    return x


def _mark(d: dict, ts_recv_ns: int) -> tuple:
    p = float(d["p"])
    if not 0.0 < p <= MAX_PRICE:
        raise BadValue("price", d["p"])
    return (
        int(d["E"]) * _MS, ts_recv_ns, 0,
        p, _opt_float(d, "i", "index", _MIN_POSITIVE, MAX_PRICE),
        _opt_float(d, "P", "est_settle", _MIN_POSITIVE, MAX_PRICE),
        # funding is a small signed rate (capped near +-3 % by the venue): a unit bound is generous
        _opt_float(d, "r", "funding_rate", -1.0, 1.0),
        int(d.get("T") or 0) * _MS,
    )


def _liquidation(d: dict, ts_recv_ns: int) -> tuple:
    o = d["o"]
    s = o["S"]
    if s == "BUY":
        side = 1
    elif s == "SELL":
        side = -1
    else:
        raise ValueError(f"order side {s!r}")
    p, ap, q, z = float(o["p"]), float(o["ap"]), float(o["q"]), float(o["z"])
    if not 0.0 < p <= MAX_PRICE:
        raise BadValue("price", o["p"])
    if not 0.0 <= ap <= MAX_PRICE:          # 0: nothing filled yet
        raise BadValue("avg_price", o["ap"])
    if not 0.0 < q <= MAX_QTY:
        raise BadValue("qty", o["q"])
    if not 0.0 <= z <= MAX_QTY:
        raise BadValue("filled_qty", o["z"])
    return (int(d["E"]) * _MS, ts_recv_ns, 0, int(o["T"]) * _MS, p, ap, q, z, side)


def _bad_level(px: list[float]) -> None:
    """Raise the BadValue of a side that failed the check: an insane price if it holds one (which
    may also have misled the worst-first test), else the order of its levels."""
    for x in px:
        if not 0.0 < x <= MAX_PRICE:
            raise BadValue("price", x)
    raise BadValue("level_order", px[:3])


def _levels(levels: list, bids: bool, min_qty: float) -> tuple[int, list, list]:
    """(n, prices, qtys) of up to MAX_LEVELS levels best-first, both lists padded to MAX_LEVELS.
    BadValue unless prices lie in (0, MAX_PRICE], strictly monotonic best-first, and quantities
    in [min_qty, MAX_QTY] (min_qty 0 admits the removals of a diff; a book's levels are > 0)."""
    if type(levels) is not list:
        raise TypeError(f"depth side is {type(levels).__name__}, not a list of levels")
    n = len(levels)
    if n > 1:
        first = float(levels[0][0])
        last = float(levels[-1][0])
        worst_first = first < last if bids else first > last
    else:
        worst_first = False
    if worst_first:
        sel = levels[: -MAX_LEVELS - 1 : -1] if n > MAX_LEVELS else levels[::-1]
    else:
        sel = levels[:MAX_LEVELS] if n > MAX_LEVELS else levels
    k = len(sel)
    px = [float(lv[0]) for lv in sel]
    qty = [float(lv[1]) for lv in sel]
    if bids:
        prev = _ABOVE_MAX_PRICE
        for x in px:
            if not 0.0 < x < prev:
                _bad_level(px)
            prev = x
    else:
        prev = 0.0
        for x in px:
            if not prev < x <= MAX_PRICE:
                _bad_level(px)
            prev = x
    if min_qty > 0.0:
        for x in qty:
            if not 0.0 < x <= MAX_QTY:
                raise BadValue("qty", x)
    else:
        for x in qty:
            if not 0.0 <= x <= MAX_QTY:
                raise BadValue("qty", x)
    if k < MAX_LEVELS:
        px.extend(_ZEROS[k:])
        qty.extend(_ZEROS[k:])
    return k, px, qty


def _depth_record(ts_event_ns: int, ts_recv_ns: int, flags: int, u: int, first: int, prev: int,
                  bids: list, asks: list) -> tuple:
    book = flags & FLAG_SNAPSHOT
    min_qty = _MIN_POSITIVE if book else 0.0
    nb, bpx, bqty = _levels(bids, True, min_qty)
    na, apx, aqty = _levels(asks, False, min_qty)
    if book and nb and na and bpx[0] > apx[0]:
        raise BadValue("crossed", (bpx[0], apx[0]))
    return (ts_event_ns, ts_recv_ns, flags, u, first, prev, nb, na, bpx, bqty, apx, aqty)


def _depth_snapshot_form(d: dict, ts_recv_ns: int) -> tuple:
    # Spot partial depth (and the REST snapshot) is {lastUpdateId, bids, asks}: no event or update
    # range. The REST futures snapshot adds E/T, so use them when present.
    t = d.get("T") or d.get("E") or 0
    return _depth_record(int(t) * _MS, ts_recv_ns, FLAG_SNAPSHOT, int(d["lastUpdateId"]), -1, -1,
                         d["bids"], d["asks"])


def _depth_update_form(d: dict, ts_recv_ns: int, flags: int) -> tuple:
    t = d.get("T") or d.get("E") or 0
    pu = d.get("pu")
    return _depth_record(int(t) * _MS, ts_recv_ns, flags, int(d["u"]), int(d["U"]),
                         -1 if pu is None else int(pu), d["b"], d["a"])


def _depth_partial(d: dict, ts_recv_ns: int) -> tuple:
    if "lastUpdateId" in d:
        return _depth_snapshot_form(d, ts_recv_ns)
    return _depth_update_form(d, ts_recv_ns, FLAG_SNAPSHOT)


def _depth_diff(d: dict, ts_recv_ns: int) -> tuple:
    return _depth_update_form(d, ts_recv_ns, 0)


def check_kline(o: float, h: float, lo: float, c: float, v: float, qv: float, bv: float, n: int) -> None:
    """BadValue unless a kline's values are sane: prices in (0, MAX_PRICE] with the high and low
    bounding the open and close, volumes in [0, MAX_QTY] (quote volume: [0, MAX_PRICE·MAX_QTY]),
    taker-buy volume at most the volume, trades >= 0. Shared by the stream and REST klines."""
    for x in (o, h, lo, c):
        if not 0.0 < x <= MAX_PRICE:
            raise BadValue("price", x)
    if not lo <= min(o, c) <= max(o, c) <= h:
        raise BadValue("ohlc", (o, h, lo, c))
    if not 0.0 <= v <= MAX_QTY:
        raise BadValue("volume", v)
    if not 0.0 <= qv <= _MAX_NOTIONAL:
        raise BadValue("quote_volume", qv)
    if not 0.0 <= bv <= v:
        raise BadValue("taker_buy_volume", bv)
    if n < 0:
        raise BadValue("trades", n)


def _kline(d: dict, ts_recv_ns: int) -> tuple:
    k = d["k"]
    t = int(k["t"])
    t_close = int(k["T"])
    tf = TIMEFRAME_SEC.get(k["i"])
    if tf is None:
        # "1M" is a calendar month: its length is whatever this kline spans (close is open + len - 1ms).
        tf = (t_close - t + 1) // 1000
        if tf <= 0:
            raise ValueError(f"kline interval {k['i']!r} spans {t}..{t_close}")
    o, h, lo, c = float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"])
    v, qv, bv = float(k["v"]), float(k["q"]), float(k["V"])
    n = int(k["n"])
    check_kline(o, h, lo, c, v, qv, bv, n)
    x = k["x"]
    if x is not True and x is not False:
        raise BadValue("closed", x)
    return (
        int(d["E"]) * _MS, ts_recv_ns, 0,
        t * _MS, t_close * _MS, tf, 1 if x else 0, o, h, lo, c, v, qv, bv, n,
    )


Decoder = Callable[[dict, int], tuple]

# Dispatch on the base of the stream type (the text after "<symbol>@", before any "@<speed>").
_BY_STREAM: dict[str, tuple[str, Decoder]] = {
    "aggTrade": ("trade", _trade_agg),
    "trade": ("trade", _trade_plain),
    "bookTicker": ("quote", _quote),
    "markPrice": ("mark", _mark),
    "forceOrder": ("liquidation", _liquidation),
    "depth": ("depth", _depth_diff),
    "depth5": ("depth", _depth_partial),
    "depth10": ("depth", _depth_partial),
    "depth20": ("depth", _depth_partial),
}
_KLINE = ("kline", _kline)

# Raw (non-combined) frames: dispatch on the event type.
_BY_EVENT: dict[str, tuple[str, Decoder]] = {
    "aggTrade": _BY_STREAM["aggTrade"],
    "trade": _BY_STREAM["trade"],
    "bookTicker": _BY_STREAM["bookTicker"],
    "markPriceUpdate": _BY_STREAM["markPrice"],
    "forceOrder": _BY_STREAM["forceOrder"],
    "depthUpdate": _BY_STREAM["depth"],
    "kline": _KLINE,
}


def _is_speed(s: str) -> bool:
    if s.endswith("ms"):
        return s[:-2].isdigit()
    return s.endswith("s") and s[:-1].isdigit()


@lru_cache(maxsize=1024)  # a connection carries a handful of stream names; bound it all the same
def _resolve(stream_name: str) -> tuple[str, Decoder] | None:
    # "!bookTicker", "!forceOrder@arr", "!markPrice@arr": all-market streams carry other symbols
    # (and arrays) that a per-symbol ring cannot hold, so they stay unknown.
    sym, at, typ = stream_name.partition("@")
    if not at or not sym or sym.startswith("!"):
        return None
    base, at, suffix = typ.partition("@")
    if base.startswith("kline_"):
        # The spot "@+08:00" suffix moves the bucket boundaries; the event shape is the same.
        return _KLINE if len(base) > 6 else None
    entry = _BY_STREAM.get(base)
    if entry is None or (at and not _is_speed(suffix)):
        return None
    return entry


def stream_kind(stream_name: str) -> str | None:
    """Record kind of a combined-stream name ('btcusdt@aggTrade' -> 'trade'), None if unknown."""
    entry = _resolve(stream_name)
    return None if entry is None else entry[0]


# ---------------------------------------------------------------------------------------------
# envelope
# ---------------------------------------------------------------------------------------------

def parse_frame(frame: bytes | str, ts_recv_ns: int) -> Decoded:
    """Decode one WebSocket frame; raise FrameError if it is malformed."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise fail(f"not JSON ({exc})", frame) from None
    if type(msg) is not dict:
        raise fail("not a JSON object", frame)

    stream = msg.get("stream")
    if stream is not None:
        if type(stream) is not str:
            raise fail("combined-stream envelope with a non-string 'stream'", frame)
        entry = _resolve(stream)
        if entry is None:
            # Checked before 'data': an unsupported stream (e.g. "!markPrice@arr", whose data is a
            # list) is the caller's to count, not a malformed frame.
            data = msg.get("data")
            if type(data) is dict and data.get("e") == SHUTDOWN_EVENT:
                return Decoded("shutdown", stream, ())
            return Decoded("unknown", stream, ())
        data = msg.get("data")
        if type(data) is not dict:
            raise fail(f"{stream}: envelope without an object 'data'", frame)
        if data.get("e") == SHUTDOWN_EVENT:
            return Decoded("shutdown", stream, ())
    else:
        data = msg
        stream = ""
        e = msg.get("e")
        if e is not None:
            entry = _BY_EVENT.get(e) if type(e) is str else None
            if entry is None:
                return Decoded("shutdown" if e == SHUTDOWN_EVENT else "unknown", "", ())
        elif "result" in msg and "id" in msg:
            return Decoded("ack", "", (msg,))
        elif type(msg.get("event")) is dict and msg["event"].get("e") == SHUTDOWN_EVENT:
            return Decoded("shutdown", "", ())    # the WebSocket-API form
        elif "error" in msg or ("code" in msg and "msg" in msg):
            return Decoded("error", "", (msg,))
        elif "lastUpdateId" in msg:
            entry = _BY_STREAM["depth20"]     # spot partial depth on a raw stream has no "e"
        elif "u" in msg and "B" in msg and "A" in msg:
            entry = _BY_STREAM["bookTicker"]  # so has spot bookTicker
        else:
            return Decoded("unknown", "", ())

    kind, decode = entry
    try:
        rec = decode(data, ts_recv_ns)
    except FIELD_ERRORS as exc:
        raise field_error(kind, exc, frame) from None
    return Decoded(kind, stream, (rec,))


# ---------------------------------------------------------------------------------------------
# connection helpers
# ---------------------------------------------------------------------------------------------

_PUBLIC_BASES = frozenset(("bookTicker", "depth", "depth5", "depth10", "depth20"))
_MARKET_BASES = frozenset(("aggTrade", "trade", "markPrice", "forceOrder"))


def max_silence_sec(stream: str, settings, quiet: dict[str, float | None]) -> float | None:
    """Longest normal silence of a stream (s); `quiet` gives it per record kind (None: may be
    silent for minutes). bookTicker follows FEED_STALE_SEC; trades get three times that, since BTC
    trades every few ms and a symbol that quiet is not what we collect."""
    kind = stream_kind(stream)
    if kind == "quote":
        return settings.venues.feed_stale_sec
    if kind == "trade":
        return 3 * settings.venues.feed_stale_sec
    return quiet.get(kind)


def futures_route(stream_name: str) -> str:
    """The USD-M route a stream must be subscribed on.

    A stream sent to the wrong route is acked and then never delivers, so an unknown stream is a
    ValueError here rather than a guess.
    """
    typ = stream_name.partition("@")[2]
    base = typ.partition("@")[0]
    if base in _PUBLIC_BASES:
        return FUTURES_PUBLIC_ROUTE
    if base in _MARKET_BASES or (base.startswith("kline_") and len(base) > 6):
        return FUTURES_MARKET_ROUTE
    raise ValueError(f"no known USD-M route for stream {stream_name!r}")


def combined_url(base_ws: str, route: str, streams: list[str]) -> str:
    """`<base_ws><route>?streams=a/b/c`."""
    if not streams:
        raise ValueError("combined_url needs at least one stream")
    return f"{base_ws.rstrip('/')}{route}?streams={'/'.join(streams)}"


def _method_msg(method: str, streams: list[str], req_id: int) -> bytes:
    return orjson.dumps({"method": method, "params": list(streams), "id": req_id})


def subscribe_msg(streams: list[str], req_id: int) -> bytes:
    """The live SUBSCRIBE request; Binance answers {"result": null, "id": req_id}."""
    return _method_msg("SUBSCRIBE", streams, req_id)


def unsubscribe_msg(streams: list[str], req_id: int) -> bytes:
    """The live UNSUBSCRIBE request."""
    return _method_msg("UNSUBSCRIBE", streams, req_id)
