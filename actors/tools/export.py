"""`python run.py export DIR OUT`: a recording as Parquet, for analysis (pandas, polars, DuckDB).

Writes, under OUT:
  frames/<venue>.parquet          every frame as recorded: seq, ts_recv_ns, run, conn, stream, meta, frame
  records/<venue>.<kind>.parquet  the records the feeds would have stored (same parsers, same numpy
                                  dtypes as the shared-memory rings: ipc/schema.py), one column per field
A frame gives all its records (a `_batch` frame several). Venues without a pure per-frame parser
here (Polymarket: its book records need the book state kept across frames) are exported as frames only.

Invariants: parsing is the venue modules' pure `parse_frame`; a frame that does not parse is
counted in the summary, never dropped from `frames/`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ipc.schema import DTYPES

from ipc import recording
from actors.venues.binance import futures as binance_futures, spot as binance_spot
from actors.venues.polymarket import chainlink

PARSERS = {binance_futures.VENUE: binance_futures.parse_frame, binance_spot.VENUE: binance_spot.parse_frame,
           chainlink.VENUE: chainlink.parse_frame}
FRAME_COLUMNS = ("seq", "ts_recv_ns", "run", "conn", "stream", "meta", "frame")


def _records(parse, rec: dict, out: dict[str, list]) -> bool:
    try:
        d = parse(recording.frame_bytes(rec), rec["ts_recv_ns"])
    except ValueError:
        return False
    if d.kind in DTYPES and d.recs:
        out.setdefault(d.kind, []).extend(d.recs)
    return True


def export(root: Path, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    summary = {}
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(parents=True, exist_ok=True)
    for venue in recording.venues(root):
        cols = {c: [] for c in FRAME_COLUMNS}
        recs: dict[str, list] = {}
        bad = 0
        parse = PARSERS.get(venue)
        for rec in recording.iter_venue(root, venue):
            for c in FRAME_COLUMNS:
                cols[c].append(rec.get(c, "") if c != "frame" else recording.frame_bytes(rec))
            data = not rec["stream"].startswith("_") or rec["stream"] == "_batch"
            if parse is not None and data and not _records(parse, rec, recs):
                bad += 1
        table = pa.table({c: pa.array(v, type=pa.binary() if c == "frame" else None) for c, v in cols.items()})
        pq.write_table(table, out / "frames" / f"{venue}.parquet", compression="zstd")
        summary[venue] = {"frames": table.num_rows, "unparsed": bad, "records": {}}
        for kind, rows in recs.items():
            arr = np.array(rows, dtype=DTYPES[kind])
            # sub-array fields (depth levels) become list columns
            t = pa.table({name: arr[name] if arr[name].ndim == 1 else pa.array(arr[name].tolist())
                          for name in arr.dtype.names})
            pq.write_table(t, out / "records" / f"{venue}.{kind}.parquet", compression="zstd")
            summary[venue]["records"][kind] = len(arr)
    return summary


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py export", description="a recording as Parquet")
    ap.add_argument("dir", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    if not recording.venues(a.dir):
        raise SystemExit(f"{a.dir}: not a recording (no <venue>/ directories)")
    for venue, s in export(a.dir, a.out).items():
        print(f"{venue}: {s['frames']} frames, {s['unparsed']} unparsed, records {s['records']}")
    return 0
