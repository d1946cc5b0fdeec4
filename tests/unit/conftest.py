"""Fixtures of the unit tests."""
from __future__ import annotations

import pytest

from config.settings import SETTING_NAMES
from ipc.shm import unlink_prefix
from tests.support.ports import free_port


@pytest.fixture
def env(tmp_path):
    """(control URL on a free port, a unique shm prefix) for an API under test; unlinked after."""
    url = f"tcp://127.0.0.1:{free_port()}"
    prefix = "api" + tmp_path.name[-6:].replace("_", "")
    yield url, prefix
    unlink_prefix("/dev/shm", prefix)


@pytest.fixture
def clean_settings_env(monkeypatch, tmp_path):
    """No setting in the environment and no `.env` in the working directory: a settings test sees
    only what it sets."""
    import os
    for k in list(os.environ):
        if k.lower() in SETTING_NAMES:
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
