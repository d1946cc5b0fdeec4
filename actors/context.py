"""The `context` actor: closed klines per timeframe in shared memory, bootstrapped by REST and kept
current from the futures feed's kline stream.

For each tf of CONTEXT_TFS it owns one ring `<prefix>.<SYMBOL>.context.kline_<tf>` (KLINE records,
capacity max(2048, 2·CONTEXT_BOOTSTRAP_LIMIT)), writes the `context` state block and heartbeat, and
publishes each kline it appends on `context.<SYMBOL>` as
`{"tf", "kline": {KLINE fields}, "source": "rest"|"stream"}`. Indicators (TAAPI, or computed
locally from these rings) are actors/clients/indicator_source.py: the `indicators` state block and
`{"tf", "indicators": {tf: {...}}}` messages on the same topic. This module is the I/O shell: the
decisions (sync window, page sizes, dup/next/gap, when a kline is due) are the pure functions of
actors/venues/binance/kline_sync.py.

Invariants:
- a ring holds closed klines only, in strictly increasing open time, each once: a kline is appended
  only if it opens after the ring's newest one, so a restarted actor (which reads its rings back
  first) and the stream/REST overlap never duplicate one;
- consecutive data records are contiguous (open = previous open + tf); where the venue cannot
  fill a hole (down longer than the bootstrap window, a venue outage), a gap record
  (`FLAG_GAP`) goes first, so no reader mistakes a jump for adjacent klines;
- bootstrap: the newest CONTEXT_BOOTSTRAP_LIMIT klines (the one in progress included, kept in
  memory, not in the ring), in pages of at most the venue's cap, forward by `startTime`; a restart
  fetches only what is newer than the ring's newest kline (within that window);
- the stream (`<prefix>.<SYMBOL>.futures.kline`, every tf in one ring) is read from the moment the
  actor starts: a closed kline right after the newest is appended; one further ahead first has
  the missing range backfilled by REST (startTime..endTime); an open one is the tf's current kline;
- a kline the stream has not delivered CONTEXT_STREAM_GRACE_SEC after its close (feed down or
  lagging) is fetched by REST; nothing new there retries with capped backoff;
- every REST call goes through one client per host (actors/clients/binance_client.py: 429/418 pauses, weight
  throttle, retries); a failing sync is logged, reported in the state block and heartbeat, and
  retried with capped, jittered backoff: never a crash loop;
- one task per tf is the only writer of that tf's ring; the clock that decides which klines exist
  and are due is `clock_ns` (wall time; injectable for tests).
"""
from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from dataclasses import dataclass

import numpy as np

from config.logging import conn_fields
from config.settings import Settings
from ipc import clock
from ipc.bus import Publisher
from ipc.names import context_topic
from ipc.framering import FrameTap
from ipc.ring import RingReader, RingWriter
from ipc import names
from ipc.schema import FLAG_GAP, KLINE
from ipc.state import Heartbeat, Registry, StateBlock

from actors.clients.indicator_source import IndicatorEngine
from actors.clients.binance_client import BinanceRestClient
from actors.venues.binance import rest as br
from actors.venues.binance.kline_sync import classify, is_due, kline_doc, page_limit, ring_capacity, sync_start
from actors.venues.binance.rest import RestError
from actors.venues.http import backoff_sec

log = logging.getLogger("context")

VENUE = names.FUTURES          # the klines come from the USD-M futures venue
STREAM_POLL_SEC = 0.05
HEARTBEAT_SEC = 0.5
REST_RETRY_BASE_SEC = 0.5      # a failing sync: first retry delay, doubling up to CONTEXT_REST_BACKOFF_MAX_SEC
_MS = 1_000_000


# --- ring names -------------------------------------------------------------------------------------

def context_ring(prefix: str, symbol: str, tf: str) -> str:
    return names.context_kline_ring(tf).name(prefix, symbol)


def stream_ring(prefix: str, symbol: str) -> str:
    return names.venue_ring(VENUE, "kline").name(prefix, symbol)


# --- per-timeframe state ----------------------------------------------------------------------------

