"""Insane venue values (issue 15, item 1): every parser rejects them with a reason per kind
(envelope.Rejected, '<kind>:<field>'), on the real captures with one value mutated; and the sim's
`insane` fault sends exactly the values its table says, each rejected for the reason it lists.

The mutations are what the issue found the parsers accepting: a price of 0, negative, NaN, inf or
"1e400" (a float overflow), a qty <= 0 or NaN, `m:"false"` (a string, which flipped the side), a
crossed quote; and their Polymarket and Chainlink counterparts (a price outside [0, 1], a size < 0
or NaN, a Chainlink value <= 0 or too large for a float).
"""
from __future__ import annotations

import orjson
import pytest

from actors.sim import faults
from actors.venues.binance.parse import parse_frame
from actors.venues.envelope import MAX_PRICE, FrameError, Rejected
from actors.venues.polymarket import clob, rtds
from tests.support.fixtures import BINANCE, POLYMARKET, need

RECV = 1_700_000_000_123_456_789

# markPrice and forceOrder have no data-file capture: Binance's documented shapes (as in
# tests/unit/test_binance_parsers.py)
MARK = {"stream": "btcusdt@markPrice@1s", "data": {
    "e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
    "ap": "11794.15000000", "P": "11784.62659091", "i": "11784.25641265", "r": "0.00038167",
    "T": 1562306400000}}
