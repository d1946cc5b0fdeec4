"""actors.venues.polymarket.rtds on the real RTDS captures (Chainlink btc/usd updates, Binance-source frames)."""
from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from actors.venues.polymarket.rtds import PING, Decoded, FrameError, parse_frame, subscribe_msg
from ipc import names
from ipc.schema import CHAINLINK, FLAG_SNAPSHOT
from tests.support.fixtures import POLYMARKET, need

RECV = 1_771_820_700_000_000_001
MS = 1_000_000
JSONL = "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl"

# (observation ms, send ms, price) per line, from the capture text
CHAINLINK_LINES = [
    (1771820699000, 1771820699964, 64790.08246810615),
    (1771821298000, 1771821299106, 64753.026193516445),
    (1771821598000, 1771821599159, 64670.43898586293),
    (1771824075000, 1771824076148, 65058.42451656015),
    (1771824899000, 1771824900158, 65077.791834512005),
]


def lines() -> list[bytes]:
    return need(POLYMARKET / JSONL).read_bytes().splitlines()


def test_subscribe_msg_exact_bytes():
    assert subscribe_msg() == (
        b'{"action":"subscribe","subscriptions":[{"topic":"crypto_prices_chainlink","type":"*",'
        b'"filters":"{\\"symbol\\":\\"btc/usd\\"}"}]}')
    sub = orjson.loads(subscribe_msg())
    assert orjson.loads(sub["subscriptions"][0]["filters"]) == {"symbol": "btc/usd"}
    assert PING == b"PING"


def test_chainlink_updates_every_line_exact():
    ls = lines()
    assert len(ls) == len(CHAINLINK_LINES) == 5
    for i, (line, (obs, sent, px)) in enumerate(zip(ls, CHAINLINK_LINES)):
        d = parse_frame(line, RECV + i)
        assert d == Decoded("price", "btc/usd", ((obs * MS, RECV + i, 0, sent * MS, px),))
        arr = np.zeros(1, dtype=CHAINLINK)
        arr[0] = d.recs[0]
        assert arr[0].item() == d.recs[0]


def test_full_accuracy_value_and_value_agree_on_every_line():
    for line, (_, _, px) in zip(lines(), CHAINLINK_LINES):
        p = orjson.loads(line)["payload"]
        assert int(p["full_accuracy_value"]) / 10**18 == p["value"] == px
    # which one is used: full_accuracy_value when it is an integer string
    p = orjson.loads(lines()[0])
    p["payload"]["value"] = 1.0
    assert parse_frame(orjson.dumps(p), RECV).recs[0][4] == 64790.08246810615
    del p["payload"]["full_accuracy_value"]
    assert parse_frame(orjson.dumps(p), RECV).recs[0][4] == 1.0


def test_binance_source_update_is_other_by_default():
    f = need(POLYMARKET / "rtds_crypto_prices_update.json").read_bytes()
    assert parse_frame(f, RECV) == Decoded("other", "btcusdt", ())
    # the same parser reads it when asked for that topic/symbol; "61035.86000000" is not scaled
    d = parse_frame(f, RECV, symbol="btcusdt", topic="crypto_prices")
    assert d == Decoded("price", "btcusdt", ((1780730269000 * MS, RECV, 0, 1780730269142 * MS, 61035.86),))


def test_subscribe_snapshot():
    f = need(POLYMARKET / "rtds_crypto_prices_subscribe_snapshot.json").read_bytes()
    assert parse_frame(f, RECV) == Decoded("other", "btcusdt", ())      # Binance source, not ours
    d = parse_frame(f, RECV, symbol="btcusdt", topic="crypto_prices")
    sent = 1780726213178 * MS
    assert d == Decoded("snapshot", "btcusdt", (
        (1780726209000 * MS, RECV, FLAG_SNAPSHOT, sent, 61164.12),
        (1780726210000 * MS, RECV, FLAG_SNAPSHOT, sent, 61161.07),
        (1780726211000 * MS, RECV, FLAG_SNAPSHOT, sent, 61150.89),
    ))
    arr = np.zeros(3, dtype=CHAINLINK)
    arr[:] = list(d.recs)
    assert list(arr["price"]) == [61164.12, 61161.07, 61150.89]


def test_chainlink_snapshot_shapes():
    # shape of a third-party client's test vector: the chainlink dump tagged topic "crypto_prices"
    snap = {"connection_id": "abc", "payload": {"symbol": "btc/usd", "data": [
        {"timestamp": 1782943900000, "value": 60750.5}, {"timestamp": 1782943901000, "value": 60751.25}]},
        "timestamp": 1782943987064, "topic": "crypto_prices", "type": "subscribe"}
    expected = ((1782943900000 * MS, 5, FLAG_SNAPSHOT, 1782943987064 * MS, 60750.5),
                (1782943901000 * MS, 5, FLAG_SNAPSHOT, 1782943987064 * MS, 60751.25))
    assert parse_frame(orjson.dumps(snap), 5) == Decoded("snapshot", "btc/usd", expected)
    snap["topic"] = "crypto_prices_chainlink"
    assert parse_frame(orjson.dumps(snap), 5) == Decoded("snapshot", "btc/usd", expected)
    snap["payload"]["data"] = []
    assert parse_frame(orjson.dumps(snap), 5) == Decoded("snapshot", "btc/usd", ())
    del snap["payload"]["symbol"]                      # no symbol: cannot tell it is BTC
    assert parse_frame(orjson.dumps(snap), 5).kind == "other"


