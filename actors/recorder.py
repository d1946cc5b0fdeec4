"""The `recorder` actor: drains every feed's raw-frame ring to compressed files (ipc/recording.py).

Invariants:
- lossless and exactly once: a flush appends one gzip member per file, fsyncs every file it
  appended to (and the directory of every file or directory it created), and only then atomically
  writes the venue's checkpoint (ring incarnation, byte cursor, next seq, the open period, the
  sizes of that period's files, totals): a checkpoint never claims bytes that a power loss can
  take away. On start the recorder cuts every file of the open period back to its checkpointed
  size, removes the open-period files created after it, and resumes the ring at the checkpointed
  cursor, so frames written after the last checkpoint by a killed recorder are written once more
  (a venue with files but no checkpoint at all, a recorder killed before its first one: the files
  are renamed `*.uncheckpointed`, out of the recording, and the ring is read from its oldest frame)
  and never twice. `recorded + lost` equals the frames the feed put in the ring; `lost` is non-zero
  only if the ring lapped the recorder (it is sized for minutes of data), and is then an alert.
- bounded: a frame goes into the file of its receive-time period, but never into a period before
  the newest one written (a clock stepped back writes into the open period), so the files of
  earlier periods are finished and the checkpoint lists one period's files only.
- a stream name is the venue's text: it becomes one safe directory name (`recording.stream_dir`:
  never outside the venue folder, never a name the filesystem refuses); frames whose name had to
  be changed are counted per reason (`stream_names`), and a venue inventing more than
  MAX_STREAM_DIRS names shares one overflow directory. No name stops or crashes the recording.
- the feeds never wait for the recorder: they append to their ring whatever happens here. A ring
  replaced under its name (a feed restarted with another RECORD_RING_BYTES) is noticed at the next
  scan: the old ring is drained, then the new one is recorded as a new run from its oldest frame;
  frames it no longer holds by then are counted in `lost`.
- a write error (disk full, permission, read-only) is logged, kept in the heartbeat as `alert`
  (shown in /state), the files are cut back to the checkpoint and the reader rewound to it: the
  ring is the buffer while the disk is unusable; the write is retried every RECORD_RETRY_SEC.
"""
from __future__ import annotations

import gzip
import logging
import os
import signal
import time
from pathlib import Path

from config.settings import Settings
from ipc.framering import FrameRingReader
from ipc.state import Heartbeat, Registry

from ipc import names, recording

log = logging.getLogger("recorder")
POLL_SEC = 0.05
RETRY_SEC = 1.0
SCAN_SEC = 1.0
UNCHECKPOINTED = ".uncheckpointed"   # a file set aside at start: written before any checkpoint


class CheckpointUnreadable(Exception):
    """A venue's checkpoint that is not one (not JSON, a wrong shape): its files cannot be trusted to resume, so nothing is
    recorded for the venue until someone looks (an alert, never a guess that could double frames)."""


def _checkpoint_ok(ck) -> bool:
    def count(v) -> bool:
        return type(v) is int and v >= 0
    return (isinstance(ck, dict) and isinstance(ck.get("run"), str)
            and all(count(ck.get(k)) for k in ("cursor", "next_seq", "recorded", "lost"))
            and count(ck.get("open_period_sec", 0)) and isinstance(ck.get("files"), dict)
            and all(isinstance(k, str) and count(v) for k, v in ck["files"].items()))


def _mkdirs_durable(path: Path) -> None:
    """`mkdir -p`, with each directory made fsynced into its parent."""
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        recording.fsync_dir(d.parent)


