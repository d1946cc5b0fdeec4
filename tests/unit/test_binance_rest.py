"""Binance REST: pure helpers on the real klines capture, and the REST client against a real local
HTTP server (429 Retry-After, 418 ban, 5xx, timeouts, weight tracking and throttling).

Waits are on conditions with deadlines; the only timing assertions are "waited at least
Retry-After" (a correctness property), measured on monotonic clocks on both sides.
"""
from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import orjson
import pytest

from actors.clients.binance_client import BinanceRestClient
from actors.venues.binance import rest as br
from actors.venues.binance.rest import RestError
from ipc.schema import KLINE
from tests.support.kline_server import Fault, FakeClock, KlineServer, kline_row
from tests.support.fixtures import BINANCE, need
from tests.support.wait import wait_for_async

MS = 1_000_000
FAPI = "/fapi/v1/klines"


# --- parse_klines on the real capture --------------------------------------------------------------

def _capture() -> bytes:
    return need(BINANCE / "spot_klines_rest.json").read_bytes()


def test_parse_klines_real_capture_first_and_last_row():
    # now: inside the last row's minute (it closes at 1634944379999), so only that row is open
    recs = br.parse_klines(_capture(), "1m", 123, now_ms=1634944340000)
    assert recs.dtype == KLINE and len(recs) == 10
    first, last = recs[0], recs[-1]
    assert first.tolist() == (
        0, 123, 0, 1634943780000 * MS, 1634943839999 * MS, 60, 1,
        60685.22, 60729.84, 60670.90, 60719.27, 21.63272, 1313200.0134041, 12.28492, 617)
    assert last.tolist() == (
        0, 123, 0, 1634944320000 * MS, 1634944379999 * MS, 60, 0,
        60739.85, 60739.85, 60739.85, 60739.85, 0.04734, 2875.424499, 0.04734, 7)
    assert recs["closed"].tolist() == [1] * 9 + [0]
    assert np.all(np.diff(recs["open_time_ns"]) == 60 * 1_000_000_000)


def test_parse_klines_closed_is_strictly_before_now():
    body = _capture()
    # at the last row's close time it is still open; one ms later it is closed
    assert br.parse_klines(body, "1m", 0, now_ms=1634944379999)["closed"][-1] == 0
    assert br.parse_klines(body, "1m", 0, now_ms=1634944380000)["closed"][-1] == 1
    # now_ms defaults to the receive time
    assert br.parse_klines(body, "1m", 1634944380000 * MS)["closed"].all()
    assert not br.parse_klines(body, "1m", 1634943780000 * MS)["closed"].any()


@pytest.mark.parametrize("field,value,why", [
    (2, "0", "price"), (4, "NaN", "price"), (1, "1e400", "price"), (3, "60800.0", "ohlc"),
    (5, "-1", "volume"), (9, "99.0", "taker_buy_volume"), (8, -3, "trades")])
def test_parse_klines_refuses_an_insane_row_of_the_real_capture(field, value, why):
    rows = orjson.loads(_capture())
    rows[4][field] = value
    with pytest.raises(ValueError, match=rf"^klines row 4: .*{why}"):
        br.parse_klines(orjson.dumps(rows), "1m", 0, now_ms=1634944340000)


def test_parse_klines_rejects_bad_bodies():
    body = _capture()
    with pytest.raises(ValueError, match="spans"):
        br.parse_klines(body, "5m", 0)                       # the rows are 1m klines
    with pytest.raises(ValueError, match="not JSON"):
        br.parse_klines(b"<html>", "1m", 0)
    with pytest.raises(ValueError, match="not a list"):
        br.parse_klines(b'{"code":-1121,"msg":"Invalid symbol."}', "1m", 0)
    with pytest.raises(ValueError, match="row 1"):
        br.parse_klines(b'[[1634943780000,"1","1","1","1","1",1634943839999,"1",1,"1","1","0"],'
                        b'[1634943840000,"x","1","1","1","1",1634943899999,"1",1,"1","1","0"]]', "1m", 0)
    with pytest.raises(ValueError, match="not after"):
        row = kline_row(1634943780000, 60000)
        br.parse_klines(orjson.dumps([row, row]), "1m", 0)
    with pytest.raises(ValueError, match="unknown timeframe"):
        br.parse_klines(body, "7m", 0)
    assert len(br.parse_klines(b"[]", "1m", 0)) == 0


# --- paths, weights, headers, errors ------------------------------------------------------------------

