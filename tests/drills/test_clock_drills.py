"""Fault drills, part 3: the local clock is skewed (CLOCK_OFFSET_MS moves every actor's data
clock; the sim keeps wall time, as a venue would), and the venue ends every connection after
SIM_CONN_LIFETIME_SEC (its 24 h limit, shortened) while the feeds rotate ahead of it
(FEED_ROTATE_SEC). One system per clock offset, ahead and behind."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ipc import names
from ipc.schema import FLAG_GAP
from tests.support.rings import open_reader
from tests.support.wait import wait_for

from .tools import SYMBOL, actor, healthy, running_system, state

OFFSET_MS = 3000
ROTATE_SEC, LIFETIME_SEC = 6, 10
SKEW = re.compile(r"^(futures|spot): clock skew ([+-]\d+) ms \(receive − exchange time\)$")
OUTCOMES: dict[str, dict] = {}


@pytest.fixture(scope="module", params=[+OFFSET_MS, -OFFSET_MS], ids=["ahead", "behind"])
def skewed(request, tmp_path_factory):
    offset = request.param
    tmp = tmp_path_factory.mktemp(f"clock{offset:+d}")
    with running_system(tmp / "sys", CLOCK_OFFSET_MS=str(offset), FEED_ROTATE_SEC=str(ROTATE_SEC),
                        SIM_CONN_LIFETIME_SEC=str(LIFETIME_SEC)) as system:
        yield system, offset


def test_skew_is_reported_and_health_answers(skewed):
    system, offset = skewed
    healthy(system)            # ages are measured on one (skewed) data clock: data is fresh

    def skews():
        q = state(system)["quality"]
        found = {m[1]: int(m[2]) for m in (SKEW.match(r) for r in q["reasons"]) if m}
        return (q, found) if {"futures", "spot"} <= set(found) else None

    q, found = wait_for(skews, 20, "the clock skew reasons in quality")
    assert q["mode"] == "DEGRADED", q
    for venue, ms in found.items():
        assert abs(ms - offset) < 800, (venue, ms)      # the offset plus a few ms of real latency
    f = system.get("/latest/features").json()
    assert abs(f["venues"]["futures"]["clock_offset_ms"] - offset) < 800
    assert f["quality"]["mode"] == "DEGRADED"
    code, h = system.health()
    assert code == 200, h["problems"]
    OUTCOMES[f"skew{offset:+d}"] = {"mode": q["mode"], "reasons": q["reasons"], "health": code}


def test_rotation_ahead_of_the_venue_limit_loses_nothing(skewed):
    """The sim closes every connection LIFETIME_SEC after it opened; each feed opens a successor
    at ROTATE_SEC and switches over: no reconnect, no gap record, not one trade id missing."""
    system, offset = skewed
    healthy(system)
    s = system.settings()
    r = open_reader(names.FUTURES_RINGS["trade"], s.ipc.shm_prefix, SYMBOL, s.ipc.shm_dir)
    a0 = actor(system, "feed_futures")
    sp0 = actor(system, "feed_spot")
    conns = {("feed_futures", c): v for c, v in a0["connections"].items()}
    conns |= {("feed_spot", c): v for c, v in sp0["connections"].items()}
    missing0 = a0["streams"]["trade"]["ids_missing"]
    recs = []

    def rotated_twice():
        recs.append(r.read())
        st = state(system)["actors"]
        return st if all(st[a]["connections"][c]["rotations"] >= v["rotations"] + 2
                         for (a, c), v in conns.items()) else None

    st = wait_for(rotated_twice, 2 * ROTATE_SEC + 15, "two rotations of every Binance connection",
                  interval=0.2)
    recs.append(r.read())
    recs = np.concatenate(recs)
    for (a, c), v in conns.items():
        now = st[a]["connections"][c]
        assert now["reconnects"] == v["reconnects"], (a, c, "the venue closed a connection on us")
        assert now["connected"]
    assert not (recs["flags"] & FLAG_GAP).any(), "a gap record: something was lost"
    ids = recs["trade_id"]
    assert len(ids) > 100 and (np.diff(ids) == 1).all(), "trade ids not contiguous across rotations"
    assert st["feed_futures"]["streams"]["trade"]["ids_missing"] == missing0
    assert r.overrun == 0
    healthy(system, 10)
    OUTCOMES[f"rotation{offset:+d}"] = {
        "rotations": {f"{a}.{c}": st[a]["connections"][c]["rotations"] for a, c in conns},
        "trades": len(ids), "gap_records": 0}
    print("\nDRILL OUTCOMES", OUTCOMES)
