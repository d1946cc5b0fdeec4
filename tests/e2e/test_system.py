"""End to end: the whole system under real supervisord against the sim, one system for the module.

A bus tap takes trades and features from the start; the checks recompute a closed bar and the CVD
from the ticks received and compare them with /latest/bars and /latest/features, then look at the
rest of the system (spot, Polymarket, edge, context, metrics, OpenAPI, the control route). Last,
the futures feed is killed with SIGKILL: supervisord restarts it, the ring counter continues,
/health reports the outage and recovers, and compute keeps ticking through it. Each check is its
own test, in this order, so the first failure does not hide the others.
"""
from __future__ import annotations

import os
import signal

import httpx
import orjson
import pytest

from ipc import names
from ipc.schema import FLAG_GAP
from tests.support.bus import BusTap
from tests.support.rings import open_reader
from tests.support.system import running_system
from tests.support.wait import wait_for

from .metrics_checks import check_metrics_and_openapi, plant_stale_latency

SYMBOL = "BTCUSDT"
T_TRADE = names.tick_topic("futures", "trade", SYMBOL)
T_FEATURES = names.features_topic(SYMBOL)
TOKEN = "e2e-token-0123456789"     # API_TOKEN: at least 16 characters


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """The running, healthy system (stopped with the clean-stop checks after the last test)."""
    prefix = plant_stale_latency()       # a killed previous run's API worker file, to be cleaned
    with running_system(tmp_path_factory.mktemp("e2e"), SHM_PREFIX=prefix, SIM_TRADE_RATE="60",
                        HEALTH_DATA_STALE_SEC="3", API_TOKEN=TOKEN, VOL_WARMUP_SAMPLES="3") as sys_:
        wait_for(lambda: sys_.health()[0] == 200, 60, "/health 200 after start\n" + sys_.logs())
        yield sys_


@pytest.fixture(scope="module")
def tap(system):
    """Every trade and features message from just after the system is healthy."""
    t = BusTap(system.pub_url, (T_TRADE, T_FEATURES))
    yield t
    t.close()


def trades(tap: BusTap) -> list[dict]:
    return tap.messages(T_TRADE)


def features(tap: BusTap) -> list[dict]:
    return tap.messages(T_FEATURES)


def no_loss(tap: BusTap) -> None:
    bad = tap.anomalies()
    assert bad == [], f"unexpected loss or restart on the bus: {bad[:3]}"


def recompute_bar(trades: list[dict], start_ns: int, end_ns: int) -> dict:
    sel = [t for t in trades if start_ns <= t["ts_event_ns"] < end_ns]
    vol = sum(t["qty"] for t in sel)
    buy = sum(t["qty"] for t in sel if t["side"] > 0)
    sell = sum(t["qty"] for t in sel if t["side"] < 0)
    return {"open": sel[0]["price"], "close": sel[-1]["price"],
            "high": max(t["price"] for t in sel), "low": min(t["price"] for t in sel),
            "volume": vol, "buy_volume": buy, "sell_volume": sell, "delta": buy - sell,
            "trades": len(sel), "vwap": sum(t["price"] * t["qty"] for t in sel) / vol,
            "first_trade_id": sel[0]["trade_id"], "last_trade_id": sel[-1]["trade_id"]}


def test_every_actor_heartbeats(system):
    # the API's gunicorn master included (it reports its workers)
    h0 = wait_for(lambda: (lambda b: b if b["actors"].get("api", {}).get("counters", {}).get("workers")
                           == 2 else None)(system.health()[1]), 20, "the api heartbeat with 2 workers")
    assert {"bus", "feed_futures", "compute", "api", "sim"} <= set(h0["actors"]), h0["actors"].keys()
    assert all(a["alive"] for a in h0["actors"].values()), h0["actors"]


