"""Fault injection on the sim's Polymarket port, each observed by a real client, and its stats."""
from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import orjson

from tests.support.poly_sim import Books, pmv, poly_sim, rtv
from tests.support.sim import Reader, connect

FAST = {"sim_poly_update_rate": 40.0, "sim_poly_trade_rate": 2.0}


def _sub(*tokens) -> str:
    return orjson.dumps({"assets_ids": list(tokens), "type": "market",
                         "custom_feature_enabled": True}).decode()


def _tokens_of(d: dict) -> set[str]:
    if "price_changes" in d:
        return {e["asset_id"] for e in d["price_changes"]}
    if "assets_ids" in d:
        return set(d["assets_ids"])
    return {d["asset_id"]}


async def _open_clob(sim, *tokens, ping_every=None):
    ws = await connect(sim.ws("/ws/market")).__aenter__()
    rd = Reader(ws, ping_every=ping_every)
    await ws.send(_sub(*tokens))
    await rd.wait(lambda: rd.frames, 3, "the dump")
    return ws, rd


def test_stall_one_asset_then_everything_pongs_still_flow():
    async def main():
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            up, down = w["up_token"], w["down_token"]
            ws, rd = await _open_clob(sim, up, down)
            rt = await connect(sim.ws("/rtds")).__aenter__()
            rr = Reader(rt, ping_every=1.0)
            await rt.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                {"topic": "crypto_prices_chainlink", "type": "*"}]}).decode())
            # one asset: its entries vanish, the other token's keep flowing
            ans = await sim.fault("stall", seconds=1.0, asset=up)
            assert ans["ok"] and ans["kind"] == "stall"
            t0 = time.monotonic()
            await rd.wait(lambda: time.monotonic() > t0 + 0.9, 2)
            during = rd.objs(since=t0 + 0.05)
            assert during and all(up not in _tokens_of(d) for d in during)
            assert any(down in _tokens_of(d) for d in during)
            await rd.wait(lambda: any(up in _tokens_of(d) for d in rd.objs(since=t0 + 1.0)), 3,
                          "UP frames after the stall")
            # everything: no data frame on either socket, but PING is answered
            ans = await sim.fault("stall", seconds=0.8)
            t1 = time.monotonic()
            await ws.send("PING")
            await rd.wait(lambda: "PONG" in rd.texts(since=t1), 1, "PONG during a stall")
            await rd.wait(lambda: time.monotonic() > t1 + 0.75, 2)
            assert rd.objs(since=t1 + 0.02) == []
            assert [d for d in rr.objs(since=t1 + 0.02) if d.get("type") == "update"] == []
            await rd.wait(lambda: rd.objs(since=t1 + 0.8), 3, "frames after the stall")
            await rr.wait(lambda: [d for d in rr.objs(since=t1 + 0.8) if d.get("type") == "update"],
                          3, "RTDS after the stall")
            st = await sim.stats()
            assert st["faults"]["applied"]["stall"] == 2
            rd.stop()
            rr.stop()
            await ws.close()
            await rt.close()
    asyncio.run(main())


def test_stall_rtds_only():
    async def main():
        # lead: the subscribed window must outlive the test (its tokens go quiet at its end)
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            ws, rd = await _open_clob(sim, w["up_token"])
            rt = await connect(sim.ws("/rtds")).__aenter__()
            rr = Reader(rt, ping_every=1.0)
            await rt.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                {"topic": "crypto_prices_chainlink", "type": "*"}]}).decode())
            await rr.wait(lambda: any(d.get("type") == "update" for d in rr.objs()), 3)
            await sim.fault("stall", seconds=2.0, stream="rtds")
            t0 = time.monotonic()
            await rd.wait(lambda: time.monotonic() > t0 + 1.9, 3)
            assert not [d for d in rr.objs(since=t0 + 0.02) if d.get("type") == "update"]
            # the CLOB socket kept flowing (a quiet book may say nothing for a moment: wait for it)
            await rd.wait(lambda: rd.objs(since=t0), 5, "CLOB data while RTDS was stalled")
            await rr.wait(lambda: [d for d in rr.objs(since=t0 + 2.0) if d.get("type") == "update"],
                          3, "RTDS after the stall")
            rd.stop()
            rr.stop()
            await ws.close()
            await rt.close()
    asyncio.run(main())


