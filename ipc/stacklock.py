"""One stack per shared-memory prefix: the lock `<SHM_DIR>/.<SHM_PREFIX>.lock`.

A stack's segments, its registry and its supervisor socket are named by the prefix; a second
`run.py` with the same prefix would, on its way out, unlink the live stack's segments and socket.
So whoever uses a prefix holds a `flock` on its lock file for its lifetime.

Invariants:
- `run.py` (the whole stack) holds it EXCLUSIVE, and so does its supervisord (the descriptor is
  passed on): while either lives, nobody else gets the prefix. The holder writes who it is
  (pid, prefix, since, run dir, stack id) into the file; a refused start names that stack;
- a single actor started by hand (`run.py <actor>`) holds it SHARED: several may run side by
  side (a test stack of chosen actors), and a whole-stack start is refused meanwhile; an actor
  that the stack's own supervisord started (env TDC_STACK_ID equal to the holder's `stack_id`)
  takes no lock — its stack holds it — and any other actor is refused while a stack runs;
- refusal touches nothing: no segment, socket or file of the holder is removed;
- the lock is also refused while the supervisord the file names runs, flock or not: a reload of
  supervisord closes the descriptor it inherited, and a run.py killed with -9 leaves that
  supervisord (and its stack) running without a holder;
- the kernel drops a flock when its holder dies, however it dies: a stale file never blocks;
- the file is unlinked only by an exclusive holder, before it lets go; every acquirer checks,
  after locking, that the path still names the file it locked (else it locks again), so two
  processes can never each hold "the" lock on different inodes;
- the lock file starts with a dot: `unlink_prefix` (`<prefix>.*`) never removes it under a holder.
"""
from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ipc.state import pid_running

STACK_ID_ENV = "TDC_STACK_ID"
INFO_MAX_BYTES = 4096


class StackBusy(RuntimeError):
    """The prefix is in use; the message says by whom."""


def lock_path(shm_dir: str, prefix: str) -> Path:
    return Path(shm_dir) / f".{prefix}.lock"


def new_stack_id() -> str:
    return secrets.token_hex(8)


