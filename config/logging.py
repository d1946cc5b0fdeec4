"""JSON logging for every actor: one JSON object per line on stderr, with the actor's name.

supervisord captures each program's stderr into its own rotated log file, so actors never manage
log files themselves.

Invariants:
- every line is one JSON object with `ts` (UTC, RFC 3339 with milliseconds and a `Z`:
  `2026-12-02T16:33:15.669Z`, taken from the record's creation time), `level`, `actor`, `name`
  (the logger) and `message`, plus the record's `extra=` fields as JSON fields (connection
  events carry `url`, `venue` and `stream`/`streams`: `conn_fields`);
- a `url` field is always redacted (`redact_url`: a password in the userinfo, and the value of a
  query parameter whose name looks like a credential, become `***`), whoever logged it;
- httpx and httpcore log at WARNING at least (at INFO httpx logs every request), websockets too.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from urllib.parse import urlsplit, urlunsplit

from pythonjsonlogger.json import JsonFormatter

# loggers that speak for every request or connection attempt at INFO
QUIET_LOGGERS = ("websockets", "httpx", "httpcore")
# a query parameter whose name matches this carries a credential
_SECRET_PARAM = re.compile(r"key|token|secret|sig|pass|auth|cred|session", re.I)
REDACTED = "***"


def redact_url(url: str) -> str:
    """`url` with its credentials replaced by `***`: the userinfo's password (or a lone user, which
    is often a token) and the value of every query parameter named like a credential."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if sep else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, sep, _ = pair.partition("=")
            pairs.append(f"{name}={REDACTED}" if sep and _SECRET_PARAM.search(name) else pair)
        query = "&".join(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def conn_fields(url: str, venue: str, streams=None, **more) -> dict:
    """The `extra=` of a connection event: `url` (redacted), `venue`, `streams` (a list) or, for
    one stream, `stream`; `more` adds further fields (error, attempt, retry_in_sec, ...)."""
    out = {"url": redact_url(url), "venue": venue}
    if isinstance(streams, str):
        out["stream"] = streams
    elif streams is not None:
        out["streams"] = list(streams)
    out.update(more)
    return out


def rfc3339_utc(epoch_s: float) -> str:
    """`epoch_s` as UTC RFC 3339 with milliseconds: 2026-12-02T16:33:15.669Z (truncated, not
    rounded, so a line is never stamped later than it was made)."""
    sec, ms = divmod(int(epoch_s * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ms:03d}Z"


class _UtcJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339_utc(record.created)


class _ActorFilter(logging.Filter):
    def __init__(self, actor: str):
        super().__init__()
        self.actor = actor

    def filter(self, record: logging.LogRecord) -> bool:
        record.actor = self.actor
        url = getattr(record, "url", None)
        if isinstance(url, str):
            record.url = redact_url(url)
        return True


def json_handler(actor: str, stream=None) -> logging.Handler:
    """The one handler every actor logs through (`stream`: sys.stderr unless given)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_UtcJsonFormatter(
        "%(asctime)s %(levelname)s %(actor)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level"}, timestamp=False))
    handler.addFilter(_ActorFilter(actor))
    return handler


def setup_logging(actor: str, level: str = "INFO", stream=None) -> logging.Logger:
    root = logging.getLogger()
    root.handlers[:] = [json_handler(actor, stream)]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return logging.getLogger(actor)


class LogOnce:
    """Logs the first occurrence of each key, then only counts (a bad frame must not flood logs)."""

    def __init__(self, logger: logging.Logger, limit: int = 1):
        self.log, self.limit, self.counts = logger, limit, {}

    def __call__(self, key: str, msg: str, *args, extra: dict | None = None) -> None:
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n <= self.limit:
            self.log.warning(msg, *args, extra=extra)
