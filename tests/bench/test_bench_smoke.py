"""Smoke tests of `python run.py bench`: each part runs at a tiny size and reports well-formed
numbers. Benchmarks are measurements, never timed tests: nothing here asserts a speed."""
from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from actors.bench import loadgen
from actors.bench.run import (ROOT, bench_ingest, checkout_problem, format_table, ingest_key, ingest_runs,
                              ingest_target, main, summary_rows)
from actors.bench.system import bench_system, swap_worker_class


def test_ring_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["ring", "--ring-records", "10000", "--json", str(out)]) == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["ring"]["append_one_per_s"] > 0 and doc["ring"]["append_many_plus_read_per_s"] > 0
    assert [r["measure"] for r in doc["table"]] == ["ring append, one record", "ring append 1000 + read"]
    assert "| measure" in capsys.readouterr().out


def test_parts_needing_a_checkout_refuse_elsewhere_with_a_message(tmp_path, capsys):
    assert checkout_problem("ingest", ROOT) is None                     # this checkout
    assert checkout_problem("ring", tmp_path) is None                    # ring needs nothing else
    assert checkout_problem("system", tmp_path) == (
        f"bench system runs from a checkout of the repository: it starts the actors through run.py "
        f"and the whole system through tests/support, and {tmp_path} has no run.py and no "
        f"tests/support/system.py; run it from the checkout (python run.py bench system), or `bench ring` here")
    (tmp_path / "run.py").write_text("")
    assert checkout_problem("all", tmp_path).endswith(
        f"{tmp_path} has no tests/support/system.py; run it from the checkout (python run.py bench all), "
        f"or `bench ring` here")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    close = False

    def do_GET(self):
        body = b'{"ok":true}' if self.path == "/ok" else b'{"title":"not found"}'
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Closing(_Handler):
    close = True


