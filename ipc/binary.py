"""Binary record batches: a ring's records as they lie in shared memory, several per message. Pure.

A `bin.tick.…` topic (ipc.names.binary_topic) carries, beside the JSON `tick.…` topic of the same
ring, the ring's records in their own bytes: one message per batch (every record one read of the
venue delivered, or one record written outside a read), at most MAX_BATCH records per message.

Wire format, three frames: `[topic, header, body]`.
- header: one JSON object with the bus's stamps (`seq` per topic +1 per message, `boot`, `v`
  PAYLOAD_VERSION, `ts_ns` and `pub_ts_ns` the publish time) and `kind` (an ipc.schema.DTYPES
  kind), `first` (the ring index of the first record: records of a ring are numbered from 0 since
  the ring was made, so `first` of a message is `first + n` of the one before it when nothing was
  lost), `n` (records in the body) and `dtype` (the record dtype's numpy descr as a JSON string,
  the same text as the ring header's: `np.lib.format.descr_to_dtype(json.loads(h["dtype"]))`
  decodes the body without this package);
- body: `n * itemsize` bytes, the records little-endian as in the ring; a gap record (flags &
  FLAG_GAP) is a record like any other.

Invariants:
- `encode_header` writes only integers into a constant template: no dict, no float formatting;
- `decode` never trusts a frame: a header that is not a stamped JSON object, an unknown kind, a
  dtype other than this version's, or a body whose length is not `n` records is a BinaryError with
  a reason of ipc.bus.ENVELOPE_REASONS or ipc.client.REASONS (`version` for another dtype), never
  a numpy exception; the records returned are a read-only view of the body (no copy).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import orjson

from ipc.schema import DTYPES

MAX_BATCH = 4096        # records per message at most: a trade batch is then 256 KiB


class BinaryError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def descr_text(dtype: np.dtype) -> str:
    """The dtype's numpy descr as JSON text (what a header's `dtype` holds, and the ring's header)."""
    return json.dumps(np.lib.format.dtype_to_descr(np.dtype(dtype)))


@lru_cache(maxsize=None)
def header_template(kind: str) -> bytes:
    """The header of `kind` with %d holes for seq, boot, v, ts_ns, pub_ts_ns, first, n."""
    tail = orjson.dumps({"kind": kind, "dtype": descr_text(DTYPES[kind])})[1:]
    return b'{"seq":%d,"boot":%d,"v":%d,"ts_ns":%d,"pub_ts_ns":%d,"first":%d,"n":%d,' + tail


def encode_header(kind: str, seq: int, boot: int, v: int, ts_ns: int, first: int, n: int) -> bytes:
    return header_template(kind) % (seq, boot, v, ts_ns, ts_ns, first, n)


@lru_cache(maxsize=64)
def _dtype_of(kind: str, text: str) -> np.dtype | None:
    """DTYPES[kind] when `text` is its descr, else None."""
    want = DTYPES.get(kind)
    return want if want is not None and text == descr_text(want) else None


def decode(header: bytes, body: bytes) -> tuple[dict, np.ndarray]:
    """(header document, records) of one message's two payload frames; BinaryError otherwise."""
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BinaryError("not_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise BinaryError("not_object", type(doc).__name__)
    if any(type(doc.get(k)) is not int for k in ("seq", "boot")):
        raise BinaryError("stamps", "seq/boot not integers")
    kind, text, n = doc.get("kind"), doc.get("dtype"), doc.get("n")
    if type(kind) is not str or kind not in DTYPES:
        raise BinaryError("unknown_topic", f"record kind {kind!r}")
    if type(text) is not str or _dtype_of(kind, text) is None:
        raise BinaryError("version", f"{kind}: dtype {str(text)[:80]!r} is not this version's")
    dtype = DTYPES[kind]
    if type(n) is not int or type(doc.get("first")) is not int or n < 0 or n * dtype.itemsize != len(body):
        raise BinaryError("malformed", f"{kind}: n={n!r} records, body of {len(body)} bytes "
                                       f"({dtype.itemsize} per record)")
    recs = np.frombuffer(body, dtype=dtype)
    return doc, recs
