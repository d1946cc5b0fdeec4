"""The sim's Binance futures protocol, without sockets: encoders, routes, methods, limits."""
from __future__ import annotations

import json

import pytest

from actors.sim.binance import codec as b
from actors.sim.market import FUTURES_BTCUSDT, AggTrade, BookTicker


def _pairs(text: str) -> list[tuple[str, object]]:
    return json.loads(text, object_pairs_hook=list)


def test_fmt_units():
    assert b.fmt_units(6500010, 2) == "65000.10"
    assert b.fmt_units(12, 3) == "0.012"
    assert b.fmt_units(1, 3) == "0.001"
    assert b.fmt_units(25284, 3) == "25.284"
    assert b.fmt_units(0, 2) == "0.00"
    assert b.fmt_units(7, 0) == "7"


def test_agg_trade_frame_is_the_live_one():
    codec = b.FuturesCodec(FUTURES_BTCUSDT)
    ev = AggTrade(emit_ns=0, E=1781416439080, a=3339472008, price=6433920, qty=123, f=7786568797,
                  l=7786568801, T=1781416438926, m=True)
    # a live frame (Binance docs, 2026), byte for byte
    assert codec.agg_trade(ev) == (
        '{"e":"aggTrade","E":1781416439080,"a":3339472008,"s":"BTCUSDT","p":"64339.20",'
        '"q":"0.123","nq":"0.123","f":7786568797,"l":7786568801,"T":1781416438926,"m":true}')
    frame = b.combined(codec.agg_stream, codec.agg_trade(ev._replace(m=False)))
    assert [k for k, _ in _pairs(frame)] == ["stream", "data"]
    assert json.loads(frame)["stream"] == "btcusdt@aggTrade"
    assert json.loads(frame)["data"]["m"] is False


def test_book_ticker_frame_is_the_live_one():
    codec = b.FuturesCodec(FUTURES_BTCUSDT)
    ev = BookTicker(emit_ns=0, u=5123107839020, bid=6180020, bid_qty=2507, ask=6180030,
                    ask_qty=2510, T=1723161256313, E=1723161256313)
    live = ('{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
            '"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
            '"T":1723161256313,"E":1723161256313}}')   # the 2024 capture's first frame
    assert b.combined(codec.book_stream, codec.book_ticker(ev)) == live


@pytest.mark.parametrize("name,route", [
    ("btcusdt@bookTicker", "public"), ("btcusdt@depth", "public"), ("btcusdt@depth@100ms", "public"),
    ("btcusdt@depth20@100ms", "public"), ("btcusdt@depth5", "public"), ("!bookTicker", "public"),
    ("btcusdt@aggTrade", "market"), ("btcusdt@markPrice@1s", "market"), ("btcusdt@markPrice", "market"),
    ("btcusdt@forceOrder", "market"), ("btcusdt@kline_1m", "market"), ("!forceOrder@arr", "market"),
    ("BTCUSDT@aggTrade", None), ("btcusdt", None), ("btcusdt@aggtrade", None), ("btcusdt@depth7", None),
    ("btcusdt@kline_2m", None), ("", None),
])
def test_stream_routes(name, route):
    assert b.stream_route(name) == route


@pytest.mark.parametrize("path,expect", [
    ("/public/stream?streams=btcusdt@bookTicker/btcusdt@depth", ("public", True, ["btcusdt@bookTicker", "btcusdt@depth"])),
    ("/market/stream?streams=btcusdt@aggTrade", ("market", True, ["btcusdt@aggTrade"])),
    ("/market/stream", ("market", True, [])),
    ("/market/ws/btcusdt@aggTrade/btcusdt@markPrice", ("market", False, ["btcusdt@aggTrade", "btcusdt@markPrice"])),
    ("/public/ws", ("public", False, [])),
    ("/stream?streams=btcusdt@aggTrade", None),        # legacy unrouted: retired 2026-04-23
    ("/ws/btcusdt@aggTrade", None),
    ("/private/ws", None), ("/", None), ("/market", None), ("/market/other", None),
])
def test_parse_ws_path(path, expect):
    assert b.parse_ws_path(path) == expect


