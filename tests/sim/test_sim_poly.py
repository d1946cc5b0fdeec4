"""The sim's Polymarket port over real sockets: Gamma and CLOB REST shaped like the captures, the
market WebSocket's dump and stream consistent with a rebuilt book and with REST, the books
tracking the fair probability of the sim's own BTC path, keepalive, and the window rollover."""
from __future__ import annotations

import asyncio
import json
import math
import time

import orjson
import pytest

from actors.sim.polymarket import books as pm
from actors.sim.market import MarketParams
from ipc.names import ASSETS
from tests.support.fixtures import POLYMARKET, need
from tests.support.poly_sim import Books, gmv, pmv, poly_sim
from tests.support.sim import Reader, connect


def _capture(name: str):
    return json.loads(need(POLYMARKET / name).read_text())


def _same_types(sim, real, where=""):
    """Every key of the capture is in the sim's object with the same JSON type (recursively)."""
    for k, v in real.items():
        assert k in sim, f"{where}{k} missing"
        s = sim[k]
        if isinstance(v, bool) or isinstance(s, bool):
            assert type(s) is type(v), f"{where}{k}: {s!r} vs {v!r}"
        elif isinstance(v, (int, float)):
            assert type(s) is type(v), f"{where}{k}: {type(s).__name__} vs {type(v).__name__}"
        elif isinstance(v, dict):
            _same_types(s, v, f"{where}{k}.")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            assert isinstance(s, list) and s, f"{where}{k}"
            _same_types(s[0], v[0], f"{where}{k}[0].")
        else:
            assert type(s) is type(v), f"{where}{k}: {type(s).__name__} vs {type(v).__name__}"


def test_gamma_markets_and_events_shaped_like_the_capture():
    real = _capture("gamma_market_btc_updown_5m_2026-03.json")
    twap = _capture("gamma_market_btc_updown_5m_twap_2026-08_reduced.json")

    async def main():
        async with poly_sim(window_sec=20, lead=15) as sim:    # no rollover during the test
            st = await sim.stats()
            sch = st["schedule"]
            assert sch["series"] == "5m" and sch["slug_prefix"] == "btc-updown-5m"
            for which in ("current", "next"):
                w = sch[which]
                r = await sim.get("/gamma/markets", slug=w["slug"])
                assert r.status_code == 200 and r.headers["content-type"] == "application/json"
                body = r.json()
                assert isinstance(body, list) and len(body) == 1
                m = body[0]
                # same keys, same order as the capture, then the 2026-08 fee/TWAP objects
                assert list(m) == list(real) + ["feeSchedule", "cryptoMarketConfig"]
                ev_keys = list(m["events"][0])
                if "eventMetadata" in ev_keys:        # after the start + delay: appended
                    assert ev_keys[-1] == "eventMetadata" and which == "current"
                    assert sim.now_s() >= w["start"] + 10.0 - 0.5
                    ev_keys.pop()
                assert ev_keys == list(real["events"][0])
                _same_types(m, real)
                _same_types(m, twap)
                assert m["feeSchedule"] == twap["feeSchedule"]
                assert m["cryptoMarketConfig"]["twapEnabled"] is True
                assert m["cryptoMarketConfig"]["twapLookbackSeconds"] == 60
                assert m["resolutionSource"] == twap["resolutionSource"]
                assert m["orderPriceMinTickSize"] == 0.01 and m["orderMinSize"] == 5
                assert m["slug"] == w["slug"] and m["conditionId"] == w["condition_id"]
                assert m["conditionId"].startswith("0x") and len(m["conditionId"]) == 66
                ids = json.loads(m["clobTokenIds"])
                assert ids == [w["up_token"], w["down_token"]]
                assert all(len(t) == 77 and t.isdigit() for t in ids)
                assert json.loads(m["outcomes"]) == ["Up", "Down"]
                assert m["clobTokenIds"].startswith('["') and '", "' in m["clobTokenIds"]
                start = int(m["slug"].rsplit("-", 1)[1])
                assert start == w["start"] and start % 20 == 0
                assert m["eventStartTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
                assert m["endDate"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 20))
                listed = time.strptime(m["startDate"][:19], "%Y-%m-%dT%H:%M:%S")
                assert abs(time.mktime(listed) - time.mktime(time.gmtime(start - 86400))) < 120
                assert m["active"] is True and m["closed"] is False and m["acceptingOrders"] is True
                wi = gmv.parse_market(r.content, True, w["slug"])
                assert (wi.up_token, wi.down_token, wi.start_s) == (ids[0], ids[1], start)
                assert wi.fee.rate == 0.07 and wi.twap_enabled and wi.twap_lookback_sec == 60
                # the event endpoint: the event with markets[]
                r = await sim.get("/gamma/events", slug=w["slug"])
                ev = r.json()
                assert len(ev) == 1 and ev[0]["slug"] == w["slug"]
                assert ev[0]["markets"][0]["conditionId"] == w["condition_id"]
                assert "events" not in ev[0]["markets"][0]
            # unknown, wrong series, out of range (3 days ahead), not aligned: [] as Gamma does
            cur = sch["current"]["start"]
            for slug in ("nope", "btc-updown-15m-%d" % cur, "btc-updown-5m-%d" % (cur + 3 * 86400),
                         "btc-updown-5m-%d" % (cur + 7)):
                r = await sim.get("/gamma/markets", slug=slug)
                assert r.status_code == 200 and r.json() == [], slug
                assert (await sim.get("/gamma/events", slug=slug)).json() == []
            # a window a day ahead is listed
            r = await sim.get("/gamma/markets", slug="btc-updown-5m-%d" % (cur + 86400 - 20))
            assert len(r.json()) == 1
    asyncio.run(main())


