"""Named shared-memory segments as plain files under SHM_DIR (default /dev/shm), mapped with mmap.

Invariants:
- we never use `multiprocessing.shared_memory`: before Python 3.13 its resource_tracker unlinks a
  segment when any attaching process exits (cpython #82300). A file we map ourselves lives until
  someone unlinks it on purpose (`unlink_prefix` at a full system stop);
- a segment appears under its final name only once its header is complete: it is built under a
  temporary name and published with `os.link`, which fails if the name exists, so two racing
  creators agree on one segment and a reader never maps a half-written header;
- a segment is allocated for real when it is made (`posix_fallocate`): a tmpfs that is full fails
  then, with a message naming the segment and the bytes it needs, instead of a SIGBUS (no
  traceback, a crash loop) at the first write into a page the filesystem cannot supply;
  `check_space` sums what a whole stack needs, for run.py to refuse a start that cannot fit;
- the one writing process of a ring or state block holds an exclusive `flock` on its segment for
  its lifetime (`create_or_open_writer`); a writer in another process fails with a message naming
  the holder. The kernel drops the lock when the holder dies, however it dies. Within one process
  a new writer object of a segment takes it over as a restarted writer would (tests simulate a
  restart so): the lock is shared, released when the last of them closes;
- no path is followed through a symlink: the temporary is made with O_CREAT|O_EXCL|O_NOFOLLOW and
  segments are opened with O_NOFOLLOW, so a file planted in a world-writable SHM_DIR is refused;
- the lock-free protocols on these segments (ipc/ring.py, ipc/state.py, ipc/framering.py) rely on
  x86-64 TSO store and load ordering, which Python cannot fence: on any other CPU every segment
  open refuses with a clear message (`platform_error`, worded by ipc/platform.py, which checks
  the whole machine at start).
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import platform
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ipc.platform import machine_problem

MB = 1 << 20
PAGE = mmap.PAGESIZE


class ShmError(RuntimeError):
    """A segment that cannot be made or opened as asked (the message says why and what to do)."""


class ShmSpaceError(ShmError):
    """The shm filesystem cannot supply the bytes a segment needs."""


class SegmentBusy(ShmError):
    """The segment already has a writer."""


def platform_error(machine: str | None = None) -> str | None:
    """Why shared memory is refused on this CPU (None: a TSO CPU, fine); the wording is
    ipc.platform's, which checks the whole machine at start."""
    return machine_problem(machine if machine is not None else platform.machine())


def _require_platform() -> None:
    err = platform_error()
    if err is not None:
        raise ShmError(err)


def segment_path(shm_dir: str, name: str) -> Path:
    return Path(shm_dir) / name


def free_bytes(shm_dir: str) -> int:
    st = os.statvfs(shm_dir)
    return st.f_bavail * st.f_frsize


