"""One stream kind of one venue: write its ring, publish its tick topic, count. A thin shell.

What is new is decided by the pure actors.feed.continuity; this module only does the writes.

Invariants:
- a record goes to the ring before it is published, so a subscriber that sees a tick finds it in
  shared memory; nothing is built for the bus when no one subscribes to the topic;
- a gap marker is a gap record in the ring and a gap message on the topic;
- data age (receive minus exchange time) is observed for every record written that carries an
  exchange time (ts_event_ns > 0), unless the writer says the record is not fresh venue data;
- a record goes to one topic per kind, or to the topic the venue's `tick(kind, rec)` names (the
  Polymarket rings publish per outcome token), built only when that topic has a subscriber;
- the payload of a record is ipc.payload's: its fields by dtype name, level arrays cut to the
  levels in use (never a padding slot);
- the ring's binary topic (ipc.names.binary_topic of the ring's topic) gets, at each `flush`,
  every record written since the last one as it lies in the ring (ipc/binary.py), gap records
  included and in ring order; the feed shell flushes once per read of the venue, and after a
  record written outside one, so a batch is what one read delivered. Nothing is built for it
  when no one subscribes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ipc import clock
from ipc.bus import Publisher
from ipc.names import binary_topic
from ipc.payload import builder
from ipc.ring import RingWriter
from ipc.schema import DTYPES, FLAG_GAP

from actors.feed.continuity import Continuity
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram

AGE_FLUSH_MASK = 0xFFFF        # data ages are bucketed at least every 65,536 records written


class Sink:
    """One stream kind of one venue: its ring, its tick topic and its counters."""

    def __init__(self, kind: str, ring: RingWriter, topic: bytes,
                 tick: Callable[[str, tuple], bytes] | None = None, bin_topic: bytes | None = None):
        self.kind, self.ring, self.topic, self.names = kind, ring, topic, DTYPES[kind].names
        self.bin_topic = bin_topic or binary_topic(topic.decode()).encode()   # (ipc.names.Ring.binary_topic)
        self._bin_next = ring.count        # the first ring index not yet offered on bin_topic
        self.doc = builder(kind)      # record -> payload (level arrays cut to n_bids/n_asks)
        self.tick = tick      # the venue's topic of a record, when not one topic per kind
        self.cont = Continuity(kind)
        self.is_new = self.cont.is_new           # bound once: the hot path looks up one attribute
        self.key, self.last_key = self.cont.key, self.cont.last_key
        self.written = self.gap_markers = 0
        self.frames = self.bytes = 0         # frames of this stream received, and their bytes
        self.last_recv_ns = self.last_event_ns = 0
        # (spot bookTicker and depth have no exchange time: ts_event_ns 0, not observed). The hot
        # path only appends to `_ages`; they are bucketed in one numpy pass per heartbeat, or every
        # AGE_FLUSH_MASK + 1 records so the list stays bounded (about half the cost of a bisect per
        # record, measured).
        self.age = Histogram(DATA_AGE_BOUNDS_MS)
        self._ages: list[int] = []

    @property
    def duplicates(self) -> int:
        return self.cont.duplicates

    @property
    def id_gaps(self) -> int:
        return self.cont.id_gaps

    @property
    def ids_missing(self) -> int:
        return self.cont.ids_missing

    def accept(self, rec: tuple, pub: Publisher, observe_age: bool = True) -> bool:
        if not self.is_new(rec):
            return False
        self.ring.append(rec)
        self._written(rec, pub, observe_age)
        return True

    def _written(self, rec: tuple, pub: Publisher, observe_age: bool) -> None:
        """The bookkeeping and the tick of one record just written to the ring."""
        self.written += 1
        self.last_event_ns = rec[0]
        self.last_recv_ns = rec[1]
        if rec[0] > 0 and observe_age:
            self._ages.append(rec[1] - rec[0])
        if not self.written & AGE_FLUSH_MASK:
            self.flush_ages()
        topic = self.topic if self.tick is None else self.tick(self.kind, rec)
        if pub.wants(topic):               # no subscriber: no message to build
            pub.publish(topic, self.doc(rec))

    def accept_read(self, recs: list[tuple], pub: Publisher) -> list[tuple[tuple, Exception]]:
        """The records of one read, in order: the new ones go to the ring as one block (a record at
        a time costs twice as much, measured), then to the tick topic, exactly as `accept` would.
        Returns (record, error) for each new record the ring cannot store; the others still land.
        (The loop is `_written`'s, inlined: it runs per record at the venue's full rate.)"""
        new = [rec for rec in recs if self.is_new(rec)]
        if not new:
            return []
        try:
            block = np.array(new, dtype=self.ring.dtype)
        except (ValueError, TypeError, OverflowError):
            return self._one_by_one(new, pub)
        self.ring.append_many(block)
        before = self.written
        self.written += len(new)
        last = new[-1]
        self.last_event_ns, self.last_recv_ns = last[0], last[1]
        ages, topic, tick, doc = self._ages, self.topic, self.tick, self.doc
        for rec in new:
            if rec[0] > 0:
                ages.append(rec[1] - rec[0])
            if tick is not None:
                topic = tick(self.kind, rec)
            if pub.wants(topic):
                pub.publish(topic, doc(rec))
        if before >> 16 != self.written >> 16:      # crossed a multiple of AGE_FLUSH_MASK + 1
            self.flush_ages()
        return []

    def _one_by_one(self, recs: list[tuple], pub: Publisher) -> list[tuple[tuple, Exception]]:
        """A block with a record the dtype cannot hold: each stored alone, the bad ones returned."""
        failed = []
        for rec in recs:
            try:
                self.ring.append(rec)
            except (ValueError, TypeError, OverflowError) as exc:
                failed.append((rec, exc))
                continue
            self._written(rec, pub, True)
        return failed

    def mark_gap(self, pub: Publisher, reason: str) -> None:
        now = clock.now_ns()
        self.ring.append_gap(now)
        self.gap_markers += 1
        pub.publish(self.topic, {"gap": True, "reason": reason, "ts_recv_ns": now, "flags": FLAG_GAP})
        self.flush(pub)

    def flush(self, pub: Publisher) -> None:
        """Publish on the binary topic every record written since the last flush (if wanted)."""
        end = self.ring.count
        start = self._bin_next
        if end == start:
            return
        self._bin_next = end
        if pub.wants(self.bin_topic):
            first, views = self.ring.written(start, end)
            pub.publish_records(self.bin_topic, self.kind, first, views)

    def flush_ages(self) -> None:
        if self._ages:
            self.age.observe_many_ns(np.array(self._ages, dtype=np.int64))
            self._ages.clear()

    def counters(self) -> dict:
        self.flush_ages()
        c = self.cont
        out = {"frames": self.frames, "bytes": self.bytes,
               "written": self.written, "duplicates": c.duplicates, "id_gaps": c.id_gaps,
               "ids_missing": c.ids_missing, "gap_markers": self.gap_markers,
               "last_recv_ns": self.last_recv_ns, "last_event_ns": self.last_event_ns,
               "ring_count": self.ring.count}
        if self.age.count:
            out["data_age"] = self.age.doc()
        return out