def _append_durable(path: Path, data: bytes) -> bool:
    """Append `data` to `path` and fsync it; True when the file was created (its directory entry
    is the caller's to fsync)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd, created = os.open(path, flags | os.O_EXCL, 0o644), True
    except FileExistsError:
        fd, created = os.open(path, flags), False
    with open(fd, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return created


class VenueRecorder:
    """One feed's ring → files under RECORD_DIR/<venue>/."""

    def __init__(self, s: Settings, ring_path: Path, venue: str):
        self.s, self.venue, self.ring_path = s, venue, ring_path
        self.rotate_sec = s.record.record_rotate_sec
        self.dir = Path(s.record.record_dir) / venue
        _mkdirs_durable(self.dir)
        self.pending: dict[Path, list[bytes]] = {}
        self.n_pending = 0
        self.first_pending = 0.0
        self.error: str | None = None
        self.retry_at = 0.0
        self.write_errors = self.flushes = self.bytes_written = self.replacements = 0
        self.renamed: dict[str, int] = {}      # frames whose directory is not their stream's name, per reason
        self._dir_of: dict[str, tuple[str, str | None]] = {}
        self.stream_dirs = {p.name for p in self.dir.iterdir() if p.is_dir()}
        self.ring_replaced = False             # set by the scan; acted on once the old ring is drained
        self._open_reader()

    def _open_reader(self) -> None:
        """At the checkpoint of this ring incarnation, after cutting the open period's files back to it."""
        probe = FrameRingReader(self.ring_path, start=0)
        try:
            ck = recording.load_checkpoint(self.dir)
            if ck is not None and not _checkpoint_ok(ck):
                raise ValueError("not a checkpoint document")
        except ValueError as exc:
            probe.close()
            raise CheckpointUnreadable(f"checkpoint {self.dir / recording.CHECKPOINT} is unreadable ({exc}); "
                                       f"move it aside to record {self.venue} again") from None
        self.sizes: dict[str, int] = {}
        open_sec = 0
        if ck is not None:
            open_sec = ck.get("open_period_sec", 0)    # older checkpoints listed every file
            for rel, size in ck["files"].items():
                self._cut(self.dir / rel, size)
                self.sizes[rel] = size
            for f in recording.venue_files(Path(self.s.record.record_dir), self.venue):
                rel = str(f.relative_to(self.dir))
                period = recording.file_period_sec(f.name)
                if rel not in self.sizes and period is not None and period >= open_sec:
                    f.unlink()                 # created after the last checkpoint
        else:
            # no checkpoint: whatever this venue's files hold was written by a recorder killed before
            # its first checkpoint, and the ring is read again from its oldest frame (seq 0): kept
            # aside, out of the recording, so no frame is in it twice
            for f in recording.venue_files(Path(self.s.record.record_dir), self.venue):
                aside = f.with_name(f.name + UNCHECKPOINTED)
                f.rename(aside)
                log.warning("%s: %s had no checkpoint; moved aside to %s (its frames are recorded again "
                            "from the ring)", self.venue, f, aside.name)
        self.top_sec = self.ck_top_sec = open_sec
        same_run = ck is not None and ck["run"] == probe.ring_id
        # totals are per ring incarnation: they compare with that ring's frame count
        self.totals = {k: ck[k] for k in ("recorded", "lost")} if same_run else {"recorded": 0, "lost": 0}
        probe.close()
        if same_run:
            reader = FrameRingReader(self.ring_path, start=ck["cursor"], next_seq=ck["next_seq"])
        else:                                  # a new ring: from its oldest frame; what it no longer holds is lost
            reader = FrameRingReader(self.ring_path, next_seq=0)
        self.reader = reader
        self.ck_cursor, self.ck_next_seq = self.reader.cursor, self.reader.next_seq
        self.lost_at_ck = 0

    @staticmethod
    def _cut(path: Path, size: int) -> None:
        try:
            if path.stat().st_size > size:
                os.truncate(path, size)
        except FileNotFoundError:
            pass

    def _stream_dir(self, stream: str) -> str:
        got = self._dir_of.get(stream)
        if got is None:
            name, reason = recording.stream_dir(stream)
            if name not in self.stream_dirs:
                if len(self.stream_dirs) >= recording.MAX_STREAM_DIRS:
                    name, reason = recording.OVERFLOW_DIR, "too_many_streams"
                self.stream_dirs.add(name)
            if reason is not None:
                log.warning("%s: stream %r recorded under %s/ (%s)", self.venue, stream[:120], name, reason)
            if len(self._dir_of) >= 4096:      # a venue inventing names: keep the cache bounded
                self._dir_of.clear()
            got = self._dir_of[stream] = (name, reason)
        if got[1] is not None:
            self.renamed[got[1]] = self.renamed.get(got[1], 0) + 1
        return got[0]

    # --- the loop body ---------------------------------------------------------------------------
    def poll(self, now: float) -> int:
        if self.error is not None and now < self.retry_at:
            return 0
        frames = self.reader.read()
        run = self.reader.ring_id
        rotate, top, period_file = self.rotate_sec, self.top_sec, None
        for f in frames:
            p = max(recording.period_start_sec(f.ts_recv_ns, rotate), top)
            if p != top or period_file is None:
                top, period_file = p, recording.period_file(p)
            path = self.dir / self._stream_dir(f.stream) / period_file
            lines = self.pending.get(path)
            if lines is None:
                lines = self.pending[path] = []
            lines.append(recording.encode_line(f.seq, f.ts_recv_ns, f.conn, f.stream, f.payload, f.meta, run))
        self.top_sec = top
        if frames and not self.n_pending:
            self.first_pending = now
        self.n_pending += len(frames)
        drained = self.ring_replaced and not frames
        if self.n_pending and (self.n_pending >= self.s.record.buffer_frames
                               or now - self.first_pending >= self.s.record.record_flush_sec
                               or self.error is not None or drained):
            self.flush(now)
        elif not self.n_pending and self.reader.lost != self.lost_at_ck:
            self.flush(now)                    # a loss with nothing to write: checkpoint the count
        if drained and not self.n_pending and self.error is None:
            self._remap()
        return len(frames)

    def _remap(self) -> None:
        """The old ring is drained and checkpointed: record the segment now under its name."""
        old = self.reader
        try:
            self._open_reader()
        except (OSError, ValueError) as exc:   # being replaced again, or gone: the next poll retries
            log.debug("re-opening %s: %s", self.ring_path, exc)
            return
        self.ring_replaced = False
        self.replacements += 1
        log.warning("recording %s: frame ring %s was replaced (%d -> %d bytes): old one drained, "
                    "now recording the new one (%d frames in it, %d out of reach, counted as lost)",
                    self.venue, self.ring_path.name, old.capacity, self.reader.capacity,
                    self.reader.frames_written, self.reader.lost)
        old.close()

    def flush(self, now: float) -> bool:
        written: dict[str, int] = {}
        try:
            dirs: set[Path] = set()            # directories with an entry new since the last fsync
            for path, lines in self.pending.items():
                rel = str(path.relative_to(self.dir))
                if not path.parent.is_dir():
                    path.parent.mkdir()
                    dirs.add(self.dir)
                member = gzip.compress(b"".join(lines), compresslevel=6, mtime=0)
                created = _append_durable(path, member)
                written[rel] = self.sizes.get(rel, 0) + len(member)
                if created:
                    dirs.add(path.parent)
            for d in dirs:
                recording.fsync_dir(d)
            lost = self.reader.lost            # since this reader (re)started at the checkpoint
            recorded = self.totals["recorded"] + self.n_pending
            total_lost = self.totals["lost"] + lost - self.lost_at_ck
            files = {rel: size for rel, size in {**self.sizes, **written}.items()
                     if (recording.file_period_sec(rel.rsplit("/", 1)[-1]) or 0) >= self.top_sec}
            doc = {"run": self.reader.ring_id, "cursor": self.reader.cursor,
                   "next_seq": self.reader.next_seq, "recorded": recorded, "lost": total_lost,
                   "open_period_sec": self.top_sec, "files": files, "ts_ns": time.time_ns()}
            recording.save_checkpoint(self.dir, doc)
        except OSError as exc:
            self._failed(exc, written, now)
            return False
        self.bytes_written += sum(written[r] - self.sizes.get(r, 0) for r in written)
        self.sizes = files
        self.totals = {"recorded": recorded, "lost": total_lost}
        self.lost_at_ck = lost
        self.ck_cursor, self.ck_next_seq, self.ck_top_sec = self.reader.cursor, self.reader.next_seq, self.top_sec
        self.pending.clear()
        self.n_pending = 0
        self.flushes += 1
        if self.error is not None:
            log.warning("recording %s works again after: %s", self.venue, self.error)
            self.error = None
        return True

    def _failed(self, exc: OSError, written: dict[str, int], now: float) -> None:
        msg = f"cannot write {self.dir}: {exc.strerror or exc} (errno {exc.errno})"
        if msg != self.error:
            log.error("recording %s stopped: %s; feeds keep running, retrying every %.0f s",
                      self.venue, msg, RETRY_SEC)
        self.error = msg
        self.write_errors += 1
        self.retry_at = now + RETRY_SEC
        for rel in written:                    # partial members out: back to the checkpoint
            try:
                self._cut(self.dir / rel, self.sizes.get(rel, 0))
                if self.sizes.get(rel, 0) == 0:
                    (self.dir / rel).unlink(missing_ok=True)
            except OSError:
                pass
        self.pending.clear()
        self.n_pending = 0
        self.top_sec = self.ck_top_sec
        # the ring holds the frames: read them again later, from this mapping (the name may
        # already be another segment's)
        self.reader.rewind(self.ck_cursor, self.ck_next_seq, self.lost_at_ck)

    def report(self) -> dict:
        ring_frames = self.reader.frames_written
        lost = self.totals["lost"] + (self.reader.lost - self.lost_at_ck)
        return {"ring_frames": ring_frames, "recorded": self.totals["recorded"], "lost": lost,
                "pending": self.n_pending, "lag_frames": ring_frames - self.ck_next_seq,
                "error": self.error, "flushes": self.flushes, "bytes_written": self.bytes_written,
                "write_errors": self.write_errors, "stream_names": dict(self.renamed),
                "ring_bytes": self.reader.capacity, "ring_replaced": self.replacements,
                "checkpoint_files": len(self.sizes), "dir": str(self.dir)}


