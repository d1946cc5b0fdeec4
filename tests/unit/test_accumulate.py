"""Accumulate engine (actors/decide/accumulate.py): caps, cooldown at the exact boundary,
rollover reset, and caps/cooldown held across a restart (dict store and a real StateBlock)."""
from __future__ import annotations

import os
import uuid

import pytest

from actors.decide.accumulate import SCHEMA, Accumulator, DictStore
from ipc import names
from ipc import shm
from ipc.state import StateBlock

NS = 1_000_000_000
W0 = 1_763_000_100 * NS
W1 = W0 + 900 * NS
T = W0 + 10 * NS


def acc(store=None, **kw):
    p = dict(slice_usd=10.0, max_slices=5, max_usd=50.0, cooldown_sec=30.0)
    p.update(kw)
    return Accumulator(store=store if store is not None else DictStore(), **p)


def test_first_slice_and_state_persisted():
    st = DictStore()
    a = acc(st)
    r = a.consider(T, W0, "BUY_UP")
    assert r["action"] == "SLICE" and r["side"] == "UP" and r["slices"] == 1 and r["usd"] == 10.0
    assert r["next_allowed_ns"] == T + 30 * NS
    assert st.doc == {"schema": SCHEMA, "window_start_ns": W0, "slices": 1, "usd": 10.0,
                      "last_slice_ns": T, "by_side": {"UP": 1, "DOWN": 0}}


def test_none_decision_holds_and_accepts_evaluate_dict():
    a = acc()
    r = a.consider(T, W0, "NONE")
    assert r["action"] == "HOLD" and r["reason"] == "no_signal" and r["slices"] == 0
    assert r["next_allowed_ns"] == T
    r = a.consider(T, W0, {"decision": "BUY_DOWN"})
    assert r["action"] == "SLICE" and r["side"] == "DOWN"


def test_cooldown_exact_boundary():
    a = acc()
    assert a.consider(T, W0, "BUY_UP")["action"] == "SLICE"
    r = a.consider(T + 30 * NS - 1, W0, "BUY_UP")
    assert r["action"] == "HOLD" and r["reason"] == "cooldown"
    assert r["next_allowed_ns"] == T + 30 * NS and r["slices"] == 1
    r = a.consider(T + 30 * NS, W0, "BUY_DOWN")
    assert r["action"] == "SLICE" and r["slices"] == 2


def test_cooldown_fractional_seconds():
    a = acc(cooldown_sec=0.25)
    a.consider(T, W0, "BUY_UP")
    assert a.consider(T + 249_999_999, W0, "BUY_UP")["action"] == "HOLD"
    assert a.consider(T + 250_000_000, W0, "BUY_UP")["action"] == "SLICE"


def test_max_slices_cap():
    a = acc(max_slices=3, max_usd=1000.0, cooldown_sec=0)
    out = [a.consider(T + i, W0, "BUY_UP") for i in range(5)]
    assert [r["action"] for r in out] == ["SLICE"] * 3 + ["HOLD"] * 2
    assert out[3]["reason"] == "max_slices" and out[3]["next_allowed_ns"] is None
    assert out[2]["next_allowed_ns"] is None      # the cap is reached by this slice
    assert out[4]["slices"] == 3 and out[4]["usd"] == 30.0


def test_max_usd_cap():
    # 25 USD cap, 10 USD slices: two fit (20), the third would make 30 > 25
    a = acc(max_slices=100, max_usd=25.0, cooldown_sec=0)
    out = [a.consider(T + i, W0, "BUY_DOWN") for i in range(3)]
    assert [r["action"] for r in out] == ["SLICE", "SLICE", "HOLD"]
    assert out[2]["reason"] == "max_usd" and out[2]["usd"] == 20.0


def test_max_usd_exact_fill_with_float_slices():
    # 0.1 USD slices to a 0.3 cap: float sums (0.30000000000000004) must not refuse the third
    a = acc(slice_usd=0.1, max_slices=100, max_usd=0.3, cooldown_sec=0)
    out = [a.consider(T + i, W0, "BUY_UP")["action"] for i in range(4)]
    assert out == ["SLICE", "SLICE", "SLICE", "HOLD"]


def test_zero_caps_never_slice():
    assert acc(max_slices=0).consider(T, W0, "BUY_UP")["reason"] == "max_slices"
    assert acc(max_usd=5.0).consider(T, W0, "BUY_UP")["reason"] == "max_usd"


