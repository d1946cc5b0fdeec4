"""The one envelope through the one loop of the feed shell: a frame of many records (an RTDS
snapshot) and a frame of one go through the same path, with de-duplication across them."""
from __future__ import annotations

import orjson
import pytest

from actors.feed.shell import Feed
from actors.venues.polymarket import chainlink
from config.settings import load_settings
from ipc.bus import Publisher
from ipc.shm import unlink_prefix

MS = 1_000_000


@pytest.fixture
def feed(tmp_path):
    s = load_settings(shm_prefix="e" + tmp_path.name[-8:].replace("_", ""), zmq_xsub_url="tcp://127.0.0.1:1")
    f = Feed(s, chainlink.ChainlinkVenue(s), "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    yield f
    unlink_prefix("/dev/shm", s.ipc.shm_prefix)


def test_a_snapshot_and_an_update_share_one_loop_and_one_dedup(feed):
    conn = feed.conns[0]
    snap = {"topic": "crypto_prices_chainlink", "type": "subscribe", "timestamp": 1782943987064,
            "payload": {"symbol": "btc/usd", "data": [{"timestamp": 1782943900000 + 1000 * i, "value": 60750.0 + i}
                                                      for i in range(3)]}}
    upd = {"topic": "crypto_prices_chainlink", "type": "update", "timestamp": 1782943902100,
           "payload": {"symbol": "btc/usd", "timestamp": 1782943902000, "value": 60752.0}}
    new = dict(upd, payload=dict(upd["payload"], timestamp=1782943903000, value=60753.5))
    feed.handle_frames(conn, [orjson.dumps(snap), orjson.dumps(upd), orjson.dumps(new), b"PONG"], 5)
    sink = feed.sinks["chainlink"]
    assert (sink.frames, sink.written, sink.duplicates) == (3, 4, 1)
    assert feed.acks == 1 and feed.unknown == 0 and feed.parse_errors == 0
    assert sink.last_event_ns == 1782943903000 * MS
    h = feed.health()["streams"]["chainlink"]
    assert h["written"] == 4 and h["ring_count"] == 4 and h["duplicates"] == 1