@pytest.mark.parametrize("twap", [True, False])
def test_price_to_beat_appears_after_the_delay_and_follows_the_chainlink_rule(twap):
    """Point markets: the observation of the start second; TWAP markets (the default): the mean of
    the observations of the 60 seconds (start - 60, start], as received over RTDS."""
    async def main():
        # the next window starts 2.5 s after the subscription: its 60 s span is in the snapshot
        # (about a minute) and the updates
        async with poly_sim(window_sec=20, lead=2.5, sim_poly_meta_delay_sec=2.0,
                            sim_poly_twap=twap) as sim:
            st = await sim.stats()
            nxt = st["schedule"]["next"]
            assert st["schedule"]["settles"]["method"] == ("twap" if twap else "point")
            rt = await connect(sim.ws("/rtds")).__aenter__()
            rd = Reader(rt, ping_every=2.0)
            await rt.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                {"topic": "crypto_prices_chainlink", "type": "*",
                 "filters": "{\"symbol\":\"btc/usd\"}"}]}).decode())
            seen_none = False
            deadline = time.monotonic() + 8
            while True:
                assert time.monotonic() < deadline, "priceToBeat never appeared"
                m = (await sim.get("/gamma/markets", slug=nxt["slug"])).json()[0]
                md = m["events"][0].get("eventMetadata")
                t = sim.now_s()
                if md is None:
                    assert t < nxt["start"] + 2.0 + 0.5
                    seen_none = True
                else:
                    assert t >= nxt["start"] + 2.0 - 0.05
                    break
                await asyncio.sleep(0.1)
            assert seen_none
            ptb = md["priceToBeat"]
            st = await sim.stats()
            assert st["chainlink"]["window_start_prices"][str(nxt["start"])] == ptb
            assert st["schedule"]["current"]["price_to_beat"] == ptb
            wi = gmv.parse_market([m], True)
            assert wi.price_to_beat == ptb and wi.twap_enabled is twap
            # what RTDS delivered: the snapshot's points, then the updates
            def observed() -> dict[int, float]:
                got = {}
                for d in rd.objs():
                    if d.get("type") == "subscribe":
                        got.update({p["timestamp"]: p["value"] for p in d["payload"]["data"]})
                    elif d.get("type") == "update":
                        got[d["payload"]["timestamp"]] = d["payload"]["value"]
                return got
            start_ms = nxt["start"] * 1000
            await rd.wait(lambda: start_ms in observed(), 3, "RTDS observation of the window start")
            obs = observed()
            if twap:
                span = [obs[start_ms - 1000 * k] for k in range(59, -1, -1)]
                assert ptb == sum(span) / 60
                assert ptb != obs[start_ms]
            else:
                assert ptb == obs[start_ms]
            rd.stop()
            await rt.close()
    asyncio.run(main())


