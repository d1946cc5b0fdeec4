"""An asyncio REST client for one Binance host: timeouts, retries, rate limits, bans, weight.

Invariants:
- one client per host: every request goes through one gate, so a pause applies to all of them;
  by default one request is in flight at a time, so none is already on its way when a 429 lands;
- 429: no request to the host is sent until `Retry-After` has passed (default: the rest of the
  weight window), counted in `paused_ms`;
- 418 (IP banned): the same, for `Retry-After`, else the end the message names, else
  `ban_default_sec`; logged as an error and reported by `banned`/`banned_until_ns` in `counters()`;
- no pause is longer than rest.MAX_PAUSE_SEC (10 min), whatever a response says (`inf`, `1e300`,
  a ban end in the year 9999): then a request re-probes, and its answer sets the next pause;
- the used weight comes from each response's `X-MBX-USED-WEIGHT-1M`; a request whose weight would
  take the window's use past `throttle_frac` of the limit waits for the next window
  (`throttled`, `throttled_ms`). Windows are wall-clock minutes, like the venue's;
- timeouts, connection errors and 5xx are retried with capped, jittered exponential backoff (a
  5xx's Retry-After, if longer, wins); other 4xx are not retried; after `retries` retries the call
  raises `RestError` (status 0 when no response came);
- only pure helpers of actors/venues/binance/rest.py decide what a response means.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

import httpx
import numpy as np

from config.logging import conn_fields
from ipc import clock
from actors.venues.binance import rest as br
from actors.venues.binance.rest import RestError
from actors.venues.http import backoff_sec

log = logging.getLogger("rest")

_NS = 1_000_000_000


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    ts_recv_ns: int


class BinanceRestClient:
    def __init__(self, base_url: str, venue: str = "futures", *, timeout_sec: float = 10.0,
                 retries: int = 4, backoff_base_sec: float = 0.25, backoff_max_sec: float = 30.0,
                 weight_limit: int | None = None, throttle_frac: float = 0.8,
                 weight_window_sec: float = 60.0, ban_default_sec: float = 120.0,
                 max_in_flight: int = 1, transport: httpx.AsyncBaseTransport | None = None):
        if venue not in br.KLINES_PATH:
            raise ValueError(f"unknown venue {venue!r}")
        self.base_url, self.venue = base_url.rstrip("/"), venue
        self.tap = None                  # the recorder's tap (ipc.framering.FrameTap): every answer
        self.retries = retries
        self.backoff_base_sec, self.backoff_max_sec = backoff_base_sec, backoff_max_sec
        self.weight_limit = weight_limit or br.WEIGHT_LIMIT[venue]
        self.throttle_frac = throttle_frac
        self.weight_window_sec = weight_window_sec
        self.ban_default_sec = ban_default_sec
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_sec),
                                       transport=transport, follow_redirects=False,
                                       headers={"User-Agent": "tdc-context/1"})
        # requests in flight at once; with 1, no request leaves between a 429 being sent and the
        # client seeing it, so a pause is never broken by one already on its way (which the venue
        # may answer with a ban)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._pause_until = 0.0          # monotonic: no request before this (429/418)
        self._weight_window = -1         # index of the wall-clock window weight_used belongs to
        # counters
        self.requests = 0                # HTTP requests sent (every attempt)
        self.ok = 0
        self.retried = 0
        self.errors: dict[str, int] = {}  # by status ("429", "500", ...) or "timeout"/"network"/"bad_body"
        self.weight_used: int | None = None
        self.weight_used_max = 0
        self.throttled = 0
        self.throttled_ms = 0.0
        self.paused_ms = 0.0
        self.bans = 0
        self.banned_until_ns = 0         # wall clock; 0 = never banned
        self.last_status: int | None = None
        self.last_error = ""

    # --- the gate --------------------------------------------------------------------------
    def _window(self, now_s: float) -> int:
        return int(now_s // self.weight_window_sec)

    async def _wait_gate(self, weight: int) -> None:
        while True:
            now = time.monotonic()
            if now < self._pause_until:
                wait = self._pause_until - now
                await asyncio.sleep(wait)
                self.paused_ms += (time.monotonic() - now) * 1e3
                continue
            wall = time.time()
            if (self.weight_used is not None and self._window(wall) == self._weight_window
                    and self.weight_used + weight > self.throttle_frac * self.weight_limit):
                wait = (self._weight_window + 1) * self.weight_window_sec - wall + 0.05
                self.throttled += 1
                log.warning("%s: weight %d of %d used this window: waiting %.1fs", self.venue,
                            self.weight_used, self.weight_limit, wait)
                await asyncio.sleep(wait)
                self.throttled_ms += (time.monotonic() - now) * 1e3
                continue
            return

    def _pause(self, sec: float) -> None:
        self._pause_until = max(self._pause_until, time.monotonic() + sec)

    def _backoff(self, attempt: int) -> float:
        return backoff_sec(attempt, self.backoff_base_sec, self.backoff_max_sec, random.uniform(0.5, 1.0))

    def _count(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1

    @property
    def banned(self) -> bool:
        return time.time_ns() < self.banned_until_ns

    # --- requests --------------------------------------------------------------------------
    async def get(self, path: str, weight: int = 1) -> Response:
        """GET `path` (with its query); a 200 Response, else RestError after the retries."""
        attempt = 0
        while True:
            async with self._in_flight:
                await self._wait_gate(weight)
                self.requests += 1
                try:
                    r = await self._http.get(path)
                    body = r.content
                except httpx.TimeoutException as exc:
                    err, kind = RestError(0, None, f"timeout: {type(exc).__name__} {path}"), "timeout"
                except httpx.TransportError as exc:
                    err, kind = RestError(0, None, f"{type(exc).__name__}: {exc} ({path})"), "network"
                else:
                    resp = Response(r.status_code, r.headers, body, time.time_ns())
                    if self.tap is not None:
                        self.tap("rest", self.venue, body, clock.now_ns(),
                                 f"{self.venue} {r.status_code} {path}")
                    err, kind = self._observe(resp, path), None
                    if err is None:
                        self.ok += 1
                        return resp
            self.last_error = str(err)[:300]
            if kind is not None:
                self._count(kind)
            retryable = err.status == 0 or err.status >= 500 or err.status in (418, 429)
            if not retryable or attempt >= self.retries:
                err.url = self.base_url + path      # for the caller's log line (RestError has no URL)
                raise err
            if err.status not in (418, 429):     # those already paused the whole host
                await asyncio.sleep(self._backoff(attempt))
            attempt += 1
            self.retried += 1

    def _observe(self, resp: Response, path: str) -> RestError | None:
        """Account for one response (weight, pauses, bans); the error it carries, if any."""
        self.last_status = resp.status
        w = br.weight_used(resp.headers)
        if w is not None:
            self.weight_used = w
            self.weight_used_max = max(self.weight_used_max, w)
            self._weight_window = self._window(time.time())
        if resp.status == 200:
            return None
        self._count(str(resp.status))
        err = RestError.from_body(resp.status, resp.body)
        now_s = time.time()
        ra = br.retry_after_sec(resp.status, resp.headers, now_s)
        if resp.status == 429:
            wait = ra if ra is not None else self._window_left()
            self._pause(wait)
            log.warning("429 from %s%s (%s): pausing every request %.1fs", self.base_url, path,
                        err.msg[:200], wait, extra=conn_fields(self.base_url + path, self.venue, status=429,
                                                               retry_in_sec=round(wait, 3)))
        elif resp.status == 418:
            ra = br.ban_sec(resp.headers, err.msg, now_s, self.ban_default_sec)
            self.bans += 1
            self.banned_until_ns = max(self.banned_until_ns, time.time_ns() + int(ra * _NS))
            self._pause(ra)
            log.error("418 from %s: IP banned (%s); no request for %.0fs", self.base_url,
                      err.msg[:200], ra, extra=conn_fields(self.base_url + path, self.venue, status=418,
                                                           retry_in_sec=round(ra, 3)))
        elif resp.status >= 500 and ra is not None:
            self._pause(ra)
        return err

    def _window_left(self) -> float:
        now = time.time()
        return (self._window(now) + 1) * self.weight_window_sec - now

    async def klines(self, symbol: str, tf: str, limit: int, start_ms: int | None = None,
                     end_ms: int | None = None, now_ms: int | None = None) -> np.ndarray:
        """KLINE records of one klines call; rows closed iff before min(now_ms, the `Date` header)."""
        path = br.klines_path(self.venue, symbol, tf, limit, start_ms, end_ms)
        resp = await self.get(path, br.klines_weight(self.venue, limit))
        local_ms = now_ms if now_ms is not None else resp.ts_recv_ns // 1_000_000
        try:
            return br.parse_klines(resp.body, tf, resp.ts_recv_ns,
                                   br.server_now_ms(resp.headers, local_ms))
        except ValueError as exc:
            self._count("bad_body")
            self.last_error = f"bad klines body: {exc}"[:300]
            raise RestError(resp.status, None, f"bad klines body: {exc}") from None

    def counters(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "retries": self.retried,
                "errors": dict(self.errors), "weight_used": self.weight_used,
                "weight_used_max": self.weight_used_max, "weight_limit": self.weight_limit,
                "throttled": self.throttled, "throttled_ms": round(self.throttled_ms, 1),
                "paused_ms": round(self.paused_ms, 1), "bans": self.bans, "banned": self.banned,
                "banned_until_ns": self.banned_until_ns, "last_status": self.last_status,
                "last_error": self.last_error}

    async def aclose(self) -> None:
        await self._http.aclose()
