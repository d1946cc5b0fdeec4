"""Processes read from /proc: what a test started, by session or by parent, so it can wait for
them to end or kill them (the tests clean up every process they start).

Invariant: a process whose /proc entry vanishes while it is read is simply not listed.
"""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator


def _stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ...)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            yield int(d.name), (d / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue


def session_pids(sid: int, zombies: bool = False) -> list[int]:
    """The processes of session `sid` (zombies too if asked)."""
    return [pid for pid, f in _stats() if int(f[3]) == sid and (zombies or f[0] != b"Z")]


def child_pids(ppid: int) -> set[int]:
    """The live children of `ppid` (gunicorn's workers of its master)."""
    return {pid for pid, f in _stats() if int(f[1]) == ppid and f[0] != b"Z"}


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid`."""
    for pid in session_pids(sid, zombies=True):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