LIQ = {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E": 1568014460893, "o": {
    "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910",
    "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}}


def bn(name: str) -> dict:
    return orjson.loads(need(BINANCE / name).read_bytes())


def pm(name: str) -> dict:
    return orjson.loads(need(POLYMARKET / name).read_bytes())


def mutate(doc: dict, path: tuple, value) -> bytes:
    """The frame `doc` with the value at `path` (keys and list indexes) replaced."""
    doc = orjson.loads(orjson.dumps(doc))
    tgt = doc
    for k in path[:-1]:
        tgt = tgt[k]
    tgt[path[-1]] = value
    return orjson.dumps(doc)


def rejected(parse, frame: bytes) -> str:
    with pytest.raises(Rejected) as ei:
        parse(frame)
    assert isinstance(ei.value, FrameError) and isinstance(ei.value, ValueError)
    return ei.value.reason


def binance(frame: bytes):
    return parse_frame(frame, RECV)


# ---------------------------------------------------------------------------------------------
# Binance
# ---------------------------------------------------------------------------------------------

BINANCE_CASES = [
    # (capture or literal, path, value, reason)
    ("futures_aggTrade.json", ("data", "p"), "0", "trade:price"),
    ("futures_aggTrade.json", ("data", "p"), "-1.011", "trade:price"),
    ("futures_aggTrade.json", ("data", "p"), "NaN", "trade:price"),
    ("futures_aggTrade.json", ("data", "p"), "inf", "trade:price"),
    ("futures_aggTrade.json", ("data", "p"), "1e400", "trade:price"),
    ("futures_aggTrade.json", ("data", "p"), "2e12", "trade:price"),         # over MAX_PRICE
    ("futures_aggTrade.json", ("data", "q"), "0", "trade:qty"),
    ("futures_aggTrade.json", ("data", "q"), "-10", "trade:qty"),
    ("futures_aggTrade.json", ("data", "q"), "nan", "trade:qty"),
    ("futures_aggTrade.json", ("data", "q"), "1e17", "trade:qty"),          # over MAX_QTY
    ("futures_aggTrade.json", ("data", "m"), "false", "trade:m"),           # truthy: flipped the side
    ("futures_aggTrade.json", ("data", "m"), 0, "trade:m"),
    ("futures_aggTrade.json", ("data", "m"), None, "trade:m"),
    ("futures_trade_2024.json", ("data", "p"), "0", "trade:price"),
    ("futures_trade_2024.json", ("data", "m"), "true", "trade:m"),
    ("spot_aggTrade.json", ("data", "q"), "Infinity", "trade:qty"),
    ("futures_bookTicker.json", ("data", "b"), "0", "quote:bid"),
    ("futures_bookTicker.json", ("data", "a"), "inf", "quote:ask"),
    ("futures_bookTicker.json", ("data", "a"), "NaN", "quote:ask"),
    ("futures_bookTicker.json", ("data", "B"), "0", "quote:bid_qty"),
    ("futures_bookTicker.json", ("data", "A"), "-3", "quote:ask_qty"),
    ("futures_bookTicker.json", ("data", "b"), "7.6121", "quote:crossed"),   # ask is 7.6120
    ("spot_bookTicker.json", ("data", "b"), "-0.5", "quote:bid"),
    ("spot_bookTicker.json", ("data", "b"), "0.35260001", "quote:crossed"),
    ("futures_depth_diff_100ms.json", ("data", "b", 0, 0), "0", "depth:price"),
    ("futures_depth_diff_100ms.json", ("data", "a", 0, 0), "NaN", "depth:price"),
    ("futures_depth_diff_100ms.json", ("data", "b", 0, 1), "-1", "depth:qty"),
    ("futures_depth_diff_100ms.json", ("data", "a", 0, 1), "inf", "depth:qty"),
    ("spot_depth20_100ms.json", ("data", "bids", 0, 1), "0.00000000", "depth:qty"),  # a book level holds a qty
    ("spot_depth20_100ms.json", ("data", "bids", 3, 0), "1.0", "depth:level_order"),
    ("spot_depth20_100ms.json", ("data", "asks", 0, 0), "1.0", "depth:crossed"),
    ("futures_kline_1m_closed.json", ("data", "k", "o"), "0", "kline:price"),
    ("futures_kline_1m_closed.json", ("data", "k", "c"), "NaN", "kline:price"),
    ("futures_kline_1m_closed.json", ("data", "k", "h"), "0.0001", "kline:ohlc"),
    ("futures_kline_1m_closed.json", ("data", "k", "v"), "-1", "kline:volume"),
    ("futures_kline_1m_closed.json", ("data", "k", "V"), "1e9", "kline:taker_buy_volume"),
    ("futures_kline_1m_closed.json", ("data", "k", "x"), "false", "kline:closed"),
    ("futures_kline_1m_closed.json", ("data", "k", "n"), -1, "kline:trades"),
    (MARK, ("data", "p"), "0", "mark:price"),
    (MARK, ("data", "i"), "-5", "mark:index"),
    (MARK, ("data", "P"), "inf", "mark:est_settle"),
    (MARK, ("data", "r"), "NaN", "mark:funding_rate"),     # "NaN" sent is insane; "" is "not given"
    (MARK, ("data", "r"), "2", "mark:funding_rate"),
    (LIQ, ("data", "o", "p"), "0", "liquidation:price"),
    (LIQ, ("data", "o", "ap"), "-1", "liquidation:avg_price"),
    (LIQ, ("data", "o", "q"), "NaN", "liquidation:qty"),
    (LIQ, ("data", "o", "z"), "inf", "liquidation:filled_qty"),
]


@pytest.mark.parametrize("src,path,value,reason", BINANCE_CASES,
                         ids=[f"{s if isinstance(s, str) else s['stream']}:{'.'.join(map(str, p))}={v}"
                              for s, p, v, _ in BINANCE_CASES])
def test_binance_insane_value_is_rejected_with_its_reason(src, path, value, reason):
    doc = bn(src) if isinstance(src, str) else src
    binance(orjson.dumps(doc))                      # the unmutated frame decodes
    assert rejected(binance, mutate(doc, path, value)) == reason


def test_binance_sane_edges_pass():
    """What is legitimate stays accepted: a diff's 0 qty (a removal), a locked quote, a price at
    MAX_PRICE, an absent or empty optional mark field, funding of either sign, an empty kline."""
    diff = bn("futures_depth_diff_100ms.json")
    assert binance(mutate(diff, ("data", "b", 0, 1), "0")).kind == "depth"
    q = bn("futures_bookTicker.json")
    locked = binance(mutate(q, ("data", "b"), q["data"]["a"])).recs[0]
    assert locked[4] == locked[6] == 7.612
    assert binance(mutate(bn("futures_aggTrade.json"), ("data", "p"), "1e12")).recs[0][6] == MAX_PRICE
    assert binance(mutate(MARK, ("data", "r"), "-0.00038167")).recs[0][6] == -0.00038167
    empty = binance(mutate(MARK, ("data", "i"), "")).recs[0]
    assert empty[4] != empty[4]                     # NaN: "not given"
    k = bn("futures_kline_1m_closed.json")
    flat = orjson.loads(orjson.dumps(k))
    c = flat["data"]["k"]["c"]
    flat["data"]["k"].update(o=c, h=c, l=c, v="0", q="0", V="0", n=0)
    assert binance(orjson.dumps(flat)).recs[0][11:] == (0.0, 0.0, 0.0, 0)


def test_binance_long_real_stream_with_insane_trades_keeps_every_sane_one():
    """The 10 416 real futures trades, every 97th mutated (cycling through the insane forms): each
    mutated frame is rejected with its reason, every other one decodes to its original record."""
    lines = need(BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log").read_bytes().splitlines()
    forms = [("p", "0", "trade:price"), ("p", "NaN", "trade:price"), ("p", "1e400", "trade:price"),
             ("q", "-1", "trade:qty"), ("m", "false", "trade:m")]
    counts: dict[str, int] = {}
    kept = 0
    for i, line in enumerate(lines):
        ts, fr = line.split(b" ", 1)
        if i % 97:
            rec = parse_frame(fr, int(ts)).recs[0]
            assert 0 < rec[6] < 1e6 and 0 < rec[7] and rec[8] in (-1, 1)
            kept += 1
            continue
        key, value, reason = forms[(i // 97) % len(forms)]
        got = rejected(lambda f: parse_frame(f, int(ts)), mutate(orjson.loads(fr), ("data", key), value))
        assert got == reason
        counts[reason] = counts.get(reason, 0) + 1
    assert len(lines) == 10416 and kept == 10416 - 108
    assert counts == {"trade:price": 66, "trade:qty": 21, "trade:m": 21}


# ---------------------------------------------------------------------------------------------
# Polymarket CLOB, RTDS Chainlink
# ---------------------------------------------------------------------------------------------

def poly(frame: bytes):
    return clob.parse_frame(frame, RECV)


POLY_CASES = [
    ("ws_book_2026_captured.json", ("bids", 0, "price"), "1.5", "book:price"),
    ("ws_book_2026_captured.json", ("bids", 0, "price"), "-0.01", "book:price"),
    ("ws_book_2026_captured.json", ("asks", 0, "price"), "NaN", "book:price"),
    ("ws_book_2026_captured.json", ("asks", 0, "size"), "-5", "book:size"),
    ("ws_book_2026_captured.json", ("asks", 0, "size"), "inf", "book:size"),
    ("ws_book_2026_captured.json", ("asks", 0, "size"), "1e17", "book:size"),
    ("ws_book_2026_captured.json", ("tick_size",), "0", "book:tick_size"),
    ("ws_book_2026_captured.json", ("last_trade_price",), "7", "book:last_trade_price"),
    ("ws_price_change_2026_batch.json", ("price_changes", 0, "price"), "1.01", "price_change:price"),
    ("ws_price_change_2026_batch.json", ("price_changes", 0, "size"), "NaN", "price_change:size"),
    ("ws_price_change_2026_batch.json", ("price_changes", 0, "best_bid"), "inf", "price_change:best_bid"),
    ("ws_price_change_2026_batch.json", ("price_changes", 0, "best_ask"), "-1", "price_change:best_ask"),
    ("ws_last_trade_price_2026_with_tx_hash.json", ("price",), "0.585e3", "last_trade_price:price"),
    ("ws_last_trade_price_2026_with_tx_hash.json", ("size",), "1e400", "last_trade_price:size"),
    ("ws_last_trade_price_2026_with_tx_hash.json", ("fee_rate_bps",), "nan", "last_trade_price:fee_rate_bps"),
    ("ws_tick_size_change_2025.json", ("new_tick_size",), "0", "tick_size_change:new_tick_size"),
    ("ws_tick_size_change_2025.json", ("old_tick_size",), "1", "tick_size_change:old_tick_size"),
    ("ws_best_bid_ask_2026.json", ("best_bid",), "0.6", "best_bid_ask:crossed"),    # ask is 0.587
    ("ws_best_bid_ask_2026.json", ("spread",), "inf", "best_bid_ask:spread"),
]


@pytest.mark.parametrize("name,path,value,reason", POLY_CASES,
                         ids=[f"{n}:{'.'.join(map(str, p))}={v}" for n, p, v, _ in POLY_CASES])
def test_polymarket_insane_value_is_rejected_with_its_reason(name, path, value, reason):
    doc = pm(name)
    poly(orjson.dumps(doc))
    assert rejected(poly, mutate(doc, path, value)) == reason


def test_polymarket_rest_book_and_sane_edges():
    doc = pm("clob_book_rest_2024.json")
    assert rejected(clob.parse_rest_book, mutate(doc, ("bids", 0, "size"), "-1")) == "/book:size"
    # a 0 size in a price change deletes the level; a best_bid_ask with an empty (0) ask is not crossed
    pc = poly(mutate(pm("ws_price_change_2026_batch.json"), ("price_changes", 0, "size"), "0"))[0]
    assert pc.changes[0].size == 0.0
    bba = poly(mutate(pm("ws_best_bid_ask_2026.json"), ("best_ask",), "0"))[0]
    assert (bba.best_bid, bba.best_ask) == (0.585, 0.0)
    # not a number at all is malformed, not an insane value
    with pytest.raises(FrameError) as ei:
        poly(mutate(pm("ws_last_trade_price_2026_with_tx_hash.json"), ("price",), True))
    assert not isinstance(ei.value, Rejected)


def chainlink_line() -> dict:
    return orjson.loads(need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl")
                        .read_bytes().splitlines()[0])


@pytest.mark.parametrize("fav,value", [
    ("0", 64790.08246810615),                  # full_accuracy_value wins when it is digits
    ("9" * 400, 64790.08246810615),            # too large for a float: an overflow
    (None, 0),
    (None, -64790.1),
    (None, "NaN"),
    (None, "inf"),
    (None, "1e400"),
])
def test_chainlink_insane_price_is_rejected(fav, value):
    doc = chainlink_line()
    if fav is None:
        del doc["payload"]["full_accuracy_value"]
    else:
        doc["payload"]["full_accuracy_value"] = fav
    doc["payload"]["value"] = value
    assert rejected(lambda f: rtds.parse_frame(f, RECV), orjson.dumps(doc)) == "chainlink:price"


def test_chainlink_insane_snapshot_point_is_rejected():
    doc = orjson.loads(need(POLYMARKET / "rtds_crypto_prices_subscribe_snapshot.json").read_bytes())
    doc["payload"]["data"][1]["value"] = "-1"
    assert rejected(lambda f: rtds.parse_frame(f, RECV, symbol="btcusdt", topic="crypto_prices"),
                    orjson.dumps(doc)) == "chainlink:price"


# ---------------------------------------------------------------------------------------------
# the sim's `insane` fault
# ---------------------------------------------------------------------------------------------

SIM_SHAPES = {    # a real payload of each shape the sim sends (the combined envelope's data)
    "aggTrade": lambda: bn("futures_aggTrade.json"),
    "bookTicker": lambda: bn("futures_bookTicker.json"),
    "depth": lambda: bn("futures_depth_diff_100ms.json"),
    "markPriceUpdate": lambda: MARK,
    "forceOrder": lambda: LIQ,
    "kline": lambda: bn("futures_kline_1m_closed.json"),
}


@pytest.mark.parametrize("shape", sorted(SIM_SHAPES))
def test_sim_insane_cycle_is_rejected_with_the_listed_reasons(shape):
    doc = SIM_SHAPES[shape]()
    stream, payload = doc["stream"], orjson.dumps(doc["data"]).decode()
    reasons = faults.INSANE_REASONS[shape]
    assert len(reasons) == len(faults.INSANE[shape])
    for i in range(2 * len(reasons)):             # the cycle repeats
        raw, comb = faults.corrupt(faults.INSANE_BASE + i, stream, payload)
        assert rejected(binance, comb.encode()) == reasons[i % len(reasons)]
        assert rejected(binance, raw.encode()) == reasons[i % len(reasons)]


def test_sim_spot_partial_depth_insane_values():
    payload = orjson.dumps(bn("spot_depth20_100ms.json")["data"]).decode()
    got = [rejected(binance, faults.corrupt(faults.INSANE_BASE + i, "btcusdt@depth20@100ms", payload)[1].encode())
           for i in range(3)]
    assert got == list(faults.INSANE_REASONS["depth"])


def test_sim_insane_fault_is_consumed_exactly_per_stream():
    st = faults.FaultState()
    f = faults.parse_fault(b'{"kind":"insane","count":3,"stream":"btcusdt@aggTrade"}')
    assert f == faults.Fault("insane", count=3, stream="btcusdt@aggTrade")
    st.apply(f, 0.0)
    assert st.active and st.describe(0.0)["insane_pending"] == {"btcusdt@aggTrade": 3}
    assert st.verdict("btcusdt@bookTicker", 0.0) == faults.SEND
    got = []
    for _ in range(3):
        assert st.verdict("btcusdt@aggTrade", 0.0) == faults.CORRUPT
        got.append(st.next_corruption())
    assert got == [faults.INSANE_BASE, faults.INSANE_BASE + 1, faults.INSANE_BASE + 2]
    assert st.verdict("btcusdt@aggTrade", 0.0) == faults.SEND and not st.active
    # a malformed fault pending on the same stream goes first; its cycle is its own
    st.apply(faults.Fault("insane", count=1), 0.0)
    st.apply(faults.Fault("malformed", count=1, stream="btcusdt@aggTrade"), 0.0)
    assert st.verdict("btcusdt@aggTrade", 0.0) == faults.CORRUPT and st.next_corruption() == 0
    assert st.verdict("btcusdt@aggTrade", 0.0) == faults.CORRUPT
    assert st.next_corruption() == faults.INSANE_BASE + 3         # the stream's cycle goes on
    st.apply(faults.Fault("insane", count=2), 0.0)
    st.apply(faults.Fault("clear"), 0.0)
    assert not st.active and st.verdict("x", 0.0) == faults.SEND
    with pytest.raises(faults.FaultError):
        faults.parse_fault(b'{"kind":"insane","count":0}')
