"""The feed's WebSocket client through a real HTTP CONNECT proxy on 127.0.0.1: the standard proxy
variables and their precedence, NO_PROXY, Proxy-Authorization, each way a proxy can refuse (an
OSError naming the proxy, credentials redacted), TLS to the venue inside the tunnel, and the feed
shell streaming the sim's spot venue through the proxy."""
from __future__ import annotations

import asyncio
import base64
import os
import re
import ssl

import pytest
import uvloop
from websockets.asyncio.server import serve

from actors.feed.wsclient import ProxyError, connect, proxy_for
from tests.support.ports import free_port
from tests.support.proxy import ConnectProxy, self_signed


@pytest.fixture
def env(monkeypatch):
    """No proxy variable from the outside: each test sets exactly the ones it is about."""
    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    return monkeypatch


def run(coro, loop="asyncio"):
    if loop == "uvloop":
        return uvloop.run(asyncio.wait_for(coro, 20))
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _hello_server(**kw):
    async def handler(ws):
        await ws.send("hello")
        await ws.send("echo:" + await ws.recv())
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, compression=None, **kw)
    return srv, srv.sockets[0].getsockname()[1]


async def _converse(url: str, **kw):
    """Connect, read hello, send hi, read the echo; (frames, the client)."""
    got: list[bytes] = []
    ws = await connect(url, lambda frames, ts: got.extend(frames), open_timeout=5, **kw)
    ws.send_text(b"hi")
    deadline = asyncio.get_running_loop().time() + 5
    while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    await ws.close()
    return got, ws


P_WSS, P_HTTPS, P_HTTP, P_WS, P_ALL = (f"http://{h}:3128" for h in ("wss", "https", "http", "ws", "all"))


@pytest.mark.parametrize("variables,url,expected", [
    ({"HTTPS_PROXY": P_HTTPS, "HTTP_PROXY": P_HTTP}, "wss://fstream.binance.com/stream", P_HTTPS),
    ({"HTTPS_PROXY": P_HTTPS, "HTTP_PROXY": P_HTTP}, "ws://fstream.binance.com/stream", P_HTTP),
    ({"HTTPS_PROXY": P_HTTPS}, "ws://fstream.binance.com/stream", None),      # ws:// asks HTTP_PROXY
    ({"HTTP_PROXY": P_HTTP}, "wss://fstream.binance.com/stream", None),       # wss:// asks HTTPS_PROXY
    ({"WSS_PROXY": P_WSS, "HTTPS_PROXY": P_HTTPS}, "wss://fstream.binance.com/", P_WSS),
    ({"WS_PROXY": P_WS, "HTTP_PROXY": P_HTTP}, "ws://fstream.binance.com/", P_WS),
    ({"ALL_PROXY": P_ALL}, "wss://fstream.binance.com/", P_ALL),
    ({"ALL_PROXY": P_ALL, "HTTPS_PROXY": P_HTTPS}, "wss://fstream.binance.com/", P_HTTPS),
    ({"ALL_PROXY": P_ALL, "HTTPS_PROXY": P_HTTPS}, "ws://fstream.binance.com/", P_ALL),
    ({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}, "wss://a.example/", "http://lower:1"),
    ({"HTTPS_PROXY": P_HTTPS, "NO_PROXY": "binance.com,127.0.0.1"}, "wss://fstream.binance.com/", None),
    ({"HTTPS_PROXY": P_HTTPS, "NO_PROXY": "binance.com,127.0.0.1"}, "wss://127.0.0.1:9443/", None),
    ({"HTTPS_PROXY": P_HTTPS, "NO_PROXY": "binance.com,127.0.0.1"}, "wss://ws-subscriptions-clob.polymarket.com/", P_HTTPS),
    ({"HTTPS_PROXY": P_HTTPS, "no_proxy": "*"}, "wss://fstream.binance.com/", None),
    ({}, "wss://fstream.binance.com/", None),
])
def test_which_proxy_the_environment_names(env, variables, url, expected):
    for k, v in variables.items():
        env.setenv(k, v)
    assert proxy_for(url) == expected


