"""The raw-frame ring: exact frames back in order across wraps, losses counted by seq, a torn
record of a dead writer padded over, counters continued by a restarted writer."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from ipc.framering import FrameRingReader, FrameRingWriter, _u64, _OFF_CLAIMED

CAP = 4096


def _frames(sizes):
    return [(f"c{i % 3}".encode(), f"s{i % 5}".encode(), bytes([i % 251]) * n, 1_000 + i,
             b"GET /x" if i % 7 == 0 else b"") for i, n in enumerate(sizes)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=80),
       batch=st.integers(1, 5))
def test_reader_gets_every_frame_exactly_across_wraps(segs, sizes, batch):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    r = FrameRingReader(segs.path(name))
    got, want = [], _frames(sizes)
    for i, (c, s, p, ts, m) in enumerate(want):
        assert w.append(c, s, p, ts, m)
        if i % batch == 0:           # the reader keeps up: at most 5 frames (< 1/2 ring) behind
            got += r.read()
    got += r.read()
    assert r.lost == 0
    assert [(f.conn.encode(), f.stream.encode(), f.payload, f.ts_recv_ns, f.meta.encode()) for f in got] == want
    assert [f.seq for f in got] == list(range(len(want)))
    assert w.frames == len(want) == r.frames_written
    w.close(); r.close()


def test_lapped_reader_resyncs_and_counts_the_loss(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    r = FrameRingReader(segs.path(name))
    for i in range(3):
        w.append(b"c", b"s", b"x" * 100, i)
    assert [f.seq for f in r.read()] == [0, 1, 2]
    for i in range(3, 60):                       # 57 * 144 bytes: laps the 4096-byte ring
        w.append(b"c", b"s", b"x" * 100, i)
    assert r.read() == []                        # the copy may be torn: discarded, resynced
    w.append(b"c", b"s", b"y", 60)
    frames = r.read()
    assert [f.seq for f in frames] == [60] and frames[0].payload == b"y"
    assert r.lost == 57                          # seqs 3..59 never read
    w.close(); r.close()


def test_oversize_frame_is_counted_not_stored(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    assert not w.append(b"c", b"s", b"x" * CAP, 1)
    assert w.oversize == 1 and w.frames == 0
    w.close()


def test_restarted_writer_pads_a_torn_record_and_continues(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    r = FrameRingReader(segs.path(name))
    w.append(b"c", b"s", b"a" * 10, 1)
    # a writer killed after claiming 200 bytes, before publishing them (garbage in the slots)
    pub = int(_u64(w.mm, 64)[0])
    _u64(w.mm, _OFF_CLAIMED)[0] = pub + 200
    w.mm[4096 + pub:4096 + pub + 200] = b"\xff" * 200
    w.close()
    w2 = FrameRingWriter(segs.dir, name, CAP)
    assert not w2.created and w2.repaired == 200 and w2.frames == 1
    w2.append(b"c", b"s", b"b" * 10, 2)
    frames = r.read()
    assert [(f.seq, f.payload) for f in frames] == [(0, b"a" * 10), (1, b"b" * 10)]
    assert r.lost == 0
    w2.close(); r.close()


def test_reader_from_a_checkpoint(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    r = FrameRingReader(segs.path(name))
    for i in range(5):
        w.append(b"c", b"s", b"%d" % i, i)
    first = r.read(max_bytes=1)                  # at least one whole frame per read
    cursor, nxt = r.cursor, r.next_seq
    r2 = FrameRingReader(segs.path(name), start=cursor, next_seq=nxt)
    rest = r2.read()
    assert [f.seq for f in first + rest] == [0, 1, 2, 3, 4]
    w.close(); r.close(); r2.close()


def test_names_the_venue_made_up_never_raise(segs):
    """A stream name over the u16 length field (the venue's text) is cut and counted, the frame kept;
    a lone surrogate is written escaped; bytes that are not UTF-8 are read with U+FFFD."""
    from ipc.framering import NAME_MAX_BYTES, FrameTap
    tap = FrameTap(segs.dir, segs.prefix, "BTCUSDT", "futures", 1 << 18)
    r = FrameRingReader(tap.ring.path)
    tap("market", "s" * 70_000, b"p1", 1)
    tap("market", "lone\ud800", "p\udcff2", 2)
    tap.ring.append(b"c", b"bad\xff\xfe", b"p3", 3)
    got = [(f.stream, f.payload) for f in r.read()]
    assert got == [("s" * NAME_MAX_BYTES, b"p1"), ("lone\\ud800", b"p\xed\xb3\xbf2"), ("bad\ufffd\ufffd", b"p3")]
    assert tap.counters() == {"frames_to_recorder": 3, "record_oversize": 0, "record_names_cut": 1}
    tap.ring.close(); r.close()


def test_a_reader_starting_on_a_lapped_ring_counts_what_it_cannot_reach(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    for i in range(60):                          # 60 * 144 bytes: the oldest boundary is overwritten
        w.append(b"c", b"s", b"x" * 100, i)
    r = FrameRingReader(segs.path(name), next_seq=0)
    assert r.lost == 60 and r.next_seq == 60 and r.read() == []
    w.append(b"c", b"s", b"y", 60)
    assert [f.seq for f in r.read()] == [60] and r.lost == 60
    w.close(); r.close()


def test_replaced_tells_a_reader_its_segment_has_a_successor(segs):
    name = segs.name("frames")
    w = FrameRingWriter(segs.dir, name, CAP)
    r = FrameRingReader(segs.path(name))
    w.append(b"c", b"s", b"old", 1)
    assert not r.replaced()
    w.close()
    w2 = FrameRingWriter(segs.dir, name, 2 * CAP)  # another capacity: a new segment under the name
    w2.append(b"c", b"s", b"new", 2)
    assert r.replaced() and [f.payload for f in r.read()] == [b"old"]   # the old one still drains
    w2.close(); r.close()
