"""The asset follows SYMBOL: ETHUSDT follows the eth up/down markets and the eth/usd Chainlink
stream; with POLYMARKET_ENABLED=false, or a SYMBOL without up/down markets, feed_poly and
feed_chainlink heartbeat that they are off and never connect. Real processes and sockets."""
from __future__ import annotations

import httpx
import pytest

from actors.sim.faults import stats
from ipc import names
from ipc.ring import RingReader
from ipc.schema import CHAINLINK, POLY_BOOK
from ipc.state import StateBlock
from tests.support.stack import Stack
from tests.support.wait import wait_for


def _stats(st):
    try:
        return stats(st.poly_url, timeout=1)
    except httpx.HTTPError:
        return None


def state(st, name):
    return StateBlock("/dev/shm", st.env["SHM_PREFIX"], name).read()


def test_eth_follows_the_eth_markets_and_stream(tmp_path):
    st = Stack(tmp_path).start(actors=("sim", "bus", "feed_poly", "feed_chainlink"), SYMBOL="ETHUSDT",
                               POLYMARKET_WINDOW="5m", POLYMARKET_WINDOW_SEC="10")
    try:
        w = wait_for(lambda: (((state(st, "polymarket") or {}).get("series") or {}).get("5m") or {}).get("window"),
                     30, "an eth window\n" + st.logs())
        assert w["asset"] == "eth" and w["slug"] == f"eth-updown-5m-{w['start_s']}"
        assert w["rule"]["stream"] == "eth/usd"
        cl = wait_for(lambda: (lambda d: d if d and d.get("price") else None)(state(st, "chainlink")), 20,
                      "the eth/usd price")
        assert cl["stream"] == "eth/usd"
        prefix = st.env["SHM_PREFIX"]
        assert names.CHAINLINK_RING.name(prefix, "ETHUSDT") == f"{prefix}.ETHUSD.chainlink.price"
        ring = RingReader("/dev/shm", names.CHAINLINK_RING.name(prefix, "ETHUSDT"), CHAINLINK,
                          from_oldest=True).read()
        assert len(ring) and ring["price"][-1] == pytest.approx(cl["price"], rel=0.05)
        sim = stats(st.poly_url)
        assert sim["chainlink"]["symbol"] == "eth/usd"
        assert abs(cl["price"] - sim["chainlink"]["last"]["value"]) / cl["price"] < 0.05
        books, = wait_for(lambda: (lambda r: (r,) if len(r) else None)(RingReader(
            "/dev/shm", names.poly_book_ring("5m").name(prefix, "ETHUSDT"), POLY_BOOK, from_oldest=True).read()),
            20, "eth books in ETHUPDOWN.poly.book_5m")
        assert names.poly_book_ring("5m").name(prefix, "ETHUSDT") == f"{prefix}.ETHUPDOWN.poly.book_5m"
        assert set(books["window_start_ns"][books["window_start_ns"] > 0] % 10_000_000_000) == {0}
        # the window followed is ETH's, never BTC's
        w = state(st, "polymarket")["series"]["5m"]["window"]
        assert w["asset"] == "eth" and w["slug"] == f"eth-updown-5m-{w['start_s']}"
        assert w["rule"]["stream"] == "eth/usd"
    finally:
        st.stop()


@pytest.mark.parametrize("env,reason", [
    ({"POLYMARKET_ENABLED": "false"}, "POLYMARKET_ENABLED"),
    ({"SYMBOL": "ADAUSDT"}, "ADAUSDT"),
])
def test_off_heartbeats_and_does_not_connect(tmp_path, env, reason):
    st = Stack(tmp_path).start(actors=("sim", "feed_poly", "feed_chainlink"), **env)
    try:
        for actor in ("feed_poly", "feed_chainlink"):
            hb = wait_for(lambda: (lambda h: h if h.get("disabled") else None)(st.hb(actor)), 20,
                          f"{actor} heartbeating off\n" + st.logs())
            assert reason in hb["disabled"]
        blk = wait_for(lambda: state(st, "polymarket"), 5, "the polymarket block")
        assert reason in blk["disabled"] and blk["series"] == {}
        assert reason in state(st, "chainlink")["disabled"]
        # still off 2 s after it started (the sim up meanwhile), and the sim saw no connection at all
        sim = wait_for(lambda: _stats(st), 20, "the sim")
        start_ns = st.hb("feed_poly")["start_ns"]
        wait_for(lambda: st.hb("feed_poly")["alive_ns"] - start_ns > 2e9 and st.hb("feed_poly")["disabled"], 10,
                 "two seconds of heartbeats")
        sim = stats(st.poly_url)
        assert sim["connections_total"] == {"clob": 0, "rtds": 0}
        assert not sim["http"].get("/gamma/markets")
        log = (st.tmp / "feed_poly.log").read_text()
        assert sum("is off" in line for line in log.splitlines()) == 1, log
    finally:
        st.stop()
