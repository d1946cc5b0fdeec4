"""What the machine must offer, checked once at start: one message naming every problem, not a
traceback from deep inside the first segment open.

Invariants:
- `check` returns every problem (an empty list: the machine is fine); it reads the host only
  through its defaults, so each refusal is tested by passing (or monkeypatching) the value;
- Linux: segments are files on a tmpfs under SHM_DIR, allocated with posix_fallocate and locked
  with flock, and their writers are found through /proc/locks;
- CPython >= MIN_PYTHON: what pyproject's requires-python says; this module itself imports on
  older Pythons (no syntax or stdlib of 3.11), so the message is what an old interpreter shows;
- an x86 (TSO) CPU: the lock-free rings and state blocks rely on its store/load ordering
  (ipc/ring.py); `machine_problem` is the one wording, ipc/shm.py refuses every segment open
  with it too;
- SHM_DIR is an existing directory this user can write (its size is checked later, per stack,
  by ipc.shm.check_space).
"""
from __future__ import annotations

import os
import platform
import sys

MIN_PYTHON = (3, 11)
# CPUs whose memory model is TSO (stores and loads each stay in program order)
TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"})


def machine_problem(machine: str) -> str | None:
    """Why this CPU cannot run the shared-memory protocols (None: a TSO CPU, fine)."""
    m = machine.lower()
    if m in TSO_MACHINES:
        return None
    return (f"refusing to run on CPU {m or 'unknown'!r}: the shared-memory rings and state blocks rely "
            f"on x86-64 (TSO) memory ordering, which Python cannot fence; on a weakly ordered CPU "
            f"(ARM, POWER, RISC-V) a reader could take a torn record for data. Run on x86-64.")


def system_problem(system: str) -> str | None:
    if system == "Linux":
        return None
    return (f"refusing to run on {system or 'an unknown OS'}: this system needs Linux (shared memory "
            f"is files on a tmpfs under SHM_DIR, allocated with posix_fallocate and locked with flock; "
            f"their writers are found through /proc)")


def python_problem(version: tuple[int, ...]) -> str | None:
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    have = ".".join(str(v) for v in version[:3])
    need = ".".join(str(v) for v in MIN_PYTHON)
    return f"refusing to run on Python {have}: this system needs Python >= {need}"


def shm_dir_problem(shm_dir: str) -> str | None:
    if not os.path.isdir(shm_dir):
        return f"SHM_DIR={shm_dir} does not exist (or is not a directory)"
    if not os.access(shm_dir, os.W_OK | os.X_OK):
        return f"SHM_DIR={shm_dir} is not writable by this user (uid {os.getuid()})"
    return None


def check(shm_dir: str | None = None, *, system: str | None = None, machine: str | None = None,
          python: tuple[int, ...] | None = None) -> list[str]:
    """Every reason this machine cannot run the system, in the order OS, Python, CPU, SHM_DIR
    ([]: it can). `shm_dir` None skips the SHM_DIR check (for commands that map no segment)."""
    problems = [
        system_problem(platform.system() if system is None else system),
        python_problem(tuple(sys.version_info) if python is None else python),
        machine_problem(platform.machine() if machine is None else machine),
        shm_dir_problem(shm_dir) if shm_dir is not None else None,
    ]
    return [p for p in problems if p is not None]


def message(problems: list[str]) -> str:
    return ("tdc cannot run on this machine:\n" + "".join(f"  - {p}\n" for p in problems)
            + "(the platform requirements: docs/install.md)")


def require(shm_dir: str | None = None) -> None:
    """`check`, for a start: SystemExit with `message` (exit status 1, the text on stderr) when
    anything is wrong, nothing otherwise."""
    problems = check(shm_dir)
    if problems:
        raise SystemExit(message(problems))
