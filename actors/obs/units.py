"""What each heartbeat counter is: the one table that says which Prometheus family, type and unit an
actor's `counters` key (and a per-series counter, heartbeat `series`) is rendered as.

An actor's heartbeat `counters` mixes event counts, levels, durations in milliseconds, nanosecond
timestamps and booleans. Each key is classified once, here, by a naming rule plus explicit
exceptions, in this order:

1. `IGNORED`: text (an address, a reason): not a metric;
2. `EXCEPTIONS`: a key whose name does not say its unit (`throttled_ms` is cumulative, `disk_ok` is
   an int 0/1, `bytes_written` counts bytes);
3. a Python bool: a 0/1 flag (`banned`);
4. the suffix: `_ns` a UTC timestamp in ns, `_ms` a duration in ms (a level: percentiles, the
   last tick), `_usd` an amount of USD;
5. `COUNTERS`: a count of events since the process started (resets on restart, which rate() and
   increase() handle); `GAUGES`: a level that goes up and down;
6. anything else numeric: `UNCLASSIFIED`, still exported (a gauge, with its raw value) so a new key
   is never lost, and a test of the live system asserts none shows up there.

Invariants:
- every unit has one family per scope, whose name carries its unit (`_total`, `_seconds`,
  `_timestamp_seconds`, `_bytes_total`, `_usd`), and its values are converted to that unit;
- a suffix that states a unit the family name now states is stripped from the `name` label
  (`tick_p99_ms` -> `tdc_actor_duration_seconds{name="tick_p99"}`), so a label never contradicts
  the value's unit; a key keeps its name otherwise;
- `classify` is pure and total: any key and value in, a `Unit` or None (not a metric) out.
"""
from __future__ import annotations

from dataclasses import dataclass

from ipc.control import REASONS as CONTROL_REASONS


@dataclass(frozen=True)
class Unit:
    suffix: str          # the family name after `tdc_<scope>_`
    counter: bool        # a Prometheus counter (`_total` samples) rather than a gauge
    divisor: int         # raw value / divisor = the value in the family's unit
    strip: str           # the key's suffix dropped from the `name` label ("" keeps it whole)
    help: str


EVENTS = Unit("events", True, 1, "", "events counted since the process started, by counter name")
BYTES = Unit("bytes", True, 1, "", "bytes counted since the process started, by counter name")
TIME_MS = Unit("time_seconds", True, 1000, "_ms", "time spent (cumulative, e.g. throttled or paused), by name")
GAUGE = Unit("gauge", False, 1, "", "a level (goes up and down), by name")
DURATION_MS = Unit("duration_seconds", False, 1000, "_ms", "a duration (a percentile, the last or the longest), by name")
TIMESTAMP_NS = Unit("timestamp_seconds", False, 10**9, "_ns", "a UTC time in seconds since the epoch (0: never), by name")
USD = Unit("usd", False, 1, "_usd", "an amount of USD, by name")
FLAG = Unit("flag", False, 1, "", "a yes/no state as 1/0, by name (e.g. banned, disk_ok)")
UNCLASSIFIED = Unit("unclassified", False, 1, "", "a numeric counter not declared in actors/obs/units.py "
                    "(raw value, unit unknown), by name")
UNITS = (EVENTS, BYTES, TIME_MS, GAUGE, DURATION_MS, TIMESTAMP_NS, USD, FLAG, UNCLASSIFIED)

# text the heartbeats carry next to the numbers: never metrics
IGNORED = frozenset({"bind", "xsub", "xpub", "xbin", "disabled", "last_error"})

EXCEPTIONS: dict[str, Unit] = {
    "throttled_ms": TIME_MS,         # the REST client's total time waited on its weight budget
    "paused_ms": TIME_MS,            # ... and on a venue's pause (429 / ban)
    "disk_ok": FLAG,                 # the recorder: 0 while it cannot write
    "indicators_taapi": FLAG,        # context: 1 when the indicators come from TAAPI
    "bytes_written": BYTES,          # the recorder's bytes written
}

_SUFFIXES = (("_ns", TIMESTAMP_NS), ("_ms", DURATION_MS), ("_usd", USD))

