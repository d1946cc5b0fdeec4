"""The sim's Chainlink `<asset>/usd` oracles and Polymarket RTDS protocol (pure: times are arguments).

Oracle. A Chainlink stream (one per up/down asset: btc/usd, eth/usd, sol/usd, xrp/usd) is a lagged,
smoothed view of the exchanges. Here it is an EMA (time constant `tau_sec`, 1.5 s) of a mid price
(the configured SYMBOL's asset: the sim's Binance futures mid; every other asset: its own seeded
random walk, `PricePath`, from a realistic price, `START_PRICES`), sampled on every whole second, times
(1 + basis) with a small Ornstein-Uhlenbeck basis (mean -0.5 bp, sd 0.4 bp: a few dollars), so it
differs from the Binance mid by a few dollars and trails it by a second or two. Each observation
(timestamp on the whole second) is published `lag` 0.9-1.5 s later (captures: 0.96-1.45 s).
Before the sim started there is a synthetic past: a seeded random walk with the stream's per-second
volatility ending at the first live observation, `history_sec` long (the caller makes it cover every
window Gamma answers, a daily one a day after its end included), so every answered window has a
price to beat and a subscriber's snapshot has history.

Invariants:
- one observation per whole second, never revised: `value_at(s)` is fixed once s is observed;
- `due(now)` hands out observations in observation order, each once, when its send time passed;
- `full_accuracy_value` is the decimal `value` scaled by 1e18 (an integer string), so
  int(full_accuracy_value) / 10**18 == value exactly (actors.venues.polymarket.rtds relies on it; it holds on
  every captured line);
- frames are shaped as captured: updates `{"connection_id", "payload": {"full_accuracy_value",
  "symbol", "timestamp", "value"}, "timestamp", "topic": "crypto_prices_chainlink", "type":
  "update"}` (keys sorted, as the venue sends them); the subscribe dump `{"payload": {"data":
  [{"timestamp", "value"}...], "symbol"}, "timestamp", "topic": "crypto_prices", "type":
  "subscribe"}` with no connection_id and the Binance topic label (a venue quirk, captured
  2026-09-05), ~1 min of points; the first frame after the opening handshake is an empty text.
"""
from __future__ import annotations

import base64
import math
import random
from collections import deque
from decimal import Decimal

import numpy as np
import orjson

from actors.sim.market import ASSET_START_PRICES

TOPIC = "crypto_prices_chainlink"
SNAPSHOT_TOPIC = "crypto_prices"          # the dump of the Chainlink topic is labelled so
SYMBOL = "btc/usd"
# an asset the sim has no Binance market for starts its walk here (actors/sim/market.py)
START_PRICES = ASSET_START_PRICES
VOL_ANNUAL = {"btc": 0.55, "eth": 0.70, "sol": 0.90, "xrp": 0.90}
SNAPSHOT_POINTS = 59
_HISTORY_CHUNK = 4096                     # seconds of synthetic past made at a time
# topics the venue knows: subscribing to one we do not generate is accepted and stays silent
KNOWN_TOPICS = {"crypto_prices", "crypto_prices_chainlink", "crypto_prices_twap_thirty",
                "crypto_prices_twap_sixty", "comments", "activity", "clob_market", "clob_user",
                "equity_prices"}
_NS = 1_000_000_000


def stream(asset: str) -> str:
    """The RTDS Chainlink symbol of an up/down asset: btc -> btc/usd."""
    return f"{asset}/usd"


class PricePath:
    """A seeded geometric random walk (no drift, `sigma_1s` per √s) standing in for the Binance mid
    of an asset the sim runs no Binance market for. Deterministic for a seed and a call pattern."""

    def __init__(self, seed: int, start_ns: int, price: float, sigma_1s: float):
        if price <= 0 or sigma_1s < 0:
            raise ValueError("price must be > 0 and sigma_1s >= 0")
        self.rng = random.Random(seed)
        self.sigma = sigma_1s
        self.t_ns = start_ns
        self.x = math.log(price)

    def at(self, now_ns: int) -> float:
        dt = (now_ns - self.t_ns) / _NS
        if dt > 0:
            s = self.sigma * math.sqrt(dt)
            self.x += -0.5 * s * s + s * self.rng.gauss(0, 1)
            self.t_ns = now_ns
        return math.exp(self.x)


