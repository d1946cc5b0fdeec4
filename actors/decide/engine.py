"""The edge engines: one per followed up/down series, each fair value → edge → decision →
accumulate → decision log, once per tick.

compute reads the shared inputs (`SharedInputs.read`) and every engine's book ring
(`EdgeEngine.read`) early in its tick (the quality needs their receive times), then calls
`SharedInputs.on_prices` and `EdgeEngine.step` after its features. This module only wires the pure
parts of actors/decide (books, fair, spikes, edge, accumulate, settlement) to their inputs, each
built keyword-only by its own `from_settings`:
- the window: `series.<s>.window` of the `polymarket` state block (feed_poly's market document,
  `window.Window`); window metadata only, never a book;
- the books: every record of the series' book ring (`names.poly_book_ring(series)`), read from
  its oldest record on start; the latest record per token of the window the document names
  (actors/decide/books.py); a book's age is now − its record's receive time;
- the settlement source: Chainlink (`names.CHAINLINK_RING`, read from its oldest record: history
  for the TWAP lookback) or, for a window settling on a Binance candle, the candle source venue's
  price (its microprice, else its last trade) and its klines (`names.venue_ring(venue, "kline")`,
  read from its oldest record). The streams compute reads are the configured SYMBOL's:
  `names.chainlink_stream(SYMBOL)` and SYMBOL's candles (`inputs.chainlink.stream`,
  `inputs.candle.stream`); a window whose rule settles on another stream is vetoed
  ("settlement_source", actors/decide/edge.py);
- the Binance price (the primary venue's microprice, with its quote's receive-time age) and σ:
  compute's features of the primary venue.

Invariants:
- it never places an order (a strategy acts on `edge.<SYMBOL>.<series>`);
- the price to beat is the venue's number once published (source "venue"), else the market's own
  rule over compute's history (`settlement.price_to_beat`: source "estimate"), kept once known,
  replaced as soon as the venue's number arrives; None with status "pending" until then;
- after a window ends the engine reports its settlement (`previous`: `settlement.settle`, status
  "pending" until known, and the winner), and the venue's resolution when feed_poly has it;
- a decision is logged when the accumulator takes a slice, or when the decision, its vetoes or
  the window change, with its inputs, to the series' own file;
- the accumulator's per-window state lives in the shm block `accumulate_<series>`, so caps and
  cooldown survive a compute restart and reset at rollover;
- the candle history is bounded per interval (the newest CANDLE_TAIL) but never drops a candle a
  current or previous window's rule reads (`settlement.candle_keys`): compute prunes it once the
  engines have read their windows, so a restarted compute, reading the kline ring from its oldest
  record, still has the ET-noon 1m candle of yesterday that today's daily window starts on;
- an overrun of the Chainlink reader is quality's like a gap (`OverrunClock`): remembered for the
  gap memory, not for the life of the process.
"""
from __future__ import annotations

import dataclasses
from collections import deque

from config.settings import Settings
from ipc import names
from ipc.ring import RingReader
from ipc.schema import CHAINLINK, FLAG_GAP, KLINE, POLY_BOOK
from ipc.state import StateBlock

from actors.decide import settlement
from actors.decide.accumulate import Accumulator
from actors.decide.books import GAP, SeriesBooks
from actors.decide.decision_log import DecisionLog
from actors.decide.edge import EdgeParams, evaluate
from actors.decide.fair import FairValue, PriceSmoother
from actors.decide.spikes import SpikeDetector
from actors.decide.window import Window
from actors.features.quality import Assessment, OverrunClock, QualityParams, StreamInput, VenueInput, assess

PRICE_HISTORY = 20_000        # (ts, price) samples kept for the Chainlink-time Binance lookup
OBS_HISTORY = 7_200           # Chainlink observations kept (~2 h at one a second)
CANDLE_TAIL = 64              # newest candles kept per interval, beside those a live window needs
PTB_KEPT = 8                  # windows whose price-to-beat estimate is remembered
ACCUMULATE_BLOCK_BYTES = 4096
NO_WINDOW = {"action": "HOLD", "reason": "no_window"}
SEC_NS = 1_000_000_000
TOKENS = {side: i for i, side in enumerate(names.POLY_TOKENS)}
FINAL = ("ok", "incomplete")  # statuses that do not change with more data


