"""JSON logging for every actor: one JSON object per line on stderr, with the actor's name.

supervisord captures each program's stderr into its own rotated log file, so actors never manage
log files themselves.
"""
from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class _ActorFilter(logging.Filter):
    def __init__(self, actor: str):
        super().__init__()
        self.actor = actor

    def filter(self, record: logging.LogRecord) -> bool:
        record.actor = self.actor
        return True


def setup_logging(actor: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(actor)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level"}, timestamp=False))
    handler.addFilter(_ActorFilter(actor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs every connection attempt at INFO; keep our own lines readable
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
    return logging.getLogger(actor)


class LogOnce:
    """Logs the first occurrence of each key, then only counts (a bad frame must not flood logs)."""

    def __init__(self, logger: logging.Logger, limit: int = 1):
        self.log, self.limit, self.counts = logger, limit, {}

    def __call__(self, key: str, msg: str, *args) -> None:
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n <= self.limit:
            self.log.warning(msg, *args)
