"""/metrics: fixed-bucket histograms on exact inputs, the feed's data-age bookkeeping, rendering of
heartbeats into Prometheus families, the API latency histogram, and prometheus_client's
multiprocess directory (stale files cleaned at start, merged across workers, removed at exit)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import time
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
from actors.obs.gunicorn_conf import reset_prometheus_dir
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
        return not topic.startswith(b"bin.")     # the JSON ticks only: this test reads those

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
        {"parse_errors": 4, "published": 10, "publish_dropped": 1,
         "rejected": {"trade:price": 3, "quote:crossed": 1}},
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
    assert {x.labels["reason"]: x.value for x in _samples(fams["tdc_feed_rejected_frames"])} == \
        {"trade:price": 3, "quote:crossed": 1}
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


# --- per-series labels --------------------------------------------------------------------------
def test_edge_block_renders_per_series_gauges(prefix):
    from ipc.state import StateBlock
    from tests.support.api import edge_doc, market_doc
    s = load_settings(shm_prefix=prefix)
    t0 = 1_800_000_000 * 10**9
    d15 = edge_doc("15m", t0, market_doc("15m", 1_799_999_100, 900), fair_up=0.61, decision="BUY_UP")
    d15["edge"]["vetoes"] = [{"code": "quality", "side": None, "reason": "x"}]
    d15["edge"]["sides"]["DOWN"]["vetoes"] = [{"code": "stale", "side": "DOWN", "reason": "y"}]
    d1h = edge_doc("1h", t0, market_doc("1h", 1_799_996_400, 3600, 65001.5), ptb=65001.5, ptb_source="venue")
    d1h["inputs"]["books"]["UP"]["age_ms"] = 250.0
    block = {"ts_ns": t0, "symbol": "BTCUSDT", "disabled": None,
             "series": {"15m": d15, "1h": d1h, "2m": d15, "4h": "garbage"}}      # unknown series / bad doc: left out
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.EDGE_BLOCK, writer=True).write(block)
    Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "feed_poly").beat(
        {}, feed={"venue": "poly", "connections": {}, "streams": {
            "book_15m": {"written": 7, "last_recv_ns": 0}, "trade_1h": {"written": 2, "last_recv_ns": 0}}})
    Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "strategy").beat(
        {"windows_settled": 3}, series={"15m": {"settled": 2, "pnl_usd": 1.5}, "1h": {"settled": 1, "pnl_usd": -0.25},
                                        "nope": {"settled": 9}})
    fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
    one = lambda fam, **kw: [x.value for x in _samples(fams[fam], **kw)]   # noqa: E731
    side = d15["edge"]["sides"]["UP"]
    assert one("tdc_edge_fair_probability", series="15m") == [0.61]
    assert one("tdc_edge", series="15m", side="UP") == [pytest.approx(side["edge"])]
    assert one("tdc_edge_bps", series="15m", side="UP") == [pytest.approx(side["edge"] * 1e4)]
    assert one("tdc_edge_return_on_cost", series="15m", side="UP") == [pytest.approx(side["return_on_cost"])]
    assert one("tdc_edge_cost_per_share", series="15m", side="UP") == [pytest.approx(0.5 + 0.072 * 0.25)]
    assert one("tdc_edge_decision", series="15m", decision="BUY_UP") == [1.0]
    assert one("tdc_edge_decision", series="15m", decision="NONE") == [0.0]
    assert one("tdc_edge_decision", series="1h", decision="NONE") == [1.0]
    assert one("tdc_edge_vetoes", series="15m", side="window") == [1.0]
    assert one("tdc_edge_vetoes", series="15m", side="DOWN") == [1.0]
    assert one("tdc_edge_vetoes", series="15m", side="UP") == [0.0]
    assert one("tdc_poly_book_age_seconds", series="1h", side="UP") == [0.25]
    assert one("tdc_poly_book_age_seconds", series="15m", side="DOWN") == [0.03]
    assert one("tdc_edge_input_age_seconds", series="15m", input="chainlink") == [1.2]
    assert one("tdc_edge_input_age_seconds", series="15m", input="binance") == [0.004]
    assert one("tdc_edge_time_left_seconds", series="1h") == [600.0]
    assert one("tdc_edge_price_to_beat", series="1h", source="venue") == [65001.5]
    assert one("tdc_edge_price_to_beat", series="15m", source="estimate") == [65000.0]
    assert one("tdc_accumulate_window_slices", series="15m") == [0.0]
    assert {x.labels["series"] for x in fams["tdc_edge_fair_probability"].samples} == {"15m", "1h"}
    # a feed stream of a series ring carries its series; the strategy's per-series counters
    assert one("tdc_feed_stream_records", actor="feed_poly", stream="book_15m", series="15m") == [7.0]
    assert one("tdc_feed_stream_records", actor="feed_poly", stream="trade_1h", series="1h") == [2.0]
    # per-series counters by unit: a count is a counter, PnL a USD gauge (its `_usd` dropped from the name)
    assert one("tdc_series_usd", actor="strategy", series="1h", name="pnl") == [-0.25]
    assert one("tdc_series_events", actor="strategy", series="15m", name="settled") == [2.0]
    assert fams["tdc_series_events"].type == "counter" and fams["tdc_series_usd"].type == "gauge"
    assert not _samples(fams["tdc_series_events"], series="nope")
    # the decision's books: the market's prices next to the fair value, and the window's end time
    assert one("tdc_poly_book_best_bid", series="15m", side="DOWN") == [0.46]
    assert one("tdc_poly_book_best_ask", series="15m", side="UP") == [0.5]
    assert one("tdc_edge_window_end_timestamp_seconds", series="1h") == [1_799_996_400 + 3600]


def test_streams_and_rings_without_a_series_keep_their_labels(prefix):
    s = load_settings(shm_prefix=prefix)
    Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "compute").beat(
        {}, rings={names.FUTURES_RINGS["trade"].key(): 3, names.poly_book_ring("5m").key(): 4})
    text = testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text
    fams = _families(text)
    [plain] = _samples(fams["tdc_ring_overrun_records"], ring="futures.trade")
    assert plain.labels == {"actor": "compute", "ring": "futures.trade"} and plain.value == 3.0
    assert 'tdc_ring_overrun_records_total{actor="compute",ring="futures.trade"} 3.0' in text
    assert [x.value for x in _samples(fams["tdc_ring_overrun_records"], ring="poly.book_5m", series="5m")] == [4.0]


def test_compute_series_counters_render_per_series(prefix):
    """compute's heartbeat extra `series` (Compute.report(): each engine's counters) becomes
    tdc_series_events_total{actor="compute", series, name}, beside its overruns by ring."""
    s = load_settings(shm_prefix=prefix)
    engine = lambda slices, lines: {"slices": slices, "decision_log_lines": lines,  # noqa: E731
                                    "decision_log_errors": 0, "book_records": 12, "book_gaps": 1,
                                    "bad_window_docs": 0}
    Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "compute").beat(
        {"slices": 3, "decision_log_lines": 9}, rings={names.poly_book_ring("5m").key(): 0},
        series={"5m": engine(2, 5), "1h": engine(1, 4)})
    fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
    got = {(x.labels["series"], x.labels["name"]): x.value
           for x in _samples(fams["tdc_series_events"], actor="compute")}
    assert got == {(series, name): float(v) for series, cs in (("5m", engine(2, 5)), ("1h", engine(1, 4)))
                   for name, v in cs.items()}


def test_start_history_and_control_refusals_render(prefix):
    """Each actor's `starts` (actors/supervision.py) and compute's refused control requests."""
    s = load_settings(shm_prefix=prefix)
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    Heartbeat(reg, "compute").beat({"control_refused": 3, "control_refused_auth": 2, "control_refused_frames": 1,
                                    "control_refused_nonsense": 9},
                                   starts={"total": 4, "recent": 3, "window_sec": 300, "crash_loop": True,
                                           "backoff_sec": 2.0})
    Heartbeat(reg, "bus").beat({}, starts={"total": 1, "recent": 1, "window_sec": 300, "crash_loop": False,
                                           "backoff_sec": 0.0})
    Heartbeat(reg, "feed_spot").beat({}, starts="junk")
    fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
    val = lambda fam, **kw: {s.labels["actor"] + "/" + s.labels.get("reason", ""): s.value  # noqa: E731
                             for s in _samples(fams[fam], **kw)}
    assert val("tdc_actor_starts") == {"compute/": 4.0, "bus/": 1.0}
    assert val("tdc_actor_crash_loop") == {"compute/": 1.0, "bus/": 0.0}
    assert val("tdc_actor_backoff_seconds") == {"compute/": 2.0, "bus/": 0.0}
    assert val("tdc_control_refused_requests") == {"compute/auth": 2.0, "compute/frames": 1.0}


# --- one unit per family (actors/obs/units.py) ---------------------------------------------------
def test_classification_table():
    from actors.obs import units as u
    cases = [("banned", True, u.FLAG), ("banned", False, u.FLAG), ("disk_ok", 0, u.FLAG),
             ("indicators_taapi", 1, u.FLAG), ("banned_until_ns", 0, u.TIMESTAMP_NS),
             ("tick_p99_ms", 11.4, u.DURATION_MS), ("throttled_ms", 250.0, u.TIME_MS),
             ("pnl_usd", -1.5, u.USD), ("bytes_written", 10, u.BYTES), ("frames", 3, u.EVENTS),
             ("control_refused_auth", 2, u.EVENTS), ("subscribed", 4, u.GAUGE), ("windows_held", 0, u.GAUGE),
             ("frobnications", 7, u.UNCLASSIFIED), ("bind", "127.0.0.1:8000", None),
             ("rejected", {"trade:price": 1}, None), ("frames", float("nan"), None), ("frames", None, None)]
    assert [(k, v, u.classify(k, v)) for k, v, _ in cases] == cases
    assert u.value_in_unit(1_800_000_123_500_000_001, u.TIMESTAMP_NS) == 1_800_000_123.5
    assert u.value_in_unit(1500.0, u.TIME_MS) == 1.5 and u.value_in_unit(True, u.FLAG) == 1.0
    assert u.label_name("tick_p99_ms", u.DURATION_MS) == "tick_p99"
    assert u.label_name("banned_until_ns", u.TIMESTAMP_NS) == "banned_until"
    assert u.label_name("bytes_written", u.BYTES) == "bytes_written"
    # a name is declared once: never both a counter and a gauge, never shadowed by an exception
    assert not (u.COUNTERS & u.GAUGES) and not (set(u.EXCEPTIONS) & (u.COUNTERS | u.GAUGES))


def test_counters_render_by_unit(prefix):
    """The context's REST ban reaches Prometheus as a 0/1 flag with its end as a timestamp; ms become
    seconds, counts counters; an undeclared number still renders (unclassified); text does not."""
    s = load_settings(shm_prefix=prefix)
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    until_ns = 1_800_000_123_500_000_000
    Heartbeat(reg, "context").beat({"rest_requests": 12, "weight_used": 50, "throttled_ms": 1500.0,
                                    "banned": True, "banned_until_ns": until_ns, "frobnications": 7,
                                    "odd": {"x": 1}, "published": 3})
    Heartbeat(reg, "recorder").beat({"frames_recorded": 40, "frames_lost": 2, "disk_ok": 0, "bytes_written": 999},
                                    recording={"futures": {"recorded": 30, "lost": 2, "lag_frames": 5, "pending": 4,
                                                           "bytes_written": 700, "write_errors": 1, "flushes": 3,
                                                           "ring_bytes": 1 << 20, "error": "disk full"},
                                               "moon": {"recorded": 1}})
    Heartbeat(reg, "api").beat({"workers": 2, "bind": "127.0.0.1:8000"})
    Heartbeat(reg, "feed_spot").beat({"disabled": "off"}, disabled="off")
    text = testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text
    fams = _families(text)
    by_name = lambda fam, actor: {x.labels["name"]: x.value for x in _samples(fams[fam], actor=actor)}  # noqa: E731
    assert by_name("tdc_actor_flag", "context") == {"banned": 1.0}
    assert by_name("tdc_actor_timestamp_seconds", "context") == {"banned_until": 1_800_000_123.5}
    assert by_name("tdc_actor_time_seconds", "context") == {"throttled": 1.5}
    assert by_name("tdc_actor_gauge", "context") == {"weight_used": 50.0}
    assert by_name("tdc_actor_events", "context") == {"rest_requests": 12.0, "published": 3.0}
    assert by_name("tdc_actor_unclassified", "context") == {"frobnications": 7.0}
    assert by_name("tdc_actor_flag", "recorder") == {"disk_ok": 0.0}
    assert by_name("tdc_actor_bytes", "recorder") == {"bytes_written": 999.0}
    assert by_name("tdc_actor_gauge", "api") == {"workers": 2.0}
    assert {x.labels["actor"]: x.value for x in fams["tdc_actor_skipped_values"].samples} == \
        {"context": 1.0, "recorder": 0.0, "api": 0.0, "feed_spot": 0.0}     # `odd`: no family
    assert {x.labels["actor"]: x.value for x in fams["tdc_actor_disabled"].samples} == \
        {"context": 0.0, "recorder": 0.0, "api": 0.0, "feed_spot": 1.0}
    types = {n: fams[n].type for n in ("tdc_actor_events", "tdc_actor_bytes", "tdc_actor_time_seconds")}
    assert types == dict.fromkeys(types, "counter")
    assert "tdc_actor_time_seconds_total{" in text and "tdc_actor_counter" not in text
    # the recorder per venue (an unknown venue left out); its disk state on its own
    rec = {n: [x.value for x in _samples(fams[n], venue="futures")]
           for n in ("tdc_recorder_frames", "tdc_recorder_lost_frames", "tdc_recorder_lag_frames",
                     "tdc_recorder_pending_frames", "tdc_recorder_written_bytes", "tdc_recorder_write_errors")}
    assert rec == {"tdc_recorder_frames": [30.0], "tdc_recorder_lost_frames": [2.0], "tdc_recorder_lag_frames": [5.0],
                   "tdc_recorder_pending_frames": [4.0], "tdc_recorder_written_bytes": [700.0],
                   "tdc_recorder_write_errors": [1.0]}
    assert not _samples(fams["tdc_recorder_frames"], venue="moon")
    assert [x.value for x in fams["tdc_recorder_disk_ok"].samples] == [0.0]


def test_start_and_last_record_timestamps(prefix):
    s = load_settings(shm_prefix=prefix)
    hb = Heartbeat(Registry(s.ipc.shm_dir, s.ipc.shm_prefix), "feed_futures")
    recv_ns, event_ns = 1_800_000_000_250_000_000, 1_800_000_000_240_000_000
    hb.beat({}, feed={"connections": {}, "streams": {"trade": {"written": 1, "last_recv_ns": recv_ns,
                                                               "last_event_ns": event_ns},
                                                     "quote": {"written": 0, "last_recv_ns": 0}}})
    fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
    one = lambda n, **kw: [x.value for x in _samples(fams[n], **kw)]   # noqa: E731
    assert one("tdc_feed_stream_last_record_timestamp_seconds", stream="trade") == [1_800_000_000.25]
    assert one("tdc_feed_stream_last_event_timestamp_seconds", stream="trade") == [1_800_000_000.24]
    assert one("tdc_feed_stream_last_record_timestamp_seconds", stream="quote") == []   # no record yet
    assert one("tdc_actor_start_time_seconds", actor="feed_futures") == [pytest.approx(hb.start_ns / 1e9, abs=1e-5)]
    [beat] = one("tdc_actor_last_heartbeat_timestamp_seconds", actor="feed_futures")
    assert hb.start_ns / 1e9 <= beat + 1e-5 and beat <= time.time() + 1e-5


PROCESS_CHILD = textwrap.dedent("""
    import os, sys, time
    ballast = bytearray(64 << 20)                  # resident: every page written
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    files = [open(os.devnull) for _ in range(40)]
    t = time.process_time()
    while time.process_time() - t < 0.3:           # CPU
        pass
    print("ready", flush=True)
    sys.stdin.read()
