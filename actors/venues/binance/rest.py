"""Binance REST (klines, rate limits, errors): pure helpers, no I/O.

Everything here is bytes/headers in, values out; the HTTP client (actors/clients/binance_client.py) and the
`context` actor do the I/O, timing and wiring.

Venue facts (Binance docs, "General API Information" and "Kline/Candlestick Data"):
- `GET /fapi/v1/klines` (USD-M) and `GET /api/v3/klines` (spot) take `symbol`, `interval`, `limit`
  (futures max 1500, spot max 1000), `startTime`, `endTime` (ms, inclusive bounds on the open time).
  Without `startTime` the newest `limit` klines are returned; the last one is usually the kline in
  progress. Each row is
  `[open_time, "open", "high", "low", "close", "volume", close_time, "quote_volume", trades,
    "taker_buy_base_volume", "taker_buy_quote_volume", "ignore"]`, with `close_time = open + len - 1`.
- Request weight per IP per minute: futures 2400, spot 6000 (`REQUEST_WEIGHT` in exchangeInfo);
  every response carries the weight used in the current minute in `X-MBX-USED-WEIGHT-1M` (spot
  sends it lower-case; header names are case-insensitive anyway). A futures klines call weighs
  1/2/5/10 by `limit` (<100, <500, <=1000, more); a spot klines call weighs 2.
- 429: too many requests; `Retry-After` (seconds) says how long to stop. Ignoring it gets the IP
  banned: 418, again with `Retry-After`, and a message "IP banned until <epoch ms>". Bans "scale
  in duration for repeat offenders, from 2 minutes to 3 days".
- Errors are `{"code": -1003, "msg": "..."}` with a 4xx/5xx status.

Invariants:
- `parse_klines` returns ipc.schema.KLINE records in the row order of the response; `ts_event_ns`
  is 0 (REST rows carry no event time), `flags` 0, times in epoch ns, `tf_sec` the interval.
- A row is closed iff its close time is strictly before `now_ms` (the caller's best lower bound on
  the server's clock, see `server_now_ms`): only the newest row can be open.
- A malformed body raises ValueError naming what is wrong; nothing is defaulted silently.
- Every pause a response asks for (`retry_after_sec`, `ban_sec`) is finite and at most
  MAX_PAUSE_SEC (10 min): a longer (or `inf`, `1e300`, far-future HTTP-date) Retry-After or ban end
  is waited 10 min, then the next request re-probes, and its answer arms the next pause. A
  far-future value is a broken header far more often than a real 3-day ban, and one request per
  10 min during a real ban is what backing off looks like.
"""
from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import numpy as np
import orjson

from ipc.names import FUTURES, SPOT, tf_sec
from ipc.schema import KLINE

from actors.venues.http import clamp_sec, header, retry_after_value_sec
from actors.venues.binance.parse import check_kline

__all__ = [
    "RestError", "parse_klines", "klines_path", "klines_weight", "weight_used", "retry_after_sec",
    "banned_until_ms", "ban_sec", "server_now_ms", "error_from_body",
    "KLINES_PATH", "LIMIT_CAP", "WEIGHT_LIMIT", "KLINES_WEIGHT_STEPS", "MAX_PAUSE_SEC", "MIN_BAN_SEC",
]

_MS = 1_000_000

KLINES_PATH = {FUTURES: "/fapi/v1/klines", SPOT: "/api/v3/klines"}
# the most klines one request may ask for
LIMIT_CAP = {FUTURES: 1500, SPOT: 1000}
# the venue's REQUEST_WEIGHT limit per IP per minute (the settings carry the values actually used)
WEIGHT_LIMIT = {FUTURES: 2400, SPOT: 6000}
# the request weight of one klines call: (limit below which, weight) steps, the first match wins
# (futures weighs by limit, spot a flat 2)
_ANY_LIMIT = 1 << 62
KLINES_WEIGHT_STEPS: dict[str, tuple[tuple[int, int], ...]] = {
    FUTURES: ((100, 1), (500, 2), (1001, 5), (_ANY_LIMIT, 10)),
    SPOT: ((_ANY_LIMIT, 2),),
}


# the longest any response stops REST calls (429, 418, 503): then one request re-probes
MAX_PAUSE_SEC = 600.0
# the shortest a 418 stops them (a ban end already past, a Retry-After of 0)
MIN_BAN_SEC = 1.0

_BANNED_UNTIL = re.compile(r"banned until (\d{10,16})")


class RestError(Exception):
    """A REST call that failed for good (after the client's retries).

    `status` is the HTTP status, or 0 when no response came (timeout, connection error);
    `code`/`msg` are Binance's `{"code","msg"}` when the body had them (`code` None otherwise).
    """

    def __init__(self, status: int, code: int | None, msg: str):
        super().__init__(f"HTTP {status}" + (f" code {code}" if code is not None else "") + f": {msg}")
        self.status, self.code, self.msg = status, code, msg

    @classmethod
    def from_body(cls, status: int, body: bytes) -> "RestError":
        code, msg = error_from_body(body)
        return cls(status, code, msg)


def error_from_body(body: bytes) -> tuple[int | None, str]:
    """(code, msg) of a Binance error body; (None, the body's start) when it is not one."""
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError:
        d = None
    if isinstance(d, dict) and "msg" in d:
        code = d.get("code")
        return (int(code) if isinstance(code, int) else None), str(d["msg"])
    return None, body[:200].decode("utf-8", "replace")




