"""The shared-memory ring (ipc/ring.py) on real segments under /dev/shm and real processes.

Every test uses its own segment names (the `segs` fixture unlinks them afterwards, pass or fail) and
every process it starts is killed and reaped at teardown (`procs`). Waits are polls on a condition
with a deadline; nothing sleeps on hope and nothing asserts on timing.
"""
from __future__ import annotations

import mmap
import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipc import shm
from ipc.ring import _OFF_CLAIMED, _OFF_PUBLISHED, HEADER_BYTES, RingReader, RingWriter
from ipc.schema import FLAG_GAP, QUOTE, TRADE

from tests.support.wait import wait_for

from .ring_procs import check_block, make_records, read_once, read_then_hang, record, write_forever, write_n

pytestmark = pytest.mark.timeout(60)

PROC_TIMEOUT = 20.0     # generous: a spawn child imports numpy; a loaded CI box is slow


def header_counters(path) -> tuple[int, int]:
    """(published, claimed) read straight from the segment header."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    pub = int(np.frombuffer(head, dtype="<u8", count=1, offset=_OFF_PUBLISHED)[0])
    claimed = int(np.frombuffer(head, dtype="<u8", count=1, offset=_OFF_CLAIMED)[0])
    return pub, claimed


def gap_tuple(ts: int) -> tuple:
    return (0, ts, FLAG_GAP, 0, 0, 0, 0.0, 0.0, 0)


# --------------------------------------------------------------------------------------------
# 1. Property test: wraparound and overrun against a plain-Python model of the ring.

_op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 5)),          # n single append() calls
    st.tuples(st.just("many"), st.integers(0, 200)),          # one append_many of n records
    st.tuples(st.just("gap"), st.just(1)),                    # one append_gap
    st.tuples(st.just("read"), st.integers(0, 3), st.none() | st.integers(0, 80)),
    st.tuples(st.just("reader"), st.booleans()),              # a new reader (from_oldest?)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 64), ops=st.lists(_op, max_size=60))
def test_ring_matches_model(segs, capacity, ops):
    name = segs.name()
    w = RingWriter(segs.dir, name, TRADE, capacity)
    try:
        assert w.created and w.count == 0 and w.torn_on_attach == 0
        model: list[tuple] = []            # every record ever written, index = position
        # each reader: [RingReader, model cursor, model overrun]
        readers = [[RingReader(segs.dir, name, TRADE), 0, 0]]

        def check_read(k: int, mx: int | None) -> None:
            rd = readers[k % len(readers)]
            r, cur, ovr = rd
            count = len(model)
            lost = 0
            if count - cur > capacity:         # lapped: only the newest `capacity` remain
                lost = count - cur - capacity
                cur = count - capacity
            end = count if mx is None else min(count, cur + mx)
            out = r.read(mx)
            assert out.dtype == TRADE
            assert out.tolist() == model[cur:end], (cur, end, count)
            # never older than the newest `capacity` records
            data = out[(out["flags"] & FLAG_GAP) == 0]
            assert (data["trade_id"] >= count - capacity).all()
            assert r.overrun == ovr + lost
            assert r.cursor == end
            assert r.lag() == count - end
            if mx is None:
                assert r.cursor == w.count
            rd[1], rd[2] = end, ovr + lost

        for op in ops:
            kind = op[0]
            if kind == "append":
                for _ in range(op[1]):
                    i = len(model)
                    w.append(record(i))
                    model.append(record(i))
            elif kind == "many":
                i = len(model)
                w.append_many(make_records(i, op[1]))
                model.extend(record(j) for j in range(i, i + op[1]))
            elif kind == "gap":
                ts = 10**12 + len(model)
                w.append_gap(ts)
                model.append(gap_tuple(ts))
            elif kind == "read":
                check_read(op[1], op[2])
            else:
                r = RingReader(segs.dir, name, TRADE, from_oldest=op[1])
                start = max(0, len(model) - capacity) if op[1] else len(model)
                assert r.attached and r.cursor == start and r.overrun == 0
                readers.append([r, start, 0])
            assert w.count == len(model)
            assert header_counters(w.path) == (len(model), len(model))

        for k in range(len(readers)):          # a final full read brings every reader level
            check_read(k, None)
            assert readers[k][0].cursor == w.count
    finally:
        os.unlink(shm.segment_path(segs.dir, name))


# --------------------------------------------------------------------------------------------
# 2. A reader racing a full-speed writer in another process: whole records, in order, or overrun.

@pytest.mark.parametrize("max_records", [None, 7], ids=["fast-reader", "slow-reader"])
def test_concurrent_reader_never_sees_torn_records(segs, procs, max_records):
    cap, total = 1024, 2_000_000
    name = segs.name()
    RingWriter(segs.dir, name, TRADE, cap).close()   # the segment exists: the reader starts at 0
    r = RingReader(segs.dir, name, TRADE)
    assert r.attached and r.cursor == 0

    p = procs.start(write_n, segs.dir, name, cap, total, 7)
    if max_records is not None:
        # The slow reader starts only once it has certainly been lapped.
        wait_for(lambda: r.published >= 4 * cap, PROC_TIMEOUT, "the writer to be 4 laps ahead")

    seen = 0
    next_id = 0                  # the record expected next if nothing is lost
    reads_behind_writer = 0      # reads made while the writer was still writing (for the message)

    def step():
        nonlocal seen, next_id, reads_behind_writer
        before_cursor, before_overrun = r.cursor, r.overrun
        pub_before = r.published
        out = r.read(max_records)
        lost = r.overrun - before_overrun
        assert lost >= 0
        # every record between the old and the new cursor is either returned or counted as lost
        assert r.cursor - before_cursor == lost + len(out)
        if len(out):
            first = int(out["trade_id"][0])
            assert first == next_id + lost, (
                f"expected record {next_id} (+{lost} overrun), got {first}")
            check_block(out, first)          # whole, +1 each, no gaps
            next_id = int(out["trade_id"][-1]) + 1
        else:
            next_id += lost
        assert next_id == r.cursor
        seen += len(out)
        if pub_before < total:
            reads_behind_writer += 1
        return r.cursor >= total

    wait_for(step, 40.0, f"the reader to reach record {total}", interval=0)
    p.join(PROC_TIMEOUT)
    assert p.exitcode == 0
    assert r.cursor == total and r.published == total
    assert seen + r.overrun == total
    assert r.read().size == 0
    if max_records is not None:
        assert r.overrun > 0


# --------------------------------------------------------------------------------------------
# 3. A writer killed with SIGKILL and restarted continues the counter.

class Tracker:
    """Reads a ring, checks every block, and keeps the totals."""

    def __init__(self, r: RingReader):
        self.r = r
        self.start = r.cursor
        self.data = self.gaps = 0
        self.max_published = r.published
        self.gap_range = (0, 0)

    def step(self, max_records=None) -> int:
        pub = self.r.published
        assert pub >= self.max_published, f"counter went back: {pub} < {self.max_published}"
        self.max_published = pub
        out = self.r.read(max_records)
        d, g = check_block(out, self.r.cursor - len(out), self.gap_range)
        self.data += d
        self.gaps += g
        return self.r.cursor


def test_sigkilled_writer_restarts_and_continues_the_counter(segs, procs):
    cap, n_before, n_after = 256, 100_000, 50_000
    name = segs.name()
    path = segs.path(name)
    p = procs.start(write_forever, segs.dir, name, cap, 3)
    wait_for(path.exists, PROC_TIMEOUT, "the writer to create its segment")
    r = RingReader(segs.dir, name, TRADE, from_oldest=True)
    assert r.attached
    t = Tracker(r)

    wait_for(lambda: t.step() >= n_before, PROC_TIMEOUT, f"{n_before} records read", interval=0)
    seen_before_kill = t.max_published
    os.kill(p.pid, signal.SIGKILL)
    p.join(PROC_TIMEOUT)
    assert p.exitcode == -signal.SIGKILL

    published, claimed = header_counters(path)
    assert published >= seen_before_kill
    assert 0 <= claimed - published <= cap
    assert t.step() == published        # the dead writer's records are all readable
    assert t.gaps == 0

    q = procs.queue()
    p2 = procs.start(write_n, segs.dir, name, cap, claimed + n_after, 4, q)
    created, torn, count_at_attach, _ = q.get(timeout=PROC_TIMEOUT)
    assert created is False
    assert torn == claimed - published
    assert count_at_attach == claimed >= seen_before_kill
    t.gap_range = (published, claimed)   # the only place a gap record may appear

    total = claimed + n_after
    wait_for(lambda: t.step() >= total, PROC_TIMEOUT, f"the reader to reach {total}", interval=0)
    p2.join(PROC_TIMEOUT)
    assert p2.exitcode == 0
    assert r.cursor == total == r.published
    assert header_counters(path) == (total, total)
    assert t.data + t.gaps + r.overrun == total - t.start
    assert t.gaps <= torn
    assert r.reattached == 0


def test_writer_dead_between_claimed_and_published_leaves_gap_records(segs):
    cap = 8
    name = segs.name()
    w = RingWriter(segs.dir, name, TRADE, cap)
    w.append_many(make_records(0, 13))
    r = RingReader(segs.dir, name, TRADE, from_oldest=True)
    assert r.cursor == 5

    # Simulate a writer that claimed records 13..15 (slots 5..7) and died while copying them.
    with open(w.path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        np.ndarray((1,), dtype="<u8", buffer=mm, offset=_OFF_CLAIMED)[0] = 16
        data = np.ndarray((cap,), dtype=TRADE, buffer=mm, offset=HEADER_BYTES)
        data["trade_id"][5] = 13          # a half-written record 13 over record 5
        data["price"][6] = 14.0           # and half of record 14 over record 6
        del data
    assert header_counters(w.path) == (13, 16)
    w.close()                             # the dead writer's lock went with it

    # A reader meanwhile must not take the touched slots (records 5..7) for data.
    out = r.read()
    assert out["trade_id"].tolist() == list(range(8, 13))
    check_block(out, 8)
    assert r.overrun == 3 and r.cursor == 13

    w2 = RingWriter(segs.dir, name, TRADE, cap)
    assert w2.created is False
    assert w2.torn_on_attach == 3
    assert w2.count == 16
    assert header_counters(w.path) == (16, 16)

    out = r.read()
    assert len(out) == 3 and r.cursor == 16
    assert ((out["flags"] & FLAG_GAP) != 0).all()
    check_block(out, 13, gap_range=(13, 16))

    w2.append(record(16))
    w2.append_many(make_records(17, 4))
    out = r.read()
    check_block(out, 16)
    assert out["trade_id"].tolist() == list(range(16, 21))
    assert r.overrun == 3

    late = RingReader(segs.dir, name, TRADE, from_oldest=True)
    out = late.read()
    assert late.overrun == 0 and len(out) == cap
    assert check_block(out, 13, gap_range=(13, 16)) == (5, 3)

    # A clean re-attach has nothing torn.
    w2.close()
    w3 = RingWriter(segs.dir, name, TRADE, cap)
    assert w3.torn_on_attach == 0 and w3.count == 21 and not w3.created


# --------------------------------------------------------------------------------------------
# 4. A reader process that exits (or is killed) does not remove the segment.

@pytest.mark.parametrize("how", ["exits", "sigkilled"])
def test_reader_process_leaving_keeps_the_segment(segs, procs, how):
    name = segs.name()
    path = segs.path(name)
    w = RingWriter(segs.dir, name, TRADE, 64)
    w.append_many(make_records(0, 10))
    ino = os.stat(path).st_ino

    q = procs.queue()
    p = procs.start(read_once if how == "exits" else read_then_hang, segs.dir, name, q)
    attached, n, cursor, ids = q.get(timeout=PROC_TIMEOUT)
    assert (attached, n, cursor, ids) == (True, 10, 10, list(range(10)))
    if how == "exits":
        p.join(PROC_TIMEOUT)
        assert p.exitcode == 0
    else:
        p.kill()
        p.join(PROC_TIMEOUT)
        assert p.exitcode == -signal.SIGKILL

    assert path.exists() and os.stat(path).st_ino == ino
    w.append_many(make_records(10, 5))
    w.append(record(15))
    assert header_counters(path) == (16, 16)

    r = RingReader(segs.dir, name, TRADE, from_oldest=True)
    out = r.read()
    assert out["trade_id"].tolist() == list(range(16))
    check_block(out, 0)

    q2 = procs.queue()     # never reuse a queue a killed process held (multiprocessing docs)
    p2 = procs.start(read_once, segs.dir, name, q2)
    assert q2.get(timeout=PROC_TIMEOUT) == (True, 16, 16, list(range(16)))
    p2.join(PROC_TIMEOUT)
    assert p2.exitcode == 0
    assert path.exists() and os.stat(path).st_ino == ino


# --------------------------------------------------------------------------------------------
# 5. A writer of another layout replaces the segment; readers notice and never read garbage.

@pytest.mark.parametrize("from_oldest", [False, True])
def test_replaced_segment_with_other_capacity_is_reattached(segs, from_oldest):
    name = segs.name()
    w1 = RingWriter(segs.dir, name, TRADE, 16)
    w1.append_many(make_records(0, 20))
    r = RingReader(segs.dir, name, TRADE, from_oldest=from_oldest)
    assert r.cursor == (4 if from_oldest else 20)
    w1.append_many(make_records(20, 2))
    out = r.read()
    assert out["trade_id"].tolist() == list(range(6, 22) if from_oldest else [20, 21])

    overrun = r.overrun
    assert overrun == (2 if from_oldest else 0)

    w1.close()                                # a writer restarted with another capacity
    w2 = RingWriter(segs.dir, name, TRADE, 32)
    assert w2.created is True and w2.count == 0 and w2.torn_on_attach == 0
    w2.append_many(make_records(0, 5))

    out = r.read()
    assert r.reattached == 1
    assert r.attached
    check_block(out, 0)
    assert out["trade_id"].tolist() == list(range(5))   # the new segment from its first record
    assert r.cursor == 5 and r.overrun == overrun

    w2.append_many(make_records(5, 40))                # laps the new capacity (32)
    out = r.read()
    check_block(out, 13)
    assert out["trade_id"].tolist() == list(range(13, 45))
    assert r.overrun == overrun + 8 and r.cursor == 45 and r.reattached == 1


def test_replaced_segment_with_other_dtype(segs):
    name = segs.name()
    w1 = RingWriter(segs.dir, name, TRADE, 16)
    w1.append_many(make_records(0, 3))
    r = RingReader(segs.dir, name, TRADE)
    assert r.attached and r.cursor == 3

    w1.close()
    wq = RingWriter(segs.dir, name, QUOTE, 16)
    assert wq.created is True
    quote = np.zeros(4, dtype=QUOTE)
    quote["update_id"] = np.arange(4)
    wq.append_many(quote)

    # The trade reader sees the replacement but cannot read quotes: nothing, never garbage.
    for _ in range(3):
        out = r.read()
        assert out.dtype == TRADE and len(out) == 0
    assert r.reattached == 1
    assert not r.attached

    rq = RingReader(segs.dir, name, QUOTE, from_oldest=True)
    assert rq.read()["update_id"].tolist() == [0, 1, 2, 3]

    # A trade writer takes the name back: the trade reader attaches from its first record.
    wq.close()
    w3 = RingWriter(segs.dir, name, TRADE, 16)
    assert w3.created is True and w3.count == 0
    w3.append_many(make_records(0, 6))
    out = r.read()
    assert r.attached and r.reattached == 2
    assert out["trade_id"].tolist() == list(range(6))
    check_block(out, 0)
    assert r.overrun == 0

    # and the quote reader, in turn, notices and returns nothing
    assert len(rq.read()) == 0 and rq.reattached == 1 and not rq.attached


def test_segment_replaced_while_reader_attaches(segs, monkeypatch):
    """The inode a reader checks for replacement is the one it mapped, even when the segment is
    replaced between the reader's open and its stat."""
    name = segs.name()
    path = str(segs.path(name))
    w1 = RingWriter(segs.dir, name, TRADE, 16)
    w1.append_many(make_records(0, 3))
    w1.close()

    real_open = os.open
    state = {"armed": True, "w2": None}

    def racing_open(p, flags, *a, **kw):
        fd = real_open(p, flags, *a, **kw)
        if state["armed"] and str(p) == path and not flags & os.O_CREAT:
            state["armed"] = False   # the reader has opened the old segment: replace it now
            state["w2"] = RingWriter(segs.dir, name, TRADE, 32)
        return fd

    monkeypatch.setattr(os, "open", racing_open)
    r = RingReader(segs.dir, name, TRADE)
    monkeypatch.setattr(os, "open", real_open)
    w2 = state["w2"]
    assert w2 is not None and w2.created
    w2.append_many(make_records(0, 4))

    out = r.read()
    assert r.reattached == 1
    assert out["trade_id"].tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------------------------