def test_other_symbols_topics_and_control():
    upd = orjson.loads(lines()[0])
    eth = dict(upd, payload=dict(upd["payload"], symbol="eth/usd"))
    assert parse_frame(orjson.dumps(eth), RECV) == Decoded("other", "eth/usd", ())
    twap = dict(upd, topic="crypto_prices_twap_sixty")
    assert parse_frame(orjson.dumps(twap), RECV).kind == "other"
    upper = dict(upd, payload=dict(upd["payload"], symbol="BTC/USD"))
    assert parse_frame(orjson.dumps(upper), RECV).kind == "price"
    assert parse_frame(b'{"message":"Invalid request body","statusCode":400}', RECV).kind == "other"
    assert parse_frame(b'{"topic":"crypto_prices_chainlink","type":"unsubscribe","payload":{}}', 1).kind == "other"
    for c in (b"PONG", b"PING", b"", b"  \n", "PONG", ""):
        assert parse_frame(c, RECV) == Decoded("control", "", ())
    assert parse_frame(lines()[0].decode(), RECV) == parse_frame(lines()[0], RECV)


@pytest.mark.parametrize("symbol,stream", [("BTCUSDT", "btc/usd"), ("ETHUSDT", "eth/usd"),
                                           ("SOLUSDT", "sol/usd"), ("XRPUSDT", "xrp/usd")])
def test_subscribe_msg_per_asset(symbol, stream):
    assert names.chainlink_stream(symbol) == stream
    assert subscribe_msg(stream) == (
        b'{"action":"subscribe","subscriptions":[{"topic":"crypto_prices_chainlink","type":"*",'
        b'"filters":"{\\"symbol\\":\\"' + stream.encode() + b'\\"}"}]}')
    with pytest.raises(ValueError):
        subscribe_msg("")


def test_the_configured_stream_only():
    upd = orjson.loads(lines()[0])
    obs, sent, px = CHAINLINK_LINES[0]
    eth = dict(upd, payload=dict(upd["payload"], symbol="eth/usd"))
    rec = (obs * MS, RECV, 0, sent * MS, px)
    assert parse_frame(orjson.dumps(eth), RECV, symbol="eth/usd") == Decoded("price", "eth/usd", (rec,))
    assert parse_frame(orjson.dumps(eth), RECV, symbol="ETH/USD") == Decoded("price", "eth/usd", (rec,))
    assert parse_frame(lines()[0], RECV, symbol="eth/usd") == Decoded("other", "btc/usd", ())
    snap = {"topic": "crypto_prices_chainlink", "type": "subscribe", "timestamp": 1782943987064,
            "payload": {"symbol": "Sol/USD", "data": [{"timestamp": 1782943986000, "value": 150.25}]}}
    assert parse_frame(orjson.dumps(snap), RECV, symbol="sol/usd") == Decoded(
        "snapshot", "Sol/USD", ((1782943986000 * MS, RECV, FLAG_SNAPSHOT, 1782943987064 * MS, 150.25),))
    assert parse_frame(orjson.dumps(snap), RECV).kind == "other"          # default stream: btc/usd


U = b'{"topic":"crypto_prices_chainlink","type":"update","timestamp":1,"payload":{"symbol":"btc/usd",%s}}'


@pytest.mark.parametrize("bad", [
    b"nope", b"PONGG", b"[]", b"null", b"3",
    U % b'"value":1.5',                                       # no observation timestamp
    U % b'"timestamp":1000',                                  # no value
    U % b'"timestamp":"soon","value":1.5',
    U % b'"timestamp":1000,"value":"abc"',
    U % b'"timestamp":1000,"value":-5',
    U % b'"timestamp":1000,"value":0',
    U % b'"timestamp":1000,"value":[1]',
    U % b'"timestamp":-1,"value":1.5',
    U % b'"timestamp":1000,"value":1e999',
    b'{"topic":"crypto_prices_chainlink","type":"update","timestamp":"x","payload":'
    b'{"symbol":"btc/usd","timestamp":1000,"value":1.5}}',
    b'{"topic":"crypto_prices_chainlink","type":"subscribe","payload":{"symbol":"btc/usd","data":{}}}',
    b'{"topic":"crypto_prices_chainlink","type":"subscribe","payload":{"symbol":"btc/usd","data":[1]}}',
    b'{"topic":"crypto_prices_chainlink","type":"subscribe","payload":{"symbol":"btc/usd"}}',
])
def test_malformed_frames_raise_frame_error(bad):
    with pytest.raises(FrameError):
        parse_frame(bad, RECV)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=20)
_payload = st.dictionaries(st.sampled_from(["symbol", "timestamp", "value", "full_accuracy_value", "data"]),
                           st.one_of(_json, st.just("btc/usd"), st.just("123"),
                                     st.lists(st.dictionaries(st.sampled_from(["timestamp", "value"]), _json),
                                              max_size=3)))
_msg = st.fixed_dictionaries({"topic": st.sampled_from(["crypto_prices_chainlink", "crypto_prices", "x"]),
                              "type": st.sampled_from(["update", "subscribe", "x"]),
                              "timestamp": _json, "payload": _payload})


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode()),
                 _msg.map(lambda v: json.dumps(v).encode())))
def test_fuzz_only_frame_error(f):
    try:
        d = parse_frame(f, RECV)
    except FrameError:
        return
    assert d.kind in ("price", "snapshot", "other", "control")
    if d.recs:
        arr = np.zeros(len(d.recs), dtype=CHAINLINK)
        arr[:] = list(d.recs)
