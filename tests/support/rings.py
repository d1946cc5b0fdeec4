"""Ring readers for tests: a reader from an ipc.names declaration (no test builds a ring name),
a follower thread that checks every record it takes across writer restarts, and the publish
counters of every ring of a prefix read straight from the segment headers."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ipc import names
from ipc.ring import RingReader
from ipc.schema import DTYPES, FLAG_GAP

SYMBOL = "BTCUSDT"
SHM_DIR = "/dev/shm"


def open_reader(ring: names.Ring, prefix: str, symbol: str = SYMBOL, shm_dir: str = SHM_DIR,
                from_oldest: bool = False) -> RingReader:
    """A reader of the declared `ring` under `prefix`, with the ring's own record dtype."""
    return RingReader(shm_dir, ring.name(prefix, symbol), DTYPES[ring.kind], from_oldest=from_oldest)


def ring_counters(prefix: str, shm_dir: str = SHM_DIR) -> dict[str, int]:
    """Every ring under `prefix` by name (without the prefix): records ever published (TDCRING1)
    or frames ever written (TDCFRAM1, the recorder's raw-frame rings)."""
    out = {}
    for p in sorted(Path(shm_dir).glob(f"{prefix}.*")):
        try:
            with open(p, "rb") as f:
                head = f.read(200)
        except OSError:
            continue
        if head[:8] == b"TDCRING1":
            out[p.name[len(prefix) + 1:]] = int.from_bytes(head[64:72], "little")
        elif head[:8] == b"TDCFRAM1":
            out[p.name[len(prefix) + 1:]] = int.from_bytes(head[192:200], "little")
    return out


_HOUR_NS = 3600 * 10 ** 9


def _check_trades(recs: np.ndarray, now_ns: int) -> np.ndarray:
    """Per record: True if every field is sane (a torn or garbage record fails somewhere)."""
    p, q = recs["price"], recs["qty"]
    return (np.isfinite(p) & (p > 1_000) & (p < 1_000_000) & np.isfinite(q) & (q > 0) & (q < 1e5)
            & np.isin(recs["side"], (-1, 1)) & (recs["trade_id"] > 0)
            & (recs["first_id"] > 0) & (recs["first_id"] <= recs["last_id"])
            & (np.abs(recs["ts_event_ns"] - now_ns) < _HOUR_NS)
            & (np.abs(recs["ts_recv_ns"] - recs["ts_event_ns"]) < 60 * 10 ** 9))


def _check_quotes(recs: np.ndarray, now_ns: int) -> np.ndarray:
    b, a = recs["bid"], recs["ask"]
    return (np.isfinite(b) & np.isfinite(a) & (b > 1_000) & (a < 1_000_000) & (b < a)
            & (recs["bid_qty"] > 0) & (recs["ask_qty"] > 0) & (recs["update_id"] > 0)
            & (np.abs(recs["ts_recv_ns"] - now_ns) < _HOUR_NS))


CHECKS = {"trade": (_check_trades, "trade_id"), "quote": (_check_quotes, "update_id")}


class RingFollower:
    """Readers of some rings in this process, on a thread, as any reader process would be: they
    follow the rings across writer restarts and check every record they take. Data records must
    be sane and strictly increasing by id; gap records (FLAG_GAP) are counted."""

    def __init__(self, system, rings: tuple[tuple[str, str], ...], period: float = 0.02):
        s = system.settings()
        self.readers = {f"{v}.{k}": open_reader(names.venue_ring(v, k), s.ipc.shm_prefix, shm_dir=s.ipc.shm_dir)
                        for v, k in rings}
        self.kinds = {f"{v}.{k}": k for v, k in rings}
        self.period = period
        self.data: Counter = Counter()
        self.gaps: Counter = Counter()
        self.bad: list[tuple] = []          # (ring, what, record) for every insane record
        self.last_key: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.t = threading.Thread(target=self._run, name="ring-follower", daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, r in self.readers.items():
                recs = r.read()
                if len(recs):
                    self._check(name, recs)
            self._stop.wait(self.period)

    def _check(self, name: str, recs: np.ndarray) -> None:
        check, key = CHECKS[self.kinds[name]]
        now = time.time_ns()
        gap = (recs["flags"] & FLAG_GAP) != 0
        data = recs[~gap]
        g = recs[gap]
        bad = [(name, "gap record", r) for r in g if not (0 < r["ts_recv_ns"] and abs(int(r["ts_recv_ns"]) - now) < _HOUR_NS)]
        ok = check(data, now)
        bad += [(name, "insane record", r) for r in data[~ok]]
        keys = data[key].astype(np.int64)
        last = self.last_key.get(name)
        seq = np.concatenate(([last], keys)) if last is not None else keys
        if len(seq) > 1 and not (np.diff(seq) > 0).all():
            i = int(np.argmin(np.diff(seq) > 0))
            bad.append((name, f"{key} not increasing", (int(seq[i]), int(seq[i + 1]))))
        with self._lock:
            if len(keys):
                self.last_key[name] = int(keys[-1])
            self.data[name] += len(data)
            self.gaps[name] += int(gap.sum())
            self.bad += bad

    def snapshot(self) -> tuple[Counter, Counter]:
        with self._lock:
            return Counter(self.data), Counter(self.gaps)

    def overrun(self) -> dict[str, int]:
        return {n: r.overrun for n, r in self.readers.items()}

    def close(self) -> None:
        self._stop.set()
        self.t.join(5)
