"""TAAPI: the pure request/response helpers (actors/venues/taapi.py), the sim's bulk endpoint
logic (actors/sim/taapi_bulk.py, no sockets: its clock is the argument), and the async client
(actors/clients/taapi_client.py) against a real HTTP server on 127.0.0.1 that answers what the test queues.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import orjson
import pytest

from actors.features import indicators as ind
from actors.sim.taapi_bulk import BLOCK_EXTEND_SEC, BURST, TaapiSim
from actors.clients.taapi_client import TaapiClient, TaapiError
from actors.venues import taapi
from actors.venues.http import backoff_sec
from tests.support.kline_server import kline_row

MIN = 60_000

# A bulk answer in TAAPI's documented shape ({"data": [{"id","indicator","result","errors"}]}),
# for the ids bulk_body sends.
GOOD = {"data": [
    {"id": "rsi", "indicator": "rsi", "result": {"value": 54.25, "timestamp": 1700000000},
     "errors": []},
    {"id": "macd", "indicator": "macd", "result": {"valueMACD": 12.5, "valueMACDSignal": 10.0,
                                                   "valueMACDHist": 2.5, "timestamp": 1700000000},
     "errors": []},
    {"id": "ema", "indicator": "ema", "result": {"value": 60000.5, "timestamp": 1700000000},
     "errors": []},
    {"id": "atr", "indicator": "atr", "result": {"value": 35, "timestamp": 1700000000}, "errors": []},
    {"id": "bbands", "indicator": "bbands", "result": {
        "valueUpperBand": 60100.0, "valueMiddleBand": 60000.0, "valueLowerBand": 59900.0,
        "timestamp": 1700000000}, "errors": []},
]}


def good(**changes) -> dict:
    doc = orjson.loads(orjson.dumps(GOOD))
    for i, item in enumerate(doc["data"]):
        if item["id"] in changes:
            doc["data"][i] = changes[item["id"]]
    doc["data"] = [d for d in doc["data"] if d is not None]
    return doc


# --- venues/taapi: request --------------------------------------------------------------------------

def test_bulk_body_asks_every_indicator_with_explicit_params():
    doc = orjson.loads(taapi.bulk_body("SECRET", "binance", "BTCUSDT", "5m"))
    assert doc["secret"] == "SECRET"
    c = doc["construct"]
    assert (c["exchange"], c["symbol"], c["interval"]) == ("binance", "BTC/USDT", "5m")
    assert [i["id"] for i in c["indicators"]] == [i["indicator"] for i in c["indicators"]] == list(ind.INDICATORS)
    by = {i["id"]: i for i in c["indicators"]}
    assert by["rsi"]["period"] == 14 and by["ema"]["period"] == 20 and by["atr"]["period"] == 14
    assert (by["macd"]["optInFastPeriod"], by["macd"]["optInSlowPeriod"],
            by["macd"]["optInSignalPeriod"]) == (12, 26, 9)
    assert (by["bbands"]["period"], by["bbands"]["stddev"]) == (20, 2)
    assert all(i["backtrack"] == 1 and i["addResultTimestamp"] is True for i in c["indicators"])
    assert orjson.loads(taapi.bulk_body("s", "x", "BTCUSDT", "1h", 0))["construct"]["indicators"][0]["backtrack"] == 0
    with pytest.raises(ValueError, match="backtrack"):
        taapi.bulk_body("s", "binance", "BTCUSDT", "1h", -1)


def test_symbols():
    assert taapi.taapi_symbol("BTCUSDT") == "BTC/USDT"
    assert taapi.taapi_symbol("ethbtc") == "ETH/BTC"
    assert taapi.taapi_symbol("BTCFDUSD") == "BTC/FDUSD"
    assert taapi.taapi_symbol("SOL/USDC") == "SOL/USDC"
    with pytest.raises(ValueError, match="COIN/MARKET"):
        taapi.taapi_symbol("USDT")


# --- venues/taapi: response -------------------------------------------------------------------------

def test_parse_bulk_maps_by_id_into_the_local_shape():
    doc = good()
    doc["data"].reverse()                         # by id, never by position
    b = taapi.parse_bulk(orjson.dumps(doc))
    assert b.errors == {} and b.candle_open_s == 1700000000
    assert b.values == {"rsi": {"value": 54.25},
                        "macd": {"valueMACD": 12.5, "valueMACDSignal": 10.0, "valueMACDHist": 2.5},
                        "ema": {"value": 60000.5}, "atr": {"value": 35.0},
                        "bbands": {"valueUpperBand": 60100.0, "valueMiddleBand": 60000.0,
                                   "valueLowerBand": 59900.0}}
    assert type(b.values["atr"]["value"]) is float
    # the same keys as the local bundle
    local, _ = ind.bundle(*(np.linspace(1, 2, 60),) * 3)
    assert {k: sorted(v) for k, v in local.items()} == {k: sorted(v) for k, v in b.values.items()}


def test_parse_bulk_one_failed_calculation_is_null_with_its_reason():
    b = taapi.parse_bulk(orjson.dumps(good(macd={"id": "macd", "indicator": "macd", "result": {},
                                                 "errors": ["Not enough candles"]})))
    assert b.values["macd"] is None and b.errors == {"macd": "Not enough candles"}
    assert b.values["rsi"] == {"value": 54.25}
    b = taapi.parse_bulk(orjson.dumps(good(ema={"id": "ema", "result": None})))
    assert b.values["ema"] is None and b.errors == {"ema": "empty result"}
    b = taapi.parse_bulk(orjson.dumps({"data": [{"id": n, "result": {f: 1.0 for f in ind.FIELDS[n]}}
                                                for n in ind.INDICATORS]}))
    assert b.candle_open_s is None and b.errors == {}


@pytest.mark.parametrize("body,msg", [
    (b"<html>502 Bad Gateway</html>", "not JSON"),
    (b'{"error": "x"}', "no 'data' list"),
    (b'[1, 2]', "no 'data' list"),
    (b'{"data": [1]}', r"data\[0\] is not an object"),
    (orjson.dumps(good(atr=None)), r"lacks indicator\(s\) \['atr'\]"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": {"valeu": 3}})), r"rsi: result lacks \['value'\]"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": {"value": "54"}})), "rsi.value is not a number"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": {"value": True}})), "rsi.value is not a number"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": [54]})), "'result' is not an object"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": {"value": 1}, "errors": "x"})), "'errors' is not a list"),
    (orjson.dumps(good(rsi={"id": "rsi", "result": {"value": 1, "timestamp": 1600000000}})),
     "different candles"),
])
def test_parse_bulk_malformed_raises_a_clear_error(body, msg):
    with pytest.raises(ValueError, match=msg):
        taapi.parse_bulk(body)


def test_block_and_error_messages():
    legacy = orjson.dumps({"error": {"message": "429: You have exceeded your request limit (TAAPI.IO "
                                                "rate-limit)!", "maxHitsAllowed": 1,
                                     "maxHitsTimeframe": "1m", "blockTime": "1020 seconds",
                                     "reason": "Rate limits exceeded!"}})
    assert taapi.block_sec(429, {}, legacy) == 1020.0
    assert taapi.block_sec(429, {"Retry-After": "30"}, legacy) == 1020.0        # the longer
    assert taapi.block_sec(429, {"retry-after": "30"}, b'{"error": "Rate limit exceeded."}') == 30.0
    assert taapi.block_sec(429, {}, b'{"error": "Rate limit exceeded."}') is None
    assert taapi.block_sec(429, {}, orjson.dumps({"error": {"blockTime": 7}})) == 7.0
    assert taapi.block_sec(429, {}, orjson.dumps({"error": {"blockTime": "3 minutes"}})) == 180.0
    assert taapi.block_sec(500, {"Retry-After": "5"}, legacy) is None
    assert taapi.error_message(legacy).startswith("429: You have exceeded")
    assert taapi.error_message(b'{"error": "Invalid or missing API key."}') == "Invalid or missing API key."
    assert taapi.error_message(b"Bad Gateway") == "Bad Gateway"


@pytest.mark.parametrize("headers,body,sec", [
    ({"Retry-After": "inf"}, b"{}", 3600.0),
    ({"Retry-After": "1e300"}, b"{}", 3600.0),
    ({"Retry-After": "nan"}, b"{}", None),
    ({"Retry-After": "-3"}, b"{}", 0.0),
    ({"Retry-After": "nan"}, orjson.dumps({"error": {"blockTime": 7}}), 7.0),
    ({}, orjson.dumps({"error": {"blockTime": 1e300}}), 3600.0),
    ({}, orjson.dumps({"error": {"blockTime": -5}}), 0.0),
    ({}, orjson.dumps({"error": {"blockTime": "99999999999999 minutes"}}), 3600.0),
    ({}, orjson.dumps({"error": {"blockTime": "9" * 400 + " seconds"}}), 3600.0),     # float: inf
    ({}, orjson.dumps({"error": {"blockTime": "1020 seconds"}}), 1020.0),           # TAAPI's own example
    ({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, b"{}", 10.0),                # now + 10 s
    ({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, b"{}", 3600.0),
])
def test_block_is_capped_at_an_hour_and_never_raises(headers, body, sec):
    assert taapi.MAX_BLOCK_SEC == 3600.0
    assert taapi.block_sec(429, headers, body, now_s=1_700_000_000.0) == sec


def test_client_survives_an_absurd_block(server):
    # before the cap: `Retry-After: inf` paused the client forever and `int(inf * 1e9)` raised
    # OverflowError out of bulk() (not a TaapiError: the caller's handler missed it)
    server.queue.append((429, {"Retry-After": "inf"}, b'{"error": "Rate limit exceeded."}'))

    async def main():
        c = TaapiClient(server.url, "s3cret", "binance", "BTCUSDT", rate_per_sec=20.0, timeout_sec=2.0)
        try:
            with pytest.raises(TaapiError) as e:
                await c.bulk("5m")
            return c, e.value
        finally:
            await c.aclose()

    wall = time.time_ns()
    c, err = asyncio.run(main())
    assert err.kind == "429" and err.msg == "Rate limit exceeded. (no request for 3600.0s)"
    assert 3590 < c.pacer.pause_until - time.monotonic() <= 3600
    assert wall + 3590 * 10**9 < c.counters()["blocked_until_ns"] <= time.time_ns() + 3600 * 10**9


def test_backoff_and_pacer():
    assert [backoff_sec(a, 1.0, 10.0) for a in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff_sec(3, 1.0, 60.0, 0.5) == 4.0
    assert backoff_sec(5000, 0.25, 30.0) == 30.0         # no overflow however long it has failed
    p = taapi.Pacer(4.0)
    assert p.delay(100.0) == 0.0
    p.sent(100.0)
    assert p.delay(100.0) == 0.25 and p.delay(100.2) == pytest.approx(0.05) and p.delay(100.3) == 0
    p.pause(100.3, 2.0)
    assert p.delay(101.3) == pytest.approx(1.0)
    p.pause(100.3, 1.0)                      # a shorter pause never shortens the current one
    assert p.delay(101.3) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        taapi.Pacer(0)


# --- the sim's endpoint (pure) ------------------------------------------------------------------------

class FakeVenue:
    """The sim venues' REST provider: the newest `limit` 1m rows, the last one in progress."""

    def __init__(self):
        self.calls = []

    def klines(self, tf, start, end, limit, now_ms):
        self.calls.append((tf, limit))
        tf_ms = {"1m": MIN, "5m": 5 * MIN}[tf]
        cur = now_ms // tf_ms * tf_ms
        return orjson.dumps([kline_row(t, tf_ms) for t in range(cur - (limit - 1) * tf_ms, cur + 1, tf_ms)]).decode()


