"""The API's HTTP front: gunicorn's master with uvicorn workers (`--worker-class
actors.obs.uvicorn_front.ApiWorker`) serving the Falcon ASGI app (actors.api.asgi_app).

Why: a sync worker blocks on a half-sent request until its timeout, so a few idle clients
(pre-connects, half-open probes, a slowloris) stall the whole API. Here a connection is a file
descriptor on an event loop; a worker is never held by a client.

Invariants (per connection, enforced by `GuardedHttpProtocol`, a subclass of uvicorn's httptools
protocol):
- a request must arrive whole (request line, headers and body) within REQUEST_TIMEOUT_SEC of its
  connection opening or of its first byte on a kept-alive connection; else the connection is
  closed (with a JSON 408 when its headers were incomplete, silently when it sent nothing), and
  counted (`idle_connection` / `slow_request`). uvicorn has no such timeout of its own;
- an idle kept-alive connection is closed after gunicorn's `--keep-alive` seconds (uvicorn's
  timeout_keep_alive);
- the head is bounded as gunicorn's sync parser bounded it: URL <= MAX_URL_BYTES (414), at most
  MAX_HEADER_FIELDS fields (431), each <= MAX_HEADER_FIELD_BYTES (431), and MAX_HEAD_BYTES in all
  (431): httptools buffers a header without limit otherwise;
- a declared body over the app's MAX_BODY_BYTES is refused at the head (JSON 413, as the app
  words it): a Falcon ASGI app does not run before the first body chunk arrives, so it could not
  refuse a declared body that never comes;
- every refusal the front makes itself is the app's JSON `{"title", "description"}` with
  `Connection: close`: unparseable HTTP (uvicorn's is text/plain), the limits above, and the
  over-capacity 503 (`--worker-connections`, uvicorn's limit_concurrency);
- a response sent before its request's body was all read closes the connection (the rest of that
  body would otherwise be parsed as the next request);
- a response its client stops reading (the transport's write buffer full for WRITE_STALL_SEC) is
  cut and counted (`stalled_reader`): uvicorn would wait in drain() forever, holding the
  connection and its task (a dashboard's event stream to a frozen tab);
- a long-lived response (a streaming one: chunked, e.g. GET /stream's Server-Sent Events) neither
  has a request timeout nor a keep-alive timeout while it runs (both are between requests); at a
  shutdown it is ended at once (it would never end by itself, and uvicorn would wait GRACEFUL_SEC,
  then cancel it with an error logged), while a request still being answered gets GRACEFUL_SEC;
- a worker whose master is gone (kill -9) exits within PARENT_CHECK_SEC (gunicorn's sync worker
  checks its parent on every loop; uvicorn's worker never does, and an orphan would keep the port,
  so the restarted master could not bind it); a shutdown waits at most GRACEFUL_SEC for requests
  in flight;
- refusals are counted per reason in `tdc_api_refused_total{reason}` (prometheus_client's
  multiprocess files, so /metrics sums every worker). prometheus_client is imported lazily: the
  master imports this module (the worker class) before gunicorn_conf.on_starting has set
  PROMETHEUS_MULTIPROC_DIR.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys

import orjson
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from actors.api import MAX_BODY_BYTES

log = logging.getLogger("api")

REQUEST_TIMEOUT_SEC = 5.0
MAX_URL_BYTES = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_BYTES = 8190
MAX_HEAD_BYTES = 64 * 1024
PARENT_CHECK_SEC = 0.5
GRACEFUL_SEC = 3
WRITE_STALL_SEC = 30.0

REFUSAL_REASONS = ("bad_http", "body_too_large", "url_too_long", "too_many_headers", "header_too_large",
                   "head_too_large", "slow_request", "idle_connection", "over_capacity", "stalled_reader")

_counter = None


def count_refusal(reason: str) -> None:
    global _counter
    if _counter is None:
        from prometheus_client import Counter
        _counter = Counter("tdc_api_refused", "connections or requests the API front refused, by reason",
                           ["reason"], registry=None)
    _counter.labels(reason).inc()


def refused_count(reason: str) -> float:
    """This process's count for `reason` (tests)."""
    return 0.0 if _counter is None else _counter.labels(reason)._value.get()


def json_response(status: int, reason: str, description: str, title: str | None = None) -> bytes:
    body = orjson.dumps({"title": title or reason.lower(), "description": description})
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode("latin-1") + body


