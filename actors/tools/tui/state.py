"""The terminal dashboard's data model (`python run.py tui`): pure, no I/O, no clock.

`DashState` is fed REST snapshots (`apply_rest`: GET /state and /latest/*) for the first screen and
bus messages (`apply_bus`: `features.<SYMBOL>`, `edge.<SYMBOL>`, `bar.*`, `state`,
`tick.poly.market`, `tick.poly.book.*`, `tick.chainlink.price.*`), and answers the view's
questions as rows of `Val`s. Every method that needs the time takes `now_ns` (epoch ns).

Invariants:
- never a made-up number: a value the payloads do not give is `Val(None, reason)`, with the
  payload's own reason (`<field>_reason`, else the block's `reason`) when it gives one;
- a document replaces the one held only if it is not older (`ts_ns`, the document's data time:
  the same in the REST snapshot and on the bus, which adds its wall clock as `pub_ts_ns` and never
  overwrites `ts_ns`, so the comparison holds under replay too): a slow REST answer never rolls
  back a newer bus message;
- closed bars are kept per (venue, tf) in start order, without duplicates, at most KEEP_BARS;
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
from ipc.names import BAR_TFS, BINANCE_VENUES as VENUES

MS_NS = 1_000_000
SEC_NS = 1_000_000_000
KEEP_BARS = 120
KEEP_EVENTS = 50
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
    features: dict | None = None
    edge: dict | None = None
    poly: dict | None = None               # /latest/polymarket, window and books patched by ticks
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
    last_decision: tuple[int, str, str | None] | None = None   # (ts_ns, decision, reason), not NONE
    _decision_key: str | None = None

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
                self._set_edge(doc, now_ns)
            elif path == "/latest/bars":
                for venue, tfs in (doc.get("venues") or {}).items():
                    for tf, b in (tfs or {}).items():
                        self._set_current_bar(venue, tf, b.get("current"))
                        for bar in b.get("closed") or ():
                            self._add_closed_bar(venue, tf, bar)
            elif path == "/latest/polymarket":
                if _newer(doc, self.poly):
                    self.poly = doc
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
            elif topic == names.edge_topic(self.symbol):
                self._set_edge(msg, now_ns)
            elif (bar := names.parse_bar_topic(topic)) and bar[2] == self.symbol:
                tf, venue, _ = bar
                self._add_closed_bar(venue, tf, msg)
            elif topic == names.STATE_TOPIC:
                if "mode" in msg:
                    self._set_quality(msg, now_ns)
                elif msg.get("event"):
                    self.event(now_ns, f"compute: {msg['event']}"
                               + (f" at {_hms(msg['anchor_ns'])}" if msg.get("anchor_ns") else ""))
            elif topic == names.POLY_MARKET_TOPIC:
                old = get(self.poly, "window", "slug")
                self.poly = dict(self.poly or {}, window=msg)
                if msg.get("slug") != old:
                    self.event(now_ns, f"window → {msg.get('slug')}")
            elif topic.startswith(names.POLY_BOOK_TOPIC_PREFIX):
                self._set_poly_book(names.poly_book_token(topic), msg)
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

    def _set_edge(self, doc: dict, now_ns: int) -> None:
        if not _newer(doc, self.edge):
            return
        self.edge = doc
        e = doc.get("edge") or {}
        key = e.get("decision")        # (the vetoes churn every few ticks: only a new decision is news)
        if key != self._decision_key:
            self._decision_key = key
            if e.get("decision") not in (None, "NONE"):
                self.last_decision = (doc.get("ts_ns") or now_ns, e["decision"], e.get("reason"))
                self.event(now_ns, f"decision {e['decision']}: {e.get('reason')}", "ok")
        acc = doc.get("accumulate") or {}
        if acc.get("action") == "SLICE":
            self.event(now_ns, f"accumulate: slice {acc.get('side')} {acc.get('slice_usd')} USD", "ok")

    def _set_poly_book(self, side: str, rec: dict) -> None:
        """A book tick of the current window (feed_poly only publishes those) over the snapshot."""
        books = dict(get(self.poly, "books") or {})
        bid, ask = rec.get("best_bid"), rec.get("best_ask")
        valid = bid is not None and ask is not None and bid == bid and ask == ask   # NaN: side empty
        books[side] = dict(books.get(side) or {}, best_bid=bid if bid == bid else None,
                           best_ask=ask if ask == ask else None,
                           mid=(bid + ask) / 2 if valid else None,
                           last_trade=rec.get("last_trade"), ts_recv_ns=rec.get("ts_recv_ns"),
                           age_s=None, valid=valid)
        self.poly = dict(self.poly or {}, books=books)

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
        w = get(self.poly, "window")
        if w is None:
            rows.append(("price to beat", Val(None, self._why("/latest/polymarket", "window"))))
        else:
            ptb = w.get("price_to_beat")
            src = w.get("price_to_beat_source")
            rows.append(("price to beat", Val(ptb, note=src) if ptb is not None else
                         Val(None, src or "not known yet")))
        return rows

    def chainlink_val(self, now_ns: int) -> Val:
        """The newest Chainlink observation: the bus tick's or the edge doc's, by observation time.
        Ages come from the data's own stamps (plus wall time since receipt), never from comparing
        the wall clock with a data time, so they are right under replay too."""
        best = None
        f = get(self.edge, "fair")
        if f and f.get("chainlink") is not None and f.get("chainlink_ts_ns"):
            best = (f["chainlink_ts_ns"], Val(f["chainlink"], None, f.get("chainlink_age_ms")))
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

    def window_info(self, now_ns: int) -> dict:
        w = get(self.poly, "window")
        out = {"slug": Val(None, self._why("/latest/polymarket", "window")), "time_left_s": Val(None),
               "price_to_beat_source": None}
        if w is not None:
            out["slug"] = Val(w.get("slug"))
            left = get(self.edge, "edge", "time_left_s")
            end = w.get("window_end_ns")
            if left is not None and get(self.edge, "window") == w.get("slug"):
                out["time_left_s"] = Val(max(0.0, left))     # compute's, on the data clock
            elif end:
                out["time_left_s"] = Val(max(0.0, (end - now_ns) / SEC_NS))
            else:
                out["time_left_s"] = Val(None, "no window end")
            out["price_to_beat_source"] = w.get("price_to_beat_source")
        return out

    def poly_rows(self) -> list[dict]:
        """Per side: fair (fast, smooth), market bid/ask/mid, edge bps and that side's vetoes."""
        fair = get(self.edge, "fair")
        why_edge = self._why("/latest/edge", "edge")
        rows = []
        for side in SIDES:
            if fair is None:
                fast = smooth = Val(None, why_edge)
            else:
                fast, smooth = (Val(None if fair.get(k) is None else
                                    (fair[k] if side == "UP" else 1.0 - fair[k]),
                                    fair.get("reason") if fair.get(k) is None else None)
                                for k in ("fast", "smooth"))
            book = get(self.poly, "books", side)
            bwhy = self._why("/latest/polymarket", "book") if book is None else (
                "book not valid" if not book.get("valid") else None)
            e = get(self.edge, "edge", "sides", side)
            if e is None:
                edge = Val(None, why_edge)
            else:
                edge = Val(e.get("edge_bps"), None if e.get("edge_bps") is not None else
                           e.get("reason") or ", ".join(v["code"] for v in e.get("vetoes") or ()) or None)
            rows.append({"side": side, "fair": fast, "fair_smooth": smooth,
                         "bid": val(book, "best_bid", bwhy) if bwhy is None else Val(None, bwhy),
                         "ask": val(book, "best_ask", bwhy) if bwhy is None else Val(None, bwhy),
                         "mid": val(book, "mid", bwhy) if bwhy is None else Val(None, bwhy),
                         "edge_bps": edge,
                         "vetoes": [v["code"] for v in (e or {}).get("vetoes") or ()]})
        return rows

    def decision(self) -> dict:
        e = get(self.edge, "edge")
        if e is None:
            return {"decision": Val(None, self._why("/latest/edge", "edge")), "reason": None,
                    "vetoes": [], "accumulate": None, "last": self.last_decision}
        return {"decision": Val(e.get("decision")), "reason": e.get("reason"),
                "vetoes": [f"{v['code']}: {v.get('reason')}" for v in e.get("vetoes") or ()
                           if v.get("side") is None],
                "accumulate": get(self.edge, "accumulate"), "last": self.last_decision}

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


def _newer(doc: dict, held: dict | None) -> bool:
    if held is None:
        return True
    a, b = doc.get("ts_ns"), held.get("ts_ns")
    return a is None or b is None or a >= b


def _hms(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / SEC_NS))
