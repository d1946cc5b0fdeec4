"""feed_poly and feed_chainlink against the sim's Polymarket and RTDS: two series followed at once
on one CLOB connection, each rolling over with its own books, rings and market docs; live
subscribe/unsubscribe; tick size changes, reconnects, staleness, the resync of a book that
disagrees with the venue; resolutions; the venue's price to beat. Real processes and sockets.

The Gamma side also in-process (a PolyFeed beside the in-process sim, its data clock on the sim's):
an ended window is asked again by condition id (its slug names another window), and a Gamma answer
with a settlement rule the feed cannot follow is a lookup error, never a crash."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import numpy as np
import orjson
import pytest

from actors.feed_poly import PolyFeed
from actors.sim.faults import inject, stats
from actors.sim.polymarket import schedule as sim_schedule
from actors.venues.polymarket import gamma
from config.settings import Settings
from ipc import clock
from ipc.bus import Subscriber
from ipc.ring import RingReader
from ipc import names
from ipc.schema import CHAINLINK, FLAG_GAP, FLAG_SNAPSHOT, POLY_BOOK
from ipc.shm import unlink_prefix
from ipc.state import StateBlock
from tests.support.fixtures import POLYMARKET, need
from tests.support.poly_sim import poly_sim
from tests.support.ports import free_port
from tests.support.wait import wait_for, wait_for_async
from tests.support.stack import Stack

SECS = {"5m": 10, "15m": 15}
SERIES = tuple(SECS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = Stack(tmp_path_factory.mktemp("poly")).start(
        actors=("sim", "bus", "feed_poly", "feed_chainlink"), POLYMARKET_WINDOWS=",".join(SERIES),
        POLYMARKET_WINDOW_SEC=",".join(f"{k}:{v}" for k, v in SECS.items()),
        POLYMARKET_STALE_THRESHOLD_SEC="2", POLYMARKET_RECONCILE_SEC="2",
        SIM_POLY_MARKET_RESOLVED="true", SIM_POLY_META_DELAY_SEC="2", SIM_POLY_UPDATE_RATE="12")
    try:
        wait_for(lambda: all(((state(st, "polymarket") or {}).get("series") or {}).get(k, {}).get("window")
                             for k in SERIES), 30, "a current window of each series\n" + st.logs())
        yield st
    except BaseException:
        print(st.logs())
        raise
    finally:
        st.stop()


def state(st, name):
    return StateBlock("/dev/shm", st.env["SHM_PREFIX"], name).read()


def series_state(st, k):
    return state(st, "polymarket")["series"][k]


def counters(st):
    return state(st, "polymarket")["counters"]


def fresh_window(st, k: str, need_sec: float) -> dict:
    """Series k's current window once both books are whole and it has `need_sec` left (faults
    must not straddle a roll)."""
    def ok():
        d = series_state(st, k)
        w = d["window"]
        if not w or not d["books"]["UP"].get("valid") or not d["books"]["DOWN"].get("valid"):
            return None
        left = w["window_end_ns"] / 1e9 - time.time()
        return w if left >= need_sec and w["window_start_ns"] / 1e9 <= time.time() else None
    return wait_for(ok, 2 * SECS[k] + 5, f"a {k} window with {need_sec} s left")


def book_reader(st, k):
    return RingReader("/dev/shm", names.poly_book_ring(k).name(st.env["SHM_PREFIX"], "BTCUSDT"), POLY_BOOK,
                      from_oldest=True)


def test_two_series_roll_over_with_their_own_books_and_market_docs(stack):
    sub = Subscriber(stack.env["ZMQ_PUB_URL"], (names.POLY_TICK_PREFIX,))
    markets = {k: [] for k in SERIES}
    books = []
    deadline = time.monotonic() + 2 * max(SECS.values()) + 10
    while any(len(m) < 2 for m in markets.values()):
        assert time.monotonic() < deadline, f"fewer than two window changes per series: {markets}\n" + stack.logs()
        ev = sub.recv(200)
        if ev is None:
            continue
        if ev.topic.startswith(names.POLY_MARKET_PREFIX):
            k = ev.topic[len(names.POLY_MARKET_PREFIX):]
            if ev.msg["resolution"] is None and ev.msg["start_s"] <= time.time():      # a window change
                if not markets[k] or markets[k][-1][1]["start_s"] != ev.msg["start_s"]:
                    markets[k].append((time.time_ns(), ev.msg))
        elif (p := names.parse_poly_topic(ev.topic)) and p[0] == "book":
            books.append((time.time_ns(), p[1], p[2], ev.msg))
    sub.close()
    for k in SERIES:
        (t1, m1), (t2, m2) = markets[k][:2]
        assert m1["series"] == m2["series"] == k and m1["asset"] == "btc"
        assert m2["window_start_ns"] - m1["window_start_ns"] == SECS[k] * 1_000_000_000
        assert m2["slug"] == f"btc-updown-{k}-{m2['start_s']}"
        assert m2["rule"]["source"] == "chainlink" and m2["rule"]["stream"] == "btc/usd"
        assert abs(t2 / 1e9 - m2["window_start_ns"] / 1e9) < 1.0, "switch not at the boundary"
        # a series' books belong to its current window (the last announced), whatever the other
        # series does
        for t, series, token, b in books:
            if series != k or t < t1:
                continue
            want = [m for tm, m in markets[k] if tm <= t][-1]
            assert b["window_start_ns"] == want["window_start_ns"], f"a {k} book of another window"
            assert b["n_bids"] == len(b["bid_px"]) and b["n_asks"] == len(b["ask_px"]), "only real levels"
        # its ring never goes back to an older window, and holds only its own series' windows
        ws = book_reader(stack, k).read()
        ws = ws[(ws["flags"] & FLAG_GAP) == 0]["window_start_ns"]
        assert len(ws) and (np.diff(ws) >= 0).all()
        assert (ws % (SECS[k] * 1_000_000_000) == 0).all()
    assert {s for _, s, _, _ in books} == set(SERIES)
    # the block holds both series, each with its next window
    blk = state(stack, "polymarket")
    assert set(blk["series"]) == set(SERIES) and blk["disabled"] is None
    for k in SERIES:
        w, n = blk["series"][k]["window"], blk["series"][k]["next"]
        if n is not None:
            assert n["start_s"] == w["end_s"] and n["series"] == k


def test_one_connection_subscribes_and_unsubscribes_live(stack):
    c0 = counters(stack)
    wait_for(lambda: counters(stack)["rollovers"] >= c0["rollovers"] + 2
             and counters(stack)["unsubscribe_ops"] > c0["unsubscribe_ops"], 2 * max(SECS.values()) + 5,
             "two more rollovers and a live unsubscribe")

    def consistent():
        c, sim = counters(stack), stats(stack.poly_url)["clob_subscriptions"]
        conns = sim["connections"]
        return (c, sim) if len(conns) == 1 and c["subscribed"] == 2 * 2 * len(SERIES) == conns[0]["subscribed"] \
            else None
    c, sim = wait_for(consistent, 15, "feed and sim agree on 8 subscribed tokens")
    conn = sim["connections"][0]
    assert sim["resent_initial"] == 0 and sim["initial"] == c["reconnects"] + 1
    # at most one ended window per series still subscribed: a series subscribes its new next window
    # before it drops the ended one, and both series may roll at the same second
    assert conn["max_subscribed"] <= 2 * 2 * len(SERIES) + 2 * len(SERIES), "the subscription does not grow"
    assert c["subscribe_ops"] > 0 and c["unsubscribe_ops"] > 0
    # every token dropped was added once: subscribed now = added - dropped (one connection)
    assert c["reconnects"] > 0 or c["assets_subscribed"] - c["assets_unsubscribed"] == c["subscribed"]


def test_books_are_consistent_and_reconciled(stack):
    for k in SERIES:
        doc = wait_for(lambda: (lambda d: d if d["books"]["UP"].get("mid") is not None
                                and d["books"]["DOWN"].get("mid") is not None
                                and d["books"]["UP"]["valid"] and d["books"]["DOWN"]["valid"] else None)(
            series_state(stack, k)), 30, f"both {k} books whole")
        for t in ("UP", "DOWN"):
            assert 0 < doc["books"][t]["best_bid"] < doc["books"][t]["best_ask"] < 1
    wait_for(lambda: counters(stack)["reconcile_checks"] >= 4, 20, "REST reconciliations")
    c = counters(stack)
    assert c["parse_errors"] == 0 and c["unknown"] == 0


def test_tick_size_change_drops_the_book_until_a_snapshot(stack):
    up = fresh_window(stack, "5m", 6)["up_token"]
    c = counters(stack)
    r = book_reader(stack, "5m")
    r.read()
    n0, rc0 = c["tick_size_changes"], c["reconnects"]
    inject(stack.poly_url, "tick_size", asset=up)
    wait_for(lambda: counters(stack)["tick_size_changes"] > n0, 10, "the tick change")
    recs = []
    wait_for(lambda: recs.append(r.read()) or (lambda a: ((a["token"] == 0) & (a["flags"] & FLAG_SNAPSHOT > 0)
             & (np.arange(len(a)) > np.argmax((a["token"] == 0) & (a["flags"] & FLAG_GAP > 0)))).any()
             if len(a) else False)(np.concatenate(recs)), 20, "a gap record then a fresh UP snapshot")
    a = np.concatenate(recs)
    up_recs = a[a["token"] == 0]
    gap_i = np.flatnonzero(up_recs["flags"] & FLAG_GAP)[0]
    assert up_recs[gap_i]["n_bids"] == 0 and np.isnan(up_recs[gap_i]["best_bid"])
    after = up_recs[gap_i:][(up_recs[gap_i:]["flags"] & FLAG_GAP) == 0]
    assert after[0]["flags"] & FLAG_SNAPSHOT, "the first UP book after the change must be a fresh snapshot"
    assert counters(stack)["reconnects"] == rc0, "a tick change must not reconnect"


def test_a_book_that_disagrees_with_the_venue_is_resynced_from_rest(stack):
    """A stall on one token loses its changes: the venue's next best bid/ask disagrees with the
    book, which is counted and replaced from REST /book at once."""
    c0 = counters(stack)
    for attempt in range(4):       # a stall that lost only deep levels leaves the best intact: again
        w = fresh_window(stack, "15m", 8)
        inject(stack.poly_url, "stall", stream=w["up_token"], seconds=3)
        try:
            c = wait_for(lambda: (lambda c: c if c["best_mismatch"] > c0["best_mismatch"] else None)(
                counters(stack)), 6, "a best bid/ask mismatch after the stall")
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("four stalls and never a best bid/ask mismatch\n" + stack.logs())
    c = wait_for(lambda: (lambda c: c if c["resyncs"] > c0["resyncs"] else None)(counters(stack)), 15,
                 "the resync of that book")
    assert c["resync_errors"] == 0 and c["reconnects"] == c0["reconnects"]

    def agrees():      # the rebuilt book and the venue's own state agree again
        sim = stats(stack.poly_url)["books"].get(w["up_token"])
        b = series_state(stack, "15m")["books"]["UP"]
        return sim is not None and b["valid"] and sim["best_bid"] is not None \
            and float(sim["best_bid"]) == b["best_bid"] and float(sim["best_ask"]) == b["best_ask"]
    wait_for(agrees, 10, "the UP book equal to the venue's")


def test_reconnect_resubscribes(stack):
    c0 = counters(stack)
    inject(stack.poly_url, "drop")

    def back():
        c = counters(stack)
        ok = c["reconnects"] > c0["reconnects"] and all(
            series_state(stack, k)["books"]["UP"]["valid"] and series_state(stack, k)["books"]["DOWN"]["valid"]
            for k in SERIES)
        return c if ok else None
    c = wait_for(back, 20, "reconnected with every book rebuilt")
    assert c["books"] > c0["books"]


def test_silent_book_turns_stale_and_back(stack):
    up = fresh_window(stack, "15m", 8)["up_token"]
    inject(stack.poly_url, "silent_book", asset=up, seconds=4)
    wait_for(lambda: series_state(stack, "15m")["books"]["UP"]["stale"], 10, "UP stale")
    assert not series_state(stack, "15m")["books"]["DOWN"]["stale"]
    wait_for(lambda: not series_state(stack, "15m")["books"]["UP"]["stale"], 15, "UP fresh again")


def test_resolutions_are_recorded_with_their_windows(stack):
    sub = Subscriber(stack.env["ZMQ_PUB_URL"], (names.poly_market_topic("5m"),))
    d = wait_for(lambda: (lambda d: d if d["resolved"] else None)(series_state(stack, "5m")),
                 3 * SECS["5m"] + 10, "a resolved 5m window")
    r = d["resolved"][-1]
    assert r["series"] == "5m" and r["resolution"]["winner"] in ("UP", "DOWN")
    assert r["resolution"]["source"] in ("market_resolved", "gamma")
    assert r["end_s"] <= time.time()
    # the sim resolves by its rule: Up wins on final >= price to beat
    if r["final_price"] is not None and r["price_to_beat"] is not None:
        assert r["resolution"]["winner"] == ("UP" if r["final_price"] >= r["price_to_beat"] else "DOWN")
    deadline = time.monotonic() + 3 * SECS["5m"] + 10
    while True:          # the next resolution goes out on the series' market topic
        assert time.monotonic() < deadline, "no resolution on tick.poly.market.5m"
        ev = sub.recv(200)
        if ev is not None and ev.msg["resolution"] is not None:
            break
    sub.close()
    assert ev.msg["series"] == "5m" and ev.msg["end_s"] <= time.time() + 1
    assert len(series_state(stack, "5m")["resolved"]) <= 5


def test_price_to_beat_is_the_venues_once_published(stack):
    def known():
        w = series_state(stack, "15m")["window"]
        return w if w and w["price_to_beat"] is not None else None
    w = wait_for(known, 2 * SECS["15m"] + 5, "Gamma's price to beat")
    assert w["price_to_beat_source"] == "venue"
    assert w["rule"]["method"] == "twap" and w["rule"]["twap_lookback_sec"] == 60 and w["twap_enabled"]
    sim = stats(stack.poly_url)["schedules"]["15m"]
    wins = [x for x in (sim.get("previous"), sim.get("current"), sim.get("next")) if x]
    assert any(x["start"] == w["start_s"] and x["price_to_beat"] == pytest.approx(w["price_to_beat"])
               for x in wins), (w, wins)


def test_chainlink_feed_writes_the_assets_stream_and_its_last_price(stack):
    doc = wait_for(lambda: (lambda d: d if d and d.get("price") else None)(state(stack, "chainlink")), 10,
                   "feed_chainlink's state")
    assert doc["stream"] == "btc/usd" and doc["disabled"] is None and set(doc) == {
        "ts_ns", "disabled", "stream", "price", "obs_ns", "ts_recv_ns"}
    ring = RingReader("/dev/shm", names.CHAINLINK_RING.name(stack.env["SHM_PREFIX"], "BTCUSDT"), CHAINLINK,
                      from_oldest=True).read()
    assert names.CHAINLINK_RING.name("p", "BTCUSDT") == "p.BTCUSD.chainlink.price"
    at = ring[ring["ts_event_ns"] == doc["obs_ns"]]
    assert len(at) == 1 and at["price"][0] == doc["price"]


# --- the Gamma side, in-process -------------------------------------------------------------------
def _feed(**kw) -> PolyFeed:
    """A PolyFeed of its own (segments under a fresh SHM_PREFIX, a bus address nobody listens on);
    `_close` removes it."""
    s = Settings(shm_prefix=f"tpg{uuid.uuid4().hex[:8]}", zmq_xsub_url=f"tcp://127.0.0.1:{free_port()}",
                 record_enabled=False, **kw)
    return PolyFeed(s)


async def _close(feed: PolyFeed) -> None:
    await feed.http.aclose()
    feed.pub.close()
    unlink_prefix(feed.s.ipc.shm_dir, feed.s.ipc.shm_prefix)


def test_an_ended_window_is_asked_again_by_condition_id():
    """The hourly series shortened to 60 s: every window of the hour shares one slug, which names the
    window in progress; the ended window's resolution is found by its condition id."""
    async def main():
        async with poly_sim(window_sec=60, windows="1h", lead=2.0, sim_poly_meta_delay_sec=1.0) as sim:
            cur = (await sim.stats())["schedule"]["current"]
            feed = _feed(polymarket_windows="1h", polymarket_window_sec="1h:60",
                         polymarket_gamma_url=sim.http + "/gamma", polymarket_clob_url=sim.http + "/clob",
                         polymarket_ws_url=sim.ws("/ws/market"))
            wall = time.time_ns()
            clock.configure(wall + sim.offset_ns, wall)           # the feed's data time is the sim's
            tasks = [asyncio.create_task(feed.resolver()), asyncio.create_task(feed.roller())]
            try:
                st = feed.session.series["1h"]
                await wait_for_async(lambda: st.current is not None and st.current.start_s == cur["start"], 5,
                                     "the window in progress, found by its slug")
                res = await wait_for_async(lambda: next((d for d in st.resolved if d["start_s"] == cur["start"]),
                                                        None), 20, "the ended window resolved by Gamma")
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                clock.configure()
                await _close(feed)
            # what the sim says of it, by condition id; by slug it now answers the next window
            m, = (await sim.get("/gamma/markets", condition_ids=cur["condition_id"])).json()
            by_slug = (await sim.get("/gamma/markets", slug=cur["slug"])).json()
            assert [x["eventStartTime"] for x in by_slug] == [sim_schedule.iso(cur["end"])]
            up_won = json.loads(m["outcomePrices"]) == ["1", "0"]
            assert (res["condition_id"], res["slug"], res["end_s"]) == (cur["condition_id"], cur["slug"], cur["end"])
            assert res["resolution"]["winner"] == ("UP" if up_won else "DOWN")
            assert res["resolution"]["source"] == "gamma"
            assert res["rule"]["method"] == "candle" and res["rule"]["candle_tf"] == "1m"
            assert feed.c["gamma_reasks"] >= 1 and feed.session.unresolved() == []
    asyncio.run(main())


