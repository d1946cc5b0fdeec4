"""actors.venues.binance.parse on real Binance captures (../shared/fixtures/binance, see its SOURCES.md).

Expected values are written out from the fixture text, not recomputed with the parser. markPrice and
forceOrder have no data-file capture, so those tests use literal frames in Binance's documented shape.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from actors.venues.binance import parse as bn
from actors.venues.binance.parse import Decoded, FrameError, parse_frame, stream_kind
from ipc.schema import DTYPES, FLAG_SNAPSHOT, MAX_LEVELS
from tests.support.fixtures import BINANCE, capture, need
from tests.support.frames import LIQ_FRAME, MARK_FRAME

FIX = need(BINANCE, module=True)

RECV = 1_700_000_000_123_456_789
MS = 1_000_000


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def frame(name: str) -> bytes:
    return (FIX / name).read_bytes()


def store(kind: str, rec) -> np.void:
    """Assign rec into a ring-like array exactly as a feed does, and return the stored record."""
    arr = np.zeros(1, dtype=DTYPES[kind])
    arr[0] = rec
    return arr[0]


def pad(xs: list[float]) -> list[float]:
    return list(xs) + [0.0] * (MAX_LEVELS - len(xs))


def decode_all(path: Path) -> list[Decoded]:
    return [parse_frame(body, recv if recv is not None else RECV) for _, recv, body in capture(path)]


def field(kind: str, name: str) -> int:
    return DTYPES[kind].names.index(name)


# ---------------------------------------------------------------------------------------------
# single messages: every field
# ---------------------------------------------------------------------------------------------

TRADE_CASES = {
    # aggTrade, futures 2021: a/f/l ids, m=false -> taker bought
    "futures_aggTrade.json": ("ctkusdt@aggTrade", (
        1626992741421 * MS, RECV, 0, 16599292, 23961322, 23961322, 1.011, 10.0, 1)),
    # plain trade, futures 2024 (has X): t is trade, first and last id
    "futures_trade_2024.json": ("btcusdt@trade", (
        1723161256322 * MS, RECV, 0, 5266583935, 5266583935, 5266583935, 61800.3, 0.006, 1)),
    # aggTrade, spot 2021 (has M): T, not E; m=true -> taker sold
    "spot_aggTrade.json": ("btcusdt@aggTrade", (
        1617566591314 * MS, RECV, 0, 665076760, 745522877, 745522877, 58001.03, 0.086205, -1)),
    "spot_trade_2024.json": ("btcusdt@trade", (
        1723161255342 * MS, RECV, 0, 3735683259, 3735683259, 3735683259, 61837.63, 0.02, -1)),
}

QUOTE_CASES = {
    # futures: ts_event from T (1626992741012), not E (…017)
    "futures_bookTicker.json": ("sushiusdt@bookTicker", (
        1626992741012 * MS, RECV, 0, 600859600576, 7.611, 2.0, 7.612, 297.0)),
    "futures_bookTicker_2024.json": ("btcusdt@bookTicker", (
        1723161256313 * MS, RECV, 0, 5123107839020, 61800.2, 2.507, 61800.3, 2.51)),
    # spot has neither E nor T: exchange time unknown -> 0
    "spot_bookTicker.json": ("nknusdt@bookTicker", (
        0, RECV, 0, 499869768, 0.3521, 672.0, 0.3526, 3199.0)),
    "spot_bookTicker_2024.json": ("btcusdt@bookTicker", (
        0, RECV, 0, 50093239212, 61837.63, 3.78826, 61837.64, 1.54698)),
}

KLINE_CASES = {
    "futures_kline_1m_open.json": ("ctkusdt@kline_1m", (
        1626992741424 * MS, RECV, 0, 1626992700000 * MS, 1626992759999 * MS, 60, 0,
        1.01, 1.011, 1.01, 1.011, 3917.0, 3957.899, 1729.0, 48)),
    "futures_kline_1m_closed.json": ("sushiusdt@kline_1m", (
        1626992760203 * MS, RECV, 0, 1626992700000 * MS, 1626992759999 * MS, 60, 1,
        7.608, 7.618, 7.607, 7.617, 3005.0, 22875.859, 1900.0, 113)),
    "spot_kline_1m_closed.json": ("btcusdt@kline_1m", (
        1617566640068 * MS, RECV, 0, 1617566580000 * MS, 1617566639999 * MS, 60, 1,
        57994.6, 58018.03, 57974.41, 57999.99, 23.067122, 1337913.58654308, 11.413347, 1020)),
    # spot klines: the candles hourly/daily up/down markets settle on (names.SPOT_RINGS["kline"])
    "spot_kline_1m_open.json": ("btcusdt@kline_1m", (
        1617566592358 * MS, RECV, 0, 1617566580000 * MS, 1617566639999 * MS, 60, 0,
        57994.6, 58008.75, 57994.59, 58001.03, 6.453895, 374344.56589795, 1.891131, 242)),
}


@pytest.mark.parametrize("name", sorted(TRADE_CASES))
def test_trade_samples(name):
    stream, expected = TRADE_CASES[name]
    d = parse_frame(frame(name), RECV)
    assert d == Decoded("trade", stream, (expected,))
    assert store("trade", d.recs[0]).item() == expected


@pytest.mark.parametrize("name", sorted(QUOTE_CASES))
def test_quote_samples(name):
    stream, expected = QUOTE_CASES[name]
    d = parse_frame(frame(name), RECV)
    assert d == Decoded("quote", stream, (expected,))
    assert store("quote", d.recs[0]).item() == expected


@pytest.mark.parametrize("name", sorted(KLINE_CASES))
def test_kline_samples(name):
    stream, expected = KLINE_CASES[name]
    d = parse_frame(frame(name), RECV)
    assert d == Decoded("kline", stream, (expected,))
    assert store("kline", d.recs[0]).item() == expected


def test_spot_aggtrade_2025_keeps_ids_as_sent():
    # SOURCES.md: this frame has f > l (5455447977 > 5455447976), possibly a hand edit. The parser
    # reports ids as given; judging them is the consumer's business.
    d = parse_frame(frame("spot_aggTrade_2025.json"), RECV)
    assert d.recs[0] == (1762578805656 * MS, RECV, 0, 3735249564, 5455447977, 5455447976, 102571.18, 0.00097, 1)


def test_futures_partial_depth_docs_example_raw_event():
    # The docs example is a raw event (no envelope). Its bids are sent worst-first (7403.89 up to
    # 7405.43); the record is best-first. A raw depthUpdate cannot say it is a partial book, so it
    # decodes as a diff (flags 0); ts_event from T.
    d = parse_frame(frame("futures_depth5_docs_example.json"), RECV)
    expected = (
        1571889248276 * MS, RECV, 0, 390497878, 390497796, 390497794, 5, 5,
        pad([7405.43, 7404.85, 7404.0, 7403.9, 7403.89]), pad([2.562, 5.239, 1.428, 3.906, 0.002]),
        pad([7405.96, 7406.63, 7407.08, 7407.15, 7407.2]), pad([3.34, 4.525, 2.475, 4.8, 0.175]),
    )
    assert d == Decoded("depth", "", (expected,))

    # The same event on a combined stream named depth5 is a snapshot.
    wrapped = b'{"stream":"btcusdt@depth5@100ms","data":' + frame("futures_depth5_docs_example.json") + b"}"
    d2 = parse_frame(wrapped, RECV)
    assert d2 == Decoded("depth", "btcusdt@depth5@100ms", (expected[:2] + (FLAG_SNAPSHOT,) + expected[3:],))
    r = store("depth", d2.recs[0])
    assert r["flags"] == FLAG_SNAPSHOT and r["n_bids"] == 5 and r["bid_px"][0] == 7405.43


def test_spot_partial_depth20():
    # Spot partial depth: only {lastUpdateId, bids, asks}; the symbol is only in the stream name.
    d = parse_frame(frame("spot_depth20_100ms.json"), RECV)
    bids = [
        (102571.17, 0.3898), (102571.16, 0.00309), (102571.14, 0.00012), (102571.13, 0.01408),
        (102571.10, 0.0001), (102569.97, 0.0001), (102569.70, 0.00499), (102569.64, 0.00012),
        (102569.63, 0.11049), (102569.32, 0.00012), (102569.31, 0.32206), (102568.14, 0.00006),
        (102567.59, 0.00097), (102566.61, 0.00087), (102566.04, 0.00049), (102565.08, 0.00006),
        (102564.78, 0.0001), (102564.71, 0.00005), (102564.35, 0.00012), (102564.34, 0.03763),
    ]
    asks = [
        (102571.18, 5.54123), (102571.23, 0.00012), (102571.24, 0.1359), (102571.25, 0.09657),
        (102571.26, 0.0001), (102572.64, 0.00005), (102573.27, 0.00257), (102573.52, 0.00012),
        (102573.53, 0.32212), (102573.94, 0.00005), (102574.76, 0.00097), (102575.16, 0.00005),
        (102575.18, 0.00005), (102575.93, 0.00012), (102575.94, 0.44754), (102576.57, 0.00006),
        (102576.58, 0.09642), (102576.59, 0.00655), (102576.60, 0.40203), (102577.04, 0.00005),
    ]
    expected = (
        0, RECV, FLAG_SNAPSHOT, 80089389252, -1, -1, 20, 20,
        [p for p, _ in bids], [q for _, q in bids], [p for p, _ in asks], [q for _, q in asks],
    )
    assert d == Decoded("depth", "btcusdt@depth20@100ms", (expected,))
    r = store("depth", d.recs[0])
    assert r["update_id"] == 80089389252 and r["n_asks"] == 20 and r["ask_qty"][19] == 0.00005


def test_futures_depth_diff():
    # Futures diff: bids arrive worst-first (7.5040, 7.6090, 7.6110); a "0" qty is a deletion, kept.
    d = parse_frame(frame("futures_depth_diff_100ms.json"), RECV)
    expected = (
        1626992741024 * MS, RECV, 0, 600859600917, 600859599090, 600859598061, 3, 2,
        pad([7.611, 7.609, 7.504]), pad([2.0, 0.0, 813.0]),
        pad([7.615, 7.622]), pad([1563.0, 3284.0]),
    )
    assert d == Decoded("depth", "sushiusdt@depth@100ms", (expected,))


def test_spot_depth_diff():
    # Spot diff: no T (ts_event from E) and no pu (-1).
    d = parse_frame(frame("spot_depth_diff_100ms.json"), RECV)
    expected = (
        1617566591307 * MS, RECV, 0, 9893032991, 9893032989, -1, 1, 2,
        pad([55000.0]), pad([135.664666]), pad([58042.29, 58055.02]), pad([0.097, 0.75]),
    )
    assert d == Decoded("depth", "btcusdt@depth@100ms", (expected,))


def test_depth_diff_wider_than_max_levels_keeps_levels_nearest_the_touch():
    frames = [body for _, _, body in capture(FIX / "futures_btcusdt_depth0ms_with_rest_snapshot_2024-08-08.log")]
    wide = next(f for f in frames if b'"e":"depthUpdate"' in f and len(orjson.loads(f)["data"]["b"]) > 3 * MAX_LEVELS)
    data = orjson.loads(wide)["data"]
    r = store("depth", parse_frame(wide, RECV).recs[0])
    best_bids = sorted(((float(p), float(q)) for p, q in data["b"]), reverse=True)[:MAX_LEVELS]
    best_asks = sorted((float(p), float(q)) for p, q in data["a"])[:MAX_LEVELS]
    assert r["n_bids"] == MAX_LEVELS and r["n_asks"] == min(MAX_LEVELS, len(data["a"]))
    assert list(r["bid_px"]) == [p for p, _ in best_bids]
    assert list(r["bid_qty"]) == [q for _, q in best_bids]
    assert list(r["ask_px"][: r["n_asks"]]) == [p for p, _ in best_asks]
    assert list(r["ask_qty"][: r["n_asks"]]) == [q for _, q in best_asks]


def test_rest_depth_snapshot_shape_decodes_as_snapshot():
    # The REST /fapi/v1/depth snapshot has E/T; the spot one has neither.
    d = parse_frame(frame("futures_depth_snapshot_rest_2024.json"), RECV)
    raw = orjson.loads(frame("futures_depth_snapshot_rest_2024.json"))
    assert d.kind == "depth" and d.stream == ""
    r = store("depth", d.recs[0])
    assert r["flags"] == FLAG_SNAPSHOT and r["update_id"] == raw["lastUpdateId"]
    assert r["ts_event_ns"] == raw["T"] * MS
    assert r["first_update_id"] == -1 and r["prev_update_id"] == -1
    assert r["bid_px"][0] == float(raw["bids"][0][0]) and r["ask_px"][19] == float(raw["asks"][19][0])

    d = parse_frame(frame("spot_depth_snapshot_rest_2024.json"), RECV)
    assert d.kind == "depth" and d.recs[0][0] == 0 and d.recs[0][2] == FLAG_SNAPSHOT


# ---------------------------------------------------------------------------------------------
# markPrice / forceOrder: no data-file capture exists; frames in Binance's documented shape
# ---------------------------------------------------------------------------------------------

def test_mark_price():
    d = parse_frame(MARK_FRAME, RECV)
    expected = (1562305380000 * MS, RECV, 0, 11794.15, 11784.25641265, 11784.62659091, 0.00038167,
                1562306400000 * MS)
    assert d == Decoded("mark", "btcusdt@markPrice@1s", (expected,))
    assert store("mark", d.recs[0]).item() == expected
    # the plain 3 s stream and the raw event decode the same way
    assert parse_frame(MARK_FRAME.replace(b"@markPrice@1s", b"@markPrice"), RECV).recs[0] == expected
    assert parse_frame(orjson.dumps(orjson.loads(MARK_FRAME)["data"]), RECV) == Decoded("mark", "", (expected,))


def test_mark_price_missing_or_empty_index_and_settle_are_nan():
    data = orjson.loads(MARK_FRAME)["data"]
    del data["i"]
    data["P"] = ""
    rec = parse_frame(orjson.dumps({"stream": "btcusdt@markPrice@1s", "data": data}), RECV).recs[0]
    r = store("mark", rec)
    assert math.isnan(r["index"]) and math.isnan(r["est_settle"])
    assert r["mark"] == 11794.15 and r["funding_rate"] == 0.00038167


def test_force_order():
    d = parse_frame(LIQ_FRAME, RECV)
    expected = (1568014460893 * MS, RECV, 0, 1568014460893 * MS, 9910.0, 9910.0, 0.014, 0.014, -1)
    assert d == Decoded("liquidation", "btcusdt@forceOrder", (expected,))
    assert store("liquidation", d.recs[0]).item() == expected
    buy = parse_frame(LIQ_FRAME.replace(b'"S":"SELL"', b'"S":"BUY"'), RECV)
    assert buy.recs[0][-1] == 1
    with pytest.raises(FrameError):
        parse_frame(LIQ_FRAME.replace(b'"S":"SELL"', b'"S":"HOLD"'), RECV)


# ---------------------------------------------------------------------------------------------
# long real streams: zero errors, exact counts, continuity
# ---------------------------------------------------------------------------------------------

LONG_STREAMS = {
    "futures_btcusdt_trade_stream_2024-08-08.log": ("trade", "btcusdt@trade", 10416),
    "futures_btcusdt_bookTicker_stream_2024-08-08.log": ("quote", "btcusdt@bookTicker", 9492),
    "spot_btcusdt_trade_stream_2024-08-08.log": ("trade", "btcusdt@trade", 9757),
    "spot_btcusdt_bookTicker_stream_2024-08-08.log": ("quote", "btcusdt@bookTicker", 11377),
    "spot_btcusdt_aggTrade_stream_2021-04-04.log": ("trade", "btcusdt@aggTrade", 1227),
    "futures_bookTicker_stream_2021-07-22.log": ("quote", {
        "sushiusdt@bookTicker", "akrousdt@bookTicker", "keepusdt@bookTicker", "ctkusdt@bookTicker"}, 613),
    "spot_btcusdt_depth100ms_stream_2025-12-07.jsonl": ("depth", "btcusdt@depth@100ms", 3286),
}


@pytest.fixture(scope="module")
def long_decoded() -> dict[str, list[Decoded]]:
    return {name: decode_all(FIX / name) for name in LONG_STREAMS}


@pytest.mark.parametrize("name", sorted(LONG_STREAMS))
def test_long_stream_parses_completely(name, long_decoded):
    kind, streams, count = LONG_STREAMS[name]
    decoded = long_decoded[name]
    assert len(decoded) == count
    assert Counter(d.kind for d in decoded) == {kind: count}
    assert {d.stream for d in decoded} == (streams if isinstance(streams, set) else {streams})
    # all records fit the ring dtype in one assignment
    arr = np.zeros(count, dtype=DTYPES[kind])
    for i, d in enumerate(decoded):
        arr[i] = d.recs[0]
    assert (arr["flags"] == 0).all()
    # exchange ms -> ns and receive ns line up (the captures' clocks are within 2 s of Binance)
    has_event = arr["ts_event_ns"] != 0
    if name.endswith(".log") and has_event.any():
        lag = arr["ts_recv_ns"][has_event] - arr["ts_event_ns"][has_event]
        assert np.abs(lag).max() < 2_000 * MS
    if name.startswith("spot_btcusdt_bookTicker"):
        assert not has_event.any()   # spot bookTicker never carries E/T
    else:
        assert has_event.all()


@pytest.mark.parametrize("name", [
    "futures_btcusdt_trade_stream_2024-08-08.log",
    "spot_btcusdt_trade_stream_2024-08-08.log",
    "spot_btcusdt_aggTrade_stream_2021-04-04.log",
])
def test_trade_ids_are_contiguous(name, long_decoded):
    arr = np.array([d.recs[0] for d in long_decoded[name]], dtype=DTYPES["trade"])
    assert (np.diff(arr["trade_id"]) == 1).all()
    assert (arr["first_id"][1:] == arr["last_id"][:-1] + 1).all()
    assert (arr["first_id"] <= arr["last_id"]).all()
    assert (np.diff(arr["ts_event_ns"]) >= 0).all()
    assert set(np.unique(arr["side"])) == {-1, 1}
    assert (arr["price"] > 0).all() and (arr["qty"] > 0).all()


@pytest.mark.parametrize("name", [
    "futures_btcusdt_bookTicker_stream_2024-08-08.log",
    "spot_btcusdt_bookTicker_stream_2024-08-08.log",
])
def test_book_ticker_ids_increase_and_book_is_uncrossed(name, long_decoded):
    arr = np.array([d.recs[0] for d in long_decoded[name]], dtype=DTYPES["quote"])
    assert (np.diff(arr["update_id"]) > 0).all()
    assert (arr["bid"] < arr["ask"]).all()


def check_depth_levels(r) -> None:
    nb, na = int(r["n_bids"]), int(r["n_asks"])
    assert nb <= MAX_LEVELS and na <= MAX_LEVELS
    assert (np.diff(r["bid_px"][:nb]) < 0).all(), "bids best-first"
    assert (np.diff(r["ask_px"][:na]) > 0).all(), "asks best-first"
    for a in (r["bid_px"][nb:], r["bid_qty"][nb:], r["ask_px"][na:], r["ask_qty"][na:]):
        assert (a == 0).all(), "padding is zero"


def test_spot_depth_2025_stream_is_contiguous(long_decoded):
    arr = np.array([d.recs[0] for d in long_decoded["spot_btcusdt_depth100ms_stream_2025-12-07.jsonl"]],
                   dtype=DTYPES["depth"])
    assert (arr["first_update_id"][1:] == arr["update_id"][:-1] + 1).all()
    assert (arr["prev_update_id"] == -1).all()
    assert (arr["flags"] == 0).all()
    assert arr["first_update_id"][0] == 82626886844 and arr["update_id"][-1] > arr["update_id"][0]
    # diffs often carry more than MAX_LEVELS levels a side: counted so a change in the data shows
    raw = [orjson.loads(b)["data"] for _, _, b in capture(FIX / "spot_btcusdt_depth100ms_stream_2025-12-07.jsonl")]
    assert sum(len(d["b"]) > MAX_LEVELS or len(d["a"]) > MAX_LEVELS for d in raw) == 219
    for r in arr:
        check_depth_levels(r)


def test_futures_depth0ms_2024_syncs_with_rest_snapshot():
    decoded = decode_all(FIX / "futures_btcusdt_depth0ms_with_rest_snapshot_2024-08-08.log")
    assert Counter((d.kind, d.stream) for d in decoded) == {
        ("depth", "btcusdt@depth@0ms"): 1147, ("depth", ""): 1}
    snap = next(store("depth", d.recs[0]) for d in decoded if d.stream == "")
    diffs = np.array([d.recs[0] for d in decoded if d.stream], dtype=DTYPES["depth"])
    assert snap["flags"] == FLAG_SNAPSHOT
    assert (diffs["prev_update_id"][1:] == diffs["update_id"][:-1]).all()   # 0 pu gaps
    first = np.flatnonzero((diffs["first_update_id"] <= snap["update_id"])
                           & (diffs["update_id"] >= snap["update_id"]))
    assert len(first) == 1
    for r in diffs:
        check_depth_levels(r)


def test_spot_depth100ms_2024_syncs_with_rest_snapshot():
    decoded = decode_all(FIX / "spot_btcusdt_depth100ms_with_rest_snapshot_2024-08-08.log")
    assert Counter((d.kind, d.stream) for d in decoded) == {
        ("depth", "btcusdt@depth@100ms"): 1653, ("depth", ""): 1}
    snap = next(store("depth", d.recs[0]) for d in decoded if d.stream == "")
    diffs = np.array([d.recs[0] for d in decoded if d.stream], dtype=DTYPES["depth"])
    assert (diffs["first_update_id"][1:] == diffs["update_id"][:-1] + 1).all()
    assert snap["ts_event_ns"] == 0 and snap["flags"] == FLAG_SNAPSHOT
    first = np.flatnonzero((diffs["first_update_id"] <= snap["update_id"] + 1)
                           & (diffs["update_id"] >= snap["update_id"] + 1))
    assert len(first) == 1


RAW_CAPTURES = {
    "cryptofeed_futures_ws_2021-07-22.log": (
        {"trade": 91, "depth": 764, "kline": 67, "quote": 613}, 4, 0),
    "cryptofeed_spot_ws_2021-10-11.log": (
        {"depth": 177, "quote": 84, "trade": 2, "kline": 2}, 0, 0),
    "cryptofeed_spot_btcusdt_ethusdt_dotusdt_2021-04-04.log": (
        {"trade": 1910, "depth": 2688, "kline": 118}, 3, 3),
}


@pytest.mark.parametrize("name", sorted(RAW_CAPTURES))
def test_raw_cryptofeed_ws_capture(name):
    kinds, n_closed, n_rest = RAW_CAPTURES[name]
    lines = capture(FIX / "raw_captures" / name)
    ws = [parse_frame(b, recv) for origin, recv, b in lines if origin == "ws"]
    rest = [parse_frame(b, recv) for origin, recv, b in lines if origin == "rest"]
    assert Counter(d.kind for d in ws) == kinds          # no 'unknown', no FrameError
    assert all(d.stream for d in ws)
    klines = np.array([d.recs[0] for d in ws if d.kind == "kline"], dtype=DTYPES["kline"])
    assert int(klines["closed"].sum()) == n_closed
    assert (klines["tf_sec"] == 60).all()
    # the inline REST depth snapshots have the spot partial-depth shape
    assert [(d.kind, d.recs[0][2]) for d in rest] == [("depth", FLAG_SNAPSHOT)] * n_rest

    # per-symbol depth continuity: futures by pu == previous u, spot by U == previous u + 1
    last: dict[str, int] = {}
    gaps = 0
    for d in ws:
        if d.kind != "depth":
            continue
        r = store("depth", d.recs[0])
        check_depth_levels(r)
        if d.stream in last:
            prev = last[d.stream]
            if r["prev_update_id"] != -1:
                gaps += r["prev_update_id"] != prev
            else:
                gaps += r["first_update_id"] != prev + 1
        last[d.stream] = int(r["update_id"])
    assert gaps == 0


def test_stream_names_in_capture_headers_route_correctly():
    header = (FIX / "raw_captures" / "cryptofeed_futures_ws_2021-07-22.log").read_text().splitlines()[0]
    streams = header.split("streams=", 1)[1].split()[0].split("/")
    routes = Counter((s.split("@", 1)[1], bn.futures_route(s)) for s in streams)
    assert routes == {
        ("aggTrade", bn.FUTURES_MARKET_ROUTE): 4, ("kline_1m", bn.FUTURES_MARKET_ROUTE): 4,
        ("depth@100ms", bn.FUTURES_PUBLIC_ROUTE): 4, ("bookTicker", bn.FUTURES_PUBLIC_ROUTE): 4,
    }


# ---------------------------------------------------------------------------------------------
# envelopes, acks, errors, malformed input
# ---------------------------------------------------------------------------------------------

def test_ack_and_error_frames():
    assert parse_frame(b'{"result":null,"id":1}', RECV) == Decoded("ack", "", ({"result": None, "id": 1},))
    err = {"error": {"code": 2, "msg": "Invalid request"}, "id": 1}
    assert parse_frame(orjson.dumps(err), RECV) == Decoded("error", "", (err,))
    err2 = {"code": -1121, "msg": "Invalid symbol."}
    assert parse_frame(orjson.dumps(err2), RECV) == Decoded("error", "", (err2,))


def test_str_and_bytes_frames_decode_alike():
    f = frame("futures_aggTrade.json")
    assert parse_frame(f.decode(), RECV) == parse_frame(f, RECV)


def test_raw_events_without_envelope():
    for name in ("futures_aggTrade.json", "spot_trade_2024.json", "futures_bookTicker.json",
                 "futures_kline_1m_closed.json", "futures_depth_diff_100ms.json"):
        enveloped = parse_frame(frame(name), RECV)
        raw = parse_frame(orjson.dumps(orjson.loads(frame(name))["data"]), RECV)
        assert raw == Decoded(enveloped.kind, "", enveloped.recs), name
    # spot bookTicker and spot partial depth have no "e": recognised by shape
    raw_bt = orjson.dumps(orjson.loads(frame("spot_bookTicker.json"))["data"])
    assert parse_frame(raw_bt, RECV) == Decoded("quote", "", (QUOTE_CASES["spot_bookTicker.json"][1],))
    raw_d20 = orjson.dumps(orjson.loads(frame("spot_depth20_100ms.json"))["data"])
    assert parse_frame(raw_d20, RECV).recs[0] == parse_frame(frame("spot_depth20_100ms.json"), RECV).recs[0]


@pytest.mark.parametrize("bad", [
    b"not json at all",
    b"",
    b'{"stream":"btcusdt@aggTrade","data":',
    b"[1, 2, 3]",
    b'"btcusdt@aggTrade"',
    b"null",
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}',
    b'{"stream":"btcusdt@aggTrade"}',
    b'{"stream":"btcusdt@aggTrade","data":[1]}',
    b'{"stream":42,"data":{}}',
    b'{"stream":"btcusdt@aggTrade","data":"x"}',
    b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"k":{"t":1}}}',
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"U":1,"u":2,"b":[["x","1"]],"a":[]}}',
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"U":1,"u":2,"b":"1.0","a":[]}}',
    b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1,"bids":[]}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":null,"B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@trade","data":{"e":"trade","T":"soon","t":1,"p":"1","q":"1","m":true}}',
])
def test_malformed_frames_raise(bad):
    with pytest.raises(FrameError):
        parse_frame(bad, RECV)


def test_non_numeric_price_raises_with_reason():
    f = frame("futures_aggTrade.json").replace(b'"p":"1.01100"', b'"p":"abc"')
    with pytest.raises(FrameError, match="abc"):
        parse_frame(f, RECV)
    assert issubclass(FrameError, ValueError)


def test_frame_error_message_is_truncated():
    big = b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","pad":"' + b"x" * 10_000 + b'"}}'
    with pytest.raises(FrameError) as info:
        parse_frame(big, RECV)
    assert "missing field" in str(info.value)
    assert len(str(info.value)) < 400


SHUTDOWN = b'{"e":"serverShutdown","E":1700000000000}'     # the documented event (NautilusTrader's shape)


@pytest.mark.parametrize("f,stream", [
    (SHUTDOWN, ""),                                                            # raw stream
    (b'{"stream":"btcusdt@aggTrade","data":' + SHUTDOWN + b"}", "btcusdt@aggTrade"),   # combined
    (b'{"stream":"serverShutdown","data":' + SHUTDOWN + b"}", "serverShutdown"),       # any stream name
    (b'{"event":' + SHUTDOWN + b"}", ""),                                      # WebSocket-API form
    (b'{"e":"serverShutdown"}', ""),                                           # no event time: still it
    ('{"e":"serverShutdown","E":1700000000000}', ""),                          # a str frame
])
def test_server_shutdown_decodes_to_shutdown(f, stream):
    assert parse_frame(f, RECV) == Decoded("shutdown", stream, ())


def test_shutdown_lookalikes_are_not_shutdowns():
    assert parse_frame(b'{"e":"servershutdown","E":1}', RECV).kind == "unknown"
    assert parse_frame(b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker"}}', RECV).kind == "unknown"
    assert parse_frame(b'{"event":{"e":"other"}}', RECV).kind == "unknown"
    with pytest.raises(FrameError):                 # a combined envelope without data stays malformed
        parse_frame(b'{"stream":"btcusdt@aggTrade","data":[1]}', RECV)


def test_unknown_stream_and_event_types():
    f = b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1,"s":"BTCUSDT"}}'
    assert parse_frame(f, RECV) == Decoded("unknown", "btcusdt@ticker", ())
    # an all-market stream (data is a list of every symbol) is unsupported, not malformed
    f = b'{"stream":"!markPrice@arr@1s","data":[{"e":"markPriceUpdate"}]}'
    assert parse_frame(f, RECV) == Decoded("unknown", "!markPrice@arr@1s", ())
    f = b'{"stream":"btcusdt@continuousKline_1m","data":{"e":"continuous_kline"}}'
    assert parse_frame(f, RECV).kind == "unknown"
    assert parse_frame(b'{"e":"24hrMiniTicker","E":1}', RECV) == Decoded("unknown", "", ())
    assert parse_frame(b'{"something":"else"}', RECV) == Decoded("unknown", "", ())
    assert parse_frame(b'{"e":["aggTrade"]}', RECV) == Decoded("unknown", "", ())


@pytest.mark.parametrize("name", sorted(TRADE_CASES) + sorted(QUOTE_CASES) + sorted(KLINE_CASES) + [
    "futures_depth_diff_100ms.json", "spot_depth_diff_100ms.json", "spot_depth20_100ms.json"])
def test_unknown_keys_are_ignored(name):
    msg = orjson.loads(frame(name))
    msg["data"].update({"nq": "1", "st": 5, "zz": [1], "ps": "BOTH"})
    msg["extra"] = {"x": 1}
    assert parse_frame(orjson.dumps(msg), RECV) == parse_frame(frame(name), RECV)


def test_unknown_keys_ignored_in_literal_frames():
    for f in (MARK_FRAME, LIQ_FRAME):
        msg = orjson.loads(f)
        msg["data"].update({"nq": "1", "st": 5, "zz": [1]})
        if "o" in msg["data"]:
            msg["data"]["o"]["V"] = "EXPIRE_TAKER"
        assert parse_frame(orjson.dumps(msg), RECV) == parse_frame(f, RECV)


def test_every_kind_assigns_into_its_dtype():
    samples = {
        "trade": frame("futures_aggTrade.json"), "quote": frame("spot_bookTicker.json"),
        "mark": MARK_FRAME, "liquidation": LIQ_FRAME, "depth": frame("spot_depth20_100ms.json"),
        "kline": frame("spot_kline_1m_closed.json"),
    }
    assert set(samples) == {k for k in DTYPES if not k.startswith(("poly_", "chainlink"))}
    for kind, f in samples.items():
        d = parse_frame(f, RECV)
        assert d.kind == kind
        assert len(d.recs[0]) == len(DTYPES[kind].names)
        arr = np.zeros(1, dtype=DTYPES[kind])
        arr[0] = d.recs[0]
        for i, name in enumerate(DTYPES[kind].names):
            assert np.array_equal(arr[0][name], d.recs[0][i], equal_nan=True), (kind, name)
        assert arr[0]["ts_recv_ns"] == RECV


# ---------------------------------------------------------------------------------------------
# stream names, routes, URLs, subscribe messages
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind", [
    ("btcusdt@aggTrade", "trade"), ("btcusdt@trade", "trade"), ("btcusdt@bookTicker", "quote"),
    ("btcusdt@markPrice", "mark"), ("btcusdt@markPrice@1s", "mark"),
    ("btcusdt@forceOrder", "liquidation"),
    ("btcusdt@depth5", "depth"), ("btcusdt@depth10@100ms", "depth"), ("btcusdt@depth20@500ms", "depth"),
    ("btcusdt@depth", "depth"), ("btcusdt@depth@100ms", "depth"), ("btcusdt@depth@0ms", "depth"),
    ("btcusdt@kline_1m", "kline"), ("btcusdt@kline_1h", "kline"), ("btcusdt@kline_1M", "kline"),
    ("btcusdt@ticker", None), ("btcusdt@miniTicker", None), ("btcusdt@depth15", None),
    ("btcusdt@continuousKline_1m", None), ("!bookTicker", None), ("!forceOrder@arr", None),
    ("btcusdt", None), ("", None), ("btcusdt@depth@fast", None),
])
def test_stream_kind(name, kind):
    assert stream_kind(name) == kind


@pytest.mark.parametrize("interval,tf", [("1s", 1), ("1m", 60), ("15m", 900), ("1h", 3600),
                                         ("4h", 14400), ("1d", 86400), ("1w", 604800)])
def test_kline_intervals(interval, tf):
    msg = orjson.loads(frame("spot_kline_1m_closed.json"))
    msg["stream"] = f"btcusdt@kline_{interval}"
    msg["data"]["k"]["i"] = interval
    assert store("kline", parse_frame(orjson.dumps(msg), RECV).recs[0])["tf_sec"] == tf


def test_kline_calendar_month_takes_its_length_from_the_kline():
    msg = orjson.loads(frame("spot_kline_1m_closed.json"))
    msg["data"]["k"].update({"i": "1M", "t": 1719792000000, "T": 1722470399999})   # July 2024: 31 days
    assert parse_frame(orjson.dumps(msg), RECV).recs[0][field("kline", "tf_sec")] == 31 * 86400


def test_routes_and_urls():
    assert bn.FUTURES_MARKET_ROUTE == "/market/stream"
    assert bn.FUTURES_PUBLIC_ROUTE == "/public/stream"
    assert bn.SPOT_ROUTE == "/stream"
    for s in ("btcusdt@bookTicker", "btcusdt@depth10@100ms", "btcusdt@depth@100ms", "btcusdt@depth5"):
        assert bn.futures_route(s) == bn.FUTURES_PUBLIC_ROUTE, s
    for s in ("btcusdt@aggTrade", "btcusdt@trade", "btcusdt@markPrice@1s", "btcusdt@markPrice",
              "btcusdt@forceOrder", "btcusdt@kline_1m", "btcusdt@kline_4h"):
        assert bn.futures_route(s) == bn.FUTURES_MARKET_ROUTE, s
    with pytest.raises(ValueError):
        bn.futures_route("btcusdt@ticker")
    assert (bn.combined_url("wss://fstream.binance.com", bn.FUTURES_MARKET_ROUTE,
                            ["btcusdt@aggTrade", "btcusdt@markPrice@1s"])
            == "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s")
    assert (bn.combined_url("wss://stream.binance.com:9443/", bn.SPOT_ROUTE, ["btcusdt@bookTicker"])
            == "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker")
    with pytest.raises(ValueError):
        bn.combined_url("wss://fstream.binance.com", bn.FUTURES_PUBLIC_ROUTE, [])


def test_subscribe_messages():
    sub = bn.subscribe_msg(["btcusdt@aggTrade", "btcusdt@depth10@100ms"], 7)
    assert isinstance(sub, bytes)
    assert orjson.loads(sub) == {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth10@100ms"], "id": 7}
    unsub = bn.unsubscribe_msg(["btcusdt@aggTrade"], 8)
    assert orjson.loads(unsub) == {"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 8}
    # the venue's ack for it decodes as an ack
    assert parse_frame(b'{"result":null,"id":7}', RECV).kind == "ack"
