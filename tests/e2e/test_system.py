"""End to end: the whole system under real supervisord against the sim.

A ZeroMQ subscriber takes trades and features; the test recomputes a closed bar and the CVD from
the ticks it received and compares them with /latest/bars and /latest/features. Then the futures
feed is killed with SIGKILL: supervisord restarts it, the ring counter continues, /health reports
the outage and recovers, and compute keeps ticking through it.
"""
from __future__ import annotations

import os
import signal
import time

import httpx
import orjson
import pytest

from ipc.bus import Subscriber
from ipc.ring import RingReader
from ipc import names
from ipc.schema import FLAG_GAP, TRADE

from .harness import wait_for
from .metrics_checks import check_metrics_and_openapi, plant_stale_latency

SYMBOL = "BTCUSDT"
T_TRADE = f"tick.futures.trade.{SYMBOL}"
T_FEATURES = f"features.{SYMBOL}"


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


def test_system_end_to_end(system):
    prefix = plant_stale_latency()       # a killed previous run's API worker file, to be cleaned
    system.start(SHM_PREFIX=prefix, SIM_TRADE_RATE="60", HEALTH_DATA_STALE_SEC="3", API_TOKEN="e2e-token",
                 VOL_WARMUP_SAMPLES="3")
    wait_for(lambda: system.health()[0] == 200, 60, "/health 200 after start\n" + system.logs())
    # every actor heartbeats, the API's gunicorn master included (it reports its workers)
    h0 = wait_for(lambda: (lambda b: b if b["actors"].get("api", {}).get("counters", {}).get("workers")
                           == 2 else None)(system.health()[1]), 20, "the api heartbeat with 2 workers")
    assert {"bus", "feed_futures", "compute", "api", "sim"} <= set(h0["actors"]), h0["actors"].keys()
    assert all(a["alive"] for a in h0["actors"].values()), h0["actors"]

    sub = Subscriber(system.pub_url, (T_TRADE, T_FEATURES))
    trades: list[dict] = []
    features: list[dict] = []

    def pump(until, timeout, what):
        """Take every queued message, then check `until` (at most every 200 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check_at = time.monotonic() + 0.2
            while time.monotonic() < check_at:
                ev = sub.recv(50)
                if ev is not None:
                    assert ev.lost == 0 and not ev.restarted, f"unexpected loss on {ev.topic}: {ev}"
                    (trades if ev.topic == T_TRADE else features).append(ev.msg)
            if until():
                return
        raise AssertionError(f"timed out waiting for {what}")

    # --- a closed 5s bar lying wholly inside what we received --------------------------------
    def bar_inside():
        if len(trades) < 5:
            return None
        r = system.get("/latest/bars")
        if r.status_code != 200:
            return None
        first_id = trades[0]["trade_id"]
        for bar in r.json()["venues"]["futures"]["5s"]["closed"]:
            if bar["trades"] and bar["first_trade_id"] > first_id and bar["last_trade_id"] <= trades[-1]["trade_id"]:
                return bar
        return None

    pump(bar_inside, 40, "a closed 5s bar covered by received ticks")
    bar = bar_inside()
    ref = recompute_bar(trades, bar["start_ns"], bar["end_ns"])
    for k in ("open", "close", "high", "low", "trades", "first_trade_id", "last_trade_id"):
        assert bar[k] == ref[k], k
    for k in ("volume", "buy_volume", "sell_volume", "delta", "vwap"):
        assert bar[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k

    # --- seq strictly +1 per topic (Subscriber asserted no loss above) ------------------------
    for msgs in (trades, features):
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

    # --- CVD between two features messages equals the signed volume received in between ------
    def cvd_of(f):
        return f["venues"]["futures"]["cvd"]

    def pair():
        covered = [f for f in features if (cvd_of(f)["last_trade_id"] or 0) >= trades[0]["trade_id"]]
        if len(covered) >= 2 and cvd_of(covered[-1])["last_trade_id"] > cvd_of(covered[0])["last_trade_id"]:
            return cvd_of(covered[0]), cvd_of(covered[-1])
        return None

    pump(pair, 20, "two features messages with new trades, both covered by received ticks")
    f1, f2 = pair()
    pump(lambda: trades[-1]["trade_id"] >= f2["last_trade_id"], 10, "the ticks up to f2")
    signed = sum(t["qty"] * t["side"] for t in trades
                 if f1["last_trade_id"] < t["trade_id"] <= f2["last_trade_id"])
    assert f2["cvd"] - f1["cvd"] == pytest.approx(signed, abs=1e-9 * max(1.0, abs(f2["cvd"])))
    # --- the rest of the system: spot in the features, every actor in /metrics ----------------
    latest = system.get("/latest/features").json()
    assert latest["venues"]["spot"]["book"]["mid"] > 0
    spread_bps = abs(latest["venues"]["futures"]["book"]["mid"] / latest["venues"]["spot"]["book"]["mid"] - 1) * 1e4
    assert spread_bps < 50, "sim basis should be a few bps"
    metrics = system.get("/metrics").text
    for actor in ("bus", "feed_futures", "feed_spot", "context", "compute", "api", "sim"):
        assert f'tdc_actor_up{{actor="{actor}"}} 1.0' in metrics, actor
    assert 'tdc_feed_stream_records_total{actor="feed_spot",stream="trade"}' in metrics
    poly = wait_for(lambda: (lambda d: d if d.get("window") and d["books"]["UP"].get("valid") else None)(
        system.get("/latest/polymarket").json()), 20, "the Polymarket window and books")
    assert poly["window"]["slug"].startswith("btc-updown-15m-")
    assert 0 < poly["books"]["UP"]["best_bid"] < poly["books"]["UP"]["best_ask"] < 1
    edge = wait_for(lambda: (lambda d: d if d["fair"]["fast"] is not None else None)(
        system.get("/latest/edge").json()), 30, "a fair probability for the current window")
    assert 0 < edge["fair"]["fast"] < 1 and 0 < edge["fair"]["smooth"] < 1 and edge["fair"]["pairs"] > 0
    assert abs(edge["fair"]["basis_bps"]) < 50
    assert edge["window"] == poly["window"]["slug"]
    assert edge["edge"]["decision"] in ("BUY_UP", "BUY_DOWN", "NONE")
    assert set(edge["edge"]["sides"]) == {"UP", "DOWN"} and edge["accumulate"]["action"] in ("SLICE", "HOLD")
    logs = list((system.tmp / "decisions").glob("decisions-*.jsonl"))
    assert len(logs) == 1, logs
    first = orjson.loads(logs[0].read_bytes().splitlines()[0])
    assert {"fair", "edge", "accumulate", "ts_ns"} <= set(first)
    for actor in ("feed_poly", "feed_chainlink"):
        assert f'tdc_actor_up{{actor="{actor}"}} 1.0' in metrics, actor
    ctx = system.health()[1]["actors"]["context"]["counters"]
    # (context may start before the sim listens: refused connections are retried, not fatal)
    assert ctx["bootstrapped"] == len(system.settings().context_tfs) and ctx["banned"] == 0
    assert ctx["klines_appended"] >= len(system.settings().context_tfs) * 100
    assert latest["venues"]["futures"]["cvd"]["cvd"] is not None
    assert latest["tick"] >= features[-1]["tick"]

    # --- /metrics histograms, API latency of our own requests, live documents vs /openapi.json --
    check_metrics_and_openapi(system)

    # --- anchor reset through the API, compute and back ---------------------------------------
    r = httpx.post(system.http + "/control/anchor/reset", headers={"Authorization": "Bearer e2e-token"},
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

    # --- kill -9 the feed ------------------------------------------------------------------
    s = system.settings()
    ring = RingReader(s.shm_dir, names.FUTURES_RINGS["trade"].name(s.shm_prefix, SYMBOL), TRADE)
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
    assert ring.published > count_before
    after = ring.read()
    assert after["flags"][0] & FLAG_GAP or (after["flags"] & FLAG_GAP).any(), "no gap marker after restart"
    assert up["actors"]["compute"]["counters"]["ticks"] > ticks_before
    assert up["actors"]["compute"]["pid"] == h["actors"]["compute"]["pid"], "compute must not restart"
    sub.close()
