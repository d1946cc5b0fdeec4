"""Fixtures for the shared-memory tests: unique segment names that are always unlinked, and
processes that are always reaped. (The deadline-bounded wait is tests/support/wait.wait_for.)"""
from __future__ import annotations

import multiprocessing
import os
import uuid
from pathlib import Path

import pytest

SHM_DIR = "/dev/shm"


class Segments:
    """Unique segment names under one prefix; everything under the prefix is unlinked afterwards."""

    def __init__(self):
        self.dir = SHM_DIR
        self.prefix = f"tdctest-{uuid.uuid4().hex[:8]}"
        self._n = 0

    def name(self, what: str = "ring") -> str:
        self._n += 1
        return f"{self.prefix}.{what}{self._n}.{uuid.uuid4().hex[:8]}"

    def path(self, name: str) -> Path:
        return Path(self.dir) / name

    def leftovers(self) -> list[Path]:
        d = Path(self.dir)
        # published segments and the temporaries of shm.create_or_open (".<name>.<pid>.tmp")
        return sorted(list(d.glob(f"{self.prefix}.*")) + list(d.glob(f".{self.prefix}.*")))

    def cleanup(self) -> None:
        for p in self.leftovers():
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


@pytest.fixture
def segs():
    if not os.path.isdir(SHM_DIR):
        pytest.skip(f"{SHM_DIR} is not available")
    s = Segments()
    try:
        yield s
    finally:
        s.cleanup()


class Procs:
    """Start processes with the spawn context; every one still alive at teardown is killed."""

    def __init__(self):
        self.ctx = multiprocessing.get_context("spawn")
        self.started: list = []

    def start(self, target, *args):
        p = self.ctx.Process(target=target, args=args, daemon=True)
        p.start()
        self.started.append(p)
        return p

    def queue(self):
        return self.ctx.Queue()

    def cleanup(self) -> None:
        for p in self.started:
            if p.is_alive():
                p.kill()          # SIGKILL to this one pid, which we started
            p.join(timeout=10)


@pytest.fixture
def procs():
    ps = Procs()
    try:
        yield ps
    finally:
        ps.cleanup()
