"""WS_TRANSPORT: the setting, its mapping to a client, and what the picows client does differently
from the websockets one (no proxy tunnel: refused, named; TLS to the venue checked the same way).
The behaviour both clients share is tested over both in test_wsclient.py."""
from __future__ import annotations

import asyncio
import os
import ssl

import pytest
import uvloop
from websockets.asyncio.server import serve

from actors.feed import picows_client, wsclient
from actors.feed.transport import connector
from config.settings import SettingsError, load_settings
from tests.support.proxy import self_signed


@pytest.fixture
def env(monkeypatch):
    """No proxy variable from the outside: each test sets exactly the ones it is about."""
    for k in list(os.environ):
        if k.lower().endswith("_proxy"):
            monkeypatch.delenv(k)
    return monkeypatch


def test_the_setting_names_the_client():
    assert load_settings(env_file=None).venues.ws_transport == "websockets"
    assert connector(load_settings(env_file=None).venues.ws_transport) is wsclient.connect
    assert connector(load_settings(env_file=None, ws_transport="picows").venues.ws_transport) is picows_client.connect
    with pytest.raises(SettingsError) as e:
        load_settings(env_file=None, ws_transport="uvws")
    assert "WS_TRANSPORT: Input should be 'websockets' or 'picows' (got 'uvws')" in str(e.value)
    with pytest.raises(ValueError, match="unknown WebSocket transport 'uvws'; known: websockets, picows"):
        connector("uvws")


def test_picows_chosen_but_not_installed_stops_the_start(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "picows" else real(name, *a))
    with pytest.raises(SettingsError) as e:
        load_settings(env_file=None, ws_transport="picows")
    assert "WS_TRANSPORT: picows is not installed (pip install 'tdc-collector[picows]') (got 'picows')" in str(e.value)
    assert load_settings(env_file=None).venues.ws_transport == "websockets"   # the default needs nothing


async def _hello_server(**kw):
    async def handler(ws):
        await ws.send("hello")
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, compression=None, **kw)
    return srv, srv.sockets[0].getsockname()[1]


async def _hello(url: str, **kw) -> list[bytes]:
    got: list[bytes] = []
    ws = await picows_client.connect(url, lambda frames, ts: got.extend(frames), open_timeout=5, **kw)
    for _ in range(500):
        if got:
            break
        await asyncio.sleep(0.01)
    await ws.close()
    return got


def test_picows_refuses_a_proxy_by_name_and_no_proxy_goes_direct(env):
    """A proxy given or named by the environment is a ProxyError (an OSError: the feed backs off
    and logs it) saying what to do, credentials redacted; NO_PROXY for the host connects directly."""
    async def main():
        srv, port = await _hello_server()
        url = f"ws://127.0.0.1:{port}/x"
        errors = []
        with pytest.raises(wsclient.ProxyError) as e:
            await picows_client.connect(url, lambda *a: None, proxy="http://user:secret@127.0.0.1:3128")
        errors.append(e.value)
        env.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
        with pytest.raises(wsclient.ProxyError) as e:
            await picows_client.connect(url, lambda *a: None)
        errors.append(e.value)
        env.setenv("NO_PROXY", "127.0.0.1")
        got = await _hello(url)
        srv.close()
        return errors, got, port

    errors, got, port = asyncio.run(asyncio.wait_for(main(), 20))
    assert [str(e) for e in errors] == [
        f"proxy http://user:***@127.0.0.1:3128: WS_TRANSPORT=picows does not tunnel through proxies "
        f"(for ws://127.0.0.1:{port}/x): use WS_TRANSPORT=websockets, or NO_PROXY for this host",
        f"proxy http://127.0.0.1:3128: WS_TRANSPORT=picows does not tunnel through proxies "
        f"(for ws://127.0.0.1:{port}/x): use WS_TRANSPORT=websockets, or NO_PROXY for this host"]
    assert all(isinstance(e, OSError) and "secret" not in str(e) for e in errors)
    assert got == [b"hello"]


def test_picows_checks_the_venue_certificate_against_its_name(env, tmp_path):
    """wss:// over picows under uvloop (as the feeds run): the venue's certificate, valid for
    localhost only, is accepted for localhost and refused for 127.0.0.1 (an OSError)."""
    server_ctx, client_ctx = self_signed(tmp_path)

    async def main():
        srv, port = await _hello_server(ssl=server_ctx)
        got = await _hello(f"wss://localhost:{port}/x", ssl_context=client_ctx, proxy=None)
        with pytest.raises(ssl.SSLCertVerificationError) as e:
            await picows_client.connect(f"wss://127.0.0.1:{port}/x", lambda *a: None, open_timeout=5,
                                        ssl_context=client_ctx, proxy=None)
        srv.close()
        return got, e.value

    got, bad = uvloop.run(asyncio.wait_for(main(), 20))
    assert got == [b"hello"]
    assert "IP address mismatch" in str(bad) and isinstance(bad, OSError)