@dataclass
class TfState:
    tf: str
    tf_ms: int
    ring: RingWriter
    last: np.void | None = None           # newest closed kline in the ring
    current: np.void | None = None        # kline in progress (stream or REST)
    bootstrapped: bool = False
    appended: int = 0
    from_rest: int = 0
    from_stream: int = 0
    duplicates: int = 0
    stream_gaps: int = 0                  # closed stream klines that skipped some
    backfilled: int = 0                   # klines appended by a backfill (gap or due)
    discontinuities: int = 0              # gap records written
    sync_errors: int = 0
    error: str | None = None
    last_update_ns: int = 0               # wall clock of the last append or current update
    stream_last_ns: int = 0
    queue: asyncio.Queue | None = None
    recheck_at: float = 0.0               # monotonic: earliest next due check
    recheck_attempt: int = 0
    window_start_ms: int = 0              # first open of the last sync window (ring still empty)

    @property
    def last_open_ms(self) -> int | None:
        return None if self.last is None else int(self.last["open_time_ns"]) // _MS

    @property
    def next_open_ms(self) -> int:
        """Open time of the closed kline the ring expects next."""
        return self.window_start_ms if self.last is None else self.last_open_ms + self.tf_ms

    def set_current(self, rec) -> None:
        if self.last is not None and rec["open_time_ns"] <= self.last["open_time_ns"]:
            return
        if self.current is None or rec["open_time_ns"] >= self.current["open_time_ns"]:
            self.current = rec
            self.last_update_ns = clock.now_ns()

    def doc(self, now_ns: int) -> dict:
        return {"tf_sec": self.tf_ms // 1000, "ring": self.ring.name, "count": self.ring.count,
                "bootstrapped": self.bootstrapped, "appended": self.appended,
                "from_rest": self.from_rest, "from_stream": self.from_stream,
                "duplicates": self.duplicates, "stream_gaps": self.stream_gaps,
                "backfilled": self.backfilled, "discontinuities": self.discontinuities,
                "sync_errors": self.sync_errors, "error": self.error,
                "last_closed": None if self.last is None else kline_doc(self.last),
                "current": None if self.current is None else kline_doc(self.current),
                "age_ms": (now_ns - self.last_update_ns) / 1e6 if self.last_update_ns else None,
                "stream_age_ms": (now_ns - self.stream_last_ns) / 1e6 if self.stream_last_ns else None}


def _newest_kline(shm_dir: str, name: str) -> np.void | None:
    """The newest data record already in a ring (a restarted actor continues after it)."""
    recs = RingReader(shm_dir, name, KLINE, from_oldest=True).read()
    recs = recs[(recs["flags"] & FLAG_GAP) == 0]
    return recs[-1].copy() if len(recs) else None


# --- the actor ---------------------------------------------------------------------------------------