class SharedInputs:
    """What every series' engine reads, once per tick: Chainlink (observations with their receive
    times), the candle source's klines, and the Binance / candle-source prices and their smoothed
    values (the same for every series)."""

    def __init__(self, s: Settings, primary: str, candle_source: str):
        self.primary, self.candle_source = primary, candle_source
        d, pre, sym = s.ipc.shm_dir, s.ipc.shm_prefix, s.general.symbol
        # the streams the collector reads, against which a window's rule.stream is checked
        self.chainlink_stream, self.candle_stream = names.chainlink_stream(sym), sym
        self.chainlink_r = RingReader(d, names.CHAINLINK_RING.name(pre, sym), CHAINLINK, from_oldest=True)
        self.kline_ring = names.venue_ring(candle_source, "kline")
        self.kline_r = RingReader(d, self.kline_ring.name(pre, sym), KLINE, from_oldest=True)
        self.obs: deque[tuple[int, float]] = deque(maxlen=OBS_HISTORY)
        self.new_obs: list[tuple[int, float]] = []      # this tick's new observations
        self.last_cl: tuple[int, float, int] | None = None   # (obs_ns, price, ts_recv_ns)
        self.cl_gaps = 0
        self.cl_last_gap_ns = 0
        self.cl_lapped = OverrunClock()
        self.candles: dict[tuple[int, int], tuple[settlement.Candle, int]] = {}   # -> (candle, recv)
        self._candles_grew = False          # klines read since the last keep_candles
        self._ts: deque[int] = deque(maxlen=PRICE_HISTORY)
        self._px: deque[float] = deque(maxlen=PRICE_HISTORY)
        halflife = s.decisions.fair_smooth_halflife_sec
        self.smooth = PriceSmoother(halflife_sec=halflife)
        self.source_smooth = PriceSmoother(halflife_sec=halflife)
        self.binance: dict = {"venue": primary, "price": None, "age_ms": None, "smooth": None}
        self.source: dict = {"venue": candle_source, "price": None, "age_ms": None, "smooth": None}

    # --- rings ------------------------------------------------------------------------------
    def read(self, now_ns: int) -> None:
        """This tick's new Chainlink observations and klines (`now_ns`: when a lapped reader's
        overrun was seen, for quality)."""
        cl = self.chainlink_r.read()
        self.cl_lapped.see(self.chainlink_r.overrun, now_ns)
        self.new_obs = []
        for obs_ns, px, flags, recv in zip(cl["ts_event_ns"].tolist(), cl["price"].tolist(),
                                           cl["flags"].tolist(), cl["ts_recv_ns"].tolist()):
            if flags & FLAG_GAP:
                self.cl_gaps += 1
                self.cl_last_gap_ns = max(self.cl_last_gap_ns, recv)
                continue
            if self.obs and obs_ns <= self.obs[-1][0]:
                continue                   # a repeat (or late) observation: the first one stands
            self.obs.append((obs_ns, px))
            self.new_obs.append((obs_ns, px))
            self.last_cl = (obs_ns, px, recv)
        kl = self.kline_r.read()
        if len(kl):
            kl = kl[(kl["flags"] & FLAG_GAP) == 0]
            for rec in kl:
                c = settlement.candle_from_kline(rec)
                key = settlement.candle_key(c)
                held = self.candles.get(key)
                if settlement.supersedes(held and held[0], c):
                    self.candles[key] = (c, int(rec["ts_recv_ns"]))
            self._candles_grew = True

    def keep_candles(self, needed: set[tuple[int, int]]) -> None:
        """Bound the candle history: per interval the newest CANDLE_TAIL, and every candle in
        `needed` ((tf_sec, open_time_ns): what the engines' current and previous windows' rules
        read, settlement.candle_keys), however old. Called after the engines have their windows,
        so a restart that reads the kline ring from its oldest record keeps yesterday's candle a
        daily window's price to beat needs, whatever came after it."""
        if not self._candles_grew:
            return                 # nothing new: the bound holds (a need that ended can wait)
        self._candles_grew = False
        by_tf: dict[int, list[tuple[int, int]]] = {}
        for key in self.candles:
            by_tf.setdefault(key[0], []).append(key)
        for keys in by_tf.values():
            if len(keys) > CANDLE_TAIL:
                keys.sort(key=lambda k: k[1])
                for key in keys[:-CANDLE_TAIL]:
                    if key not in needed:
                        del self.candles[key]

    def on_prices(self, now_ns: int, venues: dict) -> None:
        """The primary venue's microprice and the candle source's price, from compute's features."""
        self.binance = self._price(now_ns, venues.get(self.primary), self.primary, self.smooth, True)
        self.source = self._price(now_ns, venues.get(self.candle_source), self.candle_source,
                                  self.source_smooth, False)

    def _price(self, now_ns: int, f: dict | None, venue: str, smoother: PriceSmoother,
               history: bool) -> dict:
        """The venue's microprice with its quote's age; without a quote, the candle source falls
        back on its last trade (the primary venue's price is its microprice only)."""
        f = f or {}
        price, age = (f.get("book") or {}).get("microprice"), f.get("quote_age_ms")
        if price is None:
            price, age = (None, None) if history else (f.get("last_price"), f.get("trade_age_ms"))
        smooth = None
        if price is not None:
            recv_ns = now_ns - int(round((age or 0.0) * 1e6))
            smooth = smoother.update(recv_ns, price)
            if history and (not self._ts or recv_ns > self._ts[-1]):
                self._ts.append(recv_ns)
                self._px.append(price)
        return {"venue": venue, "price": price, "age_ms": age, "smooth": smooth}

    def binance_at(self, ts_ns: int) -> float | None:
        """The primary venue's microprice in force at `ts_ns` (the last quote received at or before
        it). Chainlink observations are about a second old, so a scan from the newest is short."""
        for i in range(len(self._ts) - 1, -1, -1):
            if self._ts[i] <= ts_ns:
                return self._px[i]
        return None

    def candle_list(self, tf_sec: int) -> list[settlement.Candle]:
        return [c for (tf, _), (c, _) in self.candles.items() if tf == tf_sec]

    def latest_candle(self, tf_sec: int) -> tuple[settlement.Candle, int] | None:
        keys = [k for k in self.candles if k[0] == tf_sec]
        return self.candles[max(keys, key=lambda k: k[1])] if keys else None

    # --- views -----------------------------------------------------------------------------
    def chainlink_input(self, now_ns: int, max_age_sec: float) -> dict:
        out = {"stream": self.chainlink_stream, "price": None, "obs_ns": None, "age_ms": None,
               "obs_age_ms": None, "max_age_ms": max_age_sec * 1e3}
        if self.last_cl is not None:
            obs_ns, px, recv = self.last_cl
            out.update(price=px, obs_ns=obs_ns, age_ms=(now_ns - recv) / 1e6,
                       obs_age_ms=(now_ns - obs_ns) / 1e6)
        return out

    def chainlink_quality(self, stale_ns: int, required: bool) -> VenueInput:
        recv = self.last_cl[2] if self.last_cl is not None else None
        return VenueInput(names.CHAINLINK, (self.cl_lapped.stream("", recv),),
                          self.cl_last_gap_ns, None, stale_ns=stale_ns, required=required)

    def readers(self) -> list[tuple[names.Ring, RingReader]]:
        return [(names.CHAINLINK_RING, self.chainlink_r), (self.kline_ring, self.kline_r)]