def test_klines_path():
    assert br.klines_path("futures", "btcusdt", "1m", 500) == \
        "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=500"
    assert br.klines_path("spot", "BTCUSDT", "1h", 1000, start_ms=1634943780000) == \
        "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=1000&startTime=1634943780000"
    assert br.klines_path("futures", "BTCUSDT", "5m", 2, 10, 20) == \
        "/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=2&startTime=10&endTime=20"
    assert br.klines_path("futures", "BTCUSDT", "1m", 1500).endswith("limit=1500")
    for venue, limit in (("futures", 1501), ("spot", 1001), ("futures", 0)):
        with pytest.raises(ValueError, match="limit"):
            br.klines_path(venue, "BTCUSDT", "1m", limit)
    with pytest.raises(ValueError, match="venue"):
        br.klines_path("options", "BTCUSDT", "1m", 1)


def test_klines_weight():
    assert [br.klines_weight("futures", n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == \
        [1, 1, 2, 2, 5, 5, 10, 10]
    assert br.klines_weight("spot", 1000) == 2


def test_weight_used_any_case():
    assert br.weight_used({"X-MBX-USED-WEIGHT-1M": "17"}) == 17           # futures
    assert br.weight_used({"x-mbx-used-weight-1m": "2"}) == 2             # spot
    assert br.weight_used(httpx.Headers({"X-Mbx-Used-Weight-1m": "5"})) == 5
    assert br.weight_used([("x-mbx-used-weight", "9")]) == 9
    assert br.weight_used({"Content-Type": "application/json"}) is None
    assert br.weight_used({"x-mbx-used-weight-1m": "lots"}) is None


def test_retry_after():
    assert br.retry_after_sec(429, {"Retry-After": "3"}) == 3.0
    assert br.retry_after_sec(418, {"retry-after": "120"}) == 120.0
    assert br.retry_after_sec(503, {"Retry-After": "0.5"}) == 0.5
    assert br.retry_after_sec(429, {}) is None
    assert br.retry_after_sec(200, {"Retry-After": "3"}) is None
    assert br.retry_after_sec(500, {"Retry-After": "3"}) is None
    assert br.retry_after_sec(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"},
                              now_s=1445412480.0) == 5.0
    assert br.retry_after_sec(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"}) is None
    assert br.retry_after_sec(429, {"Retry-After": "soon"}, now_s=0) is None


NOW_S = 1_700_000_000.0


@pytest.mark.parametrize("value,now_s,sec", [
    ("inf", None, 600.0), ("Infinity", None, 600.0), ("1e300", None, 600.0), ("1e400", None, 600.0),
    ("601", None, 600.0), ("600", None, 600.0), ("-5", None, 0.0), ("-inf", None, 0.0),
    ("nan", None, None), ("", NOW_S, None), ("   ", None, None),
    ("Fri, 31 Dec 9999 23:59:59 GMT", NOW_S, 600.0),       # a far HTTP-date: capped
    ("Tue, 14 Nov 2023 22:13:30 GMT", NOW_S, 10.0),        # NOW_S + 10 s
    ("Tue, 14 Nov 2023 22:13:30 -0000", NOW_S, 10.0),      # no zone: UTC
    ("Tue, 14 Nov 2023 22:13:00 GMT", NOW_S, 0.0),         # already past
    ("Wed, 21 Oct 99999 07:28:05 GMT", NOW_S, None),       # year out of range: unreadable, no raise
])
def test_retry_after_is_capped_and_never_raises(value, now_s, sec):
    assert br.MAX_PAUSE_SEC == 600.0
    for status in (418, 429, 503):
        assert br.retry_after_sec(status, {"Retry-After": value}, now_s) == sec


def test_ban_sec_capped_between_one_second_and_ten_minutes():
    msg = "Way too much request weight used; IP banned until {}. Please use the websocket"
    ban = br.ban_sec
    assert ban({"Retry-After": "1e300"}, "", NOW_S, 120.0) == 600.0
    assert ban({"Retry-After": "30"}, msg.format(int(NOW_S * 1000) + 500_000), NOW_S, 120.0) == 30.0
    assert ban({"Retry-After": "0"}, "", NOW_S, 120.0) == 1.0
    assert ban({"Retry-After": "nan"}, msg.format(int(NOW_S * 1000) + 45_000), NOW_S, 120.0) == 45.0
    assert ban({}, msg.format(9_999_999_999_999_999), NOW_S, 120.0) == 600.0    # year 2286+
    assert ban({}, msg.format(int(NOW_S * 1000) - 5_000), NOW_S, 120.0) == 1.0  # already over
    assert ban({}, '{"code":-1003,"msg":"banned"}', NOW_S, 120.0) == 120.0
    assert ban({}, "", NOW_S, 1e12) == 600.0
    assert ban({}, "", NOW_S, float("inf")) == 600.0


def test_rest_error_and_ban_message():
    e = RestError.from_body(418, b'{"code":-1003,"msg":"Way too much request weight used; IP banned '
                                 b'until 1591176563022. Please use the websocket for live updates '
                                 b'to avoid bans."}')
    assert (e.status, e.code) == (418, -1003)
    assert br.banned_until_ms(e.msg) == 1591176563022
    assert "HTTP 418 code -1003" in str(e)
    e = RestError.from_body(502, b"<html>Bad gateway</html>")
    assert (e.status, e.code, e.msg) == (502, None, "<html>Bad gateway</html>")
    assert br.banned_until_ms("Too many requests") is None


def test_server_now_takes_the_earlier_clock():
    date = {"Date": "Fri, 22 Oct 2021 23:06:20 GMT"}          # 1634943980000
    assert br.server_now_ms(date, 1634943999999) == 1634943980000
    assert br.server_now_ms(date, 1634943970000) == 1634943970000
    assert br.server_now_ms({}, 5) == 5
    assert br.server_now_ms({"date": "garbage"}, 5) == 5


# --- the client against a real local server -------------------------------------------------------

T0 = 1_700_000_030_000      # mid-minute; well before the real clock, so the Date header never wins


@pytest.fixture
def server():
    with KlineServer(FakeClock(T0)) as srv:
        yield srv


def _client(srv, **kw) -> BinanceRestClient:
    kw.setdefault("backoff_base_sec", 0.01)
    kw.setdefault("backoff_max_sec", 0.05)
    return BinanceRestClient(srv.url, kw.pop("venue", "futures"), **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def klines_once(srv, tf: str, n: int, **kw) -> tuple[list, dict]:
    """One klines call on a fresh client: (records, the client's counters after it)."""
    async def go():
        c = _client(srv, **kw)
        try:
            return await c.klines("BTCUSDT", tf, n, now_ms=T0), c.counters()
        finally:
            await c.aclose()
    return run(go())


def test_klines_and_weight_tracking(server):
    async def go():
        c = _client(server)
        try:
            recs = await c.klines("BTCUSDT", "1m", 5, now_ms=T0)
            assert c.weight_used == 1
            server.weight_override = 1234
            await c.klines("BTCUSDT", "1m", 5, now_ms=T0)
            return recs, c.counters()
        finally:
            await c.aclose()
    recs, cn = run(go())
    cur = T0 // 60000 * 60000
    assert (recs["open_time_ns"] // MS).tolist() == list(range(cur - 4 * 60000, cur + 1, 60000))
    assert recs["closed"].tolist() == [1, 1, 1, 1, 0]
    want = br.parse_klines(orjson.dumps(server.rows("1m", cur - 4 * 60000, cur)), "1m", 0, T0)
    want["ts_recv_ns"] = recs["ts_recv_ns"]
    assert recs.tolist() == want.tolist()
    assert cn["weight_used"] == 1234 and cn["weight_used_max"] == 1234
    assert cn["weight_limit"] == 2400
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (2, 2, 0, {})
    assert server.requests()[0].query == {"symbol": "BTCUSDT", "interval": "1m", "limit": "5"}


def test_spot_lower_case_weight_header(server):
    async def go():
        c = _client(server, venue="spot")
        try:
            await c.klines("BTCUSDT", "1m", 3)
            return c.counters()
        finally:
            await c.aclose()
    cn = run(go())
    assert cn["weight_used"] == 2 and cn["weight_limit"] == 6000
    assert server.requests()[0].path == "/api/v3/klines"


def test_429_pauses_every_request_for_retry_after(server):
    server.fail_next(Fault(429, {"Retry-After": "1"}, path=FAPI))

    async def go():
        c = _client(server)
        try:
            a = asyncio.create_task(c.klines("BTCUSDT", "1m", 2, now_ms=T0))
            await wait_for_async(lambda: c.errors.get("429") == 1, 10, "the 429")
            # issued after the 429, to another path: it must wait too
            b = await c.get("/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1")
            assert b.status == 200
            return await a, c.counters()
        finally:
            await c.aclose()
    recs, cn = run(go())
    assert len(recs) == 2
    reqs = server.requests()
    assert [r.status for r in reqs[:1]] == [429] and len(reqs) == 3
    t429 = reqs[0].t_reply
    for r in reqs[1:]:
        assert r.t_arrive - t429 >= 1.0, "a request went out before Retry-After had passed"
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (3, 2, 1, {"429": 1})
    assert cn["paused_ms"] > 0 and cn["bans"] == 0 and cn["banned"] is False


def test_429_holds_back_requests_already_queued(server):
    # five requests at once (a bootstrap of five timeframes): the first gets 429; none of the
    # others may leave before Retry-After, or the venue would answer it with a ban
    server.fail_next(Fault(429, {"Retry-After": "1"}))

    async def go():
        c = _client(server)
        try:
            out = await asyncio.gather(*[c.klines("BTCUSDT", tf, 2, now_ms=T0)
                                         for tf in ("1m", "5m", "15m", "1h", "4h")])
            return out, c.counters()
        finally:
            await c.aclose()
    out, cn = run(go())
    assert [len(r) for r in out] == [2] * 5
    reqs = server.requests()
    assert [r.status for r in reqs] == [429] + [200] * 5
    assert min(r.t_arrive for r in reqs[1:]) - reqs[0].t_reply >= 1.0
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (6, 5, 1, {"429": 1})


def test_418_ban_reported_waited_and_recovered(server):
    server.fail_next(Fault(418, {"Retry-After": "2"}))

    async def go():
        c = _client(server)
        try:
            t = asyncio.create_task(c.klines("BTCUSDT", "1m", 2, now_ms=T0))
            await wait_for_async(lambda: c.bans == 1, 10, "the 418")
            during = c.counters()
            recs = await t
            return during, recs, c.counters()
        finally:
            await c.aclose()
    wall_before = time.time_ns()
    during, recs, after = run(go())
    assert during["banned"] is True and during["banned_until_ns"] >= wall_before + 2_000_000_000
    assert "418" in during["last_error"] and "banned" in during["last_error"]
    reqs = server.requests()
    assert [r.status for r in reqs] == [418, 200]
    assert reqs[1].t_arrive - reqs[0].t_reply >= 2.0
    assert len(recs) == 2
    assert after["banned"] is False and after["bans"] == 1
    assert (after["requests"], after["ok"], after["retries"], after["errors"]) == (2, 1, 1, {"418": 1})


def test_418_without_retry_after_uses_the_ban_end_or_the_default(server):
    until = int(time.time() * 1000) + 1500
    body = (b'{"code":-1003,"msg":"Way too much request weight used; IP banned until '
            + str(until).encode() + b'. Please use the websocket for live updates to avoid bans."}')
    server.fail_next(Fault(418, body=body), Fault(418, body=b'{"code":-1003,"msg":"banned"}'))

    async def go():
        c = _client(server, ban_default_sec=1.0)
        try:
            await c.klines("BTCUSDT", "1m", 1, now_ms=T0)
            return c.counters()
        finally:
            await c.aclose()
    cn = run(go())
    r = server.requests()
    assert [x.status for x in r] == [418, 418, 200]
    assert r[1].w_arrive >= until / 1000          # not before the end the message names
    assert r[2].t_arrive - r[1].t_reply >= 1.0    # the default
    assert cn["bans"] == 2 and cn["errors"] == {"418": 2}


@pytest.mark.parametrize("status,value", [(418, "1e300"), (418, "inf"), (429, "inf"), (429, "1e300"),
                                          (429, "Fri, 31 Dec 9999 23:59:59 GMT")])
def test_an_absurd_retry_after_pauses_ten_minutes_not_forever(server, status, value):
    # before the cap: 418 + 1e300 raised OverflowError out of the client (the context actor died),
    # and `inf` paused every request forever
    server.fail_next(Fault(status, {"Retry-After": value}))

    async def go():
        c = _client(server)
        try:
            t = asyncio.create_task(c.klines("BTCUSDT", "1m", 2, now_ms=T0))
            await wait_for_async(lambda: c.errors.get(str(status)) == 1 or t.done(), 10, "the answer")
            await asyncio.sleep(0)
            assert not t.done(), t.exception()       # pausing, not dead
            left_s = c._pause_until - time.monotonic()
            cn = c.counters()
            t.cancel()
            return left_s, cn
        finally:
            await c.aclose()
    wall = time.time_ns()
    left_s, cn = run(go())
    assert 590.0 < left_s <= 600.0
    assert cn["errors"] == {str(status): 1} and cn["requests"] == 1
    if status == 418:
        assert cn["bans"] == 1 and cn["banned"] is True
        assert wall + 590 * 10**9 < cn["banned_until_ns"] <= time.time_ns() + 600 * 10**9


def test_after_the_capped_pause_a_request_reprobes(server, monkeypatch):
    # the cap shortened to 1 s: `Retry-After: inf` is waited 1 s, then the next request goes out
    monkeypatch.setattr(br, "MAX_PAUSE_SEC", 1.0)
    server.fail_next(Fault(429, {"Retry-After": "inf"}), Fault(418, {"Retry-After": "1e300"}))

    recs, cn = klines_once(server, "1m", 2)
    reqs = server.requests()
    assert [r.status for r in reqs] == [429, 418, 200] and len(recs) == 2
    assert reqs[1].t_arrive - reqs[0].t_reply >= 1.0 and reqs[2].t_arrive - reqs[1].t_reply >= 1.0
    assert (cn["requests"], cn["ok"], cn["retries"], cn["bans"]) == (3, 1, 2, 1)


def test_5xx_retried_with_backoff_then_ok(server):
    server.fail_next(Fault(500), Fault(503))

    recs, cn = klines_once(server, "5m", 3)
    assert len(recs) == 3
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (3, 1, 2, {"500": 1, "503": 1})
    assert cn["last_status"] == 200


def test_timeout_retried_then_ok(server):
    server.fail_next(Fault(None, delay=5.0))

    recs, cn = klines_once(server, "1m", 2, timeout_sec=0.3)
    assert len(recs) == 2
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (2, 1, 1, {"timeout": 1})


def test_retries_exhausted_raise(server):
    server.fail_next(*[Fault(500)] * 3)

    async def go():
        c = _client(server, retries=2)
        try:
            with pytest.raises(RestError) as e:
                await c.klines("BTCUSDT", "1m", 2, now_ms=T0)
            return e.value, c.counters()
        finally:
            await c.aclose()
    err, cn = run(go())
    assert (err.status, err.code) == (500, -1000)
    assert (cn["requests"], cn["ok"], cn["retries"], cn["errors"]) == (3, 0, 2, {"500": 3})


def test_client_error_not_retried(server):
    async def go():
        c = _client(server)
        try:
            with pytest.raises(RestError) as e:
                await c.klines("NOPEUSDT", "1m", 2)
            return e.value, c.counters()
        finally:
            await c.aclose()
    err, cn = run(go())
    assert (err.status, err.code, err.msg) == (400, -1121, "Invalid symbol.")
    assert (cn["requests"], cn["retries"], cn["errors"]) == (1, 0, {"400": 1})


def test_bad_body_is_an_error(server):
    server.fail_next(Fault(200, body=b"<html>captive portal</html>"))

    async def go():
        c = _client(server)
        try:
            with pytest.raises(RestError, match="bad klines body"):
                await c.klines("BTCUSDT", "1m", 2)
            return c.counters()
        finally:
            await c.aclose()
    cn = run(go())
    assert cn["errors"] == {"bad_body": 1} and cn["requests"] == 1


def test_unreachable_host_retried_then_raises():
    from tests.support.ports import free_port
    port = free_port()

    async def go():
        c = BinanceRestClient(f"http://127.0.0.1:{port}", retries=2, backoff_base_sec=0.01,
                              backoff_max_sec=0.02, timeout_sec=2)
        try:
            with pytest.raises(RestError) as e:
                await c.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1")
            return e.value, c.counters()
        finally:
            await c.aclose()
    err, cn = run(go())
    assert err.status == 0
    assert (cn["requests"], cn["retries"], cn["errors"]) == (3, 2, {"network": 3})


def test_self_throttle_waits_for_the_next_weight_window(server):
    server.weight_override = 2000          # > 80 % of 2400

    async def go():
        c = _client(server, weight_window_sec=1.0)
        try:
            await c.klines("BTCUSDT", "1m", 2, now_ms=T0)
            w_first = time.time()
            await c.klines("BTCUSDT", "1m", 2, now_ms=T0)
            return w_first, time.time(), c.counters()
        finally:
            await c.aclose()
    w_first, w_second, cn = run(go())
    assert cn["throttled"] == 1 and cn["throttled_ms"] > 0
    assert int(w_second) > int(w_first)     # the second request went out in a later 1 s window
    assert cn["weight_used"] == 2000
