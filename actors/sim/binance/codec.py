"""Binance USD-M futures protocol for the built-in exchange: frame encoders, routes, methods, REST.

Pure: no sockets here (actors/sim/server.py does the I/O), so every rule is unit-testable.

What the live venue does and this module reproduces (DESIGN.md "Venue facts that bite"):
- routes (since 2026): `/public/...` carries bookTicker and depth*, `/market/...` carries aggTrade,
  markPrice, forceOrder, kline_*, tickers. Each route has `/ws[/<s1>/<s2>...]` (raw payloads) and
  `/stream?streams=<s1>/<s2>` (combined envelope `{"stream":..,"data":..}`). A stream requested
  on the wrong route is acked and then silent. The legacy unrouted `/ws` and `/stream` were retired
  on 2026-04-23: here any other path is a 404;
- frames: exact key set and order of the live frames, compact JSON, prices as strings with the
  symbol's pricePrecision decimals ("65000.10"), quantities with quantityPrecision ("0.012");
  aggTrade carries the newer `nq` key (consumers must ignore unknown keys);
- live methods over the socket: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY /
  GET_PROPERTY with `{"result":..,"id":..}` acks and `{"error":{"code":..,"msg":..},"id":..}`
  errors (code 0 unknown property, 1 bad value type, 2 invalid request, 3 invalid JSON);
- at most 10 incoming messages per second per connection (ping/pong frames count), else dropped;
- REST on the same port: actors/sim/binance/rest_api.py (weights, limits, klines, depth, premiumIndex); the
  `rest()` helper here answers only ping/time without limits.

Unverified details, chosen and kept consistent: the error message texts beyond the documented
ones; an invalid stream name in the URL is accepted and silent (in SUBSCRIBE it is an error);
the 200-streams-per-connection limit answers `Invalid request: too many streams`.
"""
from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from urllib.parse import parse_qs

import orjson

from actors.sim.market import AggTrade, BookTicker, Instrument

PUBLIC = "public"
MARKET = "market"
ROUTES = (PUBLIC, MARKET)

MAX_STREAMS = 200            # streams per connection
MSG_LIMIT = 10               # incoming messages per MSG_WINDOW_SEC (futures; spot is 5)
MSG_WINDOW_SEC = 1.0
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

# stream type (after "<symbol>@") -> route
_SPEEDS = r"(@(0ms|100ms|250ms|500ms))?"
_STREAM_TYPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"bookTicker"), PUBLIC),
    (re.compile(r"depth" + _SPEEDS), PUBLIC),
    (re.compile(r"depth(5|10|20)" + _SPEEDS), PUBLIC),
    (re.compile(r"aggTrade"), MARKET),
    (re.compile(r"trade"), MARKET),
    (re.compile(r"markPrice(@1s)?"), MARKET),
    (re.compile(r"forceOrder"), MARKET),
    (re.compile(r"kline_(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)"), MARKET),
    (re.compile(r"continuousKline_(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)"), MARKET),
    (re.compile(r"(mini)?[tT]icker"), MARKET),
    (re.compile(r"compositeIndex|contractInfo|assetIndex"), MARKET),
]
_ALL_MARKET = {
    "!bookTicker": PUBLIC,
    "!forceOrder@arr": MARKET, "!markPrice@arr": MARKET, "!markPrice@arr@1s": MARKET,
    "!miniTicker@arr": MARKET, "!ticker@arr": MARKET, "!contractInfo": MARKET,
}
_SYMBOL = re.compile(r"[a-z0-9_]{2,40}")


def stream_route(name: str) -> str | None:
    """The route ("public"/"market") that delivers stream `name`, or None if it is not a stream."""
    if name in _ALL_MARKET:
        return _ALL_MARKET[name]
    sym, sep, kind = name.partition("@")
    if not sep or not _SYMBOL.fullmatch(sym):
        return None
    for pat, route in _STREAM_TYPES:
        if pat.fullmatch(kind):
            return route
    return None


