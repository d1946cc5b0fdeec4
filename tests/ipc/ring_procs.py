"""Helpers for the ring tests: self-checking TRADE records, and the bodies of the writer and
reader processes (started with the multiprocessing "spawn" context, so they must be importable
top-level functions).

Record `i` (the i-th record ever published on the ring) carries `i` in every field, so a reader
can tell from one record alone whether it is whole (all fields agree) and where it belongs in the
sequence (its index): ts_event_ns = ts_recv_ns = trade_id = first_id = last_id = i,
price = float(i), qty = 2.0 * i, side = +1 for odd i, -1 for even i, flags = 0.
"""
from __future__ import annotations

import os
import random

import numpy as np

from ipc.ring import RingReader, RingWriter
from ipc.schema import FLAG_GAP, TRADE


def make_records(start: int, n: int) -> np.ndarray:
    i = np.arange(start, start + n, dtype=np.int64)
    r = np.zeros(n, dtype=TRADE)
    for f in ("ts_event_ns", "ts_recv_ns", "trade_id", "first_id", "last_id"):
        r[f] = i
    r["price"] = i.astype(np.float64)
    r["qty"] = 2.0 * i.astype(np.float64)
    r["side"] = np.where(i % 2 == 1, 1, -1).astype(np.int8)
    return r


def record(i: int) -> tuple:
    """Record `i` as a tuple in TRADE field order (the `append(tuple)` path)."""
    return (i, i, 0, i, i, i, float(i), 2.0 * i, 1 if i % 2 else -1)


def check_block(out: np.ndarray, first: int, gap_range: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """Assert that `out` holds records first, first+1, ... whole and in order.

    A record with FLAG_GAP is accepted only when its index lies in `gap_range` [lo, hi) and must be
    an all-zero gap marker; every other record must be the self-checking record of its index.
    Returns (data records, gap records).
    """
    n = len(out)
    if n == 0:
        return 0, 0
    idx = np.arange(first, first + n, dtype=np.int64)
    gap = (out["flags"] & FLAG_GAP) != 0
    data = ~gap
    d, di = out[data], idx[data]
    if len(d):
        # Whole: every field agrees with trade_id (a torn copy mixes two records of one slot).
        tid = d["trade_id"]
        whole = ((d["flags"] == 0) & (d["ts_event_ns"] == tid) & (d["ts_recv_ns"] == tid)
                 & (d["first_id"] == tid) & (d["last_id"] == tid)
                 & (d["price"] == tid.astype(np.float64)) & (d["qty"] == 2.0 * tid.astype(np.float64))
                 & (d["side"] == np.where(tid % 2 == 1, 1, -1)))
        if not whole.all():
            k = int(np.flatnonzero(~whole)[0])
            raise AssertionError(f"torn record at index {int(di[k])}: {d[k]!r}")
        if not (tid == di).all():
            k = int(np.flatnonzero(tid != di)[0])
            raise AssertionError(
                f"out of order: expected record {int(di[k])}, got {int(tid[k])} "
                f"(block of {n} starting at {first})")
    if gap.any():
        g, gi = out[gap], idx[gap]
        lo, hi = gap_range
        bad = (gi < lo) | (gi >= hi)
        if bad.any():
            raise AssertionError(f"unexpected gap record at index {int(gi[bad][0])}, "
                                 f"torn range was [{lo}, {hi})")
        for f in ("ts_event_ns", "trade_id", "first_id", "last_id", "price", "qty", "side"):
            if not (g[f] == 0).all():
                raise AssertionError(f"gap record with non-zero {f}: {g[~(g[f] == 0)][0]!r}")
        if not (g["flags"] == FLAG_GAP).all():
            raise AssertionError(f"gap record with other flags: {g['flags']!r}")
    return int(data.sum()), int(gap.sum())


def batch_sizes(seed: int, capacity: int):
    """An endless mix of write sizes: mostly small batches, some single appends, some full laps."""
    rnd = random.Random(seed)
    while True:
        r = rnd.random()
        if r < 0.2:
            yield -rnd.randint(1, 8)          # negative: that many single append() calls
        elif r < 0.9:
            yield rnd.randint(1, 64)
        else:
            yield rnd.randint(65, 2 * capacity)   # > capacity exercises the chunking


def _write(w: RingWriter, size: int) -> int:
    i = w.count
    if size < 0:
        for k in range(-size):
            w.append(record(i + k))
        return -size
    w.append_many(make_records(i, size))
    return size


def write_n(shm_dir: str, name: str, capacity: int, total: int, seed: int, q=None) -> None:
    """Process body: attach (or create) the ring and append records until the counter is `total`.

    Reports (created, torn_on_attach, count at attach) on `q` when given.
    """
    w = RingWriter(shm_dir, name, TRADE, capacity)
    if q is not None:
        q.put((w.created, w.torn_on_attach, w.count, os.getpid()))
    for size in batch_sizes(seed, capacity):
        left = total - w.count
        if left <= 0:
            break
        _write(w, max(size, -left) if size < 0 else min(size, left))


def write_forever(shm_dir: str, name: str, capacity: int, seed: int) -> None:
    """Process body: append records continuously until killed."""
    w = RingWriter(shm_dir, name, TRADE, capacity)
    for size in batch_sizes(seed, capacity):
        _write(w, size)


def read_once(shm_dir: str, name: str, q) -> None:
    """Process body: attach from the oldest record, read everything, report, exit normally."""
    r = RingReader(shm_dir, name, TRADE, from_oldest=True)
    out = r.read()
    q.put((r.attached, len(out), r.cursor, [int(x) for x in out["trade_id"]]))


def read_then_hang(shm_dir: str, name: str, q) -> None:
    """Process body: attach, read, report, then keep reading until killed."""
    r = RingReader(shm_dir, name, TRADE, from_oldest=True)
    out = r.read()
    q.put((r.attached, len(out), r.cursor, [int(x) for x in out["trade_id"]]))
    while True:
        r.read()
        os.sched_yield()


def hold_writer(shm_dir: str, name: str, capacity: int, q) -> None:
    """Process body: be the ring's writer, report, and hold it until killed."""
    import time
    w = RingWriter(shm_dir, name, TRADE, capacity)
    w.append_many(make_records(0, 3))
    q.put(os.getpid())
    while True:
        time.sleep(1)


def try_writer(shm_dir: str, name: str, capacity: int, q) -> None:
    """Process body: try to become the ring's writer; report "ok" or the refusal."""
    from ipc.shm import SegmentBusy
    try:
        RingWriter(shm_dir, name, TRADE, capacity).close()
    except SegmentBusy as e:
        q.put(f"SegmentBusy {e}")
    else:
        q.put("ok")


def hold_frame_writer(shm_dir: str, name: str, capacity_bytes: int, q) -> None:
    """Process body: be the frame ring's writer, report, and hold it until killed."""
    import time
    from ipc.framering import FrameRingWriter
    w = FrameRingWriter(shm_dir, name, capacity_bytes)
    w.append(b"c0", b"btcusdt@aggTrade", b'{"a":1}', 1)
    q.put(os.getpid())
    while True:
        time.sleep(1)
