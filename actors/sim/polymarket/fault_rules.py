"""Fault injection on the sim's Polymarket port (pure: times are arguments).

The kinds and their meaning are listed in actors/sim/polymarket/port.py (the HTTP route). Stream keys:
"*" (everything on the port), "market" (the CLOB WebSocket), "rtds", or a token id.

Invariants: a count is consumed exactly (one corrupted frame is one frame, whatever the number of
receivers); `clear` leaves nothing pending; every corrupted frame fails
actors.venues.polymarket.clob.parse_frame / actors.venues.polymarket.rtds.parse_frame with their FrameError.
"""
from __future__ import annotations

import orjson

from actors.sim.faults import FaultError, fault_body

KINDS = ("stall", "drop", "disconnect", "malformed", "tick_size", "gamma404", "silent_book",
         "thin_book", "clear")


def parse_fault(body: bytes | str) -> dict:
    """Validate a POST /__sim/fault body of the Polymarket port (see port.py)."""
    d, num = fault_body(body, KINDS, {"seconds", "stream", "asset", "count"})
    kind = d["kind"]
    for k in ("stream", "asset"):
        if k in d and (not isinstance(d[k], str) or not d[k]):
            raise FaultError(f"{k} must be a non-empty string")

    out = {"kind": kind, "stream": d.get("stream", d.get("asset"))}
    if kind == "stall":
        out["seconds"] = float(num("seconds", None))
    elif kind == "malformed":
        out["count"] = num("count", None, integer=True, minimum=1)
    elif kind == "gamma404":
        out["count"] = num("count", 1, integer=True, minimum=1)
    elif kind in ("tick_size", "silent_book", "thin_book"):
        if "asset" not in d:
            raise FaultError(f"{kind} needs an asset (token id)")
        out["asset"] = d["asset"]
        if kind == "silent_book":
            out["seconds"] = float(num("seconds", None))
        elif kind == "thin_book":
            out["seconds"] = float(num("seconds", 10.0))
    return out


class PolyFaults:
    """Active faults. Stream keys: "*" (everything on the port), "market" (the CLOB WS), "rtds",
    or a token id. Times: monotonic seconds."""

    def __init__(self):
        self.stall: dict[str, float] = {}
        self.silent: dict[str, float] = {}
        self.bad: dict[str, int] = {}
        self.gamma_empty = 0
        self.n_corrupt = 0
        self.applied = {k: 0 for k in KINDS}

    def blocked_tokens(self, tokens, now_s: float) -> frozenset:
        st = self.stall
        if st.get("*", 0) > now_s or st.get("market", 0) > now_s:
            return frozenset(tokens)
        return frozenset(t for t in tokens if st.get(t, 0) > now_s or self.silent.get(t, 0) > now_s)

    def rtds_stalled(self, now_s: float) -> bool:
        return self.stall.get("*", 0) > now_s or self.stall.get("rtds", 0) > now_s

    def take_bad(self, keys) -> int | None:
        """The corruption variant (0..3) for the next frame of any of `keys`, or None."""
        for k in keys:
            n = self.bad.get(k)
            if n:
                if n == 1:
                    del self.bad[k]
                else:
                    self.bad[k] = n - 1
                self.n_corrupt += 1
                return (self.n_corrupt - 1) % 4
        return None

    def ended_silences(self, now_s: float) -> list[str]:
        done = [t for t, until in self.silent.items() if until <= now_s]
        for t in done:
            del self.silent[t]
        return done

    def describe(self, now_s: float) -> dict:
        return {"applied": dict(self.applied),
                "stall_sec_left": {k: round(v - now_s, 3) for k, v in self.stall.items() if v > now_s},
                "silent_sec_left": {k: round(v - now_s, 3) for k, v in self.silent.items() if v > now_s},
                "malformed_pending": dict(self.bad), "gamma_empty_pending": self.gamma_empty}


def corrupt(variant: int, text: str, rtds: bool) -> str:
    """A frame that fails the consumer's parser: truncated, not JSON, a wrong type, a missing field."""
    if variant == 0:
        return text[: max(1, len(text) // 2)]
    if variant == 1:
        return "\x00<html><body>502 Bad Gateway</body></html>"
    d = orjson.loads(text)
    obj = d[0] if isinstance(d, list) and d else d
    if rtds:
        pl = obj.get("payload", obj)
        if variant == 2:
            pl["value"] = "abc"
            pl.pop("full_accuracy_value", None)
            pl["timestamp"] = "abc"
        else:
            pl.pop("timestamp", None)
    elif variant == 2:
        if obj.get("price_changes"):
            obj["price_changes"][0]["price"] = "abc"
        elif "price" in obj:
            obj["price"] = "abc"
        else:
            obj["timestamp"] = "abc"
    else:
        obj.pop("timestamp", None)
    return orjson.dumps(d).decode()
