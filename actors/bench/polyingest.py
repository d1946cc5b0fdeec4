"""Polymarket ingest throughput: book updates/s through feed_poly into its rings, beside a bare
websockets + orjson loop reading the same frames from the same server (actors/bench/polyfirehose.py).

`bench_poly_ingest(n, log)`: the firehose generates n frames of real sim CLOB traffic for the
followed series' current windows; the bare loop reads them (before and after the feed: the
baseline is the mean); then `run.py feed_poly` (with the bus, nobody subscribed) starts against
the same server, which holds the stream until the feed has written the startup dump of every
current book (so every streamed update falls on a current window), then streams. A reader copies
the book and trade rings every 50 ms (it must not take a core from the feed) and counts the
records by kind until it has what the firehose says a correct feed writes (`expected`). Rates run
from the first to the last streamed record's receive time; the bare loop's records/s is its
frames/s times the stream's records per frame.

Invariants: the counts are exact (`missing` and `extra` per kind are reported, and a run that
did not get everything raises); every process started is stopped and the shm prefix unlinked in a
`finally`; only 127.0.0.1. Windows must not roll during a run: the run starts at least MARGIN_S
before the next window boundary of the followed series (waiting for the boundary otherwise).

  python -m actors.bench.polyingest bare WS_URL N TOKEN[,TOKEN...]    the bare loop (prints JSON)
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import numpy as np
import orjson

WINDOWS = "1h,4h,1d"           # long windows: none rolls during a run
MARGIN_S = 120.0
POLY_RATE_ENV = {"SIM_POLY_UPDATE_RATE": "1000", "SIM_POLY_TRADE_RATE": "50"}   # the sim's max per window


async def bare(url: str, n: int, tokens: list[str]) -> dict:
    """Subscribe, take the dump, then receive and parse n frames; frames/s from the first to the last."""
    from websockets.asyncio.client import connect
    from actors.venues.polymarket.clob import subscribe_msg
    async with connect(url, ping_interval=None, max_size=1 << 22, compression=None) as ws:
        await ws.send(subscribe_msg(tokens).decode())
        orjson.loads(await ws.recv(decode=False))                # the dump
        by_event: dict[str, int] = {}
        d = orjson.loads(await ws.recv(decode=False))
        t0 = time.perf_counter()
        for i in range(n):
            for m in d if type(d) is list else (d,):             # counted: every frame is read whole
                et = m["event_type"]
                by_event[et] = by_event.get(et, 0) + 1
            if i < n - 1:
                d = orjson.loads(await ws.recv(decode=False))
        dt = time.perf_counter() - t0
    return {"frames": n, "seconds": dt, "rate": (n - 1) / dt, "by_event": by_event}


def boundary_in_s(settings, now_s: float) -> float:
    """Seconds from now_s to the next window boundary of any followed series."""
    from actors.venues.polymarket import series as series_mod
    secs = settings.venues.window_secs
    return min(series_mod.next_window_start(k, series_mod.window_start(k, now_s, secs[k]), secs[k])
               for k in secs) - now_s


def _count(book_recs: list[np.ndarray], trade_recs: list[np.ndarray]) -> dict[str, int]:
    from ipc.schema import FLAG_GAP, FLAG_SNAPSHOT
    got = dict.fromkeys(("book_change", "book_snapshot", "book_gap", "trade", "startup"), 0)
    for r in book_recs:
        f = r["flags"]
        gap = (f & FLAG_GAP) != 0
        snap = ((f & FLAG_SNAPSHOT) != 0) & ~gap
        got["book_gap"] += int(gap.sum())
        got["startup"] += int((snap & (r["update_id"] == 1)).sum())     # the dump, before the stream
        got["book_snapshot"] += int((snap & (r["update_id"] > 1)).sum())
        got["book_change"] += int(((f & (FLAG_GAP | FLAG_SNAPSHOT)) == 0).sum())
    for r in trade_recs:
        got["trade"] += int(((r["flags"] & FLAG_GAP) == 0).sum())
    return got


def _wait_port(port: int, proc: subprocess.Popen, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while True:                    # the firehose generates its traffic first
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > end or proc.poll() is not None:
                raise RuntimeError("the Polymarket firehose did not start")
            time.sleep(0.1)


def bench_poly_ingest(n: int, log=lambda m: None, windows: str = WINDOWS, margin_s: float = MARGIN_S,
                      bare_after: bool = True) -> dict:
    """See the module docstring. Returns frames/s and records/s of the feed and of the bare loop,
    their ratio, the record counts by kind (got and expected), the feed's RSS and CPU split."""
    from actors.bench.run import ROOT, _cpu_s, _rss_mb, _stop_all, free_port
    from config.settings import load_settings
    from ipc import names
    from ipc.ring import RingReader
    from ipc.schema import POLY_BOOK, POLY_TRADE
    from ipc.shm import unlink_prefix
    prefix = "bench" + uuid.uuid4().hex[:6]
    fport = free_port()
    base = f"127.0.0.1:{fport}"
    env = dict(os.environ, SHM_PREFIX=prefix, ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}",
               ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}",
               LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               SYMBOL="BTCUSDT", POLYMARKET_ENABLED="true", POLYMARKET_WINDOWS=windows,
               POLYMARKET_GAMMA_URL=f"http://{base}/gamma", POLYMARKET_CLOB_URL=f"http://{base}/clob",
               POLYMARKET_WS_URL=f"ws://{base}/ws/market", POLYMARKET_RTDS_URL=f"ws://{base}/rtds",
               POLYMARKET_RECONCILE_SEC="3600",        # no REST correction during the run
               RING_CAPACITY=str(1 << 16), **POLY_RATE_ENV)
    env.pop("POLYMARKET_WINDOW_SEC", None)
    env.pop("POLYMARKET_WINDOW", None)
    s = load_settings(**{k.lower(): v for k, v in env.items() if k in (
        "SHM_PREFIX", "SYMBOL", "POLYMARKET_WINDOWS", "RING_CAPACITY")})
    wait = boundary_in_s(s, time.time())
    if wait < margin_s:
        log(f"  waiting {wait:.0f} s for the next window boundary (a run must not cross one)")
        time.sleep(wait + 2.0)       # a clock condition: the boundary passes at a known time
    py = sys.executable
    procs: list[subprocess.Popen] = []
    out: dict = {"frames": n, "windows": windows}
    http = httpx.Client(base_url=f"http://{base}", timeout=10)
    try:
        fire = subprocess.Popen([py, "-m", "actors.bench.polyfirehose", str(fport), str(n)], cwd=ROOT, env=env)
        procs.append(fire)
        _wait_port(fport, fire, 300)
        st = http.get("/__bench/stats").json()
        expected = st["expected"]
        per_frame = sum(expected.values()) / n
        out.update(expected=expected, by_event=st["by_event"], records=sum(expected.values()))

        def bare_loop() -> dict:
            r = subprocess.run([py, "-m", "actors.bench.polyingest", "bare", f"ws://{base}/ws/market", str(n),
                                ",".join(st["tokens"])], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"the bare loop failed: {r.stderr.strip()[-400:]}")
            b = orjson.loads(r.stdout.strip().splitlines()[-1])
            return {**b, "records_rate": b["rate"] * per_frame}

        bare_runs = [bare_loop()]
        log(f"  bare loop: {bare_runs[0]['rate']:,.0f} frames/s")
        http.get("/__bench/hold")          # the feed's connection gets its dump, then waits
        procs.append(subprocess.Popen([py, "run.py", "bus"], cwd=ROOT, env=env))
        feed = subprocess.Popen([py, "run.py", "feed_poly"], cwd=ROOT, env=env)
        procs.append(feed)
        series = list(s.venues.window_secs)
        books = [RingReader(s.ipc.shm_dir, names.poly_book_ring(k).name(prefix, s.general.symbol), POLY_BOOK)
                 for k in series]
        trades = [RingReader(s.ipc.shm_dir, names.poly_trade_ring(k).name(prefix, s.general.symbol), POLY_TRADE)
                  for k in series]
        seen_b: list[np.ndarray] = []
        seen_t: list[np.ndarray] = []

        def drain() -> dict[str, int]:
            for rd, acc in [(r, seen_b) for r in books] + [(r, seen_t) for r in trades]:
                recs = rd.read()
                if len(recs):
                    acc.append(recs)
            return _count(seen_b, seen_t)

        deadline = time.monotonic() + 60
        while drain()["startup"] < len(st["current"]):
            if time.monotonic() > deadline or feed.poll() is not None:
                raise RuntimeError(f"feed_poly wrote {_count(seen_b, seen_t)['startup']} of "
                                   f"{len(st['current'])} startup books")
            time.sleep(0.05)
        start_idx = (len(seen_b), len(seen_t))
        roles = {"firehose": fire, "bus": procs[1], "feed": feed}
        cpu0, wall0 = {k: _cpu_s(p.pid) for k, p in roles.items()}, time.monotonic()
        http.get("/__bench/go")
        want = sum(expected.values())
        deadline = time.monotonic() + 300
        while True:
            got = drain()
            if sum(got[k] for k in expected) >= want or time.monotonic() > deadline or feed.poll() is not None:
                break
            # this reader must not take a core from the feed: one copy every 50 ms (the rings hold
            # far more than 50 ms of records)
            time.sleep(0.05)
        wall = time.monotonic() - wall0
        out["cpu_pct"] = {k: 100 * (_cpu_s(p.pid) - cpu0[k]) / wall for k, p in roles.items()}
        rss, peak = _rss_mb(feed.pid)
        stream = [r[r["update_id"] > 1] for r in seen_b[start_idx[0]:]] + seen_t[start_idx[1]:]
        ts = np.concatenate([r["ts_recv_ns"] for r in stream]) if stream else np.empty(0, np.int64)
        out["got"] = {k: got[k] for k in expected}
        out["missing"] = {k: expected[k] - got[k] for k in expected if got[k] < expected[k]}
        out["extra"] = {k: got[k] - expected[k] for k in expected if got[k] > expected[k]}
        out["overrun"] = sum(r.overrun for r in books + trades)
        if out["missing"] or len(ts) < 2:
            raise RuntimeError(f"feed_poly wrote {out['got']} of {expected} records (overrun {out['overrun']})")
        span_s = (int(ts.max()) - int(ts.min())) / 1e9
        recs = int(len(ts))
        out["feed"] = {"frames": n, "records": recs, "seconds": span_s, "rate": (n - 1) / span_s,
                       "records_rate": (recs - 1) / span_s, "rss_mb": rss, "peak_rss_mb": peak}
        _stop_all(procs[:0:-1])           # the feed, then the bus: a quiet stop
        del procs[1:]
        http.get("/__bench/go")
        if bare_after:
            bare_runs.append(bare_loop())  # the baseline again, after: the mean of both is the baseline
        out["bare_runs"] = bare_runs
        rate = sum(b["rate"] for b in bare_runs) / len(bare_runs)
        out["bare"] = {"frames": n, "rate": rate, "records_rate": rate * per_frame}
        out["ratio"] = out["feed"]["rate"] / rate
    finally:
        http.close()
        _stop_all(procs)
        unlink_prefix(s.ipc.shm_dir, prefix)
    return out


def polyingest_rows(res: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(measure, value, baseline, ratio, target, result) rows of a bench_poly_ingest result."""
    if not res or "feed" not in res:
        return [("poly ingest feed_poly (frames/s)", "no data", "-", "-", "-", "FAIL")]
    f, b, r = res["feed"], res["bare"], res["ratio"]
    exact = "PASS" if not res["missing"] and not res["extra"] else "FAIL"
    return [
        ("poly ingest feed_poly (frames/s)", f"{f['rate']:,.0f}", f"bare loop {b['rate']:,.0f}", f"{r:.2f}", "-", "info"),
        ("poly ingest feed_poly (book updates/s)", f"{f['records_rate']:,.0f}",
         f"bare loop {b['records_rate']:,.0f}", f"{r:.2f}", "-", "info"),
        ("poly ingest records in the rings", f"{f['records']:,}", f"sent {res['records']:,}", "-",
         "all, by kind", exact),
        ("poly ingest feed_poly RSS", f"{f['rss_mb']:.1f} MB", f"peak {f['peak_rss_mb']:.1f} MB", "-", "-", "info"),
    ]


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        import uvloop
        print(orjson.dumps(uvloop.run(bare(sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")))).decode())
    else:
        raise SystemExit(__doc__)
