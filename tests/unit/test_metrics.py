"""/metrics: fixed-bucket histograms on exact inputs, the feed's data-age bookkeeping, rendering of
heartbeats into Prometheus families, the API latency histogram, and prometheus_client's
multiprocess directory (stale files cleaned at start, merged across workers, removed at exit)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from falcon import testing
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from actors.api import ShmView, create_app
from actors.feed.sink import Sink
from actors.obs.gunicorn_conf import prometheus_dir, reset_prometheus_dir
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram, cumulative
from config.settings import load_settings
from ipc import names
from ipc.ring import RingWriter
from ipc.schema import TRADE
from ipc.shm import unlink_prefix
from ipc.state import Heartbeat, Registry

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000


# --- the histogram itself -------------------------------------------------------------------
def test_bucketing_on_exact_bounds():
    h = Histogram((1, 2, 5))
    for x in (0, 1 * MS, 1 * MS + 1, 2 * MS, 5 * MS, 5 * MS + 1, -3):
        h.observe_ns(x)
    # le is inclusive: exactly 1 ms is in the 1 ms bucket, 1 ms + 1 ns in the 2 ms one;
    # -3 ns (clock skew) is counted as negative and observed as 0
    assert h.counts == [3, 2, 1, 1]
    assert h.negative == 1
    assert h.sum_ns == 0 + MS + (MS + 1) + 2 * MS + 5 * MS + (5 * MS + 1) + 0
    buckets, count, sum_s = cumulative(h.doc())
    assert buckets == [(0.001, 3), (0.002, 5), (0.005, 6), (float("inf"), 7)]
    assert count == 7 and sum_s == pytest.approx(h.sum_ns / 1e9)


def test_fractional_bounds_are_exact_in_ns():
    h = Histogram((0.25, 0.5))
    for x in (250_000, 250_001, 500_000, 500_001):
        h.observe_ns(x)
    assert h.counts == [1, 2, 1]


def test_bounds_must_ascend():
    with pytest.raises(ValueError):
        Histogram((1, 1, 2))
    with pytest.raises(ValueError):
        Histogram(())


def test_malformed_doc_is_rejected():
    with pytest.raises(ValueError):
        cumulative({"le_ms": [1, 2], "counts": [1, 2], "sum_ms": 0})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-10 * MS, 10_000 * MS), max_size=300))
def test_batch_equals_one_by_one(xs):
    one, batch = Histogram(DATA_AGE_BOUNDS_MS), Histogram(DATA_AGE_BOUNDS_MS)
    for x in xs:
        one.observe_ns(x)
    batch.observe_many_ns(np.array(xs, dtype=np.int64))
    assert (one.counts, one.sum_ns, one.negative) == (batch.counts, batch.sum_ns, batch.negative)
    # and against a plain reference: first bound >= x
    ref = [0] * (len(DATA_AGE_BOUNDS_MS) + 1)
    for x in xs:
        x = max(x, 0)
        ref[next((i for i, b in enumerate(DATA_AGE_BOUNDS_MS) if x <= b * MS), len(DATA_AGE_BOUNDS_MS))] += 1
    assert one.counts == ref


# --- the feed's Sink --------------------------------------------------------------------------
class NullPub:
    def __init__(self):
        self.sent = []

    def wants(self, topic):
        return True

    def publish(self, topic, doc):
        self.sent.append((topic, doc))


@pytest.fixture
def prefix():
    p = "tm" + uuid.uuid4().hex[:8]
    yield p
    unlink_prefix("/dev/shm", p)


def _trade(event_ns, recv_ns, trade_id):
    return (event_ns, recv_ns, 0, trade_id, trade_id, trade_id, 65000.0, 0.1, 1)


def test_sink_records_data_age_and_gap_markers(prefix):
    ring = RingWriter("/dev/shm", names.FUTURES_RINGS["trade"].name(prefix, "BTCUSDT"), TRADE, 1024)
    sink, pub = Sink("trade", ring, names.FUTURES_RINGS["trade"].topic("BTCUSDT").encode()), NullPub()
    t0 = 1_700_000_000_000_000_000
    assert "data_age" not in sink.counters()              # nothing observed yet: no series
    for i, age_ns in enumerate((0, 1 * MS, 3 * MS, 7_000 * MS, -2 * MS)):
        assert sink.accept(_trade(t0 + i, t0 + i + age_ns, 100 + i), pub)
    assert not sink.accept(_trade(t0, t0 + 1, 100), pub)   # a duplicate is not observed
    sink.accept(_trade(0, t0 + 99, 200), pub)              # no exchange time: not observed
    sink.mark_gap(pub, "disconnect")
    c = sink.counters()
    age = c["data_age"]
    assert age["le_ms"] == list(DATA_AGE_BOUNDS_MS)
    # 0 and -2 ms (skew, as 0) in le=1; 1 ms in le=1; 3 ms in le=5; 7 s in +Inf
    assert age["counts"] == [3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert age["negative"] == 1 and age["sum_ms"] == pytest.approx(1 + 3 + 7000)
    assert c["written"] == 6 and c["duplicates"] == 1 and c["gap_markers"] == 1
    ring.close()


# --- rendering heartbeats ---------------------------------------------------------------------
def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(fam, **labels):
    return [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def _check_histogram(fam, **labels) -> int:
    """Buckets cumulative and ending in +Inf == _count; returns the count."""
    buckets = [(float(s.labels["le"]), s.value) for s in _samples(fam, **labels) if s.name.endswith("_bucket")]
    assert buckets and buckets[-1][0] == float("inf")
    assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    (count,) = [s.value for s in _samples(fam, **labels) if s.name.endswith("_count")]
    assert buckets[-1][1] == count
    return int(count)


def test_heartbeats_render_as_prometheus_families(prefix):
    s = load_settings(shm_prefix=prefix)
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    age = Histogram(DATA_AGE_BOUNDS_MS)
    for x in (MS, 2 * MS, 40 * MS, 9_000 * MS):
        age.observe_ns(x)
    tick = Histogram((1, 2))
    for x in (MS // 2, 3 * MS):
        tick.observe_ns(x)
    Heartbeat(reg, "feed_futures").beat(
        {"parse_errors": 4, "published": 10, "publish_dropped": 1},
        feed={"venue": "futures", "connections": {"market": {"connected": True, "frames": 5, "bytes": 900,
                                                             "reconnects": 2, "silent_streams": []}},
              "streams": {"trade": {"written": 4, "gap_markers": 1, "last_recv_ns": 0,
                                    "data_age": age.doc()}}})
    Heartbeat(reg, "compute").beat({"tick_overruns": 3, "published": 7},
                                   hist={"tick_duration": tick.doc()}, rings={names.FUTURES_RINGS["trade"].key(): 12})
    c = testing.TestClient(create_app(ShmView(s), s))
    r = c.simulate_get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = _families(r.text)
    assert _check_histogram(fams["tdc_feed_data_age_seconds"], actor="feed_futures", stream="trade") == 4
    buckets = {s.labels["le"]: s.value for s in _samples(fams["tdc_feed_data_age_seconds"])
               if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 1 and buckets["0.002"] == 2 and buckets["0.05"] == 3 and buckets["5.0"] == 3
    (sum_s,) = [s.value for s in fams["tdc_feed_data_age_seconds"].samples if s.name.endswith("_sum")]
    assert sum_s == pytest.approx(9.043)
    assert _check_histogram(fams["tdc_compute_tick_duration_seconds"], actor="compute") == 2
    one = lambda name, **kw: [s.value for s in _samples(fams[name], **kw)][0]   # noqa: E731
    assert one("tdc_ring_overrun_records", actor="compute", ring=names.FUTURES_RINGS["trade"].key()) == 12
    assert one("tdc_feed_parse_errors", actor="feed_futures") == 4
    assert one("tdc_zmq_published_messages", actor="compute") == 7
    assert one("tdc_zmq_publish_dropped_messages", actor="feed_futures") == 1
    assert one("tdc_compute_tick_overruns", actor="compute") == 3
    assert one("tdc_feed_connection_reconnects", actor="feed_futures", connection="market") == 2
    assert one("tdc_feed_stream_gap_markers", actor="feed_futures", stream="trade") == 1


def test_api_latency_counts_each_request(prefix):
    s = load_settings(shm_prefix=prefix)
    c = testing.TestClient(create_app(ShmView(s), s))
    for _ in range(3):
        assert c.simulate_get("/openapi.json").status_code == 200
    c.simulate_get("/no/such/route")
    c.simulate_get("/latest/book", params={"venue": "moon"})
    fam = _families(c.simulate_get("/metrics").text)["tdc_api_request_duration_seconds"]
    assert _check_histogram(fam, route="/openapi.json", method="GET", status="200") == 3
    assert _check_histogram(fam, route="unmatched", method="GET", status="404") == 1
    assert _check_histogram(fam, route="/latest/book", method="GET", status="400") == 1


# --- prometheus_client multiprocess mode, as gunicorn runs it ----------------------------------
def test_reset_prometheus_dir_removes_stale_files(tmp_path):
    d = tmp_path / "x.prometheus"
    assert reset_prometheus_dir(d) == 0 and d.is_dir()
    (d / "histogram_123.db").write_bytes(b"stale")
    (d / "gauge_livesum_9.db").write_bytes(b"stale")
    assert reset_prometheus_dir(d) == 2 and list(d.iterdir()) == []


# Runs in a fresh interpreter: prometheus_client picks its value class at import time.
MULTIPROC_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    from falcon import testing
    from config.settings import load_settings
    from actors.obs import gunicorn_conf as gc
    s = load_settings()
    d = gc.prometheus_dir(s)
    # a previous run's worker file, with 1000 requests on the route we count below
    d.mkdir(parents=True, exist_ok=True)
    stale = subprocess.run([sys.executable, "-c", '''
    from prometheus_client import Histogram
    h = Histogram("tdc_api_request_duration_seconds", "x", ["route", "method", "status"])
    for _ in range(1000):
        h.labels("/openapi.json", "GET", "200").observe(0.001)
    '''], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(d)}, check=True)
    assert any(d.iterdir()), "the stale file was not written"
    gc.on_starting(None)                       # what the gunicorn master does first
    assert list(d.iterdir()) == [], list(d.iterdir())
    assert os.environ[gc.PROMETHEUS_ENV] == str(d)
    from actors.api import ShmView, create_app
    # two "workers" in this process share one file set; each request is counted once
    c = testing.TestClient(create_app(ShmView(s), s, gc.prometheus_dir(s)))
    for _ in range(5):
        assert c.simulate_get("/openapi.json").status_code == 200
    text = c.simulate_get("/metrics").text
    line = [l for l in text.splitlines() if l.startswith("tdc_api_request_duration_seconds_count")
            and 'route="/openapi.json"' in l]
    assert len(line) == 1 and line[0].endswith(" 5.0"), line
    assert "tdc_actor_up" in text or "tdc_quality_mode" in text     # one scrape: actors too
    class W: pid = 424242
    gc.child_exit(None, W())
    gc.on_exit(None)
    assert not d.exists()
    print("OK")
""")


def test_multiprocess_dir_lifecycle(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR",)}
    env.update(SHM_DIR=str(tmp_path), SHM_PREFIX="mp" + uuid.uuid4().hex[:6], PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", MULTIPROC_SCRIPT], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stdout + r.stderr


def test_sink_pending_ages_stay_bounded(prefix):
    from actors.feed.sink import AGE_FLUSH_MASK
    ring = RingWriter("/dev/shm", names.FUTURES_RINGS["trade"].name(prefix, "BTCUSDT"), TRADE, 1024)
    sink, pub = Sink("trade", ring, b"t"), NullPub()
    pub.publish = lambda topic, doc: None
    t0 = 1_700_000_000_000_000_000
    n = AGE_FLUSH_MASK + 1 + 3
    for i in range(n):
        sink.accept(_trade(t0 + i, t0 + i + 2 * MS, i + 1), pub)
    assert len(sink._ages) == 3                       # flushed at the 65,536th record
    assert sink.age.count == AGE_FLUSH_MASK + 1
    assert sink.counters()["data_age"]["counts"][1] == n and sink._ages == []
    ring.close()
