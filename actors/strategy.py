"""The example strategy: paper-trades the edge engine's decisions on every followed up/down series,
knowing the system only through ZeroMQ. Copy it: everything it needs arrives on the bus
(ZMQ_PUB_URL), on these topics (all spelled by ipc/names.py):

  edge.<SYMBOL>.<series>          every compute tick, per series: fair value, per-side edge,
                                  accumulator, spikes, the window's rule and price to beat
  tick.poly.market.<series>       a window change or resolution: slug, start/end, rule, the venue's
                                  price to beat when published
  tick.chainlink.price.<ASSET>USD the Chainlink observations Chainlink-settled windows settle on
  tick.spot.kline.<SYMBOL>        the Binance spot candles hourly (and daily) windows settle on

Each series is its own book: its windows (keyed by series and slug), its fills, its per-window cap
and its PnL; nothing of one series is ever netted against another.

The rule (paper fills: a buy of `usd` at a side's all-in `cost_per_share` gets usd / cost_per_share
shares; cost = usd; the fee is already inside cost_per_share):
1. follow the accumulator: when `accumulate.action == "SLICE"`, buy SLICE_USD of
   `accumulate.side`;
2. contrarian favourite dip: the favourite is the side whose Polymarket mid (`spikes.<side>.mid`)
   is > 0.5; when its spike state turns into "dip" (this doc of the series says "dip", the
   previous one of the same series did not) and its edge (probability points) is > 0 and it is
   tradable, buy one slice of it;
3. hedge, checked after each buy of rule 1 or 2: with usd[X] the money spent on side X in this
   window and Y the other side, if usd[X] > HEDGE_RATIO·usd[Y] + HEDGE_SLACK_SLICES·SLICE_USD and
   Y's edge_bps (= edge·1e4) > −HEDGE_BUFFER_BPS and Y is tradable, buy one slice of Y.
   Tradable = no global veto in `edge.vetoes`, no veto on that side, a cost_per_share known.
A buy that would take the window past MAX_USD_PER_WINDOW is skipped (counted `capped`).

Settlement of every window seen (on `tick.poly.market.<series>`, or on its edge documents when the
strategy started mid-window), held or not, for calibration:
- the window's rule is the market doc's `rule` (settlement.Rule.from_doc): Chainlink point or TWAP,
  or the Binance candle (hourly: the window's candle, open vs close; daily: the 1m candle closes);
- price to beat: the venue's number (the market doc's `price_to_beat`, or an edge doc's whose
  `price_to_beat.source` is "venue") when published, else `settlement.price_to_beat(rule, ...)`
  from the observations and candles this strategy received (source "estimate"); a venue number
  arriving later replaces the estimate;
- settlement price: `settlement.settle(rule, ...)`; a window settles once that is "ok"; it is
  dropped as unsettled when it is "incomplete" (our history does not cover what the rule needs),
  when the price to beat is and the venue published none, or when either is still pending
  GIVE_UP_SEC of data time after the end;
- Up wins if settlement ≥ price to beat; PnL = Σ shares bought of the winner · 1 USD − Σ cost;
- a window is settled (or dropped) once: a later edge document or market document of it never
  opens it again; the venue's own resolution of it (`resolution.winner` on its market document)
  is compared with ours (heartbeat `venue_agreed` / `venue_disagreed`, a warning when they differ).
One JSON log line per settled window (series, slug, rule, price_to_beat and its source, settlement,
winner, fills, PnL), also appended to `<DECISION_LOG_DIR>/../strategy/settled.jsonl` (the input of
`python run.py calibrate`). Heartbeat counters: windows settled and unsettled, pnl_usd, slices and
the bus's seq gaps and publisher restarts, in total and per series (`series` in the heartbeat).

Invariants: it never places an order; a payload it cannot use is counted (`bad_payloads`) and
skipped, never a crash of the loop; the data clock is the observations' and candles' own times,
never the wall clock (so a replay settles the same way).
"""
from __future__ import annotations

import logging
import signal
import time
from collections import deque

import orjson

from config.settings import Settings
from ipc import names
from ipc.bus import Subscriber
from ipc.state import Heartbeat, Registry

from actors.decide import settlement
from actors.decide.settlement import Candle, Rule, settled_path