def test_silent_book_then_resync_matches_rest():
    async def main():
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            up, down = w["up_token"], w["down_token"]
            ws, rd = await _open_clob(sim, up, down)
            await sim.fault("silent_book", asset=up, seconds=1.2)
            t0 = time.monotonic()
            await rd.wait(lambda: time.monotonic() > t0 + 1.1, 2)
            during = rd.objs(since=t0 + 0.05)
            assert all(up not in _tokens_of(d) for d in during)
            assert sum(down in _tokens_of(d) for d in during) > 5
            # the silence ends with a full book of the token (2026 shape: tick_size, last trade);
            # a trade's short book may come first in the same step, as the venue resends one
            def resync():
                return next((d for d in rd.objs(since=t0 + 1.0) if d["event_type"] == "book"
                             and d["asset_id"] == up and "tick_size" in d), None)
            await rd.wait(lambda: resync() is not None, 3, "the resync book")
            assert "last_trade_price" in resync()
            # rebuilt from that book on, the UP book equals REST at the same hash
            r = await sim.get("/clob/book", token_id=up)
            h = r.json()["hash"]

            def seen():
                b2 = Books([up])
                for d in rd.objs(since=t0 + 1.0):
                    b2.apply(d)
                return b2 if h in b2.at_hash else None
            await rd.wait(lambda: seen() is not None, 3, "REST hash on the socket")
            _t, bids, asks = seen().at_hash[h]
            rb = r.json()
            assert bids == sorted(((float(x["price"]), float(x["size"])) for x in rb["bids"]),
                                  reverse=True)
            assert asks == sorted((float(x["price"]), float(x["size"])) for x in rb["asks"])
            rd.stop()
            await ws.close()
    asyncio.run(main())


def test_malformed_frames_fail_the_consumer_parsers_then_good_ones_follow():
    async def main():
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            ws, rd = await _open_clob(sim, w["up_token"], w["down_token"])
            rt = await connect(sim.ws("/rtds")).__aenter__()
            rr = Reader(rt, ping_every=1.0)
            await rt.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                {"topic": "crypto_prices_chainlink", "type": "*",
                 "filters": "{\"symbol\":\"btc/usd\"}"}]}).decode())
            await rr.wait(lambda: len(rr.frames) >= 2, 3, "the RTDS snapshot")
            n, nr = len(rd.frames), len(rr.frames)
            await sim.fault("malformed", count=4, stream="market")
            await sim.fault("malformed", count=2, stream="rtds")
            await rd.wait(lambda: len(rd.frames) >= n + 30, 3, "CLOB frames")
            await rr.wait(lambda: len([t for t in rr.texts()[nr:] if t != "PONG"]) >= 4, 6,
                          "RTDS frames")
            verdicts = []
            for t in rd.texts()[n:]:
                try:
                    pmv.parse_frame(t, 0)
                    verdicts.append("ok")
                except pmv.FrameError:
                    verdicts.append("bad")
            i = verdicts.index("bad")               # frames sent before the fault landed are fine
            assert verdicts[i:i + 4] == ["bad"] * 4 and "bad" not in verdicts[i + 4:], verdicts
            assert len(verdicts) > i + 4
            rv = []
            for t in [t for t in rr.texts()[nr:] if t != "PONG"]:
                try:
                    rv.append(rtv.parse_frame(t, 0).kind)
                except rtv.FrameError:
                    rv.append("bad")
            i = rv.index("bad")
            assert rv[i:i + 3] == ["bad", "bad", "price"] and "bad" not in rv[i + 2:], rv
            st = await sim.stats()
            assert st["faults"]["applied"]["malformed"] == 2 and st["faults"]["malformed_pending"] == {}
            assert st["messages"]["malformed"] == 6
            rd.stop()
            rr.stop()
            await ws.close()
            await rt.close()
    asyncio.run(main())