@pytest.fixture
def sim():
    fut, spot = FakeVenue(), FakeVenue()
    return TaapiSim("s3cret", "BTCUSDT", {"binancefutures": fut, "binance": spot}, rate_per_sec=0.5,
                    block_sec=4.0)


T0 = 1_700_000_030_000


def test_sim_bulk_equals_the_local_bundle_of_the_closed_klines(sim):
    body = taapi.bulk_body("s3cret", "binancefutures", "BTCUSDT", "1m")
    status, text, _ = sim.answer("POST", "/taapi/bulk", body, T0)
    assert status == 200
    b = taapi.parse_bulk(text.encode())
    cur = T0 // MIN * MIN
    rows = [kline_row(t, MIN) for t in range(cur - ind.WINDOW * MIN, cur, MIN)]     # closed only
    a = np.array([[float(r[4]), float(r[2]), float(r[3])] for r in rows])
    assert b.values == ind.bundle(a[:, 0], a[:, 1], a[:, 2])[0]
    assert b.candle_open_s == (cur - MIN) // 1000
    assert sim.venues["binancefutures"].calls == [("1m", ind.WINDOW + 1)] and not sim.venues["binance"].calls
    # backtrack 0: the candle in progress; default ids name the construct
    doc = orjson.loads(body)
    for i in doc["construct"]["indicators"]:
        i["backtrack"] = 0
        del i["id"]
    status, text, _ = sim.answer("POST", "/taapi/bulk", orjson.dumps(doc), T0 + 2000)
    data = orjson.loads(text)["data"]
    assert data[0]["id"] == "binancefutures_BTC/USDT_1m_rsi_0" and data[0]["result"]["timestamp"] == cur // 1000