log = logging.getLogger("strategy")
SIDES = names.POLY_TOKENS
OTHER = {"UP": "DOWN", "DOWN": "UP"}
HEDGE_RATIO = 2.0
HEDGE_SLACK_SLICES = 2
HEDGE_BUFFER_BPS = 200.0
SEC_NS = 1_000_000_000
GIVE_UP_SEC = 300             # data time past a window's end after which a pending one is dropped
KEEP_OBS = 20_000             # Chainlink observations kept (~5.5 h at one a second)
KEEP_CANDLES = 2_000          # candles kept (settlement.candle_key)
KEEP_WINDOWS_PER_SERIES = 8   # windows held per series; the oldest is dropped (unsettled) beyond
KEEP_DONE = 512               # settled or dropped windows remembered (never opened twice)


def window_pnl(fills: list[dict], winner: str) -> float:
    """Σ shares of the winner · 1 − Σ cost."""
    return sum(f["shares"] for f in fills if f["side"] == winner) - sum(f["usd"] for f in fills)


def tradable(edge: dict, side: str) -> bool:
    """No global veto (one whose `side` is None: edge.vetoes also lists each side's), no veto on
    that side, and an all-in cost per share known."""
    e = (edge.get("sides") or {}).get(side) or {}
    global_vetoes = [v for v in edge.get("vetoes") or () if not isinstance(v, dict) or v.get("side") is None]
    return not global_vetoes and not e.get("vetoes") and bool(e.get("cost_per_share"))


def _series_totals() -> dict:
    return {"settled": 0, "unsettled": 0, "pnl_usd": 0.0, "slices": 0, "capped": 0}


