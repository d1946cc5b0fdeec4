"""A lean WebSocket client for high-rate market data.

websockets' sans-I/O `ClientProtocol` performs and validates the opening handshake and encodes
(masks) every frame we send; after the handshake this module parses the server's frames itself,
in batches: every frame complete in one TCP read is handed to `on_frames(frames, ts_recv_ns)` in
a single call. That removes the per-message futures and queues of a general-purpose client, which
cost more than our whole parse-store-publish path at 100k+ messages/s.

Invariants:
- frames from the server are unmasked and carry no RSV bits (we negotiate no extension); anything
  else fails the connection with close code 1002, and a frame over `max_size`, or a fragmented
  message whose fragments add up to more than `max_size`, with 1009 — before its bytes are held;
  the failure's kind is `WsClosed.failure` (FAILURES), for the caller to count;
- a ping is answered with a pong carrying its payload before any later frame is processed;
- fragmented messages are reassembled (a new data frame in the middle of one is a protocol error);
  text and binary payloads are delivered as `bytes` (UTF-8 validity of text is left to the JSON
  parser, which rejects invalid UTF-8);
- re-buffering is linear: the bytes of a frame that spans many reads are appended, and parsed
  once when the whole frame is there (not re-copied and re-parsed on every read); the handshake
  response is capped at MAX_HEAD bytes;
- all frames of one read share one receive timestamp, taken when the read returned;
- `closed` resolves when the connection ends: with `WsClosed` (an OSError) carrying the close code
  and reason, so callers treat it like any network error.

Proxies (`proxy_for`): the standard environment variables, read by urllib's getproxies (a
lower-case name wins over its upper-case twin), route a connection through an HTTP CONNECT
tunnel: for wss:// WSS_PROXY, else HTTPS_PROXY, else ALL_PROXY; for ws:// WS_PROXY, else
HTTP_PROXY, else ALL_PROXY; a host NO_PROXY matches (urllib's proxy_bypass) goes direct. The
CONNECT request and the parsing of the proxy's answer are websockets' own (websockets.proxy,
websockets.asyncio.client.connect_http_proxy: `user:pass@` becomes Proxy-Authorization Basic; the
answer's lines are capped at 8 KiB and 128 headers); TLS to the venue then runs inside the tunnel
with the venue's host name (SNI and certificate check). Every way a proxy can fail (unreachable,
non-2xx, closed, malformed or over-long answer, unsupported scheme) is a `ProxyError`, an OSError
naming the proxy with its credentials redacted, so the feed's reconnect/backoff treats it as a
network error. Error texts carry URLs redacted (config.logging.redact_url).
"""
from __future__ import annotations

import asyncio
import ssl
import urllib.request
from typing import Callable

from websockets.asyncio.client import connect_http_proxy
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidProxy, InvalidProxyMessage, InvalidProxyStatus
from websockets.frames import Close, CloseCode
from websockets.http11 import USER_AGENT, Response
from websockets.proxy import parse_proxy
from websockets.uri import WebSocketURI, parse_uri

from config.logging import redact_url
from ipc import clock

OnFrames = Callable[[list[bytes], int], None]
_HEADER_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024          # handshake response bytes (status line + headers) we hold at most
# why we failed a connection (WsClosed.failure): the kinds a caller counts
FAILURES = ("frame_too_big", "message_too_big", "masked_or_rsv", "bad_continuation",
            "interleaved_message", "unknown_opcode")


class WsClosed(ConnectionError):
    def __init__(self, code: int | None, reason: str, failure: str | None = None):
        super().__init__(f"websocket closed: code={code} reason={reason!r}")
        self.code, self.reason = code, reason
        self.failure = failure          # one of FAILURES when we failed the connection, else None


class HandshakeRefused(ConnectionError):
    """The server answered the upgrade with something other than 101 (e.g. 404, 429, 503)."""


class ProxyError(ConnectionError):
    """The proxy did not open a tunnel; `proxy` is its address with credentials redacted, `status`
    its HTTP answer when it gave one (407, 502, ...)."""

    def __init__(self, proxy: str, msg: str, status: int | None = None):
        super().__init__(f"proxy {proxy}: {msg}")
        self.proxy, self.status = proxy, status


