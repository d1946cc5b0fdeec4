"""Fault drills, part 1: `kill -9` every actor in turn under supervisord while the sim streams,
then the bus, then a full recording disk, a second start (refused), a compute crash loop; one
system for the whole module (RECORD_ENABLED).

Throughout, a RingFollower in this process reads the futures and spot trade rings and the futures
quote ring across every kill (never a torn or insane record, ids strictly increasing, gap records
counted) and a BusTap subscriber checks every message's seq/boot (restarts and losses flagged,
never a seq that goes back under the same boot). At the end the system is stopped and the
recording is checked frame by frame: every frame the feeds put in their rings is on disk exactly
once, across the recorder's kill and the full disk.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from ipc import recording
from tests.support.bus import BusTap
from tests.support.rings import RingFollower, ring_counters
from tests.support.system import ROOT
from tests.support.wait import wait_for

from .tools import actor, children, healthy, pid_alive, running_system, state, wait_or_logs

CONTEXT_TOPIC = "context.BTCUSDT"
TOPICS = ("tick.futures.trade.BTCUSDT", "tick.futures.mark.BTCUSDT", "tick.spot.trade.BTCUSDT",
          "tick.poly.book.15m.UP", "tick.poly.book.15m.DOWN", "tick.chainlink.price.BTCUSD",
          "features.BTCUSDT", "edge.BTCUSDT.15m", "state", CONTEXT_TOPIC)
BUS_TOPICS = ("features.BTCUSDT", "edge.BTCUSDT.15m", "tick.futures.trade.BTCUSDT", "tick.spot.trade.BTCUSDT",
              "tick.poly.book.15m.UP", "tick.chainlink.price.BTCUSD", "state")
ROTATE_SEC = 5          # recording files per 5 s: the disk-full drill waits for the next one

# actor -> (topics it publishes: a restart must be flagged on each; rings it writes: must grow)
KILLS = {
    "context": ((), ()),      # it publishes once a minute: its restart flag is checked at the end
    "feed_futures": (("tick.futures.trade.BTCUSDT", "tick.futures.mark.BTCUSDT"),
                     ("BTCUSDT.futures.trade", "BTCUSDT.futures.quote", "BTCUSDT.futures.frames")),
    "feed_spot": (("tick.spot.trade.BTCUSDT",),
                  ("BTCUSDT.spot.trade", "BTCUSDT.spot.quote", "BTCUSDT.spot.frames")),
    "feed_poly": (("tick.poly.book.15m.UP", "tick.poly.book.15m.DOWN"), ("BTCUPDOWN.poly.book_15m",)),
    "feed_chainlink": (("tick.chainlink.price.BTCUSD",), ("BTCUSD.chainlink.price",)),
    "compute": (("features.BTCUSDT", "edge.BTCUSDT.15m", "state"), ()),
    "recorder": ((), ()),
    "api": ((), ()),
    "sim": ((), ("BTCUSDT.futures.trade", "BTCUSDT.spot.trade", "BTCUSD.chainlink.price")),
}
OUTCOMES: dict[str, dict] = {}
CONTEXT_KILL: dict[str, float] = {}     # when context was killed and the boot it had


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kills")
    rec_dir = tmp / "rec"
    with running_system(tmp / "sys", RECORD_ENABLED="true", RECORD_DIR=str(rec_dir),
                        RECORD_ROTATE_SEC=str(ROTATE_SEC), RECORD_BUFFER_SIZE="200") as system:
        # subscribed before the actors start publishing: the context bootstrap is seen too
        tap = BusTap(system.pub_url, TOPICS)
        try:
            healthy(system)
            follower = RingFollower(system, (("futures", "trade"), ("spot", "trade"), ("futures", "quote")))
            try:
                yield system, tap, follower, rec_dir
            finally:
                follower.close()
        finally:
            tap.close()


def _recorder_ok(system) -> dict | None:
    r = actor(system, "recorder")
    reps = r.get("recording") or {}
    ok = (r.get("alive") and len(reps) == 5 and not r.get("alert")
          and all(v["error"] is None and v["lost"] == 0 for v in reps.values()))
    return r if ok else None


def _no_silent_anomaly(tap, follower) -> None:
    assert follower.bad == [], f"a reader took a bad record: {follower.bad[:5]}"
    assert all(v == 0 for v in follower.overrun().values()), follower.overrun()
    assert tap.regressions == [], f"seq went back under one boot: {tap.regressions[:5]}"


@pytest.mark.parametrize("name", list(KILLS))
def test_kill_9_each_actor(drill, name):
    system, tap, follower, _ = drill
    topics, rings = KILLS[name]
    healthy(system)
    if name == "recorder":
        wait_for(lambda: _recorder_ok(system), 20, "the recorder writing, nothing lost")
    before_state = state(system)
    old = before_state["actors"][name]
    old_pid = old["pid"]
    old_boots = {t: wait_for(lambda t=t: tap.last_boot(t), 20, f"a message on {t}") for t in topics}
    if name == "context":           # its restart can only be seen on its next message (a 1m close)
        CONTEXT_KILL["boot"] = wait_for(lambda: tap.last_boot(CONTEXT_TOPIC), 70,
                                        "a message on context.BTCUSDT")
    old_workers = children(old_pid) if name == "api" else set()
    rings_before = ring_counters(system.env["SHM_PREFIX"])
    data0, gaps0 = follower.snapshot()
    fut_conn0 = before_state["actors"]["feed_futures"]["connections"]
    t_kill = time.monotonic()
    if name == "context":
        CONTEXT_KILL["t"] = t_kill

    os.kill(old_pid, signal.SIGKILL)

    # supervisord restarts it: a new pid, alive in /state
    new = wait_or_logs(system, lambda: (lambda a: a if a.get("pid") not in (None, old_pid) and a.get("alive")
                                        else None)(actor(system, name)), 60, f"{name} restarted by supervisord")
    assert not pid_alive(old_pid)
    up = healthy(system, 60)
    t_up = time.monotonic()
    # the rings it writes continue their counters (and every other ring never went back)
    after = wait_for(lambda: (lambda c: c if all(c[r] > rings_before[r] for r in rings) else None)(
        ring_counters(system.env["SHM_PREFIX"])), 30, f"the rings of {name} growing again")
    back = {r: (rings_before[r], after.get(r)) for r in rings_before if after.get(r, -1) < rings_before[r]}
    assert not back, f"ring counters went back or vanished: {back}"
    # every publisher of the killed actor: the subscriber sees the restart flagged, not a jump
    for t in topics:
        ev = tap.first_of_new_boot(t, t_kill, old_boots[t], 30)
        assert ev.restarted, f"{t}: the first message of the new publisher was not flagged: {ev}"
    # the follower kept reading across the kill: data again after it, nothing insane
    wait_for(lambda: follower.snapshot()[0]["futures.trade"] > data0["futures.trade"] + 20, 20,
             "trades in the ring after the restart")
    data1, gaps1 = follower.snapshot()
    _no_silent_anomaly(tap, follower)
    out = {"old_pid": old_pid, "new_pid": new["pid"], "recovered_s": round(t_up - t_kill, 1),
           "gap_records": dict(gaps1 - gaps0)}

    if name == "feed_futures":      # a restarted feed marks the hole in its rings
        assert gaps1["futures.trade"] > gaps0["futures.trade"] and gaps1["futures.quote"] > gaps0["futures.quote"]
        assert up["actors"]["compute"]["pid"] == before_state["actors"]["compute"]["pid"]
    if name == "feed_spot":
        assert gaps1["spot.trade"] > gaps0["spot.trade"]
    if name == "sim":               # the feeds reconnected to the new sim and marked the hole
        # (/health may still be 200 before the feeds even noticed: the data was not yet stale)
        wait_for(lambda: (lambda c: all(v["connected"] and v["reconnects"] > fut_conn0[k]["reconnects"]
                                        for k, v in c.items()))(actor(system, "feed_futures")["connections"]),
                 30, "feed_futures reconnected to the new sim")
        n = follower.snapshot()[0]
        wait_for(lambda: (lambda d: d["futures.trade"] > n["futures.trade"] + 20 and d["spot.trade"] > n["spot.trade"] + 10)(
            follower.snapshot()[0]), 10, "trades from the new sim in the rings")
        up = healthy(system, 30)
        # the new sim continued the venue's ids: none of its trades or quotes taken for a duplicate
        # (a sim that started its ids over would have had them all dropped for as long as it had run)
        for f, kind in (("feed_futures", "trade"), ("feed_futures", "quote"), ("feed_spot", "trade")):
            d0 = before_state["actors"][f]["streams"][kind]["duplicates"]
            assert up["actors"][f]["streams"][kind]["duplicates"] == d0, (f, kind, d0)
        out["recovered_s"] = round(time.monotonic() - t_kill, 1)
        data1, gaps1 = follower.snapshot()
        _no_silent_anomaly(tap, follower)
        out["gap_records"] = dict(gaps1 - gaps0)
        assert gaps1["futures.trade"] > gaps0["futures.trade"] and gaps1["spot.trade"] > gaps0["spot.trade"]
        for f in ("feed_futures", "feed_spot", "feed_poly", "feed_chainlink"):
            assert up["actors"][f]["pid"] == before_state["actors"][f]["pid"], f"{f} must not restart"
    if name == "compute":
        wait_for(lambda: actor(system, "compute")["counters"]["ticks"] > 20, 10, "compute ticking")
        q = state(system)["quality"]
        assert q["mode"] in ("OK", "DEGRADED") and q["ts_ns"] > before_state["quality"]["ts_ns"]
    if name == "api":               # the orphaned workers go, a new master with 2 new workers
        wait_for(lambda: not any(pid_alive(w) for w in old_workers), 30, "the old gunicorn workers gone")
        wait_for(lambda: actor(system, "api")["counters"].get("workers") == 2, 20, "2 workers")
        new_workers = children(new["pid"])
        assert len(new_workers) == 2 and not new_workers & old_workers
        out["workers"] = (sorted(old_workers), sorted(new_workers))
    if name == "recorder":          # resumed from its checkpoint: nothing lost, recording grows
        rec0 = old["counters"]["frames_recorded"]
        r = wait_for(lambda: (lambda r: r if r and r["counters"]["frames_recorded"] > rec0 else None)(
            _recorder_ok(system)), 30, "the restarted recorder catching up, nothing lost")
        out["frames_recorded"] = (rec0, r["counters"]["frames_recorded"])
    OUTCOMES[name] = out
    print(f"\n{name}: {out}")


def test_kill_9_bus(drill):
    """The bus dies: publishers and subscribers reconnect by themselves (ZeroMQ), messages flow
    again, the publishers' seq continue and whatever was lost meanwhile shows as `lost`."""
    system, tap, follower, _ = drill
    healthy(system)
    old_pid = actor(system, "bus")["pid"]
    pids = {a: v["pid"] for a, v in state(system)["actors"].items()}
    t_kill = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    new = wait_for(lambda: (lambda a: a if a.get("pid") not in (None, old_pid) and a.get("alive") else None)(
        actor(system, "bus")), 30, "the bus restarted")
    healthy(system, 30)
    t_new = time.monotonic()
    lost = {}
    for t in BUS_TOPICS:
        # messages again on every topic; what the outage cost is counted in `lost` by seq
        wait_for(lambda t=t: tap.since(t_new, t), 20, f"{t}: messages again after the bus restart")
        evs = tap.since(t_kill, t)
        before = [e for e in tap.since(0, t) if e.t < t_kill]
        assert not any(e.restarted for e in evs), f"{t}: its publisher did not restart"
        lost[t] = sum(e.lost for e in evs)
        # every seq between the last message before the kill and the last one since is either
        # received or counted lost: nothing vanished silently, and seq continued (no reset)
        assert evs[-1].seq - before[-1].seq == lost[t] + len(evs), t
    # (what the publishers sent while the bus was down is lost, or delivered late from their
    # queues once they reconnect: either way each seq is received once or counted lost)
    _no_silent_anomaly(tap, follower)
    after = {a: v["pid"] for a, v in state(system)["actors"].items()}
    assert {a: p for a, p in after.items() if a != "bus"} == {a: p for a, p in pids.items() if a != "bus"}
    OUTCOMES["bus"] = {"old_pid": old_pid, "new_pid": new["pid"], "lost": lost}