def full_accuracy(value: float) -> str:
    """The integer string value·1e18 of the shortest decimal of `value`."""
    return str(int(Decimal(repr(value)).scaleb(18)))


class Oracle:
    """One Chainlink stream's observations (see the module docstring)."""

    def __init__(self, seed: int, start_ns: int, start_price: float, *, sigma_1s: float,
                 history_sec: int = 86_400 + 3_600, tau_sec: float = 1.5,
                 basis_mean_bps: float = -0.5, basis_sd_bps: float = 0.4,
                 basis_halflife_sec: float = 180.0, lag_sec: tuple[float, float] = (0.9, 1.5)):
        self.rng = random.Random(seed * 7919 + 17)
        self.tau = tau_sec
        self.lag = lag_sec
        self.b_mean, self.b_sd = basis_mean_bps, basis_sd_bps
        self.b_a = math.exp(-math.log(2) / basis_halflife_sec)
        self.basis = basis_mean_bps
        # the first live observation is the start's own second: the past ends right before it, so
        # the published stream (snapshot, then updates) has no hole at the sim's start
        self.first = start_ns // _NS
        self.last = self.first - 1                  # last observed second
        p0 = start_price * (1 + self.basis * 1e-4)
        # back[k] = value at second first-1-k; back[0] = p0. Walked back in fixed chunks on first
        # need (one start builds a day or more of past per stream): the same values whenever read
        self._history_sec = history_sec
        self._sigma = sigma_1s
        self._gen = np.random.default_rng(seed + 4242)
        self._back = np.array([p0])
        self._log_next = math.log(p0) + float(self._gen.standard_normal()) * sigma_1s
        self._extend(_HISTORY_CHUNK)
        self._live: list[float] = []
        self._live_base = self.first                # second of _live[0]
        self.ema: float | None = None
        self._t_ema = 0
        self.pending: deque[tuple[int, int, float]] = deque()   # (send ns, obs ms, value)
        self.published = deque(maxlen=SNAPSHOT_POINTS)          # (obs ms, value) handed out
        self._fill_published(start_ns)

    def _fill_published(self, now_ns: int) -> None:
        s = now_ns // _NS - 1
        for sec in range(s - SNAPSHOT_POINTS + 1, s + 1):
            v = self.value_at(sec)
            if v is not None:
                self.published.append((sec * 1000, v))

    # --- inputs --------------------------------------------------------------------------------
    def sample(self, now_ns: int, mid: float) -> None:
        """Feed the Binance mid at now; observe every whole second passed since the last call."""
        if self.ema is None:
            self.ema = mid
        else:
            dt = (now_ns - self._t_ema) / _NS
            if dt > 0:
                self.ema += (1 - math.exp(-dt / self.tau)) * (mid - self.ema)
        self._t_ema = now_ns
        s_now = now_ns // _NS
        while self.last < s_now:
            self.last += 1
            z = self.rng.gauss(0, 1)
            self.basis = self.b_mean + (self.basis - self.b_mean) * self.b_a \
                + self.b_sd * math.sqrt(1 - self.b_a ** 2) * z
            v = self.ema * (1 + self.basis * 1e-4)
            self._live.append(v)
            lag = self.rng.uniform(*self.lag)
            self.pending.append((self.last * _NS + int(lag * _NS), self.last * 1000, v))
        if len(self._live) > 2 * 86_400 + 7200:     # keep two days of live history
            cut = len(self._live) - 2 * 86_400
            del self._live[:cut]
            self._live_base += cut

    # --- outputs -------------------------------------------------------------------------------
    def due(self, now_ns: int) -> list[tuple[int, float]]:
        out = []
        q = self.pending
        while q and q[0][0] <= now_ns:
            _, ms, v = q.popleft()
            out.append((ms, v))
            self.published.append((ms, v))
        return out

    def next_due_ns(self) -> int:
        nxt = (self.last + 1) * _NS
        return min(self.pending[0][0], nxt) if self.pending else nxt

    def value_at(self, sec: int) -> float | None:
        """The observation of second `sec` (None: not observed yet or too old)."""
        if sec >= self.first:
            i = sec - self._live_base
            return self._live[i] if 0 <= i < len(self._live) and sec <= self.last else None
        k = self.first - 1 - sec
        if k >= len(self._back):
            if k >= self._history_sec:
                return None
            self._extend(k + 1)
        return float(self._back[k])

    def _extend(self, n: int) -> None:
        """Walk the past back to at least `n` seconds (whole chunks, at most history_sec)."""
        have = len(self._back)
        want = min(self._history_sec, -(-max(n, have) // _HISTORY_CHUNK) * _HISTORY_CHUNK)
        while have < want:
            m = min(_HISTORY_CHUNK, want - have)
            steps = self._gen.standard_normal(m) * self._sigma
            logs = self._log_next + np.concatenate(([0.0], np.cumsum(steps[:-1])))
            self._log_next = float(logs[-1] + steps[-1])
            self._back = np.concatenate((self._back, np.exp(logs)))
            have += m

    def twap(self, end_sec: int, lookback: int) -> float | None:
        """Mean of the observations of seconds (end - lookback, end]."""
        vals = [self.value_at(s) for s in range(end_sec - lookback + 1, end_sec + 1)]
        if not vals or any(v is None for v in vals):
            return None
        return sum(vals) / len(vals)

    def current(self) -> float | None:
        return self.value_at(self.last)


# --- protocol ---------------------------------------------------------------------------------
def connection_id(rng: random.Random) -> str:
    return base64.b64encode(rng.getrandbits(88).to_bytes(11, "big")).decode()


def update_tail(symbol: str, obs_ms: int, value: float, send_ms: int) -> bytes:
    """The update frame without its connection_id: `'{"connection_id":"<id>",' + tail[1:]`."""
    return orjson.dumps({"payload": {"full_accuracy_value": full_accuracy(value), "symbol": symbol,
                                     "timestamp": obs_ms, "value": value},
                         "timestamp": send_ms, "topic": TOPIC, "type": "update"})


def with_connection_id(cid: str, tail: bytes) -> str:
    return '{"connection_id":"' + cid + '",' + tail[1:].decode()


def snapshot(symbol: str, points, send_ms: int) -> str:
    return orjson.dumps({"payload": {"data": [{"timestamp": ms, "value": v} for ms, v in points],
                                     "symbol": symbol},
                         "timestamp": send_ms, "topic": SNAPSHOT_TOPIC, "type": "subscribe"}).decode()


def error_frame(topic: str, typ: str) -> str:
    what = f"topic: {topic} and type: {typ} not found"
    return orjson.dumps({"body": {"message": f"leger GetTopics error: rpc error: code = NotFound "
                                             f"desc = {what}, status: rpc error: code = NotFound "
                                             f"desc = {what}, message: {what}"},
                         "statusCode": 401}).decode()


def _symbols(filters) -> frozenset[str] | None:
    """None: every symbol. Filters are a JSON object encoded as a string (`{"symbol":"btc/usd"}`),
    or a comma-separated list (the Binance topic's style)."""
    if filters is None or filters == "":
        return None
    if isinstance(filters, dict):
        d = filters
    else:
        if not isinstance(filters, str):
            raise ValueError("filters must be a string")
        try:
            d = orjson.loads(filters)
        except orjson.JSONDecodeError:
            return frozenset(x.strip().lower() for x in filters.split(",") if x.strip())
    if isinstance(d, dict):
        sym = d.get("symbol")
        if isinstance(sym, str):
            return frozenset([sym.lower()])
        if isinstance(sym, list):
            return frozenset(str(x).lower() for x in sym)
        return None
    raise ValueError("filters must name a symbol")


def parse_client(text: str | bytes):
    """('ping',) | ('subscribe'|'unsubscribe', [(topic, type, symbols|None), ...]) |
    ('bad', reason). The client's text frame `PING` is the keepalive."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    body = text.strip()
    if body in ("PING", "ping"):
        return ("ping",)
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ("bad", "not JSON")
    if not isinstance(d, dict):
        return ("bad", "not an object")
    action = d.get("action")
    subs = d.get("subscriptions")
    if action not in ("subscribe", "unsubscribe") or not isinstance(subs, list):
        return ("bad", "action must be subscribe/unsubscribe with subscriptions[]")
    out = []
    for s in subs:
        if not isinstance(s, dict) or not isinstance(s.get("topic"), str):
            return ("bad", "subscription without a topic")
        try:
            syms = _symbols(s.get("filters"))
        except ValueError as exc:
            return ("bad", str(exc))
        out.append((s["topic"], str(s.get("type", "*")), syms))
    return (action, out)