def test_ws_through_http_proxy(env):
    async def main():
        srv, port = await _hello_server()
        async with ConnectProxy() as proxy:
            env.setenv("HTTP_PROXY", proxy.url())
            got, ws = await _converse(f"ws://127.0.0.1:{port}/x")
        srv.close()
        return got, ws, proxy, port

    got, ws, proxy, port = run(main())
    assert got == [b"hello", b"echo:hi"]
    assert proxy.request_lines == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]
    assert f"Host: 127.0.0.1:{port}" in proxy.heads[0]
    assert not any(h.lower().startswith("proxy-authorization") for h in proxy.heads[0])
    assert ws.proxy == proxy.url()
    assert proxy.tunnelled > 100          # the upgrade request and our frames went through it


def test_no_proxy_bypasses_the_proxy(env):
    async def main():
        srv, port = await _hello_server()
        async with ConnectProxy() as proxy:
            env.setenv("HTTP_PROXY", proxy.url())
            env.setenv("NO_PROXY", "localhost,127.0.0.1")
            got, ws = await _converse(f"ws://127.0.0.1:{port}/x")
        srv.close()
        return got, ws, proxy

    got, ws, proxy = run(main())
    assert got == [b"hello", b"echo:hi"]
    assert proxy.heads == [] and ws.proxy is None


def test_proxy_credentials_are_sent_basic_and_never_shown(env):
    async def main():
        srv, port = await _hello_server()
        async with ConnectProxy() as proxy:
            env.setenv("HTTP_PROXY", proxy.url("trader:p%40ss%3Aw0rd"))
            got, ws = await _converse(f"ws://127.0.0.1:{port}/x")
        srv.close()
        return got, ws, proxy

    got, ws, proxy = run(main())
    assert got == [b"hello", b"echo:hi"]
    basic = base64.b64encode(b"trader:p@ss:w0rd").decode()
    assert basic == "dHJhZGVyOnBAc3M6dzByZA=="
    assert f"Proxy-Authorization: Basic {basic}" in proxy.heads[0]
    assert ws.proxy == f"http://trader:***@127.0.0.1:{proxy.port}"