def parse_klines(body: bytes, tf: str, ts_recv_ns: int, now_ms: int | None = None) -> np.ndarray:
    """The rows of a klines response as KLINE records.

    `now_ms` decides which rows are closed (close time < now_ms); it defaults to `ts_recv_ns`.
    Raises ValueError on a body that is not a list of kline rows of interval `tf`.
    """
    tf_s = tf_sec(tf)
    if now_ms is None:
        now_ms = ts_recv_ns // _MS
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"klines body is not JSON ({exc}): {body[:200]!r}") from None
    if type(rows) is not list:
        raise ValueError(f"klines body is not a list: {body[:200]!r}")
    out = np.zeros(len(rows), dtype=KLINE)
    span_ms = tf_s * 1000
    prev_open = None
    for i, r in enumerate(rows):
        try:
            if type(r) is not list or len(r) < 11:
                raise ValueError("not a row of at least 11 fields")
            t, t_close = int(r[0]), int(r[6])
            if t_close - t + 1 != span_ms:
                raise ValueError(f"spans {t}..{t_close}, not one {tf} interval")
            if prev_open is not None and t <= prev_open:
                raise ValueError(f"open time {t} not after the previous row's {prev_open}")
            prev_open = t
            o, h, lo, c, v, qv, bv, n = (float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                                         float(r[5]), float(r[7]), float(r[9]), int(r[8]))
            check_kline(o, h, lo, c, v, qv, bv, n)      # the stream's bounds: nothing insane kept
            out[i] = (0, ts_recv_ns, 0, t * _MS, t_close * _MS, tf_s, 1 if t_close < now_ms else 0,
                      o, h, lo, c, v, qv, bv, n)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"klines row {i}: {exc}: {str(r)[:200]}") from None
    return out


def klines_path(venue: str, symbol: str, tf: str, limit: int, start_ms: int | None = None,
                end_ms: int | None = None) -> str:
    """`/fapi/v1/klines?...` (venue 'futures') or `/api/v3/klines?...` ('spot')."""
    try:
        path, cap = KLINES_PATH[venue], LIMIT_CAP[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known: {sorted(KLINES_PATH)}") from None
    if not 1 <= limit <= cap:
        raise ValueError(f"{venue} klines limit must be 1..{cap}, got {limit}")
    tf_sec(tf)
    q: dict[str, object] = {"symbol": symbol.upper(), "interval": tf, "limit": limit}
    if start_ms is not None:
        q["startTime"] = int(start_ms)
    if end_ms is not None:
        q["endTime"] = int(end_ms)
    return f"{path}?{urlencode(q)}"


def klines_weight(venue: str, limit: int) -> int:
    """Request weight of one klines call."""
    try:
        steps = KLINES_WEIGHT_STEPS[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known: {sorted(KLINES_WEIGHT_STEPS)}") from None
    return next(weight for below, weight in steps if limit < below)



def weight_used(headers) -> int | None:
    """The request weight used in the current minute (`X-MBX-USED-WEIGHT-1M`), None if absent."""
    v = header(headers, "x-mbx-used-weight-1m")
    if v is None:
        v = header(headers, "x-mbx-used-weight")
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def retry_after_sec(status: int, headers, now_s: float | None = None) -> float | None:
    """Seconds to stop sending, from `Retry-After`, for a 429, 418 or 503; None otherwise, absent,
    unreadable or NaN. Within [0, MAX_PAUSE_SEC] (`inf`, `1e300`: MAX_PAUSE_SEC).

    Binance sends delta-seconds; an HTTP-date is accepted too when `now_s` (epoch s) is given.
    """
    if status not in (418, 429, 503):
        return None
    sec = retry_after_value_sec(header(headers, "retry-after"), now_s)
    return None if sec is None else clamp_sec(sec, MAX_PAUSE_SEC)


def banned_until_ms(msg: str) -> int | None:
    """The ban end (epoch ms) a 418's message names ("IP banned until 1591176563022."), or None."""
    m = _BANNED_UNTIL.search(msg or "")
    return int(m.group(1)) if m else None


def ban_sec(headers, msg: str, now_s: float, default_sec: float) -> float:
    """How long a 418 stops every request: its `Retry-After`, else the ban end its message names
    (epoch ms) less `now_s`, else `default_sec`; within [MIN_BAN_SEC, MAX_PAUSE_SEC]."""
    sec = retry_after_sec(418, headers, now_s)
    if sec is None:
        until = banned_until_ms(msg)
        sec = until / 1e3 - now_s if until is not None else default_sec
    return clamp_sec(sec, MAX_PAUSE_SEC, MIN_BAN_SEC)


def server_now_ms(headers, local_ms: int) -> int:
    """A lower bound on the server's clock: min(local clock, the response's `Date` header).

    `Date` has whole seconds, truncated, so it is never ahead of the server; taking the smaller
    of the two keeps a kline in progress from being taken as closed when the local clock runs fast.
    """
    v = header(headers, "date")
    if v is None:
        return local_ms
    try:
        d = int(parsedate_to_datetime(v).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return local_ms
    return min(local_ms, d)
