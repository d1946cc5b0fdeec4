"""Data quality: OK / DEGRADED / BAD with reasons, from what compute saw of its inputs. Pure (and
one small tracker, `OverrunClock`, that the caller feeds).

Inputs (`VenueInput`, one per source: a Binance venue, Chainlink, one Polymarket series' books):
each stream's last receive time, its overrun count (records the reader lost to being lapped) and
when that count last grew (`OverrunClock`: the caller's tick time when it saw the count change),
the receive time of the last gap record, the clock skew (receive − exchange time of the newest
record; None where the venue's time is not a clock to compare, e.g. Chainlink's observation time)
and its own staleness limit (None: `QualityParams.stale_ns`). Per tick: compute's own tick overruns.

Rules (the reason strings are part of the contract: the TUI and the tests read them):
- a stream that has never delivered: `<source>.<stream>: no data`; one whose last record is older
  than its limit: `<source>.<stream>: stale <s>s`; a reader lapped less than `gap_memory_ns` ago:
  `<source>.<stream>: overrun <s>s ago (<n> records lost in all)`. A source with one unnamed
  stream (name "") is named alone: `chainlink: stale 7.0s`, `chainlink: no data`; a Polymarket
  series' books are the source `poly.<series>` with streams UP and DOWN: `poly.15m.UP: stale 6.2s`;
- a gap record seen less than `gap_memory_ns` ago: `<source>: gap <s>s ago`. An overrun is a gap
  the reader made (records it never saw): it is remembered exactly as long, so one lapped read
  degrades quality (and vetoes the decisions that read that stream) for `gap_memory_ns`, not until
  compute restarts (a reader's count only grows);
- |skew| over `max_skew_ns`: `<source>: clock skew <±ms> ms (receive − exchange time)`;
- more than `max_overrun_ratio` of the ticks overran: `compute: <n> tick overruns`;
- the primary venue is always assessed; another source once it has delivered something, or
  always when it is `required` (an input the caller cannot do without: a venue that is not
  configured must not make the system DEGRADED, a missing settlement source must say so);
- mode: BAD when a stream of the primary venue, or of a source named `critical`, has no data or
  is stale, else DEGRADED when there is any reason, else OK.

One decision's own quality (compute, per edge document) is `assess` over that decision's own
inputs only (the primary venue, and its window's settlement source as required and critical), so
a problem of a source it does not use is reported in the global quality and vetoes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

SEC_NS = 1_000_000_000
MS_NS = 1_000_000
GAP_MEMORY_NS = 30 * SEC_NS        # a gap (or an overrun) keeps quality DEGRADED this long
MAX_TICK_OVERRUN_RATIO = 0.01      # tick overruns above this share of the ticks: DEGRADED

Mode = Literal["OK", "DEGRADED", "BAD"]
MODES: tuple[Mode, ...] = ("OK", "DEGRADED", "BAD")


@dataclass(frozen=True)
class StreamInput:
    name: str                    # "trade", "quote"; "" for a source's only stream
    last_recv_ns: int | None     # receive time of the newest record; None: nothing yet
    overrun: int = 0             # records the reader lost to being lapped, since it was made
    last_overrun_ns: int = 0     # when that count last grew (OverrunClock); 0: never


@dataclass(frozen=True)
class VenueInput:
    venue: str
    streams: tuple[StreamInput, ...]
    last_gap_ns: int = 0         # receive time of the last gap record; 0: none
    skew_ns: int | None = None   # receive − exchange time of the newest record
    stale_ns: int | None = None  # this source's staleness limit; None: QualityParams.stale_ns
    required: bool = False       # assessed before it delivered anything ("no data")

    @property
    def active(self) -> bool:
        return any(st.last_recv_ns is not None for st in self.streams)


class OverrunClock:
    """When a ring reader's overrun count last grew: the caller shows it the count once a tick
    (`see`), and the tick time of a change is the overrun's time, as a gap record's receive time
    is the gap's. A new reader that starts lapped counts from its first tick."""
    __slots__ = ("count", "last_ns")

    def __init__(self) -> None:
        self.count = 0
        self.last_ns = 0

    def see(self, count: int, now_ns: int) -> None:
        if count != self.count:
            self.count, self.last_ns = count, now_ns

    def stream(self, name: str, last_recv_ns: int | None) -> "StreamInput":
        return StreamInput(name, last_recv_ns, self.count, self.last_ns)


@dataclass(frozen=True, kw_only=True)
class QualityParams:
    stale_ns: int
    max_skew_ns: int
    gap_memory_ns: int = GAP_MEMORY_NS
    max_tick_overrun_ratio: float = MAX_TICK_OVERRUN_RATIO

    @classmethod
    def from_settings(cls, s) -> "QualityParams":
        return cls(stale_ns=int(s.ipc.health_data_stale_sec * SEC_NS),
                   max_skew_ns=int(s.features.quality_max_skew_ms * MS_NS))


@dataclass(frozen=True)
class Assessment:
    mode: Mode
    reasons: list[str]


def venue_reasons(v: VenueInput, now_ns: int, p: QualityParams) -> tuple[list[str], bool]:
    """(reasons, whether a stream has no data or is stale)."""
    reasons: list[str] = []
    missing = False
    stale_ns = p.stale_ns if v.stale_ns is None else v.stale_ns
    for st in v.streams:
        name = f"{v.venue}.{st.name}" if st.name else v.venue
        if st.last_recv_ns is None:
            reasons.append(f"{name}: no data")
            missing = True
        elif now_ns - st.last_recv_ns > stale_ns:
            reasons.append(f"{name}: stale {(now_ns - st.last_recv_ns) / SEC_NS:.1f}s")
            missing = True
        if st.last_overrun_ns and now_ns - st.last_overrun_ns < p.gap_memory_ns:
            reasons.append(f"{name}: overrun {(now_ns - st.last_overrun_ns) / SEC_NS:.0f}s ago"
                           f" ({st.overrun} records lost in all)")
    if v.last_gap_ns and now_ns - v.last_gap_ns < p.gap_memory_ns:
        reasons.append(f"{v.venue}: gap {(now_ns - v.last_gap_ns) / SEC_NS:.0f}s ago")
    if v.skew_ns is not None and abs(v.skew_ns) > p.max_skew_ns:
        reasons.append(f"{v.venue}: clock skew {v.skew_ns / MS_NS:+.0f} ms (receive − exchange time)")
    return reasons, missing


def assess(now_ns: int, primary: VenueInput, others: Sequence[VenueInput], tick_overruns: int,
           ticks: int, p: QualityParams, critical: Sequence[str] = ()) -> Assessment:
    """The mode and its reasons (module docstring), primary venue first, then the others in
    order, then compute's own."""
    reasons, bad = venue_reasons(primary, now_ns, p)
    for v in others:
        if v.active or v.required:
            why, missing = venue_reasons(v, now_ns, p)
            reasons += why
            bad |= missing and v.venue in critical
    if tick_overruns and ticks and tick_overruns / ticks > p.max_tick_overrun_ratio:
        reasons.append(f"compute: {tick_overruns} tick overruns")
    return Assessment("BAD" if bad else ("DEGRADED" if reasons else "OK"), reasons)
