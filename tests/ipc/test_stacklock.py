"""ipc/stacklock.py and run.py's use of it, with real processes: one stack per prefix; a second
`run.py` (or an actor by hand) is refused with a message naming the running stack, exits non-zero
and removes nothing; actors by hand share the prefix; a dead holder never blocks."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ipc import stacklock
from ipc.stacklock import StackBusy, StackLock, lock_path
from tests.support.system import ROOT

SHM = "/dev/shm"
HOLD = ("import sys, time; from ipc.stacklock import StackLock; "
        "l = StackLock.acquire('/dev/shm', sys.argv[1], {'stack_id': 'abc', 'mode': 'run.py --sim'}, "
        "exclusive=sys.argv[2] == 'ex'); print('held', flush=True); time.sleep(60)")


@pytest.fixture
def prefix():
    p = "sl" + uuid.uuid4().hex[:8]
    yield p
    for f in list(Path(SHM).glob(f"{p}.*")) + [lock_path(SHM, p)]:
        f.unlink(missing_ok=True)


def hold(prefix, mode="ex"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, prefix, mode], cwd=ROOT, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    return proc


def kill(proc):
    proc.kill()
    proc.wait(5)


def test_a_held_prefix_is_refused_naming_the_stack_and_freed_when_the_holder_dies(prefix):
    p = hold(prefix)
    try:
        with pytest.raises(StackBusy) as e:
            StackLock.acquire(SHM, prefix, {})
        msg = str(e.value)
        assert f"a stack with SHM_PREFIX={prefix} is already running (run.py pid {p.pid}, run.py --sim, since 20" in msg
        with pytest.raises(StackBusy):
            StackLock.acquire(SHM, prefix, exclusive=False)
    finally:
        kill(p)                 # SIGKILL: no cleanup, the kernel drops the lock
    lk = StackLock.acquire(SHM, prefix, {"stack_id": "new"})
    assert stacklock.read_info(lk.path)["stack_id"] == "new" and stacklock.read_info(lk.path)["pid"] == os.getpid()
    lk.release()
    assert not lock_path(SHM, prefix).exists()


def test_a_supervisord_left_without_its_run_py_still_holds_the_prefix(prefix):
    """run.py killed with -9, then its supervisord reloaded (which closes the inherited lock): no
    process holds the flock, but the lock file names a live supervisord, so the prefix is taken;
    the message says to kill that supervisord. A pid reused by another program does not count."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "supervisord"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path = lock_path(SHM, prefix)
    try:
        path.write_bytes(f'{{"pid": {gone}, "prefix": "{prefix}", "supervisord_pid": {fake.pid}, '
                         f'"stack_id": "abc", "since": "2026-12-03T05:00:00Z"}}'.encode())
        for exclusive in (True, False):
            with pytest.raises(StackBusy) as e:
                StackLock.acquire(SHM, prefix, {}, exclusive=exclusive)
            assert f"already running (run.py pid {gone}, supervisord pid {fake.pid}" in str(e.value)
            assert f"kill {fake.pid})" in str(e.value)
        path.write_bytes(f'{{"pid": {gone}, "supervisord_pid": {other.pid}}}'.encode())
        StackLock.acquire(SHM, prefix, {"stack_id": "new"}).release()
    finally:
        kill(fake)
        kill(other)


def test_actors_by_hand_share_the_prefix_and_block_a_stack(prefix):
    p = hold(prefix, "sh")
    try:
        mine = StackLock.acquire(SHM, prefix, exclusive=False)
        with pytest.raises(StackBusy) as e:
            StackLock.acquire(SHM, prefix, {})
        assert "in use (pids " in str(e.value) and str(p.pid) in str(e.value) and str(os.getpid()) in str(e.value)
        mine.release()
        assert lock_path(SHM, prefix).exists()          # the other holder still has it
    finally:
        kill(p)
    last = StackLock.acquire(SHM, prefix, exclusive=False)
    last.release()                                    # the last shared holder removes the file
    assert not lock_path(SHM, prefix).exists()


def test_an_actor_of_the_stack_itself_takes_no_lock_any_other_is_refused(prefix, monkeypatch):
    p = hold(prefix)
    try:
        monkeypatch.setenv(stacklock.STACK_ID_ENV, "abc")
        assert stacklock.for_actor(SHM, prefix, "compute") is None
        monkeypatch.setenv(stacklock.STACK_ID_ENV, "other")
        with pytest.raises(StackBusy) as e:
            stacklock.for_actor(SHM, prefix, "compute")
        assert str(e.value).startswith("refusing to start actor compute: a stack with SHM_PREFIX=")
        assert "`python run.py ctl restart compute`" in str(e.value)
    finally:
        kill(p)


def test_a_symlink_lock_is_refused(prefix, tmp_path):
    target = tmp_path / "elsewhere"
    os.symlink(target, lock_path(SHM, prefix))
    with pytest.raises(StackBusy, match="is a symlink"):
        StackLock.acquire(SHM, prefix, {})
    assert not target.exists()


def _env(prefix, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDC_", "SHM_"))}
    env.update(SHM_PREFIX=prefix, TDC_RUN_DIR=str(tmp_path / "run"), LOG_DIR=str(tmp_path / "logs"))
    return env


def test_a_second_run_py_is_refused_and_removes_nothing(prefix, tmp_path):
    """Without the lock the second run.py would start supervisord, which exits on the busy socket,
    then unlink the prefix's segments and the socket: here it exits 3 at once, both intact."""
    p = hold(prefix)
    seg = Path(SHM) / f"{prefix}.registry"
    seg.write_bytes(b"live stack's segment")
    sock = tmp_path / "run" / "supervisor.sock"
    sock.parent.mkdir(parents=True)
    sock.write_bytes(b"")
    try:
        for args in (["--sim"], ["compute"]):
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, env=_env(prefix, tmp_path),
                               capture_output=True, text=True, timeout=30, start_new_session=True)
            assert r.returncode == 3, r.stderr
            assert f"a stack with SHM_PREFIX={prefix} is already running (run.py pid {p.pid}" in r.stderr
            assert time.monotonic() - t0 < 15
            assert seg.read_bytes() == b"live stack's segment" and sock.exists()
        assert stacklock.read_info(lock_path(SHM, prefix))["pid"] == p.pid
    finally:
        kill(p)


def test_a_second_actor_by_hand_is_allowed_while_only_actors_run(prefix, tmp_path):
    """An actor by hand holds the prefix shared: a whole stack is refused meanwhile."""
    p = hold(prefix, "sh")
    try:
        r = subprocess.run([sys.executable, "run.py", "--sim"], cwd=ROOT, env=_env(prefix, tmp_path),
                           capture_output=True, text=True, timeout=30, start_new_session=True)
        assert r.returncode == 3 and f"SHM_PREFIX={prefix} is in use (pids {p.pid})" in r.stderr, r.stderr
    finally:
        kill(p)