def test_ws_dump_stream_and_rest_book_agree():
    real_book = _capture("ws_book_2026_captured.json")
    real_rest = _capture("clob_book_rest_2026_empty_ask.json")
    real_pc = _capture("ws_price_change_2026_batch.json")
    real_lt = _capture("ws_last_trade_price_2026_with_tx_hash.json")
    real_bba = _capture("ws_best_bid_ask_2026.json")

    async def main():
        async with poly_sim(window_sec=30, lead=25, sim_poly_update_rate=25.0,
                            sim_poly_trade_rate=3.0) as sim:
            w = (await sim.stats())["schedule"]["current"]
            up, down = w["up_token"], w["down_token"]
            async with connect(sim.ws("/ws/market")) as ws:
                rd = Reader(ws)
                await ws.send(orjson.dumps({"assets_ids": [up], "type": "market",
                                            "custom_feature_enabled": True}).decode())
                await rd.wait(lambda: rd.frames, 3, "the dump")
                first = rd.frames[0][1]
                dump = json.loads(first)
                assert isinstance(dump, list) and [b["asset_id"] for b in dump] == [up]
                # a re-sent initial message is ignored (no dump, no subscription): the PONG of
                # the PING sent after it comes first
                await ws.send(orjson.dumps({"assets_ids": [down], "type": "market",
                                            "custom_feature_enabled": True}).decode())
                await ws.send("PING")
                await rd.wait(lambda: "PONG" in rd.texts(), 3, "PONG")
                # down is not subscribed: no frame is about it alone (a price_change batch of the
                # market names both tokens, as the venue's does, and reaches up's subscribers)
                for o in rd.objs():
                    ids = ({c["asset_id"] for c in o.get("price_changes", ())}
                           or {o.get("asset_id")})
                    assert down not in ids or up in ids, o
                subs = (await sim.stats())["clob_subscriptions"]
                assert subs["resent_initial"] == 1 and subs["connections"][0]["subscribed"] == 1
                # the live operation adds an asset: its dump comes alone
                await ws.send(pmv.update_msg([down], "subscribe").decode())
                await rd.wait(lambda: any(t.startswith("[") and down in t for t in rd.texts()), 3)
                for b in (dump[0], next(json.loads(t) for t in rd.texts()
                                        if t.startswith("[") and down in t)[0]):
                    assert list(b) == list(real_book)
                    px_b = [float(x["price"]) for x in b["bids"]]
                    px_a = [float(x["price"]) for x in b["asks"]]
                    assert px_b == sorted(px_b) and px_a == sorted(px_a, reverse=True)  # best last
                    assert b["tick_size"] in ("0.01", "0.001") and len(b["hash"]) == 40
                    assert all(isinstance(x["size"], str) for x in b["bids"] + b["asks"])
                n_of = lambda kind: sum(t.count(f'"event_type":"{kind}"') for t in rd.texts())   # noqa: E731
                # enough of each kind for the checks below (counted, not timed: a loaded machine is slower)
                await rd.wait(lambda: len(rd.frames) > 60 and any(
                    '"last_trade_price","transaction_hash"' in t for t in rd.texts())
                    and n_of("price_change") > 20 and n_of("best_bid_ask") > 5, 20,
                    "a trade and some traffic")
                books = Books([up, down])
                kinds: dict[str, int] = {}

                def check(d):
                    kinds[d["event_type"]] = kinds.get(d["event_type"], 0) + 1
                    keyset = {"price_change": real_pc, "last_trade_price": real_lt,
                              "best_bid_ask": real_bba}.get(d["event_type"])
                    if keyset is not None:
                        assert list(d) == list(keyset), d
                    if d["event_type"] == "price_change":
                        assert [list(e) for e in d["price_changes"]] == \
                            [list(real_pc["price_changes"][0])] * len(d["price_changes"])
                        # each change comes with its mirror on the other token
                        es = d["price_changes"]
                        assert {e["asset_id"] for e in es} == {up, down}
                        assert es[0]["side"] != es[1]["side"] and es[0]["size"] == es[1]["size"]
                        assert abs(float(es[0]["price"]) + float(es[1]["price"]) - 1) < 1e-9

                books.check = check
                _rebuild(books, rd)
                assert kinds.get("price_change", 0) > 20 and kinds.get("best_bid_ask", 0) > 5
                assert kinds.get("last_trade_price", 0) >= 1, kinds
                assert books.checked > 20 and not books.bad_best, books.bad_best[:3]
                mu, md = books.mid(up), books.mid(down)
                if mu is not None and md is not None:
                    assert abs(mu + md - 1.0) < 1e-9
                # REST /book equals the book rebuilt at the same hash
                for tok in (up, down):
                    r = await sim.get("/clob/book", token_id=tok)
                    assert r.status_code == 200
                    rb = r.json()
                    assert list(rb) == list(real_rest)
                    assert rb["neg_risk"] is False and rb["min_order_size"] == "5"
                    pmv.parse_rest_book(r.content)
                    await rd.wait(lambda: rb["hash"] in _rebuild(books, rd), 3,
                                  "the REST hash on the WebSocket")
                    _tok, bids, asks = books.at_hash[rb["hash"]]
                    assert _tok == tok
                    assert bids == sorted(((float(x["price"]), float(x["size"])) for x in rb["bids"]),
                                          reverse=True)
                    assert asks == sorted((float(x["price"]), float(x["size"])) for x in rb["asks"])
                # PING -> PONG
                n = len(rd.frames)
                await ws.send("PING")
                await rd.wait(lambda: "PONG" in rd.texts()[n:], 2, "PONG")
                rd.stop()
            # unknown token: 404 with the venue's body; no token: 400
            r = await sim.get("/clob/book", token_id="123")
            assert r.status_code == 404
            assert r.json() == {"error": "No orderbook exists for the requested token id"}
            assert (await sim.get("/clob/book")).status_code == 400
    asyncio.run(main())