class Strategy:
    """The rule and the books, pure: feed it messages, it returns fills and settled windows."""

    def __init__(self, slice_usd: float, max_usd_per_window: float = float("inf")):
        self.slice_usd = slice_usd
        self.max_usd = max_usd_per_window
        self.windows: dict[tuple[str, str], dict] = {}      # (series, slug) -> window, fills, usd by side
        self.obs: deque[tuple[int, float]] = deque(maxlen=KEEP_OBS)
        self.candles: dict[tuple[int, int], Candle] = {}    # settlement.candle_key -> its latest update
        self.prev_spike: dict[str, dict[str, str | None]] = {}
        self.data_ns = 0                                   # the newest observation / candle time seen
        self.by_series: dict[str, dict] = {}
        # windows settled (-> our winner) or dropped (-> None): never opened again by a late edge
        # document or by the venue's resolution of it, which is only compared with ours
        self.done: dict[tuple[str, str], str | None] = {}
        self.settled = self.unsettled = self.slices = self.capped = self.bad_payloads = 0
        self.venue_agreed = self.venue_disagreed = 0
        self.pnl_usd = 0.0

    # --- windows ---------------------------------------------------------------------------
    def _totals(self, series: str) -> dict:
        return self.by_series.setdefault(series, _series_totals())

    def _open(self, series: str, slug: str, start_ns: int, end_ns: int, rule: Rule) -> dict | None:
        key = (series, slug)
        if key in self.done:
            return None
        w = self.windows.get(key)
        if w is not None:
            w.update(start_ns=int(start_ns), end_ns=int(end_ns), rule=rule)
            return w
        w = self.windows[key] = {"series": series, "slug": slug, "start_ns": int(start_ns), "end_ns": int(end_ns),
                                 "rule": rule, "fills": [], "usd": {"UP": 0.0, "DOWN": 0.0},
                                 "price_to_beat": None, "price_to_beat_source": None, "ptb_status": "pending"}
        held = sorted((k for k in self.windows if k[0] == series), key=lambda k: self.windows[k]["start_ns"])
        for old in held[:-KEEP_WINDOWS_PER_SERIES]:
            self._drop(old, "too many windows held")
        return w

    def _venue_price(self, w: dict, price) -> None:
        if price is not None:
            w["price_to_beat"], w["price_to_beat_source"] = float(price), settlement.VENUE

    def on_market(self, m: dict) -> None:
        """A `tick.poly.market.<series>` document: open (or update) its window; the venue's
        resolution of a window already settled here is compared with ours (counted, logged)."""
        try:
            key = (m["series"], m["slug"])
            if key in self.done:
                self._venue_check(key, (m.get("resolution") or {}).get("winner"))
                return
            rule = Rule.from_doc(m["rule"])
            w = self._open(m["series"], m["slug"], m["window_start_ns"], m["window_end_ns"], rule)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._bad("market", exc)
            return
        self._venue_price(w, m.get("price_to_beat"))

    def _venue_check(self, key: tuple[str, str], venue_winner: str | None) -> None:
        ours = self.done.get(key)
        if venue_winner is None or ours is None:
            return
        if venue_winner == ours:
            self.venue_agreed += 1
        else:
            self.venue_disagreed += 1
            log.warning("window %s %s: the venue resolved it %s, our settlement says %s",
                        key[0], key[1], venue_winner, ours)
        self.done[key] = None                  # compared once

    def _finish(self, key: tuple[str, str], winner: str | None) -> None:
        self.done[key] = winner
        while len(self.done) > KEEP_DONE:
            self.done.pop(next(iter(self.done)))

    def _window_of_edge(self, doc: dict) -> dict | None:
        series, slug = doc.get("series"), doc.get("window")
        if not series or not slug:
            return None
        w = self.windows.get((series, slug))
        if w is None and doc.get("rule") and doc.get("window_start_ns") and doc.get("window_end_ns"):
            if (series, slug) in self.done:
                return None       # settled (or dropped) already: a document of the ended window
            try:          # started mid-window: the edge document names the window and its rule
                w = self._open(series, slug, doc["window_start_ns"], doc["window_end_ns"],
                               Rule.from_doc(doc["rule"]))
            except (KeyError, TypeError, ValueError) as exc:
                self._bad("edge rule", exc)
                return None
        if w is not None:
            ptb = doc.get("price_to_beat") or {}
            if isinstance(ptb, dict) and ptb.get("source") == settlement.VENUE:
                self._venue_price(w, ptb.get("price"))
        return w

    # --- the rule --------------------------------------------------------------------------
    def buy(self, w: dict, edge: dict, side: str, kind: str, ts_ns: int) -> dict | None:
        if sum(w["usd"].values()) + self.slice_usd > self.max_usd + 1e-9:
            self.capped += 1
            self._totals(w["series"])["capped"] += 1
            return None
        cost = edge["sides"][side]["cost_per_share"]
        fill = {"ts_ns": ts_ns, "series": w["series"], "slug": w["slug"], "side": side, "kind": kind,
                "usd": self.slice_usd, "price": cost, "shares": self.slice_usd / cost}
        w["fills"].append(fill)
        w["usd"][side] += self.slice_usd
        self.slices += 1
        self._totals(w["series"])["slices"] += 1
        return fill

    def on_edge(self, doc: dict) -> list[dict]:
        """One `edge.<SYMBOL>.<series>` document; returns the paper fills it caused."""
        try:
            return self._on_edge(doc)
        except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
            self._bad("edge", exc)
            return []

    def _on_edge(self, doc: dict) -> list[dict]:
        series = doc.get("series")
        spikes = doc.get("spikes") or {}
        states = {s: (spikes.get(s) or {}).get("state") for s in SIDES}
        prev = self.prev_spike.get(series) or {"UP": None, "DOWN": None}
        self.prev_spike[series] = states
        w = self._window_of_edge(doc)
        if w is None:
            return []
        edge, acc = doc.get("edge") or {}, doc.get("accumulate") or {}
        sides = edge.get("sides") or {}
        buys = []
        if acc.get("action") == "SLICE" and (sides.get(acc.get("side")) or {}).get("cost_per_share"):
            buys.append(self.buy(w, edge, acc["side"], "slice", doc["ts_ns"]))
        fav = next((s for s in SIDES if ((spikes.get(s) or {}).get("mid") or 0) > 0.5), None)
        if fav and states[fav] == "dip" and prev[fav] != "dip" and tradable(edge, fav) \
                and (sides[fav].get("edge") or 0) > 0:
            buys.append(self.buy(w, edge, fav, "dip", doc["ts_ns"]))
        fills = [f for f in buys if f is not None]
        if fills:
            big = max(SIDES, key=lambda s: w["usd"][s])
            small = OTHER[big]
            e_small = (sides.get(small) or {}).get("edge_bps")
            if w["usd"][big] > HEDGE_RATIO * w["usd"][small] + HEDGE_SLACK_SLICES * self.slice_usd \
                    and tradable(edge, small) and e_small is not None and e_small > -HEDGE_BUFFER_BPS:
                hedge = self.buy(w, edge, small, "hedge", doc["ts_ns"])
                if hedge is not None:
                    fills.append(hedge)
        return fills

    # --- settlement ------------------------------------------------------------------------
    def on_chainlink(self, ts_ns: int, price: float) -> list[dict]:
        """Record an observation (in time order; an older or repeated one is ignored); settle what
        it makes known. Returns the settled records."""
        if self.obs and ts_ns <= self.obs[-1][0]:
            return []
        self.obs.append((int(ts_ns), float(price)))
        self.data_ns = max(self.data_ns, int(ts_ns))
        return self.settle_ready()

    def on_kline(self, k: dict) -> list[dict]:
        """A spot kline update (`tick.spot.kline.<SYMBOL>`, an ipc.schema.KLINE record); a closed
        candle is final. Returns the settled records."""
        try:
            c = settlement.candle_from_kline(k)
        except (KeyError, TypeError, ValueError) as exc:
            self._bad("kline", exc)
            return []
        key = settlement.candle_key(c)
        if settlement.supersedes(self.candles.get(key), c):
            self.candles[key] = c
        if len(self.candles) > KEEP_CANDLES:
            # the oldest go first, but never one a held window still settles on (a daily window's
            # start candle is a day older than the flood of 1m candles after it)
            needed = {k for w in self.windows.values()
                      for k in settlement.candle_keys(w["rule"], w["start_ns"], w["end_ns"])}
            spare = sorted((k for k in self.candles if k not in needed), key=lambda k: k[1])
            for old in spare[:len(self.candles) - KEEP_CANDLES]:
                del self.candles[old]
        seen = int(k.get("ts_event_ns") or 0) or c.open_time_ns
        self.data_ns = max(self.data_ns, seen, c.open_time_ns + c.tf_sec * SEC_NS if c.closed else 0)
        return self.settle_ready()

    def settle_ready(self) -> list[dict]:
        """Fix each window's price to beat as soon as it is known; settle every window whose
        settlement is known; drop the ones that cannot be settled."""
        out = []
        obs, candles = list(self.obs), list(self.candles.values())
        for key, w in list(self.windows.items()):
            if self.data_ns < w["start_ns"]:
                continue
            rule = w["rule"]
            if w["price_to_beat"] is None and w["ptb_status"] == "pending":
                ptb, src, w["ptb_status"] = settlement.beat_price(rule, w["start_ns"], None,
                                                                  obs=obs, candles=candles)
                if ptb is not None:
                    w["price_to_beat"], w["price_to_beat_source"] = ptb, src
            if self.data_ns < w["end_ns"]:
                continue
            price, st = settlement.settle(rule, w["start_ns"], w["end_ns"], obs=obs, candles=candles)
            if st == "incomplete":
                self._drop(key, "settlement incomplete: the history does not cover the rule's span")
            elif st == "ok" and w["price_to_beat"] is not None:
                out.append(self._settle(key, price))
            elif st == "ok" and w["ptb_status"] == "incomplete":
                self._drop(key, "no price to beat: the history does not cover the start, no venue number")
            elif self.data_ns > w["end_ns"] + GIVE_UP_SEC * SEC_NS:
                self._drop(key, f"{'settlement' if st == 'pending' else 'price to beat'} still pending "
                                f"{GIVE_UP_SEC} s after the end")
        return out

    def _settle(self, key: tuple[str, str], price: float) -> dict:
        w = self.windows.pop(key)
        ptb = w["price_to_beat"]
        won = settlement.winner(price, ptb)
        self._finish(key, won)
        pnl = window_pnl(w["fills"], won)
        t = self._totals(w["series"])
        self.settled += 1
        self.pnl_usd += pnl
        t["settled"] += 1
        t["pnl_usd"] += pnl
        return {"series": w["series"], "slug": w["slug"], "window_start_ns": w["start_ns"],
                "window_end_ns": w["end_ns"], "rule": w["rule"].doc(),
                "price_to_beat": ptb, "price_to_beat_source": w["price_to_beat_source"],
                "settlement": price, "winner": won,
                "cost_usd": sum(f["usd"] for f in w["fills"]),
                "shares": {s: sum(f["shares"] for f in w["fills"] if f["side"] == s) for s in SIDES},
                "fills": len(w["fills"]), "pnl_usd": pnl, "series_pnl_usd": t["pnl_usd"],
                "total_pnl_usd": self.pnl_usd}

    def _drop(self, key: tuple[str, str], why: str) -> None:
        w = self.windows.pop(key, None)
        if w is None:
            return
        self._finish(key, None)
        self.unsettled += 1
        self._totals(w["series"])["unsettled"] += 1
        log.warning("window %s %s not settled: %s", w["series"], w["slug"], why)

    def _bad(self, what: str, exc: Exception) -> None:
        self.bad_payloads += 1
        if self.bad_payloads <= 10 or self.bad_payloads % 1000 == 0:
            log.warning("bad %s payload (#%d): %s: %s", what, self.bad_payloads, type(exc).__name__,
                        str(exc)[:200])


