"""The feeds' WebSocket client over picows (WS_TRANSPORT=picows): wsclient's surface, picows' I/O.

picows (a Cython WebSocket library, the optional `picows` extra) performs the handshake, reads
into its own buffer and splits frames in C, calling a listener once per frame. This module is
that listener: it gives the feed shell exactly what actors.feed.wsclient gives it (`connect`
returns an object with `opened`, `closed`, `send_text`, `close`, `abort`, `frames_in`, `pings`,
`proxy`), so parsers, sinks and the shell do not know which transport runs.

Invariants (those of wsclient, kept here with picows' means):
- every frame complete in one read goes to `on_frames(frames, ts_recv_ns)` in ONE call, in
  order, with one receive timestamp (taken at the read's first frame): frames are collected
  and flushed on the frame picows marks `last_in_buffer`, which is the last frame its parser
  found in the bytes of that read;
- fragmented messages are reassembled; a fragment that would take the message over `max_size`
  fails the connection with 1009 (`message_too_big`) before it is appended; a single frame over
  `max_size` is refused by picows on its header (1009, `frame_too_big`);
- a ping is answered with a pong carrying its payload (counted in `pings`) before any later
  frame is handled: picows' own auto-pong is off, since it would hide pings from the count;
- RSV bits fail the connection with 1002 (`masked_or_rsv`); masked frames and reserved opcodes
  are refused by picows' parser (1002), reported as `masked_or_rsv` / `unknown_opcode`; any
  other protocol error picows finds closes with its code and no failure kind;
- a server close resolves `closed` with WsClosed(code, reason) (1005 and "" when it gave no
  code) and is echoed; a dropped TCP connection resolves it with WsClosed(None, ...);
- a non-101 answer to the upgrade raises wsclient.HandshakeRefused with the status line; every
  error of `connect` is an OSError or TimeoutError, as the shell's reconnect loop expects;
- no proxies: when one is configured for the URL (wsclient.proxy_for, or given), `connect`
  raises wsclient.ProxyError saying so, on every attempt (the websockets transport tunnels
  through HTTP CONNECT proxies; this one does not, so as not to run a second, differently
  behaving tunnel implementation).
"""
from __future__ import annotations

import asyncio
import logging
import ssl

from picows import (WSError, WSHandshakeError, WSListener, WSMsgType, WSProtocolError, WSTransport,
                    ws_connect)
from websockets.frames import Close, CloseCode
from websockets.uri import parse_uri

from actors.feed.wsclient import HandshakeRefused, OnFrames, ProxyError, WsClosed, proxy_for
from config.logging import redact_url
from ipc import clock

log = logging.getLogger("feed")
READ_BUFFER_BYTES = 256 * 1024     # picows' read buffer at start: asyncio's own read size
_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PING, _CLOSE = WSMsgType.PING, WSMsgType.CLOSE


def _failure_of(code: int, msg: str) -> str | None:
    """The wsclient.FAILURES kind of a protocol error picows' own parser found, by its message
    (picows 2.3.1's texts: test_wsclient's protocol-error cases pin them)."""
    if code == CloseCode.MESSAGE_TOO_BIG:
        return "frame_too_big"
    if "masked" in msg:
        return "masked_or_rsv"
    if "invalid opcode" in msg:
        return "unknown_opcode"
    return None


