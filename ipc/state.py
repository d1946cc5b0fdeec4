"""Seqlock'd latest-state blocks and the actors' heartbeat registry, in shared memory.

A seqlock region is `seq u64 | length u64 | payload bytes` (the payload is one JSON document).
Invariants:
- one writer per region: it makes `seq` odd, writes length and payload, then makes it even again;
- a reader copies only between two equal, even reads of `seq`, so it never returns a torn payload;
  it retries a bounded number of times and then reports "busy" (None) instead of spinning forever;
- ordering relies on x86 TSO (stores and loads each stay in program order), as in ring.py;
- a writer that attaches to a region left odd by a dead predecessor (killed mid-write) sets the
  length to 0 and makes `seq` even: the half-written payload is never taken for data, readers get
  "no data" (None) until the next full write;
- a state block has one writer system-wide: it holds the segment's writer lock (ipc.shm) for its
  lifetime, and a second writer fails with a message naming the holder;
- a heartbeat never stops: a document that outgrows its registry slot is trimmed (its biggest
  details dropped, their names in `truncated`), counted and logged once, never an exception.

The registry is one segment of fixed slots, one per name of ipc.names.HEARTBEAT_NAMES (in that order), each a seqlock
region holding `{"actor","pid","start_ns","alive_ns","counters":{...}}`.
"""
from __future__ import annotations

import logging
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
# keep ample room (a document that outgrows it is trimmed: Heartbeat.beat).
REGISTRY_SLOT_BYTES = 16384
DEFAULT_BLOCK_BYTES = 1 << 20
# heartbeat keys never trimmed: what /health and the supervisors read
HEARTBEAT_CORE = ("actor", "pid", "start_ns", "alive_ns", "starts", "disabled", "truncated")

log = logging.getLogger("ipc.state")


def registry_bytes() -> int:
    """The registry segment's size."""
    return _HDR + REGISTRY_SLOT_BYTES * len(HEARTBEAT_NAMES)


class SeqlockRegion:
    """One seqlock'd payload region inside a mapping."""

    def __init__(self, mm, offset: int, size: int):
        self._mm = mm
        self._seq = np.ndarray((1,), dtype="<u8", buffer=mm, offset=offset)
        self._len = np.ndarray((1,), dtype="<u8", buffer=mm, offset=offset + 8)
        self._lo = offset + _REGION_HDR
        self.capacity = size - _REGION_HDR

    def repair(self) -> bool:
        """Called by a (re)starting writer: close a write left open by a dead writer. Its payload
        may be half-written, so it is emptied (length 0: readers see "no data") before `seq` is
        made even. True if there was something to repair."""
        s = int(self._seq[0])
        if not s & 1:
            return False
        self._len[0] = 0
        self._seq[0] = s + 1
        return True

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

    def __init__(self, shm_dir: str, prefix: str, name: str, size: int = DEFAULT_BLOCK_BYTES,
                 writer: bool = False):
        self.path = shm.segment_path(shm_dir, block_segment(prefix, name))
        self.size = size
        self._writer = writer
        self._seg: shm.WriterSegment | None = None     # the writer's lock
        self._region: SeqlockRegion | None = None
        self._ino: int | None = None
        self.repaired = False          # the writer found a write left open by a dead one
        self._open()

    def _open(self) -> bool:
        if self._writer:
            self._seg = shm.create_or_open_writer(self.path, self.size, _init_magic(MAGIC_BLOCK),
                                                  lambda m: m[0:8] == MAGIC_BLOCK)
            mm = self._seg.mm
            ino = shm.inode(self.path)     # we hold the writer lock: nobody replaces it
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
            self.repaired = self._region.repair()
        return True

    def close(self) -> None:
        """A writer gives up the block (releases its lock); it must not write after this."""
        if self._seg is not None:
            self._seg.close()
            self._seg = None

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


def pid_running(pid) -> bool:
    """The process `pid` exists and is not a zombie. A heartbeat (or a lock file) can name a
    process that was just killed; ask the kernel. Actors, the API and the stack lock share a host
    and pid namespace (supervisord runs them all). Not an int > 0: False."""
    if type(pid) is not int or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a killed child is a zombie until its parent reaps it: count that as gone
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


class Registry:
    """The heartbeat registry: one seqlock slot per actor in `<prefix>.registry`."""

    def __init__(self, shm_dir: str, prefix: str):
        self.path = shm.segment_path(shm_dir, registry_segment(prefix))
        size = registry_bytes()
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
        self.truncated = 0             # beats whose document had to be trimmed to fit the slot
        self._logged: set[tuple[str, ...]] = set()

    def beat(self, counters: dict | None = None, **extra) -> None:
        """Stamp the slot. Never raises for the document's sake: one too big for the slot is
        trimmed (`fit`), one that cannot be serialised is replaced by its core and the error."""
        doc = {"actor": self.actor, "pid": self.pid, "start_ns": self.start_ns,
               "alive_ns": time.time_ns(), "counters": counters or {}}
        doc.update(extra)
        try:
            payload = _dumps(doc)
        except (TypeError, orjson.JSONEncodeError) as e:
            doc = {k: doc[k] for k in HEARTBEAT_CORE if k in doc}
            doc["heartbeat_error"] = str(e)[:200]
            payload = _dumps(doc)
            self._log_once(("<unserialisable>",), f"heartbeat of {self.actor} not serialisable: {e}")
        if len(payload) > self._slot.capacity:
            payload, dropped = fit(doc, self._slot.capacity)
            self.truncated += 1
            self._log_once(tuple(dropped), f"heartbeat of {self.actor} outgrew its {self._slot.capacity}-byte "
                                           f"registry slot: dropped {', '.join(dropped)} (logged once)")
        self._slot.write(payload)

    def _log_once(self, key: tuple[str, ...], msg: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(msg)


def _dumps(doc) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def fit(doc: dict, capacity: int) -> tuple[bytes, list[str]]:
    """`doc` serialised within `capacity` bytes: its biggest details are dropped one by one (the
    counters last, the core keys never), their names listed in `truncated`. Returns (payload,
    dropped keys)."""
    doc = dict(doc)
    dropped: list[str] = []
    sizes = {k: len(_dumps(v)) for k, v in doc.items() if k not in HEARTBEAT_CORE}
    # the counters are what metrics read: give them up only after every other detail
    order = sorted(sizes, key=lambda k: (k == "counters", -sizes[k]))
    for k in order:
        del doc[k]
        dropped.append(k)
        doc["truncated"] = dropped
        payload = _dumps(doc)
        if len(payload) <= capacity:
            return payload, dropped
    # only the core is left and still too big (a huge `starts` history or `disabled` reason)
    core = {"actor": doc.get("actor"), "pid": doc.get("pid"), "start_ns": doc.get("start_ns"),
            "alive_ns": doc.get("alive_ns"), "truncated": dropped + ["<core>"]}
    return _dumps(core), dropped + ["<core>"]