@pytest.mark.parametrize("mutate,status,msg", [
    (lambda d: d.update(secret="nope"), 401, "Permission denied"),
    (lambda d: d.pop("secret"), 401, "Permission denied"),
    (lambda d: d["construct"].update(exchange="kraken"), 400, "Unsupported exchange"),
    (lambda d: d["construct"].update(symbol="ETH/USDT"), 400, "Unknown symbol"),
    (lambda d: d["construct"].update(interval="3m"), 400, "Invalid interval"),
    (lambda d: d["construct"].update(indicators=[]), 400, "1..20"),
    (lambda d: d["construct"]["indicators"].append({"indicator": "cmf"}), 400, "Unknown indicator"),
    (lambda d: d["construct"]["indicators"][0].update(period=0), 400, "'period' must be an integer"),
    (lambda d: d["construct"]["indicators"][1].update(id="rsi"), 400, "not unique"),
])
def test_sim_rejects_bad_requests(sim, mutate, status, msg):
    doc = orjson.loads(taapi.bulk_body("s3cret", "binance", "BTCUSDT", "5m"))
    mutate(doc)
    st, text, _ = sim.answer("POST", "/taapi/bulk", orjson.dumps(doc), T0)
    assert st == status and msg in orjson.loads(text)["error"]


def test_sim_too_few_candles_is_a_per_indicator_error(sim):
    doc = orjson.loads(taapi.bulk_body("s3cret", "binance", "BTCUSDT", "1m"))
    doc["construct"]["indicators"][0]["period"] = 400      # rsi over more than WINDOW candles
    st, text, _ = sim.answer("POST", "/taapi/bulk", orjson.dumps(doc), T0)
    b = taapi.parse_bulk(text.encode())
    assert st == 200 and b.values["rsi"] is None and "Not enough candles" in b.errors["rsi"]
    assert b.values["ema"] is not None


