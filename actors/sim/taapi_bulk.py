"""The built-in exchange's TAAPI.IO: `POST /taapi/bulk`, computed from the sim's own klines.

Pure: no sockets, no clock (`answer` gets the time); the klines come from the sim's venues (their
REST `klines` provider), parsed as a client would parse them. Mounted on the futures port by
actors/sim/server.py; `python run.py --sim` points TAAPI_URL at `http://<sim>/taapi`.

Behaviour (TAAPI's, see actors/venues/taapi.py):
- body `{"secret", "construct": {"exchange", "symbol", "interval", "indicators": [...]}}`; the
  secret must equal TAAPI_SECRET (401 `{"error"}` otherwise, and always when none is set);
  exchange `binancefutures` reads the futures venue, `binance` the spot venue; the symbol is the
  sim's as COIN/MARKET; 1..20 indicators among rsi, macd, ema, atr, bbands, each with optional
  `id` (default `<exchange>_<symbol>_<interval>_<indicator>_<backtrack>`), TAAPI's parameter
  names (defaults: actors/features/indicators.PARAMS), `backtrack` 0..50 (0: the candle in
  progress) and `addResultTimestamp` (the candle's open time in epoch s); a bad request is a 400
  `{"error": "..."}`;
- each calculation runs actors/features/indicators over the newest WINDOW candles ending
  `backtrack` candles before the one in progress: on the same klines the context's local path
  gets exactly the same numbers;
- answer 200 `{"data": [{"id", "indicator", "result", "errors": []}, ...]}`; a calculation with too
  few candles has `result: {}` and its reason in `errors`;
- rate, per secret: a token bucket of `rate` per second holding BURST tokens (TAAPI's limits are
  "elastic"); a call with no token gets 429 `{"error": {"message", "maxHitsAllowed",
  "maxHitsTimeframe", "blockTime": "<n> seconds", "reason"}}` and blocks the key for
  `block_sec`; every call during a block is answered 429 with the block lengthened by
  BLOCK_EXTEND_SEC (TAAPI's variable part) and counted in `blocked_hits`;
- `GET /taapi/__stats`: counters and the log of calls (arrival ms, status) for tests.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import orjson

from actors.features import indicators as ind
from actors.sim.binance.kline_bars import TF_MS
from actors.venues.taapi import MAX_CALCULATIONS, taapi_symbol

PREFIX = "/taapi"
BURST = 2.0
BLOCK_EXTEND_SEC = 1.0
MAX_BACKTRACK = 50
TAAPI_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "12h", "1d", "1w")
_LOG_KEEP = 1000


class BadRequest(Exception):
    pass


@dataclass
class _Key:
    tokens: float
    last_ms: int
    blocked_until_ms: int = 0


def _int_param(spec: dict, name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
    v = spec.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not lo <= v <= hi:
        raise BadRequest(f"{spec.get('indicator')}: '{name}' must be an integer in {lo}..{hi}, got {v!r}")
    return int(v)


def calculate(name: str, spec: dict, close: np.ndarray, high: np.ndarray, low: np.ndarray) -> dict:
    """One indicator's newest value(s) under TAAPI's field names; {} when there are too few candles."""
    d = ind.PARAMS[name]
    if name == "rsi":
        out = (ind.rsi(close, _int_param(spec, "period", d["period"], 2)),)
    elif name == "ema":
        out = (ind.ema(close, _int_param(spec, "period", d["period"])),)
    elif name == "atr":
        out = (ind.atr(high, low, close, _int_param(spec, "period", d["period"], 2)),)
    elif name == "macd":
        out = ind.macd(close, _int_param(spec, "optInFastPeriod", d["optInFastPeriod"], 2),
                       _int_param(spec, "optInSlowPeriod", d["optInSlowPeriod"], 2),
                       _int_param(spec, "optInSignalPeriod", d["optInSignalPeriod"]))
    else:
        k = spec.get("stddev", d["stddev"])
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 10:
            raise BadRequest(f"bbands: 'stddev' must be a number in (0, 10], got {k!r}")
        out = ind.bbands(close, _int_param(spec, "period", d["period"], 2), float(k))
    last = [float(a[-1]) if len(a) else math.nan for a in out]
    if any(math.isnan(v) for v in last):
        return {}
    return dict(zip(ind.FIELDS[name], last))


@dataclass
class TaapiSim:
    """The TAAPI surface of the sim (see the module docstring)."""
    secret: str | None
    symbol: str                       # the sim's symbol, e.g. BTCUSDT
    venues: dict                      # TAAPI exchange -> a venue with klines(tf, start, end, limit, now_ms)
    rate_per_sec: float
    block_sec: float
    keys: dict[str, _Key] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)     # status -> answers
    blocked_hits: int = 0             # calls that came during a block
    log: deque = field(default_factory=lambda: deque(maxlen=_LOG_KEEP))

    @classmethod
    def from_settings(cls, settings, futures_venue, spot_venue) -> "TaapiSim":
        rate = settings.sim.taapi_rate_per_sec or settings.context.taapi_rate_per_sec
        return cls(settings.context.taapi_secret, settings.general.symbol,
                   {"binancefutures": futures_venue, "binance": spot_venue},
                   rate, settings.sim.taapi_block_sec)

    @staticmethod
    def owns(path: str) -> bool:
        p = path.partition("?")[0]
        return p == PREFIX or p.startswith(PREFIX + "/")

    # --- the request path ------------------------------------------------------------------
    def answer(self, method: str, path: str, body: bytes, now_ms: int) -> tuple[int, str, list]:
        """(status, JSON body, headers) for a request to a path under PREFIX."""
        p = path.partition("?")[0]
        if p == PREFIX + "/__stats" and method == "GET":
            return 200, orjson.dumps(self.stats()).decode(), []
        if p != PREFIX + "/bulk":
            return self._done(now_ms, 404, {"error": f"Unknown endpoint {p}"})
        if method != "POST":
            return self._done(now_ms, 405, {"error": "Use POST for /bulk"})
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._done(now_ms, 400, {"error": "Body is not valid JSON"})
        secret = doc.get("secret") if isinstance(doc, dict) else None
        if not self.secret or secret != self.secret:
            return self._done(now_ms, 401, {"error": "Invalid or missing secret. Permission denied!"})
        limited = self._rate(secret, now_ms)
        if limited is not None:
            return limited
        try:
            out = self._bulk(doc, now_ms)
        except BadRequest as exc:
            return self._done(now_ms, 400, {"error": str(exc)})
        return self._done(now_ms, 200, {"data": out})

    def _done(self, now_ms: int, status: int, doc: dict, headers: list | None = None):
        self.counts[str(status)] = self.counts.get(str(status), 0) + 1
        self.log.append((now_ms, status))
        return status, orjson.dumps(doc).decode(), headers or []

    def _rate(self, secret: str, now_ms: int):
        k = self.keys.get(secret)
        if k is None:
            k = self.keys[secret] = _Key(BURST, now_ms)
        k.tokens = min(BURST, k.tokens + (now_ms - k.last_ms) / 1000.0 * self.rate_per_sec)
        k.last_ms = now_ms
        if k.blocked_until_ms > now_ms:
            # a call during the block: TAAPI lengthens it
            self.blocked_hits += 1
            k.blocked_until_ms += int(BLOCK_EXTEND_SEC * 1000)
        elif k.tokens < 1.0:
            k.blocked_until_ms = now_ms + int(self.block_sec * 1000)
        else:
            k.tokens -= 1.0
            return None
        left_sec = -(-(k.blocked_until_ms - now_ms) // 1000)
        return self._done(now_ms, 429, {"error": {
            "message": "429: You have exceeded your request limit (TAAPI.IO rate-limit)!",
            "maxHitsAllowed": self.rate_per_sec, "maxHitsTimeframe": "1s",
            "blockTime": f"{left_sec} seconds", "reason": "Rate limits exceeded!"}})

    def _bulk(self, doc: dict, now_ms: int) -> list[dict]:
        c = doc.get("construct")
        if not isinstance(c, dict):
            raise BadRequest("Missing 'construct' object")
        exchange, symbol, interval = c.get("exchange"), c.get("symbol"), c.get("interval")
        venue = self.venues.get(exchange)
        if venue is None:
            raise BadRequest(f"Unsupported exchange {exchange!r}; supported: {sorted(self.venues)}")
        if symbol != taapi_symbol(self.symbol):
            raise BadRequest(f"Unknown symbol {symbol!r} on {exchange}")
        if interval not in TAAPI_INTERVALS or interval not in TF_MS:
            raise BadRequest(f"Invalid interval {interval!r}; supported: {TAAPI_INTERVALS}")
        specs = c.get("indicators")
        if not isinstance(specs, list) or not 1 <= len(specs) <= MAX_CALCULATIONS:
            raise BadRequest(f"'indicators' must be a list of 1..{MAX_CALCULATIONS} objects")
        out, seen, candles = [], set(), {}
        for spec in specs:
            if not isinstance(spec, dict) or spec.get("indicator") not in ind.PARAMS:
                raise BadRequest(f"Unknown indicator in {str(spec)[:100]}; supported: {list(ind.PARAMS)}")
            name = spec["indicator"]
            bt = _int_param(spec, "backtrack", 0, 0, MAX_BACKTRACK)
            iid = spec.get("id", f"{exchange}_{symbol}_{interval}_{name}_{bt}")
            if not isinstance(iid, str) or iid in seen:
                raise BadRequest(f"Indicator id {iid!r} is not a string or not unique")
            seen.add(iid)
            if bt not in candles:
                candles[bt] = self._candles(venue, interval, bt, now_ms)
            t_open_ms, close, high, low = candles[bt]
            result = calculate(name, spec, close, high, low)
            errors = [] if result else [f"Not enough candles ({len(close)}) for {name}"]
            if result and spec.get("addResultTimestamp"):
                result["timestamp"] = t_open_ms // 1000
            out.append({"id": iid, "indicator": name, "result": result, "errors": errors})
        return out

    @staticmethod
    def _candles(venue, interval: str, backtrack: int, now_ms: int):
        """(open ms of the newest used candle, close, high, low) of the newest WINDOW candles
        ending `backtrack` candles before the one in progress."""
        rows = orjson.loads(venue.klines(interval, None, None, ind.WINDOW + backtrack, now_ms))
        if backtrack:
            rows = rows[:-backtrack]
        rows = rows[-ind.WINDOW:]
        if not rows:
            return 0, np.empty(0), np.empty(0), np.empty(0)
        a = np.array([[float(r[4]), float(r[2]), float(r[3])] for r in rows])
        return int(rows[-1][0]), a[:, 0], a[:, 1], a[:, 2]

    def stats(self) -> dict:
        return {"answers": dict(self.counts), "blocked_hits": self.blocked_hits,
                "rate_per_sec": self.rate_per_sec, "block_sec": self.block_sec,
                "keys": [{"tokens": round(k.tokens, 3), "blocked_until_ms": k.blocked_until_ms}
                         for k in self.keys.values()],
                "log": list(self.log)}