def test_rollover_resets_and_older_window_refused():
    st = DictStore()
    a = acc(st, max_slices=2, cooldown_sec=0)
    a.consider(T, W0, "BUY_UP")
    a.consider(T + 1, W0, "BUY_UP")
    assert a.consider(T + 2, W0, "BUY_UP")["reason"] == "max_slices"
    r = a.consider(W1 + 1, W1, "NONE")
    assert r["slices"] == 0 and r["usd"] == 0.0 and st.doc["window_start_ns"] == W1
    assert st.doc["last_slice_ns"] is None
    assert a.consider(W1 + 2, W1, "BUY_UP")["action"] == "SLICE"
    # a late call for the old window neither slices nor resets the new one
    r = a.consider(W1 + 3, W0, "BUY_UP")
    assert r["action"] == "HOLD" and r["reason"] == "stale_window"
    assert st.doc["window_start_ns"] == W1 and st.doc["slices"] == 1


def test_rollover_cancels_cooldown():
    a = acc()
    a.consider(W1 - NS, W0, "BUY_UP")
    assert a.consider(W1, W1, "BUY_UP")["action"] == "SLICE"


def test_restart_with_dict_store_keeps_caps_and_cooldown():
    st = DictStore()
    a = acc(st, max_slices=2)
    a.consider(T, W0, "BUY_UP")
    b = acc(st, max_slices=2)                       # the "restarted" process
    assert b.restored
    assert b.consider(T + 29 * NS, W0, "BUY_UP")["reason"] == "cooldown"
    assert b.consider(T + 30 * NS, W0, "BUY_UP")["action"] == "SLICE"
    c = acc(st, max_slices=2)
    assert c.consider(T + 90 * NS, W0, "BUY_UP")["reason"] == "max_slices"


@pytest.mark.parametrize("doc", [{"schema": "other"}, {"schema": SCHEMA}, [1, 2],
                                 {"schema": SCHEMA, "window_start_ns": "x", "slices": 1, "usd": 1.0,
                                  "last_slice_ns": None, "by_side": {}}])
def test_invalid_stored_state_starts_fresh_and_is_counted(doc):
    a = acc(DictStore(doc))
    assert not a.restored and a.invalid_state == 1
    assert a.consider(T, W0, "BUY_UP")["action"] == "SLICE"


@pytest.fixture
def shm_prefix():
    prefix = "tacc" + uuid.uuid4().hex[:12]
    yield prefix
    shm.unlink_prefix("/dev/shm", prefix)
    assert not [p for p in os.listdir("/dev/shm") if p.startswith(prefix)]


def _restart(prefix, **kw):
    """A new process: a fresh writer attachment to the same block and a new Accumulator."""
    blk = StateBlock("/dev/shm", prefix, names.ACCUMULATE_BLOCK, size=4096, writer=True)
    return acc(blk, **{"max_slices": 3, "max_usd": 25.0, **kw})


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_restart_with_real_stateblock(shm_prefix):
    a = _restart(shm_prefix)
    assert not a.restored
    assert a.consider(T, W0, "BUY_UP")["action"] == "SLICE"
    assert a.consider(T + 30 * NS, W0, "BUY_DOWN")["action"] == "SLICE"
    del a                                             # the compute process dies

    b = _restart(shm_prefix, max_usd=100.0)           # a restart (with a looser usd cap)
    assert b.restored
    assert b.state == {"schema": SCHEMA, "window_start_ns": W0, "slices": 2, "usd": 20.0,
                       "last_slice_ns": T + 30 * NS, "by_side": {"UP": 1, "DOWN": 1}}
    r = b.consider(T + 60 * NS - 1, W0, "BUY_UP")     # the cooldown survived the restart
    assert r["reason"] == "cooldown" and r["next_allowed_ns"] == T + 60 * NS
    del b

    c = _restart(shm_prefix)                          # usd survived: 20 + 10 > 25
    r = c.consider(T + 60 * NS, W0, "BUY_UP")
    assert r["action"] == "HOLD" and r["reason"] == "max_usd" and r["usd"] == 20.0
    del c

    d = _restart(shm_prefix, max_usd=100.0)
    assert d.consider(T + 60 * NS, W0, "BUY_UP")["action"] == "SLICE"
    del d
    e = _restart(shm_prefix, max_usd=100.0)           # the slice count survived: 3 of 3
    assert e.consider(T + 600 * NS, W0, "BUY_UP")["reason"] == "max_slices"

    reader = StateBlock("/dev/shm", shm_prefix, names.ACCUMULATE_BLOCK)
    assert reader.read()["slices"] == 3
    e.consider(W1, W1, "BUY_UP")                      # rollover resets, and is persisted
    assert reader.read()["window_start_ns"] == W1 and reader.read()["slices"] == 1
    f = _restart(shm_prefix)
    assert f.state["window_start_ns"] == W1 and f.state["slices"] == 1
