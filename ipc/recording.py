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

Stream directories: a stream name comes from the venue, so it is made one safe path component
(`stream_dir`): "/" becomes "_" (Chainlink's `btc/usd` -> `btc_usd`, as always); a byte outside
`[A-Za-z0-9@_.,=+-]` (NUL, control, `%`, non-ASCII) is percent-encoded; a leading "." ("." and ".."
included) and the name of the checkpoint are encoded; an empty name is `_empty`; a name longer
than STREAM_DIR_MAX bytes is cut and given a hash of the whole name. So a stream can never name a
path outside its venue folder, a name the filesystem refuses, or the checkpoint. Every line still
carries the stream's real name; the directory only groups the files.

Invariants:
- a file ends on a whole gzip member except after a crash; the recorder cuts files back to their
  checkpointed sizes when it restarts;
- reading never stops silently: a damaged member (bad CRC, bad deflate data, a line that is not
  JSON) or a truncated tail is reported as a `Damage` (file, byte offset, bytes skipped, reason) —
  logged, and appended to the caller's `damage` list — and reading goes on with the next whole
  member (found by its gzip header) and the next file;
- the checkpoint is the recorder's claim on the files: it is written only after the data files it
  counts are fsynced (and the directories of the files it created), and it lists only the files
  of periods from its `open_period_sec` on: files of earlier periods are finished, never written
  again, so the map holds one period's files (at most MAX_STREAM_DIRS + 1), not every file ever.
"""
from __future__ import annotations

import base64
import calendar
import hashlib
import heapq
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

SUFFIX = ".jsonl.gz"
CHECKPOINT = "checkpoint.json"
STREAM_DIR_MAX = 200            # bytes; under NAME_MAX (255) with room to spare
MAX_STREAM_DIRS = 256           # per venue; a venue inventing stream names beyond it shares OVERFLOW_DIR
OVERFLOW_DIR = "_overflow"
EMPTY_DIR = "_empty"
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@_.,=+-")
_GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 1 << 16
log = logging.getLogger("recording")


def period_name(ts_ns: int, period_sec: int) -> str:
    return period_file(ts_ns // 1_000_000_000 // period_sec * period_sec)


def period_start_sec(ts_ns: int, period_sec: int) -> int:
    return ts_ns // 1_000_000_000 // period_sec * period_sec


def period_file(start_sec: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start_sec)) + SUFFIX


def file_period_sec(name: str) -> int | None:
    """The period start of a data file's name (`period_file`), None for a name that is not one."""
    if not name.endswith(SUFFIX):
        return None
    try:
        return calendar.timegm(time.strptime(name[:-len(SUFFIX)], "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None


def stream_dir(stream: str) -> tuple[str, str | None]:
    """(directory name, why it differs from the stream name or None). Always one safe component."""
    if not stream:
        return EMPTY_DIR, "empty"
    raw = stream.replace("/", "_").encode("utf-8", "surrogatepass")
    reason = None
    if any(b not in _SAFE for b in raw):
        reason = "control" if any(b < 0x20 or b == 0x7F for b in raw) else "chars"
        name = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)
    else:
        name = raw.decode("ascii")
    if name.startswith("."):                 # ".", "..", a hidden name
        name, reason = "%2E" + name[1:], reason or "dot"
    elif name == CHECKPOINT:
        name, reason = "%63" + name[1:], reason or "reserved"
    if len(name) > STREAM_DIR_MAX:
        cut = STREAM_DIR_MAX - 18
        while "%" in name[cut - 2:cut]:      # never cut a %XX in two
            cut -= 1
        digest = hashlib.sha256(stream.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name, reason = f"{name[:cut]}~{digest}", "too_long"
    return name, reason


def safe_stream(stream: str) -> str:
    return stream_dir(stream)[0]


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


# --- reading --------------------------------------------------------------------------------------

class Damage(NamedTuple):
    """Bytes of a recording file that could not be read: `length` bytes from `offset` skipped."""
    path: str
    offset: int
    length: int
    reason: str      # "bad member" (CRC, deflate data), "truncated tail", "bad line"


def _member_at(mv: memoryview, pos: int) -> tuple[bytes, int] | str:
    """(content, end) of the gzip member at `pos`, or why there is none: "bad member" / "truncated".
    Fed in chunks, so neither a file of many members nor a long one is copied more than once."""
    d = zlib.decompressobj(wbits=31)
    parts, p, n = [], pos, len(mv)
    try:
        while not d.eof:
            if p >= n:
                return "truncated"
            chunk = mv[p:p + _CHUNK]
            parts.append(d.decompress(chunk))
            p += len(chunk)
    except zlib.error:
        return "bad member"
    return b"".join(parts), p - len(d.unused_data)


def iter_members(data: bytes) -> Iterator[tuple[int, bytes | None, int, str]]:
    """(offset, content, length, reason) for each member, in order; content None for bytes that are
    not a whole member (length of them skipped, `reason`), after which the next member whose gzip
    header starts a whole member is read."""
    mv, pos, n = memoryview(data), 0, len(data)
    while pos < n:
        got = _member_at(mv, pos)
        if not isinstance(got, str):
            yield pos, got[0], got[1] - pos, ""
            pos = got[1]
            continue
        nxt = data.find(_GZIP_MAGIC, pos + 1)
        while nxt != -1 and isinstance(_member_at(mv, nxt), str):
            nxt = data.find(_GZIP_MAGIC, nxt + 1)
        end = n if nxt == -1 else nxt
        reason = "truncated tail" if got == "truncated" and nxt == -1 else "bad member"
        yield pos, None, end - pos, reason
        pos = end


def whole_members(data: bytes) -> int:
    """Length of the longest prefix of `data` made of complete gzip members."""
    for off, content, _, _ in iter_members(data):
        if content is None:
            return off
    return len(data)


def _report(damage: list | None, d: Damage) -> None:
    log.warning("recording damaged: %s at byte %d: %s, %d bytes skipped", d.path, d.offset, d.reason, d.length)
    if damage is not None:
        damage.append(d)


def iter_file(path: Path, damage: list[Damage] | None = None) -> Iterator[dict]:
    """Every frame of one file. What cannot be read is reported (module docstring), never fatal."""
    data = Path(path).read_bytes()
    for off, content, length, reason in iter_members(data):
        if content is None:
            _report(damage, Damage(str(path), off, length, reason))
            continue
        bad = 0
        for line in content.splitlines():
            if not line:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if isinstance(rec, dict) and "seq" in rec and "stream" in rec:
                yield rec
            else:
                bad += 1
        if bad:
            _report(damage, Damage(str(path), off, length, f"bad line ({bad} lines)"))


def venue_files(root: Path, venue: str) -> list[Path]:
    return sorted((root / venue).glob(f"*/*{SUFFIX}"))


def venues(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []


def iter_venue(root: Path, venue: str, damage: list[Damage] | None = None,
               on_file_done: Callable[[Path], None] | None = None) -> Iterator[dict]:
    """Every frame of one venue in the order it was received: runs in time order, seq within a run.
    Damaged bytes are reported into `damage` (and logged) and skipped; `on_file_done(path)` is
    called as each file has been read (a progress bar's bytes)."""
    by_stream: dict[str, list[Path]] = {}
    for f in venue_files(Path(root), venue):
        by_stream.setdefault(f.parent.name, []).append(f)

    def keyed(paths):
        for p in paths:
            for r in iter_file(p, damage):
                yield _run_ns(r), r["seq"], r
            if on_file_done is not None:
                on_file_done(p)

    for _, _, rec in heapq.merge(*(keyed(p) for p in by_stream.values()), key=lambda t: (t[0], t[1])):
        yield rec


def _run_ns(rec: dict) -> int:
    """A run's start (`<pid>-<ns>`), its order among runs; 0 when it names none (a damaged line's
    run field sorts first rather than stopping the read)."""
    run = rec.get("run", "")
    try:
        return int(run.rsplit("-", 1)[-1]) if run else 0
    except (ValueError, AttributeError):
        return 0


def iter_all(root: Path, damage: list[Damage] | None = None) -> Iterator[tuple[str, dict]]:
    """Every frame of every venue, merged by receive time."""
    def tagged(venue):
        for r in iter_venue(root, venue, damage):
            yield r["ts_recv_ns"], venue, r

    for _, v, rec in heapq.merge(*(tagged(v) for v in venues(root)), key=lambda t: t[0]):
        yield v, rec


# --- the checkpoint and durable writes ------------------------------------------------------------

def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a file created or renamed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(venue_dir: Path) -> dict | None:
    try:
        return orjson.loads((venue_dir / CHECKPOINT).read_bytes())
    except FileNotFoundError:
        return None


def save_checkpoint(venue_dir: Path, doc: dict) -> None:
    """Atomic and durable: a crash or a power loss leaves the old checkpoint or the new one, never
    a mix. The caller has fsynced every data byte the new one claims."""
    tmp = venue_dir / f".{CHECKPOINT}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with open(fd, "wb") as f:
        f.write(orjson.dumps(doc))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, venue_dir / CHECKPOINT)
    fsync_dir(venue_dir)
