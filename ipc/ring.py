"""The shared-memory ring: one writer, any number of readers, fixed-size numpy records.

Layout (little-endian): a 4096-byte header, then `capacity` records of the stream's dtype.
  0  magic b"TDCRING1"        8  schema version u32    12 record size u32
  16 capacity u64             64 published u64 (own cache line)    128 claimed u64
  192 writer pid u64          200 writer start ns u64  256 dtype descr length u32, 260.. descr JSON

Invariants:
- `published` is the number of records ever written; it only grows, across writer restarts too:
  a restarted writer re-attaches and continues it.
- A write sets `claimed` past the slots it is about to overwrite, copies the records, then sets
  `published`. x86 (TSO) keeps stores in program order and loads in program order, so a reader
  that sees `published = n` sees records `< n` whole, and a reader that loads `claimed` after its
  copy knows which slots a writer may have touched meanwhile. This relies on x86-64 ordering; on
  a weakly ordered CPU (ARM) the counters would need fences, which Python cannot issue, so
  ipc.shm refuses to open a segment there.
- One writer per ring: it holds the segment's writer lock (ipc.shm.create_or_open_writer) for its
  lifetime; a second RingWriter, in any process, fails (SegmentBusy) naming the holder's pid.
- The segment is allocated when made (a full shm filesystem is a ShmSpaceError then, not a SIGBUS
  at some later write).
- A reader copies `[cursor, published)`, re-reads `claimed`, and discards every index below
  `claimed - capacity` (overwritten while copying, or lapped before): those are counted as
  overrun, never returned as data.
- A writer that died between `claimed` and `published` left torn slots; its successor fills them
  with gap records before publishing, so no reader takes a torn record for data.
- A reader starts at the end (or, `from_oldest`, at the oldest record) of the segment it finds when
  it is made. A segment that appears later, or replaces the one it had (another layout: new inode),
  holds only records written after the reader was made: it is read from its first record, and
  whatever was already lapped counts as overrun, so nothing is skipped silently.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ipc import clock, shm
from ipc.binary import descr_text
from ipc.schema import FLAG_GAP, SCHEMA_VERSION

MAGIC = b"TDCRING1"
HEADER_BYTES = 4096
_OFF_PUBLISHED = 64
_OFF_CLAIMED = 128
_OFF_PID = 192
_OFF_START = 200
_OFF_DESCR = 256


def _descr(dtype: np.dtype) -> bytes:
    return descr_text(dtype).encode()


def _u64(mm, off: int) -> np.ndarray:
    return np.ndarray((1,), dtype="<u8", buffer=mm, offset=off)


class _Mapped:
    """Views of one mapped ring segment."""

    def __init__(self, mm, dtype: np.dtype):
        self.mm = mm
        self.capacity = int(_u64(mm, 16)[0])
        self.published = _u64(mm, _OFF_PUBLISHED)
        self.claimed = _u64(mm, _OFF_CLAIMED)
        self.data = np.ndarray((self.capacity,), dtype=dtype, buffer=mm, offset=HEADER_BYTES)


def _header_ok(mm, dtype: np.dtype, capacity: int | None) -> bool:
    if len(mm) < HEADER_BYTES or mm[0:8] != MAGIC:
        return False
    version, rsize = np.frombuffer(mm, dtype="<u4", count=2, offset=8)
    if int(version) != SCHEMA_VERSION or int(rsize) != dtype.itemsize:
        return False
    if capacity is not None and int(_u64(mm, 16)[0]) != capacity:
        return False
    (dlen,) = np.frombuffer(mm, dtype="<u4", count=1, offset=_OFF_DESCR)
    return bytes(mm[_OFF_DESCR + 4:_OFF_DESCR + 4 + int(dlen)]) == _descr(dtype)


class RingWriter:
    """The single writer of one ring segment. Not thread-safe; one per segment system-wide."""

    def __init__(self, shm_dir: str, name: str, dtype: np.dtype, capacity: int):
        self.path = shm.segment_path(shm_dir, name)
        self.name, self.dtype, self.capacity = name, np.dtype(dtype), capacity
        descr = _descr(self.dtype)
        if _OFF_DESCR + 4 + len(descr) > HEADER_BYTES:
            raise ValueError(f"dtype description too long for the ring header: {name}")

        def init(mm):
            mm[0:8] = MAGIC
            np.frombuffer(mm, dtype="<u4", count=2, offset=8)[:] = (SCHEMA_VERSION, self.dtype.itemsize)
            _u64(mm, 16)[0] = capacity
            np.frombuffer(mm, dtype="<u4", count=1, offset=_OFF_DESCR)[0] = len(descr)
            mm[_OFF_DESCR + 4:_OFF_DESCR + 4 + len(descr)] = descr

        size = HEADER_BYTES + capacity * self.dtype.itemsize
        self._seg = shm.create_or_open_writer(self.path, size, init,
                                              lambda m: _header_ok(m, self.dtype, capacity))
        mm, self.created = self._seg.mm, self._seg.created
        self._m = _Mapped(mm, self.dtype)
        self._data = self._m.data
        _u64(mm, _OFF_PID)[0] = os.getpid()
        _u64(mm, _OFF_START)[0] = time.time_ns()
        published, claimed = int(self._m.published[0]), int(self._m.claimed[0])
        self.torn_on_attach = claimed - published
        self._next = published
        if claimed > published:
            # The previous writer died mid-write: slots [published, claimed) are torn.
            # Overwrite them with gap records and publish those, so the counter stays monotonic.
            gaps = np.zeros(claimed - published, dtype=self.dtype)
            gaps["flags"] = FLAG_GAP
            gaps["ts_recv_ns"] = clock.now_ns()
            self._write_block(gaps)

    @property
    def count(self) -> int:
        """Records ever published (the write counter)."""
        return self._next

    def written(self, start: int, end: int) -> tuple[int, list[np.ndarray]]:
        """(first, views): views of the records this writer published at indices [first, end), in
        order (two views when they wrap the end of the ring), for publishing them as they lie.
        Only the newest `capacity` records are still there: `first` is `start` raised to
        `end - capacity` when more were asked for."""
        start = max(start, end - self.capacity, 0)
        if end <= start:
            return start, []
        a, b = start % self.capacity, end % self.capacity or self.capacity
        if a < b:
            return start, [self._data[a:b]]
        return start, [self._data[a:], self._data[:b]]

    def append(self, rec) -> None:
        """Write one record (a tuple in dtype field order, or a numpy void of the dtype)."""
        i = self._next
        self._m.claimed[0] = i + 1
        self._data[i % self.capacity] = rec
        self._next = i + 1
        self._m.published[0] = i + 1

    def append_many(self, recs: np.ndarray) -> None:
        """Write a block of records; large blocks go in capacity-sized chunks."""
        for start in range(0, len(recs), self.capacity):
            self._write_block(recs[start:start + self.capacity])

    def append_gap(self, ts_recv_ns: int) -> None:
        rec = np.zeros((), dtype=self.dtype)
        rec["flags"] = FLAG_GAP
        rec["ts_recv_ns"] = ts_recv_ns
        self.append(rec)

    def _write_block(self, recs: np.ndarray) -> None:
        n = len(recs)
        if n == 0:
            return
        i = self._next
        self._m.claimed[0] = i + n
        slot = i % self.capacity
        first = min(n, self.capacity - slot)
        self._data[slot:slot + first] = recs[:first]
        if first < n:
            self._data[:n - first] = recs[first:]
        self._next = i + n
        self._m.published[0] = i + n

    def close(self) -> None:
        """Stop writing and release the writer lock (another writer may then attach)."""
        self._data = None
        self._m = None
        if self._seg is not None:
            self._seg.close()
            self._seg = None


class RingReader:
    """A reader with its own cursor. `read()` returns whole records only and counts what it lost."""

    def __init__(self, shm_dir: str, name: str, dtype: np.dtype, from_oldest: bool = False):
        self.path: Path = shm.segment_path(shm_dir, name)
        self.name, self.dtype = name, np.dtype(dtype)
        self.from_oldest = from_oldest
        self.overrun = 0          # records lost to lapping or concurrent overwrite
        self.reattached = 0       # times the segment was replaced under us
        self._m: _Mapped | None = None
        self._ino: int | None = None   # the segment last looked at (mapped, or of another layout)
        self.cursor = 0
        self._attach(first=True)

    @property
    def attached(self) -> bool:
        return self._m is not None

    @property
    def published(self) -> int:
        return int(self._m.published[0]) if self._m is not None else 0

    def _attach(self, first: bool = False) -> bool:
        try:
            mm, ino = shm.open_with_inode(self.path)
        except FileNotFoundError:
            return False
        self._ino = ino
        if not _header_ok(mm, self.dtype, None):
            mm.close()
            return False
        self._m = _Mapped(mm, self.dtype)
        pub = int(self._m.published[0])
        if first:
            self.cursor = max(0, pub - self._m.capacity) if self.from_oldest else pub
        else:
            # Created after this reader was made: all of it is new to us; read() counts what
            # was already lapped as overrun.
            self.cursor = 0
        return True

    def _check_replaced(self) -> None:
        ino = shm.inode(self.path)
        if ino is not None and ino != self._ino:
            self._m = None
            self.reattached += 1      # counted even when the new layout is not ours
            self._attach()

    def read(self, max_records: int | None = None) -> np.ndarray:
        """Copy the records published since the cursor (at most `max_records`, oldest first)."""
        if self._ino is None:
            self._attach()            # no segment seen yet
        else:
            self._check_replaced()
        if self._m is None:
            return np.empty(0, dtype=self.dtype)
        m = self._m
        cap = m.capacity
        end = int(m.published[0])
        cursor = self.cursor
        if end < cursor:           # cannot happen with a live writer; be safe, never go back
            self.cursor = end
            return np.empty(0, dtype=self.dtype)
        if end - cursor > cap:
            self.overrun += end - cursor - cap
            cursor = end - cap
        if max_records is not None and end - cursor > max_records:
            end = cursor + max_records
        n = end - cursor
        out = np.empty(n, dtype=self.dtype)
        if n:
            slot = cursor % cap
            first = min(n, cap - slot)
            out[:first] = m.data[slot:slot + first]
            if first < n:
                out[first:] = m.data[:n - first]
        # Anything below claimed - capacity may have been overwritten during the copy.
        lo = int(m.claimed[0]) - cap
        if lo > cursor:
            torn = min(lo, end) - cursor
            self.overrun += torn
            out = out[torn:]
        self.cursor = end
        return out

    def lag(self) -> int:
        """Records published but not yet read."""
        return self.published - self.cursor if self._m is not None else 0
