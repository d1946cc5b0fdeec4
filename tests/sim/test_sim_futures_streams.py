"""The sim's USD-M streams beyond aggTrade/bookTicker, over real sockets: markPrice, forceOrder,
kline, partial depth; routes; frames parsed by the project's parser."""
from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal

import httpx

from actors.sim.binance.mark import next_funding_ms
from actors.sim.market import Market
from actors.venues.binance.parse import parse_frame
from ipc.schema import FLAG_SNAPSHOT
from tests.support.sim import connect, keys, pairs, recv, recv_json, running_sim
from tests.support.wait import wait_for_async

P2 = re.compile(r"^\d+\.\d{2}$")
P8 = re.compile(r"^-?\d+\.\d{8}$")
Q3 = re.compile(r"^\d+\.\d{3}$")
MARK_KEYS = ["e", "E", "s", "p", "ap", "P", "i", "r", "T"]
DEPTH_KEYS = ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
KLINE_KEYS = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"]


def test_mark_price_streams_every_second_and_every_three_seconds():
    async def main():
        async with running_sim(rate=200) as ports:
            m_url = ports.fws("/market/stream?streams=btcusdt@markPrice@1s/btcusdt@markPrice")
            async with connect(m_url) as m, \
                    connect(ports.fws("/public/ws/btcusdt@bookTicker")) as fb, \
                    connect(ports.sws("/ws/btcusdt@bookTicker")) as sb:
                book = {"f": None, "s": None}

                async def follow(ws, key):
                    while True:
                        book[key] = await recv_json(ws, time.monotonic() + 10)
                tasks = [asyncio.create_task(follow(fb, "f")), asyncio.create_task(follow(sb, "s"))]
                deadline = time.monotonic() + 8
                # a mark print is compared with both books, so both must have quoted first
                await wait_for_async(lambda: None not in book.values(), 8, "both books quoted")
                one, three = [], []
                while len(one) < 4 or len(three) < 1:
                    raw = await recv(m, deadline)
                    env = pairs(raw)
                    stream, data = env[0][1], env[1][1]
                    assert keys(data) == MARK_KEYS
                    d = dict(data)
                    rec = parse_frame(raw, time.time_ns())
                    assert rec.kind == "mark" and rec.stream == stream
                    (one if stream.endswith("@1s") else three).append(d)
                    fmid = (float(book["f"]["b"]) + float(book["f"]["a"])) / 2
                    smid = (float(book["s"]["b"]) + float(book["s"]["a"])) / 2
                    mark, index = float(d["p"]), float(d["i"])
                    assert abs(mark / fmid - 1) < 5e-4, (mark, fmid)     # mark ~ futures mid
                    assert abs(index / smid - 1) < 5e-4, (index, smid)   # index ~ spot mid
                    assert all(P8.match(d[k]) for k in ("p", "ap", "P", "i", "r"))
                    assert abs(float(d["r"]) - 0.0001) < 0.0005
                    assert d["T"] == next_funding_ms(d["E"]) and d["T"] % (8 * 3600_000) == 0
                    assert d["e"] == "markPriceUpdate" and d["s"] == "BTCUSDT"
                for t in tasks:
                    t.cancel()
            e1 = [d["E"] for d in one]
            assert all(e % 1000 == 0 for e in e1)
            assert all(b - a == 1000 for a, b in zip(e1, e1[1:]))
            assert all(d["E"] % 3000 == 0 for d in three)
            assert {d["E"] for d in three} <= set(e1) | {max(e1) + 1000, max(e1) + 2000}
    asyncio.run(main())