@pytest.mark.parametrize("handler", [_Handler, _Closing], ids=["keep-alive", "connection-close"])
def test_loadgen_counts_requests_and_errors(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        ok = asyncio.run(loadgen.run(base + "/ok", connections=3, seconds=0.4, warmup=0.1))
        bad = asyncio.run(loadgen.run(base + "/missing", connections=2, seconds=0.3, warmup=0.1))
    finally:
        srv.shutdown()
        srv.server_close()
    assert ok["requests"] > 0 and ok["errors"] == 0 and ok["statuses"] == {"200": ok["requests"]}
    assert ok["p50_ms"] <= ok["p99_ms"] <= ok["max_ms"]
    if handler.close:
        assert ok["connects"] >= ok["requests"]          # one connection per request
    else:
        assert ok["connects"] == 3
    assert bad["requests"] > 0 and bad["errors"] == bad["requests"] == bad["statuses"]["404"]


def test_ingest_spot_tiny():
    r = bench_ingest(3000, subscriber=None, venue="spot")
    assert r["actor"] == "feed_spot" and r["feed"]["frames"] == 3000 and r["feed"]["overrun"] == 0
    assert r["bare"]["rate"] > 0 and r["feed"]["rate"] > 0 and r["ratio"] > 0
    assert r["feed"]["rss_mb"] > 0


def test_ingest_binary_subscriber_tiny():
    """feed_futures with the typed client on the binary topic: every frame in the ring, the CPU split
    reported per process, the row judged against issue 18's target."""
    r = bench_ingest(3000, subscriber="binary", venue="futures")
    assert r["feed"]["frames"] == 3000 and r["subscriber"] == "binary" and r["transport"] == "websockets"
    assert set(r["cpu_pct"]) == {"firehose", "bus", "feed", "subscriber"}
    (row,) = summary_rows({"ingest_futures_binary": r})
    assert row[0] == "ingest feed_futures over websockets (frames/s), + binary tick subscriber"
    assert row[4] == ">= 1.0x bare" and row[5] == ("PASS" if r["ratio"] >= 1.0 else "FAIL")


def test_ingest_runs_keys_and_targets():
    runs = ingest_runs(["futures", "spot"], ["websockets", "picows"], ["json", "binary"])
    assert runs == [("futures", None, "websockets"), ("spot", None, "websockets"),
                    ("futures", "json", "websockets"), ("futures", "binary", "websockets"),
                    ("futures", None, "picows"), ("futures", "binary", "picows")]
    assert ingest_runs(["futures"], ["websockets"], None) == [("futures", None, "websockets")]
    assert [ingest_key(*r) for r in runs] == ["ingest_futures", "ingest_spot", "ingest_futures_json",
                                              "ingest_futures_binary", "ingest_futures_picows",
                                              "ingest_futures_binary_picows"]
    assert [ingest_target({"subscriber": s, "transport": t}) for _, s, t in runs] == [
        (">= 0.8x bare", 0.8), (">= 0.8x bare", 0.8), ("- (JSON per tick, reported)", None),
        (">= 1.0x bare", 1.0), (">= 2.0x bare", 2.0), ("- (reported)", None)]


def test_system_once_with_rest_and_memory():
    out = bench_system(repeats=1, rest=True, rss=True, connections=2, rest_seconds=0.5, warmup=0.2,
                       alt=False, rss_after_sec=0, log=lambda m: None)
    (st,) = out["startup"]
    assert 0 < st["first_features_any_s"] <= st["first_features_s"]
    assert st["health_200_s"] > 0 and "compute" in st["actor_started_s"]
    rest = out["rest"]
    assert rest["requests"] > 0 and rest["errors"] == 0 and rest["body_bytes"] > 1000
    procs = out["memory"]["processes"]
    for actor in ("bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink", "context", "compute",
                  "sim", "api (gunicorn master)", "api worker 1", "api worker 2", "supervisord"):
        assert procs[actor]["rss_mb"] > 0, (actor, sorted(procs))
    rows = summary_rows({"system": out})
    assert any(r[0] == "RSS compute" and r[5] in ("PASS", "FAIL") for r in rows)
    assert "first priced features, start 1" in format_table(rows)


def test_swap_worker_class():
    sync = ["python", "-m", "gunicorn", "--workers", "2", "--worker-class", "sync", "app()"]
    gthread, label = swap_worker_class(sync, 4)
    assert gthread[-5:] == ["--worker-class", "gthread", "--threads", "4", "app()"] and "4 threads" in label
    back, label = swap_worker_class(gthread, 4)
    assert back == sync and label == "sync"
    asgi = ["python", "-m", "gunicorn", "--worker-class", "actors.obs.uvicorn_front.ApiWorker", "app()"]
    assert swap_worker_class(asgi, 4) is None        # the WSGI classes cannot serve the ASGI app


def test_dashboard_histogram_quantile_and_noise_band():
    from actors.bench.dashboard import hist_delta, hist_quantile_ms, within_noise
    before = {"le_ms": [1, 2, 5], "counts": [10, 0, 0, 0], "sum_ms": 5.0}
    after = {"le_ms": [1, 2, 5], "counts": [10, 50, 49, 1], "sum_ms": 300.0}
    d = hist_delta(before, after)
    assert d == {"le_ms": [1, 2, 5], "counts": [0, 50, 49, 1], "sum_ms": 295.0}
    assert hist_quantile_ms(d, 0.5) == 2.0                      # rank 50: the top of (1, 2]
    assert hist_quantile_ms(d, 0.99) == 5.0                     # rank 99: the top of (2, 5]
    assert hist_quantile_ms(d, 0.25) == 1.5                     # linear within (1, 2]
    assert hist_quantile_ms({"le_ms": [1], "counts": [0, 3], "sum_ms": 9.0}, 0.99) == 1.0   # +Inf: last bound
    assert hist_quantile_ms({"le_ms": [1], "counts": [0, 0], "sum_ms": 0.0}, 0.99) is None
    with pytest.raises(ValueError, match="decreased"):
        hist_delta(after, before)
    assert within_noise(10.0, 12.0, 10.0, 1.0) == (True, 10.0, 2.5)       # 25% of the baseline
    assert within_noise(10.0, 12.6, 10.0, 1.0) == (False, 10.0, 2.5)
    assert within_noise(8.0, 14.0, 12.0, 1.0) == (True, 10.0, 4.0)        # the baselines' own spread
    assert within_noise(1.0, 1.9, 1.0, 1.0) == (True, 1.0, 1.0)           # the floor


def test_dashboard_tiny():
    from actors.bench.dashboard import bench_dashboard
    out = bench_dashboard(clients=3, seconds=1.5, log=lambda m: None)
    a1, b, a2 = out["phases"]
    for p in (a1, b, a2):
        assert p["rest"]["requests"] > 0 and p["rest"]["errors"] == 0 and p["tick"]["ticks"] > 0
    assert len(b["sse"]["edge_events_per_client"]) == 3 and min(b["sse"]["edge_events_per_client"]) > 0
    assert b["sse"]["disconnected"] == 0
    assert set(out["verdict"]) == {"REST /latest/edge p99", "compute tick p99"}
    assert all(v["result"] in ("within noise", "ABOVE noise") for v in out["verdict"].values())
    from actors.bench.run import dashboard_rows
    assert [r[0] for r in dashboard_rows(out)] == ["REST /latest/edge p99, 3 SSE clients",
                                                   "compute tick p99, 3 SSE clients"]
