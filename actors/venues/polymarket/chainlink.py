"""Chainlink BTC/USD from Polymarket RTDS, as a venue of the generic feed shell.

One connection to POLYMARKET_RTDS_URL, subscribed to `crypto_prices_chainlink` for btc/usd, kept
alive with a text `PING` every 5 s. Records go to the ring and topic of
`ipc.names.CHAINLINK_RING`; they are ordered (and de-duplicated) by observation time,
so the snapshot RTDS sends after each subscribe backfills a reconnect without duplicating.
The feed publishes an update every second: silence over 5 s means the connection is replaced.
"""
from __future__ import annotations

from config.settings import Settings
from ipc import names

from actors.venues.envelope import ConnPlan, Decoded
from actors.venues.polymarket import rtds

VENUE = names.CHAINLINK          # ring ipc.names.CHAINLINK_RING
KEEPALIVE = (float(rtds.PING_INTERVAL_SEC), rtds.PING)
STREAM = rtds.SYMBOL


def plan(settings: Settings) -> list[ConnPlan]:
    return [ConnPlan("rtds", settings.venues.polymarket_rtds_url, (STREAM,), (rtds.subscribe_msg(),))]


def stream_kind(stream: str) -> str | None:
    return "chainlink" if stream == STREAM else None


def max_silence_sec(stream: str, settings: Settings) -> float | None:
    return 5.0


def parse_frame(frame: bytes, ts_recv_ns: int) -> Decoded:
    d = rtds.parse_frame(frame, ts_recv_ns)
    if d.kind in _DATA:                  # an update (one record) or a snapshot (many): one loop
        return Decoded("chainlink", STREAM, d.recs)
    if d.kind == "control":
        return _CONTROL
    return Decoded("unknown", d.stream, ())


_DATA = frozenset(("price", "snapshot"))
_CONTROL = Decoded("control", "", ())