def test_force_orders_at_most_one_per_second_with_the_live_shape():
    async def main():
        async with running_sim(rate=200, sim_liquidation_rate=20.0) as ports:
            async with connect(ports.fws("/market/stream?streams=btcusdt@forceOrder")) as ws:
                deadline = time.monotonic() + 8
                got = []
                while len(got) < 3:
                    raw = await recv(ws, deadline)
                    rec = parse_frame(raw, time.time_ns())
                    assert rec.kind == "liquidation"
                    data = pairs(raw)[1][1]
                    assert keys(data) == ["e", "E", "o"]
                    o = dict(dict(data)["o"])
                    assert keys(dict(data)["o"]) == ["s", "S", "o", "f", "q", "p", "ap", "X", "l",
                                                    "z", "T"]
                    got.append((dict(data)["E"], o))
            es = [e for e, _ in got]
            assert len(set(e // 1000 for e in es)) == len(es)    # one per 1000 ms snapshot at most
            for e, o in got:
                assert o["s"] == "BTCUSDT" and o["S"] in ("BUY", "SELL")
                assert (o["o"], o["f"], o["X"]) == ("LIMIT", "IOC", "FILLED")
                assert o["q"] == o["l"] == o["z"] and Q3.match(o["q"]) and float(o["q"]) > 0
                assert P2.match(o["p"]) and P2.match(o["ap"]) and o["T"] <= e
                # the order's limit is worse than its average fill, on the liquidated side
                assert (float(o["p"]) < float(o["ap"])) if o["S"] == "SELL" else \
                    (float(o["p"]) > float(o["ap"]))
    asyncio.run(main())


def test_partial_depth_matches_the_book_ticker_and_chains_pu():
    async def main():
        async with running_sim(rate=400) as ports:
            url = ports.fws("/public/stream?streams=btcusdt@bookTicker/btcusdt@depth5@100ms/"
                            "btcusdt@depth10@500ms/btcusdt@depth20")
            async with connect(url) as ws:
                deadline = time.monotonic() + 8
                t0 = time.monotonic()
                last_book = None
                depth: dict[str, list] = {}
                while time.monotonic() - t0 < 2.2:
                    raw = await recv(ws, deadline)
                    env = pairs(raw)
                    stream, data = env[0][1], env[1][1]
                    if stream.endswith("@bookTicker"):
                        last_book = dict(data)
                        continue
                    assert keys(data) == DEPTH_KEYS
                    rec = parse_frame(raw, time.time_ns())
                    assert rec.kind == "depth" and rec.recs[0][2] == FLAG_SNAPSHOT
                    d = dict(data)
                    depth.setdefault(stream, []).append(d)
                    n = int(stream.split("@")[1][5:])
                    bids, asks = d["b"], d["a"]
                    assert len(bids) == len(asks) == n
                    bp = [float(p) for p, _ in bids]
                    ap = [float(p) for p, _ in asks]
                    # futures partial depth: bids worst-first (ascending), asks best-first
                    assert bp == sorted(bp) and len(set(bp)) == n
                    assert ap == sorted(ap) and len(set(ap)) == n
                    assert bp[-1] < ap[0]
                    assert all(P2.match(p) and round(float(p) * 100) % 10 == 0 and Q3.match(q)
                               and float(q) > 0 for p, q in bids + asks)
                    assert d["U"] <= d["u"] and d["s"] == "BTCUSDT" and d["e"] == "depthUpdate"
                    if last_book is None:       # the connection opened between a book and its depth
                        depth[stream].pop()
                        continue
                    # same instant, same book: the top is the last bookTicker, at the same id
                    assert d["u"] == last_book["u"]
                    assert bids[-1] == [last_book["b"], last_book["B"]]
                    assert asks[0] == [last_book["a"], last_book["A"]]
                    assert d["T"] == last_book["T"] and d["T"] <= d["E"]
                    # the parsed record is best-first
                    assert rec.recs[0][8][0] == bp[-1] and rec.recs[0][10][0] == ap[0]
            counts = {s: len(v) for s, v in depth.items()}
            assert counts["btcusdt@depth5@100ms"] >= 14            # ~10/s
            assert 3 <= counts["btcusdt@depth10@500ms"] <= 6       # ~2/s
            assert 6 <= counts["btcusdt@depth20"] <= 10            # ~4/s (250 ms)
            for frames in depth.values():
                for x, y in zip(frames, frames[1:]):
                    assert y["pu"] == x["u"] and y["U"] == x["u"] + 1 and y["u"] > x["u"]
    asyncio.run(main())


def test_new_streams_are_silent_on_the_wrong_route():
    async def main():
        async with running_sim(rate=400, sim_liquidation_rate=20.0) as ports:
            wrong_pub = "btcusdt@markPrice@1s/btcusdt@forceOrder/btcusdt@kline_1m/btcusdt@aggTrade"
            wrong_mkt = "btcusdt@depth5@100ms/btcusdt@depth20/btcusdt@bookTicker"
            async with connect(ports.fws(f"/public/stream?streams=btcusdt@bookTicker/{wrong_pub}")) as p, \
                    connect(ports.fws(f"/market/stream?streams=btcusdt@aggTrade/{wrong_mkt}")) as m:
                deadline = time.monotonic() + 8
                seen_p, seen_m = set(), set()
                t0 = time.monotonic()
                while time.monotonic() - t0 < 2.0:
                    seen_p.add((await recv_json(p, deadline))["stream"])
                    seen_m.add((await recv_json(m, deadline))["stream"])
                assert seen_p == {"btcusdt@bookTicker"}
                assert seen_m == {"btcusdt@aggTrade"}
            # and on their own routes they deliver
            url = ports.fws("/market/stream?streams=btcusdt@markPrice@1s/btcusdt@kline_1m")
            async with connect(url) as m:
                deadline = time.monotonic() + 5
                seen = set()
                while seen != {"btcusdt@markPrice@1s", "btcusdt@kline_1m"}:
                    seen.add((await recv_json(m, deadline))["stream"])
    asyncio.run(main())


def test_kline_closes_at_the_boundary_with_exactly_the_trades_of_its_interval():
    """The venue clock is shifted so that a minute ends 2 s after the start; the market starts
    0.3 s after the sim, so the client sees every trade of that minute."""
    minute = 60_000_000_000
    now = time.time_ns()
    boundary = (now // minute + 2) * minute
    offset = boundary - 2_000_000_000 - now

    def clock():
        return time.time_ns() + offset

    market = Market(seed=11, trade_rate=400.0, start_price=65_000.0, start_ns=clock() + 300_000_000)
    first_a = market.next_ids()[0]
    b_ms = boundary // 1_000_000
    t_open = b_ms - 60_000

    async def main():
        async with running_sim(market=market, clock=clock) as ports:
            url = ports.fws("/market/stream?streams=btcusdt@aggTrade/btcusdt@kline_1m")
            async with connect(url) as ws:
                deadline = time.monotonic() + 8
                trades, opens = [], []
                while True:
                    raw = await recv(ws, deadline)
                    env = pairs(raw)
                    d = dict(env[1][1])
                    if env[0][1] == "btcusdt@aggTrade":
                        trades.append(d)
                        continue
                    assert parse_frame(raw, time.time_ns()).kind == "kline"
                    assert keys(env[1][1]) == ["e", "E", "s", "k"] and keys(d["k"]) == KLINE_KEYS
                    k = dict(d["k"])
                    if k["t"] != t_open:
                        continue
                    if not k["x"]:
                        opens.append((d["E"], k))
                        continue
                    closed, e_close = k, d["E"]
                    break
            async with httpx.AsyncClient(base_url=ports.fhttp, timeout=5) as c:
                rows = (await c.get("/fapi/v1/klines", params={
                    "symbol": "BTCUSDT", "interval": "1m", "limit": 3})).json()
            return trades, opens, closed, e_close, rows

    trades, opens, k, e_close, rows = asyncio.run(main())
    assert trades[0]["a"] == first_a                        # every trade since the start was seen
    mine = [t for t in trades if t_open <= t["T"] < b_ms]
    assert mine and all(t["T"] < b_ms for t in trades[:len(mine)])
    px = [Decimal(t["p"]) for t in mine]
    qty = [Decimal(t["q"]) for t in mine]
    buy = [not t["m"] for t in mine]
    assert k["t"] == t_open and k["T"] == b_ms - 1 and k["i"] == "1m" and k["s"] == "BTCUSDT"
    assert b_ms <= e_close < b_ms + 1000                    # closes right after the boundary
    assert Decimal(k["o"]) == px[0] and Decimal(k["c"]) == px[-1]
    assert Decimal(k["h"]) == max(px) and Decimal(k["l"]) == min(px)
    assert Decimal(k["v"]) == sum(qty)
    assert Decimal(k["q"]) == sum(p * q for p, q in zip(px, qty))
    assert Decimal(k["V"]) == sum(q for q, b in zip(qty, buy) if b)
    assert Decimal(k["Q"]) == sum(p * q for p, q, b in zip(px, qty, buy) if b)
    assert k["n"] == sum(t["l"] - t["f"] + 1 for t in mine)
    assert k["f"] == mine[0]["f"] and k["L"] == mine[-1]["l"] and k["B"] == "0"
    # pushed while open (every 250 ms when it changed), growing
    assert 3 <= len(opens) <= 9
    es = [e for e, _ in opens]
    assert all(b - a >= 200 for a, b in zip(es, es[1:]))
    assert all(Decimal(x["v"]) <= Decimal(y["v"]) for (_, x), (_, y) in zip(opens, opens[1:]))
    # REST: history row, the closed row (identical to the stream), the open row
    assert [r[0] for r in rows] == [t_open - 60_000, t_open, b_ms]
    closed_row = rows[1]
    assert closed_row == [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"],
                          k["V"], k["Q"], "0"]
    assert rows[0][4] == "65000.00"                         # history ends at the start price
    assert abs(Decimal(k["o"]) - Decimal(rows[0][4])) < Decimal("20")