REFUSALS = {
    "407": (b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="p"\r\n\r\n', False,
            "answered 407 Proxy Authentication Required to CONNECT 127.0.0.1:9", 407),
    "502": (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", False,
            "answered 502 Bad Gateway to CONNECT 127.0.0.1:9", 502),
    "closed": (b"", False,
               "no valid answer to CONNECT 127.0.0.1:9: EOFError: connection closed while reading HTTP status line",
               None),
    "garbage": (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False,
                "no valid answer to CONNECT 127.0.0.1:9: ValueError: invalid HTTP status line: SSH-2.0-OpenSSH_9.6",
                None),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refusing_proxy_is_a_clear_network_error(env, case):
    answer, hold, text, status = REFUSALS[case]

    async def main():
        async with ConnectProxy(answer, hold) as proxy:
            env.setenv("HTTP_PROXY", proxy.url("trader:s3cret"))
            with pytest.raises(ProxyError) as e:
                await connect("ws://127.0.0.1:9/x", lambda *a: None, open_timeout=5)
        return e.value, proxy

    exc, proxy = run(main())
    assert isinstance(exc, OSError)       # the feed's reconnect/backoff takes it as a network error
    assert str(exc) == f"proxy http://trader:***@127.0.0.1:{proxy.port}: {text}"
    assert exc.status == status and "s3cret" not in str(exc)
    assert proxy.request_lines == ["CONNECT 127.0.0.1:9 HTTP/1.1"]


def test_an_over_long_proxy_answer_is_refused_before_it_is_held(env):
    """A status line that never ends: refused once it passes websockets' 8 KiB line cap, while the
    proxy still holds the connection open (not at EOF, not at the open timeout)."""
    async def main():
        async with ConnectProxy(b"HTTP/1.1 200 " + b"x" * 20_000, hold=True) as proxy:
            env.setenv("HTTP_PROXY", proxy.url())
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(ProxyError) as e:
                await connect("ws://127.0.0.1:9/x", lambda *a: None, open_timeout=5)
            return e.value, proxy, asyncio.get_running_loop().time() - t0

    exc, proxy, took = run(main())
    m = re.fullmatch(rf"proxy http://127\.0\.0\.1:{proxy.port}: no valid answer to CONNECT 127\.0\.0\.1:9: "
                     r"StatusLineTooLong: read (\d+) bytes, expected no more than 8192 bytes", str(exc))
    assert m and 8192 < int(m.group(1)) <= 20_013, str(exc)
    assert took < 2.0


def test_an_unreachable_or_unsupported_proxy_is_named(env):
    port = free_port()                    # nothing listens there

    async def main():
        errs = []
        for proxy in (f"http://u:pw@127.0.0.1:{port}", "socks5h://127.0.0.1:1080", "ftp://127.0.0.1:21"):
            env.setenv("HTTP_PROXY", proxy)
            with pytest.raises(ProxyError) as e:
                await connect("ws://127.0.0.1:9/x", lambda *a: None, open_timeout=5)
            errs.append(str(e.value))
        return errs

    assert run(main()) == [
        f"proxy http://u:***@127.0.0.1:{port}: unreachable: [Errno 111] Connect call failed ('127.0.0.1', {port})",
        "proxy socks5h://127.0.0.1:1080: socks5h:// is not supported (HTTP CONNECT proxies only)",
        "proxy ftp://127.0.0.1:21: not a proxy address: scheme ftp isn't supported",
    ]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_to_the_venue_runs_inside_the_tunnel(env, tmp_path, loop):
    """wss:// through HTTPS_PROXY: the proxy sees only CONNECT localhost:port, the venue sees SNI
    `localhost` and its certificate (valid for localhost only) is checked against that name. The
    same certificate asked for as 127.0.0.1 fails the check: the venue's name, not the proxy's or
    an address, is what TLS verifies."""
    server_ctx, client_ctx = self_signed(tmp_path)
    sni: list[str] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)

    async def main():
        srv, port = await _hello_server(ssl=server_ctx)
        async with ConnectProxy() as proxy:
            env.setenv("HTTPS_PROXY", proxy.url())
            got, ws = await _converse(f"wss://localhost:{port}/x", ssl_context=client_ctx)
            with pytest.raises(ssl.SSLCertVerificationError) as e:
                await connect(f"wss://127.0.0.1:{port}/x", lambda *a: None, open_timeout=5,
                              ssl_context=client_ctx)
        srv.close()
        return got, ws, proxy, port, e.value

    got, ws, proxy, port, bad = run(main(), loop)
    assert got == [b"hello", b"echo:hi"]
    assert proxy.request_lines == [f"CONNECT localhost:{port} HTTP/1.1", f"CONNECT 127.0.0.1:{port} HTTP/1.1"]
    assert sni == ["localhost", None]      # the second sent no SNI: an IP address is not a host name
    assert "IP address mismatch" in str(bad) and isinstance(bad, OSError)
    assert ws.proxy == proxy.url()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_https_proxy_gets_tls_too_and_tls_to_the_venue_runs_inside_it(env, tmp_path, loop):
    """An https:// proxy: TLS to the proxy (its certificate checked against 127.0.0.1), then, for
    wss://, the venue's own TLS inside that (TLS in TLS)."""
    venue_dir, proxy_dir = tmp_path / "venue", tmp_path / "proxy"
    venue_dir.mkdir()
    proxy_dir.mkdir()
    venue_srv_ctx, client_ctx = self_signed(venue_dir)
    proxy_srv_ctx, _ = self_signed(proxy_dir, "127.0.0.1")
    client_ctx.load_verify_locations(proxy_dir / "cert.pem")      # trusts the venue and the proxy

    async def main():
        plain, pport = await _hello_server()
        tls, tport = await _hello_server(ssl=venue_srv_ctx)
        async with ConnectProxy(ssl=proxy_srv_ctx) as proxy:
            env.setenv("HTTP_PROXY", proxy.url())
            env.setenv("HTTPS_PROXY", proxy.url())
            got_ws, _ = await _converse(f"ws://127.0.0.1:{pport}/x", ssl_context=client_ctx)
            got_wss, ws = await _converse(f"wss://localhost:{tport}/x", ssl_context=client_ctx)
        plain.close()
        tls.close()
        return got_ws, got_wss, ws, proxy, pport, tport

    got_ws, got_wss, ws, proxy, pport, tport = run(main(), loop)
    assert got_ws == got_wss == [b"hello", b"echo:hi"]
    assert proxy.request_lines == [f"CONNECT 127.0.0.1:{pport} HTTP/1.1", f"CONNECT localhost:{tport} HTTP/1.1"]
    assert ws.proxy == f"https://127.0.0.1:{proxy.port}"


