"""The actors' JSON logs, read back from their real output: UTC RFC 3339 `ts`, connection events
with `url`, `venue` and `streams` as fields (a refused port, a refused handshake, a refusing
proxy, a REST 429 on 127.0.0.1), secrets redacted, httpx quiet at INFO."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from datetime import datetime, timezone

import httpx
import pytest
from websockets.asyncio.server import serve

from config.logging import conn_fields, redact_url, rfc3339_utc
from tests.support.logs import json_logs
from tests.support.ports import free_port
from tests.support.proxy import ConnectProxy

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _epoch(ts: str) -> float:
    assert TS.fullmatch(ts), ts
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def test_ts_is_utc_rfc3339_with_milliseconds():
    when = datetime(2026, 12, 2, 16, 33, 15, 669871, tzinfo=timezone.utc).timestamp()
    assert rfc3339_utc(when) == "2026-12-02T16:33:15.669Z"
    assert rfc3339_utc(1_000_000_000.9999) == "2001-09-09T01:46:40.999Z"   # truncated, never the next second
    with json_logs("api") as logs:
        rec = logging.makeLogRecord({"name": "api", "levelno": logging.INFO, "levelname": "INFO",
                                     "msg": "hello %s", "args": ("world",), "created": when})
        logging.getLogger().handle(rec)
    assert logs.records() == [{"ts": "2026-12-02T16:33:15.669Z", "level": "INFO", "actor": "api",
                               "name": "api", "message": "hello world"}]


@pytest.mark.parametrize("url,shown", [
    ("wss://fstream.binance.com/stream?streams=btcusdt@aggTrade", "wss://fstream.binance.com/stream?streams=btcusdt@aggTrade"),
    ("wss://fstream.binance.com/ws?listenKey=pqia91ma19a5s61cv6a81va65sdf19v8a65a1", "wss://fstream.binance.com/ws?listenKey=***"),
    ("https://api.taapi.io/bulk?secret=eyJhbGci&exchange=binance", "https://api.taapi.io/bulk?secret=***&exchange=binance"),
    ("https://h/x?apiKey=1&signature=2&timestamp=3", "https://h/x?apiKey=***&signature=***&timestamp=3"),
    ("http://trader:hunter2@127.0.0.1:3128", "http://trader:***@127.0.0.1:3128"),
    ("http://ghp_TOKEN@proxy.example:8080", "http://***@proxy.example:8080"),
    ("ws://127.0.0.1:9/x?token=", "ws://127.0.0.1:9/x?token=***"),
])
def test_urls_lose_their_credentials(url, shown):
    assert redact_url(url) == shown


def test_a_url_field_is_redacted_whoever_logs_it():
    with json_logs("feed_futures") as logs:
        logging.getLogger("feed").warning("x", extra={"url": "wss://h/ws?listenKey=abc123&x=1", "venue": "futures"})
    [rec] = logs.records()
    assert (rec["url"], rec["venue"]) == ("wss://h/ws?listenKey=***&x=1", "futures")
    assert "abc123" not in logs.text
    assert conn_fields("ws://a/b?token=t", "poly", "book_15m", code=1006) == {
        "url": "ws://a/b?token=***", "venue": "poly", "stream": "book_15m", "code": 1006}


def _spot_feed(tmp_path, url: str):
    from actors.feed.shell import Feed
    from actors.venues.binance import spot as binance_spot
    from config.settings import load_settings
    from ipc.bus import Publisher

    s = load_settings(shm_prefix="lg" + tmp_path.name[-8:].replace("_", ""), spot_ws=url,
                      zmq_xsub_url="tcp://127.0.0.1:1", feed_backoff_max_sec=0.3)
    return Feed(s, binance_spot, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))


def _fail_twice(tmp_path, url: str, setup=None):
    """Run the spot feed shell against `url` until two connects failed; (feed, logs, t0, t1)."""
    from ipc.shm import unlink_prefix
    from tests.support.wait import wait_for_async

    feed = _spot_feed(tmp_path, url)

    async def main(logs):
        ctx = setup() if setup else None
        if ctx is not None:
            await ctx.__aenter__()
        task = asyncio.create_task(feed.run_connection(feed.conns[0]))
        try:
            await wait_for_async(lambda: len(logs.find(event="connect_failed")) >= 2, 10, "two failed connects")
        finally:
            feed.stop()
            await asyncio.wait_for(task, 5)
            feed.pub.close()
            if ctx is not None:
                await ctx.__aexit__(None, None, None)

    try:
        with json_logs("feed_spot") as logs:
            t0 = time.time()
            asyncio.run(asyncio.wait_for(main(logs), 20))
            t1 = time.time()
    finally:
        unlink_prefix("/dev/shm", feed.s.ipc.shm_prefix)
    return feed, logs, t0, t1


@pytest.fixture
def no_proxy_env(monkeypatch):
    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    return monkeypatch


def test_a_refused_connection_is_logged_with_url_venue_and_streams(tmp_path, no_proxy_env):
    from actors.feed.shell import RECONNECT_BASE_SEC

    port = free_port()                      # nothing listens: the connect is refused
    feed, logs, t0, t1 = _fail_twice(tmp_path, f"ws://127.0.0.1:{port}")
    plan = feed.conns[0].plan
    failed = logs.find(event="connect_failed")
    first = failed[0]
    assert first == {
        "ts": first["ts"], "level": "WARNING", "actor": "feed_spot", "name": "feed",
        "message": f"connect combined failed: ConnectionRefusedError: [Errno 111] Connect call failed "
                   f"('127.0.0.1', {port})",
        "url": plan.url, "venue": "spot", "streams": list(plan.streams), "conn": "combined",
        "event": "connect_failed", "error": "ConnectionRefusedError", "attempt": 1}
    assert plan.url.startswith(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@")
    assert [r["attempt"] for r in failed[:2]] == [1, 2]
    # every line's ts is the UTC wall time it was written at (to the millisecond, truncated)
    stamps = [_epoch(r["ts"]) for r in logs.records()]
    assert int(t0 * 1000) / 1000 <= stamps[0] and stamps[-1] <= t1
    assert stamps == sorted(stamps)
    backoff = logs.find(event="backoff")[0]
    assert (backoff["level"], backoff["url"], backoff["venue"], backoff["attempt"]) == ("INFO", plan.url, "spot", 1)
    assert 0.5 * RECONNECT_BASE_SEC <= backoff["retry_in_sec"] <= RECONNECT_BASE_SEC
    assert backoff["message"] == f"reconnecting combined in {backoff['retry_in_sec']:.2f} s"


def test_a_refused_handshake_is_logged_with_the_status(tmp_path, no_proxy_env):
    box = {}

    class Refusing:
        async def __aenter__(self):
            self.srv = await serve(lambda ws: ws.close(), "127.0.0.1", box["port"],
                                   process_request=lambda conn, req: conn.respond(503, "busy\n"))

        async def __aexit__(self, *exc):
            self.srv.close()
            await self.srv.wait_closed()

    box["port"] = free_port()
    feed, logs, _, _ = _fail_twice(tmp_path, f"ws://127.0.0.1:{box['port']}", Refusing)
    plan = feed.conns[0].plan
    first = logs.find(event="connect_failed")[0]
    assert first["message"] == (f"connect combined failed: HandshakeRefused: {plan.url}: "
                                "HTTP/1.1 503 Service Unavailable")
    assert (first["error"], first["url"], first["venue"], first["streams"]) == (
        "HandshakeRefused", plan.url, "spot", list(plan.streams))


def test_a_refusing_proxy_is_logged_without_its_password(tmp_path, no_proxy_env):
    box = {}

    class Proxy407:
        async def __aenter__(self):
            box["proxy"] = p = ConnectProxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            await p.__aenter__()
            no_proxy_env.setenv("HTTP_PROXY", p.url("trader:s3cret"))

        async def __aexit__(self, *exc):
            await box["proxy"].__aexit__(*exc)

    port = free_port()
    feed, logs, _, _ = _fail_twice(tmp_path, f"ws://127.0.0.1:{port}", Proxy407)
    first = logs.find(event="connect_failed")[0]
    pport = box["proxy"].port
    assert first["message"] == (f"connect combined failed: ProxyError: proxy http://trader:***@127.0.0.1:{pport}: "
                                f"answered 407 Proxy Authentication Required to CONNECT 127.0.0.1:{port}")
    assert (first["error"], first["url"], first["venue"]) == ("ProxyError", feed.conns[0].plan.url, "spot")
    assert "s3cret" not in logs.text


async def _http_ok_server():
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


def test_httpx_is_quiet_at_info():
    async def get_twice(logs):
        srv, base = await _http_ok_server()
        async with httpx.AsyncClient() as c:
            r = await c.get(base + "/quiet")
            quiet = logs.records()
            logging.getLogger("httpx").setLevel(logging.INFO)      # what it did before
            await c.get(base + "/loud")
        srv.close()
        return r.status_code, quiet

    with json_logs("context", "INFO") as logs:
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
        status, quiet = asyncio.run(asyncio.wait_for(get_twice(logs), 10))
    assert status == 200 and quiet == []
    # the capture does see httpx when it is allowed to speak: the quiet result above is not vacuous
    [loud] = logs.records()
    assert (loud["name"], loud["level"]) == ("httpx", "INFO") and "/loud" in loud["message"]


def test_a_rest_429_is_logged_with_its_url_and_venue():
    from actors.clients.binance_client import BinanceRestClient
    from tests.support.kline_server import FakeClock, Fault, KlineServer

    path = "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1"
    with KlineServer(FakeClock(1_700_000_030_000)) as srv, json_logs("context") as logs:
        srv.fail_next(Fault(429, {"Retry-After": "0"}, path="/fapi/v1/klines"))

        async def go():
            c = BinanceRestClient(srv.url, "futures", backoff_base_sec=0.01, backoff_max_sec=0.05)
            try:
                return (await c.get(path)).status
            finally:
                await c.aclose()
        assert asyncio.run(asyncio.wait_for(go(), 10)) == 200
    [rec] = logs.find(status=429)
    assert (rec["level"], rec["name"], rec["url"], rec["venue"], rec["retry_in_sec"]) == (
        "WARNING", "rest", srv.url + path, "futures", 0.0)


def test_a_rest_error_carries_the_url_it_failed_on():
    from actors.clients.binance_client import BinanceRestClient
    from actors.venues.binance.rest import RestError

    port = free_port()
    path = "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1"

    async def go():
        c = BinanceRestClient(f"http://127.0.0.1:{port}", retries=1, backoff_base_sec=0.01,
                              backoff_max_sec=0.02, timeout_sec=2)
        try:
            with pytest.raises(RestError) as e:
                await c.get(path)
            return e.value
        finally:
            await c.aclose()
    err = asyncio.run(asyncio.wait_for(go(), 10))
    assert (err.status, err.url) == (0, f"http://127.0.0.1:{port}{path}")