class _Refuse(Exception):
    """Raised from a parser callback: httptools turns it into HttpParserCallbackError, which
    uvicorn answers through send_400_response (where the refusal set here is written)."""


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._request_timer = None
        self._received = False      # a byte of the current request is in
        self._head_done = False     # its headers are complete
        self._message_done = True   # its body is complete (no request in progress)
        self._head_bytes = 0
        self._fields = 0
        self._refusal: tuple[int, str, str, str, str | None] | None = None
        self._stall_timer = None

    # --- the request timeout --------------------------------------------------------------
    def _arm(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(REQUEST_TIMEOUT_SEC, self._too_slow)

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _too_slow(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        if not self._received:
            count_refusal("idle_connection")
        else:
            count_refusal("slow_request")
            if not self._head_done:      # the app never saw it: answer for it
                self.transport.write(json_response(
                    408, "Request Timeout", f"the request was not complete within {REQUEST_TIMEOUT_SEC:g} s"))
        self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        self._resumed()
        super().connection_lost(exc)

    # --- a reader that stopped reading, and shutdown -------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(WRITE_STALL_SEC, self._stalled)

    def resume_writing(self) -> None:
        self._resumed()
        super().resume_writing()

    def _resumed(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        if self.flow is not None and self.flow.write_paused:     # (closing or not: close waits on it)
            count_refusal("stalled_reader")
            self.transport.abort()     # close() would wait for a buffer that never drains

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete \
                and cycle.chunked_encoding:
            self.transport.close()      # a stream: it would never end by itself
            return
        super().shutdown()

    # --- head limits and refusals ---------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._received = True
        super().data_received(data)
        if self.transport.is_closing() or self._head_done:
            return
        self._head_bytes += len(data)      # the parser took it all and is still in the head
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refusal = (431, "Request Header Fields Too Large", "head_too_large",
                             f"the request head is over {MAX_HEAD_BYTES} bytes", None)
            self.send_400_response("")

    def _refuse(self, status: int, reason: str, kind: str, description: str, title: str | None = None):
        self._refusal = (status, reason, kind, description, title)
        raise _Refuse(description)

    def send_400_response(self, msg: str) -> None:
        status, reason, kind, description, title = self._refusal or (
            400, "Bad Request", "bad_http", "the request is not valid HTTP/1.1", None)
        self._refusal = None
        count_refusal(kind)
        if self.cycle is None or self.cycle.response_complete:   # never inside another response
            self.transport.write(json_response(status, reason, description, title))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._received, self._head_done, self._message_done = True, False, False
        self._head_bytes = self._fields = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(414, "URI Too Long", "url_too_long", f"the URL is over {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_HEADER_FIELDS:
            self._refuse(431, "Request Header Fields Too Large", "too_many_headers",
                         f"more than {MAX_HEADER_FIELDS} header fields")
        if len(name) + len(value) > MAX_HEADER_FIELD_BYTES:
            self._refuse(431, "Request Header Fields Too Large", "header_too_large",
                         f"a header field is over {MAX_HEADER_FIELD_BYTES} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        length = next((v for k, v in self.headers if k == b"content-length"), None)
        # (httptools has refused a Content-Length that is not a number)
        if length is not None and int(length) > MAX_BODY_BYTES:
            self._refuse(413, "Content Too Large", "body_too_large", f"at most {MAX_BODY_BYTES} bytes",
                         title="body too large")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._message_done = True
        self._received = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if not self._message_done and not self.transport.is_closing():
            self.transport.close()      # answered before its body was read: do not read on
        super().on_response_complete()


async def json_service_unavailable(scope, receive, send) -> None:
    """uvicorn's over-capacity answer (limit_concurrency), as the app's JSON error."""
    count_refusal("over_capacity")
    body = orjson.dumps({"title": "over capacity",
                         "description": "too many open connections on this worker; retry"})
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# uvicorn's protocol looks this name up in its module when it refuses over capacity
httptools_impl.service_unavailable = json_service_unavailable


class ApiWorker(UvicornWorker):
    """uvicorn worker with the guarded protocol. gunicorn's `--keep-alive` is the keep-alive
    timeout, `--worker-connections` the connections (and in-flight requests) per worker."""

    CONFIG_KWARGS = {"loop": "uvloop", "http": GuardedHttpProtocol, "ws": "none", "lifespan": "off",
                     "access_log": False, "server_header": False, "timeout_graceful_shutdown": GRACEFUL_SEC}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections

    async def _serve(self) -> None:
        # UvicornWorker._serve, plus the watch on the master
        self.config.app = self.wsgi
        server = Server(config=self.config)
        self._install_sigquit_handler()
        watch = asyncio.get_running_loop().create_task(self._watch_master(server))
        try:
            await server.serve(sockets=self.sockets)
        finally:
            watch.cancel()
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _watch_master(self, server: Server) -> None:
        while not server.should_exit:
            await asyncio.sleep(PARENT_CHECK_SEC)
            if os.getppid() != self.ppid:
                log.warning("gunicorn master %d is gone: worker %d exits", self.ppid, os.getpid())
                server.should_exit = True