def test_sim_rate_limit_blocks_and_lengthens_the_block(sim):
    body = taapi.bulk_body("s3cret", "binance", "BTCUSDT", "1m")
    t = T0
    for _ in range(int(BURST)):                  # the burst
        assert sim.answer("POST", "/taapi/bulk", body, t)[0] == 200
    st, text, _ = sim.answer("POST", "/taapi/bulk", body, t + 10)
    assert st == 429
    err = orjson.loads(text)["error"]
    assert err["blockTime"] == "4 seconds" and err["message"].startswith("429: You have exceeded")
    assert taapi.block_sec(429, {}, text.encode()) == 4.0
    # a call during the block: still 429, and the block grows
    st, text, _ = sim.answer("POST", "/taapi/bulk", body, t + 3010)
    assert st == 429 and sim.blocked_hits == 1
    assert taapi.block_sec(429, {}, text.encode()) == 2.0          # 4 + 1 - 3 s left
    assert sim.answer("POST", "/taapi/bulk", body, t + 4010 + int(BLOCK_EXTEND_SEC * 1000) - 1)[0] == 429
    assert sim.blocked_hits == 2
    # honoured: the next call after the (lengthened) block passes
    assert sim.answer("POST", "/taapi/bulk", body, t + 10 + 4000 + 2000 + 10)[0] == 200
    stats = orjson.loads(sim.answer("GET", "/taapi/__stats", b"", t)[1])
    assert stats["answers"] == {"200": 3, "429": 3} and stats["blocked_hits"] == 2
    assert [s for _, s in stats["log"]] == [200, 200, 429, 429, 429, 200]
    assert sim.answer("GET", "/taapi/bulk", b"", t)[0] == 405
    assert sim.answer("POST", "/taapi/other", b"", t)[0] == 404
    assert sim.answer("POST", "/taapi/bulk", b"{", t)[0] == 400
    assert TaapiSim.owns("/taapi/bulk?x=1") and not TaapiSim.owns("/taapix") and not TaapiSim.owns("/fapi/v1/klines")


