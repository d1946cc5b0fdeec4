"""Shared fixtures of the context tests: a unique shared-memory prefix, always cleaned up."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from ipc.shm import unlink_prefix

SHM_DIR = "/dev/shm"


@pytest.fixture
def prefix():
    if not os.path.isdir(SHM_DIR):
        pytest.skip(f"{SHM_DIR} is not available")
    p = f"tdctest-{uuid.uuid4().hex[:8]}"
    try:
        yield p
    finally:
        unlink_prefix(SHM_DIR, p)
        for tmp in Path(SHM_DIR).glob(f".{p}.*"):
            tmp.unlink(missing_ok=True)
        assert not list(Path(SHM_DIR).glob(f"{p}.*"))