class Recorder:
    def __init__(self, s: Settings):
        self.s = s
        self.registry = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
        self.hb = Heartbeat(self.registry, "recorder")
        self.venues: dict[Path, VenueRecorder] = {}
        self.scan_error: str | None = None
        self._stop = False

    def scan(self) -> None:
        for path in sorted(Path(self.s.ipc.shm_dir).glob(names.frame_ring_glob(self.s.ipc.shm_prefix))):
            known = self.venues.get(path)
            if known is not None:
                if not known.ring_replaced and known.reader.replaced():
                    known.ring_replaced = True     # re-mapped by its poll once the old one is drained
                continue
            venue = names.frame_ring_venue(path.name)
            try:
                self.venues[path] = VenueRecorder(self.s, path, venue)
                self.scan_error = None
                log.info("recording %s from %s into %s", venue, path.name, self.venues[path].dir)
            except (OSError, CheckpointUnreadable) as exc:
                msg = f"cannot record {venue} into {self.s.record.record_dir}: {getattr(exc, 'strerror', None) or exc}"
                if msg != self.scan_error:
                    log.error("%s", msg)
                self.scan_error = msg
            except ValueError as exc:          # a segment being created: next scan
                log.debug("skipping %s: %s", path, exc)

    def beat(self, stopped: bool = False) -> None:
        rep = {v.venue: v.report() for v in self.venues.values()}
        errors = [f"{k}: {r['error']}" for k, r in rep.items() if r["error"]]
        if self.scan_error:
            errors.append(self.scan_error)
        # a hole in this run's recording stays an alert until a new run: it is in the files for good
        losses = [f"{k}: {r['lost']} frames lost (the frame ring lapped the recorder)"
                  for k, r in rep.items() if r["lost"]]
        counters = {"frames_recorded": sum(r["recorded"] for r in rep.values()),
                    "frames_lost": sum(r["lost"] for r in rep.values()),
                    "frames_pending": sum(r["pending"] for r in rep.values()),
                    "bytes_written": sum(r["bytes_written"] for r in rep.values()),
                    "write_errors": sum(r["write_errors"] for r in rep.values()),
                    "stream_names_changed": sum(sum(r["stream_names"].values()) for r in rep.values()),
                    "ring_replaced": sum(r["ring_replaced"] for r in rep.values()),
                    "disk_ok": 0 if errors else 1}
        extra = {"stopped": True} if stopped else {}
        self.hb.beat(counters, recording=rep, alert="; ".join(errors + losses) or None, **extra)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        next_scan = next_beat = 0.0
        while not self._stop:
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                next_scan = now + SCAN_SEC
            busy = sum(v.poll(now) for v in self.venues.values())
            if now >= next_beat:
                self.beat()
                next_beat = now + 0.5
            if not busy:
                time.sleep(POLL_SEC)
        for v in self.venues.values():         # a clean stop leaves nothing pending
            while v.poll(time.monotonic() + 1e9):
                pass
            if v.n_pending:
                v.flush(time.monotonic())
        self.beat(stopped=True)

    def stop(self) -> None:
        self._stop = True


def main(settings: Settings) -> None:
    Recorder(settings).run()
