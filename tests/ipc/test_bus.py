"""ZeroMQ bus: the real proxy on random ports, publisher stamping, gap and restart detection."""
from __future__ import annotations

import threading
import time

import orjson
import pytest
import zmq

from ipc.bus import Publisher, Subscriber, run_proxy
from tests.support.ports import free_port
from tests.support.wait import wait_for


@pytest.fixture
def bus():
    ctx = zmq.Context()
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    th = threading.Thread(target=run_proxy, args=(xsub, xpub, ctx), daemon=True)
    th.start()
    yield ctx, xsub, xpub
    ctx.destroy(linger=0)   # closes any socket a failed test left open, then ends the proxy
    th.join(5)
    assert not th.is_alive()


def connect_pair(ctx, xsub, xpub, prefixes=("tick.",)):
    """A publisher and subscriber whose subscription has reached the publisher (no slow joiner)."""
    sub = Subscriber(xpub, prefixes, ctx=ctx)
    pub = Publisher(xsub, ctx=ctx)
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "subscription never propagated"
        pub.publish(prefixes[0] + "probe", {})
        if sub.recv(20) is not None:
            break
    while sub.recv(50) is not None:   # drain probes
        pass
    return pub, sub


def test_stamps_and_prefix_filtering(bus):
    ctx, xsub, xpub = bus
    pub, sub = connect_pair(ctx, xsub, xpub, ("tick.futures.",))
    for i in range(5):
        pub.publish("tick.futures.trade.BTCUSDT", {"i": i})
        pub.publish("tick.spot.trade.BTCUSDT", {"i": i})      # filtered out by prefix
    got = [sub.recv(2000) for _ in range(5)]
    assert [e.msg["i"] for e in got] == [0, 1, 2, 3, 4]
    assert [e.msg["seq"] for e in got] == [1, 2, 3, 4, 5]
    assert {e.msg["boot"] for e in got} == {pub.boot}
    assert all(e.topic == "tick.futures.trade.BTCUSDT" and e.lost == 0 for e in got)
    assert all(abs(e.msg["pub_ts_ns"] - time.time_ns()) < 10e9 for e in got)
    # a document without a time of its own gets the publish time as its ts_ns
    assert all(e.msg["ts_ns"] == e.msg["pub_ts_ns"] for e in got)
    assert sub.recv(100) is None
    pub.close(), sub.close()


def test_a_documents_data_time_is_never_overwritten(bus):
    """Two clocks, two names: compute's features carry data time in ts_ns (recording time under
    replay), the publisher's wall clock goes to pub_ts_ns."""
    ctx, xsub, xpub = bus
    pub, sub = connect_pair(ctx, xsub, xpub)
    data_ts = 1_700_000_000_123_456_789            # a replayed tick, far from the wall clock
    doc = {"ts_ns": data_ts}
    before = time.time_ns()
    pub.publish("tick.features", doc)
    ev = sub.recv(2000)
    assert ev.msg["ts_ns"] == data_ts and doc["ts_ns"] == data_ts
    assert before <= ev.msg["pub_ts_ns"] <= time.time_ns()
    pub.close(), sub.close()


def test_multipart_wire_format(bus):
    ctx, xsub, xpub = bus
    pub, sub = connect_pair(ctx, xsub, xpub)
    pub.publish("tick.x", {"p": 1.5})
    assert sub.sock.poll(2000)
    frames = sub.sock.recv_multipart()
    assert frames[0] == b"tick.x"
    body = orjson.loads(frames[1])
    assert body == {"p": 1.5, "seq": 1, "boot": pub.boot, "pub_ts_ns": body["pub_ts_ns"],
                    "ts_ns": body["pub_ts_ns"]}
    pub.close(), sub.close()


def test_gap_is_counted_and_restart_is_not_a_gap():
    sub = Subscriber.__new__(Subscriber)   # bookkeeping only: no socket needed
    sub.tracks = {}
    assert sub.observe("t", {"boot": 1, "seq": 1}).lost == 0
    ev = sub.observe("t", {"boot": 1, "seq": 5})
    assert ev.lost == 3 and sub.tracks["t"].gaps == 1 and sub.tracks["t"].lost == 3
    ev = sub.observe("t", {"boot": 2, "seq": 1})
    assert ev.restarted and ev.lost == 0 and sub.tracks["t"].restarts == 1
    assert sub.observe("t", {"boot": 2, "seq": 2}).lost == 0
    assert sub.tracks["t"].received == 4


def test_publisher_restart_seen_through_the_bus(bus):
    ctx, xsub, xpub = bus
    pub, sub = connect_pair(ctx, xsub, xpub)
    pub.publish("tick.a", {})
    assert sub.recv(2000).msg["seq"] == 1
    pub.close()
    pub2 = Publisher(xsub, ctx=ctx)
    deadline = time.monotonic() + 10
    ev = None
    while ev is None:
        assert time.monotonic() < deadline
        pub2.publish("tick.a", {})
        ev = sub.recv(50)
    assert ev.restarted and ev.msg["boot"] == pub2.boot and ev.lost == 0
    pub2.close(), sub.close()


def test_hwm_drop_is_visible_as_a_seq_gap(bus):
    ctx, xsub, xpub = bus
    sub = Subscriber(xpub, ("tick.",), ctx=ctx, rcvhwm=10)
    pub = Publisher(xsub, ctx=ctx, sndhwm=10)
    deadline = time.monotonic() + 10
    while sub.recv(20) is None:
        assert time.monotonic() < deadline
        pub.publish("tick.flood", {})
    for i in range(50_000):                      # far past every HWM on the path: drops happen
        pub.publish("tick.flood", {"i": i})
    lost = 0
    while (ev := sub.recv(500)) is not None:
        lost += ev.lost
    tr = sub.tracks["tick.flood"]
    assert tr.lost > 0 and tr.lost == lost
    # every message published is either received or counted lost (from the first one received)
    first_seq = tr.seq - tr.received - tr.lost + 1
    assert tr.received + tr.lost == tr.seq - first_seq + 1
    pub.close(), sub.close()


def test_publisher_sees_subscriptions_through_the_bus(bus):
    """`wants` follows the subscriptions the bus forwards: nothing is built for no one, and a
    subscriber that arrives, leaves and comes back is seen each time."""
    ctx, xsub, xpub = bus
    pub = Publisher(xsub, ctx=ctx)
    t, other = b"tick.spot.trade.BTCUSDT", b"features.BTCUSDT"

    def until(cond, what):
        wait_for(lambda: (pub.refresh(), cond())[1], 10, what, interval=0.01)

    pub.refresh()
    assert not pub.wants(t) and pub.skipped == 1
    sub = Subscriber(xpub, ("tick.spot.",), ctx=ctx)
    until(lambda: pub.wants(t), "the subscription reached the publisher")
    assert not pub.wants(other)
    sub2 = Subscriber(xpub, ("",), ctx=ctx)            # everything
    until(lambda: pub.wants(other), "the catch-all subscription")
    sub2.close()
    until(lambda: not pub.wants(other), "the catch-all unsubscription")
    assert pub.wants(t)                                # the first subscriber is still there
    for i in range(3):
        if pub.wants(t):
            pub.publish(t, {"i": i})
    got = [sub.recv(2000) for _ in range(3)]
    assert [e.msg["seq"] for e in got] == [1, 2, 3] and all(e.lost == 0 for e in got)
    sub.close()
    until(lambda: not pub.wants(t), "the last unsubscription")
    pub.close()
