"""TAAPI.IO bulk endpoint: request bodies, response parsing, rate-limit answers. Pure, no I/O.

Venue facts (taapi.io documentation: "[POST] REST – Bulk", "Rate limits", "Errors"):
- `POST {TAAPI_URL}/bulk` with a JSON body `{"secret", "construct": {"exchange", "symbol",
  "interval", "indicators": [{"id", "indicator", <params>}, ...]}}`; the symbol is `COIN/MARKET`
  ("BTC/USDT"); exchange `binance` (spot) or `binancefutures` (USD-M); at most 20 calculations per
  request on every plan. Per indicator: `backtrack` (candles back from the newest, which is the
  one in progress) and `addResultTimestamp` (the candle's open time, epoch s, as
  `result.timestamp`).
- 200 answers `{"data": [{"id", "indicator", "result": {...}, "errors": [...]}, ...]}`; one
  calculation that failed has an empty `result` and its messages in `errors` (the others stand).
- Rate limits are per plan (calls per second, or per 15 s on the newer plans). Past them: 429 with
  `{"error": {"message", "maxHitsAllowed", "maxHitsTimeframe", "blockTime": "1020 seconds",
  "reason"}}`; the key stays blocked for `blockTime`, and calls made during the block lengthen it.
  Newer servers send `{"error": "..."}`; a `Retry-After` header is honoured when present.
- A bad secret is a 401/403 with `{"error": ...}`.

Invariants:
- `bulk_body` asks for every indicator of ipc.names.INDICATOR_PARAMS, with those exact
  parameters, `backtrack` and `addResultTimestamp`; each indicator's `id` is its name, so
  `parse_bulk` maps answers back by id, never by position;
- `parse_bulk` returns the same shape as `indicators.bundle` (values, errors) plus the candle
  time; a body that is not that (not JSON, no `data` list, a requested id missing, a result with
  a missing or non-numeric field) raises ValueError naming what is wrong: nothing is defaulted;
- `Pacer` is the whole rate policy, on a caller's monotonic clock: requests at least 1/rate apart,
  none while paused (a 429's block, or an error's backoff).
- `block_sec` is finite and at most MAX_BLOCK_SEC (1 h), whatever the answer says (`inf`,
  `1e300`, "99999999 minutes", a far HTTP-date): then a call re-probes. The cap is well above the
  blocks TAAPI documents (its example is 1020 s), since a call made during a block lengthens it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import orjson

from ipc.names import INDICATOR_FIELDS as FIELDS, INDICATOR_PARAMS as PARAMS, INDICATORS

from actors.venues.http import clamp_sec, header, retry_after_value_sec

__all__ = ["Bulk", "Pacer", "bulk_body", "parse_bulk", "taapi_symbol", "block_sec",
           "error_message", "MAX_CALCULATIONS", "MAX_BLOCK_SEC"]

MAX_CALCULATIONS = 20
# the longest one 429 stops the client: a longer block is waited this long, then re-probed
MAX_BLOCK_SEC = 3600.0
# quote assets, longest first, to split "BTCUSDT" into "BTC/USDT"
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "USD", "BTC", "ETH", "BNB", "EUR",
           "TRY", "BRL")
_BLOCK = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)?\b", re.I)


@dataclass(frozen=True)
class Bulk:
    """One parsed bulk answer: per-indicator values (None: failed) and reasons."""
    values: dict[str, dict | None]
    errors: dict[str, str]
    candle_open_s: int | None        # the candle the values are for (addResultTimestamp), if given


def taapi_symbol(symbol: str) -> str:
    """"BTCUSDT" -> "BTC/USDT"; ValueError when no known quote asset ends it."""
    s = symbol.upper()
    if "/" in s:
        return s
    for q in _QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return f"{s[:-len(q)]}/{q}"
    raise ValueError(f"cannot split symbol {symbol!r} into COIN/MARKET (known quotes: {_QUOTES})")


def bulk_body(secret: str, exchange: str, symbol: str, interval: str, backtrack: int = 1) -> bytes:
    """The JSON body of one bulk request for every indicator on one timeframe."""
    if len(INDICATORS) > MAX_CALCULATIONS:
        raise ValueError(f"{len(INDICATORS)} indicators exceed the {MAX_CALCULATIONS} a bulk call allows")
    if backtrack < 0:
        raise ValueError(f"backtrack must be >= 0, got {backtrack}")
    indicators = [{"id": name, "indicator": name, **PARAMS[name], "backtrack": backtrack,
                   "addResultTimestamp": True} for name in INDICATORS]
    return orjson.dumps({"secret": secret, "construct": {
        "exchange": exchange, "symbol": taapi_symbol(symbol), "interval": interval,
        "indicators": indicators}})


def _number(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where} is not a number: {v!r}"[:200])
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{where} is not finite: {v!r}")
    return f


def parse_bulk(body: bytes) -> Bulk:
    """A bulk answer as (values, errors, candle time); ValueError on a malformed one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"bulk body is not JSON ({exc}): {body[:200]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"bulk body has no 'data' list: {body[:200]!r}")
    by_id: dict[str, dict] = {}
    for i, item in enumerate(doc["data"]):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError(f"bulk data[{i}] is not an object with a string 'id': {str(item)[:200]}")
        by_id[item["id"]] = item
    missing = [n for n in INDICATORS if n not in by_id]
    if missing:
        raise ValueError(f"bulk answer lacks indicator(s) {missing} (got ids {sorted(by_id)[:10]})")
    values: dict[str, dict | None] = {}
    errors: dict[str, str] = {}
    stamps: set[int] = set()
    for name in INDICATORS:
        item = by_id[name]
        result, errs = item.get("result"), item.get("errors") or []
        if not isinstance(errs, list):
            raise ValueError(f"bulk {name}: 'errors' is not a list: {str(errs)[:200]}")
        if errs or not result:
            # TAAPI's per-calculation failure: the others stand
            values[name] = None
            errors[name] = "; ".join(str(e) for e in errs)[:300] or "empty result"
            continue
        if not isinstance(result, dict):
            raise ValueError(f"bulk {name}: 'result' is not an object: {str(result)[:200]}")
        absent = [f for f in FIELDS[name] if f not in result]
        if absent:
            raise ValueError(f"bulk {name}: result lacks {absent}: {str(result)[:200]}")
        values[name] = {f: _number(result[f], f"bulk {name}.{f}") for f in FIELDS[name]}
        if "timestamp" in result:
            stamps.add(int(_number(result["timestamp"], f"bulk {name}.timestamp")))
    if len(stamps) > 1:
        raise ValueError(f"bulk results are for different candles: {sorted(stamps)}")
    return Bulk(values, errors, stamps.pop() if stamps else None)



