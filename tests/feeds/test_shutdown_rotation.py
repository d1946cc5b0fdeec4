"""A venue's announced shutdown (Binance spot `serverShutdown`, decoded to kind "shutdown") starts a
make-before-break rotation of that connection: counted, no reconnect, no gap, no duplicate.

In-process against a minimal local WebSocket server (every connection gets the same aggTrade
sequence from the moment it connects; the first one is told `serverShutdown`, then closed a while
later, as the venue would), and feed_spot against the sim's `server_shutdown` fault."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
from websockets.asyncio.server import serve

from actors.feed.shell import ROTATE_KINDS, Feed
from actors.venues.binance import spot as binance_spot
from config.settings import load_settings
from ipc import names
from ipc.bus import Publisher
from ipc.ring import RingReader
from ipc.schema import TRADE
from ipc.shm import unlink_prefix
from actors.sim.faults import inject
from tests.support.stack import Stack, trade_accounting
from tests.support.wait import wait_for, wait_for_async


def agg(i: int) -> str:
    ms = 1_787_414_400_000 + i
    return orjson.dumps({"stream": "btcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": ms, "s": "BTCUSDT", "a": i, "p": "60000.0", "q": "0.1", "f": i, "l": i,
        "T": ms, "m": False}}).decode()


class SpotStandIn:
    def __init__(self):
        self.conns: list = []
        self.next_id = 1
        self.closed_by_client = 0
        self.shutdown_sent = False

    async def handler(self, ws):
        self.conns.append(ws)
        first = len(self.conns) == 1
        try:
            if first:
                await wait_until(lambda: self.next_id > 200)
                await ws.send(orjson.dumps({"e": "serverShutdown", "E": int(time.time() * 1000)}).decode())
                self.shutdown_sent = True
                try:                              # the venue closes it later; the client is faster
                    await asyncio.wait_for(ws.wait_closed(), 5)
                except TimeoutError:
                    await ws.close(1001, "server shutdown")
            else:
                await ws.wait_closed()
        finally:
            if ws.close_code == 1000:
                self.closed_by_client += 1

    async def produce(self):
        while True:                            # every live connection gets every trade, in order
            frame = agg(self.next_id)
            self.next_id += 1
            for ws in list(self.conns):
                if ws.state.name == "OPEN":
                    try:
                        await ws.send(frame)
                    except Exception:
                        pass
            await asyncio.sleep(0.002)


async def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def test_rotation_kinds_name_the_shutdown():
    assert ROTATE_KINDS == {"shutdown": "server_shutdown"}
    assert binance_spot.parse_frame(b'{"e":"serverShutdown","E":1}', 5).kind == "shutdown"


def test_server_shutdown_rotates_make_before_break(tmp_path):
    prefix = "r" + tmp_path.name[-8:].replace("_", "")

    async def run():
        stand_in = SpotStandIn()
        async with serve(stand_in.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            s = load_settings(shm_prefix=prefix, spot_ws=f"ws://127.0.0.1:{port}", zmq_xsub_url="tcp://127.0.0.1:1",
                              feed_stale_sec=5.0)
            feed = Feed(s, binance_spot, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
            producer = asyncio.create_task(stand_in.produce())
            conn = feed.conns[0]
            task = asyncio.create_task(feed.run_connection(conn))
            try:
                await wait_for_async(lambda: conn.rotations >= 1, 10, "a rotation after serverShutdown")
                written = feed.sinks["trade"].written
                await wait_for_async(lambda: feed.sinks["trade"].written > written + 100, 10, "trades after it")
                await wait_for_async(lambda: stand_in.closed_by_client >= 1, 5, "the old link closed by us")
            finally:
                feed.stop()
                await asyncio.wait_for(task, 10)
                producer.cancel()
            return feed, conn, stand_in

    try:
        feed, conn, stand_in = asyncio.run(run())
        assert stand_in.shutdown_sent and len(stand_in.conns) == 2
        assert (conn.rotations, conn.shutdown_rotations, conn.stale_rotations, conn.reconnects) == (1, 1, 0, 0)
        trade = feed.sinks["trade"]
        assert trade.id_gaps == 0 and trade.ids_missing == 0 and trade.gap_markers == 0
        assert trade.duplicates > 0, "the overlap was de-duplicated"
        assert feed.counters()["shutdown_rotations"] == 1
        assert feed.health()["connections"]["combined"]["shutdown_rotations"] == 1
        # the ring holds every id once, in order
        ids = RingReader("/dev/shm", names.SPOT_RINGS["trade"].name(prefix, "BTCUSDT"), TRADE,
                         from_oldest=True).read()["trade_id"]
        assert len(ids) == trade.written > 300 and (ids[1:] - ids[:-1] == 1).all()
    finally:
        unlink_prefix("/dev/shm", prefix)


def test_the_spot_sims_server_shutdown_rotates_feed_spot(tmp_path):
    """The sim's spot port announces a shutdown and closes 5 s later: feed_spot has rotated by
    then, so there is no reconnect and no trade gap."""
    st = Stack(tmp_path).start(actors=("sim", "bus", "feed_spot"), SIM_TRADE_RATE="200")
    try:
        wait_for(lambda: st.stream("trade", "feed_spot").get("written", 0) > 100, 30,
                 "spot trades flowing\n" + st.logs())
        r = st.reader(names.SPOT, "trade", from_oldest=True)
        inject(st.spot_url, "server_shutdown", seconds=5)
        wait_for(lambda: st.conn("combined", "feed_spot").get("shutdown_rotations", 0) >= 1, 10,
                 "a rotation on serverShutdown\n" + st.logs())
        before = st.stream("trade", "feed_spot")["written"]
        wait_for(lambda: st.stream("trade", "feed_spot")["written"] > before + 200, 20, "trades after it")
        recs = []
        after = wait_for(lambda: recs.append(r.read()) or (lambda a: a if a["ring_count"] == r.published else None)(
            st.stream("trade", "feed_spot")), 10, "a heartbeat covering what was read")
        data, gaps, skipped = trade_accounting(np.concatenate(recs))
        assert gaps == 0 and skipped == 0 and after["id_gaps"] == 0
        conn = st.conn("combined", "feed_spot")
        assert (conn["rotations"], conn["shutdown_rotations"], conn["reconnects"]) == (1, 1, 0)
        assert st.hb("feed_spot")["counters"]["shutdown_rotations"] == 1
    finally:
        st.stop()
