"""Start history and crash-loop backoff of every actor (run.py calls `begin` before the actor runs).

supervisord restarts an actor that dies after `startsecs` forever and never marks it FATAL; we
want that (a trader wants the feed back when the venue recovers) but visible and gentle.

Invariants:
- an actor's start history lives in its own heartbeat (`starts`), so it survives the process: at
  start the actor reads its previous registry slot and carries the history forward. The document
  is `{"total", "recent", "window_sec", "crash_loop", "backoff_sec", "times_ns"}`: `total` starts
  since the stack's registry was made (monotonic: `tdc_actor_starts_total`), `recent` the starts
  within the last WINDOW_SEC (this one included, recomputed at each beat: a loop that stopped
  clears once its starts age out), `crash_loop` = recent >= CRASH_LOOP_STARTS;
- a previous instance that stopped cleanly (`stopped` in its last beat: `ctl restart`, a stop)
  was not a crash: the recent history restarts from this start;
- an actor starting in a crash loop sleeps `backoff_sec` = BACKOFF_BASE_SEC · 2^(recent −
  CRASH_LOOP_STARTS), capped at BACKOFF_MAX_SEC, before it runs, heartbeating meanwhile (it is
  alive and shows the loop; supervisord sees it running past startsecs); a SIGTERM or SIGINT
  meanwhile is a clean stop (a last beat marked `stopped`, exit 0), not another crash;
- every beat of the actor's own slot carries `starts` without each actor passing it: `install`
  wraps `Heartbeat.beat` once for the process (the one seam; an actor that passes `starts` itself
  wins). An actor that execs (the API: gunicorn) resumes the same history from TDC_STARTS
  (`resume_from_env`) instead of counting a second start;
- a malformed previous document (another version's, a torn slot) is ignored, never fatal.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field

import orjson

from ipc.state import Heartbeat, Registry

log = logging.getLogger("supervision")

WINDOW_SEC = 300
CRASH_LOOP_STARTS = 3            # 3 starts in 5 min: two restarts nobody asked for
BACKOFF_BASE_SEC = 1.0
BACKOFF_MAX_SEC = 30.0           # capped: back within half a minute once the cause is gone
KEEP_TIMES = 16
STARTS_ENV = "TDC_STARTS"
NS = 1_000_000_000


@dataclass
class Starts:
    actor: str
    total: int
    times_ns: list[int] = field(default_factory=list)   # recent start times (wall), oldest first
    backoff_sec: float = 0.0

    def recent(self, now_ns: int) -> list[int]:
        return [t for t in self.times_ns if now_ns - t <= WINDOW_SEC * NS]

    def doc(self, now_ns: int) -> dict:
        recent = self.recent(now_ns)
        return {"total": self.total, "recent": len(recent), "window_sec": WINDOW_SEC,
                "crash_loop": len(recent) >= CRASH_LOOP_STARTS, "backoff_sec": self.backoff_sec,
                "times_ns": recent}

    def env(self) -> str:
        return orjson.dumps({"actor": self.actor, "total": self.total, "times_ns": self.times_ns,
                             "backoff_sec": self.backoff_sec}).decode()


def backoff_sec(recent: int) -> float:
    if recent < CRASH_LOOP_STARTS:
        return 0.0
    return min(BACKOFF_MAX_SEC, BACKOFF_BASE_SEC * 2.0 ** min(recent - CRASH_LOOP_STARTS, 16))


def _int(v) -> int | None:
    return v if type(v) is int and v >= 0 else None


def next_starts(actor: str, prev_hb, now_ns: int) -> Starts:
    """Sans-I/O: this start's history from the previous heartbeat of the slot (or None)."""
    prev = prev_hb.get("starts") if isinstance(prev_hb, dict) else None
    total, times = 0, []
    if isinstance(prev, dict):
        total = _int(prev.get("total")) or 0
        raw = prev.get("times_ns")
        if isinstance(raw, list):
            times = [t for t in raw if _int(t) is not None and now_ns - t <= WINDOW_SEC * NS and t <= now_ns]
    elif isinstance(prev_hb, dict):
        total = 1                 # an instance ran without a history (an older version): count it
    if isinstance(prev_hb, dict) and prev_hb.get("stopped") is True:
        times = []                # a clean stop, then a start: deliberate, not a crash
    times = (sorted(times) + [now_ns])[-KEEP_TIMES:]
    st = Starts(actor, total + 1, times)
    st.backoff_sec = backoff_sec(len(st.recent(now_ns)))
    return st


_current: Starts | None = None


def install(st: Starts) -> None:
    """Every beat of `st.actor`'s slot from this process carries `starts` (module docstring)."""
    global _current
    _current = st
    if getattr(Heartbeat.beat, "carries_starts", False):
        return
    orig = Heartbeat.beat

    def beat(self, counters=None, **extra):
        if _current is not None and self.actor == _current.actor and "starts" not in extra:
            extra["starts"] = _current.doc(time.time_ns())
        return orig(self, counters, **extra)

    beat.carries_starts = True
    beat.__doc__ = orig.__doc__
    Heartbeat.beat = beat


def current() -> Starts | None:
    return _current


def begin(shm_dir: str, prefix: str, actor: str, sleep=time.sleep) -> Starts:
    """Count this start from the previous heartbeat, install it, and back off first if the actor
    is in a crash loop (heartbeating once a second meanwhile). Returns the history."""
    registry = Registry(shm_dir, prefix)
    try:
        prev = registry.read(actor)
    except (orjson.JSONDecodeError, ValueError):
        prev = None
    st = next_starts(actor, prev, time.time_ns())
    install(st)
    os.environ[STARTS_ENV] = st.env()
    hb = Heartbeat(registry, actor)
    # recorded at once: a start that dies before the actor's first beat is still counted
    hb.beat({}, starting=True)
    if st.backoff_sec > 0:
        n = len(st.recent(time.time_ns()))
        log.warning("%s is in a crash loop (%d starts in %d s, %d in all): backing off %.1f s before "
                    "running", actor, n, WINDOW_SEC, st.total, st.backoff_sec)
        # a stop asked for meanwhile (`ctl restart` once the cause is fixed) is clean, not a crash
        def stop(signum, _frame):
            hb.beat({}, stopped=True)
            log.info("%s stopped during its backoff (signal %d)", actor, signum)
            raise SystemExit(0)
        old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            left = st.backoff_sec
            while left > 0:
                hb.beat({}, backoff=True)
                step = min(1.0, left)
                sleep(step)
                left -= step
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
    return st


def resume_from_env(actor: str) -> Starts | None:
    """In a process the actor exec'd (gunicorn's master for the API): the history `begin` counted."""
    try:
        d = orjson.loads(os.environ.get(STARTS_ENV) or b"null")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(d, dict) or d.get("actor") != actor or _int(d.get("total")) is None:
        return None
    times = [t for t in d.get("times_ns") or () if _int(t) is not None][-KEEP_TIMES:]
    bo = d.get("backoff_sec")
    st = Starts(actor, d["total"], times, float(bo) if type(bo) in (int, float) else 0.0)
    install(st)
    return st
