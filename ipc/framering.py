"""The raw-frame ring: variable-length frames in a shared-memory byte ring, for the recorder.

A feed appends every frame it receives (with its receive time, connection, stream and a request
line for REST answers); the recorder, another process, drains it to disk. One writer per ring,
any number of readers; the feed never waits for the recorder.

Layout (little-endian): a 4096-byte header, then `capacity` bytes of records.
  0 magic b"TDCFRAM1"   16 capacity u64   64 published u64   128 claimed u64   192 frames u64
  256 writer pid u64   264 created ns u64 (with the inode: which incarnation of the ring)
A record starts on an 8-byte boundary:
  total_len u32 (header + body, padded to 8) | flags u32 | seq u64 | ts_recv_ns u64 |
  conn_len u16 | stream_len u16 | meta_len u32 | payload_len u32 | conn, stream, meta, payload
A PAD record (flags & 1; only total_len and flags are meaningful) fills the tail of the buffer
when the next record does not fit before the end, and the slots a dead writer left half-written.

Invariants:
- `published`, `claimed` and `frames` are byte and frame counts since the segment was made; they
  only grow, across writer restarts too (a restarted writer re-attaches and continues them, after
  padding over any torn record). `seq` of a frame is `frames` before it: 0, 1, 2, … with no gap
  unless a frame was lost, so a reader counts losses by seq.
- A write sets `claimed` past the bytes it is about to overwrite, copies, then sets `published`
  and `frames`. As in ipc/ring.py this relies on x86-64 TSO store/load ordering.
- A reader copies `[cursor, published)`, re-reads `claimed`, and if a writer may have overwritten
  its start (lapped: `cursor < claimed - capacity`) it discards the copy and resynchronises at
  `published` (a record boundary); the frames skipped show as a jump in `seq`, counted as lost.
  A reader started on a ring that has already lapped its oldest frame (no known record boundary
  before `published`) with an explicit `next_seq` counts the frames it can no longer reach as lost.
- A feed restarted with another RECORD_RING_BYTES replaces the segment (a new inode under the same
  name); a reader keeps its mapping of the old one, so it can drain it, and `replaced()` tells it
  to re-open the new one.
- Names (conn, stream, meta) are whatever the venue sent: a tap never raises on one (a lone
  surrogate is written backslash-escaped) and a reader never raises on one (bytes that are not
  UTF-8 are read with U+FFFD).
"""
from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ipc import shm
from ipc.names import frame_ring_name

MAGIC = b"TDCFRAM1"
HEADER_BYTES = 4096
_OFF_CAP, _OFF_PUB, _OFF_CLAIMED, _OFF_FRAMES, _OFF_PID, _OFF_CREATED = 16, 64, 128, 192, 256, 264
# total_len, flags, seq, ts_recv_ns, then the lengths of conn, stream, meta and payload
_REC = struct.Struct("<IIQQHHII")
REC_HEADER = _REC.size                  # 36
_PAD = struct.Struct("<II")
FLAG_PAD = 1
# conn and stream are u16-length fields, and no venue's names come near this: a longer name (the
# venue's own text) is cut to it, counted, and the frame kept (its payload holds the whole name)
NAME_MAX_BYTES = 4096


class Frame(NamedTuple):
    seq: int
    ts_recv_ns: int
    conn: str
    stream: str
    meta: str
    payload: bytes


def _u64(mm, off: int) -> np.ndarray:
    return np.ndarray((1,), dtype="<u8", buffer=mm, offset=off)


def _valid(capacity: int | None):
    def check(mm) -> bool:
        if len(mm) < HEADER_BYTES or mm[0:8] != MAGIC:
            return False
        return capacity is None or int(_u64(mm, _OFF_CAP)[0]) == capacity
    return check