""")


def test_process_metrics_per_actor(prefix):
    """/proc of each actor's pid (its heartbeat) as prometheus_client's process families, with an
    `actor` label: a child holding 64 MB, 40 extra fds and 0.3 s of CPU; a dead pid has none."""
    s = load_settings(shm_prefix=prefix)
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    t0 = time.time()
    child = subprocess.Popen([sys.executable, "-c", PROCESS_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        hb = Heartbeat(reg, "compute")
        hb.pid = child.pid
        hb.beat({})
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        gone = Heartbeat(reg, "bus")
        gone.pid = int(dead.stdout)
        gone.beat({})
        fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
    finally:
        child.stdin.close()
        child.wait(10)
    one = lambda n: {x.labels["actor"]: x.value for x in fams[n].samples}   # noqa: E731
    rss = one("tdc_process_resident_memory_bytes")
    assert set(rss) == {"compute"} and 64 << 20 <= rss["compute"] < 256 << 20
    assert 43 <= one("tdc_process_open_fds")["compute"] < 100
    assert 0.3 <= one("tdc_process_cpu_seconds")["compute"] < 30
    assert fams["tdc_process_cpu_seconds"].type == "counter"
    # /proc's start time has clock-tick resolution on a boot time in whole seconds
    assert t0 - 1.5 <= one("tdc_process_start_time_seconds")["compute"] <= time.time() + 1.5


def test_build_info(prefix, monkeypatch):
    from actors.obs import process
    s = load_settings(shm_prefix=prefix)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    monkeypatch.delenv("TDC_COMMIT", raising=False)
    process.build_labels.cache_clear()
    try:
        fams = _families(testing.TestClient(create_app(ShmView(s), s)).simulate_get("/metrics").text)
        [info] = fams["tdc_build_info"].samples
        assert info.value == 1.0 and info.labels["python"] == platform.python_version()
        assert info.labels["version"]                      # the package's, or "unknown" in a bare checkout
        if head.returncode == 0:
            assert info.labels["commit"] == head.stdout.strip()
        monkeypatch.setenv("TDC_COMMIT", "abc123")         # what a container build passes
        process.build_labels.cache_clear()
        assert process.build_labels()["commit"] == "abc123"
    finally:
        process.build_labels.cache_clear()
