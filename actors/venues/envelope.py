"""The one envelope every venue parser speaks: `Decoded`, `FrameError`, `fail`, and the `ConnPlan`
that says which connection carries which streams.

Invariants:
- a parser returns `Decoded(kind, stream, recs)`: `recs` is a tuple of records, so a frame that
  carries several records (an RTDS snapshot) and one that carries one (a Binance trade: a 1-tuple)
  go through the same single loop of the feed shell;
- for a data kind (a key of ipc.schema.DTYPES) every element of `recs` is a plain tuple in that
  dtype's field order; for 'ack'/'error' `recs` holds the decoded message; for 'unknown' and
  'control' it is empty;
- a frame that cannot be decoded raises `FrameError` (a ValueError), built by `fail`, which quotes
  at most FRAME_SNIPPET bytes of it;
- a frame that decodes but carries a value no venue sends (a price <= 0, NaN, inf or over
  MAX_PRICE, a quantity < 0 or over MAX_QTY, a crossed quote, a boolean sent as a string) raises
  `Rejected`, a FrameError whose `reason` is '<kind>:<field>' (e.g. 'trade:price') from a closed
  set (record kinds and field names of the parsers, never text of the frame): a decoder raises
  `BadValue(field, value)`, and `field_error(kind, ...)` turns it into the Rejected; the feed shell
  counts rejects per reason (`rejected`) and no rejected record reaches a ring; `load_json` is the JSON prelude every text venue shares
  (FrameError when not JSON), and `control_text` recognises the bare control texts ('', 'PING',
  'PONG', whitespace aside) some venues send outside JSON; the Binance parser keeps its own inline
  copy of the prelude, because it is the hot path and a function call per frame costs throughput;
- this module is the venue layer's: the I/O shell imports it, never the other way round.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import orjson

__all__ = ["FIELD_ERRORS", "field_error", "FrameError", "Rejected", "BadValue", "MAX_PRICE", "MAX_QTY",
           "Decoded", "fail", "load_json", "control_text", "ConnPlan", "FRAME_SNIPPET"]

FRAME_SNIPPET = 200

# Sanity bounds shared by the parsers. A price above a trillion quote units has never been quoted
# (BTC against the weakest fiat quotes trades near 1e9); a quantity above 1e16 exceeds the total
# supply of any listed coin (the largest, BTTC, is about 1e15). Both keep p·q and a day's sums
# far from float overflow, so nothing downstream meets an inf it did not expect.
MAX_PRICE = 1e12
MAX_QTY = 1e16


class FrameError(ValueError):
    """A frame that cannot be decoded: not JSON, a wrong shape, a missing or unparsable field."""


class Rejected(FrameError):
    """A frame that decoded but carries an insane value; `reason` is '<kind>:<field>'."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class BadValue(ValueError):
    """A decoder's verdict on one field that parsed but is insane; `field` names it (a constant of
    the parser, e.g. 'price', 'qty', 'm', 'crossed')."""

    def __init__(self, field: str, value: object):
        super().__init__(f"{field} {value!r}"[:FRAME_SNIPPET])
        self.field = field


class Decoded(NamedTuple):
    kind: str      # a key of ipc.schema.DTYPES, or 'ack', 'error', 'control', 'unknown' (venue kinds too)
    stream: str    # the venue's stream name; '' when the frame names none
    recs: tuple    # record tuples (data kinds), (message,) for ack/error, () otherwise


def fail(why: str, frame: bytes | str) -> FrameError:
    """A FrameError saying `why`, quoting the start of `frame`."""
    return FrameError(f"{why}: {frame[:FRAME_SNIPPET]!r}")


# What a typed decoder raises on a missing or unparsable field; a parser catches exactly these
# around its decoder and turns them into a FrameError with `field_error`.
FIELD_ERRORS = (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError)


def field_error(what: str, exc: BaseException, frame: bytes | str) -> FrameError:
    """The FrameError for a decoder's FIELD_ERRORS exception: '<what>: missing field …' or 'bad field',
    or, for a BadValue, the Rejected with reason '<what>:<field>'."""
    if isinstance(exc, BadValue):
        return Rejected(f"{what}:{exc.field}", f"{what}: insane value ({exc}): {frame[:FRAME_SNIPPET]!r}")
    if isinstance(exc, KeyError):
        return fail(f"{what}: missing field {exc}", frame)
    return fail(f"{what}: bad field ({exc})", frame)


def load_json(frame: bytes | str) -> object:
    """The frame's JSON value; FrameError (quoting the frame) when it is not JSON."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise fail(f"not JSON ({exc})", frame) from None
    except TypeError:
        raise FrameError(f"frame is {type(frame).__name__}, not bytes or str") from None


_CONTROL_STR = {"": "", "PING": "PING", "PONG": "PONG"}
_CONTROL_BYTES = {b"": "", b"PING": "PING", b"PONG": "PONG"}


def control_text(frame: bytes | str) -> str | None:
    """'', 'PING' or 'PONG' when the frame is only that text (surrounding whitespace aside), else
    None; FrameError when the frame is neither bytes nor str."""
    if type(frame) is str:
        return _CONTROL_STR.get(frame.strip())
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return _CONTROL_BYTES.get(bytes(frame).strip())    # bytes: no copy unless it has whitespace
    raise FrameError(f"frame is {type(frame).__name__}, not bytes or str")


@dataclass(frozen=True)
class ConnPlan:
    name: str                  # e.g. "market", "public"
    url: str
    streams: tuple[str, ...]   # venue stream names carried by this connection
    subscribe: tuple[bytes, ...] = ()   # text messages sent right after each (re)connect
    stale_sec: float | None = None      # no frame at all for this long: replace it (None: FEED_STALE_SEC)
