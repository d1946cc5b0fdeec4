"""Decision log: one JSON line per decision, in `<dir>/decisions-<tag>-YYYY-MM-DD.jsonl`.

Each series' edge engine has its own log, tagged `<asset>-<series>`
(`DECISION_LOG_DIR/decisions-btc-15m-2026-12-02.jsonl`); a log without a tag writes
`decisions-YYYY-MM-DD.jsonl`. Readers (calibrate, the backtest) glob `decisions-*.jsonl`.

Invariants:
- the file is chosen by the UTC date of the decision's own timestamp (`ts_ns` argument, else the
  record's "ts_ns", else now), so it rotates at UTC midnight and replays land in the right file;
- every line is flushed as it is written (a crash loses at most the line being written);
- `write` never raises: an unwritable directory, a full disk or an unserializable record is
  counted (`errors`, `last_error`) and logged at most once per `log_every_sec`, and the next write
  tries again (reopening the file);
- the directory is created on first use; `close()` closes the current file.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone

import orjson

from ipc import clock

log = logging.getLogger(__name__)

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def day_of(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%d")


class DecisionLog:
    def __init__(self, dir: str = "data/decisions", log_every_sec: float = 60.0, tag: str | None = None):
        self.dir = str(dir)
        self.stem = f"decisions-{tag}" if tag else "decisions"
        self.log_every_sec = log_every_sec
        self._f = None
        self._day: str | None = None
        self.lines = 0
        self.errors = 0
        self.rotations = 0
        self.last_error: str | None = None
        self._last_log = float("-inf")

    def path_for(self, day: str) -> str:
        return os.path.join(self.dir, f"{self.stem}-{day}.jsonl")

    @property
    def path(self) -> str | None:
        return None if self._day is None else self.path_for(self._day)

    def _error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._last_log >= self.log_every_sec:
            self._last_log = now
            log.error("decision log %s (errors so far: %d)", self.last_error, self.errors)

    def _open(self, day: str) -> None:
        if self._f is not None:
            self._close_quiet()
            self.rotations += 1
        os.makedirs(self.dir, exist_ok=True)
        self._f = open(self.path_for(day), "ab")
        self._day = day

    def _close_quiet(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError as e:
                self._error("close", e)

    def write(self, record: dict, ts_ns: int | None = None) -> bool:
        """Append one record; True if written. Never raises."""
        try:
            if ts_ns is None:
                ts_ns = record.get("ts_ns") if isinstance(record, dict) else None
            if ts_ns is None:
                ts_ns = clock.now_ns()
            line = orjson.dumps(record, option=_OPTS)
        except (TypeError, ValueError, orjson.JSONEncodeError) as e:
            self._error("serialize", e)
            return False
        try:
            day = day_of(int(ts_ns))
            if self._f is None or day != self._day:
                self._open(day)
            self._f.write(line)
            self._f.flush()
        except (OSError, ValueError, OverflowError) as e:
            self._error(f"write to {self.dir}", e)
            self._close_quiet()
            self._day = None
            return False
        self.lines += 1
        return True

    def stats(self) -> dict:
        return {"dir": self.dir, "path": self.path, "lines": self.lines, "errors": self.errors,
                "rotations": self.rotations, "last_error": self.last_error}

    def close(self) -> None:
        self._close_quiet()
        self._day = None