@dataclass
class StackLock:
    path: Path
    fd: int
    exclusive: bool

    @classmethod
    def acquire(cls, shm_dir: str, prefix: str, info: dict | None = None,
                exclusive: bool = True) -> "StackLock":
        """Take the prefix's lock without waiting (StackBusy naming the holder if taken); an
        exclusive holder records `info` (with pid, prefix and since added) in the file."""
        path = lock_path(shm_dir, prefix)
        op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        for _ in range(10):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise StackBusy(f"refusing the stack lock {path}: it is a symlink") from None
                raise
            try:
                fcntl.flock(fd, op)
            except BlockingIOError:
                os.close(fd)
                raise StackBusy(busy_message(path, prefix)) from None
            if _same_file(path, fd):
                if _supervisord_alive(read_info(path)):
                    # run.py was killed (-9) and its supervisord let go of the inherited lock (a
                    # reload closes its descriptors): the stack still runs, so the prefix is taken
                    os.close(fd)
                    raise StackBusy(busy_message(path, prefix))
                lk = cls(path, fd, exclusive)
                if exclusive:
                    lk.write_info(info or {}, prefix)
                return lk
            os.close(fd)                # unlinked (or replaced) between open and lock: again
        raise StackBusy(f"could not take the stack lock {path} (it keeps being replaced)")

    def write_info(self, info: dict, prefix: str) -> dict:
        doc = {"pid": os.getpid(), "prefix": prefix, "since_ns": time.time_ns(),
               "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **info}
        self._write(doc)
        return doc

    def _write(self, doc: dict) -> None:
        # one write of a fixed length (JSON padded with spaces), never truncated first: a reader
        # never finds the file empty or half old, half new (an actor would miss the stack_id)
        data = orjson.dumps(doc)
        if len(data) > INFO_MAX_BYTES:
            data = orjson.dumps({k: doc[k] for k in ("pid", "prefix", "stack_id", "supervisord_pid")
                                 if k in doc})
        os.pwrite(self.fd, data.ljust(INFO_MAX_BYTES), 0)
        os.ftruncate(self.fd, INFO_MAX_BYTES)

    def update(self, **fields) -> None:
        """Add fields to the recorded info (e.g. supervisord's pid once it runs)."""
        doc = read_info(self.path) or {}
        doc.update(fields)
        self._write(doc)

    def release(self) -> None:
        """Let go. An exclusive holder removes the file first (it is alone); a shared holder
        removes it only if it turns out to be the last one (upgrade without waiting)."""
        if self.fd < 0:
            return
        try:
            if not self.exclusive:
                try:       # (a flock upgrade drops the shared lock first: someone may get in)
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self.exclusive = True
                except BlockingIOError:
                    pass
            if self.exclusive and _same_file(self.path, self.fd):
                os.unlink(self.path)
        finally:
            os.close(self.fd)
            self.fd = -1

    def inherit_fd(self) -> int:
        """The descriptor to pass to a child that must hold the lock with us (supervisord)."""
        return self.fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def read_info(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(INFO_MAX_BYTES)
    except OSError:
        return None
    try:
        doc = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def holder_pids(path: Path) -> list[int]:
    """Pids holding a flock on `path`, from /proc/locks (Linux); [] where unknown."""
    try:
        ino = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(ino):
            try:
                pids.add(int(f[4]))
            except ValueError:
                pass
    return sorted(pids)


def _supervisord_alive(info: dict | None) -> bool:
    """The supervisord the lock file names still runs (its pid alive and a supervisord: a pid
    reused by another program does not count)."""
    pid = (info or {}).get("supervisord_pid")
    if not pid_running(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"supervisord" in f.read()
    except OSError:
        return False


def busy_message(path: Path, prefix: str) -> str:
    """Who holds the prefix: the stack's record if an exclusive holder wrote one, else the pids."""
    info = read_info(path)
    pids = holder_pids(path)
    if info and (pid_running(info.get("pid")) or pid_running(info.get("supervisord_pid"))):
        sup = f", supervisord pid {info['supervisord_pid']}" if info.get("supervisord_pid") else ""
        where = f", run dir {info['run_dir']}" if info.get("run_dir") else ""
        return (f"a stack with SHM_PREFIX={prefix} is already running (run.py pid {info.get('pid')}{sup}, "
                f"{info.get('mode', 'stack')}, since {info.get('since')}{where}); refusing to start a second "
                f"one on the same segments. Stop it first (Ctrl-C, or kill "
                f"{info.get('pid') if pid_running(info.get('pid')) else info.get('supervisord_pid')}), use "
                f"`python run.py ctl ...` to manage it, or set another SHM_PREFIX. (lock: {path})")
    who = f" (pids {', '.join(map(str, pids))})" if pids else ""
    return (f"SHM_PREFIX={prefix} is in use{who}: by actors started by hand (`python run.py <actor>`) "
            f"or a stack just starting; "
            f"refusing to start on the same segments. Stop them first or set another SHM_PREFIX. "
            f"(lock: {path})")


def for_actor(shm_dir: str, prefix: str, actor: str) -> "StackLock | None":
    """The lock a single-actor command holds: none when its own stack's supervisord started it
    (that stack holds the lock), SHARED when it runs by hand; StackBusy when another stack runs."""
    path = lock_path(shm_dir, prefix)
    mine = os.environ.get(STACK_ID_ENV)
    if mine and (read_info(path) or {}).get("stack_id") == mine:
        return None
    try:
        lk = StackLock.acquire(shm_dir, prefix, exclusive=False)
    except StackBusy as e:
        raise StackBusy(f"refusing to start actor {actor}: {e} To restart one actor of the running "
                        f"stack: `python run.py ctl restart {actor}`.") from None
    os.set_inheritable(lk.fd, True)     # an actor that execs (the API: gunicorn) keeps holding it
    return lk
