"""Fault injection for the built-in exchange: the fault state, frame corruption, a client helper.

The state and corruption are pure (times come in as arguments); actors/sim/server.py applies them
to what it sends and exposes them on a sim-only HTTP route of each venue port (not a venue route):

    POST /__sim/fault   body: one JSON object, answered {"ok": true, "kind": .., ...}
                        or 400 {"ok": false, "error": ".."}
    GET  /__sim/stats   counters (see server.py `_Venue.stats`)

Kinds (a fault applies to the venue of the port it is posted to):
- {"kind":"stall","seconds":S[,"stream":NAME]}: no data frame (of NAME, or of any stream) is sent
  for S seconds; connections stay open, pings and pongs and method replies still flow. Frames
  generated meanwhile are not sent: lost, as in a venue stall.
- {"kind":"drop"}: every connection is aborted now (TCP reset, no close frame).
- {"kind":"disconnect"}: every connection is closed with code 1001, as at the venue's 24 h limit.
- {"kind":"malformed","count":N[,"stream":NAME]}: the next N data frames (of NAME, or of any
  stream that has a receiver) are replaced by corrupted ones, in a fixed cycle: truncated JSON,
  non-JSON text, a wrong type (a number field becomes "abc"), a missing required field. The data
  they replaced is lost. Every variant fails actors.venues.binance.parse.parse_frame with FrameError.
- {"kind":"insane","count":N[,"stream":NAME]}: the next N data frames (of NAME, or of any stream
  that has a receiver) are sent as well-formed JSON carrying one value no venue sends, in a fixed
  cycle per frame shape (INSANE; a cycle position per stream, from the first insane frame of the
  stream on): trades price "0", "NaN", "1e400", qty "-1", `m` "false";
  bookTicker bid "0", ask "inf", crossed (bid above ask), bid qty "-1", bid "NaN"; depth a level
  price "0", a level qty "-1", a level price "NaN"; markPrice price "0", "inf", funding "NaN";
  forceOrder price "0", qty "-1"; kline open "0", high below low, `x` "false". Every variant
  fails actors.venues.binance.parse.parse_frame with `Rejected`, reason INSANE_REASONS[shape][i];
  the data they replaced is lost, like a malformed frame's, and /__sim/stats counts them with the
  malformed ones. A malformed fault pending on the same frame goes first.
- {"kind":"gap","count":N}: the venue's next aggTrade id (and trade id) jump by N (the next frame's
  `a` is the previous one's + N + 1), and the next frame of every futures depth stream has a `pu`
  that is not the previous frame's `u` (once).
- {"kind":"rest429","count":N,"retry_after":S} / {"kind":"rest418",...}: the next N REST calls (venue
  routes) are answered 429 / 418 with `Retry-After: S` and the venue's -1003 body.
- {"kind":"server_shutdown"[,"seconds":S]} (spot port only): every spot connection gets the
  venue's `{"e":"serverShutdown","E":<ms>}` now, keeps its streams, and is closed with 1001 S
  seconds later (default 5), as when a venue server goes down for maintenance. New connections
  are not affected.
- {"kind":"clear"}: cancels every active fault (stalls, pending corruptions, pending REST answers)
  and lifts a REST ban.

Invariants: counts are consumed exactly (a corrupted frame is one frame on one stream, whatever the
number of receivers); a stall never touches control frames; `clear` leaves nothing pending.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

KINDS = ("stall", "drop", "disconnect", "malformed", "insane", "gap", "rest429", "rest418",
         "server_shutdown", "clear")
SEND, STALLED, CORRUPT = 0, 1, 2


class FaultError(ValueError):
    """A fault request that cannot be applied (answered 400)."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    seconds: float = 0.0
    stream: str | None = None
    count: int = 0
    retry_after: int = 0


