"""Polymarket in `run.py export`: the recorded CLOB frames and REST answers replayed through the
feed's own pure book state machine (actors.venues.polymarket.session.Session), in recorded order
and on recorded time, to give the POLY_BOOK / POLY_TRADE records the feed wrote and the windows'
metadata.

What a `poly` recording holds (actors.feed_poly): the CLOB WebSocket frames (conn `market`,
stream `book_<series>` / `trade_<series>` by what they updated, `_control` for PONGs,
`_malformed` for what the feed could not parse), and every REST answer it received (conn `rest`,
stream `gamma` or `clob`, meta `"<service> <status> <path?query>"`): Gamma's `/markets?slug=` and
`/markets?condition_ids=` (the windows: tokens, times, fees, rule, price to beat, resolution) and
the CLOB's `/book?token_id=` (reconciliation and resync snapshots).

The replay does what the feed did with each:
- a Gamma answer (status 200) is parsed by gamma.parse_market for the slug / condition id it was
  asked for, named its series and asset by the slug (series.slug_candidates of its own start) and
  added with `Session.add_window` (its outcome prices when closed, as the feed does);
- a CLOB `/book` answer replaces the book as a resync when a resync of it is due (a best bid/ask
  mismatch earlier), else as a reconciliation (only when the levels differ);
- a WebSocket frame not under a `_` stream is decoded by clob.parse_frame and applied with
  `Session.on_msgs`;
- before each, the windows roll on the frame's receive time (`Session.roll`, at most every
  ROLL_SEC like the feed's roller, then `write_current` for a series whose window changed);
- a new `run` (the feed restarted) invalidates every book until its next snapshot
  (`Session.disconnected`).
Records keep the top MAX_LEVELS levels (the ring keeps TOPN). A window becomes current at the
first line at or after its start; the feed's roller did so up to ROLL_SEC later on its own timer,
so the first updates of a window may be records here that the feed folded into one snapshot. Window rows are emitted for `new`
and `updated` Gamma answers, each `current` window change and each `resolved` window.

Invariants: no second book implementation (OrderBook and Session are the feed's); a frame or
answer that does not parse raises ValueError for the caller to count; an answer for a window of
no followed series, or one whose settlement rule cannot be made, is counted, never guessed.
Not in a recording, so not replayed: the feed's reconnects within one run (the books then come
back with the venue's fresh snapshots, without the gap record the feed wrote in between).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ipc import names, recording
from ipc.schema import MAX_LEVELS

from actors.venues.polymarket import clob, gamma, series as series_mod
from actors.venues.polymarket.session import Session, outcome_prices

VENUE = names.POLY
ROLL_SEC = 0.1                   # the feed's roller period
GAMMA, CLOB = "gamma", "clob"    # the REST services feed_poly records (the `stream` of a REST answer)
UP_IS_YES = True                 # POLY_UP_IS_YES's default; up/down markets name Up/Down and never need it
DST_SLACK_SEC = 3600             # an ET-grid window is an hour off its length across a DST change
# every Polymarket ring by its stream (`book_15m`) -> (record kind, series)
_RING = {r.stream: (r.kind, r.series) for r in names.VENUE_RINGS[VENUE].values()}
_NS = 1_000_000_000


def _query(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}


def _gamma_info(body: bytes, target: str) -> gamma.WindowInfo:
    """The window of one Gamma answer, picked as the feed picked it (slug or condition id asked)."""
    _, q = _query(target)
    return gamma.parse_market(body, UP_IS_YES, q.get("slug"), want_condition=q.get("condition_ids"))


def name_window(info: gamma.WindowInfo, series: tuple[str, ...]) -> tuple[str, str] | None:
    """(series, asset) of a window by its slug: the followed series and asset whose slug
    candidates for the window's own start include it; None if none does."""
    for asset in names.ASSETS.values():
        for k in series:
            if info.slug in series_mod.slug_candidates(asset, k, info.start_s):
                return k, asset
    return None


def followed(root: Path) -> tuple[str, ...]:
    """The series a recording followed: those with a `book_<series>` or `trade_<series>` stream."""
    found = {_RING[p.name][1] for p in (Path(root) / VENUE).iterdir() if p.is_dir() and p.name in _RING}
    return tuple(k for k in names.POLY_SERIES if k in found)


def window_sec(series: str, recorded_sec: int) -> int:
    """The window length a series was followed with, from one recorded window's length: the
    series' own (its grid), which an ET-aligned window spanning a DST change misses by exactly an
    hour; any other length is a shortened one (POLYMARKET_WINDOW_SEC: plain multiples of it)."""
    sp = series_mod.spec(series)
    if recorded_sec == sp.length_sec or (sp.align != "utc" and abs(recorded_sec - sp.length_sec) == DST_SLACK_SEC):
        return sp.length_sec
    return recorded_sec


