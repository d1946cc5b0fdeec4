"""An asyncio client for TAAPI.IO's bulk endpoint: pacing, 429 blocks, backoff, counters.

Invariants:
- one request in flight at a time, and requests at least 1/TAAPI_RATE_PER_SEC apart (token
  spacing, venues/taapi.Pacer): the plan's rate is never exceeded by this client;
- a 429 stops every request for the block it names (`blockTime`, `Retry-After`; at most
  taapi.MAX_BLOCK_SEC, then a call re-probes), or for the capped backoff if that is longer,
  because TAAPI lengthens a block for each call made during it;
- timeouts, connection errors, 5xx, auth failures and malformed bodies pause the client with capped,
  jittered exponential backoff (consecutive failures double it, a success resets it); a call
  raises TaapiError after counting it, and the caller simply asks again later: no retry loop here;
- only the pure helpers of actors/venues/taapi decide what a body means.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx

from actors.venues import taapi
from config.logging import conn_fields
from actors.venues.http import backoff_sec

log = logging.getLogger("taapi")

_NS = 1_000_000_000
BACKOFF_BASE_SEC = 1.0


class TaapiError(Exception):
    """A bulk call that failed; `kind` is the counter it went to ("429", "500", "timeout", ...)."""

    def __init__(self, kind: str, msg: str):
        super().__init__(f"{kind}: {msg}")
        self.kind, self.msg = kind, msg


class TaapiClient:
    def __init__(self, base_url: str, secret: str, exchange: str, symbol: str, *,
                 rate_per_sec: float, timeout_sec: float = 10.0, backoff_max_sec: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._secret, self.exchange, self.symbol = secret, exchange, symbol
        taapi.taapi_symbol(symbol)            # fail at start, not at the first request
        self.backoff_max_sec = backoff_max_sec
        self.pacer = taapi.Pacer(rate_per_sec)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_sec),
                                       transport=transport, follow_redirects=False,
                                       headers={"User-Agent": "tdc-context/1",
                                                "Content-Type": "application/json"})
        self._one = asyncio.Lock()
        self._failures = 0               # consecutive failed calls (the backoff exponent)
        # counters
        self.requests = 0
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.rate_limited = 0            # 429 answers
        self.paused_ms = 0.0             # time spent waiting for a block or a backoff
        self.blocked_until_ns = 0        # wall clock end of the last pause
        self.last_status: int | None = None
        self.last_error = ""

    def _fail(self, kind: str, msg: str, block_sec: float | None = None) -> TaapiError:
        """Count a failed call and pause: the backoff, or a 429's block if that is longer."""
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = f"{kind}: {msg}"[:300]
        pause_sec = backoff_sec(self._failures, BACKOFF_BASE_SEC, self.backoff_max_sec,
                                random.uniform(0.5, 1.0))
        if block_sec is not None:
            pause_sec = max(pause_sec, block_sec)
        self._failures += 1
        self.pacer.pause(time.monotonic(), pause_sec)
        self.blocked_until_ns = max(self.blocked_until_ns, time.time_ns() + int(pause_sec * _NS))
        return TaapiError(kind, f"{msg} (no request for {pause_sec:.1f}s)")

    async def bulk(self, interval: str, backtrack: int = 1) -> taapi.Bulk:
        """One bulk call for `interval`, once the pacing allows; TaapiError when it failed."""
        body = taapi.bulk_body(self._secret, self.exchange, self.symbol, interval, backtrack)
        async with self._one:
            while (wait := self.pacer.delay(time.monotonic())) > 0:
                t0 = time.monotonic()
                await asyncio.sleep(wait)
                if self.pacer.pause_until > t0:
                    self.paused_ms += (time.monotonic() - t0) * 1e3
            self.pacer.sent(time.monotonic())
            self.requests += 1
            try:
                r = await self._http.post("/bulk", content=body)
                content = r.content
            except httpx.TimeoutException as exc:
                raise self._fail("timeout", f"{type(exc).__name__} POST /bulk") from None
            except httpx.TransportError as exc:
                raise self._fail("network", f"{type(exc).__name__}: {exc}") from None
            self.last_status = r.status_code
            if r.status_code == 429:
                self.rate_limited += 1
                block = taapi.block_sec(429, r.headers, content, time.time())
                err = self._fail("429", taapi.error_message(content), block)
                log.warning("TAAPI 429: %s", err.msg[:300],
                            extra=conn_fields(self.base_url + "/bulk", "taapi", status=429))
                raise err
            if r.status_code != 200:
                kind = "auth" if r.status_code in (401, 403) else str(r.status_code)
                raise self._fail(kind, f"HTTP {r.status_code}: {taapi.error_message(content)}")
            try:
                out = taapi.parse_bulk(content)
            except ValueError as exc:
                raise self._fail("bad_body", str(exc)) from None
            self.ok += 1
            self._failures = 0
            return out

    def counters(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "errors": dict(self.errors),
                "rate_limited": self.rate_limited, "paused_ms": round(self.paused_ms, 1),
                "blocked_until_ns": self.blocked_until_ns, "last_status": self.last_status,
                "last_error": self.last_error, "rate_per_sec": 1.0 / self.pacer.spacing_sec}

    async def aclose(self) -> None:
        await self._http.aclose()
