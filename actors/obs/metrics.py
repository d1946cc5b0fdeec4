"""Prometheus exposition of every actor, read from the shared-memory heartbeat registry, plus the
API's own request latency.

Each actor publishes its counters (and fixed-bucket histograms, actors/obs/histogram.py) in its
heartbeat; `RegistryCollector` turns the registry and the quality block into metric families at
scrape time. One scrape of the API covers every actor, and a dead actor's last values stay visible
next to `tdc_actor_up 0`.

The API's request latency is measured in each gunicorn worker (separate processes), so it uses
prometheus_client's multiprocess mode: the gunicorn master points PROMETHEUS_MULTIPROC_DIR at
`<SHM_DIR>/<SHM_PREFIX>.prometheus`, empties it before any worker starts (stale files of a killed
run would otherwise be summed in), marks exited workers dead and removes the directory on exit
(actors/obs/gunicorn_conf.py). A scrape merges every worker's file, the dead ones' included, so the
latency counters never go back when a worker is replaced.

An actor's heartbeat `counters` are rendered by unit (actors/obs/units.py, the one table):
`tdc_actor_events_total`, `_bytes_total`, `_time_seconds_total` (counters), `tdc_actor_gauge`,
`_duration_seconds`, `_timestamp_seconds`, `_usd`, `_flag` (0/1) and `_unclassified` (a number the
table does not declare), each `{actor, name}`; the per-series ones (heartbeat extra
`series: {<series>: {name: value}}`) the same as `tdc_series_*{actor, series, name}`. A few counters
also have a dedicated family (`tdc_feed_parse_errors_total`, ...). Times are UTC timestamps
(`tdc_actor_start_time_seconds`, `tdc_actor_last_heartbeat_timestamp_seconds`,
`tdc_feed_stream_last_record_timestamp_seconds`): the age is `time() - x` in PromQL. Ages measured
at a decision (`tdc_poly_book_age_seconds`, `tdc_edge_input_age_seconds`) and the data-age histogram
stay ages: they are properties of the decision or the record, not of now.

Lifecycle: each actor's start history (heartbeat `starts`, actors/supervision.py) becomes
`tdc_actor_starts_total`, `tdc_actor_crash_loop` and `tdc_actor_backoff_seconds`; compute's refused
control requests (counters `control_refused_<reason>`) `tdc_control_refused_requests_total{reason}`;
a feed's frames refused for insane values (counter `rejected`, by '<kind>:<field>')
`tdc_feed_rejected_frames_total{reason}`. Each actor's process (`/proc/<pid>`) becomes
`tdc_process_*{actor}` (actors/obs/process.py), the build `tdc_build_info`; the recorder's per-venue
report `tdc_recorder_*{venue}`.

Per up/down series: the `edge` block (every followed series' edge document) becomes `tdc_edge_*`,
`tdc_poly_book_*`, `tdc_accumulate_window_*` gauges with a `series` label (and `side` where the
value is one side's); the families about a feed stream or a ring carry `series` too when the stream
or ring is a series' (`book_15m` -> series="15m"); every other stream and ring keeps exactly the
labels it had.

Invariants:
- a scrape reads shared memory and files only, never waits on another actor;
- one unit per family: counters are rendered as Prometheus counters (`_total`), levels as gauges,
  ms as seconds, ns as seconds, booleans as 0/1; histograms with cumulative `le` buckets whose
  +Inf bucket equals `_count`;
- label values come from a closed set (actor, stream, connection and ring names, route templates,
  known methods, names.POLY_SERIES, names.POLY_TOKENS, the decisions, the input names, the venues,
  the counter names actors write): a client cannot create series by requesting odd paths, and an
  edge document's unknown series is left out;
- a malformed document (another version's?) leaves its values out of the scrape, never fails it;
  a counter that is not a number is counted in `tdc_actor_skipped_values`, never an error.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from actors.feed.wsclient import FAILURES as WS_FAILURES
from actors.obs import units
from actors.obs.histogram import cumulative
from actors.obs.process import ActorProcesses, build_info
from ipc import names
from ipc.control import REASONS as CONTROL_REASONS

QUALITY_MODES = ("OK", "DEGRADED", "BAD")

_STREAM_COUNTERS = (("frames", "frames", "frames of this stream received"),
                    ("bytes", "bytes", "bytes of this stream's frames received"),
                    ("written", "records", "records written to the ring"),
                    ("duplicates", "duplicates", "records dropped as duplicates"),
                    ("id_gaps", "id_gaps", "id / update-id continuity breaks"),
                    ("ids_missing", "ids_missing", "trade ids missing in gaps"),
                    ("gap_markers", "gap_markers", "gap records written (reconnect, restart, stale rotation)"))
_CONN_COUNTERS = (("frames", "frames", "frames received"), ("bytes", "bytes", "bytes received"),
                  ("reconnects", "reconnects", "reconnects after a closed connection"),
                  ("rotations", "rotations", "make-before-break rotations"),
                  ("stale_rotations", "stale_rotations", "rotations forced by silence"))
# a stream's last record: heartbeat key -> (metric infix, help)
_STREAM_TIMESTAMPS = (("last_recv_ns", "record", "receive time (UTC) of the stream's last record"),
                      ("last_event_ns", "event", "exchange time (UTC) of the stream's last record"))
# the recorder's `recording` block, per venue: key -> (metric, counter?, help)
_RECORDER_VENUE = {
    "recorded": ("tdc_recorder_frames", True, "frames written to the venue's recording"),
    "lost": ("tdc_recorder_lost_frames", True, "frames lost: the venue's frame ring lapped the recorder"),
    "lag_frames": ("tdc_recorder_lag_frames", False, "frames the feed wrote to its frame ring that the "
                   "recorder has not yet made durable (checkpointed)"),
    "pending": ("tdc_recorder_pending_frames", False, "frames read from the ring, not yet flushed to disk"),
    "bytes_written": ("tdc_recorder_written_bytes", True, "bytes written to the venue's recording files"),
    "write_errors": ("tdc_recorder_write_errors", True, "failed writes of the venue's recording"),
    "flushes": ("tdc_recorder_flushes", True, "flushes of the venue's recording files"),
    "ring_bytes": ("tdc_recorder_ring_bytes", False, "size of the venue's frame ring"),
}
RECORDED_VENUES = (names.FUTURES, names.SPOT, names.POLY, names.CHAINLINK, names.CONTEXT)
# nested counters (by reason) that have a family of their own
_DICT_COUNTERS = frozenset({"rejected", "ws_failures"})
# an actor's own counters that have a dedicated family too: counter name -> (metric, help)
_ACTOR_COUNTERS = {
    "parse_errors": ("tdc_feed_parse_errors", "frames that could not be parsed or stored"),
    "published": ("tdc_zmq_published_messages", "messages published to the ZeroMQ bus"),
    "publish_dropped": ("tdc_zmq_publish_dropped_messages",
                        "messages dropped at the publisher's high-water mark"),
    "tick_overruns": ("tdc_compute_tick_overruns", "ticks that ended past the next deadline"),
}
# heartbeat `hist` entries: name -> (metric, help)
_ACTOR_HISTOGRAMS = {
    "tick_duration": ("tdc_compute_tick_duration_seconds", "duration of one compute tick"),
}

# (venue-independent) ring key and stream label of every series ring -> its series
_SERIES_OF_RING = {r.key(): r.series for rings in names.VENUE_RINGS.values() for r in rings.values() if r.series}
_SERIES_OF_STREAM = {r.label(): r.series for rings in names.VENUE_RINGS.values() for r in rings.values() if r.series}
DECISIONS = ("BUY_UP", "BUY_DOWN", "NONE")
EDGE_INPUTS = ("binance", "chainlink", "candle")

API_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
API_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))


def _add_histogram(fam: HistogramMetricFamily, labels: list[str], doc) -> None:
    try:
        buckets, _count, sum_s = cumulative(doc)
    except (KeyError, TypeError, ValueError):
        return                      # a malformed doc (another version's?) is left out, not fatal
    fam.add_metric(labels, [(floatToGoString(le), n) for le, n in buckets], sum_s)


class RegistryCollector:
    def __init__(self, view):
        self.view = view           # actors.api.ShmView
        self.processes = ActorProcesses()

    def collect(self):
        now = time.time_ns()
        actors = self.view.actors(now)
        up = GaugeMetricFamily("tdc_actor_up", "1 if the actor's process runs and heartbeats", labels=["actor"])
        beat_ts = GaugeMetricFamily("tdc_actor_last_heartbeat_timestamp_seconds",
                                    "UTC time of the actor's last heartbeat", labels=["actor"])
        start_ts = GaugeMetricFamily("tdc_actor_start_time_seconds", "UTC time the actor's process started "
                                     "(its heartbeat's start)", labels=["actor"])
        disabled = GaugeMetricFamily("tdc_actor_disabled", "1 while the actor runs switched off (heartbeat only, "
                                     "e.g. Polymarket off for a symbol without up/down markets)", labels=["actor"])
        skipped = GaugeMetricFamily("tdc_actor_skipped_values", "heartbeat counters of this scrape that are not "
                                    "numbers and have no family (not rendered)", labels=["actor"])
        u_fams = _unit_families("actor", ["actor", "name"])
        # the start history each actor carries in its heartbeat (actors/supervision.py)
        starts = CounterMetricFamily("tdc_actor_starts", "starts of the actor since the stack started "
                                     "(supervisord restarts included)", labels=["actor"])
        loop = GaugeMetricFamily("tdc_actor_crash_loop", "1 while the actor is in a crash loop "
                                 "(several starts within the window)", labels=["actor"])
        backoff = GaugeMetricFamily("tdc_actor_backoff_seconds", "the crash-loop backoff of the actor's "
                                    "current start (0: none)", labels=["actor"])
        control = CounterMetricFamily("tdc_control_refused_requests", "control requests refused, by reason",
                                      labels=["actor", "reason"])
        rejected = CounterMetricFamily("tdc_feed_rejected_frames", "frames refused for an insane value, "
                                       "by '<kind>:<field>' (price <= 0, NaN, a crossed quote, ...)",
                                       labels=["actor", "reason"])
        ws_fail = CounterMetricFamily("tdc_feed_ws_failures", "WebSocket connections the client failed, by "
                                      "kind (frame too big, bad continuation, ...)", labels=["actor", "reason"])
        a_fams = {k: CounterMetricFamily(n, h, labels=["actor"]) for k, (n, h) in _ACTOR_COUNTERS.items()}
        h_fams = {k: HistogramMetricFamily(n, h, labels=["actor"]) for k, (n, h) in _ACTOR_HISTOGRAMS.items()}
        overrun = CounterMetricFamily("tdc_ring_overrun_records", "records a ring reader lost to being lapped",
                                      labels=["actor", "ring"])
        sl = ["actor", "stream"]
        s_fams = {k: CounterMetricFamily(f"tdc_feed_stream_{n}", h, labels=sl) for k, n, h in _STREAM_COUNTERS}
        s_last = {k: GaugeMetricFamily(f"tdc_feed_stream_last_{n}_timestamp_seconds", h, labels=sl)
                  for k, n, h in _STREAM_TIMESTAMPS}
        d_age = HistogramMetricFamily("tdc_feed_data_age_seconds",
                                      "receive time minus exchange time of each record written", labels=sl)
        d_neg = CounterMetricFamily("tdc_feed_data_age_negative",
                                    "records received before their exchange time (clock skew; observed as 0)",
                                    labels=sl)
        s_units = _unit_families("series", ["actor", "series", "name"])
        c_fams = {k: CounterMetricFamily(f"tdc_feed_connection_{n}", h, labels=["actor", "connection"])
                  for k, n, h in _CONN_COUNTERS}
        c_up = GaugeMetricFamily("tdc_feed_connection_connected", "1 while connected", labels=["actor", "connection"])
        c_silent = GaugeMetricFamily("tdc_feed_connection_silent_streams",
                                     "streams acked but never delivering", labels=["actor", "connection"])
        r_fams = {k: (CounterMetricFamily if c else GaugeMetricFamily)(n, h, labels=["venue"])
                  for k, (n, c, h) in _RECORDER_VENUE.items()}
        disk_ok = GaugeMetricFamily("tdc_recorder_disk_ok", "1 while the recorder can write every venue's "
                                    "recording (0: disk full, permissions: see GET /state alerts)")
        pids = {}
        for name, a in actors.items():
            up.add_metric([name], 1.0 if a["alive"] else 0.0)
            beat_ts.add_metric([name], now / 1e9 - a["heartbeat_age_ms"] / 1e3)
            start_ts.add_metric([name], now / 1e9 - a["uptime_s"])
            if a.get("running"):
                pids[name] = a.get("pid")
            counters = a.get("counters") if isinstance(a.get("counters"), dict) else {}
            disabled.add_metric([name], 1.0 if counters.get("disabled") else 0.0)
            n_skipped = _unit_samples(u_fams, [name], counters, handled=_DICT_COUNTERS)
            skipped.add_metric([name], float(n_skipped))
            for k, v in counters.items():
                if k in a_fams and _number(v):
                    a_fams[k].add_metric([name], float(v))
            if name == "recorder" and _number(counters.get("disk_ok")):
                disk_ok.add_metric([], 1.0 if counters["disk_ok"] else 0.0)
            st = a.get("starts")
            if isinstance(st, dict) and _number(st.get("total")):
                starts.add_metric([name], float(st["total"]))
                loop.add_metric([name], 1.0 if st.get("crash_loop") is True else 0.0)
                if _number(st.get("backoff_sec")):
                    backoff.add_metric([name], float(st["backoff_sec"]))
            for fam, key, allowed in ((rejected, "rejected", None), (ws_fail, "ws_failures", WS_FAILURES)):
                by = counters.get(key)
                for reason, n in (by.items() if isinstance(by, dict) else ()):
                    if _number(n) and (allowed is None or reason in allowed):
                        fam.add_metric([name, str(reason)], float(n))
            for reason in CONTROL_REASONS:
                n = counters.get(f"control_refused_{reason}")
                if _number(n):
                    control.add_metric([name, reason], float(n))
            for k, doc in (a.get("hist") or {}).items():
                if k in h_fams:
                    _add_histogram(h_fams[k], [name], doc)
            for ring, n in (a.get("rings") or {}).items():
                if _number(n):
                    with _series_label(overrun, _SERIES_OF_RING.get(ring)):
                        overrun.add_metric([name, ring], float(n))
            for stream, st in a.get("streams", {}).items():
                labels, series = [name, stream], _SERIES_OF_STREAM.get(stream)
                fams_of_stream = (*s_fams.values(), *s_last.values(), d_age, d_neg)
                with _series_label(fams_of_stream, series):
                    for k, fam in s_fams.items():
                        if _number(st.get(k)):
                            fam.add_metric(labels, float(st[k]))
                    for k, fam in s_last.items():
                        if _number(st.get(k)) and st[k] > 0:      # 0: no record yet
                            fam.add_metric(labels, units.value_in_unit(st[k], units.TIMESTAMP_NS))
                    if st.get("data_age"):
                        _add_histogram(d_age, labels, st["data_age"])
                        d_neg.add_metric(labels, float(st["data_age"].get("negative", 0)))
            per_series = a.get("series")
            for series, cs in (per_series.items() if isinstance(per_series, dict) else ()):
                if series in names.POLY_SERIES and isinstance(cs, dict):
                    _unit_samples(s_units, [name, series], cs)
            for conn, c in a.get("connections", {}).items():
                for k, fam in c_fams.items():
                    if _number(c.get(k)):
                        fam.add_metric([name, conn], float(c[k]))
                c_up.add_metric([name, conn], 1.0 if c.get("connected") else 0.0)
                c_silent.add_metric([name, conn], float(len(c.get("silent_streams", []))))
            rec = a.get("recording")
            for venue, r in (rec.items() if name == "recorder" and isinstance(rec, dict) else ()):
                if venue in RECORDED_VENUES and isinstance(r, dict):
                    for k, fam in r_fams.items():
                        if _number(r.get(k)):
                            fam.add_metric([venue], float(r[k]))
        yield from (up, beat_ts, start_ts, disabled, skipped, *u_fams.values(), starts, loop, backoff, control,
                    rejected, ws_fail, *a_fams.values(), *h_fams.values(), overrun,
                    *s_fams.values(), *s_last.values(), d_age, d_neg, *c_fams.values(), c_up, c_silent,
                    *s_units.values(), *r_fams.values(), disk_ok)
        yield from self.processes.families(pids)
        yield build_info()
        yield from edge_families(self.view.doc(names.EDGE_BLOCK))
        q = self.view.doc(names.QUALITY_BLOCK)
        mode = GaugeMetricFamily("tdc_quality_mode", "1 for the current data-quality mode", labels=["mode"])
        for m in QUALITY_MODES:
            mode.add_metric([m], 1.0 if q and q.get("mode") == m else 0.0)
        yield mode


def _unit_families(scope: str, labels: list[str]) -> dict:
    """One family per unit of actors/obs/units.py: `tdc_<scope>_<unit suffix>`."""
    out = {}
    for u in units.UNITS:
        what = f"{'an actor' if scope == 'actor' else 'one up/down series'}: {u.help}"
        if u.counter:
            out[u] = CounterMetricFamily(f"tdc_{scope}_{u.suffix}", what, labels=labels)
        else:
            out[u] = GaugeMetricFamily(f"tdc_{scope}_{u.suffix}", what, labels=labels)
    return out


def _unit_samples(fams: dict, labels: list[str], counters: dict, handled=frozenset()) -> int:
    """Each counter into its unit's family; returns how many were left out (neither a metric nor
    one of `handled`, the nested documents with a family of their own)."""
    left = 0
    for k, v in counters.items():
        k = str(k)
        unit = units.classify(k, v)
        if unit is None:
            left += k not in units.IGNORED and k not in handled
            continue
        fams[unit].add_metric([*labels, units.label_name(k, unit)], units.value_in_unit(v, unit))
    return left


@contextmanager
def _series_label(fams, series: str | None):
    """Samples added to `fams` inside the block get the label series=<series> (none when None):
    a stream or ring of an up/down series is labelled with it, every other one keeps exactly the
    labels it always had (a family may hold samples of different label sets)."""
    fams = fams if isinstance(fams, (tuple, list)) else (fams,)
    marks = [len(f.samples) for f in fams]
    yield
    if series is None:
        return
    for f, n in zip(fams, marks):
        f.samples[n:] = [x._replace(labels={**x.labels, "series": series}) for x in f.samples[n:]]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def edge_families(block) -> list:
    """The per-series gauges of the edge block (module docstring). Pure: a block in, families out."""
    g = lambda n, h, *labels: GaugeMetricFamily(n, h, labels=["series", *labels])   # noqa: E731
    fams = {
        "fair": g("tdc_edge_fair_probability", "fair probability of Up (fast)"),
        "edge": g("tdc_edge", "edge of buying a side: fair − all-in cost per share, probability", "side"),
        "edge_bps": g("tdc_edge_bps", "the same edge · 1e4 (compared with EDGE_BUFFER_BPS)", "side"),
        "roc": g("tdc_edge_return_on_cost", "expected return on cost of buying a side: edge / cost", "side"),
        "cost": g("tdc_edge_cost_per_share", "all-in cost per share of buying a side (fee included)", "side"),
        "vetoes": g("tdc_edge_vetoes", "vetoes on a side (side=\"window\": on the whole decision)", "side"),
        "decision": g("tdc_edge_decision", "1 for the series' current decision", "decision"),
        "book_age": g("tdc_poly_book_age_seconds", "receive-time age of the book a decision used", "side"),
        "bid": g("tdc_poly_book_best_bid", "best bid (probability) of a side's book a decision used", "side"),
        "ask": g("tdc_poly_book_best_ask", "best ask (probability) of a side's book a decision used", "side"),
        "input_age": g("tdc_edge_input_age_seconds", "receive-time age of a decision's input", "input"),
        "left": g("tdc_edge_time_left_seconds", "time left in the series' current window at its last decision"),
        "end": g("tdc_edge_window_end_timestamp_seconds", "UTC end time of the series' current window"),
        "ptb": g("tdc_edge_price_to_beat", "the current window's price to beat, by source (venue, estimate)",
                 "source"),
        "slices": g("tdc_accumulate_window_slices", "slices taken in the series' current window"),
        "usd": g("tdc_accumulate_window_usd", "USD spent in the series' current window"),
    }
    docs = block.get("series") if isinstance(block, dict) else None
    for series, doc in (docs.items() if isinstance(docs, dict) else ()):
        if series not in names.POLY_SERIES or not isinstance(doc, dict):
            continue
        try:
            _edge_doc_metrics(fams, series, doc)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue              # a malformed document: its remaining values are left out
    return list(fams.values())


def _edge_doc_metrics(fams: dict, series: str, doc: dict) -> None:
    def put(key, labels, v, divisor=1):
        if _number(v):
            fams[key].add_metric([series, *labels], float(v / divisor))

    put("fair", [], (doc.get("fair") or {}).get("fast"))
    e = doc.get("edge") or {}
    if e.get("decision") in DECISIONS:
        for d in DECISIONS:
            fams["decision"].add_metric([series, d], 1.0 if e["decision"] == d else 0.0)
    put("left", [], e.get("time_left_s"))
    put("end", [], doc.get("window_end_ns"), 10**9)
    vetoes = [v for v in e.get("vetoes") or () if isinstance(v, dict)]
    fams["vetoes"].add_metric([series, "window"], float(sum(1 for v in vetoes if v.get("side") is None)))
    for side in names.POLY_TOKENS:
        sd = (e.get("sides") or {}).get(side)
        if isinstance(sd, dict):
            put("edge", [side], sd.get("edge"))
            put("edge_bps", [side], sd.get("edge_bps"))
            put("roc", [side], sd.get("return_on_cost"))
            put("cost", [side], sd.get("cost_per_share"))
            fams["vetoes"].add_metric([series, side], float(len(sd.get("vetoes") or ())))
    inputs = doc.get("inputs") or {}
    for side, b in ((inputs.get("books") or {}).items()):
        if side in names.POLY_TOKENS and isinstance(b, dict):
            put("book_age", [side], b.get("age_ms"), 1000)
            put("bid", [side], b.get("best_bid"))
            put("ask", [side], b.get("best_ask"))
    for k in EDGE_INPUTS:
        if isinstance(inputs.get(k), dict):
            put("input_age", [k], inputs[k].get("age_ms"), 1000)
    ptb = doc.get("price_to_beat")
    if isinstance(ptb, dict) and ptb.get("source") in ("venue", "estimate"):
        put("ptb", [ptb["source"]], ptb.get("price"))
    acc = doc.get("accumulate") or {}
    put("slices", [], acc.get("slices"))
    put("usd", [], acc.get("usd"))


class ApiMetrics:
    """The API's request latency histogram and the registry `/metrics` renders.

    `multiprocess_dir` set (under gunicorn): the histogram's values live in that directory, one
    file per worker, and the scrape merges them; prometheus_client must then have been imported
    with PROMETHEUS_MULTIPROC_DIR already set (gunicorn_conf.on_starting does it in the master,
    before any worker forks). Unset (tests, a single process): an ordinary in-process histogram.
    """

    def __init__(self, view, multiprocess_dir: Path | None = None):
        from prometheus_client import Histogram, values
        if multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set; "
                               "start the API with -c python:actors.obs.gunicorn_conf")
        self.latency = Histogram("tdc_api_request_duration_seconds",
                                 "API request duration, from routing to the response, by route template",
                                 ["route", "method", "status"], buckets=API_LATENCY_BUCKETS_S, registry=None)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RegistryCollector(view))
        if multiprocess_dir is not None:
            from prometheus_client.multiprocess import MultiProcessCollector
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))
        else:
            self.registry.register(self.latency)

    # falcon middleware: time every request, errors and unrouted paths included
    def process_request(self, req, resp) -> None:
        req.context.t0_ns = time.perf_counter_ns()

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        t0 = req.context.get("t0_ns")
        if t0 is None:
            return
        route = req.uri_template or "unmatched"
        method = req.method if req.method in API_METHODS else "OTHER"
        self.latency.labels(route, method, str(resp.status_code)).observe(
            (time.perf_counter_ns() - t0) / 1e9)

    # the same under falcon.asgi (the API's app), which takes coroutines named *_async
    async def process_request_async(self, req, resp) -> None:
        self.process_request(req, resp)

    async def process_response_async(self, req, resp, resource, req_succeeded) -> None:
        self.process_response(req, resp, resource, req_succeeded)

