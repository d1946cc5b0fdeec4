"""Pieces only the fault drills use: the environment every drill system runs with (started with
tests/support/system.running_system), waits that attach the system's logs, /state shortcuts,
process probes and a raw HTTP client. Shared pieces (the bus tap, the ring follower, the ring
counters) are in tests/support."""
from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.support import system as _system
from tests.support import procs
from tests.support.system import System
from tests.support.wait import wait_for

SYMBOL = "BTCUSDT"
# what every drill system runs with: quick stale detection and reconnects, one context timeframe
# (the context actor's REST calls are then sequential: the 429/418 drills count them exactly)
BASE_ENV = dict(SIM_TRADE_RATE="40", HEALTH_DATA_STALE_SEC="3", FEED_BACKOFF_MAX_SEC="1",
                CONTEXT_TFS="1m", CONTEXT_BOOTSTRAP_LIMIT="100", API_TOKEN="drill-token-0123456789")


@contextlib.contextmanager
def running_system(tmp: Path, **overrides: str):
    """A started system with the drills' BASE_ENV, stopped with the clean-stop checks at the end."""
    with _system.running_system(tmp, **{**BASE_ENV, **overrides}) as sys_:
        yield sys_


def wait_or_logs(system: System, cond, timeout: float, what: str):
    """wait_for, with the system's log tails in the failure."""
    try:
        return wait_for(cond, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.logs()}") from None


def healthy(system: System, timeout: float = 60) -> dict:
    return wait_or_logs(system, lambda: (lambda c, b: b if c == 200 else None)(*system.health()), timeout,
                        "/health 200")


def state(system: System) -> dict:
    r = system.get("/state")
    r.raise_for_status()
    return r.json()


def actor(system: System, name: str) -> dict:
    return state(system)["actors"].get(name) or {}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    """Live child processes of `pid` (gunicorn's workers of its master)."""
    return procs.child_pids(pid)


# --- raw HTTP ----------------------------------------------------------------------------------
@dataclass
class RawAnswer:
    status: int | None       # None: the connection was closed without an answer
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


def raw_http(port: int, raw: bytes, timeout: float = 10.0) -> RawAnswer:
    """`raw` as is on a fresh connection; the first response, read by its Content-Length (the
    API's front keeps a connection alive after an answer the app gave: reading until close would
    wait for the keep-alive timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(s)


def read_answer(s: socket.socket) -> RawAnswer:
    """One HTTP response from `s`: status None when the server closed without one."""
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except ConnectionResetError:
        pass
    if not buf:
        return RawAnswer(None, {}, b"")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawAnswer(int(lines[0].split()[1]), headers, body)
