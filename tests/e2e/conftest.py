import pytest

from .harness import System


@pytest.fixture
def system(tmp_path):
    sys_ = System(tmp_path)
    yield sys_
    try:
        if sys_.proc is not None:
            sys_.stop()
            assert sys_.proc.returncode == 0, sys_.logs()
            assert sys_.session_pids() == [], f"processes left behind: {sys_.session_pids()}"
            leftover = sys_.shm_segments()
            assert leftover == [], f"shared-memory segments left behind: {leftover}"
    finally:
        if sys_.proc is not None and sys_.proc.poll() is None:
            import os
            import signal
            os.killpg(sys_.proc.pid, signal.SIGKILL)
