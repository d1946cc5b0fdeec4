import pytest

from .harness import System


@pytest.fixture
def system(tmp_path):
    sys_ = System(tmp_path)
    yield sys_
    try:
        sys_.stop()
        leftover = sys_.shm_segments()
        assert leftover == [], f"shared-memory segments left behind: {leftover}"
    finally:
        if sys_.proc is not None and sys_.proc.poll() is None:
            import os
            import signal
            os.killpg(sys_.proc.pid, signal.SIGKILL)
