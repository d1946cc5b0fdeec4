"""The terminal dashboard's data model (`python run.py tui`): pure, no I/O, no clock.

`DashState` is fed REST snapshots (`apply_rest`: GET /state and /latest/*) for the first screen and
bus messages (`apply_bus`: `features.<SYMBOL>`, `edge.<SYMBOL>.<series>`, `bar.*`, `state`,
`tick.poly.market.<series>`, `tick.poly.book.<series>.<UP|DOWN>`, `tick.chainlink.price.*`), and
answers the view's questions as rows of `Val`s. Every method that needs the time takes `now_ns`
(epoch ns).

Every up/down series is its own row set (`series_keys`, `series_info`): its window, time left,
price to beat with its source (the venue's number or compute's estimate by the market's rule),
fair value, books, per-side edge in probability points and return on cost, the decision with its
vetoes and the ages of the decision's inputs. Topics are recognised by ipc.names
(`parse_edge_topic`, `parse_poly_topic`, `POLY_MARKET_PREFIX`), never split by hand.

Invariants:
- never a made-up number: a value the payloads do not give is `Val(None, reason)`, with the
  payload's own reason (`<field>_reason`, else the block's `reason`) when it gives one;
- a document replaces the one held only if it is not older (`ts_ns`, the document's data time:
  the same in the REST snapshot and on the bus, which adds its wall clock as `pub_ts_ns` and never
  overwrites `ts_ns`, so the comparison holds under replay too): a slow REST answer never rolls
  back a newer bus message;
- closed bars are kept per (venue, tf) in start order, without duplicates, at most KEEP_BARS;
- a series' window is replaced only by a window that starts no earlier; a market document of an
  older window (its resolution) is kept among that series' `resolved`; a book tick of another
  window than the series' current one (the feed also follows the next window) is not shown;
- loss on the bus is the Subscriber's seq bookkeeping (`lost`, `restarted`), counted per topic;
- actor heartbeats come from GET /state, polled every STATE_POLL_NS: the bus's `state` topic also
  carries each actor's health in short (pid, heartbeat age, alive), but only as often as compute
  republishes the quality, and without the heartbeat extras; a /latest/* snapshot is fetched at start
  and again only while the bus is quiet on its topics (REST_FALLBACK_QUIET_NS).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ipc import names
from ipc.names import BINANCE_VENUES as VENUES

MS_NS = 1_000_000
SEC_NS = 1_000_000_000
KEEP_BARS = 120
KEEP_EVENTS = 50
KEEP_RESOLVED = 5                        # resolved windows kept per series
SIDES = names.POLY_TOKENS
PRIMARY_VENUE = names.FUTURES            # compute's primary venue: VWAP, volatility, impulse shown
STATE_POLL_NS = 1 * SEC_NS               # heartbeats are not on the bus: poll /state this often
REST_FALLBACK_QUIET_NS = 3 * SEC_NS      # bus silent this long on a doc's topics: poll REST
REST_RETRY_NS = 1 * SEC_NS               # at most one request per path per this long

# which bus topic prefixes keep each REST snapshot fresh
REST_PATHS = {"/latest/features": (names.FEATURES_PREFIX,), "/latest/edge": (names.EDGE_PREFIX,),
              "/latest/bars": (names.BAR_PREFIX, names.FEATURES_PREFIX),
              "/latest/polymarket": (names.POLY_TICK_PREFIX,)}
STATE_PATH = "/state"


@dataclass(frozen=True)
class Val:
    """A value to show, or None with why not; `age_ms` is the age of its input when known."""
    value: Any
    reason: str | None = None
    age_ms: float | None = None
    note: str | None = None      # where the value comes from, when that matters (price to beat)


def get(doc: Any, *path: str) -> Any:
    """doc[p0][p1]…, None where any step is missing or not a dict."""
    for p in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)
    return doc


def val(block: dict | None, key: str, missing: str, age_ms: float | None = None) -> Val:
    """`block[key]` as a Val; when None, the payload's reason for it, else `missing` if the block
    itself is absent, else no reason (the payload gave none)."""
    if not isinstance(block, dict):
        return Val(None, missing)
    v = block.get(key)
    if v is None:
        return Val(None, block.get(f"{key}_reason") or block.get("reason"))
    return Val(v, None, age_ms)


@dataclass
class TopicStat:
    received: int = 0
    gaps: int = 0            # gap events (seq jumps)
    lost: int = 0            # messages missing by seq
    restarts: int = 0        # publisher restarts (new boot)
    last_ns: int = 0         # local receive time of the last message


@dataclass
class RestStat:
    ok: int = 0
    errors: int = 0
    last_ok_ns: int = 0
    last_error: str | None = None
    requested_ns: int = 0
    inflight: bool = False


@dataclass
class DashState:
    symbol: str = "BTCUSDT"
    required: tuple[str, ...] = ()
    followed: tuple[str, ...] = ()         # the series the system follows (shown even before data)
    features: dict | None = None
    edges: dict[str, dict] = field(default_factory=dict)     # series -> its newest edge document
    # series -> {"window", "next", "books", "resolved", "ts_ns"}: /latest/polymarket's entry of the
    # series, its window replaced by tick.poly.market.<series> and its books patched by book ticks
    markets: dict[str, dict] = field(default_factory=dict)
    poly_disabled: str | None = None       # /latest/polymarket's `disabled` (why the side is off)
    quality: dict | None = None
    actors: dict | None = None             # /state "actors" as fetched
    actors_fetched_ns: int = 0
    # the newest Chainlink tick from the bus: (observation ts ns, price, receive lag ms, local receive
    # ns); its age is lag + time since receipt, so it holds on a replay's data clock too
    chainlink: tuple[int, float, float, int] | None = None
    alerts: list = field(default_factory=list)   # /state "alerts" (actors reporting one), if any
    bars: dict = field(default_factory=dict)     # (venue, tf) -> {"current": dict|None, "closed": deque}
    topics: dict[str, TopicStat] = field(default_factory=dict)
    rest: dict[str, RestStat] = field(default_factory=dict)
    rest_missing: dict[str, str] = field(default_factory=dict)   # path -> why the API had no data
    api_down_since_ns: int = 0             # 0 while the API answers
    api_error: str | None = None
    bus_last_ns: int = 0
    bad_payloads: int = 0
    events: deque = field(default_factory=lambda: deque(maxlen=KEEP_EVENTS))
    # series -> (ts_ns, decision, reason) of its last decision other than NONE
    last_decision: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    _decision_key: dict[str, str | None] = field(default_factory=dict)

    # --- input: REST ------------------------------------------------------------------------
    def rest_due(self, now_ns: int) -> list[str]:
        """Paths to fetch now; each is marked in flight until `apply_rest` sees its answer."""
        due = []
        for path in (STATE_PATH, *REST_PATHS):
            st = self.rest.setdefault(path, RestStat())
            if st.inflight or now_ns - st.requested_ns < (STATE_POLL_NS if path == STATE_PATH
                                                          else REST_RETRY_NS):
                continue
            if path != STATE_PATH and st.ok and self._bus_fresh(REST_PATHS[path], now_ns):
                continue
            st.inflight, st.requested_ns = True, now_ns
            due.append(path)
        return due

    def _bus_fresh(self, prefixes: tuple[str, ...], now_ns: int) -> bool:
        return any(now_ns - t.last_ns < REST_FALLBACK_QUIET_NS
                   for name, t in self.topics.items() if name.startswith(prefixes))

    def apply_rest(self, path: str, status: int | None, doc: Any, error: str | None,
                   now_ns: int) -> None:
        """One REST answer: `status` None means no HTTP answer at all (`error` says why)."""
        st = self.rest.setdefault(path, RestStat())
        st.inflight = False
        if status is None:
            st.errors += 1
            st.last_error = error
            if not self.api_down_since_ns:
                self.api_down_since_ns = now_ns
                self.event(now_ns, f"API unreachable: {error}", "bad")
            self.api_error = error
            return
        if self.api_down_since_ns:
            self.event(now_ns, "API reachable again", "ok")
        self.api_down_since_ns, self.api_error = 0, None
        if status != 200 or not isinstance(doc, dict):
            st.errors += 1
            why = (get(doc, "title") or f"HTTP {status}") if isinstance(doc, dict) else f"HTTP {status}"
            desc = get(doc, "description")
            st.last_error = self.rest_missing[path] = f"{why}: {desc}" if desc else why
            return
        st.ok += 1
        st.last_ok_ns, st.last_error = now_ns, None
        self.rest_missing.pop(path, None)
        try:
            if path == STATE_PATH:
                self.actors, self.actors_fetched_ns = doc.get("actors") or {}, now_ns
                self.alerts = list(doc.get("alerts") or ())
                if isinstance(doc.get("quality"), dict):
                    self._set_quality(doc["quality"], now_ns)
            elif path == "/latest/features":
                self._set_features(doc, now_ns)
            elif path == "/latest/edge":
                if "disabled" in doc:
                    self.poly_disabled = doc.get("disabled")
                if isinstance(doc.get("series"), dict):          # the block: every series
                    for series, e in doc["series"].items():
                        self._set_edge(series, e, now_ns)
                elif doc.get("series") in names.POLY_SERIES:       # ?series=: one document
                    self._set_edge(doc["series"], doc, now_ns)
            elif path == "/latest/bars":
                for venue, tfs in (doc.get("venues") or {}).items():
                    for tf, b in (tfs or {}).items():
                        self._set_current_bar(venue, tf, b.get("current"))
                        for bar in b.get("closed") or ():
                            self._add_closed_bar(venue, tf, bar)
            elif path == "/latest/polymarket":
                self.poly_disabled = doc.get("disabled")
                entries = doc.get("series")
                if isinstance(entries, dict):
                    for series, entry in entries.items():
                        self._set_poly_entry(series, entry, doc.get("ts_ns"), now_ns)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._bad(now_ns, path, exc)

    # --- input: bus -------------------------------------------------------------------------
    def apply_bus(self, topic: str, msg: Any, lost: int, restarted: bool, now_ns: int) -> None:
        """One bus message with the Subscriber's verdict on it (messages lost just before it,
        publisher restarted)."""
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = TopicStat()
        t.received += 1
        t.last_ns = self.bus_last_ns = now_ns
        if lost:
            t.gaps += 1
            t.lost += lost
            self.event(now_ns, f"bus gap on {topic}: {lost} message(s) lost", "warn")
        if restarted:
            t.restarts += 1
            self.event(now_ns, f"publisher of {topic} restarted", "warn")
        if not isinstance(msg, dict):
            self._bad(now_ns, topic, TypeError("payload is not a JSON object"))
            return
        try:
            if topic == names.features_topic(self.symbol):
                self._set_features(msg, now_ns)
            elif (e := names.parse_edge_topic(topic)) is not None:
                if e[0] == self.symbol:
                    self._set_edge(e[1], msg, now_ns)
            elif (bar := names.parse_bar_topic(topic)) and bar[2] == self.symbol:
                tf, venue, _ = bar
                self._add_closed_bar(venue, tf, msg)
            elif topic == names.STATE_TOPIC:
                if "mode" in msg:
                    self._set_quality(msg, now_ns)
                elif msg.get("event"):
                    self.event(now_ns, f"compute: {msg['event']}"
                               + (f" at {_hms(msg['anchor_ns'])}" if msg.get("anchor_ns") else ""))
            elif topic.startswith(names.POLY_MARKET_PREFIX):
                series = topic[len(names.POLY_MARKET_PREFIX):]
                if series not in names.POLY_SERIES:
                    raise ValueError(f"not a series: {series!r}")
                self._set_market(series, msg, now_ns)
            elif (p := names.parse_poly_topic(topic)) is not None:
                kind, series, side = p
                if kind == "book":
                    self._set_poly_book(series, side, msg)
            elif topic.startswith(names.CHAINLINK_TOPIC_PREFIX):
                if msg.get("price") is not None and not msg.get("gap"):
                    ts = int(msg["ts_event_ns"])
                    lag_ms = (int(msg.get("ts_recv_ns") or ts) - ts) / MS_NS
                    self.chainlink = (ts, float(msg["price"]), lag_ms, now_ns)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._bad(now_ns, topic, exc)

    # --- internal setters ---------------------------------------------------------------------
    def _bad(self, now_ns: int, where: str, exc: Exception) -> None:
        self.bad_payloads += 1
        self.event(now_ns, f"bad payload on {where}: {type(exc).__name__}: {exc}"[:160], "bad")

    def event(self, ts_ns: int, text: str, level: str = "info") -> None:
        self.events.append((ts_ns, text, level))

    def _set_quality(self, q: dict, now_ns: int) -> None:
        if not _newer(q, self.quality):
            return
        old = (self.quality or {}).get("mode")
        self.quality = q
        if old and q.get("mode") != old:
            self.event(now_ns, f"quality {old} → {q.get('mode')}",
                       "ok" if q.get("mode") == "OK" else "warn")

    def _set_features(self, doc: dict, now_ns: int) -> None:
        if not _newer(doc, self.features):
            return
        self.features = doc
        for venue, v in (doc.get("venues") or {}).items():
            for tf, bar in (v.get("bars") or {}).items():
                self._set_current_bar(venue, tf, bar)
        if isinstance(doc.get("quality"), dict):
            self._set_quality({**doc["quality"], "ts_ns": doc.get("ts_ns")}, now_ns)

    def _set_edge(self, series: str, doc: dict, now_ns: int) -> None:
        if series not in names.POLY_SERIES or not isinstance(doc, dict):
            raise ValueError(f"an edge document of {series!r}")
        if not _newer(doc, self.edges.get(series)):
            return
        self.edges[series] = doc
        e = doc.get("edge") or {}
        key = e.get("decision")        # (the vetoes churn every few ticks: only a new decision is news)
        if key != self._decision_key.get(series):
            self._decision_key[series] = key
            if e.get("decision") not in (None, "NONE"):
                self.last_decision[series] = (doc.get("ts_ns") or now_ns, e["decision"], e.get("reason"))
                self.event(now_ns, f"{series} decision {e['decision']}: {e.get('reason')}", "ok")
        acc = doc.get("accumulate") or {}
        if acc.get("action") == "SLICE":
            self.event(now_ns, f"{series} accumulate: slice {acc.get('side')} {acc.get('slice_usd')} USD", "ok")

    def _entry(self, series: str) -> dict:
        m = self.markets.get(series)
        if m is None:
            m = self.markets[series] = {"window": None, "next": None, "books": {}, "resolved": [], "ts_ns": None}
        return m

    def _set_poly_entry(self, series: str, entry: dict, ts_ns, now_ns: int) -> None:
        """One series of a /latest/polymarket snapshot; an older snapshot never rolls back a newer one."""
        if series not in names.POLY_SERIES or not isinstance(entry, dict):
            raise ValueError(f"a polymarket entry of {series!r}")
        held = self.markets.get(series)
        if held is not None and not _newer({"ts_ns": ts_ns}, held):
            return
        old = get(held, "window", "slug")
        self.markets[series] = {"window": entry.get("window"), "next": entry.get("next"),
                                "books": dict(entry.get("books") or {}),
                                "resolved": list(entry.get("resolved") or ())[-KEEP_RESOLVED:], "ts_ns": ts_ns}
        new = get(entry, "window", "slug")
        if held is not None and new != old:
            self.event(now_ns, f"{series} window → {new}")

    def _set_market(self, series: str, msg: dict, now_ns: int) -> None:
        """tick.poly.market.<series>: the series' new window, or the resolution of a window."""
        m = self._entry(series)
        cur = m["window"]
        res = msg.get("resolution")
        if res:
            self.event(now_ns, f"{series} {msg.get('slug')} resolved {get(res, 'winner')} "
                               f"({get(res, 'source')})", "ok")
        if cur is None or msg.get("slug") == cur.get("slug") or \
                (msg.get("window_start_ns") or 0) > (cur.get("window_start_ns") or 0):
            if cur is not None and msg.get("slug") != cur.get("slug"):
                m["books"] = {}                   # the old window's books say nothing of this one
            m["window"] = msg
            if msg.get("slug") != (cur or {}).get("slug"):
                self.event(now_ns, f"{series} window → {msg.get('slug')}")
        if res:
            m["resolved"] = [r for r in m["resolved"] if r.get("slug") != msg.get("slug")][-(KEEP_RESOLVED - 1):] + [msg]

    def _set_poly_book(self, series: str, side: str, rec: dict) -> None:
        """A book tick over the snapshot, if it is of the series' current window."""
        m = self._entry(series)
        ws = rec.get("window_start_ns")
        cur = get(m, "window", "window_start_ns")
        if ws is not None and cur is not None and ws != cur:
            return                                   # the next window's book (the feed follows both)
        bid, ask = rec.get("best_bid"), rec.get("best_ask")
        valid = bid is not None and ask is not None and bid == bid and ask == ask   # NaN: side empty
        m["books"][side] = dict(m["books"].get(side) or {}, best_bid=bid if bid == bid else None,
                                best_ask=ask if ask == ask else None,
                                mid=(bid + ask) / 2 if valid else None,
                                last_trade=rec.get("last_trade"), ts_recv_ns=rec.get("ts_recv_ns"),
                                age_s=None, valid=valid)

    def _bars(self, venue: str, tf: str) -> dict:
        b = self.bars.get((venue, tf))
        if b is None:
            b = self.bars[(venue, tf)] = {"current": None, "closed": deque(maxlen=KEEP_BARS)}
        return b

    def _set_current_bar(self, venue: str, tf: str, bar: dict | None) -> None:
        b = self._bars(venue, tf)
        cur = b["current"]
        if bar is None or (cur is not None and bar.get("start_ns", 0) < cur.get("start_ns", 0)):
            return
        b["current"] = bar

    def _add_closed_bar(self, venue: str, tf: str, bar: dict) -> None:
        closed = self._bars(venue, tf)["closed"]
        start = bar["start_ns"]
        if closed and start <= closed[-1]["start_ns"]:
            if any(c["start_ns"] == start for c in closed):
                return                       # already held (REST snapshot and bus overlap)
            merged = sorted([*closed, bar], key=lambda c: c["start_ns"])
            closed.clear()
            closed.extend(merged[-KEEP_BARS:])
            return
        closed.append(bar)

    # --- output: what the view shows ----------------------------------------------------------
    def api_status(self, now_ns: int) -> Val:
        if self.api_down_since_ns:
            return Val(None, f"API unreachable for {(now_ns - self.api_down_since_ns) / SEC_NS:.0f} s "
                             f"({self.api_error}); retrying")
        st = self.rest.get(STATE_PATH)
        if st is None or not (st.ok or st.errors):
            return Val(None, "connecting to the API")
        return Val("ok")

    def bus_status(self, now_ns: int) -> Val:
        if not self.bus_last_ns:
            return Val(None, "no bus message yet")
        return Val("live", None, max(0.0, (now_ns - self.bus_last_ns) / MS_NS))

    def bus_totals(self) -> tuple[int, int, int, int]:
        """(received, gap events, messages lost, publisher restarts) over every topic."""
        ts = self.topics.values()
        return (sum(t.received for t in ts), sum(t.gaps for t in ts), sum(t.lost for t in ts),
                sum(t.restarts for t in ts))

    def _why(self, path: str, what: str) -> str:
        if self.api_down_since_ns and path not in self.rest_missing:
            return f"no {what} yet: API unreachable"
        return self.rest_missing.get(path) or f"no {what} yet"

    def _venue(self, venue: str) -> tuple[dict | None, str]:
        if self.features is None:
            return None, self._why("/latest/features", "features")
        v = get(self.features, "venues", venue)
        return v, f"no {venue} data yet"

    def _basis_why(self) -> str:
        return self._why("/latest/features", "features") if self.features is None else "no basis block"

    def quality_val(self) -> tuple[Val, list[str]]:
        if self.quality is None:
            return Val(None, self._why(STATE_PATH, "quality")), []
        r = self.quality.get("reasons")
        return Val(self.quality.get("mode")), ([str(x) for x in r] if isinstance(r, list)
                                               else [] if r is None else [f"?{r}"])

    def price_rows(self, now_ns: int) -> list[tuple[str, Val]]:
        rows = []
        for venue in VENUES:
            v, why = self._venue(venue)
            rows.append((f"{venue} last", val(v, "last_price", why, get(v, "trade_age_ms"))))
            book = get(v, "book")
            if v is not None and book is None:
                rows.append((f"{venue} mid", Val(None, v.get("book_reason") or "no quote yet")))
            else:
                rows.append((f"{venue} mid", val(book, "mid", why, get(v, "quote_age_ms"))))
        basis, why = get(self.features, "basis"), self._basis_why()
        rows.append(("mark", val(basis, "mark", why, get(basis, "mark_age_ms"))))
        rows.append(("index", val(basis, "index", why, get(basis, "mark_age_ms"))))
        rows.append(("chainlink", self.chainlink_val(now_ns)))
        return rows

    def chainlink_val(self, now_ns: int) -> Val:
        """The newest Chainlink observation: the bus tick's or an edge doc's input, by observation
        time. Ages come from the data's own stamps (plus wall time since receipt), never from
        comparing the wall clock with a data time, so they are right under replay too."""
        best = None
        for doc in self.edges.values():
            c = get(doc, "inputs", "chainlink")
            if c and c.get("price") is not None and c.get("obs_ns") and (best is None or c["obs_ns"] > best[0]):
                best = (c["obs_ns"], Val(c["price"], None, c.get("age_ms")))
        if self.chainlink is not None and (best is None or self.chainlink[0] > best[0]):
            ts, px, lag_ms, recv_ns = self.chainlink
            best = (ts, Val(px, None, lag_ms + max(0, now_ns - recv_ns) / MS_NS))
        return best[1] if best else Val(None, "no Chainlink observation yet")

    def flow_rows(self) -> list[tuple[str, Val, str]]:
        """(label, value, kind): kind picks the view's number format."""
        basis, why = get(self.features, "basis"), self._basis_why()
        rows = [("basis", val(basis, "basis_bps", why), "bps"),
                ("mark premium", val(basis, "premium_bps", why), "bps"),
                ("funding", val(basis, "funding_bps", why), "bps")]
        for venue in VENUES:
            v, vwhy = self._venue(venue)
            rows.append((f"CVD {venue}", val(get(v, "cvd"), "cvd", vwhy), "qty"))
        fut, fwhy = self._venue(PRIMARY_VENUE)
        vw = get(fut, "vwap")
        rows += [(f"VWAP {PRIMARY_VENUE}", val(vw, "vwap", fwhy), "price"),
                 ("VWAP dev", val(vw, "dev_bps", fwhy), "bps"),
                 ("VWAP dev σ", val(vw, "dev_sigma", fwhy), "z")]
        vol = get(fut, "volatility")
        rows += [("σ fast (ann.)", val(vol, "sigma_fast_ann", fwhy), "pct"),
                 ("σ slow (ann.)", val(vol, "sigma_slow_ann", fwhy), "pct"),
                 ("σ blend (ann.)", val(vol, "sigma_blend_ann", fwhy), "pct"),
                 ("impulse z", val(get(fut, "impulse"), "z", fwhy), "z"),
                 ("bias", val(get(self.features, "bias"), "score", why), "z")]
        return rows

    # --- the up/down series -------------------------------------------------------------------
    def series_keys(self) -> list[str]:
        """Every series to show: the followed ones and any the payloads carry, in POLY_SERIES order."""
        have = {*self.followed, *self.edges, *self.markets}
        return [s for s in names.POLY_SERIES if s in have]

    def _series_why(self, path: str, what: str) -> str:
        if self.poly_disabled:
            return f"Polymarket off: {self.poly_disabled}"
        return self._why(path, what)

    def series_info(self, series: str, now_ns: int) -> dict:
        """One series: window, time left, price to beat (note: its source), fair, per side (bid,
        ask, fair, edge in probability points, return on cost, book age, vetoes), the decision
        with its reason and global vetoes, the accumulator, and the input ages."""
        m = self.markets.get(series) or {}
        w = m.get("window")
        doc = self.edges.get(series)
        why_w = self._series_why("/latest/polymarket", "window")
        why_e = self._series_why("/latest/edge", "edge")
        slug = (w or {}).get("slug") or get(doc, "window")
        # the edge document is about this window (the market topic may already name the next one)
        cur = doc if doc is not None and (w is None or get(doc, "window") == w.get("slug")) else None
        out: dict = {"series": series, "slug": Val(slug, None if slug else why_w)}
        start = (w or {}).get("window_start_ns") or get(cur, "window_start_ns")
        end = (w or {}).get("window_end_ns") or get(cur, "window_end_ns")
        out["span"] = (start, end) if is_number(start) and is_number(end) else None
        # time left: compute's, on the data clock; else from the window end
        left = get(cur, "edge", "time_left_s")
        if left is None and cur is not None and get(cur, "window_end_ns") and cur.get("ts_ns"):
            left = (cur["window_end_ns"] - cur["ts_ns"]) / SEC_NS
        if left is None and end:
            left = (end - now_ns) / SEC_NS
        out["time_left_s"] = Val(max(0.0, left)) if left is not None else Val(None, why_w if w is None else "no window end")
        out["price_to_beat"] = self._ptb(cur, w, why_e)
        rule = get(cur, "rule") or (w or {}).get("rule") or {}
        out["rule"] = rule.get("method") if isinstance(rule, dict) else None
        fair = get(cur, "fair")
        out["fair"] = (Val(None, why_e) if fair is None else
                       Val(fair.get("fast"), None if fair.get("fast") is not None else fair.get("reason")))
        out["sides"] = [self._side(series, side, m, cur, why_e) for side in SIDES]
        e = get(cur, "edge")
        if e is None:
            out.update(decision=Val(None, why_e), reason=None, vetoes=[], accumulate=None)
        else:
            out.update(decision=Val(e.get("decision")), reason=e.get("reason"),
                       vetoes=[f"{v['code']}: {v.get('reason')}" for v in e.get("vetoes") or ()
                               if isinstance(v, dict) and v.get("side") is None],
                       accumulate=get(cur, "accumulate"))
        inputs = get(cur, "inputs") or {}
        out["ages"] = {k: (Val(get(inputs, k, "age_ms"), None) if get(inputs, k, "age_ms") is not None
                           else Val(None, get(inputs, k, "reason") or ("no input" if cur else why_e)))
                       for k in ("binance", "chainlink")}
        if get(inputs, "candle") is not None:
            out["ages"]["candle"] = Val(get(inputs, "candle", "age_ms"))
        out["last"] = self.last_decision.get(series)
        return out

    def _ptb(self, cur: dict | None, w: dict | None, why: str) -> Val:
        """compute's price to beat (the venue's or its estimate), else the market doc's (the venue's)."""
        p = get(cur, "price_to_beat")
        if isinstance(p, dict) and p.get("price") is not None:
            return Val(p["price"], note=p.get("source"))
        if w is not None and w.get("price_to_beat") is not None:
            return Val(w["price_to_beat"], note="venue")
        if isinstance(p, dict):
            return Val(None, f"not known yet ({p.get('method') or '?'}: {p.get('status') or 'pending'})")
        return Val(None, why if w is None else "not known yet")

    def _side(self, series: str, side: str, m: dict, cur: dict | None, why_e: str) -> dict:
        e = get(cur, "edge", "sides", side)
        book = get(m, "books", side)
        inp = get(cur, "inputs", "books", side)
        why_b = self._series_why("/latest/polymarket", "book")
        if book is not None:               # the feed's book (a tick is fresher than the edge doc)
            bwhy = None if book.get("valid") else "book not valid"
            bid, ask = (Val(book.get(k), bwhy) if bwhy is None else Val(None, bwhy) for k in ("best_bid", "best_ask"))
        elif inp is not None:              # the book the decision used
            bid, ask = (Val(inp.get(k), None if inp.get(k) is not None else inp.get("reason"))
                        for k in ("best_bid", "best_ask"))
        else:
            bid = ask = Val(None, why_b)
        if e is None:
            fair = edge_pts = roc = Val(None, why_e)
            vetoes: list[str] = []
        else:
            vetoes = [v["code"] for v in e.get("vetoes") or () if isinstance(v, dict)]
            why = e.get("reason") or ", ".join(vetoes) or None
            fair = Val(e.get("fair"), None if e.get("fair") is not None else why)
            pts = e.get("edge")
            edge_pts = Val(pts * 100 if is_number(pts) else pts, None if pts is not None else why)
            r = e.get("return_on_cost")
            roc = Val(r, None if r is not None else why)
        age = get(inp, "age_ms")
        if age is None and e is not None:
            age = e.get("age_ms")
        return {"side": side, "bid": bid, "ask": ask, "fair": fair, "edge_pts": edge_pts, "roc": roc,
                "book_age_ms": Val(age, None if age is not None else (get(inp, "reason") or "no book yet")),
                "vetoes": vetoes}

    def actor_rows(self, now_ns: int) -> list[dict]:
        """One row per actor seen in /state (required ones too when never seen). Ages are the
        ones /state gave plus the time since it was fetched."""
        actors = self.actors or {}
        since_ms = (now_ns - self.actors_fetched_ns) / MS_NS if self.actors_fetched_ns else 0.0
        rows = []
        for name in dict.fromkeys((*self.required, *actors)):
            a = actors.get(name)
            if a is None:
                rows.append({"name": name, "status": Val(None, "never seen" if self.actors is not None
                                                         else self._why(STATE_PATH, "heartbeats")),
                             "heartbeat_age_ms": Val(None), "data_age_ms": Val(None), "stale": [],
                             "reconnects": None, "error": None, "pid": None, "uptime_s": None})
                continue
            streams = a.get("streams") or {}
            ages = [s["age_ms"] for s in streams.values() if s.get("age_ms") is not None]
            status = ("up" if a.get("alive") else "down" if not a.get("running") else "stalled")
            if a.get("data_fresh") is False:
                status = "stale"
            hb = a.get("heartbeat_age_ms")
            rows.append({
                "name": name, "status": Val(status),
                "heartbeat_age_ms": Val(None if hb is None else hb + since_ms),
                "data_age_ms": (Val(min(ages) + since_ms) if ages else
                                Val(None, "no stream yet" if streams else None)),
                "stale": [k for k, s in streams.items() if not s.get("fresh", True)],
                "reconnects": (sum(c.get("reconnects", 0) for c in (a.get("connections") or {}).values())
                               if a.get("connections") else None),
                "error": a.get("last_venue_error") or None, "pid": a.get("pid"),
                "uptime_s": a.get("uptime_s")})
        return rows

    def topic_rows(self, now_ns: int) -> list[tuple[str, TopicStat, float]]:
        """(topic, stats, age of its last message in ms), sorted by topic."""
        return [(name, t, (now_ns - t.last_ns) / MS_NS) for name, t in sorted(self.topics.items())]

    def bar_rows(self, venue: str, tf: str, n: int) -> tuple[list[dict], str | None]:
        """The current bar then the n−1 newest closed ones, newest first; or why there are none."""
        b = self.bars.get((venue, tf))
        if b is None or (b["current"] is None and not b["closed"]):
            return [], self._why("/latest/bars", f"{venue} {tf} bars")
        rows = [b["current"]] if b["current"] is not None else []
        closed = list(b["closed"])
        if rows and closed and closed[-1]["start_ns"] >= rows[0]["start_ns"]:
            rows = []                        # the "current" one has closed meanwhile
        rows += closed[::-1]
        return rows[:n], None


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _newer(doc: dict, held: dict | None) -> bool:
    if held is None:
        return True
    a, b = doc.get("ts_ns"), held.get("ts_ns")
    return a is None or b is None or a >= b


def _hms(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / SEC_NS))
