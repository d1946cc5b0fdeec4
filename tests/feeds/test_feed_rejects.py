"""The feed shell counts insane values per reason (issue 15, item 1) and writes none of them: real
capture frames, some mutated, through the one frame loop into real shared-memory rings."""
from __future__ import annotations

import orjson
import pytest

from actors.feed.shell import Feed
from actors.venues.binance import futures as binance_futures
from actors.venues.polymarket import chainlink
from config.settings import load_settings
from ipc import names
from ipc.bus import Publisher
from ipc.shm import unlink_prefix
from tests.support.fixtures import BINANCE, POLYMARKET, need
from tests.support.rings import open_reader


def _settings(tmp_path, tag: str):
    return load_settings(shm_prefix=tag + tmp_path.name[-8:].replace("_", ""), zmq_xsub_url="tcp://127.0.0.1:1")


@pytest.fixture
def futures_feed(tmp_path):
    s = _settings(tmp_path, "r")
    f = Feed(s, binance_futures, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    yield f
    f.pub.close()
    unlink_prefix("/dev/shm", s.ipc.shm_prefix)


def _with(frame: bytes, **data) -> bytes:
    d = orjson.loads(frame)
    d["data"].update(data)
    return orjson.dumps(d)


def test_insane_binance_values_are_counted_per_reason_and_never_reach_a_ring(futures_feed):
    feed = futures_feed
    lines = need(BINANCE / "futures_btcusdt_trade_stream_2024-08-08.log").read_bytes().splitlines()[:40]
    frames = [ln.split(b" ", 1)[1].replace(b'"btcusdt@trade"', b'"btcusdt@aggTrade"') for ln in lines]
    # the capture is the plain trade stream: as aggTrades they need a, f, l (the trade id)
    frames = [_with(fr, a=orjson.loads(fr)["data"]["t"], f=orjson.loads(fr)["data"]["t"],
                    l=orjson.loads(fr)["data"]["t"]) for fr in frames]
    bad = {3: {"p": "0"}, 7: {"p": "NaN"}, 11: {"p": "1e400"}, 19: {"q": "-1"}, 23: {"m": "false"}}
    for i, change in bad.items():
        frames[i] = _with(frames[i], **change)
    quote = need(BINANCE / "futures_bookTicker.json").read_bytes().replace(b"sushiusdt", b"btcusdt")
    crossed = _with(quote, b="7.7")
    conn = next(c for c in feed.conns if "btcusdt@aggTrade" in c.plan.streams)
    feed.handle_frames(conn, frames, 1_723_075_200_000_000_000)
    pconn = next(c for c in feed.conns if "btcusdt@bookTicker" in c.plan.streams)
    feed.handle_frames(pconn, [crossed, quote, crossed], 1_723_075_200_000_000_001)

    assert feed.rejected == {"trade:price": 3, "trade:qty": 1, "trade:m": 1, "quote:crossed": 2}
    assert feed.counters()["rejected"] == feed.rejected
    assert feed.parse_errors == 7 and feed.unknown == 0
    trades = open_reader(names.venue_ring("futures", "trade"), feed.s.ipc.shm_prefix, from_oldest=True).read()
    want = [orjson.loads(fr)["data"]["t"] for i, fr in enumerate(frames) if i not in bad]
    assert trades["trade_id"].tolist() == want and len(want) == 35
    assert (trades["price"] > 50_000).all() and (trades["qty"] > 0).all()
    assert set(trades["side"].tolist()) <= {-1, 1}
    quotes = open_reader(names.venue_ring("futures", "quote"), feed.s.ipc.shm_prefix, from_oldest=True).read()
    assert quotes[["bid", "ask"]].tolist() == [(7.611, 7.612)]


def test_insane_chainlink_price_is_counted_and_not_written(tmp_path):
    s = _settings(tmp_path, "q")
    feed = Feed(s, chainlink.ChainlinkVenue(s), "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    try:
        lines = need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl").read_bytes().splitlines()
        docs = [orjson.loads(x) for x in lines[:4]]
        docs[1]["payload"]["full_accuracy_value"] = "0"
        del docs[2]["payload"]["full_accuracy_value"]
        docs[2]["payload"]["value"] = "NaN"
        feed.handle_frames(feed.conns[0], [orjson.dumps(d) for d in docs], 1_771_820_700_000_000_000)
        assert feed.rejected == {"chainlink:price": 2} and feed.parse_errors == 2
        sink = feed.sinks["chainlink"]
        assert sink.written == 2
        recs = open_reader(names.CHAINLINK_RING, s.ipc.shm_prefix, "BTCUSDT", from_oldest=True).read()
        assert recs["price"].tolist() == [docs[0]["payload"]["value"], docs[3]["payload"]["value"]]
    finally:
        feed.pub.close()
        unlink_prefix("/dev/shm", s.ipc.shm_prefix)
