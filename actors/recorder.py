"""The `recorder` actor: drains every feed's raw-frame ring to compressed files (ipc/recording.py).

Invariants:
- lossless and exactly once: a flush appends one gzip member per file, then atomically writes the
  venue's checkpoint (ring incarnation, byte cursor, next seq, file sizes, totals). On start the
  recorder cuts every file back to its checkpointed size and resumes the ring at the checkpointed
  cursor, so frames written after the last checkpoint by a killed recorder are written once more
  and never twice. `recorded + lost` equals the frames the feed put in the ring; `lost` is non-zero
  only if the ring lapped the recorder (it is sized for minutes of data) and is reported.
- the feeds never wait for the recorder: they append to their ring whatever happens here.
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


class VenueRecorder:
    """One feed's ring → files under RECORD_DIR/<venue>/."""

    def __init__(self, s: Settings, ring_path: Path, venue: str):
        self.s, self.venue, self.ring_path = s, venue, ring_path
        self.dir = Path(s.record.record_dir) / venue
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pending: dict[Path, list[bytes]] = {}
        self.n_pending = 0
        self.first_pending = 0.0
        self.error: str | None = None
        self.retry_at = 0.0
        self.write_errors = self.flushes = self.bytes_written = 0
        self._open_reader()

    def _open_reader(self) -> None:
        """At the checkpoint of this ring incarnation, after cutting the files back to it."""
        probe = FrameRingReader(self.ring_path, start=0)
        ck = recording.load_checkpoint(self.dir)
        self.sizes: dict[str, int] = {}
        if ck is not None:
            for rel, size in ck["files"].items():
                self._cut(self.dir / rel, size)
                self.sizes[rel] = size
            for f in recording.venue_files(Path(self.s.record.record_dir), self.venue):
                rel = str(f.relative_to(self.dir))
                if rel not in self.sizes:      # created after the last checkpoint
                    f.unlink()
        same_run = ck is not None and ck["run"] == probe.ring_id
        # totals are per ring incarnation: they compare with that ring's frame count
        self.totals = {k: ck[k] for k in ("recorded", "lost")} if same_run else {"recorded": 0, "lost": 0}
        if same_run:
            probe.close()
            self.reader = FrameRingReader(self.ring_path, start=ck["cursor"], next_seq=ck["next_seq"])
        else:                                  # a new ring: from its oldest frame
            probe.close()
            self.reader = FrameRingReader(self.ring_path)
        self.ck_cursor, self.ck_next_seq = self.reader.cursor, self.reader.next_seq
        self.lost_at_ck = 0

    @staticmethod
    def _cut(path: Path, size: int) -> None:
        try:
            if path.stat().st_size > size:
                os.truncate(path, size)
        except FileNotFoundError:
            pass

    # --- the loop body ---------------------------------------------------------------------------
    def poll(self, now: float) -> int:
        if self.error is not None and now < self.retry_at:
            return 0
        frames = self.reader.read()
        run = self.reader.ring_id
        for f in frames:
            path = self.dir / recording.safe_stream(f.stream) / recording.period_name(
                f.ts_recv_ns, self.s.record.record_rotate_sec)
            lines = self.pending.get(path)
            if lines is None:
                lines = self.pending[path] = []
            lines.append(recording.encode_line(f.seq, f.ts_recv_ns, f.conn, f.stream, f.payload, f.meta, run))
        if frames and not self.n_pending:
            self.first_pending = now
        self.n_pending += len(frames)
        if self.n_pending and (self.n_pending >= self.s.record.buffer_frames
                               or now - self.first_pending >= self.s.record.record_flush_sec
                               or self.error is not None):
            self.flush(now)
        elif not self.n_pending and self.reader.lost != self.lost_at_ck:
            self.flush(now)                    # a loss with nothing to write: checkpoint the count
        return len(frames)

    def flush(self, now: float) -> bool:
        written: dict[str, int] = {}
        try:
            for path, lines in self.pending.items():
                rel = str(path.relative_to(self.dir))
                path.parent.mkdir(parents=True, exist_ok=True)
                member = gzip.compress(b"".join(lines), compresslevel=6, mtime=0)
                with open(path, "ab") as fh:
                    fh.write(member)
                written[rel] = self.sizes.get(rel, 0) + len(member)
            lost = self.reader.lost            # since this reader (re)started at the checkpoint
            recorded = self.totals["recorded"] + self.n_pending
            total_lost = self.totals["lost"] + lost - self.lost_at_ck
            doc = {"run": self.reader.ring_id, "cursor": self.reader.cursor,
                   "next_seq": self.reader.next_seq, "recorded": recorded, "lost": total_lost,
                   "files": {**self.sizes, **written}, "ts_ns": time.time_ns()}
            recording.save_checkpoint(self.dir, doc)
        except OSError as exc:
            self._failed(exc, written, now)
            return False
        self.bytes_written += sum(written[r] - self.sizes.get(r, 0) for r in written)
        self.sizes.update(written)
        self.totals = {"recorded": recorded, "lost": total_lost}
        self.lost_at_ck = lost
        self.ck_cursor, self.ck_next_seq = self.reader.cursor, self.reader.next_seq
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
        self.reader.close()                    # the ring holds the frames: read them again later
        self.reader = FrameRingReader(self.ring_path, start=self.ck_cursor, next_seq=self.ck_next_seq)
        self.reader.lost = self.lost_at_ck

    def report(self) -> dict:
        ring_frames = self.reader.frames_written
        lost = self.totals["lost"] + (self.reader.lost - self.lost_at_ck)
        return {"ring_frames": ring_frames, "recorded": self.totals["recorded"], "lost": lost,
                "pending": self.n_pending, "lag_frames": ring_frames - self.ck_next_seq,
                "error": self.error, "flushes": self.flushes, "bytes_written": self.bytes_written,
                "write_errors": self.write_errors, "dir": str(self.dir)}


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
            if path in self.venues:
                continue
            venue = names.frame_ring_venue(path.name)
            try:
                self.venues[path] = VenueRecorder(self.s, path, venue)
                self.scan_error = None
                log.info("recording %s from %s into %s", venue, path.name, self.venues[path].dir)
            except OSError as exc:
                msg = f"cannot record {venue} into {self.s.record.record_dir}: {exc.strerror or exc}"
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
        counters = {"frames_recorded": sum(r["recorded"] for r in rep.values()),
                    "frames_lost": sum(r["lost"] for r in rep.values()),
                    "frames_pending": sum(r["pending"] for r in rep.values()),
                    "bytes_written": sum(r["bytes_written"] for r in rep.values()),
                    "write_errors": sum(r["write_errors"] for r in rep.values()),
                    "disk_ok": 0 if errors else 1}
        extra = {"stopped": True} if stopped else {}
        self.hb.beat(counters, recording=rep, alert="; ".join(errors) or None, **extra)

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
