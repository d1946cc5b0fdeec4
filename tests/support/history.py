"""compute's history rings written as compute writes them (actors/decide/history.py's samplers over
edge and features documents), for API tests: `write_history(s, {series: [edge docs]}, [features docs])`."""
from __future__ import annotations

from actors.decide.history import MarketSampler, WindowSampler
from ipc import names
from ipc.ring import RingWriter
from ipc.schema import RING_DTYPES


def ring_writer(s, ring: names.Ring, capacity: int) -> RingWriter:
    return RingWriter(s.ipc.shm_dir, ring.name(s.ipc.shm_prefix, s.general.symbol), RING_DTYPES[ring.kind],
                      capacity)


def write_history(s, windows: dict[str, list[dict]], features: list[dict],
                  window_capacity: int = names.WINDOW_HISTORY_CAPACITY,
                  market_capacity: int = names.MARKET_HISTORY_CAPACITY) -> dict[str, int]:
    """Offer the documents to the samplers in order and append what they answer; the records
    written, by ring key."""
    out = {}
    for series, docs in windows.items():
        w = ring_writer(s, names.window_history_ring(series), window_capacity)
        smp = WindowSampler(s.venues.window_secs[series], s.general.tick_ms)
        for d in docs:
            if (rec := smp.offer(d)) is not None:
                w.append(rec)
        out[names.window_history_ring(series).key()] = w.count
        w.close()
    if features:
        w = ring_writer(s, names.MARKET_HISTORY_RING, market_capacity)
        smp = MarketSampler()
        for f in features:
            if (rec := smp.offer(f)) is not None:
                w.append(rec)
        out[names.MARKET_HISTORY_RING.key()] = w.count
        w.close()
    return out
