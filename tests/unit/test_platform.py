"""ipc/platform.py: each requirement of the machine refused with its exact message, and `require`
stopping a real process with all of them."""
from __future__ import annotations

import glob
import os
import platform as std_platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ipc import platform as host
from ipc import shm

ROOT = Path(__file__).resolve().parents[2]

CPU_MSG = ("refusing to run on CPU 'aarch64': the shared-memory rings and state blocks rely on x86-64 "
           "(TSO) memory ordering, which Python cannot fence; on a weakly ordered CPU (ARM, POWER, "
           "RISC-V) a reader could take a torn record for data. Run on x86-64.")
OS_MSG = ("refusing to run on Darwin: this system needs Linux (shared memory is files on a tmpfs under "
          "SHM_DIR, allocated with posix_fallocate and locked with flock; their writers are found "
          "through /proc)")


def test_this_machine_passes():
    assert host.check("/dev/shm") == []
    assert host.require("/dev/shm") is None


def test_other_os_is_refused(monkeypatch):
    monkeypatch.setattr(std_platform, "system", lambda: "Darwin")
    assert host.check("/dev/shm") == [OS_MSG]
    assert host.check(system="") == [OS_MSG.replace("Darwin", "an unknown OS")]


def test_weakly_ordered_cpu_is_refused_with_shm_s_wording(monkeypatch):
    monkeypatch.setattr(std_platform, "machine", lambda: "aarch64")
    assert host.check("/dev/shm") == [CPU_MSG]
    assert shm.platform_error() == CPU_MSG                 # one wording: shm delegates
    assert host.check(machine="AMD64") == [] and host.check(machine="i686") == []
    assert host.check(machine="") == [CPU_MSG.replace("'aarch64'", "'unknown'")]


def test_old_python_is_refused():
    assert host.check(python=(3, 10, 13, "final", 0)) == [
        "refusing to run on Python 3.10.13: this system needs Python >= 3.11"]
    assert host.check(python=(3, 11, 0)) == [] and host.check(python=(3, 13, 0)) == []


def test_shm_dir_missing_or_not_a_dir(tmp_path):
    missing, a_file = tmp_path / "nope", tmp_path / "f"
    a_file.write_text("")
    assert host.check(str(missing)) == [f"SHM_DIR={missing} does not exist (or is not a directory)"]
    assert host.check(str(a_file)) == [f"SHM_DIR={a_file} does not exist (or is not a directory)"]
    assert host.check(str(tmp_path)) == [] and host.check(None) == []


def test_shm_dir_not_writable_by_this_user():
    # root may write anywhere, so as root the check runs in a child that drops to nobody (65534)
    # after its imports; the directory sits in /dev/shm, which nobody can reach
    d = Path(tempfile.mkdtemp(prefix="tdc-platform-test-", dir="/dev/shm"))
    d.chmod(0o555)
    try:
        if os.getuid() == 0:
            code = ("import os, sys; from ipc.platform import check; os.setgid(65534); os.setuid(65534); "
                    f"print(check({str(d)!r}), check('/dev/shm'), sep='|')")
            r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert r.stdout == f"['SHM_DIR={d} is not writable by this user (uid 65534)']|[]\n", r.stderr
        else:
            assert host.check(str(d)) == [f"SHM_DIR={d} is not writable by this user (uid {os.getuid()})"]
    finally:
        d.chmod(0o700)
        d.rmdir()


def test_require_names_every_problem_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.setattr(std_platform, "system", lambda: "Darwin")
    monkeypatch.setattr(std_platform, "machine", lambda: "aarch64")
    with pytest.raises(SystemExit) as e:
        host.require(str(tmp_path / "nope"))
    assert e.value.code == (f"tdc cannot run on this machine:\n  - {OS_MSG}\n  - {CPU_MSG}\n"
                            f"  - SHM_DIR={tmp_path / 'nope'} does not exist (or is not a directory)\n"
                            f"(the platform requirements: docs/install.md)")


def test_require_stops_a_real_process_with_the_message_on_stderr(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from ipc.platform import require; require('/dev/shm'); "
                        f"print('fine'); require({str(tmp_path / 'nope')!r}); print('not reached')"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (1, "fine\n")
    assert r.stderr == (f"tdc cannot run on this machine:\n  - SHM_DIR={tmp_path / 'nope'} does not exist "
                        f"(or is not a directory)\n(the platform requirements: docs/install.md)\n")


def _old_pythons() -> list[str]:
    """pyenv's interpreters from 3.7 (postponed annotations) to below 3.11, oldest first."""
    found = []
    for py in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")):
        minor = Path(py).parents[1].name.split(".")[1]
        if minor.isdigit() and 7 <= int(minor) < 11:
            found.append((int(minor), py))
    return [py for _, py in sorted(found)]


OLD_PYTHONS = _old_pythons()


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python older than 3.11 on this machine (pyenv)")
def test_an_old_interpreter_gets_the_message_not_a_traceback():
    py = OLD_PYTHONS[-1]
    r = subprocess.run([py, "-c", "from ipc.platform import require; require('/dev/shm')"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    ver = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    assert r.returncode == 1
    assert r.stderr == (f"tdc cannot run on this machine:\n  - refusing to run on Python {ver}: this "
                        f"system needs Python >= 3.11\n(the platform requirements: docs/install.md)\n")