# --- the client against a real HTTP server ------------------------------------------------------------

class Server:
    """Real HTTP on 127.0.0.1: answers POST /bulk with the queued (status, headers, body)."""

    def __init__(self):
        self.queue: deque = deque()
        self.log: list[tuple[float, bytes]] = []        # (monotonic arrival, request body)
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                srv.log.append((time.monotonic(), body))
                status, headers, out = srv.queue.popleft() if srv.queue else (200, {}, orjson.dumps(GOOD))
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_client_paces_backs_off_and_honours_a_429(server, monkeypatch):
    monkeypatch.setattr("actors.clients.taapi_client.BACKOFF_BASE_SEC", 0.2)
    monkeypatch.setattr("actors.clients.taapi_client.random.uniform", lambda a, b: 1.0)
    server.queue.extend([
        (500, {}, b'{"error": "Internal"}'),
        (200, {}, b"<html>oops</html>"),
        (429, {}, orjson.dumps({"error": {"message": "429: limit", "blockTime": "1 seconds"}})),
        (401, {}, b'{"error": "Invalid or missing API key."}'),
    ])

    async def main():
        c = TaapiClient(server.url, "s3cret", "binance", "BTCUSDT", rate_per_sec=20.0,
                        timeout_sec=2.0, backoff_max_sec=5.0)
        kinds = []
        try:
            for _ in range(4):
                with pytest.raises(TaapiError) as e:
                    await c.bulk("5m")
                kinds.append(e.value.kind)
            ok = await c.bulk("5m")
            ok2 = await c.bulk("5m")
        finally:
            await c.aclose()
        return c, kinds, ok, ok2

    c, kinds, ok, ok2 = asyncio.run(main())
    assert kinds == ["500", "bad_body", "429", "auth"]
    assert ok.values["rsi"] == {"value": 54.25} and ok2.candle_open_s == 1700000000
    gaps = [b[0] - a[0] for a, b in zip(server.log, server.log[1:])]
    # backoff 0.2, 0.4 after the 1st and 2nd failures; the 429's 1 s block; then 0.8 (4th failure
    # in a row, attempt 3); then plain spacing (1/20 s) after the success
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 1.0 and gaps[3] >= 0.8
    assert 0.04 <= gaps[4] < 0.5          # spaced at send time; arrival jitters a little
    assert all(orjson.loads(b)["secret"] == "s3cret" for _, b in server.log)
    cnt = c.counters()
    assert (cnt["requests"], cnt["ok"], cnt["rate_limited"]) == (6, 2, 1)
    assert cnt["errors"] == {"500": 1, "bad_body": 1, "429": 1, "auth": 1}
    assert cnt["paused_ms"] >= 2000 and cnt["last_status"] == 200


def test_client_network_error_and_timeout_are_counted(server, monkeypatch):
    monkeypatch.setattr("actors.clients.taapi_client.BACKOFF_BASE_SEC", 0.05)

    async def main():
        dead = TaapiClient("http://127.0.0.1:1", "s", "binance", "BTCUSDT", rate_per_sec=50.0,
                           timeout_sec=1.0)
        try:
            with pytest.raises(TaapiError) as e:
                await dead.bulk("1h")
        finally:
            await dead.aclose()
        return dead, e.value

    dead, err = asyncio.run(main())
    assert err.kind == "network" and dead.counters()["errors"] == {"network": 1}
    assert dead.pacer.pause_until > time.monotonic() - 1
