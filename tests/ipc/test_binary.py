"""Binary record batches (ipc/binary.py) on a real bus: the spot feed shell, fed a real capture's
aggTrade frames read by read, publishes each read's records as one `bin.tick.…` message that is
byte for byte what its ring holds, next to the JSON ticks of the same records; the typed client
decodes them with numpy; wrapping, splitting, gap records and no-subscriber skips; every junk
binary message is counted under its reason, never raised."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import orjson
import pytest
import zmq

from actors.feed.shell import Feed
from actors.feed.sink import Sink
from actors.venues.binance import spot as binance_spot
from config.settings import load_settings
from ipc import binary, names
from ipc.bus import PAYLOAD_VERSION, Proxy, Publisher, free_tcp_port
from ipc.client import Client, Records, Trade
from ipc.ring import RingWriter
from ipc.schema import DTYPES, FLAG_GAP, TRADE
from ipc.shm import unlink_prefix
from tests.support.fixtures import BINANCE, capture, need
from tests.support.wait import wait_for

SYMBOL = "BTCUSDT"
SPOT_TRADE = names.SPOT_RINGS["trade"]
BIN_TOPIC = SPOT_TRADE.binary_topic(SYMBOL)


@pytest.fixture
def bus():
    ctx = zmq.Context()
    xsub, xpub, xbin = (f"tcp://127.0.0.1:{free_tcp_port()}" for _ in range(3))
    proxy = Proxy(xsub, xpub, ctx, bin_url=xbin)
    th = threading.Thread(target=proxy.run, daemon=True)
    th.start()
    yield ctx, xsub, xpub, xbin
    # the test's sockets closed here, the proxy's by the proxy: closing a socket another thread
    # polls (what ctx.destroy does) can leave that thread in its poll; term wakes it with ETERM
    mine = {proxy.xsub, *proxy.outs}
    for sock in list(ctx._sockets):
        if sock not in mine and not sock.closed:
            sock.close(linger=0)
    ctx.term()
    th.join(5)
    assert not th.is_alive()


def joined(pub: Publisher, *topics: str) -> None:
    wait_for(lambda: (pub.refresh(), all(pub.wants(t.encode()) for t in topics))[1], 10,
             f"subscribers of {topics}")


def take(client: Client, n: int, timeout_s: float = 10.0) -> list:
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n:
        left_ms = int((deadline - time.monotonic()) * 1000)
        assert left_ms > 0, f"{len(out)} of {n} messages came"
        m = client.recv(left_ms)
        if m is not None:
            out.append(m)
    return out


def spot_frames() -> list[bytes]:
    return [raw for origin, _, raw in capture(need(BINANCE / "spot_btcusdt_aggTrade_stream_2021-04-04.log"))
            if origin == "ws"]


def test_each_read_goes_out_as_one_batch_equal_to_the_ring_and_to_the_json_ticks(bus, tmp_path):
    ctx, xsub, xpub, xbin = bus
    prefix = "b" + tmp_path.name[-8:].replace("_", "")
    s = load_settings(shm_prefix=prefix, zmq_xsub_url=xsub, depth_enabled=False)
    pub = Publisher(xsub, ctx=ctx)
    feed = Feed(s, binance_spot, "test", publisher=pub)
    client = Client(xbin, (BIN_TOPIC,), ctx=ctx, rcvhwm=0)
    ticks_client = Client(xpub, ("",), ctx=ctx, rcvhwm=0)          # everything on the JSON endpoint
    try:
        joined(pub, BIN_TOPIC, SPOT_TRADE.topic(SYMBOL))
        frames = spot_frames()
        assert len(frames) == 1227
        conn = feed.conns[0]
        reads = [frames[:500], frames[500:1000], frames[1000:]]
        for i, chunk in enumerate(reads):
            feed.handle_frames(conn, chunk, 1_700_000_000_000_000_000 + i)
        batches = take(client, 3)
        msgs = take(ticks_client, 1227)
        ticks = [m.model for m in msgs]
        # the JSON endpoint's subscriber of everything gets the JSON ticks and no binary message
        assert all(m.error is None and m.topic == SPOT_TRADE.topic(SYMBOL) for m in msgs)
        assert all(m.error is None for m in batches)
        assert all(isinstance(b.model, Records) and b.model.kind == "trade" for b in batches)
        # one message per read, numbered from the ring's first record, seq +1 each
        assert [(b.model.first, b.model.n, b.model.seq) for b in batches] == [(0, 500, 1), (500, 500, 2), (1000, 227, 3)]
        ring = feed.sinks["trade"].ring
        for b in batches:                                              # byte for byte the ring
            assert b.model.records.tobytes() == ring._data[b.model.first:b.model.first + b.model.n].tobytes()
        recs = np.concatenate([b.model.records for b in batches])
        assert recs.dtype == TRADE and not any(b.model.records.flags.writeable for b in batches)
        # the capture's first trade, exactly
        assert (int(recs["trade_id"][0]), float(recs["price"][0]), float(recs["qty"][0]), int(recs["side"][0])) \
            == (665076760, 58001.03, 0.086205, -1)
        assert int(recs["ts_event_ns"][0]) == 1617566591314 * 1_000_000
        # the JSON ticks carry the same records, field for field
        assert all(isinstance(t, Trade) for t in ticks)
        assert [t.trade_id for t in ticks] == recs["trade_id"].tolist()
        assert [t.price for t in ticks] == recs["price"].tolist() and [t.qty for t in ticks] == recs["qty"].tolist()
        assert [t.ts_recv_ns for t in ticks] == recs["ts_recv_ns"].tolist()
        # a record written outside a read goes out at once, alone; a gap marker is a record too
        rec = tuple(recs[-1].tolist())
        assert feed.write("btcusdt@aggTrade", rec[:3] + (rec[3] + 1,) + rec[4:])
        feed.sinks["trade"].mark_gap(pub, "disconnect")
        more = take(client, 2)
        assert [type(m.model).__name__ for m in take(ticks_client, 2)] == ["Trade", "TickGap"]
        assert ticks_client.recv(200) is None and ticks_client.skipped == Counter()
        assert [(m.model.first, m.model.n) for m in more] == [(1227, 1), (1228, 1)]
        assert int(more[0].model.records["trade_id"][0]) == 665076760 + 1227
        assert more[1].model.gaps.tolist() == [True] and int(more[1].model.records["flags"][0]) == FLAG_GAP
        assert client.tracks[BIN_TOPIC].gaps == 0 and client.tracks[BIN_TOPIC].received == 5
    finally:
        client.close(), ticks_client.close()
        for sk in feed.sinks.values():
            sk.ring.close()
        pub.close()
        unlink_prefix("/dev/shm", prefix)


def test_a_wrapped_ring_goes_out_in_order_and_large_batches_are_split(bus, segs):
    ctx, xsub, xpub, xbin = bus
    pub = Publisher(xsub, ctx=ctx)
    client = Client(xbin, (names.BINARY_PREFIX,), ctx=ctx, rcvhwm=0)
    small = RingWriter("/dev/shm", SPOT_TRADE.name(segs.prefix, SYMBOL), TRADE, 8)
    big = RingWriter("/dev/shm", names.FUTURES_RINGS["trade"].name(segs.prefix, SYMBOL), TRADE, 8192)
    try:
        a = Sink("trade", small, b"tick.spot.trade.BTCUSDT")
        b = Sink("trade", big, b"tick.futures.trade.BTCUSDT")
        joined(pub, a.bin_topic.decode(), b.bin_topic.decode())
        for i in range(13):                   # 13 into 8 slots: the oldest 5 are gone
            a.accept((i, i + 1, 0, i, i, i, 100.0 + i, 1.0, 1), pub)
        a.flush(pub)
        got = take(client, 2)
        assert [(m.model.first, m.model.n) for m in got] == [(5, 3), (8, 5)]
        assert np.concatenate([m.model.records for m in got])["trade_id"].tolist() == list(range(5, 13))
        for i in range(5000):
            b.accept((i, i + 1, 0, i, i, i, 100.0, 1.0, -1), pub)
        b.flush(pub)
        got = take(client, 2)
        assert [(m.model.first, m.model.n) for m in got] == [(0, binary.MAX_BATCH), (binary.MAX_BATCH, 5000 - binary.MAX_BATCH)]
        assert np.concatenate([m.model.records for m in got])["trade_id"].tolist() == list(range(5000))
        # nobody on a binary topic: nothing is built, the skip is counted
        client.close()
        wait_for(lambda: (pub.refresh(), not pub.wants(b.bin_topic))[1], 10, "the unsubscribe")
        sent, skipped = pub.sent, pub.skipped
        b.accept((5000, 1, 0, 5000, 1, 1, 100.0, 1.0, 1), pub)
        b.flush(pub)
        assert pub.sent == sent and pub.skipped > skipped
    finally:
        small.close(), big.close(), pub.close()


def test_the_header_says_how_to_decode_the_body_without_this_package():
    recs = np.zeros(3, dtype=TRADE)
    recs["trade_id"] = [7, 8, 9]
    recs["price"] = [65000.5, 65001.0, 64999.25]
    header = binary.encode_header("trade", 4, 99, PAYLOAD_VERSION, 1_700_000_000_000_000_001, 42, 3)
    h = json.loads(header)
    assert h == {"seq": 4, "boot": 99, "v": PAYLOAD_VERSION, "ts_ns": 1_700_000_000_000_000_001,
                 "pub_ts_ns": 1_700_000_000_000_000_001, "first": 42, "n": 3, "kind": "trade",
                 "dtype": binary.descr_text(TRADE)}
    generic = np.lib.format.descr_to_dtype([tuple(f) for f in json.loads(h["dtype"])])
    assert generic == TRADE
    assert np.frombuffer(recs.tobytes(), generic)["price"].tolist() == [65000.5, 65001.0, 64999.25]
    doc, back = binary.decode(header, recs.tobytes())
    assert doc["first"] == 42 and back.tobytes() == recs.tobytes()
    # every record kind round-trips through its descr text (which the ring header stores too)
    for kind, dt in DTYPES.items():
        assert np.lib.format.descr_to_dtype([tuple(f) for f in json.loads(binary.descr_text(dt))]) == dt, kind


def test_junk_binary_messages_are_counted_and_handed_on(bus):
    ctx, xsub, xpub, xbin = bus
    client = Client(xbin, ("bin.",), ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    joined(pub, "bin.tick.futures.trade.BTCUSDT")
    topic = b"bin.tick.futures.trade.BTCUSDT"
    good = np.zeros(2, dtype=TRADE).tobytes()
    head = lambda s_, **kw: orjson.dumps({**orjson.loads(binary.encode_header("trade", s_, 7, PAYLOAD_VERSION, 1, 0, 2)), **kw})
    send = pub.sock.send_multipart
    send([topic, b"{not json", good])
    send([topic, b"[1]", good])
    send([topic, head(1, seq="1"), good])
    send([topic, head(1, kind="nope"), good])
    send([topic, head(2, dtype='[["x", "<f8"]]'), good])
    send([topic, head(3), good[:-1]])                      # a byte short of two records
    send([topic, head(4, n=-1), b""])
    send([topic, orjson.dumps({"seq": 5, "boot": 7, "v": PAYLOAD_VERSION, "ts_ns": 1, "pub_ts_ns": 1})])  # JSON on a bin topic
    send([topic, head(6, v=PAYLOAD_VERSION + 1), good])
    send([b"bin.tick.nowhere.x.Y", head(1), good])
    send([topic, head(7), good])
    got = take(client, 11)
    assert [m.error.reason if m.error else None for m in got] == \
        ["not_json", "not_object", "stamps", "unknown_topic", "version", "malformed", "malformed", "malformed",
         "version", "unknown_topic", None]
    assert client.skipped == Counter(not_json=1, not_object=1, stamps=1, unknown_topic=2, version=2, malformed=3)
    ok = got[-1].model
    assert isinstance(ok, Records) and ok.n == 2 and ok.records["trade_id"].tolist() == [0, 0]
    client.close(), pub.close()


def test_every_ring_has_a_binary_topic_of_its_own():
    topics = [r.binary_topic(SYMBOL) for rings in names.VENUE_RINGS.values() for r in rings.values()]
    assert len(set(topics)) == len(topics) and all(t.startswith("bin.tick.") for t in topics)
    assert names.FUTURES_RINGS["trade"].binary_topic(SYMBOL) == "bin.tick.futures.trade.BTCUSDT"
    assert names.VENUE_RINGS["poly"]["poly_book_15m"].binary_topic(SYMBOL) == "bin.tick.poly.book.15m"
    assert names.VENUE_RINGS["poly"]["poly_trade_1h"].binary_topic(SYMBOL) == "bin.tick.poly.trade.1h"
