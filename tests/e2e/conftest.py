"""The e2e tests' `system`: a System (tests/support/system.py) the test starts, always stopped
with the clean-stop checks (exit 0, no process and no shared-memory segment left behind)."""
import pytest

from tests.support.system import System


@pytest.fixture
def system(tmp_path):
    sys_ = System(tmp_path)
    yield sys_
    sys_.stop_checked()