class Context:
    def __init__(self, s: Settings, pub: Publisher | None = None, registry: Registry | None = None,
                 clock_ns=time.time_ns):
        self.s = s
        self.clock_ns = clock_ns
        self.limit = s.context.context_bootstrap_limit
        self.grace_ms = int(s.context.context_stream_grace_sec * 1000)
        self.pub = pub or Publisher(s.ipc.zmq_xsub_url, sndhwm=s.ipc.zmq_sndhwm)
        self.topic = context_topic(s.general.symbol).encode()
        self.hb = Heartbeat(registry or Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "context")
        self.block = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.CONTEXT_BLOCK, writer=True)
        cap = ring_capacity(self.limit)
        self.tfs: dict[str, TfState] = {}
        for tf in s.context.context_tfs:
            name = context_ring(s.ipc.shm_prefix, s.general.symbol, tf)
            st = TfState(tf, names.tf_sec(tf) * 1000, RingWriter(s.ipc.shm_dir, name, KLINE, cap))
            st.last = _newest_kline(s.ipc.shm_dir, name)
            self.tfs[tf] = st
        self.by_tf_sec = {st.tf_ms // 1000: st for st in self.tfs.values()}
        # made now: every stream record from here on is seen (bootstrap may take a while)
        self.stream = RingReader(s.ipc.shm_dir, stream_ring(s.ipc.shm_prefix, s.general.symbol), KLINE)
        self.stream_read = 0
        self.stream_gap_markers = 0
        self.stream_other_tf = 0
        # TAAPI polling or local indicators (actors/clients/indicator_source.py)
        self.indicators = IndicatorEngine(s, self.pub, self.topic, clock_ns)
        self.client: BinanceRestClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False

    def _now_ms(self) -> int:
        return self.clock_ns() // _MS

    # --- appending ---------------------------------------------------------------------------
    def _append(self, st: TfState, rec, source: str) -> bool:
        kind = classify(st.last_open_ms, int(rec["open_time_ns"]) // _MS, st.tf_ms)
        if kind == "dup":
            st.duplicates += 1
            return False
        if kind == "gap":
            st.ring.append_gap(clock.now_ns())
            st.discontinuities += 1
            log.warning("%s: klines missing between %s and %s: gap record written", st.tf,
                        st.last_open_ms, int(rec["open_time_ns"]) // _MS)
        st.ring.append(rec)            # ring first, then publish
        st.last = rec.copy()
        if st.current is not None and st.current["open_time_ns"] <= rec["open_time_ns"]:
            st.current = None
        st.appended += 1
        if source == "stream":
            st.from_stream += 1
        else:
            st.from_rest += 1
        st.last_update_ns = clock.now_ns()
        self.pub.publish(self.topic, {"tf": st.tf, "kline": kline_doc(rec), "source": source})
        self.indicators.notify(st.tf)
        return True

    async def _fetch(self, st: TfState, start_ms: int, end_ms: int | None = None) -> int:
        """Append the closed klines opening in [start, end] (end: now) from REST; how many."""
        cap = br.LIMIT_CAP[VENUE]
        cursor, n = start_ms, 0
        while True:
            now = self._now_ms()
            limit = page_limit(cursor, now if end_ms is None else min(end_ms, now), st.tf_ms, cap)
            if limit == 0:
                break
            recs = await self.client.klines(self.s.general.symbol, st.tf, limit, cursor, end_ms, now)
            for rec in recs:
                if rec["closed"]:
                    n += self._append(st, rec, "rest")
                else:
                    st.set_current(rec)
            if len(recs) < limit or not recs[-1]["closed"]:
                break
            nxt = int(recs[-1]["open_time_ns"]) // _MS + st.tf_ms
            if nxt <= cursor:          # a server ignoring startTime: never loop on it
                break
            cursor = nxt
        return n

    async def _sync(self, st: TfState) -> int:
        """Fetch everything after the ring's newest kline (within the bootstrap window)."""
        expect = st.next_open_ms if (st.last is not None or st.bootstrapped) else None
        start, give_up = sync_start(self._now_ms(), st.tf_ms, self.limit, expect)
        if st.last is None:
            st.window_start_ms = start
        if give_up:
            log.warning("%s: down longer than the bootstrap window: resuming at %d", st.tf, start)
        return await self._fetch(st, start)

    async def _retrying(self, st: TfState, what: str, op):
        """Run `op` until it succeeds, with capped jittered backoff; errors logged and reported."""
        attempt = 0
        while True:
            try:
                out = await op()
            except RestError as exc:
                st.sync_errors += 1
                msg = f"{what}: {exc}"[:300]
                if msg != st.error or attempt % 10 == 0:
                    log.error("%s %s failed (attempt %d): %s", st.tf, what, attempt + 1, exc,
                              extra=self._fields(exc, st, what=what, attempt=attempt + 1, status=exc.status))
                st.error = msg
                self._write_state()
                delay = backoff_sec(attempt, REST_RETRY_BASE_SEC, self.s.context.context_rest_backoff_max_sec,
                                    random.uniform(0.5, 1.0))
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if st.error is not None:
                log.info("%s %s recovered after %d failed attempt(s)", st.tf, what, attempt,
                         extra=self._fields(None, st, what=what, attempts=attempt))
            st.error = None
            return out

    def _fields(self, exc, st: TfState, **more) -> dict:
        """A REST log record's fields: the failed call's URL (the client's base URL if unknown),
        venue, the tf as `stream`."""
        return conn_fields(getattr(exc, "url", None) or self.client.base_url, VENUE, stream=st.tf, **more)

    # --- tasks -------------------------------------------------------------------------------
    async def _tf_loop(self, st: TfState) -> None:
        n = await self._retrying(st, "bootstrap", lambda: self._sync(st))
        st.bootstrapped = True
        log.info("%s: bootstrapped, %d klines appended, ring count %d", st.tf, n, st.ring.count)
        self._write_state()
        while True:
            # wake for the next stream kline, or when the next kline is due by REST (at most 1 s:
            # the clock is re-read each time)
            due_in = (st.next_open_ms + st.tf_ms + self.grace_ms - self._now_ms()) / 1e3
            wait = min(1.0, max(0.01, due_in, st.recheck_at - time.monotonic()))
            try:
                rec = await asyncio.wait_for(st.queue.get(), timeout=wait)
            except TimeoutError:
                rec = None
            if rec is not None:
                await self._on_stream_closed(st, rec)
            elif (is_due(self._now_ms(), st.next_open_ms, st.tf_ms, self.grace_ms)
                  and time.monotonic() >= st.recheck_at):
                got = await self._retrying(st, "catch-up", lambda: self._sync(st))
                st.backfilled += got
                if got:
                    st.recheck_attempt = 0
                    st.recheck_at = 0.0
                else:       # REST has nothing newer yet: ask again later, backing off
                    st.recheck_at = time.monotonic() + backoff_sec(
                        st.recheck_attempt, self.grace_ms / 1e3, self.s.context.context_rest_backoff_max_sec)
                    st.recheck_attempt += 1
            self._write_state()

    async def _on_stream_closed(self, st: TfState, rec) -> None:
        open_ms = int(rec["open_time_ns"]) // _MS
        kind = classify(st.last_open_ms, open_ms, st.tf_ms)
        if kind == "gap":
            st.stream_gaps += 1
            start = st.last_open_ms + st.tf_ms
            log.warning("%s: stream skipped klines %d..%d: backfilling from REST", st.tf, start,
                        open_ms - st.tf_ms)
            st.backfilled += await self._retrying(
                st, "backfill", lambda: self._fetch(st, start, open_ms - 1))
        self._append(st, rec, "stream")

    async def _stream_loop(self) -> None:
        while True:
            recs = self.stream.read()
            if len(recs):
                now = clock.now_ns()
                self.stream_read += len(recs)
                for rec in recs:
                    if rec["flags"] & FLAG_GAP:
                        self.stream_gap_markers += 1
                        continue
                    st = self.by_tf_sec.get(int(rec["tf_sec"]))
                    if st is None:
                        self.stream_other_tf += 1
                        continue
                    st.stream_last_ns = now
                    if rec["closed"]:
                        st.queue.put_nowait(rec)
                    else:
                        st.set_current(rec)
            await asyncio.sleep(STREAM_POLL_SEC)

    async def _heartbeat(self) -> None:
        while True:
            self._beat()
            self._write_state()
            await asyncio.sleep(HEARTBEAT_SEC)

    # --- health ------------------------------------------------------------------------------
    def counters(self) -> dict:
        rest = self.client.counters() if self.client is not None else {}
        sts = self.tfs.values()
        return {
            "klines_appended": sum(st.appended for st in sts),
            "from_rest": sum(st.from_rest for st in sts),
            "from_stream": sum(st.from_stream for st in sts),
            "duplicates": sum(st.duplicates for st in sts),
            "stream_gaps": sum(st.stream_gaps for st in sts),
            "backfilled": sum(st.backfilled for st in sts),
            "discontinuities": sum(st.discontinuities for st in sts),
            "sync_errors": sum(st.sync_errors for st in sts),
            "bootstrapped": sum(st.bootstrapped for st in sts),
            "tfs": len(self.tfs),
            "stream_read": self.stream_read, "stream_gap_markers": self.stream_gap_markers,
            "stream_overrun": self.stream.overrun,
            "published": self.pub.sent, "publish_dropped": self.pub.dropped,
            "rest_requests": rest.get("requests", 0),
            "rest_errors": sum(rest.get("errors", {}).values()),
            "weight_used": rest.get("weight_used"),
            "throttled_ms": rest.get("throttled_ms", 0.0),
            "banned": rest.get("banned", False),
            "banned_until_ns": rest.get("banned_until_ns", 0),
            **self.indicators.counters(),
        }

    def _beat(self, **extra) -> None:
        rest = self.client.counters() if self.client is not None else None
        errors = {tf: st.error[:160] for tf, st in self.tfs.items() if st.error}
        try:
            self.hb.beat(self.counters(), rest=rest, errors=errors, **extra)
        except ValueError:      # past the registry slot: the counters alone (detail: state block)
            self.hb.beat(self.counters(), **extra)

    def state_doc(self) -> dict:
        now = clock.now_ns()
        return {"symbol": self.s.general.symbol, "venue": VENUE, "ts_ns": now, "pid": self.hb.pid,
                "start_ns": self.hb.start_ns,
                "tfs": {tf: st.doc(now) for tf, st in self.tfs.items()},
                "rest": self.client.counters() if self.client is not None else None,
                "stream": {"ring": self.stream.name, "attached": self.stream.attached,
                           "read": self.stream_read, "gap_markers": self.stream_gap_markers,
                           "other_tf": self.stream_other_tf, "overrun": self.stream.overrun,
                           "lag": self.stream.lag()},
                "counters": self.counters()}

    def _write_state(self) -> None:
        self.block.write(self.state_doc())

    # --- lifecycle ---------------------------------------------------------------------------
    def _make_client(self) -> BinanceRestClient:
        s = self.s
        client = BinanceRestClient(
            s.venues.futures_rest, VENUE, timeout_sec=s.context.context_rest_timeout_sec,
            retries=s.context.context_rest_retries, backoff_max_sec=s.context.context_rest_backoff_max_sec,
            weight_limit=s.context.context_weight_limit_futures, throttle_frac=s.context.context_weight_throttle_frac,
            ban_default_sec=s.context.context_ban_default_sec)
        client.tap = FrameTap.from_settings(s, s.general.symbol, names.CONTEXT)   # REST answers, for replay
        return client

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self.client = self._make_client()
        for st in self.tfs.values():
            st.queue = asyncio.Queue()
        log.info("context: %s %s tfs=%s limit=%d rest=%s", VENUE, self.s.general.symbol,
                 ",".join(self.tfs), self.limit, self.s.venues.futures_rest,
                 extra=conn_fields(self.s.venues.futures_rest, VENUE, list(self.tfs)))
        tasks = [asyncio.create_task(self._tf_loop(st), name=f"tf-{st.tf}") for st in self.tfs.values()]
        tasks += [asyncio.create_task(self._stream_loop(), name="stream"),
                  asyncio.create_task(self._heartbeat(), name="heartbeat"),
                  asyncio.create_task(self.indicators.run(), name="indicators")]
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and not t.cancelled() and t.exception() is not None:
                    log.error("context task %s died: %r", t.get_name(), t.exception())
                    raise t.exception()
        finally:
            for t in (stop, *tasks):
                t.cancel()
            await asyncio.gather(stop, *tasks, return_exceptions=True)
            self._write_state()
            self._beat(stopped=True)
            await self.client.aclose()
            await self.indicators.aclose()
            self.pub.close()

    def stop(self) -> None:
        """Thread-safe: end run()."""
        self._stop_requested = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


def main(settings: Settings) -> None:
    reason = settings.disabled_actors.get("context")
    if reason is not None:            # CONTEXT_ENABLED=false: heartbeat only, no REST, no rings
        from actors.feed.idle import run_disabled
        run_disabled(settings, "context", reason)
        return
    import uvloop

    # httpx logs every request at INFO; our own lines say what matters (errors, pauses, bans)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))

    async def _run():
        ctx = Context(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, ctx.stop)
        await ctx.run()

    uvloop.run(_run())
