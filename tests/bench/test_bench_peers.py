"""The peer-client mode of the bench (actors/bench/peers.py) and the firehose's REST routes.

Without the peers installed: the routes answer what cryptofeed and nautilus_trader read at start
(checked against a real USD-M exchangeInfo capture and the sim's instrument grid), the row
builder, the counter, the loopback guard and the "not installed" path through bench_peers. With
TDC_PEERS_PYTHON set to an interpreter that has a peer (the venv of requirements-bench-peers.txt),
each peer runs for real against the firehose; otherwise those tests skip and say why.
Nothing here asserts a speed: benchmarks are measurements, not timed tests."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from actors.bench import peers
from actors.bench.firehose import futures_exchange_info, rest_answer
from actors.bench.peers import ROOT
from actors.sim.binance.codec import fmt_units
from actors.sim.market import FUTURES_BTCUSDT
from ipc.bus import free_tcp_port

CAPTURE = Path("/work/shared/fixtures/binance/futures_exchangeInfo_rest.json")
PEERS_PYTHON = os.environ.get("TDC_PEERS_PYTHON")


def _captured_btcusdt() -> tuple[dict, dict]:
    doc = json.loads(CAPTURE.read_text())
    return doc, next(s for s in doc["symbols"] if s["symbol"] == "BTCUSDT")


def test_exchange_info_has_the_live_field_set_and_the_sims_grid():
    doc, live = _captured_btcusdt()
    ours = futures_exchange_info(FUTURES_BTCUSDT, 1_700_000_000_123)
    assert set(ours) == set(doc)
    assert ours["serverTime"] == 1_700_000_000_123 and ours["timezone"] == "UTC"
    [sym] = ours["symbols"]
    assert set(sym) == set(live)
    assert [f["filterType"] for f in sym["filters"]] == [f["filterType"] for f in live["filters"]]
    for ours_f, live_f in zip(sym["filters"], live["filters"]):
        assert set(ours_f) == set(live_f)
    # the sim's grid is the venue's BTCUSDT one; cryptofeed reads filters[0]["tickSize"]
    assert sym["filters"][0]["tickSize"] == live["filters"][0]["tickSize"] == "0.10" == fmt_units(
        FUTURES_BTCUSDT.tick_units, FUTURES_BTCUSDT.price_precision)
    assert sym["filters"][1]["stepSize"] == live["filters"][1]["stepSize"] == "0.001"
    assert (sym["pricePrecision"], sym["quantityPrecision"]) == (live["pricePrecision"], live["quantityPrecision"]) == (2, 3)
    assert (sym["symbol"], sym["baseAsset"], sym["quoteAsset"], sym["contractType"], sym["status"]) == (
        "BTCUSDT", "BTC", "USDT", "PERPETUAL", "TRADING")


def test_rest_answers_route_by_path_and_ignore_the_query():
    assert rest_answer("/market/stream?streams=btcusdt@aggTrade", FUTURES_BTCUSDT, 1) is None   # a WS route
    assert rest_answer("/public", FUTURES_BTCUSDT, 1) is None
    assert rest_answer("/fapi/v2/account?recvWindow=5000&timestamp=1&signature=ab", FUTURES_BTCUSDT, 1) == (200, (
        b'{"feeTier":0,"canTrade":true,"canDeposit":true,"canWithdraw":true,"updateTime":0,"assets":[],'
        b'"positions":[]}'))
    assert rest_answer("/fapi/v3/positionRisk?timestamp=1", FUTURES_BTCUSDT, 1) == (200, b"[]")
    assert rest_answer("/fapi/v1/time", FUTURES_BTCUSDT, 42) == (200, b'{"serverTime":42}')
    assert rest_answer("/fapi/v1/depth?symbol=BTCUSDT", FUTURES_BTCUSDT, 1) == (
        404, b'{"code":-5000,"msg":"Path /fapi/v1/depth, Method GET is invalid"}')


def _start_firehose(n: int) -> tuple[subprocess.Popen, int]:
    port = free_tcp_port()
    fire = subprocess.Popen([sys.executable, "-m", "actors.bench.firehose", str(port), str(n), "futures"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return fire, port
        except OSError:
            if time.monotonic() > deadline or fire.poll() is not None:
                fire.kill()
                raise RuntimeError("firehose did not start")
            time.sleep(0.05)


def test_firehose_serves_rest_and_still_streams_on_one_port():
    fire, port = _start_firehose(100)
    try:
        before_ms = time.time_ns() // 1_000_000
        r = httpx.get(f"http://127.0.0.1:{port}/fapi/v1/exchangeInfo", timeout=5)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.headers["connection"] == "close"
        doc = r.json()
        assert before_ms <= doc["serverTime"] <= time.time_ns() // 1_000_000
        assert doc == futures_exchange_info(FUTURES_BTCUSDT, doc["serverTime"])
        r = httpx.get(f"http://127.0.0.1:{port}/fapi/v1/listenKey", timeout=5)
        assert (r.status_code, r.json()["code"]) == (404, -5000)

        async def ids() -> list[int]:
            # all of them: the firehose writes its frames under websockets' protocol, so a client
            # closing early waits out its close timeout
            from websockets.asyncio.client import connect
            async with connect(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@aggTrade", compression=None) as ws:
                return [orjson.loads(await ws.recv(decode=False))["data"]["a"] for _ in range(100)]
        assert asyncio.run(asyncio.wait_for(ids(), 10)) == list(range(1, 101))
    finally:
        fire.terminate()
        fire.wait(10)


def test_trade_counter_times_first_to_nth_and_keeps_the_ids():
    c = peers.TradeCounter(3)
    assert [c.add(10.0, "1"), c.add(10.5, "2"), c.add(12.0, "3")] == [False, False, True]
    assert c.line() == {"frames": 3, "seconds": 2.0, "rate": 1.0, "first_id": 1, "last_id": 3}
    with pytest.raises(ValueError, match="n must be >= 2, got 1"):
        peers.TradeCounter(1)


def test_peer_urls_must_be_loopback():
    with pytest.raises(ValueError, match="peer URLs must be on 127.0.0.1, got 'wss://fstream.binance.com'"):
        peers.main(["cryptofeed", "wss://fstream.binance.com", "https://fapi.binance.com", "10"])
    assert peers.main(["nonsense"]) == 64


def test_peer_rows():
    res = {"nautilus": {"error": "not installed"},
           "cryptofeed": {"rate": 41234.6, "bare_rate": 55000.2, "ratio": 0.74972, "version": "2.4.1",
                          "layer": peers.LAYERS["cryptofeed"]}}
    assert peers.peer_rows(res) == [
        ("peer cryptofeed 2.4.1 (trades/s)", "41,235", "bare loop 55,000", "0.75", "-", "info"),
        ("peer nautilus (trades/s)", "not installed", "-", "-", "-", "info"),
    ]
    assert peers.peer_rows({}) == []


def test_bench_peers_reports_not_installed_for_an_interpreter_lacking_them():
    missing = [p for p in peers.PEERS if importlib.util.find_spec(peers.DISTRIBUTIONS[p]) is None]
    if missing != list(peers.PEERS):
        pytest.skip(f"this interpreter has {set(peers.PEERS) - set(missing)}: no interpreter lacking both")
    lines: list[str] = []
    res = peers.bench_peers(2000, sys.executable, lines.append)
    assert res == {"cryptofeed": {"error": "not installed"}, "nautilus": {"error": "not installed"}}
    assert lines[0] == f"peer cryptofeed: bare loop, then cryptofeed ({sys.executable}), 2000 frames"
    r = subprocess.run([sys.executable, "-m", "actors.bench.peers", "version", "nautilus"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (peers.EXIT_NOT_INSTALLED, "not installed\n")


def _pinned(dist: str) -> str:
    for line in (ROOT / "requirements-bench-peers.txt").read_text().splitlines():
        if line.lower().startswith(dist.lower() + "=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{dist} not pinned")


@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_runs_against_the_firehose(peer):
    if not PEERS_PYTHON:
        pytest.skip("TDC_PEERS_PYTHON is not set (an interpreter with requirements-bench-peers.txt installed)")
    probe = subprocess.run([PEERS_PYTHON, "-m", "actors.bench.peers", "version", peer], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{peer} is not importable by TDC_PEERS_PYTHON={PEERS_PYTHON}: {probe.stdout.strip()}")
    res = peers.bench_peers(5000, PEERS_PYTHON, lambda _: None, peers=(peer,))
    r = res[peer]
    assert "error" not in r, r                  # bench_peers also checked trade ids 1..5000
    assert r["version"] == _pinned(peers.DISTRIBUTIONS[peer])
    assert r["layer"] == peers.LAYERS[peer]
    assert r["rate"] > 0 and len(r["bare_runs"]) == 2 and r["bare_rate"] == sum(r["bare_runs"]) / 2
    assert r["ratio"] == r["rate"] / r["bare_rate"]