def _seconds(text: str) -> float | None:
    """"1020 seconds", "2 s", "3 minutes", "500 ms" -> seconds; None when there is no number."""
    m = _BLOCK.search(text)
    if m is None:
        return None
    unit = (m.group(2) or "s").lower()
    scale = 1e-3 if unit.startswith("ms") or unit.startswith("milli") else \
        60.0 if unit in ("m", "min", "minute", "minutes") else 1.0
    return float(m.group(1)) * scale


def block_sec(status: int, headers, body: bytes, now_s: float | None = None) -> float | None:
    """How long a 429 says to stop: the longer of `Retry-After` (delta-seconds, or an HTTP-date
    when `now_s` is given) and the body's `blockTime`; within [0, MAX_BLOCK_SEC]. None: neither
    is there (or readable)."""
    if status != 429:
        return None
    found: list[float] = []
    ra = retry_after_value_sec(header(headers, "retry-after"), now_s)
    if ra is not None:
        found.append(ra)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        bt = err.get("blockTime")
        if isinstance(bt, (int, float)) and not isinstance(bt, bool):
            found.append(float(bt))
        elif isinstance(bt, str):
            v = _seconds(bt)
            if v is not None:
                found.append(v)
    found = [v for v in found if not math.isnan(v)]
    return clamp_sec(max(found), MAX_BLOCK_SEC) if found else None


def error_message(body: bytes) -> str:
    """The message of a TAAPI error body (`{"error": "..."}` or `{"error": {"message"}}`)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error", doc.get("message"))
        if isinstance(err, dict):
            err = err.get("message") or err.get("reason") or err
        if err is not None:
            return str(err)[:300]
    return body[:200].decode("utf-8", "replace")


class Pacer:
    """Token spacing at `rate_per_sec` plus pauses, on the caller's monotonic clock (seconds)."""

    def __init__(self, rate_per_sec: float):
        if not rate_per_sec > 0:
            raise ValueError(f"rate must be > 0, got {rate_per_sec}")
        self.spacing_sec = 1.0 / rate_per_sec
        self.next_at = 0.0              # earliest next send by spacing
        self.pause_until = 0.0          # no send before this (429 block, error backoff)

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may leave (0: now)."""
        return max(0.0, self.next_at - now, self.pause_until - now)

    def sent(self, now: float) -> None:
        self.next_at = now + self.spacing_sec

    def pause(self, now: float, sec: float) -> None:
        self.pause_until = max(self.pause_until, now + sec)
