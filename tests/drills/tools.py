"""Pieces shared by the fault drills: a whole system per module (tests/e2e/harness.System) torn
down with the e2e checks, a bus tap that records every message's seq/boot verdict, ring followers
that check every record they take, ring-counter snapshots, and a raw HTTP client."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from ipc.bus import Subscriber
from ipc.ring import RingReader
from ipc import names
from ipc.schema import DTYPES, FLAG_GAP
from tests.e2e.harness import System, wait_for

SYMBOL = "BTCUSDT"
# what every drill system runs with: quick stale detection and reconnects, one context timeframe
# (the context actor's REST calls are then sequential: the 429/418 drills count them exactly)
BASE_ENV = dict(SIM_TRADE_RATE="40", HEALTH_DATA_STALE_SEC="3", FEED_BACKOFF_MAX_SEC="1",
                CONTEXT_TFS="1m", CONTEXT_BOOTSTRAP_LIMIT="100", API_TOKEN="drill-token")


@contextlib.contextmanager
def running_system(tmp: Path, **overrides: str):
    """A started system, healthy; stopped at the end with the e2e conftest's checks (clean exit,
    no process and no shared-memory segment left behind)."""
    tmp.mkdir(parents=True, exist_ok=True)
    sys_ = System(tmp)
    try:
        sys_.start(**{**BASE_ENV, **overrides})
        yield sys_
        if sys_.proc.poll() is None:
            rc = sys_.stop()
            assert rc == 0, sys_.logs()
        wait_for(lambda: sys_.session_pids() == [], 10, "no process of the system left")
        assert sys_.shm_segments() == [], f"shared memory left behind: {sys_.shm_segments()}"
    except BaseException:
        print(sys_.logs())
        raise
    finally:
        if sys_.proc is not None and sys_.proc.poll() is None:
            os.killpg(sys_.proc.pid, signal.SIGKILL)


def wait_or_logs(system: System, cond, timeout: float, what: str):
    """harness.wait_for, with the system's log tails in the failure."""
    try:
        return wait_for(cond, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.logs()}") from None


def healthy(system: System, timeout: float = 60) -> dict:
    return wait_or_logs(system, lambda: (lambda c, b: b if c == 200 else None)(*system.health()), timeout,
                        "/health 200")


def state(system: System) -> dict:
    r = system.get("/state")
    r.raise_for_status()
    return r.json()


def actor(system: System, name: str) -> dict:
    return state(system)["actors"].get(name) or {}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """Live child processes of `pid` (gunicorn's workers of its master)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                out.add(int(d.name))
    return out


# --- ring counters -------------------------------------------------------------------------------
def ring_counters(system: System) -> dict[str, int]:
    """Every ring of the system by name (without the prefix): records ever published (TDCRING1)
    or frames ever written (TDCFRAM1, the recorder's raw-frame rings)."""
    prefix = system.env["SHM_PREFIX"]
    out = {}
    for p in system.shm_segments():
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


# --- the bus ------------------------------------------------------------------------------------
@dataclass
class BusEvent:
    t: float                 # time.monotonic() when received
    topic: str
    seq: int
    boot: int
    lost: int                # messages missing just before this one (by seq)
    restarted: bool          # the publisher's boot changed
    gap: bool                # a feed's gap message


class BusTap:
    """A Subscriber (ipc.bus) on a thread; every message's verdict is kept. A seq that does not
    move forward under the same boot is a silent anomaly: kept in `regressions`."""

    def __init__(self, url: str, prefixes: tuple[str, ...]):
        self.sub = Subscriber(url, prefixes)
        self.events: list[BusEvent] = []
        self.regressions: list[tuple] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.t = threading.Thread(target=self._run, name="bus-tap", daemon=True)
        self.t.start()

    def _run(self) -> None:
        sock = self.sub.sock
        while not self._stop.is_set():
            if not sock.poll(100):
                continue
            t, payload = sock.recv_multipart()
            topic, msg = t.decode(), orjson.loads(payload)
            prev = self.sub.tracks.get(topic)
            pb, ps = (prev.boot, prev.seq) if prev is not None and prev.received else (None, None)
            ev = self.sub.observe(topic, msg)
            if pb is not None and msg.get("boot") == pb and msg.get("seq") <= ps:
                self.regressions.append((topic, ps, msg.get("seq")))
            with self._lock:
                self.events.append(BusEvent(time.monotonic(), topic, msg.get("seq"), msg.get("boot"),
                                            ev.lost, ev.restarted, bool(msg.get("gap"))))

    def since(self, t0: float, topic: str | None = None) -> list[BusEvent]:
        with self._lock:
            evs = list(self.events)
        return [e for e in evs if e.t >= t0 and (topic is None or e.topic == topic)]

    def last_boot(self, topic: str) -> int | None:
        tr = self.sub.tracks.get(topic)
        return tr.boot if tr is not None and tr.received else None

    def first_of_new_boot(self, topic: str, t0: float, old_boot: int, timeout: float) -> BusEvent:
        """The first message on `topic` after t0 from a publisher other than `old_boot`."""
        def find():
            return next((e for e in self.since(t0, topic) if e.boot != old_boot), None)
        return wait_for(find, timeout, f"a message on {topic} from the restarted publisher")

    def close(self) -> None:
        self._stop.set()
        self.t.join(5)
        self.sub.close()


# --- ring followers ----------------------------------------------------------------------------
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

    def __init__(self, system: System, rings: tuple[tuple[str, str], ...], period: float = 0.02):
        s = system.settings()
        self.readers = {f"{v}.{k}": RingReader(s.shm_dir, names.venue_ring(v, k).name(s.shm_prefix, SYMBOL), DTYPES[k])
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


# --- raw HTTP ----------------------------------------------------------------------------------
@dataclass
class RawAnswer:
    status: int | None       # None: the connection was closed without an answer
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> RawAnswer:
    """Send `data` as is on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    if not buf:
        return RawAnswer(None, {}, b"")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return RawAnswer(status, headers, body)
