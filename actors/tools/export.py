"""`python run.py export DIR OUT [options]`: a recording as hive-partitioned Parquet, streamed.

OUT is a path or a URI (`file:///data/x`, `s3://bucket/prefix`, `memory://x`, …: actors.tools.
export_sink.open_out). Written under it (layout and columns: docs/export.md):
  frames/venue=<venue>/date=<YYYY-MM-DD>/part-<n>.parquet
      every recorded line: seq, ts_recv_ns, run, conn, stream, meta, frame (UTF-8 text; null with
      the exact bytes in frame_b64 for a frame that was not UTF-8), series (the up/down series of a
      Polymarket stream, else null)
  records/kind=<kind>/venue=<venue>/date=<YYYY-MM-DD>/part-<n>.parquet
      the records the feeds store, one column per field of the ring dtype (ipc/schema.py),
      timestamps as timestamp[ns, UTC], levels as lists of the levels in use: Binance futures /
      spot and Chainlink by the venue modules' pure `parse_frame`; Polymarket books and trades by
      the feed's own book state machine replayed on the recording (actors.tools.export_poly),
      which also gives kind=poly_window (the windows' metadata, one row per change)
`date` is the UTC day of each row's receive time. Every directory under records/kind=<kind> holds
one schema, so it reads as one table across venues and dates.

Invariants:
- bounded memory: one venue at a time, read in receive order (the merge of its streams, one
  file per stream open) and written in row groups of at most --batch-rows rows and --batch-mb MB
  per buffer (actors.tools.export_sink); nothing grows with the recording's length;
- nothing silently lost: every line is in frames/ (unless --no-frames); a data frame that does
  not parse is counted (`unparsed`), what each other line was is counted (`lines`), and bytes of a
  file that cannot be read (a damaged gzip member, a truncated tail) are listed (`damaged`: path,
  offset, length, reason) and the export goes on with the next whole member;
- the summary is one JSON document on stdout; the progress bar (recording bytes read) is on
  stderr, drawn only on a terminal;
- OUT's frames/ and records/ must not exist (a half-old export must never mix with a new one)
  unless --overwrite, which deletes them first.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from ipc import names, recording
from ipc.schema import DTYPES

from actors.tools.export_arrow import FRAME_SCHEMA, WINDOW_SCHEMA, record_schema, window_row, windows_table
from actors.tools.export_poly import PolyDecoder
from actors.tools.export_sink import (Dataset, FrameBuffer, RecordBuffer, RowBuffer, Sink, exists, open_out,
                                      utc_day)
from actors.tools.progress import track
from actors.venues.binance import futures as binance_futures, spot as binance_spot
from actors.venues.polymarket import chainlink, rtds

FRAMES, RECORDS = "frames", "records"
WINDOW_KIND = "poly_window"
BATCH_ROWS = 65_536
BATCH_MB = 8
COMPRESSIONS = ("zstd", "snappy", "gzip", "lz4", "none")
# (venue, a series ring's stream) -> its series (`book_15m` -> "15m"), from the naming authority
SERIES_OF_STREAM = {(r.venue, r.stream): r.series for rings in names.VENUE_RINGS.values()
                    for r in rings.values() if r.series is not None}
LEGACY_BATCH = "_batch"      # a Chainlink snapshot in recordings made before the one-envelope change


def series_of(venue: str, stream: str) -> str | None:
    """The up/down series a recorded stream belongs to, None when it is not a series stream."""
    return SERIES_OF_STREAM.get((venue, stream))


class FrameParser:
    """A venue whose frames each give their records alone (a pure `parse_frame`)."""

    EXTRA: tuple[str, ...] = ()

    def __init__(self, parse, out, by_stream: str | None = None):
        self.parse, self.out = parse, out
        self.by_stream = by_stream     # the stream argument's default (a `_` stream): parse per stream

    def frame(self, rec: dict) -> str:
        stream = rec["stream"]
        if rec["conn"] == "rest":
            return "rest"                    # a REST answer: a frame, no stream records
        if stream.startswith("_") and stream != LEGACY_BATCH:
            return stream                    # not market data (_malformed, _ack, _control, …)
        frame, ts = recording.frame_bytes(rec), rec["ts_recv_ns"]
        if self.by_stream is None:
            d = self.parse(frame, ts)
        else:
            d = self.parse(frame, ts, self.by_stream if stream.startswith("_") else stream)
        if d.kind in DTYPES:
            for r in d.recs:
                self.out.record(d.kind, r)
        return d.kind

    def summary(self) -> dict:
        return {}


# venue -> its decoder factory (root, out); a venue not here is exported as frames only
DECODERS = {
    binance_futures.VENUE: lambda root, out: FrameParser(binance_futures.parse_frame, out),
    binance_spot.VENUE: lambda root, out: FrameParser(binance_spot.parse_frame, out),
    chainlink.VENUE: lambda root, out: FrameParser(chainlink.parse_frame, out, by_stream=rtds.SYMBOL),
    names.POLY: PolyDecoder,
}


class VenueOut:
    """The buffers of one venue's tables, made on first use, each bounded (export_sink)."""

    def __init__(self, sink, venue: str, batch_rows: int, batch_bytes: int, frames: bool):
        self.sink, self.venue = sink, venue
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.extra: tuple[str, ...] = ()
        self.buffers: dict = {}
        self.frames = FrameBuffer(Dataset(sink, f"{FRAMES}/venue={venue}", FRAME_SCHEMA), batch_rows,
                                  batch_bytes) if frames else None

    def _rel(self, kind: str) -> str:
        return f"{RECORDS}/kind={kind}/venue={self.venue}"

    def record(self, kind: str, rec: tuple, extra: tuple = ()) -> None:
        buf = self.buffers.get(kind)
        if buf is None:
            buf = self.buffers[kind] = self._record_buffer(kind)
        buf.add(rec, utc_day(rec[1]), extra)       # rec[1]: every dtype's ts_recv_ns

    def _record_buffer(self, kind: str):
        rows = min(self.batch_rows, max(1, self.batch_bytes // DTYPES[kind].itemsize))
        return RecordBuffer(Dataset(self.sink, self._rel(kind), record_schema(kind, self.extra)), kind, rows,
                            self.extra)

    def window(self, ts_ns: int, event: str, doc: dict) -> None:
        buf = self.buffers.get(WINDOW_KIND)
        if buf is None:
            buf = self.buffers[WINDOW_KIND] = RowBuffer(
                Dataset(self.sink, self._rel(WINDOW_KIND), WINDOW_SCHEMA), self.batch_rows, windows_table)
        buf.add(window_row(ts_ns, event, doc), utc_day(ts_ns))

    def line(self, rec: dict, series: str | None) -> None:
        text, b64 = rec.get("frame"), rec.get("frame_b64")
        meta = rec.get("meta") or None
        self.frames.add((rec["seq"], rec["ts_recv_ns"], rec.get("run", ""), rec.get("conn", ""), rec["stream"],
                         meta, text, b64, series), len(text if text is not None else b64 or ""),
                        utc_day(rec["ts_recv_ns"]))

    def close(self) -> dict[str, int]:
        """Flush and close every table; rows written per record kind."""
        if self.frames is not None:
            self.frames.close()
        for buf in self.buffers.values():
            buf.close()
        return {k: b.rows for k, b in sorted(self.buffers.items())}


def recording_bytes(root: Path, venues: list[str]) -> int:
    return sum(f.stat().st_size for v in venues for f in recording.venue_files(root, v))


def export_venue(root: Path, venue: str, sink, bar, *, batch_rows: int = BATCH_ROWS,
                 batch_bytes: int = BATCH_MB << 20, frames: bool = True) -> dict:
    out = VenueOut(sink, venue, batch_rows, batch_bytes, frames)
    make = DECODERS.get(venue)
    dec = make(root, out) if make is not None else None
    out.extra = dec.EXTRA if dec is not None else ()
    damage: list[recording.Damage] = []
    lines: Counter = Counter()
    n = unparsed = not_utf8 = 0
    for rec in recording.iter_venue(root, venue, damage, on_file_done=lambda p: bar.advance(p.stat().st_size)):
        n += 1
        if "frame" not in rec:
            not_utf8 += 1
        if frames:
            out.line(rec, series_of(venue, rec["stream"]))
        if dec is None:
            continue
        try:
            lines[dec.frame(rec)] += 1
        except ValueError:
            unparsed += 1
    records = out.close()
    return {"frames": n, "unparsed": unparsed, "not_utf8": not_utf8, "lines": dict(sorted(lines.items())),
            "records": records, "damaged": [d._asdict() for d in damage],
            **(dec.summary() if dec is not None else {})}


def export(root: Path, out: str | Path, *, venues: list[str] | None = None, overwrite: bool = False,
           batch_rows: int = BATCH_ROWS, batch_mb: float = BATCH_MB, compression: str = "zstd",
           frames: bool = True, progress: bool | None = None) -> dict:
    """Export the recording at `root` to `out` (a path or URI); the summary."""
    root = Path(root)
    have = recording.venues(root)
    venues = have if venues is None else venues
    missing = [v for v in venues if v not in have]
    if missing:
        raise ValueError(f"{root}: no venue {', '.join(missing)} in the recording (it has {', '.join(have)})")
    fs, base = open_out(str(out))
    old = [d for d in (FRAMES, RECORDS) if exists(fs, f"{base}/{d}")]
    if old and not overwrite:
        raise FileExistsError(f"{out}: already holds {' and '.join(old)}/ (an earlier export): "
                              "pass --overwrite to replace them")
    for d in old:
        fs.delete_dir(f"{base}/{d}")
    fs.create_dir(base, recursive=True)
    sink = Sink(fs, base, None if compression == "none" else compression)
    t0 = time.monotonic()
    total = recording_bytes(root, venues)
    summary = {}
    with track("export", total, unit="B", enabled=progress) as bar:
        for v in venues:
            bar.set(venue=v)
            summary[v] = export_venue(root, v, sink, bar, batch_rows=batch_rows,
                                      batch_bytes=int(batch_mb * (1 << 20)), frames=frames)
    return {"out": str(out), "recording_bytes": total, "bytes_read": bar.done,
            "elapsed_sec": round(time.monotonic() - t0, 3), "parts": sink.parts_written, "venues": summary}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="run.py export",
        description="Export a recording (RECORD_DIR) as hive-partitioned Parquet: frames/venue=…/date=…/ "
                    "and records/kind=…/venue=…/date=…/, streamed with bounded memory. Prints a JSON "
                    "summary on stdout (frames, records per kind, unparsed frames, damaged bytes).",
        epilog="Layout, columns and pandas / polars / DuckDB examples: docs/export.md.")
    ap.add_argument("dir", type=Path, help="the recording directory (holds <venue>/<stream>/*.jsonl.gz)")
    ap.add_argument("out", help="where to write: a path, or a URI pyarrow or fsspec knows "
                                "(file:///…, s3://bucket/prefix, memory://…)")
    ap.add_argument("--venue", action="append", metavar="VENUE",
                    help="export only this venue (repeatable; default: every venue of the recording)")
    ap.add_argument("--overwrite", action="store_true",
                    help="delete OUT/frames and OUT/records of an earlier export first")
    ap.add_argument("--no-frames", dest="frames", action="store_false",
                    help="skip frames/ (the raw lines, the bulk of an export); records only")
    ap.add_argument("--batch-rows", type=int, default=BATCH_ROWS, metavar="N",
                    help=f"at most N rows per row group (default {BATCH_ROWS})")
    ap.add_argument("--batch-mb", type=float, default=BATCH_MB, metavar="MB",
                    help=f"at most MB megabytes held per table before it is written (default {BATCH_MB})")
    ap.add_argument("--compression", choices=COMPRESSIONS, default="zstd", help="Parquet codec (default zstd)")
    bar = ap.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="draw the progress bar on stderr even when it is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never draw it")
    return ap


def main(argv: list[str]) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    if a.batch_rows < 1 or a.batch_mb <= 0:
        ap.error("--batch-rows and --batch-mb must be positive")
    if not recording.venues(a.dir):
        ap.error(f"{a.dir}: not a recording (no <venue>/ directories)")
    try:
        summary = export(a.dir, a.out, venues=a.venue, overwrite=a.overwrite, batch_rows=a.batch_rows,
                         batch_mb=a.batch_mb, compression=a.compression, frames=a.frames,
                         progress=a.progress)
    except (ValueError, FileExistsError, OSError) as exc:
        sys.stderr.write(f"run.py export: {exc}\n")
        return 2
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
