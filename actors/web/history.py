"""The dashboard's history endpoints: `GET /history/window` and `GET /history/market`.

They read compute's history rings (ipc.names.window_history_ring, MARKET_HISTORY_RING; records of
actors/decide/history.py) so that a page opened mid-window is complete.

Invariants:
- each request takes a fresh `RingReader(from_oldest)` snapshot: at most the ring's capacity of
  records, copied once; it never blocks and never waits on compute; gap records are skipped;
- `series` is validated as everywhere (actors/api.series_param: 400 not a series, 404 not
  followed); without it the one followed series is meant, and with several followed it is a 400;
  no sample yet is a 503;
- the window answered is the latest sample's: the trailing run of records with its
  `window_start_ns` (samples of an earlier stretch of the same id, e.g. two windowless gaps, are
  not merged in); `complete` is false when its samples do not reach back to the window's start
  (the ring lapped, or compute started or restarted after the start: first sample more than
  START_SLACK after it);
- columns hold at most MAX_POINTS points, decimated evenly (the first and last kept); `slices` are
  never decimated; `events` (the samples where decision, action or vetoes change, the first
  included) are the newest MAX_EVENTS (a veto flapping every tick of a long window would make
  tens of thousands), `events_dropped` says how many older ones were left out; NaN is null;
- the answer is built off the event loop (asyncio.to_thread): a worst-case window (a full ring)
  takes tens of ms of Python, and the worker's other connections go on meanwhile.
"""
from __future__ import annotations

import asyncio
import functools

import falcon
import numpy as np
import orjson

from config.settings import Settings
from ipc import clock, names
from ipc.ring import RingReader
from ipc.schema import FLAG_GAP, RING_DTYPES

from actors.api import series_param
from actors.decide.history import ACTIONS, DECISIONS, QUALITY_MODES, SLICE_SIDES, code_name, veto_codes

MAX_POINTS = 2000
MAX_EVENTS = 2000
START_SLACK_NS = 2_000_000_000     # a first sample this close to the window's start is its start
MINUTES_DEFAULT, MINUTES_MAX = 15, 240
NS_PER_MIN = 60_000_000_000

# the window columns: (name in the answer, record field) in the answer's order; mids are derived
WINDOW_COLUMNS = ("binance", "chainlink", "settlement", "price_to_beat", "fair_up", "up_bid", "up_ask", "up_mid",
                  "down_bid", "down_ask", "down_mid", "edge_up", "edge_down", "roc_up", "roc_down",
                  "buffer", "time_left_s")
MARKET_COLUMNS = ("futures", "spot", "futures_mid", "spot_mid", "cvd_futures", "cvd_spot",
                  "basis_bps", "mark", "liq_long_usd", "liq_short_usd")


def _json(resp, doc: dict) -> None:
    resp.data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    resp.content_type = falcon.MEDIA_JSON


def _no_data(what: str) -> falcon.HTTPError:
    return falcon.HTTPServiceUnavailable(title="no data yet", description=f"compute has no {what} sample yet")


def snapshot(settings: Settings, ring: names.Ring) -> tuple[np.ndarray, bool]:
    """(the ring's data records, oldest first; whether records before the oldest were lost)."""
    r = RingReader(settings.ipc.shm_dir, ring.name(settings.ipc.shm_prefix, settings.general.symbol),
                   RING_DTYPES[ring.kind], from_oldest=True)
    lapped = r.cursor > 0
    recs = r.read()
    lapped = lapped or r.overrun > 0
    return recs[(recs["flags"] & FLAG_GAP) == 0], lapped


def decimate(n: int, max_points: int = MAX_POINTS) -> np.ndarray | slice:
    """Indices of at most `max_points` of `n` points, evenly spread, the first and last kept."""
    if n <= max_points:
        return slice(None)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


@functools.lru_cache(maxsize=256)
def _codes(mask: int) -> tuple[str, ...]:
    """A mask's codes, shared by every event with that mask (hence immutable)."""
    return tuple(veto_codes(mask))