def test_the_feed_streams_the_sim_through_the_proxy(env, tmp_path):
    """The feed shell (Binance spot) against the in-process sim with HTTP_PROXY set: every frame
    comes through the tunnel into the rings, and the connect log line names the proxy."""
    from actors.feed.shell import Feed
    from actors.venues.binance import spot as binance_spot
    from config.settings import load_settings
    from ipc import names
    from ipc.bus import Publisher
    from ipc.shm import unlink_prefix
    from tests.support.logs import json_logs
    from tests.support.rings import open_reader
    from tests.support.sim import running_sim
    from tests.support.stack import trade_accounting
    from tests.support.wait import wait_for_async

    prefix = "px" + tmp_path.name[-8:].replace("_", "")

    async def main(logs):
        async with running_sim(rate=300.0) as ports, ConnectProxy() as proxy:
            env.setenv("HTTP_PROXY", proxy.url())
            s = load_settings(shm_prefix=prefix, spot_ws=f"ws://127.0.0.1:{ports.spot}",
                              zmq_xsub_url="tcp://127.0.0.1:1")
            feed = Feed(s, binance_spot, "test", publisher=Publisher("tcp://127.0.0.1:1", linger_ms=0))
            conn = feed.conns[0]
            task = asyncio.create_task(feed.run_connection(conn))
            try:
                await wait_for_async(lambda: feed.sinks["trade"].written >= 100 and feed.sinks["quote"].written,
                                     20, "trades and quotes through the proxy")
            finally:
                feed.stop()
                await asyncio.wait_for(task, 10)
                feed.pub.close()
            trades = open_reader(names.venue_ring("spot", "trade"), prefix, from_oldest=True).read()
            return feed, conn, proxy, ports, trades

    try:
        with json_logs("feed_spot") as logs:
            feed, conn, proxy, ports, trades = run(main(logs))
    finally:
        unlink_prefix("/dev/shm", prefix)
    assert proxy.request_lines == [f"CONNECT 127.0.0.1:{ports.spot} HTTP/1.1"]
    assert (conn.connects, conn.reconnects, feed.parse_errors, feed.unknown) == (1, 0, 0, 0)
    data, gaps, skipped = trade_accounting(trades)
    assert len(data) >= 100 and (gaps, skipped) == (0, 0)       # every aggTrade id, once, in order
    assert (data["price"] > 0).all()
    connected = logs.find(message=f"connected combined {conn.plan.url}")
    assert len(connected) == 1
    rec = connected[0]
    assert (rec["url"], rec["venue"], rec["streams"], rec["proxy"], rec["event"]) == (
        conn.plan.url, "spot", list(conn.plan.streams), proxy.url(), "connected")
