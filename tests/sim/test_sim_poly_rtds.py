"""The sim's RTDS over real sockets: the Chainlink BTC/USD topic shaped like the captures, one
observation a second on whole seconds, sent about a second later, a few dollars from the sim's
Binance futures mid; subscribe dump, filters, unknown topics, keepalive; the pure oracle."""
from __future__ import annotations

import asyncio
import json
import time

import orjson
import pytest

from actors.sim.polymarket import oracle as srt
from ipc.names import ASSETS
from tests.support.fixtures import POLYMARKET, need
from tests.support.poly_sim import poly_sim, rtv
from tests.support.sim import Reader, connect

SUB = {"action": "subscribe", "subscriptions": [
    {"topic": "crypto_prices_chainlink", "type": "*", "filters": "{\"symbol\":\"btc/usd\"}"}]}


def _updates(rd: Reader) -> list[dict]:
    return [d for d in rd.objs() if d.get("type") == "update"]


def test_rtds_snapshot_then_one_update_a_second_near_the_futures_mid():
    line = need(POLYMARKET / "rtds_crypto_prices_chainlink_update_btc_2026-02.jsonl").read_text()
    real = json.loads(line.splitlines()[0])

    async def main():
        async with poly_sim(window_sec=20) as sim:
            mids: list[tuple[int, float]] = []
            async with connect(sim.ws("/rtds")) as ws, connect(sim.ws("/rtds")) as ws2:
                rd, rd2 = Reader(ws, ping_every=1.0), Reader(ws2, ping_every=1.0)
                await rd.wait(lambda: rd.frames, 2, "the greeting")
                assert rd.frames[0][1] == ""                  # the venue's empty first frame
                await ws.send(orjson.dumps(SUB).decode())
                await ws2.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                    {"topic": "crypto_prices_chainlink", "type": "*"}]}).decode())   # unfiltered
                t_end = time.monotonic() + 8
                while len(_updates(rd)) < 4 or len(_updates(rd2)) < 1:
                    assert time.monotonic() < t_end, "4 updates not received in 8 s"
                    st = await sim.stats()
                    mids.append((st["now_ms"], st["chainlink"]["futures_mid"]))
                    await asyncio.sleep(0.05)
                # filtered: the btc/usd dump only; unfiltered: one dump per asset's stream
                every = {f"{a}/usd" for a in ASSETS.values()}
                assert sorted(d["payload"]["symbol"] for d in rd2.objs()
                              if d.get("type") == "subscribe") == sorted(every)
                for r in (rd, rd2):
                    snaps = [d for d in r.objs() if d.get("type") == "subscribe"
                             and (r is rd or d["payload"]["symbol"] == "btc/usd")]
                    assert len(snaps) == 1
                    sn = snaps[0]
                    assert list(sn) == ["payload", "timestamp", "topic", "type"]
                    assert sn["topic"] == "crypto_prices" and sn["payload"]["symbol"] == "btc/usd"
                    ts = [p["timestamp"] for p in sn["payload"]["data"]]
                    assert 50 <= len(ts) <= 60 and all(t % 1000 == 0 for t in ts)
                    assert ts == list(range(ts[0], ts[0] + 1000 * len(ts), 1000))
                    assert sn["timestamp"] - ts[-1] < 3000
                ups = _updates(rd)
                tu = [t for t, m in rd.frames if '"type":"update"' in m]
                span = tu[-1] - tu[0]                              # about one a second
                assert len(ups) - 2.0 < span < len(ups), (span, len(ups))
                obs = [u["payload"]["timestamp"] for u in ups]
                assert all(t % 1000 == 0 for t in obs)
                assert obs == list(range(obs[0], obs[0] + 1000 * len(obs), 1000))  # one a second
                assert obs[0] > sn["payload"]["data"][-1]["timestamp"] - 1000
                for u in ups:
                    assert list(u) == list(real)
                    assert list(u["payload"]) == list(real["payload"])
                    p = u["payload"]
                    assert p["symbol"] == "btc/usd" and isinstance(p["value"], float)
                    assert int(p["full_accuracy_value"]) / 10 ** 18 == p["value"]
                    assert 900 <= u["timestamp"] - p["timestamp"] <= 2500     # 0.9-1.5 s + load
                    assert u["connection_id"] == ups[0]["connection_id"]
                    # within a few dollars of the futures mid around the observation time (the
                    # observations since the test sampled the mid: the first may be older)
                    near = min(mids, key=lambda m: abs(m[0] - p["timestamp"]))
                    if p["timestamp"] >= mids[0][0]:
                        assert abs(near[0] - p["timestamp"]) < 300
                    assert abs(p["value"] - near[1]) < 40, (p["value"], near)
                    d = rtv.parse_frame(orjson.dumps(u), 1)
                    assert d.kind == "price" and d.recs[0][4] == p["value"]
                    assert d.recs[0][0] == p["timestamp"] * 1_000_000
                ups2 = _updates(rd2)
                assert ups2 and ups2[0]["connection_id"] != ups[0]["connection_id"]
                assert {u["payload"]["timestamp"] for u in ups2} & set(obs)
                for t in rd.texts():
                    assert rtv.parse_frame(t, 0).kind in ("control", "snapshot", "price")
                assert "PONG" in rd.texts()
                # an unknown topic is refused with the venue's error frame; known ones stay silent
                n = len(rd.frames)
                await ws.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                    {"topic": "no_such_topic", "type": "update"}]}).decode())
                await rd.wait(lambda: any('"statusCode"' in t for t in rd.texts()[n:]), 2)
                err = next(json.loads(t) for t in rd.texts()[n:] if '"statusCode"' in t)
                assert err["statusCode"] == 401 and "no_such_topic" in err["body"]["message"]
                # unsubscribe stops the updates
                await ws2.send(orjson.dumps({**SUB, "action": "unsubscribe"}).decode())
                await asyncio.sleep(0.1)
                k = len(_updates(rd2))
                await rd.wait(lambda: len(_updates(rd)) >= len(ups) + 2, 4, "more updates")
                assert len(_updates(rd2)) == k
                rd.stop()
                rd2.stop()
    asyncio.run(main())