def window_secs(root: Path, series: tuple[str, ...]) -> tuple[str | None, dict[str, int]]:
    """(asset, series -> window length) of a recording, from its first Gamma answer of each series:
    the series' own length (its grid), unless the recorded windows are another length (the sim
    and tests shorten them: POLYMARKET_WINDOW_SEC). Reads only the `gamma` stream, and only until
    every series is seen."""
    asset, secs = None, {}
    for f in sorted((Path(root) / VENUE / recording.safe_stream(GAMMA)).glob(f"*{recording.SUFFIX}")):
        for rec in recording.iter_file(f):
            try:
                info = _gamma_info(recording.frame_bytes(rec), rec.get("meta", "  ").split(" ", 2)[2])
            except (ValueError, IndexError):
                continue
            named = name_window(info, series)
            if named is None or named[0] in secs:
                continue
            k, asset = named
            secs[k] = window_sec(k, info.window_sec)
            if len(secs) == len(series):
                return asset, secs
    return asset, secs


class PolyDecoder:
    """Replays one `poly` recording; records and window rows leave through `out`."""

    EXTRA = ("series",)          # record columns beyond the dtype's

    def __init__(self, root: Path, out):
        self.out = out
        self.series = followed(root)
        asset, secs = window_secs(root, self.series)
        self.asset = asset
        self.c: Counter = Counter()
        self.session = None
        if self.series:
            secs = {k: secs.get(k, series_mod.spec(k).length_sec) for k in self.series}
            self.session = Session(asset or "btc", secs, MAX_LEVELS, 1.0, self._write)
        self._next_roll_ns = 0
        self._run: str | None = None

    # --- the Session's output ------------------------------------------------------------------
    def _write(self, stream: str, rec: tuple, observe_age: bool) -> None:
        kind, series = _RING[stream]
        self.out.record(kind, rec, (series,))

    def _window(self, ts_ns: int, event: str, doc: dict | None) -> None:
        if doc is not None:
            self.out.window(ts_ns, event, doc)

    def _events(self, ts_ns: int) -> None:
        events, self.session.events = self.session.events, []
        for what, _k, doc in events:
            if what == "resolved":           # an `updated` event is the add_window answer's, already out
                self._window(ts_ns, what, doc)

    # --- input -------------------------------------------------------------------------------
    def frame(self, rec: dict) -> str:
        """Apply one recorded line; what it was (for the summary). ValueError if it does not parse."""
        ses = self.session
        if ses is None:
            return "no_series"
        ts = rec["ts_recv_ns"]
        run = rec.get("run", "")
        if self._run is not None and run != self._run:
            ses.disconnected(ts)             # a restarted feed: whatever came in between is unknown
        self._run = run
        if ts >= self._next_roll_ns:
            self._roll(ts)
        if rec["conn"] == "rest":
            return self._rest(rec, ts)
        stream = rec["stream"]
        if stream.startswith("_"):           # not applied by the feed (malformed) or control
            return stream
        ses.on_msgs(clob.parse_frame(recording.frame_bytes(rec), ts), ts)
        if ses.events:
            self._events(ts)
        return "clob"

    def _roll(self, ts: int) -> None:
        ses = self.session
        for k in ses.roll(ts / _NS):
            doc = ses.window_doc(k)
            if doc is not None:
                self._window(ts, "current", doc)
                ses.write_current(k, ts)
        if ses.events:
            self._events(ts)
        self._next_roll_ns = ts + int(ROLL_SEC * _NS)

    def _rest(self, rec: dict, ts: int) -> str:
        try:
            service, status, target = rec["meta"].split(" ", 2)
        except (KeyError, ValueError):
            raise ValueError(f"a REST answer without '<service> <status> <target>' meta: {rec.get('meta')!r}")
        if status != "200":
            return f"{service}_{status}"     # the feed did nothing with it either
        body = recording.frame_bytes(rec)
        if service == GAMMA:
            return self._gamma(body, target, ts)
        if service == CLOB and _query(target)[0] == "/book":
            snap = clob.parse_rest_book(body, ts)
            ses = self.session
            if snap.asset_id in ses.resyncs_due(ts):
                ses.resync(snap.asset_id, snap, ts)
            else:
                ses.reconcile(snap.asset_id, snap, ts)
            return "clob_book"
        return f"{service}_other"

    def _gamma(self, body: bytes, target: str, ts: int) -> str:
        try:
            info = _gamma_info(body, target)
        except gamma.MarketNotFound:
            return "gamma_not_found"         # not listed yet: the feed asks again
        named = name_window(info, self.series)
        if named is None:
            return "gamma_other_window"
        info = info._replace(series=named[0], asset=named[1])
        ses = self.session
        try:
            what = ses.add_window(info, ts, outcome_prices(body, info) if info.closed else None)
        except ValueError:
            return "gamma_no_rule"           # a settlement rule the feed cannot follow: a lookup error
        if what in ("new", "updated"):
            self._window(ts, what, ses.doc_of(info))
        if ses.events:
            self._events(ts)
        return "gamma"

    def summary(self) -> dict:
        return {"series": list(self.series), "asset": self.asset,
                "session": dict(self.session.c) if self.session is not None else {}}
