"""The sim's up/down markets for every asset and series: exact slugs, grids and titles at fixed
times (the ET 4h grid, hourly and daily ET-dated slugs, DST), one slug form answered, each
window's settlement rule and its price to beat / final price (pure), and Gamma over real sockets
for eth, sol and xrp next to btc."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from actors.sim.polymarket import schedule as pg
from actors.sim.polymarket import settle as st_
from actors.sim.polymarket.oracle import Oracle
from actors.venues.polymarket import gamma as gmv
from actors.venues.polymarket import series as ser
from tests.support.fixtures import POLYMARKET, need
from tests.support.poly_sim import poly_sim

WINTER = 1_768_857_000        # 2026-01-19 21:10:00Z = 4:10 PM EST (ET = UTC-5: the ET 4h grid is not UTC's)


def _utc(*a) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp())


# series -> (slug, start, end, title) of the window containing WINTER, for sol; the other assets
# differ only by their names (checked below)
SOL_AT_WINTER = {
    "5m": ("sol-updown-5m-1768857000", 1768857000, 1768857300,
           "Solana Up or Down - January 19, 4:10PM-4:15PM ET"),
    "15m": ("sol-updown-15m-1768856400", 1768856400, 1768857300,
            "Solana Up or Down - January 19, 4:00PM-4:15PM ET"),
    "1h": ("solana-up-or-down-january-19-2026-4pm-et", 1768856400, 1768860000,
           "Solana Up or Down - January 19, 4PM ET"),
    # 4 PM EST = 21:00Z: on the ET grid (12AM/4AM/../4PM/8PM ET), not the UTC one (20:00Z)
    "4h": ("sol-updown-4h-1768856400", 1768856400, 1768870800,
           "Solana Up or Down - January 19, 4:00PM-8:00PM ET"),
    # ET noon Jan 19 (17:00Z) to ET noon Jan 20; the slug names the END's ET date
    "1d": ("solana-up-or-down-on-january-20-2026", 1768842000, 1768928400,
           "Solana Up or Down on January 20?"),
}
NAMES = {"btc": ("btc", "bitcoin", "Bitcoin"), "eth": ("eth", "ethereum", "Ethereum"),
         "sol": ("sol", "solana", "Solana"), "xrp": ("xrp", "xrp", "XRP")}


def _for_asset(asset: str, text: str) -> str:
    short, name, disp = NAMES[asset]
    return text.replace("sol-", f"{short}-").replace("solana-", f"{name}-").replace("Solana", disp)


def test_every_asset_and_series_has_the_venue_slug_grid_and_title():
    cat = pg.Catalog({}, twap=True)
    assert {k for k in cat.scheds} == {(a, s) for a in NAMES for s in SOL_AT_WINTER}
    for asset in NAMES:
        for series, (slug, start, end, title) in SOL_AT_WINTER.items():
            slug, title = _for_asset(asset, slug), _for_asset(asset, title)
            sch = cat[(asset, series)]
            assert sch.window_sec == ser.spec(series).length_sec      # unfollowed: its own length
            assert sch.start_of(WINTER) == start
            w = sch.window(start)
            assert (w.slug, w.start, w.end, w.title, w.asset, w.series) == \
                (slug, start, end, title, asset, series)
            assert w.slug == ser.slug(asset, series, start)          # the consumer's slug
            assert cat.lookup(slug, WINTER) == w
            assert len(w.up_token) == 77 and w.up_token != w.down_token
    # the 4h window on the UTC grid does not exist; neither does an off-grid 5m start
    assert cat.lookup("sol-updown-4h-1768852800", WINTER) is None
    assert cat.lookup("sol-updown-5m-1768857060", WINTER) is None
    # one slug form per window: the no-year hourly form is not answered (as live)
    no_year = ser.slug_candidates("eth", "1h", 1768856400)[1]
    assert no_year == "ethereum-up-or-down-january-19-4pm-et"
    assert cat.lookup(no_year, WINTER) is None
    # unknown asset names, a series in the wrong form, out of the listing range
    for slug in ("doge-updown-5m-1768857000", "dogecoin-up-or-down-january-19-2026-4pm-et",
                 "btc-updown-1h-1768856400", "btc-updown-5m-%d" % (1768857000 + 3 * 86400),
                 "bitcoin-up-or-down-on-january-25-2026"):
        assert cat.lookup(slug, WINTER) is None, slug
    # tokens are distinct across every asset and series
    toks = [t for sch in cat.scheds.values() for t in sch.window(sch.start_of(WINTER)).tokens]
    assert len(set(toks)) == len(toks) == 40


def test_windows_spanning_the_dst_change_follow_the_et_wall_clock():
    cat = pg.Catalog({}, twap=True)
    # DST ends 2026-11-01 2:00 AM EDT: 12AM EDT (04:00Z) to 4AM EST (09:00Z) is a 5 h window
    w = cat[("btc", "4h")].window(_utc(2026, 11, 1, 4))
    assert (w.slug, w.end - w.start) == (f"btc-updown-4h-{_utc(2026, 11, 1, 4)}", 5 * 3600)
    assert w.title == "Bitcoin Up or Down - November 1, 12:00AM-4:00AM ET"
    # Oct 31 noon EDT (16:00Z) to Nov 1 noon EST (17:00Z): 25 h, named by the end's date
    d = cat[("eth", "1d")]
    w = d.window(d.start_of(_utc(2026, 11, 1, 3)))
    assert (w.start, w.end, w.slug) == (_utc(2026, 10, 31, 16), _utc(2026, 11, 1, 17),
                                        "ethereum-up-or-down-on-november-1-2026")


def test_rules_by_series_and_window_length():
    cat = pg.Catalog({"5m": 20, "1h": 60, "1d": 120}, twap=True)
    assert cat[("eth", "5m")].settles == pg.Settles("chainlink", "twap", None, 60)
    assert cat[("eth", "5m")].source == "https://data.chain.link/streams/eth-usd-twap-60s-streams"
    assert pg.Catalog({}, twap=False)[("xrp", "4h")].source == "https://data.chain.link/streams/xrp-usd"
    assert cat[("sol", "1h")].settles == pg.Settles("binance", "candle", "1m")      # 60 s: the 1m candle
    assert cat[("sol", "1h")].source == "https://www.binance.com/en/trade/SOL_USDT"
    assert pg.Catalog({}, True)[("btc", "1h")].settles == pg.Settles("binance", "candle", "1h")
    assert cat[("btc", "1d")].settles == pg.Settles("binance", "candle_close", "1m")
    # a shortened window with no kline interval (hourly) or not whole minutes (daily): Chainlink,
    # and the metadata says so
    odd = pg.Catalog({"1h": 20, "1d": 90}, twap=False)
    assert odd[("btc", "1h")].settles == pg.Settles("chainlink", "point")
    assert odd[("btc", "1d")].source == "https://data.chain.link/streams/btc-usd"


def test_shortened_hourly_windows_share_their_hour_slug():
    now = WINTER + 5                       # 4:10:05 PM EST
    sch = pg.Catalog({"1h": 60}, twap=True)[("btc", "1h")]
    cur = sch.window(sch.start_of(now))
    assert (cur.start, cur.end) == (WINTER, WINTER + 60)
    assert cur.slug == "bitcoin-up-or-down-january-19-2026-4pm-et"
    nxt = sch.window(cur.end)
    assert nxt.slug == cur.slug and nxt.condition_id != cur.condition_id
    assert sch.lookup(cur.slug, now) == cur                # the window in progress
    assert sch.lookup(cur.slug, 1768859990.0).start == 1768859940   # the hour's last window
    assert sch.lookup(cur.slug, 1768856390.0).start == 1768856400   # before the hour: its first


class _Obs:
    """An oracle of given observations (the settle rules only read value_at / twap / last)."""

    def __init__(self, values: dict[int, float]):
        self.values = values
        self.last = max(values)

    def value_at(self, sec):
        return self.values.get(sec)

    twap = Oracle.twap


class _Candles:
    def __init__(self, table):
        self.table = table

    def candle(self, tf, open_s, now_ms):
        return self.table.get((tf, open_s))


def test_settlement_rules_exact():
    w = pg.Window(1000, 1300, "s", "1", "2", "0x", "0x", "1", "2", "t", "btc", "5m")
    obs = _Obs({s: 100.0 + s for s in range(600, 1400)})
    now = 2_000_000
    point, twap = pg.Settles("chainlink", "point"), pg.Settles("chainlink", "twap", None, 60)
    assert st_.price_to_beat(point, w, obs, None, now) == 1100.0
    assert st_.final_price(point, w, obs, None, now) == 1400.0
    # the mean of seconds 941..1000 and 1241..1300
    assert st_.price_to_beat(twap, w, obs, None, now) == sum(100.0 + s for s in range(941, 1001)) / 60
    assert st_.final_price(twap, w, obs, None, now) == sum(100.0 + s for s in range(1241, 1301)) / 60
    assert st_.price_to_beat(point, w, obs, None, 999_999) is None           # before the start
    assert st_.final_price(point, w, obs, None, 1_299_999) is None           # before the end
    hourly = pg.Settles("binance", "candle", "5m")
    c = _Candles({("5m", 1000): st_.Candle(65000.5, 65010.25, True)})
    assert st_.price_to_beat(hourly, w, obs, c, now) == 65000.5
    assert st_.final_price(hourly, w, obs, c, now) == 65010.25
    c.table[("5m", 1000)] = st_.Candle(None, 65000.0, False)                  # no trade yet
    assert st_.price_to_beat(hourly, w, obs, c, now) is None
    c.table[("5m", 1000)] = st_.Candle(65000.5, 64990.0, False)               # open, not closed
    assert st_.price_to_beat(hourly, w, obs, c, now) == 65000.5
    assert st_.final_price(hourly, w, obs, c, now) is None
    daily = pg.Settles("binance", "candle_close", "1m")
    c = _Candles({("1m", 1000): st_.Candle(1.0, 2.5, True), ("1m", 1300): st_.Candle(2.0, 2.25, False)})
    assert st_.price_to_beat(daily, w, obs, c, now) == 2.5                    # the start minute's close
    assert st_.final_price(daily, w, obs, c, now) is None                     # end minute still open
    c.table[("1m", 1300)] = st_.Candle(2.0, 2.25, True)
    assert st_.final_price(daily, w, obs, c, now) == 2.25
    assert st_.settles_at_s(daily, w) == 1360 and st_.settles_at_s(hourly, w) == 1300


def test_oracle_candles_stand_in_for_assets_without_a_spot_market():
    obs = _Obs({s: float(s) for s in range(0, 200)})
    c = st_.OracleCandles(obs)
    assert c.candle("1m", 60, 0) == st_.Candle(60.0, 119.0, True)
    assert c.candle("1m", 180, 0) == st_.Candle(180.0, 199.0, False)         # last second 239 not seen
    assert c.candle("1m", 300, 0) is None


def test_gamma_answers_every_asset_and_series_over_http():
    real = json.loads(need(POLYMARKET / "gamma_market_btc_updown_5m_2026-03.json").read_text())

    async def main():
        # the shortened 1h window has 50 s left (the 20 s 5m windows roll at the same instants)
        async with poly_sim(window_sec="1h:60,5m:20", windows="1h,5m", lead=50) as sim:
            secs = sim.settings.venues.window_secs
            seen_tokens: set[str] = set()
            for asset in NAMES:
                for series in ser.SERIES:
                    start = ser.window_start(series, sim.now_s(), secs.get(series))
                    slug = ser.slug(asset, series, start)
                    r = await sim.get("/gamma/markets", slug=slug)
                    body = r.json()
                    assert r.status_code == 200 and len(body) == 1, (asset, series, body)
                    m = body[0]
                    wi = gmv.parse_market(r.content, True, slug)
                    assert (wi.slug, wi.start_s) == (slug, start)
                    assert wi.end_s == (start + secs[series] if series in secs
                                        else ser.window_end(series, start))
                    assert m["question"].startswith(NAMES[asset][2] + " Up or Down")
                    twap = series in ("5m", "15m", "4h")
                    keys = list(real) + ["feeSchedule"] + (["cryptoMarketConfig"] if twap else [])
                    assert list(m) == keys
                    if twap:
                        assert m["resolutionSource"] == \
                            f"https://data.chain.link/streams/{asset}-usd-twap-60s-streams"
                        assert m["cryptoMarketConfig"]["asset"] == asset
                        assert (wi.twap_enabled, wi.twap_lookback_sec) == (True, 60)
                    else:
                        assert m["resolutionSource"] == \
                            f"https://www.binance.com/en/trade/{asset.upper()}_USDT"
                        assert not wi.twap_enabled
                    ev = m["events"][0]
                    assert ev["series"][0]["slug"].startswith(f"{asset}-up-or-down-")
                    assert ev["image"].endswith(f"/{asset.upper()}+fullsize.png")
                    assert not seen_tokens & {wi.up_token, wi.down_token}
                    seen_tokens |= {wi.up_token, wi.down_token}
                    if series == "1h":
                        no_year = ser.slug_candidates(asset, series, start)[1]
                        assert (await sim.get("/gamma/markets", slug=no_year)).json() == []
            evs = (await sim.get("/gamma/events", slug=ser.slug("xrp", "1d", ser.window_start(
                "1d", sim.now_s())))).json()
            assert len(evs) == 1 and evs[0]["markets"][0]["slug"].startswith("xrp-up-or-down-on-")
    asyncio.run(main())


@pytest.mark.parametrize("asset", ["eth", "sol", "xrp"])
def test_each_asset_has_its_own_chainlink_stream_at_its_own_level(asset):
    """Every asset's stream on RTDS (one update a second, on whole seconds), at a realistic level
    of its own (not BTC's), and the price to beat of its TWAP window is its own stream's mean."""
    import orjson
    from tests.support.sim import Reader, connect
    level = {"eth": (1500, 8000), "sol": (50, 400), "xrp": (0.2, 2.0)}[asset]

    async def main():
        async with poly_sim(window_sec=20, lead=15) as sim:
            async with connect(sim.ws("/rtds")) as ws:
                rd = Reader(ws, ping_every=1.0)
                await ws.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                    {"topic": "crypto_prices_chainlink", "type": "*",
                     "filters": json.dumps({"symbol": f"{asset}/usd"})}]}).decode())
                ups = lambda: [d for d in rd.objs() if d.get("type") == "update"]  # noqa: E731
                await rd.wait(lambda: len(ups()) >= 2, 5, f"{asset}/usd updates")
                snap = [d for d in rd.objs() if d.get("type") == "subscribe"]
                assert [d["payload"]["symbol"] for d in snap] == [f"{asset}/usd"]
                assert {d["payload"]["symbol"] for d in ups()} == {f"{asset}/usd"}
                obs = {p["timestamp"]: p["value"] for p in snap[0]["payload"]["data"]}
                obs.update({d["payload"]["timestamp"]: d["payload"]["value"] for d in ups()})
                assert all(level[0] < v < level[1] for v in obs.values()), obs
                assert all(t % 1000 == 0 for t in obs)
                st = await sim.stats()
                assert st["oracles"][asset]["symbol"] == f"{asset}/usd"
                # its previous 15m window (unfollowed: quiet, still answered; its priceToBeat is
                # published) settles on its own stream
                start = ser.window_start("15m", sim.now_s()) - 900
                m = (await sim.get("/gamma/markets", slug=ser.slug(asset, "15m", start))).json()[0]
                ptb = m["events"][0]["eventMetadata"]["priceToBeat"]
                assert level[0] < ptb < level[1]
                rd.stop()
    asyncio.run(main())


def test_hourly_market_settles_on_the_spot_candle_the_sim_streams():
    """An hourly window (shortened to 60 s: the 1m candle) shows Binance metadata, its priceToBeat
    is the open of the spot kline opening at its start and its finalPrice that kline's close, Up
    iff close >= open; the spot kline frames are shaped like the real capture; the books are
    quoted around the candle rule's fair value."""
    import math

    import orjson

    from actors.sim.market import MarketParams
    from actors.sim.polymarket import books as pm
    from actors.venues.binance import parse as bnp
    from tests.support.fixtures import BINANCE
    from tests.support.sim import Reader, connect
    real_k = json.loads(need(BINANCE / "spot_kline_1m_closed.json").read_text())
    sigma = MarketParams().vol_annual / math.sqrt(365 * 86400)

    async def main():
        async with poly_sim(window_sec=60, windows="1h", lead=5.0, sim_poly_meta_delay_sec=1.0,
                            sim_poly_market_resolved=True) as sim:
            st = await sim.stats()
            sch = st["schedule"]
            assert (sch["series"], sch["window_sec"]) == ("1h", 60)
            assert sch["settles"] == {"source": "binance", "method": "candle", "candle_tf": "1m",
                                      "twap_sec": 0}
            cur = sch["current"]
            start, end = cur["start"], cur["end"]
            async with connect(f"ws://127.0.0.1:{sim.spot_port}/stream?streams=btcusdt@kline_1m") as ks, \
                    connect(sim.ws("/ws/market")) as cw:
                kr, cr = Reader(ks), Reader(cw, ping_every=2.0)
                await cw.send(orjson.dumps({"assets_ids": [cur["up_token"], cur["down_token"]],
                                            "type": "market", "custom_feature_enabled": True}).decode())
                # the fair value the books are quoted around: spot mid against the candle open
                s2 = await sim.stats()
                c2 = s2["schedule"]["current"]
                assert c2["start"] == start and c2["price_to_beat"] is not None
                tau = end - s2["now_ms"] / 1000
                assert c2["fair_up"] == pytest.approx(pm.fair_up(
                    s2["chainlink"]["spot_mid"], c2["price_to_beat"], sigma, tau), abs=1e-5)
                closed = lambda: [d for d in kr.objs() if d["data"]["k"]["t"] == start * 1000  # noqa: E731
                                  and d["data"]["k"]["x"]]
                await kr.wait(lambda: closed(), 10, "the window's closed 1m kline")
                await cr.wait(lambda: any(d.get("event_type") == "market_resolved"
                                          and cur["up_token"] in d["assets_ids"] for d in cr.objs()),
                              5, "market_resolved")
                frames = [t for t in kr.texts() if orjson.loads(t)["data"]["k"]["t"] == start * 1000]
                for t in frames:                   # the capture's shape; the consumer's parser
                    d = json.loads(t)
                    assert list(d) == list(real_k) and list(d["data"]) == list(real_k["data"])
                    assert list(d["data"]["k"]) == list(real_k["data"]["k"])
                    assert d["stream"] == "btcusdt@kline_1m" and d["data"]["k"]["i"] == "1m"
                    assert len(d["data"]["k"]["o"].split(".")[1]) == 8
                    assert bnp.parse_frame(t, 0).kind == "kline"
                k = closed()[-1]["data"]["k"]
                assert {json.loads(t)["data"]["k"]["o"] for t in frames} == {k["o"]}   # one open
                # the hour's slug now names the next 60 s window (in progress): the ended one is
                # asked for by its condition id
                by_slug = (await sim.get("/gamma/markets", slug=cur["slug"])).json()
                assert [x["eventStartTime"] for x in by_slug] == [pg.iso(end)]
                m, = (await sim.get("/gamma/markets", condition_ids=cur["condition_id"])).json()
                assert m["slug"] == cur["slug"] and m["eventStartTime"] == pg.iso(start)
                assert [x["conditionId"] for x in (await sim.get(
                    "/gamma/markets", clob_token_ids=cur["down_token"])).json()] == [cur["condition_id"]]
                assert m["resolutionSource"] == "https://www.binance.com/en/trade/BTC_USDT"
                assert "cryptoMarketConfig" not in m and "1 minute candle" in m["description"]
                md = m["events"][0]["eventMetadata"]
                assert md["priceToBeat"] == float(k["o"]) and md["finalPrice"] == float(k["c"])
                up_won = float(k["c"]) >= float(k["o"])
                assert m["closed"] is True
                assert json.loads(m["outcomePrices"]) == (["1", "0"] if up_won else ["0", "1"])
                res = next(d for d in cr.objs() if d.get("event_type") == "market_resolved"
                           and cur["up_token"] in d["assets_ids"])
                assert res["winning_outcome"] == ("Up" if up_won else "Down")
                # REST klines say the same
                r = await sim.get_abs(f"http://127.0.0.1:{sim.spot_port}/api/v3/klines",
                                      symbol="BTCUSDT", interval="1m", startTime=start * 1000, limit=1)
                row = r.json()[0]
                assert (row[0], row[1], row[4]) == (start * 1000, k["o"], k["c"])
                assert sim.now_s() >= end
                kr.stop()
                cr.stop()
    asyncio.run(main())


def test_symbol_ethusdt_runs_the_eth_markets_on_the_sim_mid():
    """SYMBOL=ETHUSDT: the sim's Binance market is ETH at ETH's level, the live books are the eth
    windows', eth/usd follows the futures mid and btc/usd walks on its own at BTC's level."""
    import orjson

    from tests.support.sim import Reader, connect

    async def main():
        async with poly_sim(window_sec=20, lead=15, symbol="ETHUSDT") as sim:
            st = await sim.stats()
            assert st["asset"] == "eth" and st["schedule"]["slug_prefix"] == "eth-updown-5m"
            cur = st["schedule"]["current"]
            assert cur["slug"] == f"eth-updown-5m-{cur['start']}"
            assert st["books"][cur["up_token"]]["live"] is True
            assert 1500 < st["chainlink"]["futures_mid"] < 8000
            async with connect(sim.ws("/rtds")) as ws:
                rd = Reader(ws, ping_every=1.0)
                await ws.send(orjson.dumps({"action": "subscribe", "subscriptions": [
                    {"topic": "crypto_prices_chainlink", "type": "*"}]}).decode())
                last = lambda sym: [d["payload"]["value"] for d in rd.objs()  # noqa: E731
                                    if d.get("type") == "update" and d["payload"]["symbol"] == sym]
                await rd.wait(lambda: last("eth/usd") and last("btc/usd"), 5, "eth and btc updates")
                mid = (await sim.stats())["chainlink"]["futures_mid"]
                assert abs(last("eth/usd")[-1] / mid - 1) < 0.002       # the sim's own ETH
                assert 30_000 < last("btc/usd")[-1] < 130_000             # BTC on its own walk
                rd.stop()
    asyncio.run(main())


def test_a_daily_window_resolves_on_the_noon_1m_candles_and_stays_answered_after_its_end():
    """The daily rule on the sim's own klines (SYMBOL's asset: the spot 1m candles at ET noon, end
    against start) and on the stand-in candles of another asset, for the window that ended at the
    last ET noon (answered a day after its end, though it started more than a day ago)."""
    import orjson

    from actors.sim.market import Market
    from actors.sim.polymarket.exchange import PolyVenue
    from actors.sim.server import build_venues
    from config.settings import Settings
    now_ns = WINTER * 1_000_000_000                 # 4h10 after the Jan 19 ET noon
    s = Settings(sim_trade_rate=20.0)
    m = Market.from_settings(s, now_ns)
    _fut, spv = build_venues(s, m, max_send_buffer=1 << 20)
    v = PolyVenue(s, m, now_ns, spot=spv)
    v.step(now_ns, 0.0)
    start, end = _utc(2026, 1, 18, 17), _utc(2026, 1, 19, 17)     # Jan 18 ET noon -> Jan 19 ET noon
    assert WINTER - start > 86_400                                   # started more than a day ago
    for asset, slug in (("btc", "bitcoin-up-or-down-on-january-19-2026"),
                        ("eth", "ethereum-up-or-down-on-january-19-2026")):
        code, body = v.http(f"/gamma/markets?slug={slug}", now_ns)
        mk, = orjson.loads(body)
        assert (code, mk["eventStartTime"], mk["endDate"]) == (200, pg.iso(start), pg.iso(end))
        md = mk["events"][0]["eventMetadata"]
        ptb, final = md["priceToBeat"], md["finalPrice"]
        assert mk["closed"] is True
        assert json.loads(mk["outcomePrices"]) == (["1", "0"] if final >= ptb else ["0", "1"])
        if asset == "btc":                      # the spot klines the sim serves
            rows = lambda t: orjson.loads(spv.klines("1m", t * 1000, t * 1000, 1, now_ns // 10**6))  # noqa: E731
            assert (ptb, final) == (float(rows(start)[0][4]), float(rows(end)[0][4]))
        else:                                   # its Chainlink stream: the minute's last second
            o = v.oracles["eth"]
            assert (ptb, final) == (o.value_at(start + 59), o.value_at(end + 59))
            assert 1500 < ptb < 8000