def test_session_methods_and_replies():
    s = b.FuturesSession("market", True, ["btcusdt@aggTrade", "btcusdt@bookTicker"])
    assert s.delivered_streams() == ["btcusdt@aggTrade"]          # bookTicker: wrong route
    assert s.handle('{"method":"LIST_SUBSCRIPTIONS","id":3}') == \
        '{"result":["btcusdt@aggTrade","btcusdt@bookTicker"],"id":3}'
    assert s.handle('{"method":"SUBSCRIBE","params":["btcusdt@markPrice@1s"],"id":1}') == \
        '{"result":null,"id":1}'
    assert s.delivers("btcusdt@markPrice@1s")
    assert s.handle('{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":312}') == \
        '{"result":null,"id":312}'
    assert not s.delivers("btcusdt@aggTrade")
    assert s.handle('{"method":"GET_PROPERTY","params":["combined"],"id":2}') == '{"result":true,"id":2}'
    assert s.handle('{"method":"SET_PROPERTY","params":["combined",false],"id":5}') == '{"result":null,"id":5}'
    assert s.combined is False


@pytest.mark.parametrize("msg,code,rid,text", [
    ('{"method":"SUBSCRIB","params":[],"id":7}', 2, 7, "Invalid request: unknown variant `SUBSCRIB`"),
    ('{"params":[],"id":8}', 2, 8, "Invalid request: missing field `method`"),
    ('{"method":"SUBSCRIBE","params":["BTCUSDT@aggTrade"],"id":9}', 2, 9, "Invalid request: invalid stream"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":-1}', 2, None,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":"x"}', 2, None,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"method":"SUBSCRIBE","params":"btcusdt@aggTrade","id":4}', 2, 4, "Invalid request: "),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":10}', 1, 10,
     "Invalid value type: expected Boolean"),
    ('{"method":"GET_PROPERTY","params":["compressed"],"id":11}', 0, 11, "Unknown property"),
    ('{"method": "SUBSCRIBE", "params": [', 3, None, "Invalid JSON: "),
    ('[1,2]', 2, None, "Invalid request: "),
])
def test_session_errors_are_binance_shaped(msg, code, rid, text):
    s = b.FuturesSession("market", True, [])
    reply = s.handle(msg)
    assert [k for k, _ in _pairs(reply)] == ["error", "id"]
    d = json.loads(reply)
    assert list(d["error"]) == ["code", "msg"]
    assert d["error"]["code"] == code and d["id"] == rid
    assert d["error"]["msg"].startswith(text)
    assert s.streams == []


def test_stream_limit_per_connection():
    s = b.FuturesSession("market", True, [])
    names = [f"s{i:03d}usdt@aggTrade" for i in range(b.MAX_STREAMS)]
    assert s.handle(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1})) == '{"result":null,"id":1}'
    r = json.loads(s.handle('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":2}'))
    assert r["error"]["code"] == 2 and len(s.streams) == b.MAX_STREAMS


def test_incoming_message_limit_is_more_than_ten_per_second():
    s = b.FuturesSession("market", True, [])
    assert all(s.note_incoming(100.0 + i * 0.09) for i in range(10))      # 10 within 0.81 s: fine
    assert not s.note_incoming(100.0 + 0.95)                              # the 11th within 1 s
    s2 = b.FuturesSession("market", True, [])
    assert all(s2.note_incoming(i * 0.11) for i in range(100))            # ~9/s forever: fine


def test_rest_routes():
    assert b.rest("/fapi/v1/ping", 5) == (200, "{}")
    assert b.rest("/fapi/v1/time?x=1", 1723161256313) == (200, '{"serverTime":1723161256313}')
    assert b.rest("/fapi/v1/nothing", 5) is None
