"""Where `run.py export` writes: a filesystem from a path or URI, and bounded, date-partitioned
Parquet datasets on it.

`open_out(uri)` -> (pyarrow FileSystem, base path): a local path, or any URI pyarrow knows
(`file://`, `s3://`, `gs://`, `hdfs://`, …), else any fsspec knows (`memory://`, `s3://` with
s3fs, …) through pyarrow's FSSpecHandler.

`Dataset(sink, rel, schema)` is one table of the export (`frames/venue=futures`,
`records/kind=trade/venue=spot`): each `write(date, table)` goes to
`<base>/<rel>/date=<YYYY-MM-DD>/part-<n>.parquet`, one row group per write.

Invariants:
- bounded: a Dataset keeps ONE part file open, for the date it is writing; a batch of another
  date closes it and opens that date's next part (`part-0`, `part-1`, … when a date comes back,
  as after a clock step or across runs), so memory never grows with the number of dates;
- each part file holds the Dataset's one schema; a part is complete (footer written) once closed,
  and `close()` closes the open one;
- dates are UTC calendar days of receive time (`utc_day(ts_ns)`);
- the buffers (`RecordBuffer`, `FrameBuffer`, `RowBuffer`) hold at most `cap` rows (and a
  FrameBuffer at most `cap_bytes` of frame text) of ONE date: a row of another date, or a full
  buffer, flushes the buffer to its Dataset as one row group first. Peak memory is therefore the
  sum of the buffers' caps, whatever the size of the recording.
"""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ipc.schema import DTYPES

from actors.tools.export_arrow import FRAME_SCHEMA, frames_table, records_table

NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = dt.date(1970, 1, 1)


def utc_day(ts_ns: int) -> int:
    return ts_ns // NS_PER_DAY


def day_name(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def open_out(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for an export destination: a path or a URI."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.rstrip("/")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    try:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem
    except ImportError:
        raise ValueError(f"{uri}: pyarrow does not know this URI scheme and fsspec is not installed") from None
    try:
        ffs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise ValueError(f"{uri}: {exc}") from None
    return PyFileSystem(FSSpecHandler(ffs)), path.rstrip("/")


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


class Sink:
    """The export destination: its filesystem, base path and Parquet options."""

    def __init__(self, fs: pafs.FileSystem, base: str, compression: str = "zstd"):
        self.fs, self.base, self.compression = fs, base, compression
        self.parts_written = 0


class Dataset:
    def __init__(self, sink: Sink, rel: str, schema: pa.Schema):
        self.sink, self.rel, self.schema = sink, rel, schema
        self._day: int | None = None
        self._writer: pq.ParquetWriter | None = None
        self._parts: dict[int, int] = {}      # day -> parts opened (a few ints per date)
        self.rows = 0

    def write(self, day: int, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if day != self._day:
            self._close_part()
            n = self._parts.get(day, 0)
            self._parts[day] = n + 1
            d = f"{self.sink.base}/{self.rel}/date={day_name(day)}"
            self.sink.fs.create_dir(d, recursive=True)
            self._writer = pq.ParquetWriter(f"{d}/part-{n}.parquet", self.schema, filesystem=self.sink.fs,
                                            compression=self.sink.compression)
            self._day = day
            self.sink.parts_written += 1
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._day = None, None

    def close(self) -> None:
        self._close_part()


class _Buffer:
    """Rows of one date for one Dataset; subclasses say how rows are held and made a table."""

    def __init__(self, ds: Dataset, cap: int):
        self.ds, self.cap = ds, max(1, cap)
        self.n = 0
        self.day: int | None = None
        self.rows = 0

    def _new_day(self, day: int) -> None:
        self.flush()
        self.day = day

    def flush(self) -> None:
        if self.n:
            self.ds.write(self.day, self._table())
            self.rows += self.n
            self.n = 0
            self._reset()

    def close(self) -> None:
        self.flush()
        self.ds.close()

    def _table(self) -> pa.Table:
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError


CHUNK = 1024     # record tuples converted into the structured array at a time (np.array is per-batch fast)


class RecordBuffer(_Buffer):
    """Records of one DTYPES kind in a preallocated structured array (`cap` rows: sized by the
    caller from the dtype's itemsize; at most CHUNK more as tuples), plus extra string columns."""

    def __init__(self, ds: Dataset, kind: str, cap: int, extra: tuple[str, ...] = ()):
        super().__init__(ds, cap)
        self.kind, self.dtype = kind, DTYPES[kind]
        self.buf = np.zeros(self.cap, dtype=self.dtype)
        self.filled = 0                   # rows of buf holding converted records
        self.pending: list[tuple] = []
        self.extra_names = extra
        self.extra: list[tuple] = []

    def add(self, rec: tuple, day: int, extra: tuple = ()) -> None:
        if day != self.day:
            self._new_day(day)
        self.pending.append(rec)
        if self.extra_names:
            self.extra.append(extra)
        self.n += 1
        if len(self.pending) >= CHUNK or self.n >= self.cap:
            self._convert()
            if self.n >= self.cap:
                self.flush()

    def _convert(self) -> None:
        k = len(self.pending)
        if k:
            self.buf[self.filled:self.filled + k] = np.array(self.pending, dtype=self.dtype)
            self.filled += k
            self.pending = []

    def _table(self) -> pa.Table:
        self._convert()
        cols = {c: list(v) for c, v in zip(self.extra_names, zip(*self.extra))} if self.extra_names else None
        return records_table(self.kind, self.buf[:self.filled], cols)

    def _reset(self) -> None:
        self.filled = 0
        self.extra = []


class FrameBuffer(_Buffer):
    """Recording lines as FRAME_SCHEMA-ordered tuples; flushed at `cap` rows or `cap_bytes` of text."""

    def __init__(self, ds: Dataset, cap: int, cap_bytes: int):
        super().__init__(ds, cap)
        self.names = FRAME_SCHEMA.names
        self.cap_bytes = cap_bytes
        self._reset()

    def add(self, values: tuple, nbytes: int, day: int) -> None:
        """`values` in FRAME_SCHEMA order; `nbytes` the size of its text."""
        if day != self.day:
            self._new_day(day)
        self.list.append(values)
        self.bytes += nbytes
        self.n += 1
        if self.n >= self.cap or self.bytes >= self.cap_bytes:
            self.flush()

    def _table(self) -> pa.Table:
        return frames_table(dict(zip(self.names, map(list, zip(*self.list)))))

    def _reset(self) -> None:
        self.list: list[tuple] = []
        self.bytes = 0


class RowBuffer(_Buffer):
    """Rows as dicts, made a table by `to_table(rows)` (small, rare tables: Polymarket windows)."""

    def __init__(self, ds: Dataset, cap: int, to_table):
        super().__init__(ds, cap)
        self.to_table = to_table
        self.list: list[dict] = []

    def add(self, row: dict, day: int) -> None:
        if day != self.day:
            self._new_day(day)
        self.list.append(row)
        self.n += 1
        if self.n >= self.cap:
            self.flush()

    def _table(self) -> pa.Table:
        return self.to_table(self.list)

    def _reset(self) -> None:
        self.list = []
