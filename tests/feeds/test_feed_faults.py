"""The Binance feeds against the sim's faults: each one is survived, counted, and loses nothing
it could have kept, and no record is ever duplicated. Real processes, real sockets, real shm."""
from __future__ import annotations

import pytest

from actors.sim.faults import inject
from tests.support.stack import Stack, trade_accounting
from tests.support.wait import wait_for

FUT_STREAMS = ("trade", "quote", "mark", "kline", "depth")
SPOT_STREAMS = ("trade", "quote", "depth")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = Stack(tmp_path_factory.mktemp("feeds")).start(SIM_TRADE_RATE="80")
    try:
        wait_for(lambda: all(st.stream(k).get("written") for k in FUT_STREAMS)
                 and all(st.stream(k, "feed_spot").get("written") for k in SPOT_STREAMS),
                 30, "every stream of both feeds delivering")
        yield st
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()


def window(stack, venue="futures", actor="feed_futures"):
    """A ring reader from now, the counters at that point, and the last record before it (a jump
    right after the window opens is measured from that record)."""
    r = stack.reader(venue, "trade", from_oldest=True)
    before = stack.settled(actor, "trade", r)
    old = r.read()
    r.anchor = old[-1:]
    return r, before


def settle_after(stack, r, before, actor="feed_futures", min_new=50):
    recs = [r.anchor]

    def resumed():
        recs.append(r.read())
        return sum(len(x) for x in recs) >= min_new + 1
    try:
        wait_for(resumed, 30, f"{min_new} trades after the fault")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    after = stack.settled(actor, "trade", r)
    import numpy as np
    recs.append(r.read())
    all_recs = np.concatenate(recs)
    return all_recs, after


def test_every_stream_delivers_on_its_route(stack):
    for actor, kinds in (("feed_futures", FUT_STREAMS), ("feed_spot", SPOT_STREAMS)):
        hb = stack.hb(actor)
        assert hb["counters"]["parse_errors"] == 0 and hb["counters"]["unknown"] == 0
        for c in stack.feed(actor)["connections"].values():
            assert c["connected"] and c["silent_streams"] == [], c
        for k in kinds:
            assert stack.stream(k, actor)["written"] > 0, (actor, k)
    # spot partial depth carries no symbol: it was routed by its stream name
    d = stack.reader("spot", "depth", from_oldest=True).read()
    assert len(d) and (d["n_bids"] > 0).all() and (d["bid_px"][:, 0] < d["ask_px"][:, 0]).all()


def test_malformed_frames_are_counted_and_skipped(stack):
    r, before = window(stack)
    pe0 = stack.hb("feed_futures")["counters"]["parse_errors"]
    inject(stack.futures_url, "malformed", count=3, stream="btcusdt@aggTrade")
    recs, after = settle_after(stack, r, before)
    wait_for(lambda: stack.hb("feed_futures")["counters"]["parse_errors"] - pe0 == 3, 10,
             "exactly three parse errors")
    data, gaps, skipped = trade_accounting(recs)
    assert gaps == 0
    # the three corrupted frames replaced real trades: their ids are missing, and counted
    assert skipped == after["ids_missing"] - before["ids_missing"]
    assert after["duplicates"] == before["duplicates"]


def test_id_gap_is_counted_exactly(stack):
    r, before = window(stack)
    d0 = stack.stream("depth")["id_gaps"]
    inject(stack.futures_url, "gap", count=5)
    recs, after = settle_after(stack, r, before)
    data, gaps, skipped = trade_accounting(recs)
    assert after["id_gaps"] - before["id_gaps"] == 1
    assert after["ids_missing"] - before["ids_missing"] == 5 == skipped
    wait_for(lambda: stack.stream("depth")["id_gaps"] - d0 == 1, 10, "the depth pu break counted once")


@pytest.mark.parametrize("kind", ["drop", "disconnect"])
def test_connection_loss_reconnects_with_gap_markers(stack, kind):
    r, before = window(stack)
    rc0 = stack.conn("market")["reconnects"]
    inject(stack.futures_url, kind)
    wait_for(lambda: stack.conn("market")["reconnects"] == rc0 + 1 and stack.conn("market")["connected"],
             20, f"reconnect after {kind}")
    recs, after = settle_after(stack, r, before)
    data, gaps, skipped = trade_accounting(recs)
    assert gaps >= 1, "a gap marker must precede the data after a reconnect"
    assert skipped == after["ids_missing"] - before["ids_missing"]
    assert after["duplicates"] == before["duplicates"]


def test_stall_is_detected_on_data_age_and_recovered(stack):
    r, before = window(stack)
    sr0 = stack.conn("market")["stale_rotations"]
    inject(stack.futures_url, "stall", seconds=4)
    wait_for(lambda: stack.conn("market")["stale_rotations"] > sr0, 20,
             "a stale rotation while pings still flow")
    recs, after = settle_after(stack, r, before)
    data, gaps, skipped = trade_accounting(recs)
    assert gaps >= 1
    assert skipped == after["ids_missing"] - before["ids_missing"]
    # the successor overlaps the stalled link once the stall ends: a trade both delivered is
    # dropped as a duplicate, so every trade frame received was either written or counted
    assert (after["duplicates"] - before["duplicates"]
            == (after["frames"] - before["frames"]) - (after["written"] - before["written"]))
    assert stack.conn("market")["connected"]


def test_spot_feed_survives_a_drop(stack):
    r, before = window(stack, "spot", "feed_spot")
    rc0 = stack.conn("combined", "feed_spot")["reconnects"]
    inject(stack.spot_url, "drop")
    wait_for(lambda: stack.conn("combined", "feed_spot")["reconnects"] == rc0 + 1, 20, "spot reconnect")
    recs, after = settle_after(stack, r, before, actor="feed_spot", min_new=20)
    data, gaps, skipped = trade_accounting(recs)
    assert gaps >= 1 and skipped == after["ids_missing"] - before["ids_missing"]
