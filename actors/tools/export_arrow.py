"""Arrow schemas and batch conversion for `run.py export` (pure: numpy / Python values in, pa.Table out).

Three table shapes:
- records of a kind of ipc.schema.DTYPES: one column per dtype field, same numpy type, except
  every `*_ns` int64 field, which becomes `timestamp[ns, UTC]` (same integer, no rounding: a
  `ts_event_ns` of 0, "the venue sent none", reads as 1970-01-01T00:00:00Z), and every level field
  (`bid_px`, `ask_sz`, … of shape (MAX_LEVELS,)), which becomes `list<double>` holding only the
  levels in use (`n_bids` / `n_asks` of them: no 0.0 padding). Extra string columns (`series`)
  may follow;
- frames (FRAME_SCHEMA): a recording line as written, `frame` a UTF-8 string; a frame that is not
  UTF-8 (recorded as `frame_b64`) has `frame` null and its exact bytes base64 in `frame_b64`;
- Polymarket windows (WINDOW_SCHEMA): the window metadata, one row per change (market_doc fields).

Invariants: a schema depends only on the kind (never on the data), so every part file of one
dataset has the same schema and hive readers can union them; conversions copy each batch once.
"""
from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa

from ipc.schema import DTYPES

TS = pa.timestamp("ns", tz="UTC")
# a level field -> the count field saying how many of its slots are real, by the side it names
_LEVEL_COUNT = {"bid": "n_bids", "ask": "n_asks"}


def _is_ts(name: str, dt: np.dtype) -> bool:
    return name.endswith("_ns") and dt == np.dtype("<i8")


def level_count(name: str) -> str:
    """The count field of a level field (`bid_px` -> `n_bids`)."""
    return _LEVEL_COUNT[name.split("_", 1)[0]]


def record_schema(kind: str, extra: tuple[str, ...] = ()) -> pa.Schema:
    dt = DTYPES[kind]
    fields = []
    for name in dt.names:
        f = dt.fields[name][0]
        if f.shape:
            fields.append(pa.field(name, pa.list_(pa.float64())))
        elif _is_ts(name, f):
            fields.append(pa.field(name, TS))
        else:
            fields.append(pa.field(name, pa.from_numpy_dtype(f)))
    return pa.schema(fields + [pa.field(c, pa.string()) for c in extra])


def _levels(px: np.ndarray, n: np.ndarray) -> pa.Array:
    """(rows, MAX_LEVELS) slots and the count in use per row -> list<double> of the real levels."""
    n = np.minimum(n.astype(np.int64), px.shape[1])
    offsets = np.zeros(len(n) + 1, dtype=np.int32)
    np.cumsum(n, out=offsets[1:])
    used = np.arange(px.shape[1]) < n[:, None]        # row-major: each row's levels stay in order
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(px[used], type=pa.float64()))


def records_table(kind: str, arr: np.ndarray, extra: dict[str, list] | None = None) -> pa.Table:
    """A batch of records of `kind` (a structured array of DTYPES[kind]) as a table of record_schema."""
    extra = extra or {}
    schema = record_schema(kind, tuple(extra))
    cols = []
    for name in arr.dtype.names:
        a = arr[name]
        if a.ndim > 1:
            cols.append(_levels(a, arr[level_count(name)]))
        elif _is_ts(name, a.dtype):
            cols.append(pa.array(np.ascontiguousarray(a), type=pa.int64()).view(TS))
        else:
            cols.append(pa.array(np.ascontiguousarray(a)))
    cols += [pa.array(v, type=pa.string()) for v in extra.values()]
    return pa.Table.from_arrays(cols, schema=schema)


FRAME_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("ts_recv_ns", TS), ("run", pa.string()), ("conn", pa.string()),
    ("stream", pa.string()), ("meta", pa.string()), ("frame", pa.string()), ("frame_b64", pa.string()),
    ("series", pa.string()),
])


def frames_table(cols: dict[str, list]) -> pa.Table:
    """Columns of FRAME_SCHEMA as Python lists (ts_recv_ns as int ns) -> a table."""
    arrays = []
    for f in FRAME_SCHEMA:
        if f.type == TS:
            arrays.append(pa.array(cols[f.name], type=pa.int64()).view(TS))
        else:
            arrays.append(pa.array(cols[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=FRAME_SCHEMA)


# the window metadata: market_doc (actors.venues.polymarket.session) flattened, plus what happened
WINDOW_SCHEMA = pa.schema([
    ("ts_recv_ns", TS), ("event", pa.string()), ("series", pa.string()), ("asset", pa.string()),
    ("slug", pa.string()), ("condition_id", pa.string()), ("up_token", pa.string()),
    ("down_token", pa.string()), ("window_start_ns", TS), ("window_end_ns", TS),
    ("active", pa.bool_()), ("closed", pa.bool_()), ("accepting_orders", pa.bool_()),
    ("fee_rate", pa.float64()), ("fee_exponent", pa.float64()), ("fee_taker_only", pa.bool_()),
    ("tick_size", pa.float64()), ("min_size", pa.float64()), ("twap_enabled", pa.bool_()),
    ("twap_lookback_sec", pa.int64()), ("resolution_source", pa.string()), ("rule", pa.string()),
    ("price_to_beat", pa.float64()), ("price_to_beat_source", pa.string()), ("final_price", pa.float64()),
    ("winner", pa.string()), ("resolved_by", pa.string()), ("resolved_ns", TS),
])
_DOC_FIELDS = tuple(f.name for f in WINDOW_SCHEMA if f.name not in (
    "ts_recv_ns", "event", "rule", "winner", "resolved_by", "resolved_ns"))


def window_row(ts_recv_ns: int, event: str, doc: dict) -> dict:
    """One WINDOW_SCHEMA row from a market doc: `rule` as JSON text, the resolution flattened."""
    res = doc.get("resolution") or {}
    row = {k: doc.get(k) for k in _DOC_FIELDS}
    row.update(ts_recv_ns=ts_recv_ns, event=event, rule=orjson.dumps(doc.get("rule")).decode(),
               winner=res.get("winner"), resolved_by=res.get("source"), resolved_ns=res.get("ts_ns"))
    return row


def windows_table(rows: list[dict]) -> pa.Table:
    arrays = []
    for f in WINDOW_SCHEMA:
        vals = [r[f.name] for r in rows]
        arrays.append(pa.array(vals, type=pa.int64()).view(TS) if f.type == TS else pa.array(vals, type=f.type))
    return pa.Table.from_arrays(arrays, schema=WINDOW_SCHEMA)
