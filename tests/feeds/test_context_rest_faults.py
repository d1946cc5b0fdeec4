"""The context actor against the sim's REST faults: 429 honours Retry-After, 418 backs off for the
ban, and the bootstrap completes afterwards. Real processes, real sockets."""
from __future__ import annotations

import subprocess
import sys

import pytest

from actors.sim.faults import inject, stats
from tests.support.system import ROOT
from tests.support.wait import wait_for

from tests.support.stack import Stack


@pytest.mark.parametrize("kind,status", [("rest429", "429"), ("rest418", "418")])
def test_context_bootstrap_survives_rest_fault(tmp_path, kind, status):
    st = Stack(tmp_path).start(actors=("sim",))
    try:
        wait_for(lambda: stats(st.futures_url), 20, "the sim")
        inject(st.futures_url, kind, count=1, retry_after=2)
        st.env.update(CONTEXT_TFS="1m", CONTEXT_BOOTSTRAP_LIMIT="100")
        st.procs["context"] = subprocess.Popen([sys.executable, "run.py", "context"], cwd=ROOT, env=st.env,
                                               stdout=open(tmp_path / "context.log", "ab"),
                                               stderr=subprocess.STDOUT)
        hb = wait_for(lambda: (lambda h: h if h.get("counters", {}).get("bootstrapped") == 1 else None)(
            st.hb("context")), 30, "the bootstrap after the fault\n" + st.logs())
        rest = hb["rest"]
        assert rest["errors"].get(status) == 1, rest
        # the pause is timed from just after the response arrived: allow scheduling noise; the exact
        # proof that nothing was sent during the back-off is the sim's answer count below
        assert rest["paused_ms"] >= 1900, "Retry-After (2 s) was not honoured"
        if status == "418":
            assert rest["bans"] == 1
        answers = stats(st.futures_url)["rest"]["answers"]
        assert answers.get(status) == 1 and answers.get("418", 0) == (1 if status == "418" else 0), answers
    finally:
        st.stop()