def test_rtds_idle_client_is_closed_after_the_limit():
    async def main():
        async with poly_sim(window_sec=20, sim_rtds_idle_sec=1.0) as sim:
            async with connect(sim.ws("/rtds")) as quiet, connect(sim.ws("/rtds")) as alive:
                rq, ra = Reader(quiet), Reader(alive, ping_every=0.3)
                for ws in (quiet, alive):
                    await ws.send(orjson.dumps(SUB).decode())
                t0 = time.monotonic()
                await rq.wait(lambda: rq.closed is not None, 3, "idle close")
                assert 0.8 < time.monotonic() - t0 < 2.5
                await asyncio.sleep(0.5)
                assert ra.closed is None
                st = await sim.stats()
                assert st["idle_closed"]["rtds"] == 1 and st["connections"]["rtds"] == 1
                ra.stop()
    asyncio.run(main())


def test_oracle_is_one_fixed_observation_per_second_and_exact_in_1e18():
    o = srt.Oracle(5, 1_000_000_000_500_000_000, 65000.0, sigma_1s=1e-4)
    assert o.value_at(o.first - 1) == pytest.approx(65000 * (1 - 0.5e-4))
    assert o.value_at(o.first - 86_400) is not None        # a day of past for the price to beat
    t = 1_000_000_000_500_000_000
    mid = 65000.0
    seen = {}
    for i in range(1, 200):
        t += 100_000_000
        mid += 0.7 if (i // 30) % 2 else -0.5
        o.sample(t, mid)
        for ms, v in o.due(t):
            assert ms not in seen and ms % 1000 == 0
            seen[ms] = v
            assert o.value_at(ms // 1000) == v
            assert int(srt.full_accuracy(v)) / 10 ** 18 == v
            assert abs(v - mid) < 25         # lagged: the mid moves $7/s here
    ts = sorted(seen)
    assert ts == list(range(ts[0], ts[0] + 1000 * len(ts), 1000)) and len(ts) >= 17
    assert o.twap(ts[-1] // 1000, 5) == pytest.approx(sum(seen[m] for m in ts[-5:]) / 5)