def _rebuild(books: Books, rd: Reader) -> dict:
    """Apply the frames received since the last call (each once, checked by `books.check` and
    by the consumer's parser when present) and return the hashes seen."""
    done = getattr(books, "_done", 0)
    for i in range(done, len(rd.frames)):
        t = rd.frames[i][1]
        if t == "PONG":
            continue
        pmv.parse_frame(t, 0)                 # every frame parses on the consumer's side
        for d in (json.loads(t) if t.startswith("[") else [json.loads(t)]):
            books.apply(d)
            if getattr(books, "check", None):
                books.check(d)
    books._done = len(rd.frames)
    return books.at_hash


def test_books_track_the_fair_probability_of_the_sim_path():
    """UP mid follows Φ(ln(S/S0)/(σ√τ)) of the sim's own futures path, computed here from the
    stats (futures mid, Chainlink basis, price to beat, time left)."""
    sigma = MarketParams().vol_annual / math.sqrt(365 * 86400)

    async def main():
        async with poly_sim(window_sec=20, lead=18, sim_poly_update_rate=30.0) as sim:
            pairs = []
            deadline = time.monotonic() + 4.5
            while time.monotonic() < deadline:
                st = await sim.stats()
                cur, cl = st["schedule"]["current"], st["chainlink"]
                if cur.get("up_mid") is not None and cur["price_to_beat"]:
                    s = cl["futures_mid"] * (1 + cl["basis_bps"] * 1e-4)
                    tau = cur["end"] - st["now_ns"] / 1e9     # the stats' own instant: ms would move τ
                    fair = pm.fair_up(s, cur["price_to_beat"], sigma, tau)
                    assert fair == pytest.approx(cur["fair_up"], abs=6e-7)   # fair_up is rounded to 6 places
                    pairs.append((fair, cur["up_mid"]))
                await asyncio.sleep(0.1)
            assert len(pairs) > 25
            f = [a for a, _ in pairs]
            m = [b for _, b in pairs]
            err = sum(abs(a - b) for a, b in zip(f, m)) / len(f)
            assert err < 0.06, err
            if _sd(f) > 0.03:
                assert _corr(f, m) > 0.7, (_corr(f, m), _sd(f))
    asyncio.run(main())


