"""ZeroMQ bus: the real proxy on random ports, publisher stamping, gap and restart detection, and
drops at a high-water mark counted (publisher side exactly; bus side without costing the others)."""
from __future__ import annotations

import threading
import time

import orjson
import pytest
import zmq

from actors.obs.metrics import _ACTOR_COUNTERS
from ipc.bus import PAYLOAD_VERSION, Proxy, Publisher, Subscriber, run_proxy
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
    assert body == {"p": 1.5, "seq": 1, "boot": pub.boot, "v": PAYLOAD_VERSION,
                    "pub_ts_ns": body["pub_ts_ns"], "ts_ns": body["pub_ts_ns"]}
    pub.close(), sub.close()


def test_junk_on_the_bus_is_counted_never_raised(bus):
    """A raw PUB on the bus's XSUB sends what no Publisher would: each is skipped by reason, and the
    stamped message after them arrives with its own seq."""
    ctx, xsub, xpub = bus
    pub, sub = connect_pair(ctx, xsub, xpub, ("tick.",))
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(xsub)
    junk = [[b"tick.x", b"{not json"], [b"tick.x", b"[1, 2]"], [b"tick.x", b'{"seq": "1", "boot": 2}'],
            [b"tick.x", b"{}", b"third"], [b"tick.x"]]
    deadline = time.monotonic() + 10
    while sum(sub.skipped.values()) < len(junk):      # the raw socket's subscription may lag: resend
        assert time.monotonic() < deadline, dict(sub.skipped)
        sub.skipped.clear()
        for frames in junk:
            raw.send_multipart(frames)
        while sub.recv(100) is not None or sum(sub.skipped.values()) < len(junk) and sub.sock.poll(100):
            pass
    assert dict(sub.skipped) == {"not_json": 1, "not_object": 1, "stamps": 1, "frames": 2}
    pub.publish("tick.y", {"i": 7})
    ev = sub.recv(5000)
    assert (ev.topic, ev.msg["i"], ev.msg["seq"], ev.lost) == ("tick.y", 7, 1, 0)
    raw.close(), pub.close(), sub.close()


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


FLOOD = 200_000
BUS_FLOOD = 60_000         # past a 10k queue at the bus plus the kernel's socket buffers
BODY = "x" * 300           # big enough that kernel socket buffers do not swallow the whole flood


def test_a_stalled_bus_costs_counted_drops_exactly():
    """200k messages into a bus that reads nothing: every message is either delivered or counted
    in `dropped` (NODROP + NOBLOCK), none vanishes. Before: dropped stayed 0 while most were lost."""
    ctx = zmq.Context()
    try:
        stalled = ctx.socket(zmq.XSUB)                 # the bus's publisher side, not forwarding
        stalled.setsockopt(zmq.RCVHWM, 1000)
        url = f"tcp://127.0.0.1:{stalled.bind_to_random_port('tcp://127.0.0.1')}"
        pub = Publisher(url, ctx=ctx, sndhwm=1000, linger_ms=0)
        # a subscription, as the bus forwards one (again until it lands: one sent before the TCP
        # connection is up is not replayed)
        wait_for(lambda: (stalled.send(b"\x01tick."), pub.refresh(), pub.wants(b"tick.flood"))[2], 10,
                 "the subscription", interval=0.05)
        for i in range(FLOOD):
            pub.publish("tick.flood", {"i": i, "pad": BODY})
        assert pub.dropped > 0 and pub.sent + pub.dropped == FLOOD
        seqs = []
        while stalled.poll(500):
            topic, body = stalled.recv_multipart()
            assert topic == b"tick.flood"
            seqs.append(orjson.loads(body)["seq"])
        assert len(seqs) == pub.sent                   # what was not counted as dropped arrived
        assert seqs == sorted(set(seqs)) and seqs[-1] <= FLOOD
        pub.close()
    finally:
        ctx.destroy(linger=0)


