"""One simulated Binance venue (USD-M futures or spot): its market, streams, timers, REST and stats.

The server (actors/sim/server.py) owns the sockets and the clock; a `Venue` turns market events
and timer ticks into frames for its `Hub`, answers REST through its `RestApi` (it is the REST
`Provider`) and applies faults. Everything here runs on the event loop's thread, between awaits.

Streams and cadences (the venue's):
- futures, pushed as the market produces them: aggTrade, bookTicker (and `!bookTicker`);
- futures timers: markPrice@1s every 1 s and markPrice every 3 s (on the second), forceOrder at
  most once per 1000 ms window, kline_<tf> every 250 ms when it changed and once with x=true at
  its close, depth<N>@100ms / @500ms / plain (250 ms) partial depth for N in 5, 10, 20;
- spot: aggTrade and bookTicker as produced; depth<N>@100ms / plain (1000 ms); kline_<tf> every
  2000 ms when it changed and at its close.
Timers are aligned to multiples of their period on the venue clock, and a partial-depth frame is
only sent when the book version (`u`) changed since that stream's previous frame. Timer work is
done only for streams that have a receiver (the mark state itself steps every second regardless).
"""
from __future__ import annotations

import bisect
import re
import time

from actors.sim.binance import depth_book as bk
from actors.sim.binance import kline_bars as kl
from actors.sim.binance.codec import FuturesCodec, fmt_units
from actors.sim.faults import Fault, FaultState
from actors.sim.binance.hub import Hub, OnSent
from actors.sim.binance.mark import Liquidations, MarkPrice
from actors.sim.market import AggTrade, Market
from actors.sim.binance.rest_api import RestApi
from actors.sim.binance import spot_market as sp
from actors.sim.binance.spot_market import SpotCodec
from actors.sim.faults import FaultError

_FUT_DEPTH = re.compile(r"([a-z0-9]+)@depth(5|10|20)(?:@(100ms|250ms|500ms))?")
_SPOT_DEPTH = re.compile(r"([a-z0-9]+)@depth(5|10|20)(?:@(100ms|1000ms))?")
_KLINE = re.compile(r"([a-z0-9]+)@kline_(\w+)")
AGG_KEEP = 200_000        # trades kept for REST aggTrades (over 8 min at 400 trades/s)


