"""compute's warm-up at start: each venue's session state rebuilt from the ring, 1m klines and
aggTrades (the plan is actors/features/warm.py), before the first tick.

Invariants:
- bounded: all venues together get `budget_sec`; every request has a timeout and at most one retry
  and goes through actors/clients/binance_client (weights, 429/418 pauses); trade pages are capped
  (`MAX_TRADE_PAGES`). A venue whose warm-up fails or runs out of time starts from what its ring
  holds (as before warm-ups existed), and says why (`warmup.reason`): never a stalled tick;
- REST only where the result can be reproduced: not while recording (`RECORD_ENABLED`) nor in a
  replay, whose compute sees only the recording; there the ring alone warms the state;
- nothing is counted twice: the ring is read once here (its reader then goes on from there), REST
  trades are only those below the ring tail's first id, and the first trade id the live ticks may
  add is above every id used here (`VenueState.boot_last_id`);
- nothing is missed silently: REST trades and the ring must meet with consecutive ids, else the
  venue's warm-up fails (state from the ring alone, with the reason); compute waits (bounded) for
  a ring's first trade before asking REST, so that REST stops where the ring starts; a live trade
  that does not follow the warm-up's last id marks the warm-up not exact (`missed_ids`);
- nothing warmed is published: bars closed while warming go to the closed-bar lists only.
"""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from actors.clients.binance_client import BinanceRestClient
from actors.features import warm as wm
from actors.features.flow import DAY_NS
from actors.venues.binance import rest as br
from ipc import names

log = logging.getLogger("compute")

AGG_PATH = {names.FUTURES: "/fapi/v1/aggTrades", names.SPOT: "/api/v3/aggTrades"}
AGG_WEIGHT = {names.FUTURES: 20, names.SPOT: 4}       # per request of up to 1000 rows
AGG_LIMIT = 1000
MAX_TRADE_PAGES = 40          # per venue: 40,000 trades, 800 weight on futures (of 2400 a minute)
REQUEST_TIMEOUT_SEC = 3.0


class Failed(Exception):
    pass


async def _trades(client: BinanceRestClient, venue: str, symbol: str, start_ns: int,
                  end_ns: int | None, stop_id: int | None, pages: list[int]) -> list[np.ndarray]:
    """Trades with start_ns ≤ T < end_ns (None: up to now) and id < stop_id, oldest first."""
    path, weight = AGG_PATH[venue], AGG_WEIGHT[venue]
    q = f"symbol={symbol}&limit={AGG_LIMIT}&startTime={start_ns // wm.MS}"
    if end_ns is not None:
        q += f"&endTime={(end_ns - 1) // wm.MS}"
    out: list[np.ndarray] = []
    while True:
        if pages[0] >= MAX_TRADE_PAGES:
            raise Failed(f"more than {MAX_TRADE_PAGES * AGG_LIMIT} trades to fetch by REST")
        pages[0] += 1
        got = wm.parse_agg_trades((await client.get(f"{path}?{q}", weight)).body)
        keep = got["ts_event_ns"] >= start_ns
        if end_ns is not None:
            keep &= got["ts_event_ns"] < end_ns
        if stop_id is not None:
            keep &= got["trade_id"] < stop_id
        out.append(got[keep])
        done = (len(got) < AGG_LIMIT or (end_ns is not None and got["ts_event_ns"][-1] >= end_ns)
                or (stop_id is not None and got["trade_id"][-1] >= stop_id - 1))
        if done:
            return out
        q = f"symbol={symbol}&limit={AGG_LIMIT}&fromId={int(got['trade_id'][-1]) + 1}"


