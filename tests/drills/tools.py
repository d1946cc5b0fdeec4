"""Pieces only the fault drills use: the environment every drill system runs with (started with
tests/support/system.running_system), waits that attach the system's logs, /state shortcuts,
process probes and a raw HTTP client. Shared pieces (the bus tap, the ring follower, the ring
counters) are in tests/support."""
from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.support import system as _system
from tests.support.system import System
from tests.support.wait import wait_for

SYMBOL = "BTCUSDT"
# what every drill system runs with: quick stale detection and reconnects, one context timeframe
# (the context actor's REST calls are then sequential: the 429/418 drills count them exactly)
BASE_ENV = dict(SIM_TRADE_RATE="40", HEALTH_DATA_STALE_SEC="3", FEED_BACKOFF_MAX_SEC="1",
                CONTEXT_TFS="1m", CONTEXT_BOOTSTRAP_LIMIT="100", API_TOKEN="drill-token")


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
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                out.add(int(d.name))
    return out


# --- raw HTTP ----------------------------------------------------------------------------------
@dataclass
class RawAnswer:
    status: int | None       # None: the connection was closed without an answer
    headers: dict[str, str]
    body: bytes

    def json(self):
        return orjson.loads(self.body)


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> RawAnswer:
    """Send `data` as is on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    if not buf:
        return RawAnswer(None, {}, b"")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return RawAnswer(status, headers, body)