def test_recording_disk_full(drill):
    """The recorder's next file is on a device that is always full (ENOSPC): /state shows the
    recorder's alert, the feeds keep running; space back, the recorder catches up, nothing lost."""
    system, tap, follower, rec_dir = drill
    wait_for(lambda: _recorder_ok(system), 20, "the recorder writing")
    # the aggTrade file of the next period (RECORD_ROTATE_SEC) is a link to /dev/full
    now_s = time.time()
    start = (int(now_s) // ROTATE_SEC + 1) * ROTATE_SEC
    if start - now_s < 1.0:
        start += ROTATE_SEC
    full = rec_dir / "futures" / "btcusdt@aggTrade" / recording.period_name(start * 10 ** 9, ROTATE_SEC)
    full.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/full", full)
    try:
        st = wait_for(lambda: (lambda s: s if s["alerts"] else None)(state(system)), ROTATE_SEC + 15,
                      "the recorder's alert in /state")
        assert [a["actor"] for a in st["alerts"]] == ["recorder"]
        assert "No space left on device" in st["alerts"][0]["alert"]
        rec = st["actors"]["recorder"]
        assert rec["counters"]["disk_ok"] == 0 and rec["recording"]["futures"]["error"]
        frames0 = st["actors"]["feed_futures"]["counters"]["frames"]
        # the feeds keep running while the disk is full; the recorder keeps retrying
        st2 = wait_for(lambda: (lambda s: s if s["actors"]["feed_futures"]["counters"]["frames"] > frames0 + 100
                                and s["actors"]["recorder"]["counters"]["write_errors"] >= 2 else None)(
            state(system)), 20, "feeds running and the recorder retrying while the disk is full")
        assert st2["alerts"] and st2["actors"]["recorder"]["recording"]["futures"]["lost"] == 0
        healthy(system, 5)
    finally:
        full.unlink()                   # space again
    r = wait_for(lambda: (lambda r: r if r["recording"]["futures"]["lag_frames"] < 500 else None)(
        _recorder_ok(system) or {"recording": {"futures": {"lag_frames": 1 << 30}}}), 20,
        "the recorder caught up, alert cleared, nothing lost")
    assert state(system)["alerts"] == []
    OUTCOMES["disk_full"] = {"write_errors": r["counters"]["write_errors"],
                             "frames_recorded": r["counters"]["frames_recorded"]}


def test_second_start_is_refused_and_the_first_stack_stays_whole(drill):
    """A second `run.py` with the same prefix (and an actor by hand) is refused, names the running
    stack, exits 3; the first stack keeps every pid, segment and growing ring (issue 15 item 4)."""
    system, tap, follower, _ = drill
    healthy(system)
    prefix = system.env["SHM_PREFIX"]
    pids = {a: v["pid"] for a, v in state(system)["actors"].items()}
    segments = system.shm_segments()
    rings0 = ring_counters(prefix)
    refusals = {}
    for args in (("--sim",), ("compute",)):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=system.env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert f"a stack with SHM_PREFIX={prefix} is already running (run.py pid {system.proc.pid}" in r.stderr, r.stderr
        refusals[" ".join(args)] = round(time.monotonic() - t0, 1)
    assert system.shm_segments() == segments
    wait_for(lambda: (lambda c: all(c[k] > rings0[k] for k in rings0 if k.endswith(".trade")))(
        ring_counters(prefix)), 20, "every trade ring still growing")
    up = healthy(system, 10)
    assert {a: v["pid"] for a, v in up["actors"].items()} == pids
    _no_silent_anomaly(tap, follower)
    OUTCOMES["second_start"] = {"refused_in_s": refusals, "segments": len(segments)}


COMPUTE_TOPICS = KILLS["compute"][0]
CRASH_KILLS = 3
EXTRA_RESTARTS: Counter = Counter()      # restarts beyond KILLS' one per publisher (the crash loop)


def test_compute_crash_loop_is_visible(drill):
    """compute killed 3 times in a row, each time after it published again: /health names the
    crash loop (503), /metrics shows the starts and the loop, it backed off, and it runs again."""
    system, tap, follower, _ = drill
    healthy(system)
    total0 = actor(system, "compute")["starts"]["total"]
    backoffs = []
    for _ in range(CRASH_KILLS):
        old_pid = actor(system, "compute")["pid"]
        boots = {t: wait_for(lambda t=t: tap.last_boot(t), 20, f"a message on {t}") for t in COMPUTE_TOPICS}
        t_kill = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        new = wait_or_logs(system, lambda: (lambda a: a if a.get("pid") not in (None, old_pid) and a.get("alive")
                                            else None)(actor(system, "compute")), 60, "compute restarted")
        backoffs.append(new["starts"]["backoff_sec"])
        for t in COMPUTE_TOPICS:          # publishing again: the next kill is of a running compute
            tap.first_of_new_boot(t, t_kill, boots[t], 60)
        EXTRA_RESTARTS.update(COMPUTE_TOPICS)
    code, h = system.health()
    assert code == 503, h
    st = h["actors"]["compute"]["starts"]
    assert st["total"] == total0 + CRASH_KILLS and st["crash_loop"] is True and st["window_sec"] == 300
    assert f"compute: crash loop ({st['recent']} starts in 300 s)" in h["problems"]
    assert backoffs[-1] >= 1.0          # the third restart in a row (at least) backed off
    text = system.get("/metrics").text
    assert f'tdc_actor_starts_total{{actor="compute"}} {float(total0 + CRASH_KILLS)}' in text
    assert 'tdc_actor_crash_loop{actor="compute"} 1.0' in text
    assert 'tdc_actor_crash_loop{actor="feed_futures"} 0.0' in text
    wait_for(lambda: actor(system, "compute")["counters"].get("ticks", 0) > 20, 20, "compute ticking again")
    _no_silent_anomaly(tap, follower)
    OUTCOMES["crash_loop"] = {"starts": st["total"], "recent": st["recent"], "backoffs_s": backoffs}


def test_context_restart_was_flagged_and_recording_is_whole(drill):
    """The context actor publishes on each 1m close: by now its restart must have been seen, flagged.
    Then a clean stop: every frame the feeds put in their rings is on disk exactly once."""
    system, tap, follower, rec_dir = drill
    if "context" in OUTCOMES:
        ev = tap.first_of_new_boot(CONTEXT_TOPIC, CONTEXT_KILL["t"], CONTEXT_KILL["boot"],
                                   max(1.0, CONTEXT_KILL["t"] + 80 - time.monotonic()))
        assert ev.restarted, ev
        OUTCOMES["context"]["restart_flagged_after_s"] = round(ev.t - CONTEXT_KILL["t"], 1)
    _no_silent_anomaly(tap, follower)
    data, gaps = follower.snapshot()
    OUTCOMES["follower"] = {"records": dict(data), "gap_records": dict(gaps)}
    tracks = {t: (tr.received, tr.lost, tr.restarts) for t, tr in tap.sub.tracks.items()}
    OUTCOMES["bus_tracks"] = tracks
    if len(OUTCOMES) > len(KILLS):       # every drill ran: each publisher was killed exactly once
        assert {t: tr.restarts for t, tr in tap.sub.tracks.items()} == {
            t: 1 + EXTRA_RESTARTS[t] for t in TOPICS}, tracks
    # a clean stop: the recorder drains every ring before it exits (it stops last)
    rc = system.stop()
    assert rc == 0, system.logs()
    venues = recording.venues(rec_dir)
    assert {"futures", "spot", "poly", "chainlink"} <= set(venues), venues
    for venue in venues:
        ck = recording.load_checkpoint(rec_dir / venue)
        assert ck["lost"] == 0, (venue, ck)
        seqs = Counter(r["seq"] for r in recording.iter_venue(rec_dir, venue))
        assert sorted(seqs) == list(range(ck["recorded"])), f"{venue}: a frame missing"
        assert max(seqs.values()) == 1, f"{venue}: a frame recorded twice"
        OUTCOMES.setdefault("recorded", {})[venue] = ck["recorded"]
    print("\nDRILL OUTCOMES", OUTCOMES)
