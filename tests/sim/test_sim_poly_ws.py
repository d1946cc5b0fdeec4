"""The sim's CLOB market WebSocket protocol over real sockets: the live subscribe / unsubscribe
operations (dumps, nothing more for dropped tokens, the per-connection accounting a client's
subscription growth is checked with), and new_market broadcast to custom-feature clients."""
from __future__ import annotations

import asyncio
import json

import orjson

from tests.support.fixtures import POLYMARKET, need
from tests.support.poly_sim import pmv, poly_sim
from tests.support.sim import Reader, connect

FAST = {"sim_poly_update_rate": 40.0, "sim_poly_trade_rate": 2.0}


def _tokens_of(d: dict) -> set[str]:
    if "price_changes" in d:
        return {e["asset_id"] for e in d["price_changes"]}
    if "assets_ids" in d:
        return set(d["assets_ids"])
    return {d["asset_id"]} if "asset_id" in d else set()


def _dumps(rd: Reader) -> list[list[str]]:
    return [[b["asset_id"] for b in json.loads(t)] for t in rd.texts() if t.startswith("[")]


def test_subscribe_and_unsubscribe_operations_on_a_live_connection():
    async def main():
        async with poly_sim(window_sec=30, lead=25, **FAST) as sim:
            sch = (await sim.stats())["schedule"]
            cur, nxt = sch["current"], sch["next"]
            old = [cur["up_token"], cur["down_token"]]
            new = [nxt["up_token"], nxt["down_token"]]
            async with connect(sim.ws("/ws/market")) as ws:
                rd = Reader(ws, ping_every=3.0)
                await ws.send(pmv.subscribe_msg(old).decode())
                await rd.wait(lambda: _dumps(rd) == [old], 3, "the first dump")
                # add the next window's tokens: their dump, alone
                await ws.send(pmv.update_msg(new, "subscribe").decode())
                await rd.wait(lambda: len(_dumps(rd)) == 2, 3, "the added tokens' dump")
                assert _dumps(rd)[1] == new
                await rd.wait(lambda: any(_tokens_of(d) & set(new) for d in rd.objs()
                                          if d.get("event_type") != "book"), 5, "new tokens' data")
                st = await sim.stats()
                c = st["clob_subscriptions"]["connections"][0]
                assert (c["subscribed"], c["max_subscribed"], c["initial"], c["subscribe"]) == (4, 4, 1, 1)
                # drop the old window's tokens: after the PONG of a later PING, none of their data
                await ws.send(pmv.update_msg(old, "unsubscribe").decode())
                await ws.send("PING")
                await rd.wait(lambda: "PONG" in rd.texts(), 3, "PONG")
                n = rd.texts().index("PONG")
                await rd.wait(lambda: sum(bool(_tokens_of(d) & set(new))
                                          for d in Reader.objs_of(rd.texts()[n + 1:])) >= 5, 5,
                              "more of the new tokens' data")
                after = Reader.objs_of(rd.texts()[n + 1:])
                assert not [d for d in after if _tokens_of(d) & set(old)], after[:2]
                st = await sim.stats()
                subs = st["clob_subscriptions"]
                assert (subs["initial"], subs["subscribe_ops"], subs["unsubscribe_ops"],
                        subs["resent_initial"]) == (1, 1, 1, 0)
                c = subs["connections"][0]
                assert (c["subscribed"], c["max_subscribed"], c["unsubscribe"]) == (2, 4, 1)
                assert c["custom_feature_enabled"] is True
                assert st["books"][old[0]]["subscribers"] == 0
                assert st["books"][new[0]]["subscribers"] == 1
                # an operation whose dump is declined, then an unknown operation (counted as bad)
                await ws.send(orjson.dumps({"assets_ids": old, "operation": "subscribe",
                                            "initial_dump": False}).decode())
                await ws.send(orjson.dumps({"assets_ids": old, "operation": "replace"}).decode())
                await ws.send("PING")
                await rd.wait(lambda: rd.texts().count("PONG") >= 2, 3, "second PONG")
                assert len(_dumps(rd)) == 2
                st = await sim.stats()
                assert st["clob_subscriptions"]["connections"][0]["subscribed"] == 4
                assert st["bad_client_messages"] == 1
                rd.stop()
            st = await sim.stats()
            assert st["clob_subscriptions"]["connections"] == []
            assert st["books"][new[0]]["subscribers"] == 0
    asyncio.run(main())


def test_new_market_is_broadcast_to_custom_feature_clients_when_a_window_is_listed():
    real = json.loads(need(POLYMARKET / "ws_new_market_2025.json").read_text())

    async def main():
        # 10 s windows: one is listed (a day ahead) at every boundary, for every asset
        async with poly_sim(window_sec=10, lead=1.5) as sim:
            sch = (await sim.stats())["schedule"]
            cur = sch["current"]
            async with connect(sim.ws("/ws/market")) as cw, connect(sim.ws("/ws/market")) as pw:
                cr, pr = Reader(cw, ping_every=3.0), Reader(pw, ping_every=3.0)
                await cw.send(pmv.subscribe_msg([cur["up_token"]]).decode())
                await pw.send(orjson.dumps({"assets_ids": [cur["up_token"]],
                                            "type": "market"}).decode())
                news = lambda: [d for d in cr.objs() if d.get("event_type") == "new_market"]  # noqa: E731
                await cr.wait(lambda: len(news()) >= 4, 5, "new_market for each asset")
                listed_start = cur["end"] + 86_400
                got = news()[:4]
                assert sorted(d["slug"] for d in got) == sorted(
                    f"{a}-updown-5m-{listed_start}" for a in ("btc", "eth", "sol", "xrp"))
                for d in got:
                    assert list(d) == list(real) and list(d["event_message"]) == list(real["event_message"])
                    assert d["outcomes"] == ["Up", "Down"] and d["active"] is True
                    assert d["assets_ids"] == d["clob_token_ids"] and d["market"] == d["condition_id"]
                    msg = pmv.parse_frame(orjson.dumps(d), 0)[0]
                    assert msg.kind == "new_market" and msg.slug == d["slug"]
                    # Gamma answers the announced market with the same ids
                    m = (await sim.get("/gamma/markets", slug=d["slug"])).json()[0]
                    assert m["conditionId"] == d["market"]
                    assert json.loads(m["clobTokenIds"]) == d["assets_ids"]
                    assert m["question"] == d["question"]
                # the plain client got none (its PONG after the announcements comes first)
                await pw.send("PING")
                await pr.wait(lambda: "PONG" in pr.texts(), 3, "PONG")
                assert not [d for d in pr.objs() if d.get("event_type") == "new_market"]
                assert (await sim.stats())["listed"] >= 4
                cr.stop()
                pr.stop()
    asyncio.run(main())
