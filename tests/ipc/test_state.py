"""The seqlock'd state block and the heartbeat registry, across real processes."""
from __future__ import annotations

import time

import orjson
import pytest

from ipc.names import HEARTBEAT_NAMES as ACTORS
from ipc.state import Heartbeat, Registry, SeqlockRegion, StateBlock

from . import state_procs


def test_block_roundtrip_and_absent(segs):
    r = StateBlock(segs.dir, segs.prefix, "features")
    assert r.read() is None                         # no writer yet: None, not an error
    w = StateBlock(segs.dir, segs.prefix, "features", writer=True)
    assert r.read() is None                         # created but never written
    w.write({"a": 1, "b": [1.5, None]})
    assert r.read() == {"a": 1, "b": [1.5, None]}
    w.write({"a": 2})                               # shorter payload: no stale tail
    assert r.read_bytes() == b'{"a":2}'


def test_oversized_payload_is_refused(segs):
    w = StateBlock(segs.dir, segs.prefix, "small", size=256, writer=True)
    with pytest.raises(ValueError, match="exceeds"):
        w.write_bytes(b"x" * 1000)


def test_reader_never_sees_a_torn_payload(segs, procs):
    n = 200_000
    w = StateBlock(segs.dir, segs.prefix, "torture", size=1 << 16, writer=True)
    w.write_bytes(orjson.dumps({"i": 0, "xs": [0]}))
    w.close()                                       # the process below is the writer
    r = StateBlock(segs.dir, segs.prefix, "torture")
    p = procs.start(state_procs.seqlock_writer, segs.dir, segs.prefix, n)
    seen, last, busy = 0, 0, 0
    deadline = time.monotonic() + 60
    while last < n:
        assert time.monotonic() < deadline, f"writer did not finish: last={last}"
        data = r.read_bytes()
        if data is None:
            busy += 1
            continue
        doc = orjson.loads(data)                    # a torn payload would not even parse, mostly
        i = doc["i"]
        assert doc["xs"] == [i] * (1 + i % 300), f"torn payload at i={i}"
        assert i >= last, "went back in time"
        last = i
        seen += 1
    p.join(10)
    assert p.exitcode == 0
    assert seen > 100


def test_writer_repairs_an_odd_sequence(segs):
    w = StateBlock(segs.dir, segs.prefix, "x", writer=True)
    w.write({"v": 1})
    region: SeqlockRegion = w._region
    region._seq[0] = region.seq + 1                 # a writer died mid-write
    r = StateBlock(segs.dir, segs.prefix, "x")
    assert r._region.read(retries=50) is None       # readers report busy, never a torn read
    w.close()                                       # the dead writer's lock went with it
    w2 = StateBlock(segs.dir, segs.prefix, "x", writer=True)
    assert w2._region.seq % 2 == 0 and w2.repaired
    assert r.read() is None                         # the half-written payload is not data
    w2.write({"v": 2})
    assert r.read() == {"v": 2}


def test_registry_heartbeats_across_processes(segs, procs):
    reg = Registry(segs.dir, segs.prefix)
    assert reg.read_all() == {}
    p = procs.start(state_procs.heartbeat_then_exit, segs.dir, segs.prefix)
    p.join(20)
    assert p.exitcode == 0
    doc = reg.read("feed_futures")
    assert doc["actor"] == "feed_futures" and doc["pid"] == p.pid
    assert doc["counters"] == {"written": 7}
    assert doc["alive_ns"] >= doc["start_ns"]
    assert segs.path(f"{segs.prefix}.registry").exists()   # the exiting process removed nothing


def test_registry_slots_are_independent(segs):
    reg = Registry(segs.dir, segs.prefix)
    hbs = {a: Heartbeat(reg, a) for a in ACTORS}
    for i, (a, hb) in enumerate(hbs.items()):
        hb.beat({"i": i})
    got = Registry(segs.dir, segs.prefix).read_all()
    assert {a: d["counters"]["i"] for a, d in got.items()} == {a: i for i, a in enumerate(ACTORS)}
    with pytest.raises(KeyError):
        reg.slot("nobody")
