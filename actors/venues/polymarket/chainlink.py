"""Chainlink <ASSET>/USD from Polymarket RTDS, as a venue of the generic feed shell.

One connection to POLYMARKET_RTDS_URL, subscribed to `crypto_prices_chainlink` for the stream of
SYMBOL's asset (`names.chainlink_stream`: BTCUSDT -> btc/usd, ETHUSDT -> eth/usd), kept alive with
a text `PING` every 5 s. Records go to the ring and topic of `ipc.names.CHAINLINK_RING` (its
instrument follows SYMBOL: BTCUSD, ETHUSD, …); they are ordered (and de-duplicated) by observation
time, so the snapshot RTDS sends after each subscribe backfills a reconnect without duplicating.
The feed publishes an update every second: silence over 5 s means the connection is replaced.

Invariants:
- only the configured stream's observations become records: another symbol's (server-side
  filtering is not trusted) is 'other', counted by the shell as unknown, never written;
- `ChainlinkVenue.last` is the newest observation decoded (by observation time), for the
  actor's state block.
"""
from __future__ import annotations

from config.settings import Settings
from ipc import names

from actors.venues.envelope import ConnPlan, Decoded
from actors.venues.polymarket import rtds

VENUE = names.CHAINLINK          # ring ipc.names.CHAINLINK_RING
KEEPALIVE = (float(rtds.PING_INTERVAL_SEC), rtds.PING)
RING_KEY = next(k for k, r in names.VENUE_RINGS[VENUE].items() if r == names.CHAINLINK_RING)
SILENCE_SEC = 5.0

_DATA = frozenset(("price", "snapshot"))
_CONTROL = Decoded("control", "", ())


def parse_frame(frame: bytes, ts_recv_ns: int, stream: str = rtds.SYMBOL) -> Decoded:
    """One RTDS frame as the shell's envelope: CHAINLINK records of `stream` (a recording's
    readers pass the stream it was recorded for)."""
    d = rtds.parse_frame(frame, ts_recv_ns, symbol=stream)
    if d.kind in _DATA:                  # an update (one record) or a snapshot (many): one loop
        return Decoded("chainlink", stream, d.recs)
    if d.kind == "control":
        return _CONTROL
    return Decoded("unknown", d.stream, ())


class ChainlinkVenue:
    """The RTDS venue for SYMBOL's Chainlink stream (the shell's Venue protocol)."""

    VENUE = VENUE
    KEEPALIVE = KEEPALIVE

    def __init__(self, settings: Settings):
        self.stream = names.chainlink_stream(settings.general.symbol)
        self.last: tuple[int, float, int] | None = None     # (obs ns, price, receive ns)

    def plan(self, settings: Settings) -> list[ConnPlan]:
        return [ConnPlan("rtds", settings.venues.polymarket_rtds_url, (self.stream,),
                         (rtds.subscribe_msg(self.stream),))]

    def stream_kind(self, stream: str) -> str | None:
        return RING_KEY if stream == self.stream else None

    def max_silence_sec(self, stream: str, settings: Settings) -> float | None:
        return SILENCE_SEC

    def parse_frame(self, frame: bytes, ts_recv_ns: int) -> Decoded:
        d = parse_frame(frame, ts_recv_ns, self.stream)
        if d.recs:
            newest = max(d.recs, key=_obs)
            if self.last is None or newest[0] > self.last[0]:
                self.last = (newest[0], newest[4], newest[1])
        return d

    def state(self, now_ns: int) -> dict:
        """The `chainlink` state block: the last observation only (compute estimates prices to
        beat from the ring, by each market's rule)."""
        last = self.last
        return {"ts_ns": now_ns, "disabled": None, "stream": self.stream,
                "price": last[1] if last else None, "obs_ns": last[0] if last else None,
                "ts_recv_ns": last[2] if last else None}


def _obs(rec: tuple) -> int:
    return rec[0]
