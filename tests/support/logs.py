"""The actors' real JSON log output, captured: config.logging.setup_logging writing to a buffer,
parsed back line by line; the root logger (and the quieted loggers) restored afterwards."""
from __future__ import annotations

import contextlib
import io
import json
import logging

from config.logging import QUIET_LOGGERS, setup_logging


class JsonLines:
    def __init__(self, buf: io.StringIO):
        self.buf = buf

    @property
    def text(self) -> str:
        return self.buf.getvalue()

    def records(self) -> list[dict]:
        """Every line as JSON (a line that is not one object fails the test right here)."""
        return [json.loads(line) for line in self.text.splitlines()]

    def find(self, **fields) -> list[dict]:
        return [r for r in self.records() if all(r.get(k) == v for k, v in fields.items())]


@contextlib.contextmanager
def json_logs(actor: str = "test", level: str = "INFO"):
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
    buf = io.StringIO()
    setup_logging(actor, level, stream=buf)
    try:
        yield JsonLines(buf)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for n, lvl in saved[2].items():
            logging.getLogger(n).setLevel(lvl)