# 6. A reader made before its writer.

def test_reader_before_writer(segs):
    name = segs.name()
    r = RingReader(segs.dir, name, TRADE)
    assert not r.attached and r.published == 0 and r.lag() == 0
    for _ in range(2):
        out = r.read()
        assert out.dtype == TRADE and out.shape == (0,)
    assert not segs.path(name).exists()      # a reader never creates the segment

    w = RingWriter(segs.dir, name, TRADE, 8)
    assert w.created
    w.append_many(make_records(0, 3))
    out = r.read()
    assert r.attached
    # everything the writer wrote came after the reader was made: none of it is skipped
    assert out["trade_id"].tolist() == [0, 1, 2]
    assert r.cursor == 3 and r.overrun == 0 and r.reattached == 0

    w.append(record(3))
    w.append_many(make_records(4, 2))
    out = r.read()
    check_block(out, 3)
    assert out["trade_id"].tolist() == [3, 4, 5]
    assert r.read().size == 0


def test_reader_before_writer_lapped_before_first_read(segs):
    name = segs.name()
    r = RingReader(segs.dir, name, TRADE, from_oldest=False)
    assert r.read().size == 0
    w = RingWriter(segs.dir, name, TRADE, 8)
    w.append_many(make_records(0, 20))
    out = r.read(max_records=5)
    assert out["trade_id"].tolist() == list(range(12, 17))
    assert r.overrun == 12
    out = r.read()
    assert out["trade_id"].tolist() == list(range(17, 20))
    assert r.cursor == 20 and r.overrun == 12
