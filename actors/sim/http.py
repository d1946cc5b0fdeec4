"""HTTP on the simulator's WebSocket ports, shared by every venue's server (Binance, Polymarket).

websockets answers plain HTTP through `process_request`, but parses only GET requests without a
body. `SimConn` takes a POST's body off the byte stream before websockets sees the request and
keeps it in `http_body`; `json_response` builds the answer.

Invariants:
- a GET (WebSocket upgrade or REST) reaches websockets byte for byte; a POST reaches it without
  its body and without its Content-Length header; a body is at most MAX_BODY bytes;
- when a connection has a `session` (a venue's per-connection state with `note_incoming(now_sec)`
  and `msg_limit`), every incoming text, binary, ping and pong frame is counted against it, and
  the first frame over the limit closes the connection with 1008, once;
- `json_response` sends exactly one Content-Type, application/json.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Response

__all__ = ["SimConn", "json_response", "MAX_HEAD", "MAX_BODY"]

log = logging.getLogger("sim")

_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r\n")
MAX_HEAD = 64 << 10
MAX_BODY = 64 << 10


class MessageLimit(Protocol):
    msg_limit: int

    def note_incoming(self, now_sec: float) -> bool: ...


class SimConn(ServerConnection):
    """A server connection that counts incoming frames against the venue's message limit and
    takes the body off a POST request (websockets rejects request bodies)."""
    session: MessageLimit | None = None
    limited = False
    _close_task: asyncio.Task | None = None
    http_body = b""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pre: bytearray | None = bytearray()   # bytes before the request head is complete

    def data_received(self, data: bytes) -> None:
        pre = self._pre
        if pre is None:
            super().data_received(data)
            return
        pre += data
        end = pre.find(b"\r\n\r\n")
        if end < 0 and len(pre) < MAX_HEAD:
            return
        head = bytes(pre[:end + 4]) if end >= 0 else b""
        if not head.startswith(b"POST "):
            self._pre = None
            super().data_received(bytes(pre))   # a GET (WebSocket or REST): untouched
            return
        m = _CONTENT_LENGTH.search(head)
        n = min(int(m.group(1)), MAX_BODY) if m else 0
        if len(pre) < end + 4 + n:
            return                              # the body is still coming
        self.http_body = bytes(pre[end + 4:end + 4 + n])
        self._pre = None
        super().data_received(_CONTENT_LENGTH.sub(b"", head) + bytes(pre[end + 4 + n:]))

    def process_event(self, event) -> None:
        if (isinstance(event, Frame) and self.session is not None and not self.limited
                and event.opcode in _COUNTED):
            if not self.session.note_incoming(time.monotonic()):
                self.limited = True
                log.warning("sim: %s sent more than %d messages/s: closing", self.remote_address,
                            self.session.msg_limit)
                self._close_task = self.loop.create_task(self.close(1008, "Too many requests"))
        super().process_event(event)


def json_response(conn: ServerConnection, status: int, body: str,
                  headers: list[tuple[str, str]] = ()) -> Response:
    """A response with `body` as application/json (replacing websockets' text/plain)."""
    resp = conn.respond(status, body)
    del resp.headers["Content-Type"]
    resp.headers["Content-Type"] = "application/json"
    for k, v in headers:
        resp.headers[k] = v
    return resp
