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

Invariants:
- a scrape reads shared memory and files only, never waits on another actor;
- counters are rendered as Prometheus counters (`_total`), levels as gauges, histograms with
  cumulative `le` buckets whose +Inf bucket equals `_count`;
- label values come from a closed set (actor, stream, connection and ring names, route templates,
  known methods): a client cannot create series by requesting odd paths.
"""
from __future__ import annotations

import time
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from actors.obs.histogram import cumulative
from ipc import names

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
# an actor's own counters that have a dedicated family: counter name -> (metric, help)
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

    def collect(self):
        now = time.time_ns()
        actors = self.view.actors(now)
        up = GaugeMetricFamily("tdc_actor_up", "1 if the actor's process runs and heartbeats", labels=["actor"])
        hb_age = GaugeMetricFamily("tdc_actor_heartbeat_age_seconds", "age of the last heartbeat", labels=["actor"])
        uptime = GaugeMetricFamily("tdc_actor_uptime_seconds", "time since the actor started", labels=["actor"])
        value = GaugeMetricFamily("tdc_actor_counter", "an actor's own counters and gauges, by name",
                                  labels=["actor", "name"])
        a_fams = {k: CounterMetricFamily(n, h, labels=["actor"]) for k, (n, h) in _ACTOR_COUNTERS.items()}
        h_fams = {k: HistogramMetricFamily(n, h, labels=["actor"]) for k, (n, h) in _ACTOR_HISTOGRAMS.items()}
        overrun = CounterMetricFamily("tdc_ring_overrun_records", "records a ring reader lost to being lapped",
                                      labels=["actor", "ring"])
        s_fams = {k: CounterMetricFamily(f"tdc_feed_stream_{n}", h, labels=["actor", "stream"])
                  for k, n, h in _STREAM_COUNTERS}
        s_age = GaugeMetricFamily("tdc_feed_stream_age_seconds", "time since the last record", labels=["actor", "stream"])
        d_age = HistogramMetricFamily("tdc_feed_data_age_seconds",
                                      "receive time minus exchange time of each record written",
                                      labels=["actor", "stream"])
        d_neg = CounterMetricFamily("tdc_feed_data_age_negative",
                                    "records received before their exchange time (clock skew; observed as 0)",
                                    labels=["actor", "stream"])
        c_fams = {k: CounterMetricFamily(f"tdc_feed_connection_{n}", h, labels=["actor", "connection"])
                  for k, n, h in _CONN_COUNTERS}
        c_up = GaugeMetricFamily("tdc_feed_connection_connected", "1 while connected", labels=["actor", "connection"])
        c_silent = GaugeMetricFamily("tdc_feed_connection_silent_streams",
                                     "streams acked but never delivering", labels=["actor", "connection"])
        for name, a in actors.items():
            up.add_metric([name], 1.0 if a["alive"] else 0.0)
            hb_age.add_metric([name], a["heartbeat_age_ms"] / 1e3)
            uptime.add_metric([name], a["uptime_s"])
            for k, v in a.get("counters", {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    value.add_metric([name, k], float(v))
                    if k in a_fams:
                        a_fams[k].add_metric([name], float(v))
            for k, doc in (a.get("hist") or {}).items():
                if k in h_fams:
                    _add_histogram(h_fams[k], [name], doc)
            for ring, n in (a.get("rings") or {}).items():
                overrun.add_metric([name, ring], float(n))
            for stream, st in a.get("streams", {}).items():
                for k, fam in s_fams.items():
                    if st.get(k) is not None:
                        fam.add_metric([name, stream], float(st[k]))
                if st.get("age_ms") is not None:
                    s_age.add_metric([name, stream], st["age_ms"] / 1e3)
                if st.get("data_age"):
                    _add_histogram(d_age, [name, stream], st["data_age"])
                    d_neg.add_metric([name, stream], float(st["data_age"].get("negative", 0)))
            for conn, c in a.get("connections", {}).items():
                for k, fam in c_fams.items():
                    if c.get(k) is not None:
                        fam.add_metric([name, conn], float(c[k]))
                c_up.add_metric([name, conn], 1.0 if c.get("connected") else 0.0)
                c_silent.add_metric([name, conn], float(len(c.get("silent_streams", []))))
        yield from (up, hb_age, uptime, value, *a_fams.values(), *h_fams.values(), overrun,
                    *s_fams.values(), s_age, d_age, d_neg, *c_fams.values(), c_up, c_silent)
        q = self.view.doc(names.QUALITY_BLOCK)
        mode = GaugeMetricFamily("tdc_quality_mode", "1 for the current data-quality mode", labels=["mode"])
        for m in QUALITY_MODES:
            mode.add_metric([m], 1.0 if q and q.get("mode") == m else 0.0)
        yield mode


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