def test_a_rule_the_feed_cannot_follow_is_a_lookup_error_not_a_crash(caplog):
    """The real 5m capture answering with a Binance resolution source while the 5m series is
    shortened to 20 s (no 20 s kline): counted, shown in lookup_errors, logged once; the window is
    not added, by slug or by condition id."""
    m = orjson.loads(need(POLYMARKET / "gamma_market_btc_updown_5m_twap_2026-08_reduced.json").read_bytes())
    m["resolutionSource"] = "https://www.binance.com/en/trade/BTC_USDT"
    asked = []

    async def main():
        feed = _feed(polymarket_windows="5m", polymarket_window_sec="20")
        info = gamma.parse_market(m, True, series="5m", asset="btc")

        async def lookup(slug, series, condition_id=None):
            asked.append((slug, condition_id))
            return info, None
        feed._lookup = lookup
        try:
            for _ in range(2):
                assert await feed.resolve("5m", info.start_s) is None
            assert await feed.reask(info) is None
        finally:
            await _close(feed)
        return feed, info
    with caplog.at_level("WARNING", logger="feed_poly"):
        feed, info = asyncio.run(main())
    why = "ValueError: a Binance-candle window of 20 s has no kline interval (one of 1m, 3m, 5m, 15m, 30m, " \
          "1h, 2h, 4h, 6h, 8h, 12h, 1d)"
    assert feed.lookup_errors == {f"5m:{info.start_s}": f"{info.condition_id}: {why}"}
    assert feed.c["gamma_errors"] == 3 and feed.c["gamma_reasks"] == 1
    assert asked == [(info.slug, None), (info.slug, None), (None, info.condition_id)]
    assert info.start_s not in feed.session.series["5m"].windows and feed.session.books == {}
    logged = [r.getMessage() for r in caplog.records if "not resolved" in r.getMessage()]
    assert logged == [f"5m window {info.start_s} not resolved: {info.slug}: {why}"]