class FastWebSocket(asyncio.Protocol):
    def __init__(self, url: str, on_frames: OnFrames, max_size: int):
        self.url = url
        self.on_frames = on_frames
        self.max_size = max_size
        self.proto = ClientProtocol(parse_uri(url), max_size=max_size)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        # the end of a link is often learnt by polling, not awaiting, and a TLS failure inside a
        # proxy tunnel fails `opened` after connect() already raised: never warn they went unread
        for fut in (self.opened, self.closed):
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._head = bytearray()        # handshake bytes until the end of the response headers
        self._buf = bytearray()
        self._need = 0                  # bytes _buf must hold before parsing it is worth a pass
        self._frag: list[bytes] | None = None
        self._frag_size = 0
        self._open = False
        self.frames_in = 0
        self.pings = 0
        self.proxy: str | None = None   # the proxy this link runs through (redacted), or None

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.request = self.proto.connect()
        self.proto.send_request(self.request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self._open:
            start = max(0, len(self._head) - 3)     # a terminator split across reads
            self._head += data
            end = self._head.find(_HEADER_END, start)
            if end < 0:
                if len(self._head) > MAX_HEAD:
                    self._fail_open(HandshakeRefused(
                        f"{redact_url(self.url)}: handshake response over {MAX_HEAD} bytes"))
                return
            head, rest = bytes(self._head[:end + 4]), bytes(self._head[end + 4:])
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            if status.split(" ")[1:2] != ["101"]:
                self._fail_open(HandshakeRefused(f"{redact_url(self.url)}: {status}"))
                return
            self._head.clear()
            self.proto.receive_data(head)
            events = self.proto.events_received()
            exc = self.proto.handshake_exc
            if exc is not None or not any(isinstance(e, Response) for e in events):
                self._fail_open(exc or ConnectionError("no handshake response"))
                return
            self._open = True
            self.opened.set_result(events[0])
            if not rest:
                return
            data = rest
        ts = clock.now_ns()
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return                   # the pending frame is still incomplete: nothing to parse
            data = bytes(buf)
            buf.clear()
        self._need = 0
        out = self._parse(data)
        if out:
            self.frames_in += len(out)
            self.on_frames(out, ts)

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self._fail_open(exc or ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_exception(WsClosed(None, f"connection lost: {exc!r}" if exc else "connection lost"))

    # --- frames -------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos, end = 0, len(data)
        while end - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            n = b1 & 0x7F
            if n < 126:
                hdr = 2
            elif n == 126:
                if end - pos < 4:
                    break
                n, hdr = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
            else:
                if end - pos < 10:
                    break
                n, hdr = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80 or b0 & 0x70:
                self._fail(CloseCode.PROTOCOL_ERROR, "masked frame or RSV bits from the server", "masked_or_rsv")
                return out
            if n > self.max_size:
                self._fail(CloseCode.MESSAGE_TOO_BIG, f"frame of {n} bytes", "frame_too_big")
                return out
            op = b0 & 0x0F
            if op == 0 and self._frag is not None and self._frag_size + n > self.max_size:
                # judged on the header: the fragment's bytes are never held
                self._fail(CloseCode.MESSAGE_TOO_BIG, f"fragmented message over {self.max_size} bytes",
                           "message_too_big")
                return out
            if end - pos < hdr + n:
                self._need = hdr + n     # parse again once the whole frame is buffered
                break
            payload = data[pos + hdr:pos + hdr + n]
            pos += hdr + n
            if op in (1, 2):
                if self._frag is not None:
                    self._fail(CloseCode.PROTOCOL_ERROR, "data frame inside a fragmented message",
                               "interleaved_message")
                    return out
                if b0 & 0x80:
                    out.append(payload)
                else:
                    self._frag, self._frag_size = [payload], n
            elif op == 0:
                if self._frag is None:
                    self._fail(CloseCode.PROTOCOL_ERROR, "continuation without a start", "bad_continuation")
                    return out
                self._frag.append(payload)
                self._frag_size += n
                if b0 & 0x80:
                    out.append(b"".join(self._frag))
                    self._frag, self._frag_size = None, 0
            elif op == 9:
                self.pings += 1
                self.proto.send_pong(payload)
                self._flush()
            elif op == 8:
                self._on_close(payload)
                return out
            elif op != 10:
                self._fail(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}", "unknown_opcode")
                return out
        if pos < end:
            self._buf += data[pos:]
        return out

    def _on_close(self, payload: bytes) -> None:
        try:
            close = Close.parse(payload) if payload else None
        except Exception:          # noqa: BLE001 - a malformed close payload is still a close
            close = None
        code, reason = (close.code, close.reason) if close else (CloseCode.NO_STATUS_RCVD, "")
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, reason))
        try:
            self.proto.send_close(code if close else None, reason if close else "")
            self._flush()
        except Exception:          # noqa: BLE001 - we are closing anyway
            pass
        self.transport.close()

    def _fail(self, code: int, reason: str, failure: str) -> None:
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, f"failed: {reason}", failure))
        try:
            self.proto.send_close(code, reason[:100])
            self._flush()
        finally:
            self.transport.close()

    def _fail_open(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if not self.closed.done():
            self.closed.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk and self.transport is not None and not self.transport.is_closing():
                self.transport.write(chunk)

    # --- API ------------------------------------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        self.proto.send_text(data)
        self._flush()

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Close handshake: send a close frame, wait for the server's (or `timeout`), drop TCP."""
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.proto.send_close(code, reason)
            self._flush()
        except Exception:          # noqa: BLE001 - the protocol may already be closing
            pass
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except (TimeoutError, OSError, asyncio.CancelledError):
            pass
        self.transport.close()
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, reason or "closed by us"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def proxy_for(url: str) -> str | None:
    """The proxy address the environment names for `url` (module docstring), or None: direct."""
    uri = parse_uri(url)
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    for scheme in (("wss", "https", "all") if uri.secure else ("ws", "http", "all")):
        if proxies.get(scheme):
            return proxies[scheme]
    return None


async def _tunnel(proxy: str, uri: WebSocketURI, proxy_ssl: ssl.SSLContext | None) -> asyncio.Transport:
    """A transport whose bytes reach `uri`'s host:port through `proxy`'s CONNECT tunnel."""
    shown = redact_url(proxy)
    try:
        parsed = parse_proxy(proxy)
    except InvalidProxy as exc:
        raise ProxyError(shown, f"not a proxy address: {exc.msg}") from None   # str(exc) shows secrets
    if parsed.scheme not in ("http", "https"):
        raise ProxyError(shown, f"{parsed.scheme}:// is not supported (HTTP CONNECT proxies only)")
    kw = {}
    if parsed.scheme == "https":        # TLS to the proxy itself, then the venue's TLS inside it
        kw = {"ssl": proxy_ssl or ssl.create_default_context(), "server_hostname": parsed.host}
    target = f"CONNECT {uri.host}:{uri.port}"
    try:
        return await connect_http_proxy(parsed, uri, user_agent_header=USER_AGENT, **kw)
    except InvalidProxyStatus as exc:
        r = exc.response
        raise ProxyError(shown, f"answered {r.status_code} {r.reason_phrase} to {target}",
                         r.status_code) from None
    except InvalidProxyMessage as exc:
        cause = exc.__cause__
        raise ProxyError(shown, f"no valid answer to {target}: {type(cause).__name__}: {cause}") from None
    except OSError as exc:
        raise ProxyError(shown, f"unreachable: {exc}") from exc


async def connect(url: str, on_frames: OnFrames, *, open_timeout: float = 10.0,
                  max_size: int = 1 << 22, proxy: str | None | bool = True,
                  ssl_context: ssl.SSLContext | None = None) -> FastWebSocket:
    """Open `url` (ws:// or wss://) and return the client once the handshake succeeded.

    `proxy`: True (the default) asks the environment (`proxy_for`), None connects directly, a
    string is the proxy's address. `ssl_context` verifies the venue (and an https:// proxy);
    by default the system's trust store."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    ctx = (ssl_context or ssl.create_default_context()) if uri.secure else None
    if proxy is True:
        proxy = proxy_for(url)

    async def _open() -> FastWebSocket:
        ws = FastWebSocket(url, on_frames, max_size)
        ws.proxy = None if proxy is None else redact_url(proxy)
        if proxy is None:
            await loop.create_connection(lambda: ws, uri.host, uri.port, ssl=ctx,
                                         server_hostname=uri.host if ctx else None)
        else:
            transport = await _tunnel(proxy, uri, ssl_context)
            try:
                transport.set_protocol(ws)
                if ctx is not None:     # the venue's TLS inside the tunnel, checked against its name
                    transport = await loop.start_tls(transport, ws, ctx, server_hostname=uri.host)
            except BaseException:
                transport.abort()
                raise
            ws.connection_made(transport)
        try:
            await ws.opened
        except BaseException:           # refused, or the open_timeout ran out: drop the socket
            ws.abort()
            raise
        return ws

    return await asyncio.wait_for(_open(), open_timeout)