def _sd(x):
    mu = sum(x) / len(x)
    return math.sqrt(sum((a - mu) ** 2 for a in x) / len(x))


def _corr(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    c = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return c / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def test_generator_invariants_and_fair_tracking():
    """The pure generator: never crossed, prices on the tick, mirror exact, ticks switch at the
    extremes with a resync book, mid tracks a moving fair value."""
    b = pm.MarketBooks(11, 0, update_rate=6, trade_rate=0.5)
    b.activate(0)
    kinds: dict[str, int] = {}
    mids, fairs = [], []
    after_tick = None
    for ms in range(0, 900_000, 50):
        fair = 0.5 + 0.49 * math.sin(ms / 90_000)
        for msg in b.advance(ms, fair):
            kinds[msg.kind] = kinds.get(msg.kind, 0) + 1
            if msg.kind == "tick_size_change":
                after_tick = msg.new
            elif msg.kind == "book" and msg.full and after_tick is not None:
                assert msg.tick == after_tick
                after_tick = None
            elif msg.kind == "price_change":
                up = [e for e in msg.entries if e.token == 0]
                dn = [e for e in msg.entries if e.token == 1]
                assert len(up) == len(dn) >= 1
                for u, d in zip(up, dn):
                    assert u.price + d.price == pm.MIL and u.size == d.size and u.buy != d.buy
        if b.bids and b.asks:
            assert max(b.bids) < min(b.asks)
        if not b.paused_until:
            assert all(p % b.tick == 0 and 0 < p < pm.MIL for p in [*b.bids, *b.asks])
        if ms % 1000 == 0 and b.mid() is not None:
            mids.append(b.mid())
            fairs.append(fair)
            bu, au = b.best(0)
            bd, ad = b.best(1)
            assert bu + ad == pm.MIL and au + bd == pm.MIL
    assert kinds["tick_size_change"] >= 4 and kinds["last_trade_price"] > 100
    assert _corr(mids, fairs) > 0.95
    assert sum(abs(a - b) for a, b in zip(mids, fairs)) / len(mids) < 0.05
    # spreads of 1-3 ticks most of the time
    assert pm.fair_up(65000, 65000, 1e-4, 100) == pytest.approx(0.5)
    assert pm.fair_up(65100, 65000, 1e-4, 100) > 0.9


def test_window_rollover_closes_the_old_market_and_streams_the_next():
    async def main():
        async with poly_sim(window_sec=10, lead=2.0, sim_poly_meta_delay_sec=1.0,
                            sim_poly_update_rate=20.0, sim_poly_market_resolved=True) as sim:
            sch = (await sim.stats())["schedule"]
            old, new = sch["current"], sch["next"]
            toks_old = {old["up_token"], old["down_token"]}
            toks_new = {new["up_token"], new["down_token"]}
            async with connect(sim.ws("/ws/market")) as ws:
                rd = Reader(ws, ping_every=5)
                await ws.send(orjson.dumps({"assets_ids": [*toks_old, *toks_new], "type": "market",
                                            "custom_feature_enabled": True}).decode())
                await rd.wait(lambda: rd.frames, 3, "the dump")
                dump = json.loads(rd.frames[0][1])
                assert {b["asset_id"] for b in dump} == toks_old | toks_new  # next is pre-listed
                end = old["end"]
                await rd.wait(lambda: sim.now_s() > end + 0.3, 5, "the window end")
                t_end = time.monotonic()
                await rd.wait(lambda: sim.now_s() > end + 2.5, 5, "after the end")
                late = rd.objs(since=t_end)
                olds = [d for d in late if d["event_type"] != "market_resolved"
                        and (d.get("asset_id") in toks_old or any(
                            e["asset_id"] in toks_old for e in d.get("price_changes", ())))]
                assert not olds, olds[:2]
                assert any(e["asset_id"] in toks_new for d in late
                           for e in d.get("price_changes", ())), "next window's books not flowing"
                # market_resolved is a broadcast: every asset's window of the series that ended,
                # ours among them (a client must match it by its tokens or condition id)
                res_all = [d for d in late if d["event_type"] == "market_resolved"]
                res = [d for d in res_all if set(d["assets_ids"]) == toks_old]
                assert len(res) == 1 and res[0]["market"] == old["condition_id"]
                assert len(res_all) == len(set(ASSETS.values()))
                assert len({d["market"] for d in res_all}) == len(res_all)
                for d in res_all:
                    pmv.parse_frame(orjson.dumps(d), 0)
                rd.stop()
            # REST: the old book is gone after the resolution delay; Gamma says closed
            r = await sim.get("/clob/book", token_id=old["up_token"])
            assert r.status_code == 404
            m = (await sim.get("/gamma/markets", slug=old["slug"])).json()[0]
            assert m["closed"] is True and m["acceptingOrders"] is False
            md = m["events"][0]["eventMetadata"]
            up_won = md["finalPrice"] >= md["priceToBeat"]
            assert json.loads(m["outcomePrices"]) == (["1", "0"] if up_won else ["0", "1"])
            assert res[0]["winning_asset_id"] == (old["up_token"] if up_won else old["down_token"])
            st = await sim.stats()
            assert st["schedule"]["current"]["slug"] == new["slug"]
            assert (await sim.get("/clob/book", token_id=new["up_token"])).status_code == 200
    asyncio.run(main())


def test_idle_clob_client_is_closed_and_a_pinging_one_is_not():
    async def main():
        async with poly_sim(window_sec=20, sim_poly_idle_sec=1.0) as sim:
            w = (await sim.stats())["schedule"]["current"]
            async with connect(sim.ws("/ws/market")) as quiet, \
                    connect(sim.ws("/ws/market")) as alive:
                rq, ra = Reader(quiet), Reader(alive, ping_every=0.3)
                for ws in (quiet, alive):
                    await ws.send(orjson.dumps({"assets_ids": [w["up_token"]], "type": "market",
                                                "custom_feature_enabled": True}).decode())
                t0 = time.monotonic()
                await rq.wait(lambda: rq.closed is not None, 3, "idle close")
                assert 0.8 < time.monotonic() - t0 < 2.5
                await asyncio.sleep(0.8)
                assert ra.closed is None and "PONG" in ra.texts()
                st = await sim.stats()
                assert st["idle_closed"]["clob"] == 1 and st["connections"]["clob"] == 1
                ra.stop()
    asyncio.run(main())


def test_best_bid_ask_only_with_the_custom_feature():
    async def main():
        async with poly_sim(window_sec=30, lead=25, sim_poly_update_rate=40.0) as sim:
            w = (await sim.stats())["schedule"]["current"]
            async with connect(sim.ws("/ws/market")) as plain, connect(sim.ws("/ws/market")) as cf:
                rp, rc = Reader(plain), Reader(cf)
                await plain.send(orjson.dumps({"assets_ids": [w["up_token"]],
                                               "type": "market"}).decode())
                await cf.send(orjson.dumps({"assets_ids": [w["up_token"]], "type": "market",
                                            "custom_feature_enabled": True}).decode())
                await rc.wait(lambda: sum('"best_bid_ask"' in t for t in rc.texts()) >= 3, 5)
                await rp.wait(lambda: sum('"price_change"' in t for t in rp.texts()) >= 3, 5)
                assert not any('"best_bid_ask"' in t for t in rp.texts())
                rp.stop()
                rc.stop()
    asyncio.run(main())
