"""Checks of /metrics and /openapi.json on a running system (used by test_system.py, which owns the
stack): histogram series exist with counts, `_count` is the sum of the bucket increments, the API
latency histogram counts exactly the requests made here (a stale worker file planted before the
start must have been cleaned), and the live documents match the OpenAPI schemas."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema_rs
from prometheus_client.parser import text_string_to_metric_families

from ipc import names
from tests.support.system import ROOT
from tests.support.wait import wait_for

STALE_REQUESTS = 1000
OWN_REQUESTS = 7
PROBE_ROUTE = "/openapi.json"      # nothing but this check requests it


def plant_stale_latency(shm_dir: str = "/dev/shm") -> str:
    """A new SHM_PREFIX whose prometheus directory already holds a dead worker's file with
    STALE_REQUESTS requests on PROBE_ROUTE, as a previous run killed with SIGKILL would leave."""
    prefix = "t" + uuid.uuid4().hex[:8]
    d = Path(shm_dir) / f"{prefix}.prometheus"
    d.mkdir()
    code = ("from prometheus_client import Histogram\n"
            "h = Histogram('tdc_api_request_duration_seconds', 'x', ['route', 'method', 'status'])\n"
            f"for _ in range({STALE_REQUESTS}):\n"
            f"    h.labels({PROBE_ROUTE!r}, 'GET', '200').observe(0.001)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(d)})
    assert list(d.glob("histogram_*.db")), "the stale file was not written"
    return prefix


def scrape(system) -> dict:
    r = system.get("/metrics")
    assert r.status_code == 200, r.text
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def histogram(fams: dict, name: str, **labels) -> tuple[list[float], int]:
    """(bucket increments, _count) of one series; asserts the exposition is a proper histogram."""
    fam = fams[name]
    assert fam.type == "histogram", fam.type
    mine = [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    buckets = sorted(((float(s.labels["le"]), s.value) for s in mine if s.name == name + "_bucket"))
    counts = [s.value for s in mine if s.name == name + "_count"]
    assert buckets and len(counts) == 1, (name, labels, [s.name for s in mine])
    assert buckets[-1][0] == float("inf")
    cum = [v for _, v in buckets]
    increments = [cum[0]] + [b - a for a, b in zip(cum, cum[1:])]
    assert all(i >= 0 for i in increments), (name, labels, cum)
    assert sum(increments) == counts[0], (name, labels, increments, counts[0])
    return increments, int(counts[0])


def value(fams: dict, name: str, **labels) -> float:
    """One sample by its exposed name (a counter's family drops `_total`, its samples keep it)."""
    vals = [s.value for f in fams.values() for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(vals) == 1, (name, labels, vals)
    return vals[0]


def actor_counter(fams: dict, actor: str, counter: str) -> float:
    """`tdc_actor_events_total{actor=…, name=…}` (its `name` label clashes with `value`'s argument)."""
    vals = [s.value for f in fams.values() for s in f.samples if s.name == "tdc_actor_events_total"
            and s.labels.get("actor") == actor and s.labels.get("name") == counter]
    assert len(vals) == 1, (actor, counter, vals)
    return vals[0]


def check_metrics_and_openapi(system) -> None:
    # --- histograms from heartbeats: data age per stream, compute's tick duration -------------
    series = [("tdc_feed_data_age_seconds", {"actor": "feed_futures", "stream": "trade"}),
              ("tdc_feed_data_age_seconds", {"actor": "feed_futures", "stream": "quote"}),
              ("tdc_feed_data_age_seconds", {"actor": "feed_spot", "stream": "trade"}),
              # a Polymarket series' stream carries its series as a label
              *(("tdc_feed_data_age_seconds", {"actor": "feed_poly", "stream": names.poly_book_ring(s).label(),
                                               "series": s}) for s in system.settings().venues.polymarket_windows),
              ("tdc_feed_data_age_seconds", {"actor": "feed_chainlink", "stream": "chainlink"}),
              ("tdc_compute_tick_duration_seconds", {"actor": "compute"})]

    def all_counted():
        fams = scrape(system)
        return fams if all(histogram(fams, n, **lb)[1] > 0 for n, lb in series) else None

    fams = wait_for(all_counted, 20, "every data-age and tick histogram with observations")
    # every counter a real actor heartbeats is declared in actors/obs/units.py (none rendered raw)
    unclassified = [(s.labels["actor"], s.labels["name"]) for s in fams["tdc_actor_unclassified"].samples]
    assert unclassified == [], unclassified
    assert all(s.value == 0 for s in fams["tdc_actor_skipped_values"].samples)
    assert {s.labels["actor"] for s in fams["tdc_process_cpu_seconds"].samples} >= {"compute", "feed_futures", "api"}
    # per series: the edge block's gauges, labelled by series
    venues = system.settings().venues
    for s in venues.polymarket_windows:
        assert sum(value(fams, "tdc_edge_decision", series=s, decision=d) for d in ("BUY_UP", "BUY_DOWN", "NONE")) == 1
        # a quiet token's book (the near-certain side) can go long without an update, never longer
        # than its window has been listed (the next window's books are subscribed a roll ahead)
        age = value(fams, "tdc_poly_book_age_seconds", series=s, side="UP")
        assert 0 <= age <= 2 * venues.window_secs[s], age
    written = value(fams, "tdc_feed_stream_records_total", actor="feed_futures", stream="trade")
    # every futures trade carries an exchange time: one observation per record written (the
    # heartbeat is one snapshot, so both come from the same moment)
    assert histogram(fams, "tdc_feed_data_age_seconds", actor="feed_futures", stream="trade")[1] == written
    assert value(fams, "tdc_zmq_published_messages_total", actor="compute") > 0
    # a feed builds no tick message nobody subscribed to (this test follows futures ticks only)
    assert value(fams, "tdc_zmq_published_messages_total", actor="feed_futures") > 0
    for actor in ("feed_futures", "feed_spot"):
        sent = value(fams, "tdc_zmq_published_messages_total", actor=actor)
        skipped = actor_counter(fams, actor, "publish_skipped")
        assert sent + skipped > 0, actor
    assert actor_counter(fams, "feed_spot", "publish_skipped") > 0
    for actor in ("feed_futures", "feed_spot", "feed_poly", "feed_chainlink"):
        assert value(fams, "tdc_feed_parse_errors_total", actor=actor) == 0, actor
    assert value(fams, "tdc_ring_overrun_records_total", actor="compute", ring=names.FUTURES_RINGS["trade"].key()) == 0
    # tick overruns depend on the machine's load, so not asserted 0: a presence check, exact against
    # the heartbeat counter the family is built from (same scrape, same heartbeat snapshot)
    assert value(fams, "tdc_compute_tick_overruns_total", actor="compute") == \
        actor_counter(fams, "compute", "tick_overruns")

    # --- API latency: exactly our own requests (2 workers merged; the stale file was cleaned) --
    before = fams.get("tdc_api_request_duration_seconds")
    assert before is None or not [s for s in before.samples if s.labels.get("route") == PROBE_ROUTE]
    for _ in range(OWN_REQUESTS):
        assert system.get(PROBE_ROUTE).status_code == 200
    fams = scrape(system)
    inc, n = histogram(fams, "tdc_api_request_duration_seconds", route=PROBE_ROUTE, method="GET", status="200")
    assert n == OWN_REQUESTS, f"expected {OWN_REQUESTS} requests, scrape says {n}"
    assert histogram(fams, "tdc_api_request_duration_seconds", route="/metrics", method="GET", status="200")[1] >= 2
    assert len(list((Path(system.settings().ipc.shm_dir) / names.prometheus_dir_name(system.env['SHM_PREFIX']))
                    .glob("histogram_*.db"))) >= 1

    # --- the live documents against the published OpenAPI schemas -----------------------------
    doc = system.get("/openapi.json").json()
    for path, query, schema in (("/health", None, "Health"), ("/state", None, "State"),
                                ("/latest/features", None, "Features"), ("/latest/bars", None, "Bars"),
                                ("/latest/polymarket", None, "Polymarket"), ("/latest/edge", None, "EdgeBlock"),
                                *((p, {"series": s}, sch) for s in system.settings().venues.polymarket_windows
                                  for p, sch in (("/latest/polymarket", "PolymarketSeries"), ("/latest/edge", "Edge"))),
                                ("/latest/book", {"venue": "futures"}, "Book"),
                                ("/latest/book", {"venue": "spot"}, "Book")):
        r = system.get(path, params=query)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        v = jsonschema_rs.Draft202012Validator({"$ref": f"#/components/schemas/{schema}",
                                                "components": doc["components"]})
        errors = [f"{e.instance_path}: {e.message}" for e in v.iter_errors(r.json())][:5]
        assert not errors, (path, errors)
    r = system.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
