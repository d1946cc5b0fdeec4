"""Seqlock'd latest-state blocks and the actors' heartbeat registry, in shared memory.

A seqlock region is `seq u64 | length u64 | payload bytes` (the payload is one JSON document).
Invariants:
- one writer per region: it makes `seq` odd, writes length and payload, then makes it even again;
- a reader copies only between two equal, even reads of `seq`, so it never returns a torn payload;
  it retries a bounded number of times and then reports "busy" (None) instead of spinning forever;
- ordering relies on x86 TSO (stores and loads each stay in program order), as in ring.py;
- a writer that attaches to a region left odd by a dead predecessor makes it even before writing.

The registry is one segment of fixed slots, one per name of ipc.names.HEARTBEAT_NAMES (in that order), each a seqlock
region holding `{"actor","pid","start_ns","alive_ns","counters":{...}}`.
"""
from __future__ import annotations

import os
import time

import numpy as np
import orjson

from ipc import shm
from ipc.names import HEARTBEAT_NAMES, block_segment, registry_segment

MAGIC_BLOCK = b"TDCSTAT1"
MAGIC_REGISTRY = b"TDCREGI1"
_HDR = 64            # segment header: magic, then padding to a cache line
_REGION_HDR = 16     # seq u64, length u64

# A feed's heartbeat (counters, connections, streams with their data-age histograms) is ~3 KB;
# a slot too small would make beat() raise, so keep ample room.
REGISTRY_SLOT_BYTES = 16384


class SeqlockRegion:
    """One seqlock'd payload region inside a mapping."""

    def __init__(self, mm, offset: int, size: int):
        self._mm = mm
        self._seq = np.ndarray((1,), dtype="<u8", buffer=mm, offset=offset)
        self._len = np.ndarray((1,), dtype="<u8", buffer=mm, offset=offset + 8)
        self._lo = offset + _REGION_HDR
        self.capacity = size - _REGION_HDR

    def repair(self) -> None:
        """Called by a (re)starting writer: close a write left open by a dead writer."""
        if int(self._seq[0]) & 1:
            self._seq[0] = int(self._seq[0]) + 1

    def write(self, payload: bytes) -> None:
        n = len(payload)
        if n > self.capacity:
            raise ValueError(f"payload of {n} bytes exceeds the region's {self.capacity}")
        s = int(self._seq[0])
        self._seq[0] = s + 1
        self._len[0] = n
        self._mm[self._lo:self._lo + n] = payload
        self._seq[0] = s + 2

    def read(self, retries: int = 1000) -> bytes | None:
        """The last complete payload (b"" before the first write), or None if never stable."""
        mm, lo = self._mm, self._lo
        for i in range(retries):
            s1 = int(self._seq[0])
            if s1 & 1:
                if i > 10:
                    time.sleep(0)   # let the writer finish: we may share its core
                continue
            n = int(self._len[0])
            if n > self.capacity:
                continue
            data = mm[lo:lo + n]
            if int(self._seq[0]) == s1:
                return data
        return None

    @property
    def seq(self) -> int:
        return int(self._seq[0])


def _init_magic(magic: bytes):
    def init(mm):
        mm[0:8] = magic
    return init


class StateBlock:
    """A named latest-state segment (`<prefix>.state.<name>`) holding one JSON document."""

    def __init__(self, shm_dir: str, prefix: str, name: str, size: int = 1 << 20,
                 writer: bool = False):
        self.path = shm.segment_path(shm_dir, block_segment(prefix, name))
        self.size = size
        self._writer = writer
        self._region: SeqlockRegion | None = None
        self._ino: int | None = None
        self._open()

    def _open(self) -> bool:
        if self._writer:
            mm, _ = shm.create_or_open(self.path, self.size, _init_magic(MAGIC_BLOCK),
                                       lambda m: m[0:8] == MAGIC_BLOCK)
            ino = shm.inode(self.path)     # we are its only creator: no replacement race
        else:
            try:
                mm, ino = shm.open_with_inode(self.path)
            except FileNotFoundError:
                return False
            if mm[0:8] != MAGIC_BLOCK:
                mm.close()
                return False
        self._ino = ino
        self._region = SeqlockRegion(mm, _HDR, len(mm) - _HDR)
        if self._writer:
            self._region.repair()
        return True

    def write_bytes(self, payload: bytes) -> None:
        self._region.write(payload)

    def write(self, doc) -> None:
        self._region.write(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))

    def read_bytes(self) -> bytes | None:
        """The latest JSON bytes; None if the block does not exist yet or has never been written."""
        if self._region is None or shm.inode(self.path) != self._ino:
            if not self._open():
                return None
        data = self._region.read()
        return data or None

    def read(self):
        data = self.read_bytes()
        return orjson.loads(data) if data else None


class Registry:
    """The heartbeat registry: one seqlock slot per actor in `<prefix>.registry`."""

    def __init__(self, shm_dir: str, prefix: str):
        self.path = shm.segment_path(shm_dir, registry_segment(prefix))
        size = _HDR + REGISTRY_SLOT_BYTES * len(HEARTBEAT_NAMES)
        mm, _ = shm.create_or_open(self.path, size, _init_magic(MAGIC_REGISTRY),
                                   lambda m: m[0:8] == MAGIC_REGISTRY)
        self._slots = {a: SeqlockRegion(mm, _HDR + i * REGISTRY_SLOT_BYTES, REGISTRY_SLOT_BYTES)
                       for i, a in enumerate(HEARTBEAT_NAMES)}

    def slot(self, actor: str) -> SeqlockRegion:
        if actor not in self._slots:
            raise KeyError(f"unknown actor {actor!r}; known: {HEARTBEAT_NAMES}")
        return self._slots[actor]

    def read(self, actor: str) -> dict | None:
        data = self.slot(actor).read()
        return orjson.loads(data) if data else None

    def read_all(self) -> dict[str, dict]:
        out = {}
        for a in HEARTBEAT_NAMES:
            doc = self.read(a)
            if doc is not None:
                out[a] = doc
        return out


class Heartbeat:
    """An actor's own registry slot; `beat()` stamps alive time and counters."""

    def __init__(self, registry: Registry, actor: str):
        self.actor = actor
        self._slot = registry.slot(actor)
        self._slot.repair()
        self.pid = os.getpid()
        self.start_ns = time.time_ns()

    def beat(self, counters: dict | None = None, **extra) -> None:
        doc = {"actor": self.actor, "pid": self.pid, "start_ns": self.start_ns,
               "alive_ns": time.time_ns(), "counters": counters or {}}
        doc.update(extra)
        self._slot.write(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
