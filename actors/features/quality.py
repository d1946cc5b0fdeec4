"""Data quality: OK / DEGRADED / BAD with reasons, from what compute saw of its inputs. Pure.

Inputs, per venue (`VenueInput`): each stream's last receive time and its overrun count (records
the reader lost to being lapped), the receive time of the last gap record, and the clock skew
(receive − exchange time of the newest record). Per tick: compute's own tick overruns.

Rules (the reason strings are part of the contract: the TUI and the tests read them):
- a stream that has never delivered: `<venue>.<stream>: no data`; one whose last record is older
  than `stale_ns`: `<venue>.<stream>: stale <s>s`; a reader that was lapped:
  `<venue>.<stream>: <n> records overrun`;
- a gap record seen less than `gap_memory_ns` ago: `<venue>: gap <s>s ago`;
- |skew| over `max_skew_ns`: `<venue>: clock skew <±ms> ms (receive − exchange time)`;
- more than `max_overrun_ratio` of the ticks overran: `compute: <n> tick overruns`;
- the primary venue is always assessed; the others only once they have delivered something
  (a venue that is not configured must not make the system DEGRADED);
- mode: BAD when a stream of the primary venue has no data or is stale (decisions need it),
  else DEGRADED when there is any reason, else OK.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

SEC_NS = 1_000_000_000
MS_NS = 1_000_000
GAP_MEMORY_NS = 30 * SEC_NS        # a gap keeps quality DEGRADED this long
MAX_TICK_OVERRUN_RATIO = 0.01      # tick overruns above this share of the ticks: DEGRADED

Mode = Literal["OK", "DEGRADED", "BAD"]
MODES: tuple[Mode, ...] = ("OK", "DEGRADED", "BAD")


@dataclass(frozen=True)
class StreamInput:
    name: str                    # "trade", "quote"
    last_recv_ns: int | None     # receive time of the newest record; None: nothing yet
    overrun: int = 0


@dataclass(frozen=True)
class VenueInput:
    venue: str
    streams: tuple[StreamInput, ...]
    last_gap_ns: int = 0         # receive time of the last gap record; 0: none
    skew_ns: int | None = None   # receive − exchange time of the newest record

    @property
    def active(self) -> bool:
        return any(st.last_recv_ns is not None for st in self.streams)


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
    for st in v.streams:
        if st.last_recv_ns is None:
            reasons.append(f"{v.venue}.{st.name}: no data")
            missing = True
        elif now_ns - st.last_recv_ns > p.stale_ns:
            reasons.append(f"{v.venue}.{st.name}: stale {(now_ns - st.last_recv_ns) / SEC_NS:.1f}s")
            missing = True
        if st.overrun:
            reasons.append(f"{v.venue}.{st.name}: {st.overrun} records overrun")
    if v.last_gap_ns and now_ns - v.last_gap_ns < p.gap_memory_ns:
        reasons.append(f"{v.venue}: gap {(now_ns - v.last_gap_ns) / SEC_NS:.0f}s ago")
    if v.skew_ns is not None and abs(v.skew_ns) > p.max_skew_ns:
        reasons.append(f"{v.venue}: clock skew {v.skew_ns / MS_NS:+.0f} ms (receive − exchange time)")
    return reasons, missing


def assess(now_ns: int, primary: VenueInput, others: Sequence[VenueInput], tick_overruns: int,
           ticks: int, p: QualityParams) -> Assessment:
    """The mode and its reasons (module docstring), primary venue first, then the others in
    order, then compute's own."""
    reasons, bad = venue_reasons(primary, now_ns, p)
    for v in others:
        if v.active:
            reasons += venue_reasons(v, now_ns, p)[0]
    if tick_overruns and ticks and tick_overruns / ticks > p.max_tick_overrun_ratio:
        reasons.append(f"compute: {tick_overruns} tick overruns")
    return Assessment("BAD" if bad else ("DEGRADED" if reasons else "OK"), reasons)
