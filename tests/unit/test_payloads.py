"""Tick payloads (ipc/payload.py) on real captures: a record's level arrays are cut to the levels in
use, so a depth10 frame publishes 10 levels a side, never the 10 zero slots of its 20-slot ring
record; every other field is the record's own.

Expected levels come from the capture text itself (the JSON's price/qty strings, as floats, sorted
best-first), not from the parser.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from actors.venues.binance.parse import parse_frame
from actors.venues.polymarket.book import OrderBook
from ipc import names
from ipc.payload import builder, level_fields, record_doc
from ipc.schema import DTYPES, FLAG_SNAPSHOT, MAX_LEVELS
from tests.support.fixtures import BINANCE, POLYMARKET, need
from tests.support.frames import RECV, combined, poly_book_record, side

MS = 1_000_000


def test_a_depth10_frame_publishes_ten_levels_a_side_not_twenty():
    # spot `btcusdt@depth10@100ms` is {lastUpdateId, bids, asks}: the real /api/v3/depth?limit=10 body
    raw = orjson.loads(need(BINANCE / "spot_depth_rest_limit10.json").read_bytes())
    rec = parse_frame(combined("btcusdt@depth10@100ms", "spot_depth_rest_limit10.json"), RECV).recs[0]
    assert len(rec[8]) == MAX_LEVELS and rec[8][10:] == [0.0] * 10      # the ring record: 20 slots
    doc = record_doc("depth", rec)
    bpx, bq = side(raw["bids"], True)
    apx, aq = side(raw["asks"], False)
    assert doc == {"ts_event_ns": 0, "ts_recv_ns": RECV, "flags": FLAG_SNAPSHOT,
                   "update_id": 14527958487, "first_update_id": -1, "prev_update_id": -1,
                   "n_bids": 10, "n_asks": 10, "bid_px": bpx, "bid_qty": bq, "ask_px": apx, "ask_qty": aq}
    assert (bpx[0], bq[0], bpx[-1], apx[0], aq[0], apx[-1]) == \
        (60650.0, 0.00213, 60639.93, 60650.01, 0.61982, 60659.94)
    assert all(len(doc[k]) == 10 and 0.0 not in doc[k] for k in ("bid_px", "bid_qty", "ask_px", "ask_qty"))


def test_futures_depth5_best_first_five_levels():
    # the docs example of futures partial depth: bids arrive worst-first, published best-first
    rec = parse_frame(combined("btcusdt@depth5@100ms", "futures_depth5_docs_example.json"), RECV).recs[0]
    doc = record_doc("depth", rec)
    assert (doc["n_bids"], doc["n_asks"], doc["flags"]) == (5, 5, FLAG_SNAPSHOT)
    assert doc["bid_px"] == [7405.43, 7404.85, 7404.0, 7403.9, 7403.89]
    assert doc["bid_qty"] == [2.562, 5.239, 1.428, 3.906, 0.002]
    assert doc["ask_px"] == [7405.96, 7406.63, 7407.08, 7407.15, 7407.2]
    assert doc["ask_qty"] == [3.34, 4.525, 2.475, 4.8, 0.175]


def test_a_diff_keeps_its_deletions_and_nothing_else():
    # sushiusdt diff: 3 bids (one a deletion, qty 0: a real level of the diff) and 2 asks
    doc = record_doc("depth", parse_frame(need(BINANCE / "futures_depth_diff_100ms.json").read_bytes(), RECV).recs[0])
    assert (doc["flags"], doc["update_id"], doc["first_update_id"], doc["prev_update_id"]) == \
        (0, 600859600917, 600859599090, 600859598061)
    assert (doc["bid_px"], doc["bid_qty"]) == ([7.611, 7.609, 7.504], [2.0, 0.0, 813.0])
    assert (doc["ask_px"], doc["ask_qty"]) == ([7.615, 7.622], [1563.0, 3284.0])


def test_a_full_depth20_frame_is_whole():
    raw = orjson.loads(need(BINANCE / "spot_depth20_100ms.json").read_bytes())["data"]
    doc = record_doc("depth", parse_frame(need(BINANCE / "spot_depth20_100ms.json").read_bytes(), RECV).recs[0])
    assert (doc["bid_px"], doc["bid_qty"]) == side(raw["bids"], True)
    assert (doc["ask_px"], doc["ask_qty"]) == side(raw["asks"], False)
    assert doc["n_bids"] == doc["n_asks"] == 20 and doc["ask_qty"][19] == 0.00005


def test_every_frame_of_a_real_stream_publishes_exactly_its_levels():
    """3286 consecutive spot diffs: each payload side is the frame's side, best-first, exactly as
    long (at most MAX_LEVELS), and no price is 0."""
    lines = need(BINANCE / "spot_btcusdt_depth100ms_stream_2025-12-07.jsonl").read_bytes().splitlines()
    sizes = set()
    for line in lines:
        data = orjson.loads(line)["data"]
        doc = record_doc("depth", parse_frame(line, RECV).recs[0])
        assert (doc["bid_px"], doc["bid_qty"]) == side(data["b"], True)
        assert (doc["ask_px"], doc["ask_qty"]) == side(data["a"], False)
        assert (doc["n_bids"], doc["n_asks"]) == (len(doc["bid_px"]), len(doc["ask_px"]))
        assert 0.0 not in doc["bid_px"] and 0.0 not in doc["ask_px"]
        sizes.add(doc["n_bids"])
    assert len(lines) == 3286 and min(sizes) < 5 and max(sizes) > 10      # short and long sides seen


def test_a_polymarket_book_publishes_its_levels_in_use():
    raw = orjson.loads(need(POLYMARKET / "ws_book_2026_captured.json").read_bytes())
    doc = record_doc("poly_book", poly_book_record())
    bids = sorted(((float(x["price"]), float(x["size"])) for x in raw["bids"]), reverse=True)
    asks = sorted((float(x["price"]), float(x["size"])) for x in raw["asks"])[:MAX_LEVELS]
    assert (doc["n_bids"], doc["n_asks"]) == (7, 20)
    assert list(zip(doc["bid_px"], doc["bid_sz"])) == bids
    assert list(zip(doc["ask_px"], doc["ask_sz"])) == asks
    assert (doc["bid_px"][0], doc["ask_px"][0], doc["best_bid"], doc["best_ask"]) == (0.07, 0.08, 0.07, 0.08)
    assert (doc["token"], doc["update_id"], doc["window_start_ns"]) == (0, 7, 1_786_603_500 * 10**9)


def test_the_polymarket_feeds_tick_names_the_token_topic():
    """feed_poly's `tick` names a record's topic by its outcome token; the sink builds ipc.payload's
    document for it."""
    from actors.feed_poly import PolyFeed
    ring = names.poly_book_ring("15m")
    me = SimpleNamespace(_topics={ring.stream: (b"up", b"down")},
                         _token_at={ring.stream: DTYPES["poly_book"].names.index("token")})
    rec = poly_book_record()
    assert PolyFeed.tick(me, ring, rec) == b"up"
    assert PolyFeed.tick(me, ring, rec[:5] + (1,) + rec[6:]) == b"down"
    assert DTYPES["poly_book"].names[5] == "token"


def test_a_gap_record_publishes_empty_sides():
    doc = record_doc("poly_book", OrderBook().record(1, 5, 9, 0, RECV, None, flags=1))
    assert (doc["n_bids"], doc["bid_px"], doc["ask_sz"], doc["flags"]) == (0, [], [], 1)
    assert math.isnan(doc["best_bid"])                      # orjson writes it as null
    assert orjson.loads(orjson.dumps(doc))["best_bid"] is None


def test_level_arrays_follow_from_the_dtype():
    assert level_fields(DTYPES["depth"]) == (("bid_px", "n_bids"), ("bid_qty", "n_bids"),
                                             ("ask_px", "n_asks"), ("ask_qty", "n_asks"))
    assert level_fields(DTYPES["poly_book"]) == (("bid_px", "n_bids"), ("bid_sz", "n_bids"),
                                                 ("ask_px", "n_asks"), ("ask_sz", "n_asks"))
    with_levels = {k for k, dt in DTYPES.items() if any(dt.fields[f][0].shape for f in dt.names)}
    assert with_levels == {"depth", "poly_book"}
    with pytest.raises(ValueError, match="mid_px"):
        level_fields(np.dtype([("n_bids", "<u2"), ("mid_px", "<f8", (4,))]))


def test_a_record_read_back_from_a_ring_array_publishes_the_same():
    rec = parse_frame(combined("btcusdt@depth10@100ms", "spot_depth_rest_limit10.json"), RECV).recs[0]
    arr = np.zeros(1, DTYPES["depth"])
    arr[0] = rec
    doc = builder("depth")(arr[0])
    assert orjson.loads(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)) == record_doc("depth", rec)


def test_a_record_without_levels_is_its_fields():
    rec = parse_frame(need(BINANCE / "futures_aggTrade.json").read_bytes(), RECV).recs[0]
    assert record_doc("trade", rec) == dict(zip(DTYPES["trade"].names, rec))
