"""Indicators inside the `context` actor: TAAPI bulk polling, or local computation from the context
klines, into the `indicators` state block and onto `context.<SYMBOL>`.

Mode, fixed at start: `taapi` when TAAPI_ENABLED and TAAPI_SECRET are both set, else `local`.
Both give, per timeframe of TAAPI_TFS, the indicators of actors/features/indicators (RSI 14,
MACD 12/26/9, EMA 20, ATR 14, Bollinger 20/2) for the newest closed kline.

Invariants:
- local: each tf is read from its context ring (`<prefix>.<SYMBOL>.context.kline_<tf>`, from the
  oldest record), the newest WINDOW contiguous closed klines are kept (a gap record or a reader
  overrun starts the run over: no indicator spans a hole), and the bundle is recomputed when the
  newest kline changes. The actor calls `notify()` after each append; a poll every
  HEARTBEAT_SEC catches anything else. A tf missing from CONTEXT_TFS has no values, with a reason;
- taapi: one bulk request per tf and closed kline (`backtrack=1`: the last closed candle), due
  TAAPI_CLOSE_LAG_SEC after each close; a tf whose answer is still the previous candle is asked
  again after RECHECK_SEC; all pacing, 429 blocks and backoff are the client's
  (actors/clients/taapi_client.py), so the plan's rate holds whatever this loop asks;
- a value is never made up: an indicator that cannot be computed, or that TAAPI failed, is null
  with a reason; a failed request keeps the previous values, which show their age;
- every entry carries `source` ("taapi"|"local"), `ts_ns` (when obtained, data clock) and
  `kline_open_ns` (the candle it is for; TAAPI: from `addResultTimestamp`); the block adds
  `age_ms` each time it is written (on change and every HEARTBEAT_SEC);
- each new entry is published on `context.<SYMBOL>` as `{"tf", "indicators": {tf: entry}}`
  (kline messages carry `kline` instead);
- nothing here raises into the actor: a bad response or computation is counted, logged (the first
  and every 10th of a kind) and the loop goes on.
"""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from actors.features import indicators as ind
from config.logging import conn_fields
from config.settings import Settings
from ipc import clock as data_clock
from ipc.bus import Publisher
from ipc.ring import RingReader
from ipc import names
from ipc.schema import FLAG_GAP, KLINE
from ipc.state import StateBlock

from actors.clients.taapi_client import TaapiClient, TaapiError

log = logging.getLogger("context.indicators")

HEARTBEAT_SEC = 0.5
TAAPI_CLOSE_LAG_SEC = 2.0     # TAAPI needs a moment after a close to have the new candle
RECHECK_SEC = 5.0             # TAAPI still answered the previous candle: ask again this much later
BLOCK_BYTES = 1 << 16
_MS = 1_000_000


class _Tf:
    def __init__(self, tf: str, source: str):
        self.tf = tf
        self.tf_ms = names.tf_sec(tf) * 1000
        self.source = source
        self.entry: dict | None = None         # the newest values
        self.error: str | None = None          # why there are no (fresh) values, if known
        self.updates = 0
        self.failures = 0
        # local
        self.reader: RingReader | None = None
        self.buf = np.empty(0, dtype=KLINE)
        self.overrun_seen = 0
        self.resets = 0                        # gap records / overruns that restarted the run
        # taapi
        self.due_ms = 0                        # clock ms at which the next request is due

    def doc(self, now_ns: int) -> dict:
        if self.entry is None:
            d = {"source": self.source, "ts_ns": None, "kline_open_ns": None, "age_ms": None,
                 **{name: None for name in ind.INDICATORS}, "errors": {}}
        else:
            d = dict(self.entry)
            d["age_ms"] = round((now_ns - self.entry["ts_ns"]) / 1e6, 1)
        d.update(error=self.error, updates=self.updates, failures=self.failures)
        if self.reader is not None:
            d.update(klines=len(self.buf), resets=self.resets)
        return d


def make_entry(source: str, values: dict, errors: dict, kline_open_ns: int | None, ts_ns: int,
               klines: int | None = None) -> dict:
    e = {"source": source, "ts_ns": ts_ns, "kline_open_ns": kline_open_ns, **values,
         "errors": errors}
    if klines is not None:
        e["klines"] = klines
    return e


