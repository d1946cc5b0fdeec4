"""Smoke tests of `python run.py bench`: each part runs at a tiny size and reports well-formed
numbers. Benchmarks are measurements, never timed tests: nothing here asserts a speed."""
from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from tests.bench import loadgen
from tests.bench.run import bench_ingest, format_table, main, summary_rows
from tests.bench.system import bench_system, swap_worker_class


def test_ring_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["ring", "--ring-records", "10000", "--json", str(out)]) == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["ring"]["append_one_per_s"] > 0 and doc["ring"]["append_many_plus_read_per_s"] > 0
    assert [r["measure"] for r in doc["table"]] == ["ring append, one record", "ring append 1000 + read"]
    assert "| measure" in capsys.readouterr().out


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
    r = bench_ingest(3000, subscriber=False, venue="spot")
    assert r["actor"] == "feed_spot" and r["feed"]["frames"] == 3000 and r["feed"]["overrun"] == 0
    assert r["bare"]["rate"] > 0 and r["feed"]["rate"] > 0 and r["ratio"] > 0
    assert r["feed"]["rss_mb"] > 0


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