async def _minutes(client: BinanceRestClient, venue: str, symbol: str, a: int, m: int) -> wm.Minutes:
    limit = br.LIMIT_CAP[venue]
    out = wm.Minutes([], [], [], [], [], [])
    start = a
    while start < m:
        path = br.klines_path(venue, symbol, "1m", limit, start // wm.MS, (m - 1) // wm.MS)
        page = wm.parse_minutes((await client.get(path, br.klines_weight(venue, limit))).body, start, m)
        if not page.open_ns:
            break
        for k in ("open_ns", "close", "volume", "buy", "quote", "rows"):
            getattr(out, k).extend(getattr(page, k))
        start = page.open_ns[-1] + wm.MIN_NS
    # every minute of [a, m) must be there: a missing one would be missing volume
    if out.open_ns != list(range(a, m, wm.MIN_NS)):
        raise Failed(f"klines cover {len(out.open_ns)} of {(m - a) // wm.MIN_NS} minutes")
    return out


def _feed(vs, trades: np.ndarray) -> None:
    """Trades through every trade feature of the venue, without publishing."""
    if not len(trades):
        return
    vs.cvd.update(trades)
    vs.vwap.update(trades)
    vs.vol.update(trades)
    vs.impulse.update(trades)
    closed = []
    for b in vs.bars.values():
        closed.extend(b.update(trades))
    for bar in closed:
        vs.closed[bar["tf"]].append(bar)
    for r in vs.rvol.values():
        r.update(closed)
    vs.last_trade = trades[-1]
    vs.boot_last_id = max(vs.boot_last_id or 0, int(trades["trade_id"].max()))


def _apply(vs, anchor_ns: int, p: wm.Plan, minutes: wm.Minutes | None, early: np.ndarray,
           tail: np.ndarray) -> None:
    """The rebuilt state: klines' sums, then the partial anchor minute, then the tail."""
    n = len(minutes.open_ns) if minutes else 0
    last = (minutes.close[-1], minutes.open_ns[-1] + wm.MIN_NS - 1) if n else (None, None)
    vs.cvd.warm(anchor_ns, minutes.cvd_units() if n else 0)
    vs.vwap.warm(anchor_ns, sum(minutes.volume) if n else 0, sum(minutes.quote) if n else 0,
                 minutes.qp2_units() if n else 0, n, *last)
    if len(early):
        vs.cvd.update(early)
        vs.vwap.update(early)
        vs.boot_last_id = max(vs.boot_last_id or 0, int(early["trade_id"].max()))
        if n:       # the klines' minutes come after the partial one: the last price is theirs
            vs.vwap.last_units, vs.vwap.last_ts_ns = last
            vs.vwap.last_price = last[0] / 1e8
    if n:
        bars = minutes.bars(vs.venue)
        vs.closed["1m"].extend(bars)
        vs.rvol["1m"].update(bars)
    # the tail starts on a minute boundary: its bars are whole, not `partial`
    for b in vs.bars.values():
        b.bucket, b._partial = p.tail_ns // b.tf_ns, False
        if n:
            b.last_close = minutes.close[-1] / 1e8
    _feed(vs, tail)


def _union(parts: list[np.ndarray], what: str) -> np.ndarray:
    """Trades of several sources, each id once, in id order; Failed if an id is missing between
    them (REST lagging the stream, a page that stopped short): a sum with a hole is not exact."""
    parts = [x for x in parts if len(x)]
    if not parts:
        return np.zeros(0, dtype=wm.TRADE)
    allt = np.concatenate(parts)
    _, idx = np.unique(allt["trade_id"], return_index=True)
    out = allt[idx]
    holes = np.diff(out["trade_id"].astype(np.int64)) - 1
    if len(holes) and holes.max() > 0:
        raise Failed(f"{int(holes[holes > 0].sum())} trade ids missing in the {what} (REST and the ring "
                     f"do not meet)")
    return out


async def warm_venue(vs, ring: np.ndarray, *, client: BinanceRestClient | None, symbol: str,
                     anchor_ns: int | None, now_ns: int) -> dict:
    """Rebuild one venue (`vs`: compute.VenueState) from its ring records (sane, no gaps) and,
    when `client` is given, REST. Returns the report (`vs.warmup`)."""
    t0 = time.monotonic()
    tail = wm.contiguous_tail(ring)
    venue_now = int(ring["ts_event_ns"][-1]) if len(ring) else now_ns
    anchor = anchor_ns if anchor_ns is not None else venue_now // DAY_NS * DAY_NS
    p = wm.plan(anchor, venue_now, tail)
    rep = {"anchor_ns": anchor, "ring_trades": len(ring), "kline_minutes": 0, "rest_trades": 0,
           "exact": True, "reason": None}
    if p.ring_only or client is None:
        _feed(vs, ring)
        rep.update(source="ring", exact=p.ring_only)
        if not p.ring_only:
            rep["reason"] = "REST warm-up off (recording or replay): the ring does not reach the anchor"
        return rep
    pages = [0]
    stop = int(tail["trade_id"][0]) if len(tail) else None
    early = []
    if p.partial:
        early = await _trades(client, vs.venue, symbol, *p.partial, stop, pages)
    minutes = await _minutes(client, vs.venue, symbol, *p.minutes) if p.minutes else None
    later = await _trades(client, vs.venue, symbol, p.tail_ns, None, stop, pages)
    t = tail["ts_event_ns"]
    ring_early = tail[(t >= p.partial[0]) & (t < p.partial[1])] if p.partial else tail[:0]
    rest_n = sum(len(x) for x in early) + sum(len(x) for x in later)
    _apply(vs, anchor, p, minutes, _union(early + [ring_early], "anchor's partial minute"),
           _union(later + [tail[t >= p.tail_ns]], "minutes after the klines"))
    rep.update(source="rest", kline_minutes=len(minutes.open_ns) if minutes else 0,
               rest_trades=rest_n, rest_pages=pages[0], ms=round((time.monotonic() - t0) * 1e3, 1))
    return rep


async def warm_all(venues: dict, rings: dict[str, np.ndarray], urls: dict[str, str | None], *,
                   symbol: str, anchor_ns: int | None, now_ns: int, budget_sec: float) -> dict:
    """Every venue at once within `budget_sec`; a venue that fails starts from its ring alone."""
    clients = {v: BinanceRestClient(u, v, timeout_sec=REQUEST_TIMEOUT_SEC, retries=1)
               for v, u in urls.items() if u}

    async def one(v):
        try:
            return await warm_venue(venues[v], rings[v], client=clients.get(v), symbol=symbol,
                                    anchor_ns=anchor_ns, now_ns=now_ns)
        except Exception as exc:    # noqa: BLE001 — the boundary: any failure here is the venue's
            # warm-up failing (a kline row with a null field, an undecodable body, ...), never
            # compute's: it starts from the ring instead of crash-looping on every restart
            if not isinstance(exc, (Failed, br.RestError, ValueError, OSError)):
                log.exception("%s: warm-up failed unexpectedly", v)
            return {"error": f"{type(exc).__name__}: {exc}"[:300]}

    tasks = {v: asyncio.create_task(one(v)) for v in venues}
    done, pending = await asyncio.wait(tasks.values(), timeout=budget_sec)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out = {}
    for v, t in tasks.items():
        rep = t.result() if t in done and not t.cancelled() else {"error": f"over the {budget_sec:g} s budget"}
        if "error" in rep:
            reason = rep["error"]
            _reset(venues[v])
            _feed(venues[v], rings[v])
            rep = {"source": "ring", "exact": False, "ring_trades": len(rings[v]),
                   "reason": f"warm-up failed, state from the ring only: {reason}"}
            log.warning("%s: %s", v, rep["reason"])
        out[v] = rep
    for c in clients.values():
        await c.aclose()
    return out


def _reset(vs) -> None:
    """Forget a half-done warm-up (the venue state as a fresh VenueState has it)."""
    vs.reset_features()
    vs.boot_last_id = None
