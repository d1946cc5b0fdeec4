"""Per record kind, which records are new, which are duplicates, and where ids jumped: pure.

A property of the schema, not of the venue: `RULES` says per kind (ipc.schema.DTYPES) how its
records are ordered. `Continuity(kind).is_new(rec)` answers for one record tuple and keeps the
counters; no I/O, no clock.

Invariants:
- a record whose key is not greater than the newest key accepted is a duplicate (counted, rejected):
  the key is the id (trade_id, update_id) where the kind has one, else the event time;
- klines of every interval share one ring: they are ordered per interval (tf_sec) by
  (open time, event time);
- kinds marked unchecked (Polymarket, whose session orders its own records) accept everything;
- liquidations carry no id and several may share one event time: a record equal (all but the
  receive time and flags) to one of the last RECENT accepted is a duplicate, anything else is new;
- a contiguous id (aggTrade `a`) that jumps counts one id gap and the ids skipped (`ids_missing`);
- a depth diff whose `prev_update_id` (Binance `pu`, >= 0 when sent) is not the previous
  update_id counts one id gap; the record is still accepted.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ipc.schema import DTYPES

RECENT = 4096          # liquidations remembered for de-duplication


@dataclass(frozen=True)
class Rule:
    key: str | None = "ts_event_ns"    # field that orders the kind; None: unordered (a recent-set)
    group: str | None = None           # field whose values are ordered independently (kline tf_sec)
    then: str | None = None            # second key field within a group (kline: open time, event time)
    contiguous: bool = False           # ids step by one: a jump is a gap of `k - last - 1` ids
    prev: str | None = None            # field naming the previous record's key (depth `pu`)
    checked: bool = True               # False: every record is new (a venue session orders them)


RULES: dict[str, Rule] = {
    "trade": Rule("trade_id", contiguous=True),
    "quote": Rule("update_id"),
    "depth": Rule("update_id", prev="prev_update_id"),
    "kline": Rule("open_time_ns", group="tf_sec", then="ts_event_ns"),
    "liquidation": Rule(None),
    # Polymarket book states and trades: the session writes each once, in order; a book record
    # repeats its event time (a REST correction, a rollover snapshot) and is still new
    "poly_book": Rule(None, checked=False),
    "poly_trade": Rule(None, checked=False),
}
DEFAULT = Rule()


class Continuity:
    """The continuity state of one stream kind: `is_new(rec)` and the counters it keeps."""

    def __init__(self, kind: str):
        names = DTYPES[kind].names
        rule = RULES.get(kind, DEFAULT)
        self.kind, self.rule = kind, rule
        self.duplicates = self.id_gaps = self.ids_missing = 0
        self.ordered = rule.key is not None     # False: no order to compare (a recent-set)
        self.last_k = None                      # newest key accepted (kinds ordered by one key)
        self.last_group: dict = {}              # newest key per group (klines)
        self.group_i = None
        if not rule.checked:
            self.is_new = _always
            return
        if rule.key is None:
            self.recent: deque = deque(maxlen=RECENT)
            self.is_new = self._new_recent
            return
        self.key_i = names.index(rule.key)
        if rule.group is not None:
            self.group_i, self.then_i = names.index(rule.group), names.index(rule.then)
            self.is_new = self._new_grouped
            return
        self.contiguous = rule.contiguous
        self.prev_i = names.index(rule.prev) if rule.prev else None
        self.is_new = self._new_ordered

    def key(self, rec: tuple):
        """(group, key) by which `rec` is ordered (group None for one order; key None: unordered)."""
        if not self.ordered:
            return None, None
        if self.group_i is not None:
            return rec[self.group_i], (rec[self.key_i], rec[self.then_i])
        return None, rec[self.key_i]

    def last_key(self, group=None):
        """The newest key accepted (in `group`), None before the first."""
        return self.last_group.get(group) if self.group_i is not None else self.last_k

    # --- one of these is `is_new`, chosen per kind (the hot path takes no branch on the rule) ---
    def _new_ordered(self, rec: tuple) -> bool:
        k = rec[self.key_i]
        last = self.last_k
        if last is not None:
            if k <= last:
                self.duplicates += 1
                return False
            if self.contiguous:
                if k != last + 1:
                    self.id_gaps += 1
                    self.ids_missing += k - last - 1
            elif self.prev_i is not None and 0 <= rec[self.prev_i] != last:
                self.id_gaps += 1
        self.last_k = k
        return True

    def _new_grouped(self, rec: tuple) -> bool:
        group, k = rec[self.group_i], (rec[self.key_i], rec[self.then_i])
        last = self.last_group.get(group)
        if last is not None and k <= last:
            self.duplicates += 1
            return False
        self.last_group[group] = k
        return True

    def _new_recent(self, rec: tuple) -> bool:
        k = (rec[0],) + tuple(rec[3:])          # all but the receive time and the flags
        if k in self.recent:
            self.duplicates += 1
            return False
        self.recent.append(k)
        return True


def _always(rec: tuple) -> bool:
    return True