# --- frames ----------------------------------------------------------------------------------
def fmt_units(v: int, decimals: int) -> str:
    """Integer units of 10**-decimals as a fixed-point decimal string (v >= 0)."""
    if decimals <= 0:
        return str(v)
    s = str(v)
    if len(s) <= decimals:
        s = "0" * (decimals - len(s) + 1) + s
    return f"{s[:-decimals]}.{s[-decimals:]}"


class Codec:
    """What every Binance frame encoder knows of its instrument."""

    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.agg_stream = f"{instrument.symbol.lower()}@aggTrade"
        self.book_stream = f"{instrument.symbol.lower()}@bookTicker"
        self._pp = instrument.price_precision
        self._qp = instrument.qty_precision


class FuturesCodec(Codec):
    """Encodes market events as the exact live USD-M frames for one symbol."""

    def agg_trade(self, ev: AggTrade) -> str:
        """Raw aggTrade payload: e,E,a,s,p,q,nq,f,l,T,m (`nq` equals `q`: no RPI orders here)."""
        q = fmt_units(ev.qty, self._qp)
        return (f'{{"e":"aggTrade","E":{ev.E},"a":{ev.a},"s":"{self.symbol}",'
                f'"p":"{fmt_units(ev.price, self._pp)}","q":"{q}","nq":"{q}",'
                f'"f":{ev.f},"l":{ev.l},"T":{ev.T},"m":{"true" if ev.m else "false"}}}')

    def book_ticker(self, ev: BookTicker) -> str:
        """Raw bookTicker payload: e,u,s,b,B,a,A,T,E."""
        pp, qp = self._pp, self._qp
        return (f'{{"e":"bookTicker","u":{ev.u},"s":"{self.symbol}",'
                f'"b":"{fmt_units(ev.bid, pp)}","B":"{fmt_units(ev.bid_qty, qp)}",'
                f'"a":"{fmt_units(ev.ask, pp)}","A":"{fmt_units(ev.ask_qty, qp)}",'
                f'"T":{ev.T},"E":{ev.E}}}')


def combined(stream: str, payload: str) -> str:
    """The combined-stream envelope."""
    return f'{{"stream":"{stream}","data":{payload}}}'


# --- paths -----------------------------------------------------------------------------------
def parse_ws_path(path: str) -> tuple[str, bool, list[str]] | None:
    """`/public/stream?streams=a/b` -> ("public", True, ["a", "b"]); `/market/ws/a` -> (.., False, [a]).

    None for anything that is not a routed stream endpoint (the server answers 404).
    """
    p, _, query = path.partition("?")
    parts = p.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in ROUTES:
        return None
    route, mode, rest = parts[1], parts[2], parts[3:]
    if mode == "ws":
        streams = [s for s in rest if s]
        return route, False, _dedup(streams)
    if mode == "stream" and not [s for s in rest if s]:
        qs = parse_qs(query, keep_blank_values=True)
        streams = [s for v in qs.get("streams", []) for s in v.split("/") if s]
        return route, True, _dedup(streams)
    return None