class FrameRingWriter:
    """The single writer of one frame ring. Not thread-safe."""

    def __init__(self, shm_dir: str, name: str, capacity_bytes: int):
        if capacity_bytes % 8 or capacity_bytes < 4096:
            raise ValueError(f"frame ring capacity must be a multiple of 8 and >= 4096 (got {capacity_bytes})")
        self.path = shm.segment_path(shm_dir, name)
        self.capacity = capacity_bytes

        def init(mm) -> None:
            mm[0:8] = MAGIC
            _u64(mm, _OFF_CAP)[0] = capacity_bytes
            _u64(mm, _OFF_CREATED)[0] = time.time_ns()

        # the one writer holds the segment's writer lock (a second feed on this ring: SegmentBusy)
        self._seg = shm.create_or_open_writer(self.path, HEADER_BYTES + capacity_bytes, init,
                                              _valid(capacity_bytes))
        self.mm, self.created = self._seg.mm, self._seg.created
        self._pub = _u64(self.mm, _OFF_PUB)
        self._claimed = _u64(self.mm, _OFF_CLAIMED)
        self._frames = _u64(self.mm, _OFF_FRAMES)
        _u64(self.mm, _OFF_PID)[0] = os.getpid()
        self.max_frame = capacity_bytes // 4
        self.oversize = 0                # frames too large for this ring (counted, not stored)
        self.names_cut = 0               # frames whose conn/stream name was over NAME_MAX_BYTES
        self.repaired = int(self._claimed[0] - self._pub[0])
        if self.repaired:                # a writer died mid-record: pad over the torn bytes
            self._pad_to(int(self._claimed[0]))

    @property
    def frames(self) -> int:
        return int(self._frames[0])

    def _pad_to(self, end: int) -> None:
        pos = int(self._pub[0])
        while pos < end:
            off = pos % self.capacity
            n = min(end - pos, self.capacity - off)
            _PAD.pack_into(self.mm, HEADER_BYTES + off, n, FLAG_PAD)
            pos += n
        self._pub[0] = end

    def append(self, conn: bytes, stream: bytes, payload: bytes, ts_recv_ns: int,
               meta: bytes = b"") -> bool:
        if len(conn) > NAME_MAX_BYTES or len(stream) > NAME_MAX_BYTES or len(meta) > NAME_MAX_BYTES:
            conn, stream, meta = conn[:NAME_MAX_BYTES], stream[:NAME_MAX_BYTES], meta[:NAME_MAX_BYTES]
            self.names_cut += 1
        body = len(conn) + len(stream) + len(meta) + len(payload)
        need = (REC_HEADER + body + 7) & ~7
        if need > self.max_frame:
            self.oversize += 1
            return False
        cap, mm = self.capacity, self.mm
        pos = int(self._pub[0])
        off = pos % cap
        if off + need > cap:             # no room before the end: pad, start again at 0
            self._claimed[0] = pos + (cap - off) + need
            _PAD.pack_into(mm, HEADER_BYTES + off, cap - off, FLAG_PAD)
            pos += cap - off
            off = 0
        else:
            self._claimed[0] = pos + need
        base = HEADER_BYTES + off
        seq = int(self._frames[0])
        _REC.pack_into(mm, base, need, 0, seq, ts_recv_ns, len(conn), len(stream), len(meta), len(payload))
        p = base + REC_HEADER
        for part in (conn, stream, meta, payload):
            mm[p:p + len(part)] = part
            p += len(part)
        self._frames[0] = seq + 1
        self._pub[0] = pos + need
        return True

    def close(self) -> None:
        self._pub = self._claimed = self._frames = None
        self._seg.close()
        self.mm.close()