class Venue:
    """One venue's data plane (see the module docstring)."""

    def __init__(self, name: str, market: Market, *, seed: int, ban_sec: float,
                 max_send_buffer: int, history: kl.History, fut_market: Market | None = None,
                 liquidation_rate: float = 0.03):
        self.name = name
        self.market = market
        self.futures = name == "futures"
        inst = self.inst = market.instrument
        self.sym = inst.symbol.lower()
        codec = FuturesCodec(inst) if self.futures else SpotCodec(inst)
        self.faults = FaultState()
        self.hub = Hub(name, agg_streams=(codec.agg_stream,), agg_enc=codec.agg_trade,
                       book_streams=((codec.book_stream, "!bookTicker") if self.futures
                                     else (codec.book_stream,)),
                       book_enc=codec.book_ticker, faults=self.faults,
                       max_send_buffer=max_send_buffer)
        self.rest = RestApi(name, inst.symbol, self, ban_sec=ban_sec)
        self.store = kl.KlineStore(history, market.book()[0])
        self.ladder = bk.DepthLadder(inst, seed, bk.FUTURES_LADDER if self.futures else bk.SPOT_LADDER)
        self._depth_state: dict[str, list] = {}      # stream -> [prev u, gap epoch seen, next due]
        self._kline_ver: dict[str, int] = {}         # stream -> store version last pushed
        self._names: dict[str, tuple | None] = {}    # stream name -> parsed (kind, args)
        self.on_sent: OnSent | None = None
        if self.futures:
            self.mark = MarkPrice(seed)
            self.liq = Liquidations(inst, seed, base_rate=liquidation_rate, params=market.params)
        self._fut_market = fut_market or market
        self.shutdown_notices = 0                    # serverShutdown events sent (spot)
        # the trades handed out, for REST aggTrades: ids, times and rows, oldest first (bounded)
        self._agg_ids: list[int] = []
        self._agg_T: list[int] = []
        self._agg_rows: list[str] = []
        kline_period = 250 if self.futures else 2000
        # [next due ms, period ms, job]
        # depth: a 50 ms tick serves the 100/250/500/1000 ms streams (each keeps its own due time)
        self.jobs: list[list] = [[0, 50, self._job_depth], [0, kline_period, self._job_klines]]
        if self.futures:
            self.jobs.append([0, 1000, self._job_mark])

    # --- helpers ---------------------------------------------------------------------------
    def _parse(self, stream: str):
        r = self._names.get(stream, False)
        if r is not False:
            return r
        if len(self._names) > 4096:      # clients may name any number of streams: stay bounded
            self._names.clear()
        r = None
        m = (_FUT_DEPTH if self.futures else _SPOT_DEPTH).fullmatch(stream)
        if m and m.group(1) == self.sym:
            speed = m.group(3)
            period = int(speed[:-2]) if speed else (250 if self.futures else 1000)
            r = ("depth", int(m.group(2)), period)
        else:
            m = _KLINE.fullmatch(stream)
            if m and m.group(1) == self.sym and m.group(2) in kl.TF_MS:
                r = ("kline", m.group(2))
        self._names[stream] = r
        return r

    def current_book(self):
        return self.hub.last_book or self.market.book_ticker_now()

    def publish(self, items: list, now_s: float) -> None:
        self.hub.publish(items, self.on_sent if self.futures else None, now_s)

    # --- market events ---------------------------------------------------------------------
    def on_events(self, events: list, now_s: float) -> None:
        add = self.store.add
        ids, times, rows = self._agg_ids, self._agg_T, self._agg_rows
        pp, qp = self.inst.price_precision, self.inst.qty_precision
        tail = ',"M":true}' if not self.futures else "}"
        for ev in events:
            if type(ev) is AggTrade:
                add(ev.T, ev.price, ev.qty, ev.l - ev.f + 1, ev.f, ev.l, ev.m)
                ids.append(ev.a)
                times.append(ev.T)
                rows.append(f'{{"a":{ev.a},"p":"{fmt_units(ev.price, pp)}","q":"{fmt_units(ev.qty, qp)}",'
                            f'"f":{ev.f},"l":{ev.l},"T":{ev.T},"m":{"true" if ev.m else "false"}{tail}')
        if len(ids) > AGG_KEEP:                      # forget the oldest half at once: O(1) amortised
            del ids[:AGG_KEEP // 2], times[:AGG_KEEP // 2], rows[:AGG_KEEP // 2]
        self.publish(events, now_s)

    def after_events(self, now_ms: int, now_s: float) -> None:
        """Close the klines no trade can join any more; send the closes."""
        store = self.store
        store.roll(self.market.agg_horizon_ms())
        if not store.closed:
            return
        frames = []
        for tf, bar in store.closed:
            stream = f"{self.sym}@kline_{tf}"
            if self.hub.receivers(stream):
                frames.append((stream, now_ms, store.frame(tf, bar, now_ms, True)))
                self._kline_ver[stream] = store.version
        store.closed.clear()
        if frames:
            self.publish(frames, now_s)

    # --- timers ----------------------------------------------------------------------------
    def next_due_ms(self) -> int:
        return min(j[0] for j in self.jobs)

    def run_jobs(self, now_ms: int, now_s: float) -> None:
        for job in self.jobs:
            if now_ms >= job[0]:
                due = now_ms // job[1] * job[1]
                job[2](now_ms, due, now_s)
                job[0] = due + job[1]

    def _job_depth(self, now_ms: int, due: int, now_s: float) -> None:
        b = self.current_book()
        frames = []
        for stream in self.hub.active_streams():
            p = self._parse(stream)
            if p is None or p[0] != "depth":
                continue
            st = self._depth_state.get(stream)
            if st is None:
                st = self._depth_state[stream] = [None, self.faults.depth_gap_epoch, 0]
            if now_ms < st[2]:
                continue
            st[2] = (now_ms // p[2] + 1) * p[2]
            u = b.u
            prev = st[0]
            if prev == u:
                continue           # nothing changed since this stream's last frame
            bids, asks = self.ladder.book(b.bid, b.bid_qty, b.ask, b.ask_qty, p[1], u)
            if self.futures:
                first = u if prev is None else prev + 1
                pu = first - 1 if prev is None else prev
                if st[1] != self.faults.depth_gap_epoch:
                    st[1] = self.faults.depth_gap_epoch
                    if prev is not None:      # fault: continuity broken once
                        pu = prev + self.faults.gap_size + 1
                payload = bk.futures_partial_depth(self.inst, bids, asks, E=now_ms, T=b.T,
                                                   U=first, u=u, pu=pu)
            else:
                payload = bk.spot_partial_depth(self.inst, bids, asks, last_update_id=u)
            st[0] = u
            frames.append((stream, u, payload))
        if frames:
            self.publish(frames, now_s)

    def _job_klines(self, now_ms: int, due: int, now_s: float) -> None:
        store = self.store
        frames = []
        for stream in self.hub.active_streams():
            p = self._parse(stream)
            if p is None or p[0] != "kline" or self._kline_ver.get(stream) == store.version:
                continue
            bar = store.current(p[1])
            if bar[kl.N] == 0:
                continue           # nothing traded in this interval yet
            self._kline_ver[stream] = store.version
            frames.append((stream, now_ms, store.frame(p[1], bar, now_ms, False)))
        if frames:
            self.publish(frames, now_s)

    def _job_mark(self, now_ms: int, due: int, now_s: float) -> None:
        b = self.current_book()
        pp = 10 ** self.inst.price_precision
        mid = (b.bid + b.ask) / 2 / pp
        self.mark.step(due, mid, self._fut_market.spot_mid())
        frames = []
        payload = None
        for stream in (f"{self.sym}@markPrice@1s", f"{self.sym}@markPrice"):
            if stream.endswith("@markPrice") and (due // 1000) % 3:
                continue
            if self.hub.receivers(stream):
                payload = payload or self.mark.frame(self.inst.symbol)
                frames.append((stream, due, payload))
        liq = self.liq.step(due, mid, b.bid, b.ask)
        if liq is not None:
            for stream in (f"{self.sym}@forceOrder", "!forceOrder@arr"):
                if self.hub.receivers(stream):
                    frames.append((stream, due, liq))
        if frames:
            self.publish(frames, now_s)

    # --- REST provider ---------------------------------------------------------------------
    def klines(self, tf: str, start, end, limit: int, now_ms: int) -> str:
        store = self.store
        return store.rows_json(store.rows(tf, start, end, limit, now_ms), kl.TF_MS[tf])

    def agg_trades(self, from_id, start, end, limit: int, now_ms: int) -> str:
        """REST aggTrades rows (rest_api.py): from `from_id`, else in [start, end] (end defaults
        to start + 1 h), else the most recent; at most `limit`, oldest first."""
        ids, times = self._agg_ids, self._agg_T
        if from_id is not None:
            i = bisect.bisect_left(ids, from_id)
        elif start is not None:
            i = bisect.bisect_left(times, start)
        elif end is not None:
            i = max(0, bisect.bisect_right(times, end) - limit)
        else:
            i = max(0, len(ids) - limit)
        j = min(len(ids), i + limit)
        if start is not None or end is not None:
            hi = end if end is not None else start + 3_599_999
            j = min(j, bisect.bisect_right(times, hi))
            if start is not None:
                i = max(i, bisect.bisect_left(times, start))
        return "[" + ",".join(self._agg_rows[i:j]) + "]"

    def depth(self, limit: int, now_ms: int) -> str:
        b = self.current_book()
        bids, asks = self.ladder.book(b.bid, b.bid_qty, b.ask, b.ask_qty, limit, b.u)
        if self.futures:
            return bk.rest_depth(self.inst, bids, asks, last_update_id=b.u, E=now_ms, T=b.T)
        return bk.rest_depth(self.inst, bids, asks, last_update_id=b.u)

    def premium_index(self, now_ms: int) -> str:
        if not hasattr(self, "mark"):
            return "{}"
        if self.mark.E == 0:     # before the first second: step once so the fields exist
            b = self.current_book()
            mid = (b.bid + b.ask) / 2 / 10 ** self.inst.price_precision
            self.mark.step(now_ms // 1000 * 1000, mid, self._fut_market.spot_mid())
        return self.mark.premium_index(self.inst.symbol, now_ms)

    # --- faults and stats ------------------------------------------------------------------
    def shutdown_frame(self, now_ms: int) -> str:
        """The serverShutdown event (spot), counted."""
        self.shutdown_notices += 1
        return sp.server_shutdown(now_ms)

    def apply_fault(self, f: Fault, now_ms: int | None = None) -> dict:
        """Apply a fault; FaultError if this venue has no such event (server_shutdown on futures)."""
        out: dict = {"ok": True, "kind": f.kind, "venue": self.name}
        if f.kind == "server_shutdown":
            if self.futures:
                raise FaultError("server_shutdown is a spot event (the futures streams do not "
                                 "document it)")
            now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            out["connections"] = self.hub.shutdown_all(sp.server_shutdown(now_ms), f.seconds)
            self.shutdown_notices += out["connections"]
            out["close_in_sec"] = f.seconds
        elif f.kind == "drop":
            out["connections"] = self.hub.drop_all()
        elif f.kind == "disconnect":
            out["connections"] = self.hub.disconnect_all()
        elif f.kind == "gap":
            self.market.skip_agg_ids(f.count)
            out["next_agg_id"] = self.market.next_ids()[0]
        elif f.kind == "clear":
            self.rest.lift_ban()
        self.faults.apply(f, time.monotonic())
        return out

    def stats(self, now_ms: int) -> dict:
        m = self.market
        return {
            "venue": self.name,
            "now_ms": now_ms,
            "connections": len(self.hub.conns),
            "connections_total": self.hub.connections_total,
            "frames_sent": self.hub.frames_sent,
            "dropped_slow": self.hub.dropped_slow,
            "streams": self.hub.describe(),
            "faults": self.faults.describe(time.monotonic()),
            "server_shutdown_sent": self.shutdown_notices,
            "rest": self.rest.describe(),
            "market": {"trades": m.n_trades, "quotes": m.n_quotes,
                       "next_agg_id": m.next_ids()[0], "book_u": self.current_book().u},
        }