def _dedup(streams: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for s in streams:
        seen.setdefault(s, None)
    return list(seen)


# --- sessions --------------------------------------------------------------------------------
def _error(code: int, msg: str, rid) -> str:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": rid}).decode()


def _result(result, rid) -> str:
    return orjson.dumps({"result": result, "id": rid}).decode()


def _valid_id(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 64


class FuturesSession:
    """Per-connection protocol state: route, combined flag, subscriptions, incoming-rate limit.

    The spot session (actors/sim/binance/spot_market.py) subclasses it: `msg_limit` and `valid_stream` differ.
    """

    msg_limit = MSG_LIMIT

    def __init__(self, route: str, combined: bool, streams: list[str]):
        self.route = route
        self.combined = combined
        self.streams: list[str] = list(streams[:MAX_STREAMS])
        self._recv_times: deque[float] = deque(maxlen=self.msg_limit + 1)

    def valid_stream(self, name: str) -> bool:
        """Whether SUBSCRIBE accepts `name`."""
        return stream_route(name) is not None

    def delivers(self, stream: str) -> bool:
        """Whether `stream` is subscribed and is pushed on this connection's route."""
        return stream in self.streams and stream_route(stream) == self.route

    def delivered_streams(self) -> list[str]:
        return [s for s in self.streams if stream_route(s) == self.route]

    def note_incoming(self, now_s: float) -> bool:
        """Count one incoming message (text, binary, ping or pong). False: over the limit."""
        dq = self._recv_times
        dq.append(now_s)
        return not (len(dq) > self.msg_limit and now_s - dq[0] < MSG_WINDOW_SEC)

    def handle(self, text: str | bytes) -> str:
        """Apply one client message; return the reply frame (JSON text)."""
        try:
            req = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                msg = f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}"
            else:
                msg = "Invalid JSON: invalid UTF-8"
            return _error(3, msg, None)
        if not isinstance(req, dict):
            return _error(2, "Invalid request: expected a JSON object", None)
        rid = req.get("id")
        if "id" in req and not _valid_id(rid):
            return _error(2, "Invalid request: request ID must be an unsigned integer", None)
        if "method" not in req:
            return _error(2, "Invalid request: missing field `method`", rid)
        method = req["method"]
        if method not in METHODS:
            variants = ", ".join(f"`{m}`" for m in METHODS)
            return _error(2, f"Invalid request: unknown variant `{method}`, expected one of "
                             f"{variants}", rid)
        if "id" not in req:
            return _error(2, "Invalid request: missing field `id`", None)
        params = req.get("params", [])
        if not isinstance(params, list):
            return _error(2, "Invalid request: params must be an array", rid)

        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(s, str) for s in params):
                return _error(2, "Invalid request: stream name must be a string", rid)
            if not all(self.valid_stream(s) for s in params):
                return _error(2, "Invalid request: invalid stream", rid)
            if method == "SUBSCRIBE":
                new = [s for s in _dedup(params) if s not in self.streams]
                if len(self.streams) + len(new) > MAX_STREAMS:
                    return _error(2, "Invalid request: too many streams", rid)
                self.streams.extend(new)
            else:
                drop = set(params)
                self.streams = [s for s in self.streams if s not in drop]
            return _result(None, rid)
        if method == "LIST_SUBSCRIPTIONS":
            return _result(list(self.streams), rid)
        # SET_PROPERTY / GET_PROPERTY
        if not params or not isinstance(params[0], str):
            return _error(2, "Invalid request: property name must be a string", rid)
        if params[0] != "combined":
            return _error(0, "Unknown property", rid)
        if method == "GET_PROPERTY":
            if len(params) != 1:
                return _error(2, "Invalid request: too many parameters", rid)
            return _result(self.combined, rid)
        if len(params) != 2:
            return _error(2, "Invalid request: too many parameters" if len(params) > 2
                          else "Invalid request: missing property value", rid)
        if not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", rid)
        self.combined = params[1]
        return _result(None, rid)


# --- REST ------------------------------------------------------------------------------------
RestHandler = Callable[[dict[str, list[str]], int], tuple[int, str]]


def _ping(query, now_ms: int) -> tuple[int, str]:
    return 200, "{}"


def _time(query, now_ms: int) -> tuple[int, str]:
    return 200, f'{{"serverTime":{now_ms}}}'


# path -> handler(query, now_ms) -> (status, JSON body): the weightless basics. The server uses
# actors/sim/binance/rest_api.py, which has every route with weights and limits.
REST_ROUTES: dict[str, RestHandler] = {
    "/fapi/v1/ping": _ping,
    "/fapi/v1/time": _time,
}


def rest(path: str, now_ms: int) -> tuple[int, str] | None:
    """Answer a REST GET; None if `path` is not a REST route."""
    p, _, query = path.partition("?")
    h = REST_ROUTES.get(p)
    if h is None:
        return None
    return h(parse_qs(query), now_ms)
