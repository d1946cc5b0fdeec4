"""Reports of the feed shell: a stream acked but never delivering, venue error replies, unknown
messages. The sim runs as a real process; the feed runs in-process with a deliberately wrong plan."""
from __future__ import annotations

import asyncio
import types

import pytest

from actors.feed.shell import Feed
from actors.venues.envelope import ConnPlan
from actors.venues.binance import parse as binance, futures as binance_futures
from config.settings import load_settings
from ipc.bus import Publisher
from ipc.shm import unlink_prefix

from tests.support.stack import Stack
from tests.support.wait import wait_for_async


def wrong_route_venue(settings):
    """Futures, but bookTicker requested on the /market route, where the venue never sends it."""
    s = settings.general.symbol_lower
    streams = (f"{s}@aggTrade", f"{s}@bookTicker")
    url = binance.combined_url(settings.venues.futures_ws, binance.FUTURES_MARKET_ROUTE, list(streams))
    return types.SimpleNamespace(
        VENUE="futures", parse_frame=binance.parse_frame, stream_kind=binance.stream_kind,
        max_silence_sec=binance_futures.max_silence_sec,
        plan=lambda _s: [ConnPlan("market", url, streams)])


def test_a_stream_that_never_delivers_is_reported_not_rotated(tmp_path):
    st = Stack(tmp_path).start(actors=("sim",), SIM_TRADE_RATE="50")
    try:
        s = load_settings(shm_prefix=st.env["SHM_PREFIX"], futures_ws=st.env["FUTURES_WS"],
                          feed_stale_sec=1.0, zmq_xsub_url="tcp://127.0.0.1:1")
        feed = Feed(s, wrong_route_venue(s), "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))

        async def run():
            task = asyncio.create_task(feed.run_connection(feed.conns[0]))
            await wait_for_async(lambda: feed.conns[0].silent_streams, 20, "the silent stream reported")
            feed.stop()
            await asyncio.wait_for(task, 10)

        asyncio.run(run())
        conn = feed.conns[0]
        assert conn.silent_streams == ["btcusdt@bookTicker"]
        assert conn.rotations == 0 and conn.reconnects == 0      # reported, not churned over
        assert feed.sinks["trade"].written > 0 and feed.sinks["quote"].written == 0
    finally:
        st.stop()
        unlink_prefix("/dev/shm", st.env["SHM_PREFIX"])


@pytest.fixture
def feed(tmp_path):
    s = load_settings(shm_prefix="u" + tmp_path.name[-8:].replace("_", ""), zmq_xsub_url="tcp://127.0.0.1:1")
    f = Feed(s, binance_futures, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    yield f
    unlink_prefix("/dev/shm", s.ipc.shm_prefix)


def test_venue_error_replies_and_unknown_messages_are_surfaced(feed):
    conn = feed.conns[0]
    feed.handle_frames(conn, [b'{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":7}',
                              b'{"result":null,"id":1}',
                              b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker"}}',
                              b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}',
                              b'\x00garbage'], 1)
    assert feed.venue_errors == 1 and "Invalid request" in feed.last_venue_error
    assert feed.acks == 1 and feed.unknown == 1 and feed.parse_errors == 2
    assert feed.health()["last_venue_error"] == feed.last_venue_error


def test_a_record_that_parses_but_cannot_be_stored_is_counted(feed):
    conn = feed.conns[0]
    huge = 2 ** 70      # valid JSON integer, no int64 slot can hold it
    frame = (b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"BTCUSDT",'
             b'"p":"1.0","q":"1.0","f":1,"l":1,"T":1,"m":false}}' % huge)
    # in a read with good records around it (the read goes to the ring as one block), only it is lost
    good = lambda a, p: (b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":%d,"s":"BTCUSDT",'
                         b'"p":"%s","q":"2.5","f":1,"l":1,"T":7,"m":true}}' % (a, p))
    feed.handle_frames(conn, [good(10, b"65000.5"), good(11, b"1.0").replace(b'"l":1', b'"l":%d' % huge),
                              good(12, b"65001.0")], 2)
    sink = feed.sinks["trade"]
    assert feed.parse_errors == 1 and sink.written == 2
    recs = sink.ring._data[:2]
    assert recs["trade_id"].tolist() == [10, 12] and recs["price"].tolist() == [65000.5, 65001.0]
    assert recs["side"].tolist() == [-1, -1] and recs["ts_recv_ns"].tolist() == [2, 2]
    feed.handle_frames(conn, [frame], 3)           # a read of only that record
    assert feed.parse_errors == 2 and sink.written == 2
