"""Tick payloads: a ring record as the document its `tick.*` topic carries. Pure.

A ring record has fixed-size level arrays (ipc.schema.MAX_LEVELS slots per side, the unused ones
0); a payload carries only the levels in use.

Invariants:
- a payload holds every field of the record under its dtype name (ipc.schema.DTYPES[kind]),
  nothing else (the bus adds seq/boot/v/pub_ts_ns/ts_ns);
- a level array field (a sub-array of the dtype) is cut to the levels in use: `bid_*` arrays to
  `n_bids`, `ask_*` arrays to `n_asks`, so `len(doc["bid_px"]) == doc["n_bids"]` and a padding slot
  (price 0) is never published; the shape is parallel arrays, one per record field, best-first;
- which fields are level arrays and which field counts them follows from the dtype alone
  (`level_fields`), so a new record kind with levels is cut without a change here; a level array
  whose count field is missing is a ValueError when its builder is made, not a silent pass;
- float NaN (an empty Polymarket side's best_bid, a mark without an index) is left to orjson,
  which writes JSON null.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from ipc.schema import DTYPES

# a level array's side (the prefix of its field name) -> the field holding its count
LEVEL_COUNT = {"bid": "n_bids", "ask": "n_asks"}


def level_fields(dtype: np.dtype) -> tuple[tuple[str, str], ...]:
    """(array field, count field) of every level array of `dtype`, in field order."""
    out = []
    for name in dtype.names:
        if dtype.fields[name][0].shape == ():
            continue
        count = LEVEL_COUNT.get(name.split("_", 1)[0])
        if count is None or count not in dtype.names:
            raise ValueError(f"level array {name!r} has no count field ({', '.join(LEVEL_COUNT.values())})")
        out.append((name, count))
    return tuple(out)


@lru_cache(maxsize=None)
@lru_cache(maxsize=None)
def builder(kind: str) -> Callable[[tuple], dict]:
    """The payload builder of one record kind: a record tuple (or numpy record) -> its document."""
    names = DTYPES[kind].names
    cuts = level_fields(DTYPES[kind])
    if not cuts:
        return lambda rec: dict(zip(names, rec))

    def build(rec) -> dict:
        doc = dict(zip(names, rec))
        for field, count in cuts:
            doc[field] = doc[field][:doc[count]]
        return doc
    return build


def record_doc(kind: str, rec) -> dict:
    """The payload of one record of `kind` (see `builder`)."""
    return builder(kind)(rec)
