"""Make-before-break rotation under a stream at full rate: zero gaps, zero duplicates."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.wait import wait_for

from tests.support.stack import Stack, trade_accounting


@pytest.mark.parametrize("transport", ["websockets", "picows"])     # WS_TRANSPORT
def test_rotation_at_full_rate_loses_and_duplicates_nothing(tmp_path, transport):
    st = Stack(tmp_path).start(actors=("sim", "bus", "feed_futures"), SIM_TRADE_RATE="2000",
                               FEED_ROTATE_SEC="2", SIM_CONN_LIFETIME_SEC="30", FEED_STALE_SEC="5",
                               WS_TRANSPORT=transport)
    try:
        r = st.reader("futures", "trade")
        wait_for(lambda: st.stream("trade").get("written", 0) > 100, 20, "trades flowing")
        before = st.stream("trade")   # at this rate the heartbeat never matches the ring exactly;
        # no gap may appear at all, so plain reads of the cumulative counters suffice
        recs = []
        wait_for(lambda: recs.append(r.read()) or st.conn("market").get("rotations", 0) >= 3,
                 40, "three rotations of the market connection\n" + st.logs())
        after = wait_for(lambda: (lambda a: a if a["ring_count"] >= r.published else None)(
            st.stream("trade")), 10, "a heartbeat covering what was read")
        recs.append(r.read())
        recs = np.concatenate(recs)
        data, gaps, skipped = trade_accounting(recs)
        assert gaps == 0 and skipped == 0, (gaps, skipped)
        assert after["id_gaps"] == before["id_gaps"] and after["ids_missing"] == before["ids_missing"]
        assert after["duplicates"] > before["duplicates"], "the overlap must have been de-duplicated"
        assert len(data) > 2000
        conn = st.conn("market")
        assert conn["reconnects"] == 0 and conn["stale_rotations"] == 0
        # the transport asked for is the one that ran (picows logs each connection it opens)
        feed_log = (tmp_path / "feed_futures.log").read_text()
        assert ("picows" in feed_log) == (transport == "picows"), feed_log[-2000:]
    finally:
        st.stop()


def test_a_refused_successor_is_retried_with_backoff_not_every_check(tmp_path):
    """An age rotation whose successor is refused (HTTP 503 on the upgrade) keeps the old link and
    retries after a capped, jittered exponential backoff — the reconnect policy — instead of on
    every 0.5 s check (before: ~570 attempts in 5 minutes, which earns a venue's IP ban). Once the
    venue accepts again, the rotation completes and the backoff starts over."""
    import asyncio
    import time

    import orjson
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from actors.feed.shell import RECONNECT_BASE_SEC, Feed
    from actors.venues.binance import spot as binance_spot
    from actors.venues.http import backoff_sec
    from config.settings import load_settings
    from ipc.bus import Publisher
    from ipc.shm import unlink_prefix
    from tests.support.wait import wait_for_async

    refusals, cap = 5, 1.0
    prefix = "rb" + tmp_path.name[-8:].replace("_", "")
    attempts: list[float] = []                 # monotonic time of every upgrade request

    def gate(conn, request):
        attempts.append(time.monotonic())
        if 1 < len(attempts) <= 1 + refusals:  # the first link opens; its successors are refused
            return conn.respond(503, "busy\n")
        return None

    async def handler(ws):
        i = 0
        try:
            while True:                        # a trade every 10 ms: never stale, only old
                i += 1
                ms = 1_787_414_400_000 + i
                await ws.send(orjson.dumps({"stream": "btcusdt@aggTrade", "data": {
                    "e": "aggTrade", "E": ms, "s": "BTCUSDT", "a": i, "p": "60000.0", "q": "0.1", "f": i,
                    "l": i, "T": ms, "m": False}}).decode())
                await asyncio.sleep(0.01)
        except ConnectionClosed:
            pass

    async def run():
        async with serve(handler, "127.0.0.1", 0, process_request=gate) as server:
            port = server.sockets[0].getsockname()[1]
            s = load_settings(shm_prefix=prefix, spot_ws=f"ws://127.0.0.1:{port}", zmq_xsub_url="tcp://127.0.0.1:1",
                              feed_rotate_sec=1.0, feed_stale_sec=0.5, feed_backoff_max_sec=cap)
            feed = Feed(s, binance_spot, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
            conn = feed.conns[0]
            task = asyncio.create_task(feed.run_connection(conn))
            try:
                await wait_for_async(lambda: conn.rotations >= 1, 20, "the rotation once the venue accepts")
            finally:
                feed.stop()
                await asyncio.wait_for(task, 10)
            return feed, conn

    try:
        feed, conn = asyncio.run(run())
    finally:
        unlink_prefix("/dev/shm", prefix)
    assert len(attempts) == refusals + 2                   # first link, 5 refused, 1 accepted
    # the k-th retry waits backoff_sec(k) jittered by [0.5, 1] (plus a little loop slack)
    waits = [b - a for a, b in zip(attempts[1:], attempts[2:])]
    for k, w in enumerate(waits):
        full = backoff_sec(k, RECONNECT_BASE_SEC, cap)
        assert 0.5 * full - 0.02 <= w <= full + 0.15, (k, w, full, waits)
    assert sum(waits) >= 0.5 * sum(backoff_sec(k, RECONNECT_BASE_SEC, cap) for k in range(refusals))
    assert (conn.rotation_failures, conn.rotations, conn.reconnects) == (refusals, 1, 0)
    assert (conn.rotate_attempt, conn.rotate_after) == (0, 0.0)
    assert feed.counters()["rotation_failures"] == refusals
    assert feed.health()["connections"]["combined"]["rotation_failures"] == refusals