def fault_body(body: bytes | str, kinds: tuple[str, ...], fields: set[str]):
    """Validate a fault request's JSON object: (the dict, a checked-number getter). Shared by
    every port's fault route."""
    try:
        d = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FaultError(f"body is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise FaultError("body must be a JSON object")
    if d.get("kind") not in kinds:
        raise FaultError(f"kind must be one of {list(kinds)}")
    unknown = set(d) - fields - {"kind"}
    if unknown:
        raise FaultError(f"unknown field(s) {sorted(unknown)}")

    def num(name, default, *, integer=False, minimum=0):
        v = d.get(name, default)
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if v is None or isinstance(v, bool) or not ok or not math.isfinite(v) or v < minimum:
            raise FaultError(f"{name} must be a {'whole ' if integer else ''}number >= {minimum}")
        return v

    return d, num


def parse_fault(body: bytes | str) -> Fault:
    """Validate a POST /__sim/fault body."""
    d, num = fault_body(body, KINDS, {"seconds", "stream", "count", "retry_after"})
    kind = d["kind"]
    stream = d.get("stream")
    if stream is not None and (not isinstance(stream, str) or not stream):
        raise FaultError("stream must be a non-empty string")

    if kind == "stall":
        return Fault(kind, seconds=float(num("seconds", None)), stream=stream)
    if kind in ("malformed", "insane"):
        return Fault(kind, count=num("count", None, integer=True, minimum=1), stream=stream)
    if kind == "gap":
        return Fault(kind, count=num("count", 1, integer=True, minimum=1))
    if kind in ("rest429", "rest418"):
        return Fault(kind, count=num("count", 1, integer=True, minimum=1),
                     retry_after=num("retry_after", 1, integer=True))
    if kind == "server_shutdown":
        return Fault(kind, seconds=float(num("seconds", 5.0)))
    return Fault(kind)


class FaultState:
    """The active faults of one venue (see the module docstring). Times: seconds (monotonic)."""

    def __init__(self):
        self._stall_all = 0.0
        self._stall: dict[str, float] = {}
        self._bad_all = 0
        self._bad: dict[str, int] = {}
        self._n_corrupt = 0                   # position in the corruption cycle
        self._insane_all = 0
        self._insane: dict[str, int] = {}
        self._n_insane: dict[str, int] = {}   # stream -> position in its insane-value cycle
        self._next_insane: int | None = None  # the CORRUPT verdict just given: that insane variant
        self.depth_gap_epoch = 0              # +1 per gap: each depth stream breaks `pu` once
        self.gap_size = 0
        self.rest_forced: list[list[int]] = []   # [status, count, retry_after]
        self.applied: dict[str, int] = {k: 0 for k in KINDS}
        self.active = False                   # any stall or pending corruption (fast path)

    def apply(self, f: Fault, now_s: float) -> None:
        """Record a state fault (stall, malformed, gap, rest*, clear); the I/O ones (drop,
        disconnect, server_shutdown) and the market side of gap are the server's."""
        self.applied[f.kind] += 1
        if f.kind == "stall":
            until = now_s + f.seconds
            if f.stream is None:
                self._stall_all = max(self._stall_all, until)
            else:
                self._stall[f.stream] = max(self._stall.get(f.stream, 0.0), until)
        elif f.kind == "malformed":
            if f.stream is None:
                self._bad_all += f.count
            else:
                self._bad[f.stream] = self._bad.get(f.stream, 0) + f.count
        elif f.kind == "insane":
            if f.stream is None:
                self._insane_all += f.count
            else:
                self._insane[f.stream] = self._insane.get(f.stream, 0) + f.count
        elif f.kind == "gap":
            self.depth_gap_epoch += 1
            self.gap_size = f.count
        elif f.kind in ("rest429", "rest418"):
            self.rest_forced.append([429 if f.kind == "rest429" else 418, f.count, f.retry_after])
        elif f.kind == "clear":
            self._stall_all = 0.0
            self._stall.clear()
            self._bad_all = 0
            self._bad.clear()
            self._insane_all = 0
            self._insane.clear()
            self.rest_forced.clear()
        self._refresh(now_s)

    def _refresh(self, now_s: float) -> None:
        self.active = bool(self._stall_all > now_s or self._stall or self._bad_all or self._bad
                           or self._insane_all or self._insane)

    def verdict(self, stream: str, now_s: float) -> int:
        """SEND, STALLED (not sent, lost) or CORRUPT (send `corrupt(...)` instead) for the next
        frame of `stream` (only asked when some connection receives it)."""
        if self._stall_all > now_s:
            return STALLED
        until = self._stall.get(stream)
        if until is not None:
            if until > now_s:
                return STALLED
            del self._stall[stream]
        n = self._bad.get(stream)
        if n:
            if n == 1:
                del self._bad[stream]
            else:
                self._bad[stream] = n - 1
            self._refresh(now_s)
            return CORRUPT
        if self._bad_all:
            self._bad_all -= 1
            self._refresh(now_s)
            return CORRUPT
        n = self._insane.get(stream)
        if n or self._insane_all:
            if n:
                if n == 1:
                    del self._insane[stream]
                else:
                    self._insane[stream] = n - 1
            else:
                self._insane_all -= 1
            i = self._n_insane.get(stream, 0)
            self._n_insane[stream] = i + 1
            self._next_insane = i
            self._refresh(now_s)
            return CORRUPT
        self._refresh(now_s)
        return SEND

    def next_corruption(self) -> int:
        """The variant for `corrupt` of the frame just given CORRUPT: 0..3 (malformed) or
        INSANE_BASE + i (the i-th insane value)."""
        i = self._next_insane
        if i is not None:
            self._next_insane = None
            return INSANE_BASE + i
        i = self._n_corrupt
        self._n_corrupt = i + 1
        return i % 4

    def rest_override(self) -> tuple[int, int] | None:
        """(status, retry_after) for the next REST call if one is forced, else None."""
        if not self.rest_forced:
            return None
        entry = self.rest_forced[0]
        entry[1] -= 1
        if entry[1] <= 0:
            self.rest_forced.pop(0)
        return entry[0], entry[2]

    def describe(self, now_s: float) -> dict:
        stalls = {s: round(t - now_s, 3) for s, t in self._stall.items() if t > now_s}
        if self._stall_all > now_s:
            stalls["*"] = round(self._stall_all - now_s, 3)
        bad = dict(self._bad)
        if self._bad_all:
            bad["*"] = self._bad_all
        insane = dict(self._insane)
        if self._insane_all:
            insane["*"] = self._insane_all
        return {"applied": dict(self.applied), "stall_sec_left": stalls, "malformed_pending": bad,
                "insane_pending": insane,
                "rest_pending": [{"status": s, "count": c, "retry_after": r}
                                 for s, c, r in self.rest_forced]}


# --- corruption ------------------------------------------------------------------------------
# Per frame shape: a field to give a wrong type and a required field to remove. The removed field
# is never one the parser recognises a raw frame by (`e`, spot `u`/`lastUpdateId`), so the frame
# is still taken for what it is and then fails, rather than being skipped as unknown.
_WRONG = {"aggTrade": ("p",), "bookTicker": ("b",), "markPriceUpdate": ("p",),
          "forceOrder": ("o", "q"), "kline": ("k", "o"), "depthUpdate": ("u",)}
_MISSING = {"aggTrade": "p", "bookTicker": "b", "markPriceUpdate": "p", "forceOrder": "o",
            "kline": "k", "depthUpdate": "U"}


def _shape(d: dict) -> str:
    e = d.get("e")
    if isinstance(e, str):
        return e
    if "lastUpdateId" in d:
        return "spotDepth"
    return "bookTicker"


def _wrong_type(d: dict) -> dict:
    shape = _shape(d)
    if shape == "spotDepth":
        d["bids"] = [["abc", "1.00000000"]] + d["bids"][1:]
        return d
    path = _WRONG.get(shape, ("p",))
    tgt = d
    for k in path[:-1]:
        tgt = tgt[k]
    tgt[path[-1]] = "abc"
    return d


def _missing(d: dict) -> dict:
    shape = _shape(d)
    d.pop("bids" if shape == "spotDepth" else _MISSING.get(shape, "p"), None)
    return d


# --- insane values ---------------------------------------------------------------------------
# Well-formed frames with one value no venue sends. Per frame shape, the cycle of (path, value)
# edits; a path step "b0"/"a0" is the first level of the bid/ask side (spot `bids`/`asks`,
# futures `b`/`a`), then 0 (price) or 1 (qty). "crossed" sets the bid above the ask.
INSANE_BASE = 1000
INSANE: dict[str, tuple[tuple[tuple, object], ...]] = {
    "aggTrade": ((("p",), "0"), (("p",), "NaN"), (("p",), "1e400"), (("q",), "-1"), (("m",), "false")),
    "bookTicker": ((("b",), "0"), (("a",), "inf"), ("crossed", None), (("B",), "-1"), (("b",), "NaN")),
    "depth": ((("b0", 0), "0"), (("a0", 1), "-1"), (("b0", 0), "NaN")),
    "markPriceUpdate": ((("p",), "0"), (("p",), "inf"), (("r",), "NaN")),
    "forceOrder": ((("o", "p"), "0"), (("o", "q"), "-1")),
    "kline": ((("k", "o"), "0"), ("high_below_low", None), (("k", "x"), "false")),
}
INSANE["trade"] = INSANE["aggTrade"]
# the parser's Rejected reason of each variant (tests, drills)
INSANE_REASONS: dict[str, tuple[str, ...]] = {
    "aggTrade": ("trade:price", "trade:price", "trade:price", "trade:qty", "trade:m"),
    "bookTicker": ("quote:bid", "quote:ask", "quote:crossed", "quote:bid_qty", "quote:bid"),
    "depth": ("depth:price", "depth:qty", "depth:price"),
    "markPriceUpdate": ("mark:price", "mark:price", "mark:funding_rate"),
    "forceOrder": ("liquidation:price", "liquidation:qty"),
    "kline": ("kline:price", "kline:ohlc", "kline:closed"),
}
INSANE_REASONS["trade"] = INSANE_REASONS["aggTrade"]


def _insane_shape(d: dict) -> str:
    shape = _shape(d)
    return "depth" if shape in ("spotDepth", "depthUpdate") else shape


def _side(d: dict, step: str) -> list:
    bid = step[0] == "b"
    key = ("bids" if bid else "asks") if "lastUpdateId" in d else ("b" if bid else "a")
    return d[key]


def insane(i: int, payload: str) -> str:
    """`payload` (a raw Binance data payload) with the i-th insane value of its shape's cycle."""
    d = orjson.loads(payload)
    shape = _insane_shape(d)
    cycle = INSANE.get(shape, INSANE["aggTrade"])
    path, value = cycle[i % len(cycle)]
    if path == "crossed":
        d["b"] = str(float(d["a"]) * 2)
    elif path == "high_below_low":
        k = d["k"]
        k["h"] = str(float(k["l"]) / 2)
    elif path[0] in ("b0", "a0"):
        side = _side(d, path[0])
        if side:
            side[0][path[1]] = value
        else:
            side.append(["1", "1"] if path[1] else [value, "1"])
            side[0][path[1]] = value
    else:
        tgt = d
        for k in path[:-1]:
            tgt = tgt[k]
        tgt[path[-1]] = value
    return orjson.dumps(d).decode()


def corrupt(variant: int, stream: str, payload: str) -> tuple[str, str]:
    """(raw frame, combined frame) replacing `payload` on `stream`; variant in 0..3 (malformed)
    or INSANE_BASE + i (the i-th insane value)."""
    if variant >= INSANE_BASE:
        raw = insane(variant - INSANE_BASE, payload)
        return raw, f'{{"stream":"{stream}","data":{raw}}}'
    comb = f'{{"stream":"{stream}","data":{payload}}}'
    if variant == 0:          # truncated mid-frame
        return payload[: max(1, len(payload) // 2)], comb[: max(1, len(comb) // 2)]
    if variant == 1:          # not JSON at all (what a broken proxy might pass on)
        junk = "\x00\x1b[0m<html><body>502 Bad Gateway</body></html>"
        return junk, junk
    d = orjson.loads(payload)
    d = _wrong_type(d) if variant == 2 else _missing(d)
    raw = orjson.dumps(d).decode()
    return raw, f'{{"stream":"{stream}","data":{raw}}}'


# --- client helper (tests, tools) ------------------------------------------------------------
def inject(base_url: str, kind: str, timeout: float = 5.0, **params) -> dict:
    """POST a fault to a sim port (`http://127.0.0.1:<port>`); returns the JSON answer."""
    import httpx
    r = httpx.post(f"{base_url.rstrip('/')}/__sim/fault", json={"kind": kind, **params},
                   timeout=timeout)
    r.raise_for_status()
    return r.json()


async def ainject(base_url: str, kind: str, timeout: float = 5.0, **params) -> dict:
    """`inject` for asyncio code."""
    import httpx
    async with httpx.AsyncClient(timeout=timeout) as c:
        r = await c.post(f"{base_url.rstrip('/')}/__sim/fault", json={"kind": kind, **params})
    r.raise_for_status()
    return r.json()


def stats(base_url: str, timeout: float = 5.0) -> dict:
    """GET /__sim/stats of a sim port."""
    import httpx
    r = httpx.get(f"{base_url.rstrip('/')}/__sim/stats", timeout=timeout)
    r.raise_for_status()
    return r.json()


async def astats(base_url: str, timeout: float = 5.0) -> dict:
    """`stats` for asyncio code."""
    import httpx
    async with httpx.AsyncClient(timeout=timeout) as c:
        r = await c.get(f"{base_url.rstrip('/')}/__sim/stats")
    r.raise_for_status()
    return r.json()
