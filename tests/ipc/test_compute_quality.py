"""compute's quality mode and control commands, on real rings and a real control socket (the
Binance venues alone: the Polymarket side is off here; with it on, tests/ipc/test_compute_edge.py)."""
from __future__ import annotations

import time

import pytest

from actors.compute import Compute, ComputePlan
from config.settings import load_settings
from ipc.bus import Publisher
from ipc.ring import RingWriter
from ipc import names
from ipc.schema import QUOTE, TRADE
from ipc.shm import unlink_prefix
from tests.support.ports import free_port


@pytest.fixture
def compute(segs, tmp_path):
    s = load_settings(decision_log_dir=str(tmp_path / "decisions"), shm_prefix=segs.prefix.replace("tdctest-", "q"),
                      zmq_control_url=f"tcp://127.0.0.1:{free_port()}", zmq_xsub_url="tcp://127.0.0.1:1",
                      health_data_stale_sec=2.0, quality_max_skew_ms=1000, polymarket_enabled=False)
    rings = {k: RingWriter(s.ipc.shm_dir, names.FUTURES_RINGS[k].name(s.ipc.shm_prefix, s.general.symbol), dt, 1024)
             for k, dt in (("trade", TRADE), ("quote", QUOTE))}
    c = Compute(s, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    yield c, rings
    c.control.close(0)
    unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)


def write(rings, now, skew_ns, n=5, gap=False):
    for i in range(n):
        t = now - (n - i) * 10_000_000
        rings["trade"].append((t - skew_ns, t, 0, i + 1, i + 1, i + 1, 65000.0 + i, 0.01, 1))
        rings["quote"].append((t - skew_ns, t, 0, i + 1, 64999.9, 1.0, 65000.1, 1.0))
    if gap:
        rings["trade"].append_gap(now)


def test_ok_then_clock_skew_then_gap_then_stale(compute):
    c, rings = compute
    now = time.time_ns()
    c.tick(now)
    assert c._quality["mode"] == "BAD" and "futures.trade: no data" in c._quality["reasons"]
    write(rings, now, skew_ns=20_000_000)
    c.tick(now)
    assert c._quality == {"mode": "OK", "reasons": [], "tick_overruns": 0}
    # the 2024 capture's recorder clock was 1.27 s behind Binance: receive − exchange = −1270 ms
    write(rings, now + 100_000_000, skew_ns=-1_270_000_000)
    c.tick(now + 100_000_000)
    assert c._quality["mode"] == "DEGRADED"
    assert c._quality["reasons"] == ["futures: clock skew -1270 ms (receive − exchange time)"]
    write(rings, now + 200_000_000, skew_ns=0, gap=True)
    c.tick(now + 200_000_000)
    assert c._quality["reasons"] == ["futures: gap 0s ago"]
    c.tick(now + 3_000_000_000)
    assert c._quality["mode"] == "BAD"
    assert c._quality["reasons"][:2] == ["futures.trade: stale 2.8s", "futures.quote: stale 2.8s"]


def test_unknown_control_commands_are_answered_not_raised(compute):
    """(the request's shape, token and argument types are checked before: tests/ipc/test_control.py)"""
    c, _ = compute
    assert c.handle_control({"cmd": "launch"}) == {"ok": False, "error": "unknown cmd 'launch'"}


def test_anchor_reset_survives_a_compute_restart(compute):
    c, rings = compute
    assert c.handle_control({"cmd": "anchor_reset", "anchor_ns": 123}) == {"ok": True, "anchor_ns": 123}
    c.control.close(0)
    # a new control port: zmq releases the old one asynchronously, and the anchor is what matters
    s2 = c.s.replace(zmq_control_url=f"tcp://127.0.0.1:{free_port()}")
    c2 = Compute(s2, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0))
    try:
        assert c2.venues["futures"].cvd.anchor_ns == 123 and c2.venues["futures"].cvd.explicit
        assert c2.venues["spot"].vwap.anchor_ns == 123
    finally:
        c2.control.close(0)


def test_state_topic_carries_actor_health(compute):
    """DESIGN: `state` is quality and actor health; each heartbeat in the registry is summarised."""
    from ipc.state import Heartbeat
    c, rings = compute
    sent = []
    c.pub.publish = lambda topic, doc: sent.append((topic, doc))
    Heartbeat(c.registry, "feed_futures").beat({"frames": 1})
    gone = Heartbeat(c.registry, "feed_spot")
    gone.beat({}, stopped=True)
    c.hb.beat({})
    c.tick(time.time_ns())
    (doc,) = [d for t, d in sent if t == "state"]
    assert doc["mode"] == "BAD"
    assert doc["actors"]["feed_futures"]["alive"] is True
    assert doc["actors"]["feed_spot"]["alive"] is False
    assert doc["actors"]["compute"]["pid"] == c.hb.pid


def test_the_plan_decides_which_venue_is_primary(segs, tmp_path):
    """Roles are data: with spot as the primary venue, futures data alone is BAD for lack of spot."""
    s = load_settings(decision_log_dir=str(tmp_path / "decisions"), shm_prefix=segs.prefix.replace("tdctest-", "p"),
                      zmq_control_url=f"tcp://127.0.0.1:{free_port()}", zmq_xsub_url="tcp://127.0.0.1:1",
                      health_data_stale_sec=2.0, quality_max_skew_ms=1000, polymarket_enabled=False)
    rings = {k: RingWriter(s.ipc.shm_dir, names.FUTURES_RINGS[k].name(s.ipc.shm_prefix, s.general.symbol), dt, 1024)
             for k, dt in (("trade", TRADE), ("quote", QUOTE))}
    plan = ComputePlan(trade_venues=(names.SPOT, names.FUTURES), primary=names.SPOT,
                       basis_legs=(names.FUTURES, names.SPOT), mark_source=names.FUTURES)
    c = Compute(s, pub=Publisher("tcp://127.0.0.1:1", linger_ms=0), plan=plan)
    try:
        now = time.time_ns()
        write(rings, now, skew_ns=20_000_000)
        c.tick(now)
        assert c._quality["mode"] == "BAD"
        assert c._quality["reasons"] == ["spot.trade: no data", "spot.quote: no data"]
        assert c.primary is c.venues[names.SPOT]
    finally:
        c.control.close(0)
        unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)
    with pytest.raises(ValueError):
        ComputePlan(trade_venues=(names.FUTURES,), primary=names.SPOT, basis_legs=(names.FUTURES, names.SPOT),
                    mark_source=names.FUTURES)


def test_written_documents_match_the_schemas_built_from_their_types(compute):
    """The OpenAPI schemas come from the typed definitions; compute's real documents fit them."""
    import jsonschema_rs
    from actors.obs.openapi import build_openapi
    c, rings = compute
    sent = []
    c.pub.publish = lambda topic, doc: sent.append((topic, doc))
    now = time.time_ns()
    write(rings, now, skew_ns=20_000_000)
    c.tick(now)
    c.tick(now + 6_000_000_000)           # a 5 s bar closes
    comps = build_openapi(1024)["components"]
    for block, schema in (("features", "Features"), ("bars", "Bars"), ("quality", "Quality"), ("edge", "EdgeBlock")):
        doc = c.blocks[block].read()
        v = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": comps})
        assert not [e.message for e in v.iter_errors(doc)], block
    bars = [d for t, d in sent if isinstance(t, str) and t.startswith(names.BAR_PREFIX)]
    assert bars, "a bar was published"
    v = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/Bar", "components": comps})
    assert all(not list(v.iter_errors(b)) for b in bars)
