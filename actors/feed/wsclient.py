"""A lean WebSocket client for high-rate market data.

websockets' sans-I/O `ClientProtocol` performs and validates the opening handshake and encodes
(masks) every frame we send; after the handshake this module parses the server's frames itself,
in batches: every frame complete in one TCP read is handed to `on_frames(frames, ts_recv_ns)` in
a single call. That removes the per-message futures and queues of a general-purpose client, which
cost more than our whole parse-store-publish path at 100k+ messages/s.

Invariants:
- frames from the server are unmasked and carry no RSV bits (we negotiate no extension); anything
  else, or a frame over `max_size`, fails the connection with close code 1002/1009;
- a ping is answered with a pong carrying its payload before any later frame is processed;
- fragmented messages are reassembled; text and binary payloads are delivered as `bytes`
  (UTF-8 validity of text is left to the JSON parser, which rejects invalid UTF-8);
- all frames of one read share one receive timestamp, taken when the read returned;
- `closed` resolves when the connection ends: with `WsClosed` (an OSError) carrying the close code
  and reason, so callers treat it like any network error.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Callable
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode
from websockets.http11 import Response
from websockets.uri import parse_uri

from ipc import clock

OnFrames = Callable[[list[bytes], int], None]
_HEADER_END = b"\r\n\r\n"


class WsClosed(ConnectionError):
    def __init__(self, code: int | None, reason: str):
        super().__init__(f"websocket closed: code={code} reason={reason!r}")
        self.code, self.reason = code, reason


class HandshakeRefused(ConnectionError):
    """The server answered the upgrade with something other than 101 (e.g. 404, 429, 503)."""


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
        # the end of a link is often learnt by polling, not awaiting: never warn it went unread
        self.closed.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._head = bytearray()        # handshake bytes until the end of the response headers
        self._buf = bytearray()
        self._frag: list[bytes] | None = None
        self._open = False
        self.frames_in = 0
        self.pings = 0

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.request = self.proto.connect()
        self.proto.send_request(self.request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if not self._open:
            self._head += data
            end = self._head.find(_HEADER_END)
            if end < 0:
                return
            head, rest = bytes(self._head[:end + 4]), bytes(self._head[end + 4:])
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            if status.split(" ")[1:2] != ["101"]:
                self._fail_open(HandshakeRefused(f"{self.url}: {status}"))
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
            data = bytes(buf)
            buf.clear()
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
                self._fail(CloseCode.PROTOCOL_ERROR, "masked frame or RSV bits from the server")
                return out
            if n > self.max_size:
                self._fail(CloseCode.MESSAGE_TOO_BIG, f"frame of {n} bytes")
                return out
            if end - pos < hdr + n:
                break
            payload = data[pos + hdr:pos + hdr + n]
            pos += hdr + n
            op = b0 & 0x0F
            if op in (1, 2):
                if b0 & 0x80:
                    out.append(payload)
                else:
                    self._frag = [payload]
            elif op == 0:
                if self._frag is None:
                    self._fail(CloseCode.PROTOCOL_ERROR, "continuation without a start")
                    return out
                self._frag.append(payload)
                if b0 & 0x80:
                    out.append(b"".join(self._frag))
                    self._frag = None
            elif op == 9:
                self.pings += 1
                self.proto.send_pong(payload)
                self._flush()
            elif op == 8:
                self._on_close(payload)
                return out
            elif op != 10:
                self._fail(CloseCode.PROTOCOL_ERROR, f"unknown opcode {op}")
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

    def _fail(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_exception(WsClosed(code, f"failed: {reason}"))
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


async def connect(url: str, on_frames: OnFrames, *, open_timeout: float = 10.0,
                  max_size: int = 1 << 22) -> FastWebSocket:
    """Open `url` (ws:// or wss://) and return the client once the handshake succeeded."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname
    port = parts.port or (443 if secure else 80)
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context() if secure else None

    async def _open() -> FastWebSocket:
        _, ws = await loop.create_connection(lambda: FastWebSocket(url, on_frames, max_size), host, port,
                                             ssl=ctx, server_hostname=host if secure else None)
        await ws.opened
        return ws

    return await asyncio.wait_for(_open(), open_timeout)