def window_doc(recs: np.ndarray, lapped: bool, series: str, slug: str | None, now_ns: int) -> dict:
    """The /history/window answer from a window ring's data records (module docstring)."""
    start = int(recs["window_start_ns"][-1])
    other = np.flatnonzero(recs["window_start_ns"] != start)
    first = int(other[-1]) + 1 if len(other) else 0
    w = recs[first:]
    cols = {"ts_ns": w["ts_recv_ns"]}
    for name in WINDOW_COLUMNS:
        if name.endswith("_mid"):
            side = name[:-len("_mid")]
            cols[name] = (w[f"{side}_bid"] + w[f"{side}_ask"]) / 2.0
        else:
            cols[name] = w[name]
    pick = decimate(len(w))
    columns = {k: v[pick].tolist() for k, v in cols.items()}
    dec, act, veto = w["decision"], w["action"], w["veto_mask"]
    changed = np.ones(len(w), dtype=bool)
    changed[1:] = (dec[1:] != dec[:-1]) | (act[1:] != act[:-1]) | (veto[1:] != veto[:-1])
    e = w[changed]
    dropped = max(0, len(e) - MAX_EVENTS)
    e = e[dropped:]
    # column lists, not per-record access: a window whose vetoes flap every sample has thousands
    events = [{"ts_ns": ts, "decision": code_name(DECISIONS, d), "action": code_name(ACTIONS, a),
               "side": code_name(SLICE_SIDES, sd), "slice_usd": usd, "acc_usd": acc, "slices": n,
               "vetoes": _codes(m)}
              for ts, d, a, sd, usd, acc, n, m in zip(
                  *(e[f].tolist() for f in ("ts_recv_ns", "decision", "action", "slice_side", "slice_usd",
                                             "acc_usd", "slices", "veto_mask")))]
    sl = w[act == ACTIONS.index("SLICE")]
    slices = [{"ts_ns": ts, "side": code_name(SLICE_SIDES, sd), "usd": usd}
              for ts, sd, usd in zip(sl["ts_recv_ns"].tolist(), sl["slice_side"].tolist(), sl["slice_usd"].tolist())]
    return {"series": series, "window": slug, "window_start_ns": start or None,
            "window_end_ns": int(w["window_end_ns"][-1]) or None, "ts_ns": now_ns,
            "complete": not (lapped and first == 0)
                        and (not start or int(w["ts_recv_ns"][0]) - start <= START_SLACK_NS),
            "n": len(columns["ts_ns"]), "columns": columns, "events": events, "events_dropped": dropped,
            "slices": slices}


def market_doc(recs: np.ndarray, minutes: int, now_ns: int) -> dict:
    """The /history/market answer: the last `minutes` of data time before the newest sample."""
    ts = recs["ts_recv_ns"]
    m = recs[ts > int(ts[-1]) - minutes * NS_PER_MIN]
    pick = decimate(len(m))
    m = m[pick]
    columns = {"ts_ns": m["ts_recv_ns"].tolist()}
    columns.update({k: m[k].tolist() for k in MARKET_COLUMNS})
    columns["quality"] = [code_name(QUALITY_MODES, q) for q in m["quality"].tolist()]
    return {"ts_ns": now_ns, "n": len(m), "columns": columns}


class WindowHistoryResource:
    def __init__(self, view, settings: Settings):
        self.view, self.s = view, settings
        self.followed = tuple(settings.venues.polymarket_windows) if settings.polymarket_on else ()
        self.off = None if settings.polymarket_on else settings.polymarket_off_reason

    def _series(self, req) -> str:
        series = series_param(req, self.followed, self.off)
        if series is not None:
            return series
        if len(self.followed) == 1:
            return self.followed[0]
        if not self.followed:
            raise falcon.HTTPNotFound(title="no series followed",
                                      description=f"the Polymarket side is off: {self.off}")
        raise falcon.HTTPBadRequest(title="series required",
                                    description=f"several series are followed: give series= one of "
                                                f"{', '.join(self.followed)}")

    def _slug(self, series: str, start_ns: int) -> str | None:
        """The window's slug, from the edge block (its document names the same window)."""
        block = self.view.doc(names.EDGE_BLOCK)
        doc = ((block or {}).get("series") or {}).get(series) if isinstance(block, dict) else None
        if isinstance(doc, dict) and doc.get("window_start_ns") == start_ns and start_ns:
            return doc.get("window")
        return None

    async def on_get(self, req, resp):
        series = self._series(req)
        recs, lapped = snapshot(self.s, names.window_history_ring(series))
        if not len(recs):
            raise _no_data(f"{series} window")
        doc = await asyncio.to_thread(window_doc, recs, lapped, series, None, clock.now_ns())
        doc["window"] = self._slug(series, doc["window_start_ns"] or 0)
        _json(resp, doc)


class MarketHistoryResource:
    def __init__(self, settings: Settings):
        self.s = settings

    async def on_get(self, req, resp):
        minutes = req.get_param_as_int("minutes", min_value=1, max_value=MINUTES_MAX, default=MINUTES_DEFAULT)
        recs, _ = snapshot(self.s, names.MARKET_HISTORY_RING)
        if not len(recs):
            raise _no_data("market")
        _json(resp, market_doc(recs, minutes, clock.now_ns()))


def add_history_routes(app, view, settings: Settings) -> None:
    """`/history/window` and `/history/market` on the API app (`view`: its actors.api.ShmView)."""
    app.add_route("/history/window", WindowHistoryResource(view, settings))
    app.add_route("/history/market", MarketHistoryResource(settings))