class PicowsWebSocket(WSListener):
    def __init__(self, url: str, on_frames: OnFrames, max_size: int):
        self.url = url
        self.on_frames = on_frames
        self.max_size = max_size
        self.transport: WSTransport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        for fut in (self.opened, self.closed):       # often polled, not awaited (as wsclient's)
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._batch: list[bytes] = []
        self._ts = 0                    # receive time of the read being collected; 0: none yet
        self._frag: list[bytes] | None = None
        self._frag_size = 0
        self._done = False              # we failed or saw the close: later frames are dropped
        self._watch: asyncio.Task | None = None
        self.frames_in = 0
        self.pings = 0
        self.proxy: str | None = None   # always None: this transport goes direct

    # --- WSListener -----------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        if not self._ts:
            self._ts = clock.now_ns()
        if not self._done:
            self._frame(frame)
        if frame.last_in_buffer:
            self._flush()

    def _frame(self, frame) -> None:
        op = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._fail(CloseCode.PROTOCOL_ERROR, "RSV bits from the server", "masked_or_rsv")
        elif op is _TEXT or op is _BINARY:
            if self._frag is not None:
                self._fail(CloseCode.PROTOCOL_ERROR, "data frame inside a fragmented message",
                           "interleaved_message")
            elif frame.fin:
                self._batch.append(frame.get_payload_as_bytes())
            else:
                self._frag, self._frag_size = [frame.get_payload_as_bytes()], frame.payload_size
        elif op is _CONT:
            if self._frag is None:
                self._fail(CloseCode.PROTOCOL_ERROR, "continuation without a start", "bad_continuation")
            elif self._frag_size + frame.payload_size > self.max_size:
                self._fail(CloseCode.MESSAGE_TOO_BIG, f"fragmented message over {self.max_size} bytes",
                           "message_too_big")
            else:
                self._frag.append(frame.get_payload_as_bytes())
                self._frag_size += frame.payload_size
                if frame.fin:
                    self._batch.append(b"".join(self._frag))
                    self._frag, self._frag_size = None, 0
        elif op is _PING:
            self.pings += 1
            self.transport.send_pong(frame.get_payload_as_bytes())
        elif op is _CLOSE:
            self._on_close(frame.get_payload_as_bytes())
        # a PONG needs nothing (we send no pings); picows' parser refuses any other opcode

    def _flush(self) -> None:
        batch, ts = self._batch, self._ts
        self._ts = 0
        if batch:
            self._batch = []
            self.frames_in += len(batch)
            self.on_frames(batch, ts)

    def _on_close(self, payload: bytes) -> None:
        self._done = True
        try:
            close = Close.parse(payload) if payload else None
        except Exception:          # noqa: BLE001 - a malformed close payload is still a close
            close = None
        code, reason = (close.code, close.reason) if close else (CloseCode.NO_STATUS_RCVD, "")
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, reason))
        if close:
            self.transport.send_close(code, reason.encode())
        else:
            self.transport.send(_CLOSE, b"")           # echo "no status" as an empty close
        self.transport.disconnect()

    def _fail(self, code: int, reason: str, failure: str) -> None:
        self._flush()              # what came before the bad frame in this read is delivered
        self._done = True
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, f"failed: {reason}", failure))
        self.transport.send_close(code, reason[:100].encode())
        self.transport.disconnect()

    async def _watch_disconnect(self) -> None:
        """Resolve `closed` when picows reports the end (a protocol error its parser found, or TCP)."""
        try:
            await self.transport.wait_disconnected()
            exc = WsClosed(None, "connection lost")
        except WSProtocolError as e:
            code, msg = int(e.args[0]), str(e.args[1]) if len(e.args) > 1 else ""
            exc = WsClosed(code, f"failed: {msg}", _failure_of(code, msg))
        except Exception as e:     # noqa: BLE001 - an exception out of on_frames: a bug, shown whole
            log.error("frame handler failed on %s", redact_url(self.url), exc_info=e)
            exc = WsClosed(CloseCode.INTERNAL_ERROR, f"failed: {e!r}")
        self._flush()
        if not self.closed.done():
            self.closed.set_exception(exc)

    # --- API ------------------------------------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        self.transport.send(_TEXT, data)

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Close handshake: send a close frame, wait for the server's (or `timeout`), drop TCP."""
        t = self.transport
        if t is None or t.is_disconnected:
            return
        if not t.is_close_frame_sent:
            t.send_close(code, reason.encode())
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except (TimeoutError, OSError, asyncio.CancelledError):
            pass
        t.disconnect()
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, reason or "closed by us"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


async def connect(url: str, on_frames: OnFrames, *, open_timeout: float = 10.0,
                  max_size: int = 1 << 22, proxy: str | None | bool = True,
                  ssl_context: ssl.SSLContext | None = None) -> PicowsWebSocket:
    """wsclient.connect's contract over picows (module docstring); a proxy is refused."""
    parse_uri(url)                       # the same InvalidURI as the websockets transport
    if proxy is True:
        proxy = proxy_for(url)
    if proxy is not None:
        raise ProxyError(redact_url(proxy), f"WS_TRANSPORT=picows does not tunnel through proxies "
                         f"(for {redact_url(url)}): use WS_TRANSPORT=websockets, or NO_PROXY for this host")
    ws = PicowsWebSocket(url, on_frames, max_size)

    async def _open() -> None:
        try:
            transport, _ = await ws_connect(
                lambda: ws, url, ssl_context=ssl_context, websocket_handshake_timeout=open_timeout,
                enable_auto_pong=False, max_frame_size=max_size, max_redirects=0,
                read_buffer_init_size=READ_BUFFER_BYTES)
        except WSHandshakeError as exc:
            status = exc.raw_header.split(b"\r\n", 1)[0].decode("latin-1") if exc.raw_header else str(exc)
            raise HandshakeRefused(f"{redact_url(url)}: {status}") from None
        except WSError as exc:            # not an OSError: the shell's reconnect loop must see one
            raise ConnectionError(f"{redact_url(url)}: {exc}") from None
        ws.transport = transport
        ws._watch = asyncio.ensure_future(ws._watch_disconnect())

    try:
        await asyncio.wait_for(_open(), open_timeout)
    except BaseException as exc:
        if not ws.opened.done():
            ws.opened.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
        ws.abort()
        raise
    ws.opened.set_result(ws.transport.response)
    return ws
