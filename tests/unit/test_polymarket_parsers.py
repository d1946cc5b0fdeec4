"""actors.venues.polymarket.clob on every real CLOB capture in ../shared/fixtures/polymarket.

Expected values are written out from the fixture text, not recomputed with the parser. Files under
unverified/ are not live captures (see SOURCES.md); their tests say so in their names.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from actors.venues.polymarket import clob as pm
from actors.venues.polymarket.clob import (Book, Change, FrameError, LastTrade, PriceChange, TickSizeChange, BestBidAsk, NewMarket, MarketResolved, Pong, Ping, Unknown, parse_frame, parse_rest_book, subscribe_msg, trade_record,
                                           update_msg)
from ipc.schema import POLY_TRADE
from tests.support.fixtures import POLYMARKET, need

RECV = 1_790_000_000_123_456_789
MS = 1_000_000


def raw(name: str) -> bytes:
    return need(POLYMARKET / name).read_bytes()


def one(name: str):
    msgs = parse_frame(raw(name), RECV)
    assert len(msgs) == 1
    return msgs[0]


# ---------------------------------------------------------------------------------------------
# book
# ---------------------------------------------------------------------------------------------

def test_book_2024_sides_arrive_worst_first_and_are_sorted_best_first():
    b = one("ws_book_2024.json")
    assert type(b) is Book and b.kind == "book"
    assert b.asset_id == "48331043336612883890938759509493159234755048973500640148014422747788308965732"
    assert b.market == "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
    assert b.hash == "655a38d4977427b086c25b985993691b753ed166"
    assert b.timestamp_ms == 1728799418260
    assert (b.tick_size, b.last_trade_price, b.min_order_size, b.neg_risk) == (None, None, None, None)
    assert b.ts_recv_ns == RECV
    assert (len(b.bids), len(b.asks)) == (76, 86)
    # on the wire: bids 0.001 ... 0.509, 0.51, 0.511 and asks 0.999 ... 0.516, 0.515, 0.514
    assert b.bids[:3] == [(0.511, 1304.72), (0.51, 12848.17), (0.509, 27.88)]
    assert b.bids[-1] == (0.001, 9000023.58)
    assert b.asks[:3] == [(0.514, 20230.87), (0.515, 43551.96), (0.516, 28605.55)]
    assert b.asks[-1] == (0.999, 10500100.0)
    assert [p for p, _ in b.bids] == sorted((p for p, _ in b.bids), reverse=True)
    assert [p for p, _ in b.asks] == sorted(p for p, _ in b.asks)


def test_book_2024_levels_match_the_wire_exactly():
    d = orjson.loads(raw("ws_book_2024.json"))
    b = one("ws_book_2024.json")
    # the wire order reversed is best-first: nothing lost, nothing reordered within a side
    assert b.bids == [(float(x["price"]), float(x["size"])) for x in reversed(d["bids"])]
    assert b.asks == [(float(x["price"]), float(x["size"])) for x in reversed(d["asks"])]


def test_book_2026_captured_has_tick_size_and_last_trade_price():
    b = one("ws_book_2026_captured.json")
    assert b.asset_id == "350977769852917329387037893294763093471844346281449484439085576212613048126"
    assert b.market == "0x6bd56627aa21311850825edb27e53434a0e17a4f782be0086bc07f71eee00d0d"
    assert b.hash == "ed47eb91f3c7985fac1cb18cb7c19535eddd3c0a"
    assert b.timestamp_ms == 1786604072222
    assert b.tick_size == 0.01
    assert b.last_trade_price == 0.92
    assert b.bids == [(0.07, 182528.55), (0.06, 219685.67), (0.05, 507106.18), (0.04, 171213.7),
                      (0.03, 37268.67), (0.02, 70281.2), (0.01, 3149725.72)]
    assert len(b.asks) == 57
    assert b.asks[:4] == [(0.08, 228198.28), (0.09, 153220.41), (0.1, 93315.63), (0.11, 29764.37)]
    assert b.asks[-2:] == [(0.98, 17512.3), (0.99, 156606.14)]


def test_book_2026_trimmed_netqo():
    b = one("ws_book_2026_trimmed_netqo.json")
    assert b == Book(
        asset_id="63691357964355397861776339416833450653158434687925250159757815624217137833471",
        market="0x5dacb3919e3eb6372770cba85c42e0f980ddf18b1a767751de700ee272269233",
        bids=[(0.004, 100.0), (0.001, 2200.8)], asks=[(0.009, 25.0), (0.999, 50.0)],
        hash="924ec9bc1c6dd89f5db9b7b2b68cdab458cc2dc6", timestamp_ms=1786728432337,
        tick_size=0.001, last_trade_price=0.004, min_order_size=None, neg_risk=None, ts_recv_ns=RECV)


def test_reversed_sides_sort_to_the_same_book():
    d = orjson.loads(raw("ws_book_2026_captured.json"))
    d["bids"].reverse()
    d["asks"].reverse()
    assert parse_frame(orjson.dumps(d), RECV) == parse_frame(raw("ws_book_2026_captured.json"), RECV)
    # and a shuffled side too
    d["asks"] = d["asks"][::2] + d["asks"][1::2]
    assert parse_frame(orjson.dumps(d), RECV)[0].asks == one("ws_book_2026_captured.json").asks


# ---------------------------------------------------------------------------------------------
# burst file (a JSON array of 51 messages)
# ---------------------------------------------------------------------------------------------

UP = "76670567130917723816490572615540605537878462672464291990940067659127658071111"
DOWN = "54179564009642723353355316176091991063553046330768303687769988635499280029688"


def test_burst_is_one_array_of_51_messages():
    msgs = parse_frame(raw("ws_book_and_price_change_burst_2026.json"), RECV)
    assert [m.kind for m in msgs] == ["book"] + ["price_change"] * 49 + ["book"]
    first, last = msgs[0], msgs[-1]
    assert first.asset_id == last.asset_id == UP
    assert first.market == "0x285746de0e4f751fd4dc8f9dc2cecd0101ba9ad0096a43145ed9643b09514f01"
    assert (first.timestamp_ms, first.hash) == (1790658661234, "5511583ad6f3eb4678e0a374e0cc2bd3b1975d07")
    assert (first.tick_size, first.last_trade_price) == (0.001, 0.255)
    assert (last.tick_size, last.last_trade_price) == (None, None)
    assert (last.timestamp_ms, last.hash) == (1790658827000, "78b396c8a7f4989f638fe6cf9b2e8ced15680ba7")
    assert first.bids[0] == (0.3, 5000.0) and first.asks[0] == (0.397, 100.09)
    pc = msgs[1]
    assert pc == PriceChange(
        market="0x285746de0e4f751fd4dc8f9dc2cecd0101ba9ad0096a43145ed9643b09514f01",
        changes=[
            Change(UP, "bid", 0.301, 1000.0, "b7623b6417b3ae46dbe5d608a65474c9cec84ef9", 0.301, 0.397),
            Change(DOWN, "ask", 0.699, 1000.0, "c0978ce48e525b35579b9fb4556a08538ebf265a", 0.603, 0.699),
        ],
        timestamp_ms=1790658674035, legacy=False, ts_recv_ns=RECV)
    # every price_change of the burst is a pair: one entry per token, complementary prices
    for m in msgs[1:50]:
        assert len(m.changes) == 2 and {c.asset_id for c in m.changes} == {UP, DOWN}
        u = next(c for c in m.changes if c.asset_id == UP)
        d = next(c for c in m.changes if c.asset_id == DOWN)
        assert round(u.price + d.price, 9) == 1.0 and u.size == d.size and u.side != d.side


# ---------------------------------------------------------------------------------------------
# price_change
# ---------------------------------------------------------------------------------------------

def test_price_change_2026_batch():
    m = one("ws_price_change_2026_batch.json")
    assert m == PriceChange(
        market="0x3bb59c17b8ec156f8ef55d6de522c53c8bcc8fc708bfba00e1c7820c208ee28b",
        changes=[
            Change("40600137944982070120020561148201046074034528738262880058756488608210871246278",
                   "bid", 0.06, 374.34, "f3285de052f887d0ce2847581636a69c1046178d", 0.07, 0.08),
            Change("79597156840177168343562124064866301094619106642263695929345529947536386203124",
                   "ask", 0.94, 0.0, "bc67a217bd1f1f8625f2d099308ee758f95a772c", 0.92, 0.93),
        ],
        timestamp_ms=1786728438403, legacy=False, ts_recv_ns=RECV)


def test_price_change_legacy_single_asset_2024():
    m = one("ws_price_change_legacy_single_asset_2024.json")
    assert m == PriceChange(
        market="0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917",
        changes=[Change("48331043336612883890938759509493159234755048973500640148014422747788308965732",
                        "ask", 0.514, 21574.08, "bf32b3746fff40c76c98021b7f3f07261169dd26", None, None)],
        timestamp_ms=1723967931411, legacy=True, ts_recv_ns=RECV)


def test_price_change_legacy_changes_list_docs_shape():
    # The 2024 docs shape (no capture): one asset, `changes[]`, one hash for the event.
    f = (b'{"asset_id":"123","changes":[{"price":"0.4","side":"SELL","size":"3300"},'
         b'{"price":"0.5","side":"BUY","size":"0"}],"event_type":"price_change","hash":"abc",'
         b'"market":"0xm","timestamp":"1729084877448"}')
    assert parse_frame(f, RECV) == [PriceChange("0xm", [
        Change("123", "ask", 0.4, 3300.0, "abc", None, None),
        Change("123", "bid", 0.5, 0.0, "abc", None, None)], 1729084877448, True, RECV)]


def test_unverified_price_change_v2_semisynthetic():
    m = one("unverified/ws_price_change_v2_semisynthetic.json")
    a = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
    assert m == PriceChange(
        market="0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1",
        changes=[Change(a, "bid", 0.6, 3300.0, "bf32b3746fff40c76c98021b7f3f07261169dd26", 0.6, 0.7),
                 Change(a, "bid", 0.5, 3400.0, "af32b3746fff40c76c98021b7f3f07261169dd27", 0.6, 0.7),
                 Change(a, "bid", 0.7, 3400.0, "cf32b3746fff40c76c98021b7f3f07261169dd28", 0.6, 0.7)],
        timestamp_ms=1729084877448, legacy=False, ts_recv_ns=RECV)


# ---------------------------------------------------------------------------------------------
# trades, tick size, best bid/ask, market lifecycle
# ---------------------------------------------------------------------------------------------

def test_last_trade_price_2024():
    m = one("ws_last_trade_price_2024.json")
    assert m == LastTrade(
        asset_id="21742633143463906290569050155826241533067272736897614950488156847949938836455",
        market="0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917",
        price=0.491, size=85.36, side=-1, fee_rate_bps=0.0, timestamp_ms=1724564136087,
        transaction_hash=None, ts_recv_ns=RECV)


def test_last_trade_price_2026_with_tx_hash():
    m = one("ws_last_trade_price_2026_with_tx_hash.json")
    assert m == LastTrade(
        asset_id="72710166409980712002774407052535905861151156175854323762835102340552522606004",
        market="0x12dc2b61723b2a54fc1947a307389b5f32038e7a29a0e936ad1fe410b969d06a",
        price=0.585, size=2.46, side=-1, fee_rate_bps=0.0, timestamp_ms=1786728467101,
        transaction_hash="0x6c83cdd2cd59f46a116824aecc9d9b05fc58af1a8f9cfdf09033f5cdb77e0dcf",
        ts_recv_ns=RECV)


def test_trade_record_assigns_into_poly_trade():
    m = one("ws_last_trade_price_2026_with_tx_hash.json")
    rec = trade_record(m, 1, 1786728300 * 10**9)
    assert rec == (1786728467101 * MS, RECV, 0, 1786728300 * 10**9, 1, -1, 0.585, 2.46, 0.0)
    arr = np.zeros(1, dtype=POLY_TRADE)
    arr[0] = rec
    assert arr[0].item() == rec
    buy = m._replace(side=1, fee_rate_bps=1000.0)
    assert trade_record(buy, 0, 5)[4:] == (0, 1, 0.585, 2.46, 1000.0)


def test_tick_size_change_2025():
    m = one("ws_tick_size_change_2025.json")
    assert m == TickSizeChange(
        asset_id="115474063863764126958837769719736461272619491980773624567012766320777398670353",
        market="0xbacdf04bf7f22a670dc4fb408878ec56b76f9934599829455b9371693ba84b8b",
        old_tick_size=0.01, new_tick_size=0.001, timestamp_ms=1739068041853, ts_recv_ns=RECV)


def test_best_bid_ask_2026():
    m = one("ws_best_bid_ask_2026.json")
    assert m == BestBidAsk(
        asset_id="72710166409980712002774407052535905861151156175854323762835102340552522606004",
        market="0x12dc2b61723b2a54fc1947a307389b5f32038e7a29a0e936ad1fe410b969d06a",
        best_bid=0.585, best_ask=0.587, spread=0.002, timestamp_ms=1786728467006, ts_recv_ns=RECV)


def test_unverified_best_bid_ask_2025_docs_example():
    m = one("unverified/ws_best_bid_ask_2025_docs_example.json")
    assert m == BestBidAsk(
        asset_id="85354956062430465315924116860125388538595433819574542752031640332592237464430",
        market="0x0005c0d312de0be897668695bae9f32b624b4a1ae8b140c49f08447fcc74f442",
        best_bid=0.73, best_ask=0.77, spread=0.04, timestamp_ms=1766789469958, ts_recv_ns=RECV)


A_YES = "76043073756653678226373981964075571318267289248134717369284518995922789326425"
A_NO = "31690934263385727664202099278545688007799199447969475608906331829650099442770"


def test_new_market_2025():
    m = one("ws_new_market_2025.json")
    assert m == NewMarket(
        id="1031769", market="0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1",
        slug="nvda-above-240-on-january-30-2026",
        question="Will NVIDIA (NVDA) close above $240 end of January?",
        asset_ids=[A_YES, A_NO], outcomes=["Yes", "No"], tick_size=0.01, active=True,
        timestamp_ms=1766790415550, ts_recv_ns=RECV)


def test_unverified_market_resolved_2025():
    m = one("unverified/ws_market_resolved_2025.json")
    assert m == MarketResolved(
        id="1031769", market="0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1",
        asset_ids=[A_YES, A_NO], winning_asset_id=A_YES, winning_outcome="Yes",
        timestamp_ms=1766790415550, ts_recv_ns=RECV)


CID = "0x311d0c4b6671ab54af4970c06fcf58662516f5168997bdda209ec3db5aa6b0c1"


def test_new_market_fields_a_session_needs():
    m = one("ws_new_market_2025.json")
    assert (m.kind, m.condition_id, m.asset_ids, m.outcomes, m.slug, m.timestamp_ms) == (
        "new_market", CID, [A_YES, A_NO], ["Yes", "No"], "nvda-above-240-on-january-30-2026", 1766790415550)
    d = orjson.loads(raw("ws_new_market_2025.json"))
    # only one of each pair sent: the same message
    only_cid = {k: v for k, v in d.items() if k != "market"}
    only_clob = {k: v for k, v in d.items() if k != "assets_ids"}
    assert parse_frame(orjson.dumps(only_cid), RECV) == [m]
    assert parse_frame(orjson.dumps(only_clob), RECV) == [m]
    no_outcomes = {k: v for k, v in d.items() if k != "outcomes"}
    assert parse_frame(orjson.dumps(no_outcomes), RECV) == [m._replace(outcomes=[])]


def test_market_resolved_fields_a_session_needs():
    m = one("unverified/ws_market_resolved_2025.json")
    assert (m.kind, m.condition_id, m.winning_asset_id, m.winning_outcome, m.timestamp_ms) == (
        "market_resolved", CID, A_YES, "Yes", 1766790415550)
    d = orjson.loads(raw("unverified/ws_market_resolved_2025.json"))
    bare = {k: v for k, v in d.items() if k not in ("assets_ids", "winning_outcome", "id")}
    assert parse_frame(orjson.dumps(bare), RECV) == [m._replace(asset_ids=[], winning_outcome="", id="")]
    by_cid = dict({k: v for k, v in d.items() if k != "market"}, condition_id=CID)
    assert parse_frame(orjson.dumps(by_cid), RECV) == [m]


def _variants(name: str, **changes) -> bytes:
    d = orjson.loads(raw(name))
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return orjson.dumps(d)


NM, MR = "ws_new_market_2025.json", "unverified/ws_market_resolved_2025.json"


@pytest.mark.parametrize("name,changes,why", [
    (NM, {"market": None, "condition_id": None}, "missing field 'market'"),
    (NM, {"condition_id": "0xother"}, "!= condition_id"),
    (NM, {"market": "", "condition_id": None}, "non-empty id"),
    (NM, {"assets_ids": None, "clob_token_ids": None}, "missing field 'assets_ids'"),
    (NM, {"assets_ids": [], "clob_token_ids": None}, "without token ids"),
    (NM, {"clob_token_ids": [A_NO, A_YES]}, "disagree"),
    (NM, {"assets_ids": [A_YES, 7], "clob_token_ids": None}, "list of strings"),
    (NM, {"assets_ids": [A_YES, ""], "clob_token_ids": None}, "non-empty id"),
    (NM, {"outcomes": ["Yes"]}, "1 outcomes for 2 token ids"),
    (NM, {"outcomes": "Yes,No"}, "list of strings"),
    (NM, {"timestamp": None}, "missing field 'timestamp'"),
    (NM, {"timestamp": "soon"}, "ms timestamp"),
    (MR, {"winning_asset_id": None}, "missing field 'winning_asset_id'"),
    (MR, {"winning_asset_id": "123"}, "not one of assets_ids"),
    (MR, {"winning_asset_id": ""}, "non-empty id"),
    (MR, {"market": None}, "missing field 'market'"),
    (MR, {"condition_id": "0xother"}, "!= condition_id"),
    (MR, {"winning_outcome": 1}, "expected a string"),
    (MR, {"timestamp": -1}, "ms timestamp"),
])
def test_malformed_lifecycle_messages(name, changes, why):
    with pytest.raises(FrameError, match=why):
        parse_frame(_variants(name, **changes), RECV)


# ---------------------------------------------------------------------------------------------
# REST /book
# ---------------------------------------------------------------------------------------------

def test_rest_book_2024():
    b = parse_rest_book(raw("clob_book_rest_2024.json"), RECV)
    assert b == Book(
        asset_id="23360939988679364027624185518382759743328544433592111535569478055890815567848",
        market="0x1a4f04c2e6c000d9fc524eb12e7333217411a226c34745af140f195c0227cd5f",
        bids=[(0.1, 125.0), (0.09, 294.0), (0.08, 120.0), (0.06, 200.0), (0.01, 1000.0)],
        asks=[(0.14, 705.0), (0.2, 70.0), (0.38, 192.3), (0.46, 10.0), (0.47, 50.0), (0.5, 30.0),
              (0.98, 5000.0)],
        hash="2fc4a3d6a98bc164e057589bcb74981852b87412", timestamp_ms=1728799418260,
        tick_size=None, last_trade_price=None, min_order_size=None, neg_risk=None, ts_recv_ns=RECV)


def test_rest_book_2026_empty_ask():
    b = parse_rest_book(raw("clob_book_rest_2026_empty_ask.json"))
    assert b == Book(
        asset_id="72610532355343625199299853218161700546393390326785971247545541945337255643692",
        market="0x9d839bf0aa31324b9848f5b89841b779238a7c07dee2f7fca675d934e8ab5bf2",
        bids=[(0.002, 6.99), (0.001, 667.12)], asks=[],
        hash="d7df883ae546b09533a4f485bfae0810da1af04e", timestamp_ms=1785734468581,
        tick_size=0.001, last_trade_price=None, min_order_size=5.0, neg_risk=True, ts_recv_ns=0)


def test_rest_book_2026_trimmed_netqo():
    b = parse_rest_book(raw("clob_book_rest_2026_trimmed_netqo.json"), RECV)
    assert b == Book(
        asset_id="27146956652877944551877724690365745048289675287536243265951843487691050802191",
        market="0x7d0aaf81bbd3fd73b6a1651cce08a452c0cbf9c0cbb4520ce0f981065b639d88",
        bids=[(0.001, 28195.33)], asks=[(0.999, 231.08)],
        hash="4514cbfcdad578db98c9bdac47e6c3b3b4632ced", timestamp_ms=1786728198766,
        tick_size=0.001, last_trade_price=0.004, min_order_size=5.0, neg_risk=True, ts_recv_ns=RECV)


def test_clob_market_rest_is_not_a_book():
    with pytest.raises(FrameError, match="missing field"):
        parse_rest_book(raw("clob_market_rest_2024.json"))


@pytest.mark.parametrize("bad", [b"", b"nope", b"[]", b"null", b'{"error":"No orderbook exists"}',
                                 b'{"asset_id":"1","bids":[],"asks":{},"timestamp":"1"}'])
def test_rest_book_malformed(bad):
    with pytest.raises(FrameError):
        parse_rest_book(bad)


# ---------------------------------------------------------------------------------------------
# every capture, envelope, control frames, errors
# ---------------------------------------------------------------------------------------------

WS_FILES = sorted(p.relative_to(POLYMARKET).as_posix()
                  for p in POLYMARKET.rglob("ws_*.json")) if POLYMARKET.is_dir() else []


def test_every_capture_in_the_folder_has_a_test():
    """A capture added to ../shared/fixtures/polymarket must get a test in one of these modules."""
    need(POLYMARKET)
    here = Path(__file__).parent
    text = "".join(p.read_text() for p in here.glob("test_polymarket_*.py"))
    files = [p.relative_to(POLYMARKET).as_posix() for p in POLYMARKET.rglob("*")
             if p.is_file() and p.name != "SOURCES.md"]
    assert len(files) >= 23
    assert [f for f in files if f.rsplit("/", 1)[-1] not in text] == []
    assert len(WS_FILES) == 14


@pytest.mark.parametrize("name", WS_FILES)
def test_every_ws_capture_parses_without_unknowns(name):
    msgs = parse_frame(raw(name), RECV)
    assert msgs and all(m.kind != "unknown" for m in msgs)
    assert parse_frame(raw(name).decode(), RECV) == msgs          # str and bytes alike


@pytest.mark.parametrize("name", WS_FILES)
def test_unknown_keys_are_ignored(name):
    d = orjson.loads(raw(name))
    for o in (d if type(d) is list else [d]):
        o.update({"zz_new": [1, {"x": 2}], "nq": "7"})
    assert parse_frame(orjson.dumps(d), RECV) == parse_frame(raw(name), RECV)


def test_control_frames():
    assert parse_frame(b"PONG", 7) == [Pong(7)]
    assert parse_frame("PONG\n", 7) == [Pong(7)]
    assert parse_frame(b"PING", 7) == [Ping(7)]
    assert parse_frame(b"", 7) == [] and parse_frame(b"  ", 7) == []
    assert parse_frame(b"[]", 7) == []


def test_array_of_mixed_messages_keeps_wire_order():
    a = orjson.loads(raw("ws_best_bid_ask_2026.json"))
    b = orjson.loads(raw("ws_last_trade_price_2026_with_tx_hash.json"))
    msgs = parse_frame(orjson.dumps([a, b, {"event_type": "mystery", "x": 1}]), RECV)
    assert [m.kind for m in msgs] == ["best_bid_ask", "last_trade_price", "unknown"]


def test_unknown_event_types():
    assert parse_frame(b'{"event_type":"mystery","a":1}', 3) == [Unknown("mystery", {"event_type": "mystery", "a": 1}, 3)]
    assert parse_frame(b'{"no_event_type":1}', 3)[0] == Unknown("", {"no_event_type": 1}, 3)
    assert parse_frame(b'{"event_type":5}', 3)[0].kind == "unknown"


BOOK = b'{"event_type":"book","asset_id":"1","market":"m","bids":%s,"asks":[],"timestamp":"1"}'


@pytest.mark.parametrize("bad", [
    b"nope", b"PONGX", b"null", b"1", b'"book"', b"[1]", b'[{"event_type":"book"}]',
    b'{"event_type":"book","asset_id":"1","bids":[],"timestamp":"1"}',          # no asks
    BOOK % b'[{"price":"x","size":"1"}]',
    BOOK % b'[{"price":"1.5","size":"1"}]',                                     # price > 1
    BOOK % b'[{"price":"0.5","size":"-1"}]',
    BOOK % b'[{"price":"NaN","size":"1"}]',
    BOOK % b'[{"price":true,"size":"1"}]',
    BOOK % b'[["0.5","1"]]',
    BOOK % b'{"0.5":"1"}',
    b'{"event_type":"book","asset_id":"1","bids":[],"asks":[],"timestamp":"soon"}',
    b'{"event_type":"book","asset_id":7,"bids":[],"asks":[],"timestamp":"1"}',
    b'{"event_type":"price_change","market":"m","timestamp":"1","price_changes":[{"asset_id":"1",'
    b'"price":"0.5","size":"1","side":"HOLD"}]}',
    b'{"event_type":"price_change","market":"m","timestamp":"1","price_changes":{}}',
    b'{"event_type":"price_change","market":"m","timestamp":"1","price_changes":[1]}',
    b'{"event_type":"price_change","market":"m","timestamp":"1"}',
    b'{"event_type":"last_trade_price","asset_id":"1","price":"0.5","size":"1","side":"X","timestamp":"1"}',
    b'{"event_type":"last_trade_price","asset_id":"1","price":"0.5","size":"1","side":["BUY"],"timestamp":"1"}',
    b'{"event_type":"tick_size_change","asset_id":"1","old_tick_size":"0.01","timestamp":"1"}',
    b'{"event_type":"best_bid_ask","asset_id":"1","best_bid":"abc","timestamp":"1"}',
    b'{"event_type":"new_market","market":"m","assets_ids":"1,2","timestamp":"1"}',
    b'{"event_type":"market_resolved","market":"m","timestamp":"1"}',
])
def test_malformed_frames_raise_frame_error(bad):
    with pytest.raises(FrameError):
        parse_frame(bad, RECV)


def test_one_bad_element_fails_the_whole_array():
    good = orjson.loads(raw("ws_best_bid_ask_2026.json"))
    bad = dict(good, best_bid="x")
    with pytest.raises(FrameError, match="best_bid_ask"):
        parse_frame(orjson.dumps([good, bad]), RECV)


def test_frame_error_message_is_truncated():
    with pytest.raises(FrameError) as info:
        parse_frame(b'{"event_type":"book","pad":"' + b"x" * 10_000 + b'"}', RECV)
    assert "missing field" in str(info.value) and len(str(info.value)) < 400


def test_subscribe_msg_exact_bytes():
    assert subscribe_msg(["1", "2"]) == (
        b'{"assets_ids":["1","2"],"type":"market","custom_feature_enabled":true}')
    assert pm.PING == b"PING"
    with pytest.raises(ValueError):
        subscribe_msg([])


def test_update_msg_is_the_documented_live_operation():
    # docs.polymarket.com "Subscribe to more assets": assets_ids, operation, custom_feature_enabled
    assert update_msg([A_YES, A_NO], "subscribe") == (
        b'{"assets_ids":["' + A_YES.encode() + b'","' + A_NO.encode() + b'"],'
        b'"operation":"subscribe","custom_feature_enabled":true}')
    assert update_msg(("9",), "unsubscribe") == (
        b'{"assets_ids":["9"],"operation":"unsubscribe","custom_feature_enabled":true}')
    assert pm.OPERATIONS == ("subscribe", "unsubscribe")
    for ids, op in (([], "subscribe"), (["1"], "SUBSCRIBE"), (["1"], "add"), ([""], "subscribe"),
                    ([1], "unsubscribe"), ("12", "subscribe")):
        with pytest.raises(ValueError):
            update_msg(ids, op)


# ---------------------------------------------------------------------------------------------
# fuzz: only FrameError, never another exception
# ---------------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=20)
_keys = st.sampled_from(["event_type", "asset_id", "market", "bids", "asks", "price", "size", "side",
                         "timestamp", "hash", "price_changes", "changes", "best_bid", "best_ask",
                         "tick_size", "old_tick_size", "new_tick_size", "fee_rate_bps",
                         "assets_ids", "winning_asset_id", "last_trade_price", "spread"])
_etype = st.sampled_from(["book", "price_change", "last_trade_price", "tick_size_change",
                          "best_bid_ask", "new_market", "market_resolved", "x"])
_vals = st.one_of(_json, st.sampled_from(["0.5", "1", "BUY", "SELL", "", "1790658661234", "-1"]),
                  st.lists(st.fixed_dictionaries({"price": _json, "size": _json}), max_size=3),
                  st.lists(st.dictionaries(_keys, st.sampled_from(["0.5", "BUY", "1", None]), max_size=6),
                           max_size=3))
_objs = st.builds(lambda et, d: dict(d, event_type=et), _etype, st.dictionaries(_keys, _vals, max_size=10))


def _only_frame_error(f) -> None:
    try:
        parse_frame(f, RECV)
    except FrameError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(b):
    _only_frame_error(b)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_fuzz_random_json(v):
    _only_frame_error(json.dumps(v).encode())


@settings(max_examples=600, deadline=None)
@given(st.one_of(_objs, st.lists(_objs, max_size=3)))
def test_fuzz_event_shaped_objects(v):
    f = json.dumps(v).encode()      # stdlib: big ints and NaN pass through as JSON text
    _only_frame_error(f)
    try:
        parse_rest_book(f)
    except FrameError:
        pass
