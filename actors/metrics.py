"""Prometheus exposition of every actor, read from the shared-memory heartbeat registry.

Each actor publishes its counters in its heartbeat; this collector turns the registry (and the
quality block) into metric families at scrape time. One scrape of the API covers every actor
without prometheus_client's multiprocess mode, and a dead actor's last values stay visible next
to `tdc_actor_up 0`.
"""
from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

QUALITY_MODES = ("OK", "DEGRADED", "BAD")

_STREAM_COUNTERS = (("written", "records", "records written to the ring"),
                    ("duplicates", "duplicates", "records dropped as duplicates"),
                    ("id_gaps", "id_gaps", "id / update-id continuity breaks"),
                    ("ids_missing", "ids_missing", "trade ids missing in gaps"))
_CONN_COUNTERS = (("frames", "frames", "frames received"), ("bytes", "bytes", "bytes received"),
                  ("reconnects", "reconnects", "reconnects after a closed connection"),
                  ("rotations", "rotations", "make-before-break rotations"),
                  ("stale_rotations", "stale_rotations", "rotations forced by silence"))


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
        s_fams = {k: CounterMetricFamily(f"tdc_feed_stream_{n}", h, labels=["actor", "stream"])
                  for k, n, h in _STREAM_COUNTERS}
        s_age = GaugeMetricFamily("tdc_feed_stream_age_seconds", "time since the last record", labels=["actor", "stream"])
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
            for stream, st in a.get("streams", {}).items():
                for k, fam in s_fams.items():
                    if st.get(k) is not None:
                        fam.add_metric([name, stream], float(st[k]))
                if st.get("age_ms") is not None:
                    s_age.add_metric([name, stream], st["age_ms"] / 1e3)
            for conn, c in a.get("connections", {}).items():
                for k, fam in c_fams.items():
                    fam.add_metric([name, conn], float(c.get(k, 0)))
                c_up.add_metric([name, conn], 1.0 if c.get("connected") else 0.0)
                c_silent.add_metric([name, conn], float(len(c.get("silent_streams", []))))
        yield from (up, hb_age, uptime, value, *s_fams.values(), s_age, *c_fams.values(), c_up, c_silent)
        q = self.view.doc("quality")
        mode = GaugeMetricFamily("tdc_quality_mode", "1 for the current data-quality mode", labels=["mode"])
        for m in QUALITY_MODES:
            mode.add_metric([m], 1.0 if q and q.get("mode") == m else 0.0)
        yield mode


def make_registry(view) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RegistryCollector(view))
    return reg