def test_a_closed_bar_equals_the_bar_recomputed_from_the_ticks(system, tap):
    def bar_inside():
        """A closed 5s bar lying wholly inside what the tap received."""
        ts = trades(tap)
        if len(ts) < 5:
            return None
        r = system.get("/latest/bars")
        if r.status_code != 200:
            return None
        for bar in r.json()["venues"]["futures"]["5s"]["closed"]:
            if bar["trades"] and bar["first_trade_id"] > ts[0]["trade_id"] \
                    and bar["last_trade_id"] <= ts[-1]["trade_id"]:
                return bar, ts
        return None

    bar, ts = wait_for(bar_inside, 40, "a closed 5s bar covered by received ticks", interval=0.2)
    no_loss(tap)
    ref = recompute_bar(ts, bar["start_ns"], bar["end_ns"])
    for k in ("open", "close", "high", "low", "trades", "first_trade_id", "last_trade_id"):
        assert bar[k] == ref[k], k
    for k in ("volume", "buy_volume", "sell_volume", "delta", "vwap"):
        assert bar[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k


def test_bus_seq_is_contiguous_per_topic(tap):
    wait_for(lambda: len(trades(tap)) >= 5 and len(features(tap)) >= 2, 20, "trades and features on the bus")
    no_loss(tap)
    for msgs in (trades(tap), features(tap)):
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_cvd_between_two_features_equals_the_signed_volume_received(tap):
    def cvd_of(f):
        return f["venues"]["futures"]["cvd"]

    def pair():
        first_id = trades(tap)[0]["trade_id"]
        covered = [f for f in features(tap) if (cvd_of(f)["last_trade_id"] or 0) >= first_id]
        if len(covered) >= 2 and cvd_of(covered[-1])["last_trade_id"] > cvd_of(covered[0])["last_trade_id"]:
            return cvd_of(covered[0]), cvd_of(covered[-1])
        return None

    f1, f2 = wait_for(pair, 20, "two features messages with new trades, both covered by received ticks")
    ts = wait_for(lambda: (lambda ts: ts if ts[-1]["trade_id"] >= f2["last_trade_id"] else None)(trades(tap)),
                  10, "the ticks up to f2")
    no_loss(tap)
    signed = sum(t["qty"] * t["side"] for t in ts if f1["last_trade_id"] < t["trade_id"] <= f2["last_trade_id"])
    assert f2["cvd"] - f1["cvd"] == pytest.approx(signed, abs=1e-9 * max(1.0, abs(f2["cvd"])))


def test_latest_features_carry_spot_and_follow_the_bus(system, tap):
    last_seen = wait_for(lambda: features(tap), 10, "a features message")[-1]
    latest = system.get("/latest/features").json()
    assert latest["venues"]["spot"]["book"]["mid"] > 0
    spread_bps = abs(latest["venues"]["futures"]["book"]["mid"] / latest["venues"]["spot"]["book"]["mid"] - 1) * 1e4
    assert spread_bps < 50, "sim basis should be a few bps"
    assert latest["venues"]["futures"]["cvd"]["cvd"] is not None
    assert latest["tick"] >= last_seen["tick"]


def test_every_actor_is_up_in_metrics(system):
    metrics = system.get("/metrics").text
    for actor in ("bus", "feed_futures", "feed_spot", "context", "compute", "api", "sim",
                  "feed_poly", "feed_chainlink"):
        assert f'tdc_actor_up{{actor="{actor}"}} 1.0' in metrics, actor
    assert 'tdc_feed_stream_records_total{actor="feed_spot",stream="trade"}' in metrics


def test_polymarket_window_edge_and_decision_log(system):
    poly = wait_for(lambda: (lambda d: d if d.get("window") and d["books"]["UP"].get("valid") else None)(
        system.get("/latest/polymarket", params={"series": "15m"}).json()), 20, "the Polymarket window and books")
    assert poly["window"]["slug"].startswith("btc-updown-15m-")
    assert 0 < poly["books"]["UP"]["best_bid"] < poly["books"]["UP"]["best_ask"] < 1
    edge = wait_for(lambda: (lambda d: d if d["fair"]["fast"] is not None else None)(
        system.get("/latest/edge", params={"series": "15m"}).json()), 30, "a fair probability for the current window")
    assert 0 < edge["fair"]["fast"] < 1 and 0 < edge["fair"]["smooth"] < 1 and edge["fair"]["pairs"] > 0
    assert abs(edge["fair"]["basis_bps"]) < 50
    assert edge["window"] == poly["window"]["slug"]
    assert edge["edge"]["decision"] in ("BUY_UP", "BUY_DOWN", "NONE")
    assert set(edge["edge"]["sides"]) == {"UP", "DOWN"} and edge["accumulate"]["action"] in ("SLICE", "HOLD")
    logs = list((system.tmp / "decisions").glob("decisions-*.jsonl"))
    assert len(logs) == 1, logs
    first = orjson.loads(logs[0].read_bytes().splitlines()[0])
    assert {"fair", "edge", "accumulate", "ts_ns"} <= set(first)


def test_context_bootstrapped_every_timeframe(system):
    ctx = system.health()[1]["actors"]["context"]["counters"]
    # (context may start before the sim listens: refused connections are retried, not fatal)
    tfs = system.settings().context.context_tfs
    assert ctx["bootstrapped"] == len(tfs) and ctx["banned"] == 0
    assert ctx["klines_appended"] >= len(tfs) * 100


def test_metrics_histograms_and_openapi(system):
    """/metrics histograms, API latency of our own requests, live documents vs /openapi.json."""
    check_metrics_and_openapi(system)


def test_anchor_reset_through_the_api_and_compute(system):
    r = httpx.post(system.http + "/control/anchor/reset", headers={"Authorization": f"Bearer {TOKEN}"},
                   timeout=5)
    assert r.status_code == 200, r.text
    anchor = r.json()["anchor_ns"]
    after_reset = wait_for(lambda: (lambda f: f if f["anchor"]["anchor_ns"] == anchor else None)(
        system.get("/latest/features").json()), 5, "features anchored at the reset")
    assert after_reset["anchor"]["explicit"] is True
    fut = after_reset["venues"]["futures"]
    assert fut["cvd"]["anchor_ns"] == anchor and fut["vwap"]["anchor_ns"] == anchor
    assert fut["cvd"]["from_ns"] is None or fut["cvd"]["from_ns"] >= anchor
    assert httpx.post(system.http + "/control/anchor/reset", timeout=5).status_code == 401


def test_a_killed_feed_is_restarted_and_health_recovers(system):
    """Last: it takes the futures feed down."""
    s = system.settings()
    ring = open_reader(names.FUTURES_RINGS["trade"], s.ipc.shm_prefix, SYMBOL, s.ipc.shm_dir)
    code, h = system.health()
    old_pid = h["actors"]["feed_futures"]["pid"]
    ticks_before = h["actors"]["compute"]["counters"]["ticks"]
    count_before = ring.published
    os.kill(old_pid, signal.SIGKILL)
    down = wait_for(lambda: (lambda c, b: b if c == 503 else None)(*system.health()), 10,
                    "/health reporting the feed outage")
    assert any(p.startswith("feed_futures") for p in down["problems"]), down["problems"]

    def recovered():
        c, b = system.health()
        return b if c == 200 and b["actors"]["feed_futures"]["pid"] != old_pid else None

    up = wait_for(recovered, 60, "/health 200 with a restarted feed\n" + system.logs())
    # the new process heartbeats from its start (its start counted): the data comes a moment later
    wait_for(lambda: ring.published > count_before, 20, "the restarted feed writing the same ring")
    after = ring.read()
    assert after["flags"][0] & FLAG_GAP or (after["flags"] & FLAG_GAP).any(), "no gap marker after restart"
    assert up["actors"]["compute"]["counters"]["ticks"] > ticks_before
    assert up["actors"]["compute"]["pid"] == h["actors"]["compute"]["pid"], "compute must not restart"
