"""The sim's Binance REST over real sockets: klines (shape, limits, weights, time ranges, history
continuity), depth snapshots, premiumIndex, errors, and the 429 -> 418 escalation."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx

from actors.sim.binance.kline_bars import TF_MS
from actors.venues.binance.parse import parse_frame
from tests.support.sim import connect, recv_json, running_sim
from tests.support.wait import wait_for_async

KLINE_TYPES = [int, str, str, str, str, str, int, str, int, str, str, str]


def _check_rows(rows, ms: int, pdec: int, vdec: int, sent_ms: int, now_ms: int):
    """`sent_ms`/`now_ms`: the wall clock before the request and after its answer."""
    for r in rows:
        assert [type(x) for x in r] == KLINE_TYPES and r[11] == "0"
        assert r[6] == r[0] + ms - 1 and r[0] % ms == 0
        o, h, lo, c = (Decimal(x) for x in r[1:5])
        assert h >= max(o, c) and lo <= min(o, c) and lo > 0
        assert all(len(x.split(".")[1]) == pdec for x in r[1:5])
        assert len(r[5].split(".")[1]) == vdec and Decimal(r[9]) <= Decimal(r[5])
        assert Decimal(r[10]) <= Decimal(r[7])
    assert [b[0] - a[0] for a, b in zip(rows, rows[1:])] == [ms] * (len(rows) - 1)
    # the open kline is last: the one open at some moment between the request and its answer
    assert rows[-1][0] <= now_ms and sent_ms < rows[-1][0] + ms


def test_klines_shape_limits_weights_and_history():
    m0 = time.time_ns() // 60_000_000_000 * 60_000    # the sim's first live minute (or earlier)

    async def main():
        async with running_sim(rate=200) as ports:
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as f, \
                    httpx.AsyncClient(base_url=ports.shttp, timeout=5) as s:
                used = None
                for limit, weight, n in ((50, 1, 50), (200, 2, 200), (None, 5, 500),
                                         (1000, 5, 1000), (1500, 10, 1500), (3000, 10, 1500)):
                    q = {"symbol": "BTCUSDT", "interval": "1m"}
                    if limit:
                        q["limit"] = limit
                    sent = time.time_ns() // 1_000_000
                    r = await f.get("/fapi/v1/klines", params=q)
                    now = time.time_ns() // 1_000_000
                    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
                    w = int(r.headers["X-MBX-USED-WEIGHT-1M"])
                    if used is not None and w > used:          # (unless the minute rolled)
                        assert w - used == weight
                    used = w
                    rows = r.json()
                    assert len(rows) == n
                    _check_rows(rows, 60_000, 2, 3, sent, now)
                # every timeframe, history included, on both venues
                for tf, ms in TF_MS.items():
                    sent = time.time_ns() // 1_000_000
                    rows = (await f.get("/fapi/v1/klines", params={
                        "symbol": "BTCUSDT", "interval": tf, "limit": 1500})).json()
                    assert len(rows) == 1500
                    _check_rows(rows, ms, 2, 3, sent, time.time_ns() // 1_000_000)
                    # history is continuous: each open is the previous close
                    hist = [r for r in rows if r[0] < m0]
                    assert len(hist) >= 1400
                    assert all(a[4] == b[1] for a, b in zip(hist, hist[1:]))
                    sent = time.time_ns() // 1_000_000
                    r = await s.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": tf,
                                                              "limit": 1500})
                    assert r.headers["x-mbx-used-weight"] == r.headers["x-mbx-used-weight-1m"]
                    rows = r.json()
                    assert len(rows) == 1000                    # spot max
                    _check_rows(rows, ms, 8, 8, sent, time.time_ns() // 1_000_000)
                    hist = [r for r in rows if r[0] < m0]
                    assert all(a[4] == b[1] for a, b in zip(hist, hist[1:]))
                r1 = await s.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
                r2 = await s.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
                assert len(r1.json()) == 500
                w1, w2 = int(r1.headers["x-mbx-used-weight-1m"]), int(r2.headers["x-mbx-used-weight-1m"])
                assert w2 - w1 == 2 or w2 == 2                  # spot klines weigh 2
                # a complete hour of history is the sum of its minutes
                hours = (await f.get("/fapi/v1/klines", params={
                    "symbol": "BTCUSDT", "interval": "1h", "limit": 3})).json()
                h = hours[0]
                mins = (await f.get("/fapi/v1/klines", params={
                    "symbol": "BTCUSDT", "interval": "1m", "startTime": h[0],
                    "endTime": h[6], "limit": 100})).json()
                assert len(mins) == 60 and mins[0][0] == h[0]
                assert h[1] == mins[0][1] and h[4] == mins[-1][4]
                assert Decimal(h[2]) == max(Decimal(m[2]) for m in mins)
                assert Decimal(h[3]) == min(Decimal(m[3]) for m in mins)
                assert Decimal(h[5]) == sum(Decimal(m[5]) for m in mins)
                assert h[8] == sum(m[8] for m in mins)
                # spot prices sit a few bps under futures all along the history
                fr = (await f.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1d",
                                                             "limit": 30})).json()
                sr = (await s.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1d",
                                                            "limit": 30})).json()
                for a, b in zip(fr, sr):
                    assert a[0] == b[0] and abs(float(a[4]) / float(b[4]) - 1) < 0.002
    asyncio.run(main())


def test_kline_time_ranges_and_errors():
    async def main():
        async with running_sim(rate=50) as ports:
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as c:
                base = {"symbol": "BTCUSDT", "interval": "5m"}
                now = time.time_ns() // 1_000_000
                start = now - 3 * 86_400_000 + 12_345
                rows = (await c.get("/fapi/v1/klines", params={**base, "startTime": start,
                                                               "limit": 10})).json()
                assert len(rows) == 10 and rows[0][0] >= start and rows[0][0] - start < 300_000
                rows = (await c.get("/fapi/v1/klines", params={**base, "endTime": start,
                                                               "limit": 10})).json()
                assert len(rows) == 10 and rows[-1][0] <= start < rows[-1][0] + 300_000
                rows = (await c.get("/fapi/v1/klines", params={
                    **base, "startTime": start, "endTime": start + 3_600_000})).json()
                assert len(rows) == 12
                assert (await c.get("/fapi/v1/klines", params={
                    **base, "startTime": now + 3_600_000})).json() == []
                for params, code, status in (
                        ({"interval": "1m"}, -1102, 400),
                        ({"symbol": "ETHUSDT", "interval": "1m"}, -1121, 400),
                        ({"symbol": "BTCUSDT", "interval": "2m"}, -1120, 400),
                        ({"symbol": "BTCUSDT"}, -1102, 400),
                        ({**base, "limit": "ten"}, -1100, 400),
                        ({**base, "limit": 0}, -1130, 400),
                        ({**base, "startTime": 5, "endTime": 4}, -1023, 400)):
                    r = await c.get("/fapi/v1/klines", params=params)
                    assert r.status_code == status and r.json()["code"] == code, (params, r.text)
                    assert list(r.json()) == ["code", "msg"]
                assert (await c.get("/fapi/v1/klines", params={
                    "symbol": "BTCUSDT", "interval": "1m"})).status_code == 200
            async with httpx.AsyncClient(base_url=ports.shttp, timeout=5) as c:
                r = await c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1w"})
                assert r.status_code == 400 and r.json()["code"] == -1120
    asyncio.run(main())


def test_depth_snapshots_premium_index_time_and_ping():
    async def main():
        async with running_sim(rate=200) as ports:
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as f, \
                    httpx.AsyncClient(base_url=ports.shttp, timeout=5) as s, \
                    connect(ports.fws("/public/ws/btcusdt@bookTicker")) as fb, \
                    connect(ports.sws("/ws/btcusdt@bookTicker")) as sb:
                books = {"f": {}, "s": {}}

                async def read(ws, key):
                    while True:
                        d = await recv_json(ws, time.monotonic() + 10)
                        books[key][d["u"]] = d
                tasks = [asyncio.create_task(read(fb, "f")), asyncio.create_task(read(sb, "s"))]
                await wait_for_async(lambda: books["f"] and books["s"], 5, "a book ticker on each venue")
                for client, path, key, n, weight_hdr in (
                        (f, "/fapi/v1/depth", "f", 500, "X-MBX-USED-WEIGHT-1M"),
                        (s, "/api/v3/depth", "s", 100, "x-mbx-used-weight-1m")):
                    r = await client.get(path, params={"symbol": "BTCUSDT"})
                    assert r.status_code == 200 and weight_hdr in r.headers
                    d = r.json()
                    assert list(d) == (["lastUpdateId", "E", "T", "bids", "asks"] if key == "f"
                                       else ["lastUpdateId", "bids", "asks"])
                    assert parse_frame(r.content, 1).kind == "depth"
                    bp = [Decimal(p) for p, _ in d["bids"]]
                    ap = [Decimal(p) for p, _ in d["asks"]]
                    assert len(bp) == len(ap) == n
                    assert bp == sorted(bp, reverse=True) and ap == sorted(ap) and bp[0] < ap[0]
                    bt = await wait_for_async(lambda: books[key].get(d["lastUpdateId"]), 3,
                                              "the book ticker of the same book version")
                    assert d["bids"][0] == [bt["b"], bt["B"]] and d["asks"][0] == [bt["a"], bt["A"]]
                big = (await s.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5000})).json()
                assert len(big["bids"]) == 5000
                r = await f.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})
                assert len(r.json()["bids"]) == 1000
                r = await f.get("/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"})
                p = r.json()
                assert list(p) == ["symbol", "markPrice", "indexPrice", "estimatedSettlePrice",
                                   "lastFundingRate", "interestRate", "nextFundingTime", "time"]
                last_f = books["f"][max(books["f"])]
                fmid = (float(last_f["b"]) + float(last_f["a"])) / 2
                assert abs(float(p["markPrice"]) / fmid - 1) < 1e-3
                assert p["nextFundingTime"] % (8 * 3_600_000) == 0
                r = await f.get("/fapi/v1/premiumIndex")
                assert isinstance(r.json(), list) and r.json()[0]["symbol"] == "BTCUSDT"
                for client, pre in ((f, "/fapi/v1"), (s, "/api/v3")):
                    t0 = time.time_ns() // 1_000_000
                    r = await client.get(f"{pre}/time")
                    assert t0 <= r.json()["serverTime"] <= time.time_ns() // 1_000_000
                    assert (await client.get(f"{pre}/ping")).json() == {}
                for t in tasks:
                    t.cancel()
    asyncio.run(main())


def test_429_then_418_with_retry_after():
    async def main():
        async with running_sim(rate=10, sim_rest_ban_sec=3.0) as ports:
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as c:
                q = {"symbol": "BTCUSDT", "limit": 1000}            # weight 20
                for _ in range(300):
                    r = await c.get("/fapi/v1/depth", params=q)
                    if r.status_code != 200:
                        break
                    assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) <= 2400
                assert r.status_code == 429
                assert 1 <= int(r.headers["Retry-After"]) <= 60
                assert r.json()["code"] == -1003 and r.json()["msg"].startswith("Too many requests;")
                # coming back before Retry-After: banned
                r = await c.get("/fapi/v1/time")
                assert r.status_code == 418 and r.headers["Retry-After"] == "3"
                assert r.json()["code"] == -1003 and "banned until" in r.json()["msg"]
                r = await c.get("/fapi/v1/ping")
                assert r.status_code == 418 and 1 <= int(r.headers["Retry-After"]) <= 3
            # the spot port counts its own weight
            async with httpx.AsyncClient(base_url=ports.shttp, timeout=5) as c:
                assert (await c.get("/api/v3/time")).status_code == 200
    asyncio.run(main())
