"""The recording format: what the recorder writes and what replay, backtest and export read.

Layout under RECORD_DIR:
    <venue>/<stream>/<YYYYmmddTHHMMSS>Z.jsonl.gz     one file per venue, stream and period
    <venue>/checkpoint.json                          the recorder's progress (not data)
Each file is gzip (several members, one per flush: `gzip.open` reads them as one stream) of
JSON lines, one per frame received:
    {"seq": 12, "ts_recv_ns": 1723100000123456789, "conn": "market", "stream": "btcusdt@aggTrade",
     "frame": "<the frame exactly as received>"}
`seq` counts the venue's frames from 0 with no gap (per ring incarnation: "run" changes when the
shared memory is recreated, and seq starts again at 0); "meta" is present for REST answers
("<service> <status> <path?query>"); a frame that is not UTF-8 is in "frame_b64" instead.
Streams starting with "_" are not market data: "_malformed" (did not parse), "_ack", "_control",
"_error", … Every frame a feed received is in exactly one file.

Invariants: a file ends on a whole gzip member except after a crash; `iter_file` stops at a
truncated tail, and the recorder cuts files back to their checkpointed sizes when it restarts.
"""
from __future__ import annotations

import base64
import gzip
import heapq
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson

SUFFIX = ".jsonl.gz"
CHECKPOINT = "checkpoint.json"


def period_name(ts_ns: int, period_sec: int) -> str:
    start = ts_ns // 1_000_000_000 // period_sec * period_sec
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start)) + SUFFIX


def safe_stream(stream: str) -> str:
    return stream.replace("/", "_") or "_empty"


def encode_line(seq: int, ts_recv_ns: int, conn: str, stream: str, payload: bytes, meta: str,
                run: str) -> bytes:
    doc = {"seq": seq, "ts_recv_ns": ts_recv_ns, "conn": conn, "stream": stream, "run": run}
    if meta:
        doc["meta"] = meta
    try:
        doc["frame"] = payload.decode()
    except UnicodeDecodeError:
        doc["frame_b64"] = base64.b64encode(payload).decode()
    return orjson.dumps(doc) + b"\n"


def frame_bytes(rec: dict) -> bytes:
    if "frame" in rec:
        return rec["frame"].encode()
    return base64.b64decode(rec["frame_b64"])


def whole_members(data: bytes) -> int:
    """Length of the longest prefix of `data` made of complete gzip members."""
    pos = good = 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            d.decompress(data[pos:])
        except zlib.error:
            break
        if not d.eof:
            break
        pos = len(data) - len(d.unused_data)
        good = pos
    return good


def iter_file(path: Path) -> Iterator[dict]:
    data = path.read_bytes()
    n = whole_members(data)
    if n == 0:
        return
    for line in gzip.decompress(data[:n]).splitlines():
        if line:
            yield orjson.loads(line)


def venue_files(root: Path, venue: str) -> list[Path]:
    return sorted((root / venue).glob(f"*/*{SUFFIX}"))


def venues(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []


def iter_venue(root: Path, venue: str) -> Iterator[dict]:
    """Every frame of one venue in the order it was received: runs in time order, seq within a run."""
    files = venue_files(Path(root), venue)
    by_stream: dict[str, list[Path]] = {}
    for f in files:
        by_stream.setdefault(f.parent.name, []).append(f)

    def stream_iter(paths):
        for p in paths:
            yield from iter_file(p)

    def keyed(paths):
        for r in stream_iter(paths):
            yield _run_ns(r), r["seq"], r

    for _, _, rec in heapq.merge(*(keyed(p) for p in by_stream.values()), key=lambda t: (t[0], t[1])):
        yield rec


def _run_ns(rec: dict) -> int:
    run = rec.get("run", "")
    return int(run.rsplit("-", 1)[-1]) if run else 0


def iter_all(root: Path) -> Iterator[tuple[str, dict]]:
    """Every frame of every venue, merged by receive time."""
    def tagged(venue):
        for r in iter_venue(root, venue):
            yield r["ts_recv_ns"], venue, r

    for _, v, rec in heapq.merge(*(tagged(v) for v in venues(root)), key=lambda t: t[0]):
        yield v, rec


def load_checkpoint(venue_dir: Path) -> dict | None:
    try:
        return orjson.loads((venue_dir / CHECKPOINT).read_bytes())
    except FileNotFoundError:
        return None


def save_checkpoint(venue_dir: Path, doc: dict) -> None:
    """Atomic: a crash leaves the old checkpoint or the new one, never a mix."""
    tmp = venue_dir / f".{CHECKPOINT}.tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(doc))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, venue_dir / CHECKPOINT)
