"""Named shared-memory segments as plain files under SHM_DIR (default /dev/shm), mapped with mmap.

Invariants:
- we never use `multiprocessing.shared_memory`: before Python 3.13 its resource_tracker unlinks a
  segment when any attaching process exits (cpython #82300). A file we map ourselves lives until
  someone unlinks it on purpose (`unlink_prefix` at a full system stop);
- a segment appears under its final name only once its header is complete: it is built under a
  temporary name and published with `os.link`, which fails if the name exists, so two racing
  creators agree on one segment and a reader never maps a half-written header.
"""
from __future__ import annotations

import mmap
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def segment_path(shm_dir: str, name: str) -> Path:
    return Path(shm_dir) / name


def create_or_open(path: Path, size: int, init: Callable[[mmap.mmap], None],
                   valid: Callable[[mmap.mmap], bool]) -> tuple[mmap.mmap, bool]:
    """Map `path`, creating it with `init` when absent or when `valid` rejects it.

    Returns (mapping, created). A rejected segment (another layout) is replaced by a new one;
    readers notice through the inode change (`Attached.replaced`).
    """
    for _ in range(5):
        try:
            mm = open_existing(path)
        except FileNotFoundError:
            mm = None
        if mm is not None:
            if len(mm) == size and valid(mm):
                return mm, False
            mm.close()
            _unlink_quiet(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        init(mm)
        try:
            os.link(tmp, path)
        except FileExistsError:
            mm.close()      # somebody else published first: use theirs
            continue
        finally:
            _unlink_quiet(tmp)
        return mm, True
    raise RuntimeError(f"could not create or open segment {path}")


def open_existing(path: Path) -> mmap.mmap:
    """Map an existing segment read-write; FileNotFoundError if absent."""
    return open_with_inode(path)[0]


def open_with_inode(path: Path) -> tuple[mmap.mmap, int]:
    """`open_existing`, plus the inode of the file actually mapped.

    The inode comes from the same descriptor as the mapping: a separate `inode(path)` after the
    open could see a segment that replaced this one in between, and a reader would then never
    notice the replacement.
    """
    fd = os.open(path, os.O_RDWR)
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
