"""Binance REST for the built-in exchange (futures and spot): routes, parameters, weights, limits.

Pure: no sockets, no clocks (`handle` gets the time); the data comes from a `Provider` the server
implements (klines, depth, premium index).

Routes and request weights (as documented by Binance):
- futures (`/fapi/v1/...`, per-IP limit 2400 weight per minute):
  ping 1, time 1, premiumIndex 1 (10 without `symbol`), aggTrades 20 (default 500, max 1000),
  klines by `limit` (default 500, max 1500):
  [1,100) 1, [100,500) 2, [500,1000] 5, above 10; depth by `limit` (default 500, max 1000):
  <=50 2, <=100 5, <=500 10, above 20.
- spot (`/api/v3/...`, limit 6000 per minute): ping 1, time 1, aggTrades 4 (default 500, max
  1000), klines 2 (default 500, max 1000),
  depth by `limit` (default 100, max 5000): <=100 5, <=500 25, <=1000 50, above 250.
A larger `limit` is clamped to the maximum; a limit below 1 is -1130.
aggTrades: `fromId` gives the trades from that id on; `startTime`/`endTime` (ms, inclusive) the
trades in that span, which must be under one hour when both are sent (-1127); neither: the most
recent ones. Rows `{"a","p","q","f","l","T","m"}` (spot adds `"M":true`), oldest first.

Limits: weight is counted per client IP in one-minute windows aligned to the clock minute (the
`X-MBX-USED-WEIGHT-1M` header resets at the minute, as on the venue). A request that would pass the
limit gets 429 with `Retry-After` (seconds to the next window) and code -1003; a request during that
back-off gets 418 (an IP ban) with `Retry-After: ban_sec`, and every request until the ban ends
gets 418 with the seconds left. Rejected requests add no weight. Headers on every answer: futures
`X-MBX-USED-WEIGHT-1M`, spot `x-mbx-used-weight` and `x-mbx-used-weight-1m`.

Errors: 400 with `{"code":..,"msg":..}`: -1102 missing mandatory parameter, -1121 invalid symbol,
-1120 invalid interval, -1100 illegal characters (a non-integer number), -1130 invalid `limit`,
-1023 start time after end time, -1127 more than one hour between them. An unknown path is the server's 404.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs

from actors.sim.binance.kline_bars import TF_MS

FUTURES_WEIGHT_LIMIT = 2400
SPOT_WEIGHT_LIMIT = 6000
_DIGITS = re.compile(r"[0-9]{1,20}")


class Provider(Protocol):
    def klines(self, tf: str, start: int | None, end: int | None, limit: int, now_ms: int) -> str: ...
    def depth(self, limit: int, now_ms: int) -> str: ...
    def premium_index(self, now_ms: int) -> str: ...
    def agg_trades(self, from_id: int | None, start: int | None, end: int | None, limit: int,
                   now_ms: int) -> str: ...


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> str:
        return f'{{"code":{self.code},"msg":"{self.msg}"}}'


def _mandatory(q: dict, name: str) -> str:
    v = q.get(name)
    if not v or not v[0]:
        raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                              f"or malformed.")
    return v[0]


def _int(q: dict, name: str) -> int | None:
    v = q.get(name)
    if not v:
        return None
    if not _DIGITS.fullmatch(v[0]):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                              f"'^[0-9]{{1,20}}$'.")
    return int(v[0])


def _limit(q: dict, default: int, maximum: int) -> int:
    n = _int(q, "limit")
    if n is None:
        return default
    if n < 1:
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(n, maximum)


def futures_klines_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def futures_depth_weight(limit: int) -> int:
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def spot_depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


@dataclass
class _Ip:
    minute: int = -1
    used: int = 0
    backoff_until: int = 0      # ms: after a 429, until the window resets
    banned_until: int = 0       # ms


@dataclass
class RestApi:
    """One venue's REST surface (see the module docstring)."""
    venue: str                  # "futures" or "spot"
    symbol: str
    provider: Provider
    ban_sec: float = 120.0
    ips: dict[str, _Ip] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)   # status -> answers

    def __post_init__(self):
        self.limit = FUTURES_WEIGHT_LIMIT if self.venue == "futures" else SPOT_WEIGHT_LIMIT
        p = "/fapi/v1" if self.venue == "futures" else "/api/v3"
        self.routes = {f"{p}/ping": self._ping, f"{p}/time": self._time,
                       f"{p}/klines": self._klines, f"{p}/depth": self._depth,
                       f"{p}/aggTrades": self._agg_trades}
        if self.venue == "futures":
            self.routes[f"{p}/premiumIndex"] = self._premium

    # --- routes: (query, now_ms) -> (weight, handler() -> body) ------------------------------
    def _ping(self, q, now_ms):
        return 1, lambda: "{}"

    def _time(self, q, now_ms):
        return 1, lambda: f'{{"serverTime":{now_ms}}}'

    def _symbol(self, q) -> None:
        if _mandatory(q, "symbol") != self.symbol:
            raise ApiError(-1121, "Invalid symbol.")

    def _klines(self, q, now_ms):
        fut = self.venue == "futures"
        limit = _limit(q, 500, 1500 if fut else 1000)
        weight = futures_klines_weight(limit) if fut else 2

        def run():
            self._symbol(q)
            tf = _mandatory(q, "interval")
            if tf not in TF_MS:
                raise ApiError(-1120, "Invalid interval.")
            start, end = _int(q, "startTime"), _int(q, "endTime")
            if start is not None and end is not None and start > end:
                raise ApiError(-1023, "Start time is greater than end time.")
            return self.provider.klines(tf, start, end, limit, now_ms)
        return weight, run

    def _agg_trades(self, q, now_ms):
        limit = _limit(q, 500, 1000)

        def run():
            self._symbol(q)
            from_id, start, end = _int(q, "fromId"), _int(q, "startTime"), _int(q, "endTime")
            if start is not None and end is not None:
                if start > end:
                    raise ApiError(-1023, "Start time is greater than end time.")
                if end - start >= 3_600_000:
                    raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
            return self.provider.agg_trades(from_id, start, end, limit, now_ms)
        return (20 if self.venue == "futures" else 4), run

    def _depth(self, q, now_ms):
        fut = self.venue == "futures"
        limit = _limit(q, 500 if fut else 100, 1000 if fut else 5000)
        weight = futures_depth_weight(limit) if fut else spot_depth_weight(limit)

        def run():
            self._symbol(q)
            return self.provider.depth(limit, now_ms)
        return weight, run

    def _premium(self, q, now_ms):
        if not q.get("symbol"):
            return 10, lambda: "[" + self.provider.premium_index(now_ms) + "]"

        def run():
            self._symbol(q)
            return self.provider.premium_index(now_ms)
        return 1, run

    # --- the request path ------------------------------------------------------------------
    def headers(self, used: int) -> list[tuple[str, str]]:
        if self.venue == "futures":
            return [("X-MBX-USED-WEIGHT-1M", str(used))]
        return [("x-mbx-used-weight", str(used)), ("x-mbx-used-weight-1m", str(used))]

    def _answer(self, status: int, headers, body: str):
        self.counts[str(status)] = self.counts.get(str(status), 0) + 1
        return status, headers, body

    def _too_many(self, ip: str, status: int, retry_after: int, st: _Ip, until_ms: int = 0):
        if status == 429:
            msg = (f"Too many requests; current limit of IP({ip}) is {self.limit} requests per "
                   f"minute. Please use the websocket for live updates to avoid polling the API.")
        else:
            msg = (f"Way too many requests; IP({ip}) banned until {until_ms}. Please use the "
                   f"websocket for live updates to avoid bans.")
        hdrs = self.headers(st.used) + [("Retry-After", str(retry_after))]
        return self._answer(status, hdrs, f'{{"code":-1003,"msg":"{msg}"}}')

    def handle(self, path: str, ip: str, now_ms: int,
               forced: tuple[int, int] | None = None) -> tuple[int, list[tuple[str, str]], str] | None:
        """Answer a GET: (status, headers, JSON body), or None if `path` is not a REST route.

        forced: (status, retry_after) from fault injection: answered instead, no state change.
        """
        p, _, query = path.partition("?")
        route = self.routes.get(p)
        if route is None:
            return None
        st = self.ips.setdefault(ip, _Ip())
        minute = now_ms // 60_000
        if minute != st.minute:
            st.minute, st.used = minute, 0
        if forced is not None:
            status, retry = forced
            return self._too_many(ip, status, retry, st, now_ms + retry * 1000)
        if st.banned_until > now_ms:
            left = -(-(st.banned_until - now_ms) // 1000)
            return self._too_many(ip, 418, left, st, st.banned_until)
        if st.backoff_until > now_ms:
            # came back before Retry-After: the venue escalates to an IP ban
            st.banned_until = now_ms + int(self.ban_sec * 1000)
            st.backoff_until = 0
            return self._too_many(ip, 418, max(1, round(self.ban_sec)), st, st.banned_until)
        q = parse_qs(query, keep_blank_values=True)
        try:
            weight, run = route(q, now_ms)
        except ApiError as exc:
            weight, run = 1, exc
        if st.used + weight > self.limit:
            st.backoff_until = (minute + 1) * 60_000
            return self._too_many(ip, 429, -(-(st.backoff_until - now_ms) // 1000), st)
        st.used += weight
        if isinstance(run, ApiError):
            return self._answer(run.status, self.headers(st.used), run.body())
        try:
            body = run()
        except ApiError as exc:
            return self._answer(exc.status, self.headers(st.used), exc.body())
        return self._answer(200, self.headers(st.used), body)

    def lift_ban(self) -> None:
        for st in self.ips.values():
            st.banned_until = st.backoff_until = 0

    def describe(self) -> dict:
        return {"answers": dict(self.counts), "weight_limit": self.limit,
                "ips": {ip: {"used_weight": s.used, "minute": s.minute,
                             "banned_until_ms": s.banned_until} for ip, s in self.ips.items()}}