class FrameRingReader:
    """One reader's cursor over a frame ring. `start` is a byte position (e.g. from a checkpoint);
    None starts at the oldest frame still held."""

    def __init__(self, path: Path, start: int | None = None, next_seq: int | None = None):
        self.path = Path(path)
        self.mm, self.inode = shm.open_with_inode(self.path)
        if not _valid(None)(self.mm):
            raise ValueError(f"{self.path} is not a frame ring")
        self.capacity = int(_u64(self.mm, _OFF_CAP)[0])
        self._pub = _u64(self.mm, _OFF_PUB)
        self._claimed = _u64(self.mm, _OFF_CLAIMED)
        self._frames = _u64(self.mm, _OFF_FRAMES)
        self.lost = 0                    # frames overwritten before this reader got to them
        self.ring_id = f"{self.inode}-{int(_u64(self.mm, _OFF_CREATED)[0])}"
        if start is None:
            pub = int(self._pub[0])
            start = 0 if pub <= self.capacity else None
            if start is None:            # the oldest boundary is unknown: begin at the newest
                start = pub
                frames = int(self._frames[0])
                if next_seq is not None and next_seq < frames:
                    self.lost = frames - next_seq      # out of reach before we began
                next_seq = frames
        self.cursor = start
        self.next_seq = 0 if next_seq is None else next_seq

    @property
    def frames_written(self) -> int:
        return int(self._frames[0])

    @property
    def published(self) -> int:
        return int(self._pub[0])

    def rewind(self, cursor: int, next_seq: int, lost: int) -> None:
        """Back to an earlier position of this same mapping (a checkpoint), to read it again."""
        self.cursor, self.next_seq, self.lost = cursor, next_seq, lost

    def replaced(self) -> bool:
        """True when another segment now has this ring's name (the one mapped here is an old one)."""
        ino = shm.inode(self.path)
        return ino is not None and ino != self.inode

    def _copy(self, start: int, end: int) -> bytes:
        cap, base = self.capacity, HEADER_BYTES
        a, b = start % cap, end - start
        if a + b <= cap:
            return bytes(self.mm[base + a:base + a + b])
        return bytes(self.mm[base + a:base + cap]) + bytes(self.mm[base:base + b - (cap - a)])

    def read(self, max_bytes: int = 8 << 20) -> list[Frame]:
        max_bytes = max(max_bytes, self.capacity // 4)    # room for the largest frame
        pub = int(self._pub[0])
        if pub <= self.cursor:
            return []
        end = min(pub, self.cursor + max_bytes)
        buf = self._copy(self.cursor, end)
        if self.cursor < int(self._claimed[0]) - self.capacity:    # lapped while (or before) copying
            self.cursor = int(self._pub[0])
            return []
        out: list[Frame] = []
        pos, n = 0, len(buf)
        while pos + 8 <= n:
            total, flags = _PAD.unpack_from(buf, pos)
            if total < 8 or pos + total > n:
                break                    # a record cut by max_bytes: the next read takes it
            if not flags & FLAG_PAD:
                _, _, seq, ts, lc, ls, lm, lp = _REC.unpack_from(buf, pos)
                p = pos + REC_HEADER
                conn = buf[p:p + lc].decode(errors="replace")
                stream = buf[p + lc:p + lc + ls].decode(errors="replace")
                meta = buf[p + lc + ls:p + lc + ls + lm].decode(errors="replace")
                q = p + lc + ls + lm
                payload = buf[q:q + lp]
                if seq > self.next_seq:
                    self.lost += seq - self.next_seq
                self.next_seq = seq + 1
                out.append(Frame(seq, ts, conn, stream, meta, payload))
            pos += total
        self.cursor += pos
        return out

    def close(self) -> None:
        self._pub = self._claimed = self._frames = None
        self.mm.close()


class FrameTap:
    """What a feed calls for every frame it receives: appends it to the feed's frame ring.
    Names are encoded once. Never raises (a frame too big for the ring is counted as oversize)."""

    def __init__(self, shm_dir: str, prefix: str, symbol: str, venue: str, capacity_bytes: int):
        self.ring = FrameRingWriter(shm_dir, frame_ring_name(prefix, symbol, venue), capacity_bytes)
        self._names: dict[str, bytes] = {}

    def _b(self, s: str) -> bytes:
        b = self._names.get(s)
        if b is None:
            b = s.encode(errors="backslashreplace")
            if len(self._names) < 1024:  # a venue inventing names must not grow this forever
                self._names[s] = b
        return b

    def __call__(self, conn: str, stream: str, payload: bytes | str, ts_recv_ns: int,
                 meta: str = "") -> None:
        if isinstance(payload, str):
            payload = payload.encode(errors="surrogatepass")     # not UTF-8: recorded as frame_b64
        self.ring.append(self._b(conn), self._b(stream), payload, ts_recv_ns,
                         meta.encode(errors="backslashreplace") if meta else b"")

    def counters(self) -> dict:
        return {"frames_to_recorder": self.ring.frames, "record_oversize": self.ring.oversize,
                "record_names_cut": self.ring.names_cut}

    @classmethod
    def from_settings(cls, s, symbol: str, venue: str) -> "FrameTap | None":
        if not s.record.record_enabled:
            return None
        return cls(s.ipc.shm_dir, s.ipc.shm_prefix, symbol, venue, s.record.record_ring_bytes)