def test_the_bus_counts_a_full_subscriber_queue_and_the_others_miss_nothing():
    """A subscriber that stops reading fills its queue at the bus: the bus counts the refusal
    (`publish_dropped`, the family /metrics and the TdcZmqPublishDrops alert read) and still
    delivers every message to a subscriber that keeps up. The stalled one's exact loss is its own
    seq gap (libzmq stops writing to a full queue until it drains, unseen by the bus)."""
    ctx = zmq.Context()
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = Proxy(xsub, xpub, ctx, hwm=10_000)   # room for a healthy reader's hiccups, not for a stall
    th = threading.Thread(target=proxy.run, daemon=True)
    th.start()
    try:
        stalled = Subscriber(xpub, ("tick.",), ctx=ctx, rcvhwm=10)
        healthy = Subscriber(xpub, ("tick.",), ctx=ctx, rcvhwm=1_000_000)
        pub = Publisher(xsub, ctx=ctx, sndhwm=1_000_000, linger_ms=0)
        wait_for(lambda: proxy.subscriptions >= 1, 10, "the subscriptions reached the bus")
        wait_for(lambda: (pub.refresh(), pub.wants(b"tick.flood"))[1], 10, "... and the publisher")
        time.sleep(0.2)  # noqa: the second SUB's identical subscription is not forwarded: nothing to wait on
        for i in range(BUS_FLOOD):
            pub.publish("tick.flood", {"i": i, "pad": BODY})
        assert (pub.sent, pub.dropped) == (BUS_FLOOD, 0)
        wait_for(lambda: proxy.received == BUS_FLOOD, 60, "the bus forwarded the flood")
        got = 0
        while healthy.recv(2000) is not None:
            got += 1
            if got == BUS_FLOOD:
                break
        tr = healthy.tracks["tick.flood"]
        assert (got, tr.lost, tr.gaps, tr.seq) == (BUS_FLOOD, 0, 0, BUS_FLOOD)   # nothing lost next to a stall
        assert proxy.dropped >= 1 and proxy.forwarded == BUS_FLOOD
        assert proxy.counters()["publish_dropped"] == proxy.dropped and "publish_dropped" in _ACTOR_COUNTERS
        n = 0
        while stalled.recv(500) is not None:          # the stalled one wakes up and reads its queue
            n += 1
        pub.publish("tick.flood", {"i": BUS_FLOOD})      # one more: its seq shows the whole loss
        ev = stalled.recv(5000)
        assert ev is not None and ev.msg["seq"] == BUS_FLOOD + 1
        assert n < BUS_FLOOD and n + stalled.tracks["tick.flood"].lost == BUS_FLOOD
        for s in (pub, stalled, healthy):
            s.close()
    finally:
        ctx.destroy(linger=0)
        th.join(5)
    assert not th.is_alive()


# --- every payload goes through Publisher.publish, and every topic is documented ----------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_nothing_publishes_around_the_stamping_publisher():
    """Only ipc/bus.py makes PUB/XPUB sockets and sends on them raw, so every payload on the bus
    carries seq/boot/v; the control channel (ipc/control.py, a ROUTER) is the one other sender."""
    import re
    make = re.compile(r"socket\(\s*zmq\.(X?PUB)\b")
    raw = re.compile(r"\b(send_multipart|send_json|send_string|_raw_send)\(")
    offenders = []
    for path in [ROOT / "run.py", *ROOT.glob("actors/**/*.py"), *ROOT.glob("ipc/*.py"), *ROOT.glob("config/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if rel != "ipc/bus.py" and make.search(text):
            offenders.append(f"{rel}: makes a publishing socket")
        if rel not in ("ipc/bus.py", "ipc/control.py") and raw.search(text):
            offenders.append(f"{rel}: sends raw")
    assert offenders == []


def _documented_topics() -> list[str]:
    """The first column of docs/api.md's "Topics and payloads" table, as regular expressions."""
    import re
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Topics and payloads\n", 1)[1].split("\n## ", 1)[0]
    pats = []
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.replace("\\|", "/").split("|")[1].strip().strip("`")
        rx = re.escape(cell)
        rx = re.sub(r"\\\{([^}]*)\\\}", lambda m: "(" + m.group(1).replace(",", "|") + ")", rx)
        rx = re.sub(r"<[^>]*>", "[^.]+", rx)
        pats.append(rx)
    return pats


def test_every_topic_is_documented_with_the_version():
    import re
    from ipc import names
    sym = "BTCUSDT"
    topics = [names.STATE_TOPIC, names.features_topic(sym), names.context_topic(sym)]
    for rings in names.VENUE_RINGS.values():
        for r in rings.values():
            topics += [r.token_topic(t) for t in (0, 1)] if r.series else [r.topic(sym)]
    for s in names.POLY_SERIES:
        topics += [names.poly_market_topic(s), names.edge_topic(sym, s)]
    topics += [names.bar_topic(tf, v, sym) for tf in names.BAR_TFS for v in names.BINANCE_VENUES]
    pats = _documented_topics()
    assert [t for t in topics if not any(re.fullmatch(p, t) for p in pats)] == []
    assert [p for p in pats if not any(re.fullmatch(p, t) for t in topics)] == []    # no stale row
    section = (ROOT / "docs" / "api.md").read_text().split("\n## Topics and payloads\n", 1)[1]
    assert f"It is **{PAYLOAD_VERSION}** on every topic below" in section