def pages(n: int) -> int:
    """Bytes a segment of `n` bytes takes on tmpfs (whole pages)."""
    return -(-n // PAGE) * PAGE


class WriterSegment:
    """A segment mapped by its one writer, which holds the writer lock until `close()` (or until
    this object is collected, or the process dies: the kernel drops a flock with its descriptor)."""

    def __init__(self, path: Path, mm: mmap.mmap, created: bool, lock: "_Lock"):
        self.path, self.mm, self.created = path, mm, created
        self._lock: _Lock | None = lock

    def close(self) -> None:
        """Release the writer lock. The mapping stays valid for views still held (numpy arrays
        keep the buffer alive); the writer object must not write after this."""
        lk, self._lock = self._lock, None
        if lk is not None:
            _release(lk)

    def __del__(self):
        self.close()


def create_or_open(path: Path, size: int, init: Callable[[mmap.mmap], None],
                   valid: Callable[[mmap.mmap], bool]) -> tuple[mmap.mmap, bool]:
    """Map `path`, creating it with `init` when absent or when `valid` rejects it.

    Returns (mapping, created). A rejected segment (another layout) is replaced by a new one;
    readers notice through the inode change (`Attached.replaced`). No lock: for segments with
    many writers of their own parts (the heartbeat registry's slots).
    """
    mm, created, _ = _create_or_open(path, size, init, valid, lock=False)
    return mm, created


def create_or_open_writer(path: Path, size: int, init: Callable[[mmap.mmap], None],
                          valid: Callable[[mmap.mmap], bool]) -> WriterSegment:
    """`create_or_open` for the one writer of a segment: takes the writer lock first (SegmentBusy
    if someone holds it: a segment with a live writer is never replaced under it), and allocates
    an existing sparse segment (made by an older version) for real too."""
    mm, created, lk = _create_or_open(path, size, init, valid, lock=True)
    return WriterSegment(path, mm, created, lk)


def _create_or_open(path: Path, size: int, init, valid, lock: bool):
    """(mapping, created, _Lock or None). The lock is taken on a descriptor of its own: a flock
    belongs to an open file description, which a mapping keeps alive, so a lock taken on the
    mapped descriptor would outlive `close()` for as long as the mapping does."""
    _require_platform()
    for _ in range(5):
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ShmError(f"refusing to open shared-memory segment {path}: it is a symlink") from None
            raise
        if fd is not None:
            lk = None
            try:
                if lock:
                    lk = _lock(fd, path)
                    if inode(path) != os.fstat(fd).st_ino:
                        continue          # replaced between our open and our lock: look again
                if os.fstat(fd).st_size == size:
                    mm = mmap.mmap(fd, size)
                    if valid(mm):
                        if lock:
                            _allocate(fd, path, size)
                        lk, held = None, lk
                        return mm, False, held
                    mm.close()
                _unlink_quiet(path)       # another layout: replace it
            finally:
                os.close(fd)
                if lk is not None:
                    _release(lk)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = _open_tmp(tmp)
        lk = None
        try:
            _allocate(fd, path, size)
            mm = mmap.mmap(fd, size)
            if lock:
                lk = _lock(fd, tmp)      # nobody else knows this file yet: cannot fail
            init(mm)
            try:
                os.link(tmp, path)
            except FileExistsError:
                mm.close()      # somebody else published first: use theirs
                continue
            lk, held = None, lk
            return mm, True, held
        finally:
            _unlink_quiet(tmp)
            os.close(fd)
            if lk is not None:
                _release(lk)
    raise ShmError(f"could not create or open segment {path}")


def _open_tmp(tmp: Path) -> int:
    """The temporary of a new segment: a fresh file, never a path that already exists (a planted
    symlink would make us write through it). Our own leftover (a process of the same pid died
    between create and publish) is removed; anything else is refused."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        st = os.lstat(tmp)
        import stat
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise ShmError(f"refusing to create shared-memory segment through {tmp}: it already exists "
                           f"and is not our own leftover file (a symlink or another user's file); "
                           f"remove it") from None
        _unlink_quiet(tmp)
        return os.open(tmp, flags, 0o600)


def _allocate(fd: int, path: Path, size: int) -> None:
    """Give the segment its pages now, so a full filesystem is an error here, not a SIGBUS later."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        free = free_bytes(str(path.parent))
        raise ShmSpaceError(
            f"cannot allocate shared-memory segment {path.name} in {path.parent}: it needs "
            f"{size} bytes ({size / MB:.1f} MB), {free / MB:.1f} MB free ({e.strerror}); enlarge "
            f"{path.parent} (Docker: --shm-size) or lower RING_CAPACITY / RECORD_RING_BYTES") from None


class _Lock:
    """This process's writer lock on one segment file (a flock on a descriptor of its own)."""

    def __init__(self, key: tuple[int, int], fd: int):
        self.key, self.fd, self.pid, self.users = key, fd, os.getpid(), 1


_HELD: dict[tuple[int, int], _Lock] = {}      # (st_dev, st_ino) -> our lock on it
_HELD_MUTEX = threading.Lock()


def _lock(fd: int, path: Path) -> _Lock:
    """The writer lock on the file of `fd`: this process's, or a new flock (SegmentBusy if another
    process holds one). A forked child does not inherit its parent's claim."""
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    with _HELD_MUTEX:
        lk = _HELD.get(key)
        if lk is not None and lk.pid == os.getpid():
            lk.users += 1
            return lk
        lock_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            holder = lock_holder(st.st_ino)
            who = f"pid {holder}" if holder is not None else "another process"
            raise SegmentBusy(f"shared-memory segment {path} already has a writer ({who}): one writer "
                              f"per segment — is another stack running with the same SHM_PREFIX?") from None
        lk = _HELD[key] = _Lock(key, lock_fd)
        return lk


def _release(lk: _Lock) -> None:
    with _HELD_MUTEX:
        lk.users -= 1
        if lk.users > 0:
            return
        if _HELD.get(lk.key) is lk:
            del _HELD[lk.key]
        if lk.pid == os.getpid():
            os.close(lk.fd)


def lock_holder(ino: int) -> int | None:
    """The pid holding a flock on inode `ino` (from /proc/locks), None if unknown."""
    try:
        with open("/proc/locks") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF" (a blocked waiter has "->" first)
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(ino):
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None


# --- what a whole stack needs ---------------------------------------------------------------------

# The API workers' prometheus_client multiprocess files: a few per worker (one per metric type and
# gauge mode), 64 KiB each when made; an allowance, they grow only with many label sets
METRICS_FILES_PER_WORKER, METRICS_FILE_BYTES = 8, 64 << 10


def stack_segments(s) -> dict[str, tuple[str, int]]:
    """Every segment a stack of settings `s` may create -> (what it is, its bytes).

    An upper bound: a feed's ring is counted whether or not its stream has sent a record yet (a
    ring is made on a stream's first record), and a state block at the default block size (the
    small ones — anchor, accumulators, indicators — are smaller).
    """
    # the venue modules know their streams; imported here so ipc/ stays importable on its own
    from actors.venues.binance import futures, parse, spot
    from actors.venues.binance.kline_sync import ring_capacity
    from ipc import framering, names, ring, state
    from ipc.schema import RING_DTYPES

    prefix, symbol = s.ipc.shm_prefix, s.general.symbol
    out: dict[str, tuple[str, int]] = {}

    def add_ring(r, capacity: int, what: str = "rings") -> None:
        out[r.name(prefix, symbol)] = (what, ring.HEADER_BYTES + capacity * RING_DTYPES[r.kind].itemsize)

    cap = s.ipc.ring_capacity
    for venue, mod in ((names.FUTURES, futures), (names.SPOT, spot)):
        for key in dict.fromkeys(parse.stream_kind(st) for st in mod.streams(s)):
            if key is not None:
                add_ring(names.venue_ring(venue, key), cap)
    feeds = [names.FUTURES, names.SPOT]
    # compute's history for the dashboard: the market's always, a series' where it is followed
    add_ring(names.MARKET_HISTORY_RING, names.MARKET_HISTORY_CAPACITY, "history rings")
    blocks = [*names.COMPUTE_BLOCKS, names.ANCHOR_BLOCK, names.POLYMARKET_BLOCK, names.CHAINLINK_BLOCK,
              names.CONTEXT_BLOCK, names.INDICATORS_BLOCK]
    if s.polymarket_on:
        feeds += [names.POLY, names.CHAINLINK]
        for series in s.venues.polymarket_windows:
            add_ring(names.poly_book_ring(series), cap)
            add_ring(names.poly_trade_ring(series), cap)
            add_ring(names.window_history_ring(series), names.WINDOW_HISTORY_CAPACITY, "history rings")
            blocks.append(names.accumulate_block(series))
        add_ring(names.CHAINLINK_RING, cap)
    if s.context.context_enabled:
        feeds.append(names.CONTEXT)          # its REST answers are recorded too (for replay)
        for tf in s.context.context_tfs:
            add_ring(names.context_kline_ring(tf), ring_capacity(s.context.context_bootstrap_limit))
    for b in blocks:
        out[names.block_segment(prefix, b)] = ("state blocks", state.DEFAULT_BLOCK_BYTES)
    out[names.registry_segment(prefix)] = ("registry", state.registry_bytes())
    if s.record.record_enabled:
        for venue in feeds:
            name = names.frame_ring_name(prefix, names.venue_symbol(venue, symbol), venue)
            out[name] = ("frame rings", framering.HEADER_BYTES + s.record.record_ring_bytes)
    out[names.prometheus_dir_name(prefix)] = (
        "api metrics", (s.general.api_workers + 1) * METRICS_FILES_PER_WORKER * METRICS_FILE_BYTES)
    return out


def _allocated(path: Path) -> int:
    """Bytes a segment that already exists holds (it is reused, or replaced, by the new stack)."""
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.stat().st_blocks * 512 for p in path.iterdir() if p.is_file())
        return os.lstat(path).st_blocks * 512
    except OSError:
        return 0


