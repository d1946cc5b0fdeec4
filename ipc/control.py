"""The control channel (ZMQ_CONTROL_URL): an authenticated request/reply between the API and compute.

Wire: one request is ONE frame, a JSON object `{"token": <API_TOKEN>, "cmd": <name>, <args>...}`;
one reply is one frame, a JSON object with `ok` (and `error`, `reason` when refused).

Invariants:
- the server is a ROUTER: it never enters a state machine a peer can break (a REP socket raises
  EFSM on a multi-frame request and killed compute); whatever a peer sends (several frames, an
  empty frame, binary, a huge message, a DEALER without the empty delimiter) is counted by reason
  in `ControlServer.refused` and answered with an error when the peer can still be reached;
  nothing raises out of `serve`, a handler's exception included;
- every request needs the credential: the API_TOKEN, compared with `hmac.compare_digest`; with
  API_TOKEN unset every request is refused (`disabled`) — control is off, not open;
- arguments are checked here against `COMMANDS` with strict types (`type(x) is int`: a JSON `true`
  is a bool, and a bool is an int in Python) and ranges; unknown fields are refused; the handler
  only ever sees `{"cmd": <a known command>, <valid arguments>}` (the token removed);
- a request is at most MAX_REQUEST_BYTES (counted `too_large`, answered); a frame over
  TRANSPORT_MAX_BYTES is never buffered: libzmq disconnects that peer (ZMQ_MAXMSGSIZE), so memory
  is bounded whatever a peer sends; at most MAX_FRAMES frames of one message are kept;
- `request` (the client) is synchronous, uses a fresh REQ socket with linger 0 per call (a lost
  reply cannot wedge a later call), and returns None when no reply came within `timeout_ms`;
- a request carries `expires_ns` (wall clock, the client's deadline): the server refuses one it
  reads after that (`expired`), so a request the API already answered 503 for (compute busy
  warming up) is never carried out later behind the caller's back, nor twice when retried.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections import Counter
from typing import Callable

import orjson
import zmq

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
TRANSPORT_MAX_BYTES = 64 * 1024
MAX_FRAMES = 8          # routing envelope + body; the rest of a longer message is read and dropped
MAX_PER_SERVE = 64      # messages answered in one `serve` call (a flood cannot hold the caller)
ANCHOR_MAX_NS = 2 ** 63

#: refusal reasons, each a counter key (`ControlServer.refused`)
REASONS = ("frames", "empty", "too_large", "not_json", "not_object", "disabled", "auth",
           "expired", "unknown_cmd", "bad_args", "handler_error", "reply_failed")


def _anchor_ns(v) -> str | None:
    if v is None:
        return None
    if type(v) is not int or not 0 <= v < ANCHOR_MAX_NS:
        return "anchor_ns must be null or an integer epoch time in ns (0 <= anchor_ns < 2**63)"
    return None


#: command → {argument: validator returning an error text or None}; every argument is optional
COMMANDS: dict[str, dict[str, Callable[[object], str | None]]] = {
    "anchor_reset": {"anchor_ns": _anchor_ns},
}


class Refused(Exception):
    """A request refused before the handler: `reason` is a key of REASONS."""

    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason, self.error = reason, error


def check_request(body: bytes, token: str | None, now_ns: int | None = None) -> dict:
    """Sans-I/O: one request frame → `{"cmd", args...}` without the token and deadline, or
    Refused. `token` is the server's API_TOKEN; `now_ns` the wall clock (a request with
    `expires_ns` before it is refused)."""
    if not body:
        raise Refused("empty", "empty request")
    if len(body) > MAX_REQUEST_BYTES:
        raise Refused("too_large", f"request over {MAX_REQUEST_BYTES} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused("not_json", "request must be UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise Refused("not_object", "request must be a JSON object")
    if not token:
        raise Refused("disabled", "control disabled: API_TOKEN unset")
    given = doc.pop("token", None)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
        raise Refused("auth", "bad or missing token")
    expires = doc.pop("expires_ns", None)
    if expires is not None:
        if type(expires) is not int:
            raise Refused("bad_args", "expires_ns must be an integer epoch time in ns")
        if now_ns is not None and now_ns > expires:
            raise Refused("expired", f"request expired {(now_ns - expires) / 1e6:.0f} ms before it was read")
    cmd = doc.pop("cmd", None)
    spec = COMMANDS.get(cmd) if isinstance(cmd, str) else None
    if spec is None:
        raise Refused("unknown_cmd", f"unknown cmd {str(cmd)[:40]!r}; known: {sorted(COMMANDS)}")
    extra = set(doc) - set(spec)
    if extra:
        raise Refused("bad_args", f"unknown fields {sorted(extra)[:8]} for {cmd}")
    for name, value in doc.items():
        err = spec[name](value)
        if err:
            raise Refused("bad_args", err)
    return {"cmd": cmd, **doc}


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """A ROUTER message → (envelope to reply with, body frames). A REQ peer's envelope ends with
    an empty delimiter; a DEALER may send none (then the envelope is the identity alone)."""
    for i in range(1, len(frames)):
        if not frames[i]:
            return frames[:i + 1], frames[i + 1:]
    return frames[:1], frames[1:]


class ControlServer:
    """The control socket's server side. `handler(request) -> dict` runs a checked request
    (`{"cmd": ..., args}`) and returns the reply."""

    def __init__(self, ctx: zmq.Context, url: str, token: str | None,
                 handler: Callable[[dict], dict]):
        self.token = token or None
        self.handler = handler
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_MAX_BYTES)
        self.sock.setsockopt(zmq.SNDHWM, 64)
        self.sock.setsockopt(zmq.RCVHWM, 64)
        self.sock.bind(url)
        self.served = 0
        self.refused: Counter[str] = Counter()
        self._logged: set[str] = set()

    def serve(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for requests, answer every one waiting (at most MAX_PER_SERVE);
        return how many were handled. Never raises for anything a peer sent."""
        try:
            if not self.sock.poll(max(0, timeout_ms)):
                return 0
        except zmq.ZMQError as e:       # EINTR (a signal): the caller's loop comes back
            log.debug("control poll: %s", e)
            return 0
        n = 0
        while n < MAX_PER_SERVE:
            got = self._recv()
            if got is None:
                break
            n += 1
            self._answer(*got)
        return n

    def _recv(self) -> tuple[list[bytes], int] | None:
        """One whole message: (its first MAX_FRAMES frames, its frame count), or None."""
        frames: list[bytes] = []
        total = 0
        try:
            while True:
                f = self.sock.recv(zmq.NOBLOCK)
                total += 1
                if total <= MAX_FRAMES:    # the rest is read to the end of the message, not kept
                    frames.append(f)
                if not self.sock.getsockopt(zmq.RCVMORE):
                    return frames, total
        except zmq.Again:                 # a ROUTER delivers whole messages: only at the start
            return None
        except zmq.ZMQError as e:
            log.debug("control recv: %s", e)
            return None

    def _refuse(self, reason: str, error: str) -> dict:
        self.refused[reason] += 1
        if reason not in self._logged:     # one line per reason, not one per junk message
            self._logged.add(reason)
            log.warning("control request refused (%s): %s; further ones are counted only", reason, error)
        return {"ok": False, "reason": reason, "error": error}

    def _answer(self, frames: list[bytes], total: int) -> None:
        envelope, body = split_envelope(frames)
        if total > MAX_FRAMES or len(body) != 1:
            n = len(body) + total - len(frames)
            reply = self._refuse("frames" if n else "empty", f"a request is one frame, got {n}")
        else:
            reply = self._run(body[0])
        try:
            data = orjson.dumps(reply)
        except orjson.JSONEncodeError as e:     # a handler's reply JSON cannot carry (a numpy int, ...)
            log.error("control reply not encodable: %s", e)
            data = orjson.dumps(self._refuse("handler_error", f"reply not encodable: {e}"[:200]))
        try:
            self.sock.send_multipart([*envelope, data], zmq.NOBLOCK)
        except zmq.ZMQError as e:         # peer gone, HWM: a ROUTER drops, never blocks
            self._refuse("reply_failed", str(e))

    def _run(self, body: bytes) -> dict:
        try:
            req = check_request(body, self.token, time.time_ns())
        except Refused as r:
            return self._refuse(r.reason, r.error)
        try:
            reply = self.handler(req)
        except Exception as e:           # a handler bug must not take the actor down
            log.exception("control handler failed on %s", req["cmd"])
            return self._refuse("handler_error", f"{type(e).__name__}: {e}"[:200])
        self.served += 1
        return reply

    def counters(self) -> dict:
        """For the heartbeat: served, refused, and refused by reason (`control_refused_<reason>`,
        rendered as tdc_control_refused_requests_total{reason})."""
        return {"control_requests": self.served, "control_refused": sum(self.refused.values()),
                **{f"control_refused_{r}": n for r, n in sorted(self.refused.items())}}

    def report(self) -> dict:
        """Refusals by reason."""
        return dict(self.refused)

    def close(self, linger: int = 0) -> None:
        self.sock.close(linger)


def request(url: str, token: str, doc: dict, timeout_ms: int) -> dict | None:
    """One control round trip: `doc` (`{"cmd": ..., args}`) with the credential; the reply object,
    or None when none came within `timeout_ms` (compute down or busy). Synchronous: call it off an
    event loop (asyncio.to_thread). A reply that is not a JSON object reads as a refusal."""
    deadline = time.monotonic() + max(0, timeout_ms) / 1e3
    sock = zmq.Context.instance().socket(zmq.REQ)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDTIMEO, max(0, timeout_ms))
        sock.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_MAX_BYTES)
        sock.connect(url)
        try:
            sock.send(orjson.dumps({**doc, "token": token,
                                    "expires_ns": time.time_ns() + max(0, timeout_ms) * 1_000_000}))
        except zmq.Again:
            return None
        left_ms = int(max(0.0, deadline - time.monotonic()) * 1e3)
        if not sock.poll(left_ms):
            return None
        raw = sock.recv()
    finally:
        sock.close(0)
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError:
        reply = None
    if not isinstance(reply, dict):
        return {"ok": False, "reason": "bad_reply", "error": "the reply is not a JSON object"}
    return reply