COUNTERS = frozenset({
    # every feed (actors/feed/shell.py, ipc/framering.py FrameTap)
    "frames", "parse_errors", "unknown", "acks", "venue_errors", "published", "publish_dropped",
    "publish_skipped", "reconnects", "rotations", "shutdown_rotations", "rotation_failures", "id_gaps",
    "duplicates", "frames_to_recorder", "record_oversize", "record_names_cut",
    # feed_poly (its session and its REST side)
    "books", "changes", "trades", "tick_size_changes", "best_mismatch", "other_assets", "rollovers",
    "reconciled", "reconcile_checks", "records", "resyncs", "resync_stale", "resync_requests", "new_markets",
    "new_markets_other", "resolved", "resolved_other", "resolved_unknown_winner", "resubscribes",
    "reconcile_errors", "gamma_lookups", "gamma_errors", "rest_responses", "resync_errors", "subscribe_ops",
    "unsubscribe_ops", "assets_subscribed", "assets_unsubscribed", "gamma_reasks", "gamma_paused",
    "clob_paused", "rest_pauses",
    # bus
    "received",
    # context (klines, its REST client, the indicators)
    "klines_appended", "from_rest", "from_stream", "stream_gaps", "backfilled", "discontinuities",
    "sync_errors", "bootstrapped", "stream_read", "stream_gap_markers", "stream_overrun", "rest_requests",
    "rest_errors", "indicator_updates", "indicator_errors", "taapi_requests", "taapi_ok", "taapi_errors",
    "taapi_429",
    # compute (and its engines, summed or per series)
    "ticks", "tick_overruns", "bars_published", "control_requests", "control_refused",
    *(f"control_refused_{r}" for r in CONTROL_REASONS),
    "slices", "decision_log_lines", "decision_log_errors", "book_records", "book_gaps", "bad_window_docs",
    "ring_overruns", "skipped_values", "warmup_overlap", "gaps",
    # recorder
    "frames_recorded", "frames_lost", "write_errors", "stream_names_changed", "ring_replaced",
    # sim
    "frames_sent", "dropped_slow", "spot_frames_sent", "spot_trades", "poly_frames_sent",
    # strategy (and its per-series totals)
    "windows_settled", "windows_unsettled", "capped", "bad_payloads", "venue_agreed", "venue_disagreed",
    "seq_gaps", "seq_lost", "restarts", "settled", "unsettled",
})

GAUGES = frozenset({
    "subscriptions",                               # bus: subscriptions forwarded upstream now
    "subscribed",                                  # feed_poly: assets subscribed now
    "tfs", "weight_used",                          # context: timeframes kept; REST weight used this minute
    "tick_samples",                                # compute: ticks in the percentile window
    "frames_pending",                              # recorder: frames read, not yet on disk
    "workers",                                     # api: gunicorn workers
    "connections", "spot_connections", "poly_connections",   # sim: clients connected
    "windows_held",                                # strategy: windows with a position
})


def classify(key: str, value) -> Unit | None:
    """The unit of heartbeat counter `key` holding `value` (module docstring's order); None for
    what is not a metric (text, nested documents, NaN)."""
    if key in IGNORED or isinstance(value, (dict, list, str)) or value is None:
        return None
    if not isinstance(value, (int, float)) or value != value:
        return None
    if key in EXCEPTIONS:
        return EXCEPTIONS[key]
    if isinstance(value, bool):
        return FLAG
    for suffix, unit in _SUFFIXES:
        if key.endswith(suffix):
            return unit
    if key in COUNTERS:
        return EVENTS
    if key in GAUGES:
        return GAUGE
    return UNCLASSIFIED


def label_name(key: str, unit: Unit) -> str:
    """The `name` label of `key` in `unit`'s family: the unit suffix the family name now carries is
    dropped (`tick_p99_ms` -> `tick_p99`)."""
    return key[: -len(unit.strip)] if unit.strip and key.endswith(unit.strip) else key


def value_in_unit(value, unit: Unit) -> float:
    # int / int is correctly rounded: a ns timestamp keeps its ms in seconds (int / 1e9 would not)
    return float(value / unit.divisor) if unit.divisor != 1 else float(value)