class IndicatorEngine:
    def __init__(self, s: Settings, pub: Publisher, topic: bytes, clock_ns=time.time_ns,
                 client: TaapiClient | None = None):
        self.s = s
        self.pub, self.topic, self.clock_ns = pub, topic, clock_ns
        self.mode = "taapi" if (s.context.taapi_enabled and s.context.taapi_secret) else "local"
        self.block = StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.INDICATORS_BLOCK, size=BLOCK_BYTES,
                                writer=True)
        self.tfs: dict[str, _Tf] = {tf: _Tf(tf, self.mode) for tf in s.context.taapi_tfs}
        self.client = client
        self.errors = 0                        # failed computations / unexpected failures
        self._logged: dict[str, int] = {}
        self._dirty: asyncio.Event | None = None
        if self.mode == "local":
            for st in self.tfs.values():
                if st.tf in s.context.context_tfs:
                    st.reader = RingReader(s.ipc.shm_dir, names.context_kline_ring(st.tf).name(s.ipc.shm_prefix, s.general.symbol),
                                           KLINE, from_oldest=True)
                else:
                    st.error = f"{st.tf} is not in CONTEXT_TFS: no klines to compute from"
        elif self.client is None:
            self.client = TaapiClient(s.venues.taapi_url, s.context.taapi_secret, s.context.taapi_exchange, s.general.symbol,
                                      rate_per_sec=s.context.taapi_rate_per_sec,
                                      timeout_sec=s.context.context_rest_timeout_sec,
                                      backoff_max_sec=s.context.context_rest_backoff_max_sec)
        if s.context.taapi_enabled and not s.context.taapi_secret:
            log.warning("TAAPI_ENABLED without TAAPI_SECRET: indicators are computed locally")

    # --- called by the actor -----------------------------------------------------------------
    def notify(self, tf: str) -> None:
        """A kline of `tf` was appended (cheap; the work happens in run())."""
        if self._dirty is not None and tf in self.tfs:
            self._dirty.set()

    async def run(self) -> None:
        self._dirty = asyncio.Event()
        log.info("indicators: mode %s, tfs %s%s", self.mode, ",".join(self.tfs),
                 f", {self.s.venues.taapi_url} at {self.s.context.taapi_rate_per_sec}/s" if self.mode == "taapi" else "")
        main = self._taapi_loop() if self.mode == "taapi" else self._local_loop()
        await asyncio.gather(main, self._writer())

    async def aclose(self) -> None:
        self.write_state()
        if self.client is not None:
            await self.client.aclose()

    # --- shared ------------------------------------------------------------------------------
    def _log_once(self, key: str, msg: str, *args, level=logging.ERROR, extra: dict | None = None) -> None:
        n = self._logged.get(key, 0)
        if n % 10 == 0:
            log.log(level, msg + (f" (x{n + 1})" if n else ""), *args, extra=extra)
        self._logged[key] = n + 1

    def _publish(self, st: _Tf, entry: dict) -> None:
        st.entry = entry
        st.error = None
        st.updates += 1
        self.write_state()            # shm first, then the bus
        self.pub.publish(self.topic, {"tf": st.tf, "indicators": {st.tf: dict(entry)}})

    def state_doc(self) -> dict:
        now = data_clock.now_ns()
        return {"symbol": self.s.general.symbol, "mode": self.mode, "ts_ns": now,
                "params": ind.PARAMS, "window": ind.WINDOW,
                "tfs": {tf: st.doc(now) for tf, st in self.tfs.items()},
                "taapi": self.client.counters() if self.client is not None else None,
                "counters": self.counters()}

    def write_state(self) -> None:
        self.block.write(self.state_doc())

    def counters(self) -> dict:
        c = self.client.counters() if self.client is not None else None
        return {"indicators_taapi": int(self.mode == "taapi"),
                "indicator_updates": sum(st.updates for st in self.tfs.values()),
                "indicator_errors": self.errors,
                "taapi_requests": c["requests"] if c else 0,
                "taapi_ok": c["ok"] if c else 0,
                "taapi_errors": sum(c["errors"].values()) if c else 0,
                "taapi_429": c["rate_limited"] if c else 0}

    async def _writer(self) -> None:
        while True:
            try:
                self.write_state()
            except Exception as exc:            # never kill the actor over the block
                self.errors += 1
                self._log_once("write", "indicators: state block write failed: %r", exc)
            await asyncio.sleep(HEARTBEAT_SEC)

    # --- local -------------------------------------------------------------------------------
    async def _local_loop(self) -> None:
        while True:
            self._dirty.clear()
            for st in self.tfs.values():
                if st.reader is None:
                    continue
                try:
                    self._local_step(st)
                except Exception as exc:
                    self.errors += 1
                    st.failures += 1
                    st.error = f"local computation failed: {exc!r}"[:300]
                    self._log_once(f"local-{st.tf}", "indicators %s: %s", st.tf, st.error)
            try:
                await asyncio.wait_for(self._dirty.wait(), HEARTBEAT_SEC)
            except TimeoutError:
                pass

    def _local_step(self, st: _Tf) -> None:
        recs = st.reader.read()
        overrun = st.reader.overrun != st.overrun_seen
        st.overrun_seen = st.reader.overrun
        if not len(recs) and not overrun:
            return
        gaps = np.flatnonzero(recs["flags"] & FLAG_GAP)
        if len(gaps):
            recs = recs[gaps[-1] + 1:]
        recs = recs[recs["closed"] == 1]       # the ring holds closed klines only; be safe
        if len(gaps) or overrun:
            # the klines before a hole are not contiguous with those after it
            st.resets += 1
            st.buf = recs[-ind.WINDOW:].copy()
        elif len(recs):
            st.buf = np.concatenate([st.buf, recs])[-ind.WINDOW:]
        if not len(st.buf):
            st.error = "no klines since the last gap"
            return
        newest = int(st.buf["open_time_ns"][-1])
        if st.entry is not None and st.entry["kline_open_ns"] == newest:
            return
        values, errors = ind.bundle_klines(st.buf)
        self._publish(st, make_entry("local", values, errors, newest, data_clock.now_ns(),
                                     len(st.buf)))

    # --- TAAPI -------------------------------------------------------------------------------
    async def _taapi_loop(self) -> None:
        while True:
            now_ms = self.clock_ns() // _MS
            due = [st for st in self.tfs.values() if st.due_ms <= now_ms]
            if not due:
                wait_ms = min(st.due_ms for st in self.tfs.values()) - now_ms
                await asyncio.sleep(min(HEARTBEAT_SEC, max(0.01, wait_ms / 1e3)))
                continue
            st = min(due, key=lambda x: x.due_ms)
            try:
                res = await self.client.bulk(st.tf, backtrack=1)
            except TaapiError as exc:
                # the client paused itself (block or backoff): the next call waits for it
                st.failures += 1
                st.error = f"TAAPI: {exc}"[:300]
                self._log_once(f"taapi-{exc.kind}", "indicators %s: TAAPI request failed: %s",
                               st.tf, exc, level=logging.WARNING,
                               extra=conn_fields(self.client.base_url + "/bulk", "taapi", stream=st.tf,
                                                 error=exc.kind))
                self.write_state()
                continue
            except Exception as exc:              # a bug or something unforeseen: never die
                self.errors += 1
                st.failures += 1
                st.error = f"TAAPI: unexpected {exc!r}"[:300]
                self._log_once("taapi-unexpected", "indicators %s: %s", st.tf, st.error)
                await asyncio.sleep(1.0)
                continue
            now_ms = self.clock_ns() // _MS
            newest_closed_ms = (now_ms // st.tf_ms - 1) * st.tf_ms
            candle_ms = res.candle_open_s * 1000 if res.candle_open_s is not None else None
            self._publish(st, make_entry("taapi", res.values, res.errors,
                                         None if candle_ms is None else candle_ms * _MS,
                                         data_clock.now_ns()))
            if candle_ms is not None and candle_ms < newest_closed_ms:
                st.due_ms = now_ms + int(RECHECK_SEC * 1000)     # TAAPI is behind the close
            else:
                st.due_ms = (now_ms // st.tf_ms + 1) * st.tf_ms + int(TAAPI_CLOSE_LAG_SEC * 1000)