def _book_input(b) -> dict:
    if b is None or b == GAP:
        return {"age_ms": None, "update_id": None, "best_bid": None, "best_ask": None,
                "reason": "no book for this window" if b is None else
                "invalid since a gap: waiting for its next update"}
    return {"age_ms": b["age_ms"], "update_id": b["update_id"], "best_bid": b["best_bid"],
            "best_ask": b["best_ask"]}


class EdgeEngine:
    """One series' decisions (module docstring)."""

    def __init__(self, s: Settings, series: str, shared: SharedInputs):
        self.s, self.series, self.shared = s, series, shared
        self.symbol = s.general.symbol
        self.topic = names.edge_topic(self.symbol, series).encode()
        ring = names.poly_book_ring(series)
        self.book_ring = ring
        self.book_r = RingReader(s.ipc.shm_dir, ring.name(s.ipc.shm_prefix, self.symbol), POLY_BOOK,
                                 from_oldest=True)
        self.books = SeriesBooks()
        self.fair = FairValue.from_settings(s, binance_at=shared.binance_at)
        self.spikes = {side: SpikeDetector.from_settings(s) for side in names.POLY_TOKENS}
        self.params = EdgeParams.from_settings(s)
        self.stale_ns = int(s.decisions.stale_threshold_sec * SEC_NS)
        self.chainlink_stale_ns = int(s.decisions.fair_chainlink_max_age_sec * SEC_NS)
        self.qparams = QualityParams.from_settings(s)
        self.acc = Accumulator.from_settings(s, store=StateBlock(
            s.ipc.shm_dir, s.ipc.shm_prefix, names.accumulate_block(series), size=ACCUMULATE_BLOCK_BYTES,
            writer=True))
        self.log = DecisionLog(dir=s.decisions.decision_log_dir, tag=f"{s.general.asset}-{series}")
        self.doc: dict = {}                   # the series' part of the polymarket block
        self._doc_obj: dict | None = None
        self._parsed: Window | None = None
        self._rule_doc: dict | None = None
        self.window: Window | None = None
        self._last_window: Window | None = None     # the last window seen (a gap may be None)
        self._window_start: int | None = None
        self._ptb: dict[int, dict] = {}       # window start -> the estimate, once final
        self.previous: dict | None = None     # the last ended window and its settlement
        self._last_key = None
        self.slices = 0
        self.bad_docs = 0

    # --- inputs -------------------------------------------------------------------------------
    def read(self, series_doc: dict | None) -> None:
        """This tick's window (from the series' market document) and every new book record."""
        if series_doc is not self._doc_obj or series_doc is None:
            # compute hands the same object back while the block is unchanged: parse it once
            self._doc_obj = series_doc
            self.doc = series_doc or {}
            try:
                self._parsed = Window.from_doc(self.doc.get("window"), self.series)
            except (KeyError, TypeError, ValueError):
                self.bad_docs += 1               # a document we cannot read: no window, counted
                self._parsed = None
            self._rule_doc = self._parsed.rule.doc() if self._parsed is not None else None
        window = self._parsed
        if window is not None and window.start_ns != self._window_start:
            last = self._last_window
            if last is not None and window.start_ns > last.start_ns:
                self.previous = {"window": last, "price_to_beat": self._price_to_beat(last),
                                 "settlement": None, "rule": last.rule.doc()}
            self._window_start = window.start_ns
            for d in self.spikes.values():
                d.reset()
        self.window = window
        if window is not None:
            self._last_window = window
        self.books.update(self.book_r.read())
        if window is not None:
            self.books.prune(min(window.start_ns, (self.previous or {}).get("window", window).start_ns))

    def candles_needed(self) -> set[tuple[int, int]]:
        """The candles this series' current and previous windows still read (SharedInputs.keep_candles)."""
        out: set[tuple[int, int]] = set()
        for w in (self.window, self._last_window, (self.previous or {}).get("window")):
            if w is not None and w.rule is not None:
                out.update(settlement.candle_keys(w.rule, w.start_ns, w.end_ns))
        return out

    def _book(self, now_ns: int, side: str):
        if self.window is None:
            return None
        b = self.books.book(self.window.start_ns, TOKENS[side])
        if isinstance(b, dict):
            b = {**b, "age_ms": (now_ns - b["ts_recv_ns"]) / 1e6}
        return b

    def quality_input(self, now_ns: int) -> VenueInput:
        """This series' books for the global quality: `poly.<series>` with streams UP and DOWN."""
        streams = []
        for side in names.POLY_TOKENS:
            b = self.books.book(self.window.start_ns, TOKENS[side]) if self.window else None
            streams.append(StreamInput(side, b["ts_recv_ns"] if isinstance(b, dict) else None))
        return VenueInput(f"{names.POLY}.{self.series}", tuple(streams), self.books.last_gap_ns, None,
                          stale_ns=self.stale_ns, required=self.window is not None)

    def own_quality(self, now_ns: int, sources: dict[str, VenueInput]) -> Assessment:
        """The quality of this decision's own inputs: the primary venue (price, σ) and its window's
        settlement source (Chainlink, or the candle source venue), required and critical."""
        rule = self.window.rule if self.window is not None else None
        settle_src = None
        if rule is not None:
            settle_src = (self.shared.chainlink_quality(self.chainlink_stale_ns, True)
                          if rule.source == "chainlink" else sources.get(self.shared.candle_source))
            if settle_src is not None and not settle_src.required:
                settle_src = dataclasses.replace(settle_src, required=True)
        others = [settle_src] if settle_src is not None else []
        return assess(now_ns, sources[self.shared.primary], others, 0, 0, self.qparams,
                      critical=[v.venue for v in others])

    # --- price to beat and settlement ------------------------------------------------------
    def _settle_inputs(self, rule: settlement.Rule) -> dict:
        if rule.source == "chainlink":
            return {"obs": list(self.shared.obs)}
        return {"candles": self.shared.candle_list(rule.candle_sec)}

    def _price_to_beat(self, w: Window) -> dict:
        rule = w.rule
        known = self._ptb.get(w.start_ns) if w.price_to_beat is None else None
        if known is not None:
            return known
        price, source, status = settlement.beat_price(
            rule, w.start_ns, w.price_to_beat,
            **(self._settle_inputs(rule) if w.price_to_beat is None else {}))
        doc = {"price": price, "source": source, "method": rule.method, "status": status}
        if source != settlement.VENUE and status in FINAL:
            self._ptb[w.start_ns] = doc
            while len(self._ptb) > PTB_KEPT:
                del self._ptb[min(self._ptb)]
        return doc

    def _settlement(self, w: Window, ptb: dict) -> dict:
        price, status = settlement.settle(w.rule, w.start_ns, w.end_ns, **self._settle_inputs(w.rule))
        beat = ptb.get("price")
        return {"price": price, "status": status,
                "winner": settlement.winner(price, beat) if price is not None and beat is not None else None}

    def _previous_doc(self) -> dict | None:
        p = self.previous
        if p is None:
            return None
        w: Window = p["window"]
        resolved = next((d for d in (self.doc.get("resolved") or [])
                         if isinstance(d, dict) and d.get("window_start_ns") == w.start_ns), None)
        if p["price_to_beat"].get("status") not in FINAL:      # an estimate still to come
            p["price_to_beat"] = self._price_to_beat(w)
        if resolved is not None and resolved.get("price_to_beat_source") == settlement.VENUE \
                and resolved.get("price_to_beat") is not None:
            p["price_to_beat"] = {"price": float(resolved["price_to_beat"]), "source": settlement.VENUE,
                                  "method": w.rule.method, "status": "ok"}
        st = p["settlement"]
        if st is None or st["status"] not in FINAL or (
                st["price"] is not None and st["winner"] is None and p["price_to_beat"].get("price") is not None):
            p["settlement"] = self._settlement(w, p["price_to_beat"])
        return {"window": w.slug, "window_start_ns": w.start_ns, "window_end_ns": w.end_ns,
                "rule": p["rule"], "price_to_beat": p["price_to_beat"], "settlement": p["settlement"],
                "resolution": (resolved or {}).get("resolution"),
                "final_price": (resolved or {}).get("final_price")}

    # --- one tick -----------------------------------------------------------------------------
    def step(self, now_ns: int, venues: dict, bias_score: float | None,
             sources: dict[str, VenueInput]) -> dict:
        sh, w, p = self.shared, self.window, self.params
        for ts, px in sh.new_obs:
            self.fair.on_chainlink(ts, px)
        prim = venues.get(sh.primary) or {}
        vol = prim.get("volatility") or {}
        ptb = self._price_to_beat(w) if w is not None else \
            {"price": None, "source": None, "method": None, "status": None}
        candle = None
        source_price = None
        if w is not None and w.rule.source != "chainlink":
            src = sh.source
            k = sh.latest_candle(w.rule.candle_sec)
            candle = {"venue": src["venue"], "stream": sh.candle_stream, "price": src["price"],
                      "age_ms": src["age_ms"],
                      "max_age_ms": p.binance_max_age_ms,
                      "kline": None if k is None else {
                          "open_time_ns": k[0].open_time_ns, "tf_sec": k[0].tf_sec, "open": k[0].open,
                          "close": k[0].close, "closed": k[0].closed, "age_ms": (now_ns - k[1]) / 1e6}}
            source_price = {"fast": src["price"], "smooth": src["smooth"]}
        fair = self.fair.snapshot(now_ns, w, price_to_beat=ptb["price"],
                                  binance_price_fast=sh.binance["price"],
                                  binance_price_smooth=sh.binance["smooth"],
                                  sigma_fast=vol.get("sigma_fast"), sigma_blend=vol.get("sigma_blend"),
                                  bias_score=bias_score, drift_k=self.s.decisions.fair_drift_k,
                                  source_price=source_price)
        if w is not None and now_ns >= w.end_ns:
            fair["settlement"] = self._settlement(w, ptb)
        raw = {side: self._book(now_ns, side) for side in names.POLY_TOKENS}
        books, book_inputs = {}, {}
        for side, b in raw.items():
            book_inputs[side] = _book_input(b)
            if isinstance(b, dict):
                books[side] = {"asks": b["asks"], "bids": b["bids"], "age_ms": b["age_ms"]}
                if b["best_bid"] is not None and b["best_ask"] is not None:
                    self.spikes[side].update(now_ns, (b["best_bid"] + b["best_ask"]) / 2.0)
            else:
                books[side] = {"asks": [], "bids": [], "age_ms": None, "reason": book_inputs[side]["reason"]}
        inputs = {"binance": {"venue": sh.primary, "price": sh.binance["price"],
                              "age_ms": sh.binance["age_ms"], "max_age_ms": p.binance_max_age_ms},
                  "chainlink": sh.chainlink_input(now_ns, p.chainlink_max_age_sec),
                  "books": book_inputs, "candle": candle}
        q = self.own_quality(now_ns, sources)
        quality = {"mode": q.mode, "reasons": q.reasons}
        decision = evaluate(now_ns, w, fair.get("fast"), books, quality, p, inputs)
        action = self.acc.consider(now_ns, w.start_ns, decision) if w is not None else dict(NO_WINDOW)
        doc = {"symbol": self.symbol, "series": self.series, "ts_ns": now_ns,
               "window": w.slug if w is not None else None,
               "window_start_ns": w.start_ns if w is not None else None,
               "window_end_ns": w.end_ns if w is not None else None,
               "price_to_beat": ptb, "rule": dict(self._rule_doc) if w is not None else None,
               "inputs": inputs, "fair": fair, "edge": decision, "accumulate": action,
               "spikes": {side: d.snapshot(now_ns) for side, d in self.spikes.items()},
               "quality": quality, "previous": self._previous_doc()}
        key = (decision["decision"], tuple(v["code"] for v in decision["vetoes"]), doc["window_start_ns"])
        if action.get("action") == "SLICE" or key != self._last_key:
            self.log.write(doc, now_ns)
            self._last_key = key
        self.slices += action.get("action") == "SLICE"
        return doc

    def counters(self) -> dict:
        st = self.log.stats()
        return {"slices": self.slices, "decision_log_lines": st["lines"],
                "decision_log_errors": st["errors"], "book_records": self.books.records,
                "book_gaps": self.books.gaps, "bad_window_docs": self.bad_docs}
