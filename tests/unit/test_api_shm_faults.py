"""What the API makes of shared memory it cannot trust, over real segments: a state block or a
heartbeat slot that does not decode (torn or junk) is "no data" (503, or the actor left out),
counted, never a 500 and never a 200 with the junk; a heartbeat whose start history says crash
loop makes /health 503 with the actor named, and /state passes the history through."""
from __future__ import annotations

import orjson
import pytest

from actors import api
from config.settings import load_settings
from ipc import names
from ipc.state import Heartbeat, Registry, StateBlock
from falcon import testing

TORN = b'{"symbol": "BTCUSDT", "ts_ns": 17000, "venues": {"futures": {"book": {"mid": 650'


def _client(env, **kw):
    url, prefix = env
    s = load_settings(shm_prefix=prefix, zmq_control_url=url, health_alive_sec=3600, **kw)
    return s, testing.TestClient(api.create_app(api.ShmView(s), s))


def _no_data(r, title: str = "no data yet") -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    assert r.json["title"] == title


@pytest.mark.parametrize("block,path,query", [
    (names.FEATURES_BLOCK, "/latest/features", None),
    (names.BARS_BLOCK, "/latest/bars", None),
    (names.FEATURES_BLOCK, "/latest/book", "venue=futures"),
    (names.EDGE_BLOCK, "/latest/edge", None),
    (names.EDGE_BLOCK, "/latest/edge", "series=15m"),
    (names.POLYMARKET_BLOCK, "/latest/polymarket", None),
    (names.POLYMARKET_BLOCK, "/latest/polymarket", "series=15m"),
])
def test_an_undecodable_block_is_no_data_and_counted(env, block, path, query):
    s, c = _client(env, polymarket_windows="15m")
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, block, writer=True).write_bytes(TORN)
    n0 = api.undecodable_count(block)
    # each route's own 503: a torn features block leaves /latest/book without its quote
    _no_data(c.simulate_get(path, query_string=query), "no book yet" if path == "/latest/book" else "no data yet")
    assert api.undecodable_count(block) - n0 == 1


def test_state_with_an_undecodable_quality_block(env):
    s, c = _client(env)
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.QUALITY_BLOCK, writer=True).write_bytes(b"\xff\x00junk")
    r = c.simulate_get("/state")
    assert r.status_code == 200 and r.json["quality"] is None


@pytest.mark.parametrize("slot", [b'{"pid": 1, "alive_', b'[1, 2]', b'{"pid": "1", "alive_ns": 1, "start_ns": 1}',
                                  b'{"pid": true, "alive_ns": 1, "start_ns": 1}'])
def test_an_undecodable_heartbeat_leaves_the_actor_out(env, slot):
    s, c = _client(env, health_required="compute")
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    Heartbeat(reg, "feed_futures").beat({"published": 1})
    reg.slot("compute").write(slot)
    n0 = api.undecodable_count("registry.compute")
    r = c.simulate_get("/health")
    assert r.status_code == 503 and r.json["problems"] == ["compute: never seen"]
    assert set(r.json["actors"]) == {"feed_futures"}
    assert api.undecodable_count("registry.compute") - n0 == 1
    assert c.simulate_get("/state").status_code == 200


STARTS = {"total": 4, "recent": 3, "window_sec": 300, "crash_loop": True, "backoff_sec": 8.0}


def test_a_crash_loop_is_a_health_problem(env):
    s, c = _client(env, health_required="compute")
    hb = Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "compute")
    hb.beat({"ticks": 1}, starts=STARTS)
    r = c.simulate_get("/health")
    assert r.status_code == 503
    assert r.json["problems"] == ["compute: crash loop (3 starts in 300 s)"]
    assert r.json["actors"]["compute"]["starts"] == STARTS
    assert c.simulate_get("/state").json["actors"]["compute"]["starts"] == STARTS
    # out of the loop: healthy again, the history still shown
    hb.beat({"ticks": 2}, starts={**STARTS, "recent": 1, "crash_loop": False, "backoff_sec": 0.0})
    r = c.simulate_get("/health")
    assert r.status_code == 200 and r.json["problems"] == []
    assert r.json["actors"]["compute"]["starts"]["total"] == 4


def test_junk_start_history_is_not_a_crash_loop(env):
    s, c = _client(env, health_required="compute")
    hb = Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "compute")
    for junk in ("yes", [1], {"crash_loop": "true"}, {"crash_loop": 1}):
        hb.beat({"ticks": 1}, starts=junk)
        r = c.simulate_get("/health")
        assert (r.status_code, r.json["problems"]) == (200, []), junk


def test_the_front_body_limit_is_the_apps():
    from actors.obs import uvicorn_front
    assert uvicorn_front.MAX_BODY_BYTES == api.MAX_BODY_BYTES == 4096
    assert orjson.loads(uvicorn_front.json_response(413, "Content Too Large", "at most 4096 bytes",
                                                    "body too large").split(b"\r\n\r\n")[1]) == \
        {"title": "body too large", "description": "at most 4096 bytes"}