def check_space(s) -> str | None:
    """Why a stack of settings `s` cannot start on this machine's shared memory (None: it can).

    Refuses a CPU without TSO ordering, a SHM_DIR that does not exist, and a SHM_DIR with less
    free space than the stack's segments need (counting what the prefix's existing segments
    already hold). run.py calls it before starting anything; each segment's creation checks
    again for real (`posix_fallocate`).
    """
    err = platform_error()
    if err is not None:
        return err
    shm_dir = s.ipc.shm_dir
    if not os.path.isdir(shm_dir):
        return f"SHM_DIR={shm_dir} does not exist (or is not a directory)"
    segs = stack_segments(s)
    by_what: dict[str, int] = {}
    need = held = 0
    for name, (what, size) in segs.items():
        size = pages(size)
        by_what[what] = by_what.get(what, 0) + size
        need += size
        held += min(size, _allocated(segment_path(shm_dir, name)))
    free = free_bytes(shm_dir)
    if need - held <= free:
        return None
    parts = ", ".join(f"{what} {n / MB:.1f} MB" for what, n in by_what.items())
    return (f"not enough shared memory in SHM_DIR={shm_dir}: the stack needs {need / MB:.1f} MB "
            f"({parts}), {free / MB:.1f} MB free" + (f" (+{held / MB:.1f} MB its segments already hold)" if held else "")
            + f"; enlarge {shm_dir} (Docker: --shm-size={-(-need // (64 * MB)) * 64 + 64}m), or lower "
            f"RING_CAPACITY (now {s.ipc.ring_capacity} records per ring)"
            + (f" or RECORD_RING_BYTES (now {s.record.record_ring_bytes})" if s.record.record_enabled else ""))


def open_existing(path: Path) -> mmap.mmap:
    """Map an existing segment read-write; FileNotFoundError if absent."""
    return open_with_inode(path)[0]


def open_with_inode(path: Path) -> tuple[mmap.mmap, int]:
    """`open_existing`, plus the inode of the file actually mapped.

    The inode comes from the same descriptor as the mapping: a separate `inode(path)` after the
    open could see a segment that replaced this one in between, and a reader would then never
    notice the replacement.
    """
    _require_platform()
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ShmError(f"refusing to open shared-memory segment {path}: it is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_size == 0:
            raise FileNotFoundError(f"{path} is empty")
        return mmap.mmap(fd, st.st_size), st.st_ino
    finally:
        os.close(fd)


def inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def unlink_prefix(shm_dir: str, prefix: str) -> int:
    """Remove every segment of this prefix (a full stop); returns how many."""
    n = 0
    for p in sorted(Path(shm_dir).glob(f"{prefix}.*")):
        if p.is_dir() and not p.is_symlink():   # prometheus_client's multiprocess files (the API)
            shutil.rmtree(p, ignore_errors=True)
        else:
            _unlink_quiet(p)
        n += 1
    return n


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