def test_a_429_pauses_that_host_for_its_capped_retry_after_and_nothing_is_sent_meanwhile(monkeypatch):
    """Gamma answers 429 `Retry-After: inf` (the cap shortened to 0.3 s): no Gamma request goes out
    until the cap has passed (counted `gamma_paused`), the CLOB is not paused by it, and the next
    Gamma request finds the window of the real 5m capture."""
    import httpx

    from actors import feed_poly
    monkeypatch.setattr(feed_poly, "REST_PAUSE_CAP_SEC", 0.3)
    body = need(POLYMARKET / "gamma_market_btc_updown_5m_twap_2026-08_reduced.json").read_bytes()
    book = need(POLYMARKET / "clob_book_rest_2024.json").read_bytes()
    info = gamma.parse_market(orjson.loads(body), True, series="5m", asset="btc")
    sent: list[tuple[str, float]] = []

    def answer(req: httpx.Request) -> httpx.Response:
        sent.append((req.url.host, time.monotonic()))
        if req.url.host == "gamma.test":
            if len([h for h, _ in sent if h == "gamma.test"]) == 1:
                return httpx.Response(429, headers={"Retry-After": "inf"})
            return httpx.Response(200, content=body)
        return httpx.Response(200, content=book)

    async def main():
        feed = _feed(polymarket_windows="5m", polymarket_gamma_url="http://gamma.test",
                     polymarket_clob_url="http://clob.test")
        await feed.http.aclose()
        feed.http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        try:
            assert await feed.resolve("5m", info.start_s) is None          # the 429
            t_429 = sent[-1][1]
            assert await feed.resolve("5m", info.start_s) is None          # paused: nothing sent
            assert await feed.reask(info) is None
            assert [h for h, _ in sent] == ["gamma.test"]
            assert await feed._rest_book("asset-1", "resync") is not None  # the CLOB is another host
            assert [h for h, _ in sent] == ["gamma.test", "clob.test"]
            await wait_for_async(lambda: feed.pauses["gamma"].remaining_sec(time.monotonic()) == 0, 2,
                                 "the capped pause over")
            got = await feed.resolve("5m", info.start_s)
            assert got is not None and got.condition_id == info.condition_id
            assert sent[-1][0] == "gamma.test" and sent[-1][1] - t_429 >= 0.3
        finally:
            await _close(feed)
        return feed
    feed = asyncio.run(main())
    assert (feed.c["rest_pauses"], feed.c["clob_paused"]) == (1, 0)
    # the resolve tried every slug candidate while paused, the reask once: none of them was sent
    assert feed.c["gamma_paused"] >= 2 and feed.c["gamma_lookups"] == feed.c["gamma_paused"] + 2