def topics(symbol: str) -> tuple[tuple[str, ...], str, str]:
    """(edge and market topics of every series, the Chainlink topic, the spot kline topic)."""
    per_series = tuple(t for s in names.POLY_SERIES for t in (names.edge_topic(symbol, s), names.poly_market_topic(s)))
    return per_series, names.CHAINLINK_RING.topic(symbol), names.SPOT_RINGS["kline"].topic(symbol)


def main(settings: Settings) -> None:
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    symbol = settings.general.symbol
    per_series, chainlink_topic, kline_topic = topics(symbol)
    sub = Subscriber(settings.ipc.zmq_pub_url, (*per_series, chainlink_topic, kline_topic))
    hb = Heartbeat(Registry(settings.ipc.shm_dir, settings.ipc.shm_prefix), "strategy")
    strat = Strategy(settings.decisions.slice_usd, settings.decisions.max_usd_per_window)
    path = settled_path(settings.decisions.decision_log_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "ab")
    last_beat = 0.0
    log.info("strategy up: slice %s USD, cap %s USD per window, settled windows to %s",
             settings.decisions.slice_usd, settings.decisions.max_usd_per_window, path)
    try:
        while not stop:
            ev = sub.recv(200)
            if ev is not None:
                if ev.lost or ev.restarted:
                    log.warning("%s: %d lost, restarted=%s", ev.topic, ev.lost, ev.restarted)
                settled: list[dict] = []
                if ev.topic.startswith(names.POLY_MARKET_PREFIX):
                    strat.on_market(ev.msg)
                elif ev.topic == chainlink_topic:
                    if not ev.msg.get("gap") and ev.msg.get("price") is not None:
                        settled = strat.on_chainlink(ev.msg["ts_event_ns"], ev.msg["price"])
                elif ev.topic == kline_topic:
                    if not ev.msg.get("gap"):
                        settled = strat.on_kline(ev.msg)
                elif names.parse_edge_topic(ev.topic):
                    for f in strat.on_edge(ev.msg):
                        log.info("fill", extra=f)
                for rec in settled:
                    log.info("settled", extra=rec)
                    out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
                    out.flush()
            if time.monotonic() - last_beat >= 0.5:
                last_beat = time.monotonic()
                tr = sub.tracks.values()
                hb.beat({"windows_settled": strat.settled, "windows_unsettled": strat.unsettled,
                         "pnl_usd": strat.pnl_usd, "slices": strat.slices, "capped": strat.capped,
                         "windows_held": len(strat.windows), "bad_payloads": strat.bad_payloads,
                         "venue_agreed": strat.venue_agreed, "venue_disagreed": strat.venue_disagreed,
                         "received": sum(t.received for t in tr), "seq_gaps": sum(t.gaps for t in tr),
                         "seq_lost": sum(t.lost for t in tr), "restarts": sum(t.restarts for t in tr)},
                        settled_file=str(path), series={s: dict(t) for s, t in strat.by_series.items()})
    finally:
        out.close()
        sub.close()
        log.info("strategy stopped: %d windows settled, pnl %.4f USD", strat.settled, strat.pnl_usd)
