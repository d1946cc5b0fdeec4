"""Accumulate engine: turn BUY decisions into slices of SLICE_USD within per-window caps.

Definitions (DESIGN.md "Features"):
- one accumulator per followed series (its own window, caps and cooldown); per-window state
  {schema, window_start_ns, slices, usd, last_slice_ns, by_side}, persisted to `store` (a
  StateBlock in production, `<prefix>.state.accumulate_<series>`: names.accumulate_block) on every
  change and reloaded at construction, so a compute restart inside the same window keeps its caps
  and cooldown;
- it reads only the decision ("BUY_UP" / "BUY_DOWN" / "NONE", actors/decide/edge.py): which side
  is worth buying (ranked by return on cost) and whether it is vetoed is the edge's business;
- a new (larger) window_start_ns resets the state (rollover); an OLDER window_start_ns than the
  state's is refused (HOLD "stale_window") and never resets it;
- a BUY_UP/BUY_DOWN decision becomes a SLICE when all hold:
  slices < max_slices, usd + slice_usd ≤ max_usd (1e-9 tolerance),
  and now_ns ≥ last_slice_ns + cooldown_ns (cooldown_ns = round(cooldown_sec·1e9); the boundary
  itself is allowed). The slice is counted (and persisted) as soon as SLICE is returned;
- next_allowed_ns: the earliest time another slice could be taken in this window (None when a cap is
  reached, or now_ns when nothing blocks it).
Times are wall-clock epoch ns (time.time_ns()): they must survive a process restart.
"""
from __future__ import annotations

SCHEMA = "accumulate/1"
_EPS_USD = 1e-9


class DictStore:
    """An in-memory store with the StateBlock read()/write() interface (tests, dry runs)."""

    def __init__(self, doc: dict | None = None):
        self.doc = doc
        self.writes = 0

    def read(self):
        return dict(self.doc) if isinstance(self.doc, dict) else self.doc

    def write(self, doc: dict) -> None:
        self.doc = dict(doc)
        self.writes += 1


def _empty(window_start_ns: int | None) -> dict:
    return {"schema": SCHEMA, "window_start_ns": window_start_ns, "slices": 0, "usd": 0.0,
            "last_slice_ns": None, "by_side": {"UP": 0, "DOWN": 0}}


def _valid(doc) -> bool:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return False
    try:
        ws, ls = doc["window_start_ns"], doc["last_slice_ns"]
        return (ws is None or isinstance(ws, int)) and (ls is None or isinstance(ls, int)) \
            and isinstance(doc["slices"], int) and doc["slices"] >= 0 \
            and isinstance(doc["usd"], (int, float)) and doc["usd"] >= 0 \
            and isinstance(doc["by_side"], dict)
    except KeyError:
        return False


class Accumulator:
    def __init__(self, *, slice_usd: float, max_slices: int, max_usd: float, cooldown_sec: float,
                 store):
        if not slice_usd > 0:
            raise ValueError(f"slice_usd must be positive, not {slice_usd}")
        self.slice_usd = float(slice_usd)
        self.max_slices = int(max_slices)
        self.max_usd = float(max_usd)
        self.cooldown_ns = int(round(float(cooldown_sec) * 1e9))
        self.store = store
        self.restored = False          # state came back from the store
        self.invalid_state = 0         # store held something unusable (ignored, started fresh)
        doc = store.read()
        if doc is None:
            self.state = _empty(None)
        elif _valid(doc):
            self.state = doc
            self.state["usd"] = float(doc["usd"])
            self.restored = True
        else:
            self.invalid_state += 1
            self.state = _empty(None)

    @classmethod
    def from_settings(cls, s, store) -> "Accumulator":
        return cls(slice_usd=s.decisions.slice_usd, max_slices=s.decisions.max_slices_per_window,
                   max_usd=s.decisions.max_usd_per_window, cooldown_sec=s.decisions.cooldown_sec, store=store)

    def _persist(self) -> None:
        self.store.write(self.state)

    def _result(self, action: str, reason: str, side, now_ns: int) -> dict:
        st = self.state
        if st["slices"] >= self.max_slices or st["usd"] + self.slice_usd > self.max_usd + _EPS_USD:
            nxt = None
        elif st["last_slice_ns"] is None:
            nxt = now_ns
        else:
            nxt = max(now_ns, st["last_slice_ns"] + self.cooldown_ns) if action == "HOLD" \
                else st["last_slice_ns"] + self.cooldown_ns
        return {"action": action, "side": side, "reason": reason, "slices": st["slices"],
                "usd": st["usd"], "slice_usd": self.slice_usd if action == "SLICE" else 0.0,
                "window_start_ns": st["window_start_ns"], "next_allowed_ns": nxt}

    def consider(self, now_ns: int, window_start_ns: int, decision) -> dict:
        """decision: "BUY_UP" / "BUY_DOWN" / "NONE", or an edge.evaluate() result."""
        if isinstance(decision, dict):
            decision = decision.get("decision")
        now_ns, window_start_ns = int(now_ns), int(window_start_ns)
        st = self.state
        if st["window_start_ns"] is None or window_start_ns > st["window_start_ns"]:
            self.state = st = _empty(window_start_ns)
            self._persist()
        elif window_start_ns < st["window_start_ns"]:
            return self._result("HOLD", "stale_window", None, now_ns)
        side = {"BUY_UP": "UP", "BUY_DOWN": "DOWN"}.get(decision)
        if side is None:
            return self._result("HOLD", "no_signal", None, now_ns)
        if st["slices"] >= self.max_slices:
            return self._result("HOLD", "max_slices", side, now_ns)
        if st["usd"] + self.slice_usd > self.max_usd + _EPS_USD:
            return self._result("HOLD", "max_usd", side, now_ns)
        last = st["last_slice_ns"]
        if last is not None and now_ns < last + self.cooldown_ns:
            return self._result("HOLD", "cooldown", side, now_ns)
        st["slices"] += 1
        st["usd"] += self.slice_usd
        st["last_slice_ns"] = now_ns
        st["by_side"][side] = int(st["by_side"].get(side, 0)) + 1
        self._persist()
        return self._result("SLICE", "slice", side, now_ns)