def test_drop_and_disconnect():
    async def main():
        async with poly_sim(window_sec=30, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            ws, rd = await _open_clob(sim, w["up_token"])
            rt = await connect(sim.ws("/rtds")).__aenter__()
            rr = Reader(rt, ping_every=1.0)
            ans = await sim.fault("drop", stream="market")
            assert ans["connections"] == 1
            await rd.wait(lambda: rd.closed is not None, 2, "CLOB drop")
            assert getattr(rd.closed, "rcvd", None) is None           # no close frame: aborted
            await asyncio.sleep(0.2)
            assert rr.closed is None
            ans = await sim.fault("disconnect")
            assert ans["connections"] == 1
            await rr.wait(lambda: rr.closed is not None, 2, "RTDS disconnect")
            assert rt.close_code == 1001 and rt.protocol.close_rcvd.code == 1001
            st = await sim.stats()
            assert st["connections"] == {"clob": 0, "rtds": 0}
    asyncio.run(main())


def test_forced_tick_size_change_then_fresh_books():
    async def main():
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            up, down = w["up_token"], w["down_token"]
            ws, rd = await _open_clob(sim, up, down)
            tick0 = (await sim.stats())["books"][up]["tick_size"]
            t0 = time.monotonic()
            ans = await sim.fault("tick_size", asset=up)
            assert ans["tick_size"] != tick0
            await rd.wait(lambda: sum(d["event_type"] == "book" and "tick_size" in d
                                      for d in rd.objs(since=t0)) >= 2, 3, "the fresh books")
            after = rd.objs(since=t0)
            tsc = [d for d in after if d["event_type"] == "tick_size_change"]
            assert {d["asset_id"] for d in tsc} == {up, down}
            assert all(d["old_tick_size"] == tick0 and d["new_tick_size"] == ans["tick_size"]
                       for d in tsc)
            i_tick = max(after.index(d) for d in tsc)
            fresh = [d for d in after[i_tick:] if d["event_type"] == "book" and "tick_size" in d]
            assert {d["asset_id"] for d in fresh[:2]} == {up, down}
            assert all(d["tick_size"] == ans["tick_size"] for d in fresh[:2])
            # nothing for the market between the change and its fresh books
            first_book = after.index(fresh[0])
            assert all(d["event_type"] in ("tick_size_change", "book")
                       for d in after[i_tick:first_book + 1])
            for d in tsc:
                m = pmv.parse_frame(orjson.dumps(d), 0)[0]
                assert m.kind == "tick_size_change"
            # the stream after the books stays consistent with a rebuilt book
            await rd.wait(lambda: len(rd.objs(since=t0)) > len(after) + 20, 3)
            books = Books([up, down])
            for d in rd.objs(since=t0):
                books.apply(d)
            assert books.checked > 5 and not books.bad_best
            rd.stop()
            await ws.close()
    asyncio.run(main())


def test_gamma404_then_the_market_and_thin_book():
    async def main():
        # a slow book, so that nothing moves between the fault and the REST answer
        async with poly_sim(window_sec=30, lead=25, sim_poly_update_rate=0.5,
                            sim_poly_trade_rate=0.05) as sim:
            w = (await sim.stats())["schedule"]["current"]
            await sim.fault("gamma404", count=2)
            got = [(await sim.get("/gamma/markets", slug=w["slug"])).json() for _ in range(3)]
            assert got[0] == [] and got[1] == [] and got[2][0]["slug"] == w["slug"]
            assert (await sim.stats())["faults"]["gamma_empty_pending"] == 0
            # a thin book: one side's best 10 levels hold 5-8 shares each
            await sim.fault("thin_book", asset=w["up_token"], seconds=3)
            rb = (await sim.get("/clob/book", token_id=w["up_token"])).json()
            sides = [sorted(((float(x["price"]), float(x["size"])) for x in rb[s]),
                            reverse=(s == "bids"))[:10] for s in ("bids", "asks")]
            assert any(all(sz <= 8 for _p, sz in side) for side in sides), sides
            # bad fault requests are 400 with a reason
            async with httpx.AsyncClient() as c:
                for body in ({"kind": "nope"}, {"kind": "silent_book", "seconds": 1},
                             {"kind": "tick_size", "asset": "123"}, {"kind": "stall"}):
                    r = await c.post(sim.http + "/__sim/fault", json=body)
                    assert r.status_code == 400 and r.json()["ok"] is False, body
    asyncio.run(main())


def test_stats_shape():
    async def main():
        async with poly_sim(window_sec=20, lead=15, **FAST) as sim:
            w = (await sim.stats())["schedule"]["current"]
            ws, rd = await _open_clob(sim, w["up_token"], w["down_token"])
            await rd.wait(lambda: len(rd.frames) > 20, 3)
            n_read = len(rd.frames)            # (the reader goes on reading meanwhile)
            st = await sim.stats()
            assert st["venue"] == "polymarket" and st["port"] == sim.port
            assert set(st["schedule"]) >= {"series", "window_sec", "slug_prefix", "current", "next"}
            for k in ("slug", "start", "end", "condition_id", "up_token", "down_token"):
                assert k in st["schedule"]["current"] and k in st["schedule"]["next"]
            assert st["schedule"]["next"]["start"] == st["schedule"]["current"]["end"]
            bk = st["books"][w["up_token"]]
            assert bk["subscribers"] == 1 and len(bk["hash"]) == 40 and bk["live"] is True
            assert st["messages"]["book"] >= 2 and st["messages"]["price_change"] > 0
            assert st["frames_sent"] >= n_read
            assert st["connections"]["clob"] == 1
            assert str(w["start"]) in st["chainlink"]["window_start_prices"]
            assert st["chainlink"]["last"]["timestamp"] % 1000 == 0
            rb = (await sim.get("/clob/book", token_id=w["up_token"])).json()
            v2 = (await sim.stats())["books"][w["up_token"]]["version"]
            assert rb["hash"] in {hashlib.sha1(f"{w['up_token']}:{v}".encode()).hexdigest()
                                  for v in range(bk["version"], v2 + 1)}
            rd.stop()
            await ws.close()
    asyncio.run(main())
