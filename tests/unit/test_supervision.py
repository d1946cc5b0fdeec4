"""actors/supervision.py: each start counted from the previous heartbeat, a crash loop named and
backed off (capped), the history carried by every beat of the actor's slot — on a real registry."""
from __future__ import annotations

import uuid

import pytest

from actors import supervision
from actors.supervision import BACKOFF_MAX_SEC, NS, WINDOW_SEC, backoff_sec, next_starts
from ipc.shm import unlink_prefix
from ipc.state import Heartbeat, Registry

T0 = 1_700_000_000 * NS


def test_first_start_and_history_carried_forward():
    st = next_starts("compute", None, T0)
    assert st.doc(T0) == {"total": 1, "recent": 1, "window_sec": WINDOW_SEC, "crash_loop": False,
                          "backoff_sec": 0.0, "times_ns": [T0]}
    prev = {"pid": 1, "starts": st.doc(T0)}
    st2 = next_starts("compute", prev, T0 + 10 * NS)
    assert st2.doc(T0 + 10 * NS)["total"] == 2 and st2.times_ns == [T0, T0 + 10 * NS]
    st3 = next_starts("compute", {"starts": st2.doc(T0 + 10 * NS)}, T0 + 20 * NS)
    d = st3.doc(T0 + 20 * NS)
    assert (d["total"], d["recent"], d["crash_loop"], d["backoff_sec"]) == (3, 3, True, 1.0)


def test_the_loop_clears_once_the_starts_age_out():
    st = supervision.Starts("compute", 5, [T0, T0 + NS, T0 + 2 * NS])
    assert st.doc(T0 + 2 * NS)["crash_loop"] is True
    later = T0 + (WINDOW_SEC + 2) * NS
    assert st.doc(later)["recent"] == 1 and st.doc(later)["crash_loop"] is False
    assert st.doc(T0 + (WINDOW_SEC + 3) * NS)["recent"] == 0


def test_backoff_doubles_and_is_capped():
    assert [backoff_sec(n) for n in (1, 2, 3, 4, 5, 6, 8, 16, 1000)] == [
        0.0, 0.0, 1.0, 2.0, 4.0, 8.0, BACKOFF_MAX_SEC, BACKOFF_MAX_SEC, BACKOFF_MAX_SEC]


def test_a_clean_stop_is_not_a_crash():
    st = supervision.Starts("compute", 7, [T0, T0 + NS, T0 + 2 * NS])
    nxt = next_starts("compute", {"stopped": True, "starts": st.doc(T0 + 2 * NS)}, T0 + 3 * NS)
    assert nxt.total == 8 and nxt.times_ns == [T0 + 3 * NS] and nxt.backoff_sec == 0.0


@pytest.mark.parametrize("prev", [{"starts": "junk"}, {"starts": {"total": -3, "times_ns": "x"}},
                                  {"starts": {"total": True, "times_ns": [None, "1", T0 + 99 * NS]}}, []])
def test_a_malformed_history_is_ignored(prev):
    st = next_starts("compute", prev, T0)
    assert st.times_ns == [T0] and st.total in (1, 2)


@pytest.fixture
def registry():
    prefix = "sv" + uuid.uuid4().hex[:8]
    reg = Registry("/dev/shm", prefix)
    yield prefix, reg
    unlink_prefix("/dev/shm", prefix)


@pytest.fixture
def isolated(monkeypatch):
    """begin/install patch Heartbeat.beat for the process and set TDC_STARTS: undone afterwards,
    so no later test's heartbeat carries this test's crash loop."""
    monkeypatch.setattr(Heartbeat, "beat", Heartbeat.beat)
    monkeypatch.setattr(supervision, "_current", None)
    monkeypatch.delenv(supervision.STARTS_ENV, raising=False)


def test_begin_counts_backs_off_and_every_beat_carries_starts(registry, isolated):
    prefix, reg = registry
    slept = []
    for i in range(3):
        supervision.begin("/dev/shm", prefix, "compute", sleep=slept.append)
    # the third start within the window: a crash loop, backed off 1 s while heartbeating
    hb = reg.read("compute")
    assert hb["starts"]["total"] == 3 and hb["starts"]["crash_loop"] is True
    assert hb["starts"]["backoff_sec"] == 1.0 and slept == [1.0]
    # the actor's own beats (it passes no `starts`) carry the history; another slot's do not
    Heartbeat(reg, "compute").beat({"ticks": 1})
    Heartbeat(reg, "bus").beat({})
    assert reg.read("compute")["starts"]["total"] == 3 and reg.read("compute")["counters"] == {"ticks": 1}
    assert "starts" not in reg.read("bus")
    assert supervision.resume_from_env("compute").total == 3
    assert supervision.resume_from_env("bus") is None


def test_a_stop_during_the_backoff_is_clean_not_another_crash(registry, isolated):
    """SIGTERM (supervisorctl restart) while a crash-looping actor backs off: exit 0, a last beat
    marked `stopped`, so the next start's history restarts instead of counting one more crash."""
    import os
    import signal
    prefix, reg = registry
    for _ in range(2):
        supervision.begin("/dev/shm", prefix, "compute", sleep=lambda s: None)

    def sleep(_s):
        os.kill(os.getpid(), signal.SIGTERM)      # delivered here, in the main thread
    with pytest.raises(SystemExit) as e:
        supervision.begin("/dev/shm", prefix, "compute", sleep=sleep)
    assert e.value.code == 0
    assert reg.read("compute")["stopped"] is True
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    st = supervision.begin("/dev/shm", prefix, "compute", sleep=lambda s: None)
    assert st.doc(st.times_ns[-1])["recent"] == 1 and st.total == 4 and st.backoff_sec == 0.0
