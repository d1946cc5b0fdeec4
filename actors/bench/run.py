"""`python run.py bench [all|ring|ingest|tick|polyedge|latency|system|rest|rss|startup] [--json OUT]`:
measurements side by side with their baselines, never timed tests; a table at the end (measure,
value, baseline, ratio, target, PASS/FAIL). `--help` lists the sizes.

ring: shared-memory ring write and read rates (records/s) for the trade dtype.
ingest: frames/s through one feed process (feed_futures, feed_spot: parse + ring write + publish)
  against a firehose of real sim aggTrade frames, next to a bare websockets + orjson loop reading
  the same frames from the same firehose (actors/bench/firehose.py, receivers.py).
tick: compute's tick duration and start jitter with the sim, both feeds and the bus running, at the
  sim's normal trade rate and ten times it.
polyedge: a Polymarket book update (received by feed_poly) reaching the edge topic and /latest/edge,
  p50/p99 at TICK_MS=100, next to the book tick's own bus path (actors/bench/polyedge.py).
latency: frame sent by the sim → record in the ring → message at a ZeroMQ subscriber (through the
  real feed_futures and bus processes), side by side in the same run with a bare websockets
  client's frame-sent → frame-received latency on the same frames. Send times come from the sim's
  `on_sent` hook, taken right after each frame is handed to the transport; all clocks are this
  host's CLOCK_REALTIME.
system (rest, rss, startup): the whole system (`run.py --sim`) started several times: first priced
  features on a ZeroMQ subscriber and /health 200; on the first start, REST requests/s and latency
  under a concurrent load generator on /latest/features (the configured gunicorn worker class,
  then the other one for comparison), and the resident memory of every process
  (actors/bench/system.py, loadgen.py).
dashboard (not in `all`): one system; /latest/edge p99 (a paced probe) and compute's tick p99 with
  no /stream client, with N SSE clients connected and reading, and with none again; the verdict
  "within noise" is defined in actors/bench/dashboard.py.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

from ipc import names
from ipc.bus import free_tcp_port as free_port

ROOT = Path(__file__).resolve().parents[2]


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _pcts(lat_ns: np.ndarray) -> dict:
    us = lat_ns / 1e3
    return {"n": len(us), "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "p999_us": float(np.percentile(us, 99.9)), "max_us": float(us.max())}


def bench_latency(seconds: float, rate: float) -> dict:
    from config.settings import load_settings
    prefix = "bench" + uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-"))
    env = dict(os.environ, SHM_PREFIX=prefix, SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
               ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}",
               SIM_TRADE_RATE=str(rate), LOG_LEVEL="ERROR", PYTHONUNBUFFERED="1")
    env.update(FUTURES_WS=f"ws://127.0.0.1:{env['SIM_PORT']}")
    s = load_settings(**{k.lower(): v for k, v in env.items() if k in (
        "SHM_PREFIX", "SIM_PORT", "SIM_SPOT_PORT", "SIM_TRADE_RATE", "FUTURES_WS", "ZMQ_XSUB_URL",
        "ZMQ_PUB_URL")})
    sent: dict[int, int] = {}

    def on_sent(stream: str, key: int, ts_ns: int) -> None:
        if stream.endswith("@aggTrade"):
            sent.setdefault(key, ts_ns)   # first send (to whichever client) = the frame's send time

    from actors.sim.market import Market, MarketParams
    from actors.sim.server import serve
    # one activity regime, so the rate is the one asked for (Hawkes bursts remain, as on the venue)
    market = Market(seed=s.sim.seed, trade_rate=rate, start_price=s.sim.start_price,
                    start_ns=time.time_ns(),
                    params=MarketParams(regime_activity=(1.0, 1.0, 1.0)))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    th = threading.Thread(target=lambda: loop.run_until_complete(
        serve(s, on_sent=on_sent, stop=stop, market=market)), daemon=True)
    procs = []
    try:
        th.start()
        py = sys.executable
        procs.append(subprocess.Popen([py, "run.py", "bus"], cwd=ROOT, env=env))
        procs.append(subprocess.Popen([py, "run.py", "feed_futures"], cwd=ROOT, env=env))
        time.sleep(0.5)   # warm-up only: nothing is measured before the receivers start
        url = f"ws://127.0.0.1:{s.sim.port}/market/stream?streams={s.general.symbol_lower}@aggTrade"
        recv = [subprocess.Popen([py, "-m", "actors.bench.receivers", "bare", url, str(tmp / "bare.npy"),
                                  str(seconds)], cwd=ROOT, env=env),
                subprocess.Popen([py, "-m", "actors.bench.receivers", "zmq", s.ipc.zmq_pub_url,
                                  f"tick.futures.trade.{s.general.symbol}", str(tmp / "zmq.npy"), str(seconds)],
                                 cwd=ROOT, env=env)]
        for p in recv:
            p.wait(seconds + 30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        th.join(10)
        _stop_all(procs)
        from ipc.shm import unlink_prefix
        unlink_prefix(s.ipc.shm_dir, prefix)
    out = {}
    for name in ("bare", "zmq"):
        keys, ts = np.load(tmp / f"{name}.npy")
        # skip the first second: connection set-up and subscription propagation
        lat = np.array([t - sent[k] for k, t in zip(keys.tolist(), ts.tolist()) if k in sent])
        skip = min(len(lat) // 10, int(rate))
        out[name] = _pcts(lat[skip:])
        out[name]["rate_per_s"] = len(ts) / ((ts.max() - ts.min()) / 1e9) if len(ts) > 1 else 0.0
    shutil.rmtree(tmp, ignore_errors=True)
    out["ratio_p99"] = out["zmq"]["p99_us"] / out["bare"]["p99_us"]
    out["rate"] = rate
    return out


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, its threads' included."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


INGEST_VENUES = {
    # venue: (actor, env var of its WebSocket base, bare client's path, tick topic prefix)
    "futures": ("feed_futures", "FUTURES_WS", "/market/stream?streams=btcusdt@aggTrade", "tick.futures.trade."),
    "spot": ("feed_spot", "SPOT_WS", "/stream?streams=btcusdt@aggTrade", "tick.spot.trade."),
}


# a tick subscriber of the ingest bench: (receivers.py mode, topic prefix under the tick topic's)
SUBSCRIBERS = {"json": ("zmq", ""), "binary": ("zmq-bin", names.BINARY_PREFIX)}


def bench_ingest(n: int, subscriber: str | None = None, venue: str = "futures",
                 transport: str = "websockets") -> dict:
    """Frames/s through one feed process (parse + ring write + publish) over `transport` vs a bare
    websockets + orjson loop on the same frames from the same firehose, one after the other;
    `subscriber` (SUBSCRIBERS) a process receiving and decoding every tick meanwhile."""
    from config.settings import load_settings
    from ipc.ring import RingReader
    from ipc.schema import TRADE
    from ipc.shm import unlink_prefix
    actor, ws_var, bare_path, topic = INGEST_VENUES[venue]
    prefix = "bench" + uuid.uuid4().hex[:6]
    fport = free_port()
    env = dict(os.environ, SHM_PREFIX=prefix, ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}",
               ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}", LOG_LEVEL="WARNING", FEED_STALE_SEC="120",
               DEPTH_ENABLED="false", RING_CAPACITY=str(1 << 20), PYTHONUNBUFFERED="1")
    env[ws_var] = f"ws://127.0.0.1:{fport}"
    s = load_settings(**{k.lower(): v for k, v in env.items() if k in (
        "SHM_PREFIX", ws_var, "ZMQ_XSUB_URL", "ZMQ_PUB_URL", "ZMQ_BIN_URL", "RING_CAPACITY")})
    py = sys.executable
    procs = []
    env["WS_TRANSPORT"] = transport
    out: dict = {"frames": n, "venue": venue, "actor": actor, "transport": transport}
    try:
        fire = subprocess.Popen([py, "-m", "actors.bench.firehose", str(fport), str(n), venue], cwd=ROOT, env=env)
        procs.append(fire)
        deadline = time.monotonic() + 120
        while True:                         # the firehose pre-encodes its frames first
            try:
                socket.create_connection(("127.0.0.1", fport), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or fire.poll() is not None:
                    raise RuntimeError("firehose did not start")
                time.sleep(0.1)

        def bare_loop() -> dict:
            r = subprocess.run([py, "-m", "actors.bench.receivers", "count", f"ws://127.0.0.1:{fport}{bare_path}",
                                str(n)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            return orjson.loads(r.stdout.strip().splitlines()[-1])

        bare_runs = [bare_loop()]
        if transport == "picows":           # the transport's own bare loop, for the record
            r = subprocess.run([py, "-m", "actors.bench.receivers", "count-picows",
                                f"ws://127.0.0.1:{fport}{bare_path}", str(n)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
            out["bare_picows"] = orjson.loads(r.stdout.strip().splitlines()[-1])
        procs.append(subprocess.Popen([py, "run.py", "bus"], cwd=ROOT, env=env))
        if subscriber:
            mode, under = SUBSCRIBERS[subscriber]
            url = s.ipc.zmq_bin_url if under else s.ipc.zmq_pub_url
            procs.append(subprocess.Popen([py, "-m", "actors.bench.receivers", mode, url,
                                           under + topic, "-", "600"], cwd=ROOT, env=env))
        feed = subprocess.Popen([py, "run.py", actor], cwd=ROOT, env=env)
        procs.append(feed)
        ring = None
        first_ns = last_ns = None
        got = 0
        roles = {"firehose": fire, "bus": procs[1], "feed": feed, **({"subscriber": procs[2]} if subscriber else {})}
        cpu0 = wall0 = None
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            if ring is None:
                try:
                    ring = RingReader(s.ipc.shm_dir, names.venue_ring(venue, "trade").name(prefix, s.general.symbol), TRADE)
                except (FileNotFoundError, ValueError):
                    time.sleep(0.05)
                    continue
            recs = ring.read()
            recs = recs[recs["flags"] == 0]
            if len(recs):
                if first_ns is None:
                    first_ns = int(recs["ts_recv_ns"][0])
                    cpu0, wall0 = {k: _cpu_s(p.pid) for k, p in roles.items()}, time.monotonic()
                last_ns = int(recs["ts_recv_ns"][-1])
                got += len(recs)
            # this reader must not take a core from the feed: one copy every 50 ms (the ring holds
            # far more than 50 ms of records)
            time.sleep(0.05)
        if got < 2:
            raise RuntimeError(f"{actor} wrote {got} of {n} records")
        rss, peak = _rss_mb(feed.pid)
        wall = time.monotonic() - wall0
        # where the two cores went while the feed ran: % of one core per process (threads included)
        out["cpu_pct"] = {k: 100 * (_cpu_s(p.pid) - cpu0[k]) / wall for k, p in roles.items()}
        _stop_all(procs[:0:-1])          # the feed (and its subscriber, the bus) first: a quiet stop
        del procs[1:]
        bare_runs.append(bare_loop())    # the baseline again, after: the mean of both is the baseline
        out["bare_runs"] = bare_runs
        out["bare"] = {"frames": n, "rate": sum(b["rate"] for b in bare_runs) / len(bare_runs)}
        out["feed"] = {"frames": got, "seconds": (last_ns - first_ns) / 1e9,
                       "rate": (got - 1) / ((last_ns - first_ns) / 1e9), "rss_mb": rss, "peak_rss_mb": peak,
                       "overrun": ring.overrun}
        out["ratio"] = out["feed"]["rate"] / out["bare"]["rate"]
        out["subscriber"] = subscriber
    finally:
        _stop_all(procs)
        unlink_prefix(s.ipc.shm_dir, prefix)
    return out


def bench_tick(seconds: float, rate: float) -> dict:
    """compute's tick duration and start jitter (p50/p99 over its last 4,096 ticks) with the sim,
    both feeds and the bus running at `rate` aggTrade/s."""
    from ipc.shm import unlink_prefix
    from ipc.state import Registry
    prefix = "bench" + uuid.uuid4().hex[:6]
    env = dict(os.environ, SHM_PREFIX=prefix, SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
               SIM_POLY_PORT=str(free_port()), ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}",
               ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_CONTROL_URL=f"tcp://127.0.0.1:{free_port()}",
               SIM_TRADE_RATE=str(rate), LOG_LEVEL="ERROR", TICK_MS="100",
               DECISION_LOG_DIR=tempfile.mkdtemp(prefix="tdc-bench-decisions-"))
    decisions = env["DECISION_LOG_DIR"]
    env.update(FUTURES_WS=f"ws://127.0.0.1:{env['SIM_PORT']}", SPOT_WS=f"ws://127.0.0.1:{env['SIM_SPOT_PORT']}",
               FUTURES_REST=f"http://127.0.0.1:{env['SIM_PORT']}")
    procs = [subprocess.Popen([sys.executable, "run.py", a], cwd=ROOT, env=env)
             for a in ("sim", "bus", "feed_futures", "feed_spot", "compute")]
    try:
        time.sleep(seconds)          # the measurement window itself: compute records every tick
        hb = Registry("/dev/shm", prefix).read("compute") or {}
        trades = (Registry("/dev/shm", prefix).read("feed_futures") or {}).get("feed", {}).get(
            "streams", {}).get("trade", {}).get("written", 0)
    finally:
        _stop_all(procs)
        unlink_prefix("/dev/shm", prefix)
        shutil.rmtree(decisions, ignore_errors=True)
    c = hb.get("counters", {})
    return {"rate": rate, "trades": trades, **{k: c.get(k) for k in (
        "tick_p50_ms", "tick_p99_ms", "jitter_p50_ms", "jitter_p99_ms", "tick_samples", "tick_overruns",
        "tick_max_ms")}}


def bench_ring(n: int = 1_000_000) -> dict:
    n = max(n, 1000)
    from ipc.ring import RingReader, RingWriter
    from ipc.schema import TRADE
    name = "bench" + uuid.uuid4().hex[:6] + ".ring"
    w = RingWriter("/dev/shm", name, TRADE, 1 << 16)
    r = RingReader("/dev/shm", name, TRADE)
    rec = (1, 2, 0, 3, 3, 3, 65000.0, 0.01, 1)
    try:
        t0 = time.perf_counter()
        for _ in range(n // 10):
            w.append(rec)
        append_s = (time.perf_counter() - t0) / (n // 10)
        block = np.zeros(1000, dtype=TRADE)
        r.read()
        t0 = time.perf_counter()
        total = 0
        for _ in range(n // 1000):
            w.append_many(block)
            total += len(r.read())
        block_s = (time.perf_counter() - t0) / total
    finally:
        os.unlink(f"/dev/shm/{name}")
    return {"append_one_per_s": 1 / append_s, "append_many_plus_read_per_s": 1 / block_s}


# --- the summary table ---------------------------------------------------------------------
# targets (issue 9, two cores): ingest >= 0.8x the bare loop; subscriber latency p99 <= 2x the bare
# client's; REST >= 3,000 req/s on /latest/features with p99 <= 10 ms and no error; every actor
# < 120 MB resident; first priced features <= 3 s after start on the sim; compute's tick as the
# README states (duration p99 <= 5 ms at normal rate, <= 20 ms at 10x, jitter p99 <= 2 ms)
INGEST_MIN_RATIO = 0.8
# issue 18: with a subscriber decoding every tick (the binary topic), >= the bare websockets loop;
# over picows, >= 2x it unsubscribed
INGEST_SUB_MIN_RATIO = 1.0
INGEST_PICOWS_MIN_RATIO = 2.0


def ingest_runs(venues: list[str], transports: list[str], subscribers: list[str] | None):
    """(venue, subscriber, transport) of every `bench ingest` run: each venue unsubscribed, then
    feed_futures with each subscriber; picows: futures unsubscribed and with the binary subscriber."""
    runs = [(v, None, "websockets") for v in venues if v]
    runs += [("futures", sub, "websockets") for sub in subscribers or () if sub]
    if "picows" in transports:
        runs.append(("futures", None, "picows"))
        if subscribers and "binary" in subscribers:
            runs.append(("futures", "binary", "picows"))
    return runs


def ingest_key(venue: str, subscriber: str | None, transport: str) -> str:
    return "ingest_" + "_".join(x for x in (venue, subscriber, None if transport == "websockets" else transport) if x)


def ingest_target(r: dict) -> tuple[str, float | None]:
    """(the target's text, the least ratio that passes or None: a figure for the record)."""
    sub, transport = r.get("subscriber"), r.get("transport", "websockets")
    if transport == "picows":
        return ((f">= {INGEST_PICOWS_MIN_RATIO}x bare", INGEST_PICOWS_MIN_RATIO) if not sub
                else ("- (reported)", None))
    if sub == "binary":
        return f">= {INGEST_SUB_MIN_RATIO}x bare", INGEST_SUB_MIN_RATIO
    if sub:
        return "- (JSON per tick, reported)", None
    return f">= {INGEST_MIN_RATIO}x bare", INGEST_MIN_RATIO
LATENCY_MAX_RATIO = 2.0
REST_MIN_RPS, REST_MAX_P99_MS = 3000.0, 10.0
RSS_MAX_MB = 120.0
FIRST_FEATURES_MAX_S = 3.0
TICK_TARGETS = {40.0: 5.0, 400.0: 20.0}
JITTER_MAX_MS = 2.0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary_rows(res: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(measure, value, baseline, ratio, target, result) for every measure in `res`."""
    rows = []
    for key, r in res.items():
        if not key.startswith("ingest_") or not isinstance(r, dict) or "feed" not in r:
            continue
        label = f"ingest {r['actor']} over {r.get('transport', 'websockets')} (frames/s)" + (
            f", + {r['subscriber']} tick subscriber" if r["subscriber"] else "")
        target, least = ingest_target(r)
        runs = r.get("ratios") or [r["ratio"]]
        detail = f"bare websockets loop {r['bare']['rate']:,.0f}" + (
            f"; ratios of {len(runs)} runs " + "/".join(f"{x:.2f}" for x in runs) if len(runs) > 1 else "")
        rows.append((label, f"{r['feed']['rate']:,.0f}", detail,
                     f"{r['ratio']:.2f}", target, _verdict(r["ratio"] >= least) if least else "info"))
        if "bare_picows" in r:
            rows.append(("bare picows + orjson loop (frames/s)", f"{r['bare_picows']['rate']:,.0f}",
                         f"bare websockets loop {r['bare']['rate']:,.0f}",
                         f"{r['bare_picows']['rate'] / r['bare']['rate']:.2f}", "-", "info"))
    if res.get("peers"):
        from .peers import peer_rows
        rows.extend(peer_rows(res["peers"]))
    if res.get("polyingest"):
        from .polyingest import polyingest_rows
        rows.extend(polyingest_rows(res["polyingest"]))
    r = res.get("latency")
    if r:
        for q, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            ours, bare = r["zmq"][f"{q}_us"], r["bare"][f"{q}_us"]
            rows.append((f"frame -> ZMQ sub latency {label} @{r['rate']:.0f}/s", f"{ours / 1e3:.2f} ms",
                         f"bare client {bare / 1e3:.2f} ms", f"{ours / bare:.2f}",
                         f"<= {LATENCY_MAX_RATIO}x bare" if q == "p99" else "-",
                         _verdict(ours / bare <= LATENCY_MAX_RATIO) if q == "p99" else "info"))
    for t in res.get("tick", []):
        dmax = TICK_TARGETS.get(t["rate"])
        if t.get("tick_p99_ms") is None:
            rows.append((f"compute tick @{t['rate']:.0f} aggTrade/s", "no data", "-", "-", "-", "FAIL"))
            continue
        rows.append((f"compute tick duration p50/p99 @{t['rate']:.0f}/s",
                     f"{t['tick_p50_ms']:.2f} / {t['tick_p99_ms']:.2f} ms", "TICK_MS 100", "-",
                     f"p99 <= {dmax:g} ms" if dmax else "-",
                     _verdict(t["tick_p99_ms"] <= dmax) if dmax else "info"))
        rows.append((f"compute tick jitter p50/p99 @{t['rate']:.0f}/s",
                     f"{t['jitter_p50_ms']:.2f} / {t['jitter_p99_ms']:.2f} ms",
                     f"overruns {t['tick_overruns']}/{t['tick_samples']}", "-", f"p99 <= {JITTER_MAX_MS:g} ms",
                     _verdict(t["jitter_p99_ms"] <= JITTER_MAX_MS)))
    r = res.get("polyedge")
    if r:
        base = r["bus"].get("p99_ms")
        for key, label in (("edge_topic", "edge topic"), ("rest", "/latest/edge")):
            x = r[key]
            if not x.get("n"):
                rows.append((f"poly book -> {label}", "no data", "-", "-", "-", "FAIL"))
                continue
            rows.append((f"poly book -> {label} p50/p99 @TICK_MS {r['tick_ms']}",
                         f"{x['p50_ms']:.1f} / {x['p99_ms']:.1f} ms",
                         f"bus tick {r['bus']['p50_ms']:.1f} / {base:.1f} ms", f"{x['p99_ms'] / base:.1f}" if base else "-",
                         "p99 <= TICK_MS + 50 ms", _verdict(x["p99_ms"] <= r["tick_ms"] + 50.0)))
    sysr = res.get("system") or {}
    for key, label in (("rest", "REST"), ("rest_alt", "REST, comparison")):
        r = sysr.get(key)
        if not r:
            continue
        main = key == "rest"
        cfg = f"{r['config']}, {r['connections']} conns"
        rows.append((f"{label} /latest/features req/s", f"{r['rps']:,.0f}", cfg, "-",
                     f">= {REST_MIN_RPS:,.0f}" if main else "-",
                     _verdict(r["rps"] >= REST_MIN_RPS) if main else "info"))
        rows.append((f"{label} latency p50/p99", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms",
                     f"p99.9 {r['p999_ms']:.2f} ms", "-", f"p99 <= {REST_MAX_P99_MS:g} ms" if main else "-",
                     _verdict(r["p99_ms"] <= REST_MAX_P99_MS) if main else "info"))
        rows.append((f"{label} errors / CPU", f"{r['errors']} errors",
                     f"loadgen {r['loadgen_cpu_pct']:.0f}%, api {r['api_cpu_pct']:.0f}%, "
                     f"rest {r['others_cpu_pct']:.0f}%", "-", "0 errors",
                     _verdict(r["errors"] == 0) if main else ("info" if r["errors"] == 0 else "errors!")))
    for r in sysr.get("rest_sweep", []):
        rows.append((f"REST sweep, {r['connections']} conns", f"{r['rps']:,.0f} req/s",
                     f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} ms, {r['errors']} errors", "-", "-", "info"))
    mem = (sysr.get("memory") or {}).get("processes", {})
    for name, m in sorted(mem.items(), key=lambda kv: _proc_order(kv[0])):
        actor = _proc_order(name)[0] < 3
        rows.append((f"RSS {name}", f"{m['rss_mb']:.1f} MB", f"peak {m['peak_rss_mb']:.1f} MB", "-",
                     f"< {RSS_MAX_MB:g} MB" if actor else "-",
                     _verdict(m["peak_rss_mb"] < RSS_MAX_MB) if actor else "info"))
    for i, st in enumerate(sysr.get("startup", []), 1):
        spawn = st.get("supervisord_spawned_s", {}).get("first_spawn")
        up = max(st.get("actor_started_s", {}).values(), default=None)
        detail = (f"spawned {spawn:.2f} s, all actors up {up:.2f} s" if spawn is not None and up is not None
                  else f"any features {st['first_features_any_s']:.2f} s")
        rows.append((f"first priced features, start {i}", f"{st['first_features_s']:.2f} s", detail, "-",
                     f"<= {FIRST_FEATURES_MAX_S:g} s", _verdict(st["first_features_s"] <= FIRST_FEATURES_MAX_S)))
        rows.append((f"/health 200, start {i}", f"{st['health_200_s']:.2f} s", "-", "-", "-", "info"))
    d = res.get("dashboard")
    if d:
        rows.extend(dashboard_rows(d))
    r = res.get("ring")
    if r:
        rows.append(("ring append, one record", f"{r['append_one_per_s']:,.0f} rec/s", "-", "-", "-", "info"))
        rows.append(("ring append 1000 + read", f"{r['append_many_plus_read_per_s']:,.0f} rec/s", "-", "-", "-",
                     "info"))
    return rows


def dashboard_rows(d: dict) -> list[tuple[str, str, str, str, str, str]]:
    """REST and tick p99 with N /stream clients against the two no-client baselines."""
    rows = []
    for key, v in d["verdict"].items():
        if v.get("baseline") is None:
            rows.append((f"{key}, {d['clients']} SSE clients", "-", "-", "-", "within noise", v["result"]))
            continue
        rows.append((f"{key}, {d['clients']} SSE clients", f"{v['b']:.2f} ms",
                     f"0 clients {v['a1']:.2f} / {v['a2']:.2f} ms", f"{v['b'] / v['baseline']:.2f}" if v["baseline"] else "-",
                     f"<= {v['baseline'] + v['band']:.2f} ms (within noise)",
                     "PASS" if v.get("ok") else "FAIL"))
    return rows


def _proc_order(name: str) -> tuple[int, str]:
    """Actors first (the api's master and workers among them), then the sim, then the rest."""
    if name.startswith("api"):
        return (1, name)
    if name in ("sim",):
        return (2, name)
    if name in ("supervisord",) or name.startswith(("run.py", "/")) or " " in name:
        return (3, name)
    return (0, name)


def format_table(rows) -> str:
    head = ("measure", "value", "baseline / detail", "ratio", "target", "result")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(6)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


class ForeignCpu:
    """CPU used by work other than this bench, per section: the machine's busy time (/proc/stat)
    minus this process's and its waited-for descendants' (every process a section starts is
    stopped and waited for by the end of it, so its time is in the children's times)."""

    def __init__(self) -> None:
        self.sections: dict[str, float] = {}
        self._t0 = None

    @staticmethod
    def _read() -> tuple[float, float, float]:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def start(self) -> None:
        self._t0 = self._read()

    def stop(self, section: str) -> float:
        (b0, m0, w0), (b1, m1, w1) = self._t0, self._read()
        pct = max(0.0, 100 * ((b1 - b0) - (m1 - m0)) / (w1 - w0))
        self.sections[section] = pct
        return pct


def _machine() -> dict:
    import platform
    return {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


WHATS = ["all", "latency", "ring", "ingest", "peers", "polyingest", "tick", "polyedge", "system", "rest", "rss",
         "startup", "dashboard"]
# what every part but `ring` starts its processes with: only a checkout of the repository has them
CHECKOUT_FILES = ("run.py", "tests/support/system.py")


def checkout_problem(what: str, root: Path = ROOT) -> str | None:
    """Why bench part `what` cannot run from `root` (None: it can). An installed package has no
    run.py and no tests/, so only `ring` runs there; the rest say so instead of a traceback."""
    if what == "ring":
        return None
    missing = [f for f in CHECKOUT_FILES if not (root / f).is_file()]
    if not missing:
        return None
    return (f"bench {what} runs from a checkout of the repository: it starts the actors through "
            f"run.py and the whole system through tests/support, and {root} has no "
            f"{' and no '.join(missing)}; run it from the checkout (python run.py bench {what}), "
            f"or `bench ring` here")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py bench", description=(
        "all = ring, ingest (feed_futures and feed_spot vs a bare loop), tick, latency, system "
        "(3 starts on the sim: first features and /health; REST load and memory on the first)"))
    ap.add_argument("what", nargs="?", default="all", choices=WHATS)
    ap.add_argument("--frames", type=int, default=300_000, help="ingest: frames per run")
    ap.add_argument("--ingest-venues", default="futures,spot", help="ingest: comma-separated futures,spot")
    ap.add_argument("--subscribers", default="json,binary",
                    help="ingest: feed_futures runs again with a ZMQ subscriber decoding every tick, one run "
                         "per kind: json (the tick topic, orjson), binary (the bin.tick topic, ipc.client)")
    ap.add_argument("--no-subscriber", action="store_true", help="ingest: no subscribed runs")
    ap.add_argument("--repeat", type=int, default=1, help="ingest: runs of each configuration (the median "
                    "ratio's run is reported, every ratio listed)")
    ap.add_argument("--transports", default="websockets,picows",
                    help="ingest: feed transports (WS_TRANSPORT); picows runs futures unsubscribed and with "
                         "the binary subscriber")
    ap.add_argument("--peers-python", default=os.environ.get("TDC_PEERS_PYTHON", sys.executable),
                    help="peers: the interpreter with requirements-bench-peers.txt installed "
                         "(default $TDC_PEERS_PYTHON, else this one: the peers then read 'not installed')")
    ap.add_argument("--peer-frames", type=int, default=100_000, help="peers: aggTrade frames per run")
    ap.add_argument("--poly-frames", type=int, default=100_000, help="polyingest: CLOB frames per run")
    ap.add_argument("--seconds", type=float, default=15.0, help="latency: measuring window")
    ap.add_argument("--rate", type=float, default=2000.0, help="latency: aggTrade/s the sim sends")
    ap.add_argument("--tick-seconds", type=float, default=20.0, help="tick: seconds per trade rate")
    ap.add_argument("--polyedge-seconds", type=float, default=30.0,
                    help="polyedge: measuring window (the whole system on the sim)")
    ap.add_argument("--polyedge-windows", default="5m,15m", help="polyedge: POLYMARKET_WINDOWS followed")
    ap.add_argument("--ring-records", type=int, default=1_000_000)
    ap.add_argument("--starts", type=int, default=3, help="system: starts of run.py --sim")
    ap.add_argument("--connections", default="16", help="REST: concurrent connections (keep-alive where the "
                    "server allows); a comma-separated list adds a sweep after the first, which is the measure")
    ap.add_argument("--rest-seconds", type=float, default=10.0, help="REST: measuring window per config")
    ap.add_argument("--no-alt", action="store_true", help="REST: skip the other gunicorn worker class")
    ap.add_argument("--alt-threads", type=int, default=2, help="REST: threads per gthread worker")
    ap.add_argument("--rss-after", type=float, default=20.0, help="memory: seconds after start")
    ap.add_argument("--clients", type=int, default=20, help="dashboard: /stream clients in the middle phase")
    ap.add_argument("--phase-seconds", type=float, default=20.0, help="dashboard: seconds per phase")
    ap.add_argument("--json", metavar="OUT", help="write every number (and the table) to OUT as JSON")
    a = ap.parse_args(argv)
    what = a.what
    problem = checkout_problem(what)
    if problem is not None:
        sys.stderr.write(problem + "\n")
        return 2
    res: dict = {"machine_before": _machine(), "what": what, "argv": argv}
    t_start = time.monotonic()
    print(f"bench {what}: {res['machine_before']['cpus']} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in res['machine_before']['loadavg'])}", flush=True)
    foreign = ForeignCpu()
    foreign.start()
    if what in ("all", "ring"):
        r = res["ring"] = bench_ring(a.ring_records)
        print(f"ring   append one: {r['append_one_per_s']:,.0f} rec/s   "
              f"append 1000 + read: {r['append_many_plus_read_per_s']:,.0f} rec/s", flush=True)
    if what in ("all", "ring"):
        print(f"  (other work on the machine meanwhile: {foreign.stop('ring'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "ingest"):
        for venue, sub, transport in ingest_runs(a.ingest_venues.split(","), a.transports.split(","),
                                                 None if a.no_subscriber else a.subscribers.split(",")):
            tries = [bench_ingest(a.frames, subscriber=sub, venue=venue, transport=transport)
                     for _ in range(a.repeat)]
            # the machine's speed drifts between runs: the run of median ratio stands for all of them
            r = sorted(tries, key=lambda t: t["ratio"])[len(tries) // 2]
            r["ratios"] = [t["ratio"] for t in tries]
            res[ingest_key(venue, sub, transport)] = r
            if len(tries) > 1:
                print(f"  ({len(tries)} runs, ratios " + ", ".join(f"{x:.2f}" for x in r["ratios"])
                      + "; the median run below)")
            print(f"ingest {r['actor']} over {transport} ({r['frames']:,} aggTrade frames, firehose sender, "
                  + (f"a {sub} ZMQ subscriber decoding every tick" if sub else "bus running, no tick subscriber")
                  + ")")
            print(f"  bare websockets + orjson loop : {r['bare']['rate']:>10,.0f} frames/s   (mean of "
                  + ", ".join(f"{b['rate']:,.0f}" for b in r["bare_runs"]) + ": before and after the feed)")
            if "bare_picows" in r:
                print(f"  bare picows + orjson loop     : {r['bare_picows']['rate']:>10,.0f} frames/s")
            print(f"  {r['actor']:13} (parse+ring+pub) : {r['feed']['rate']:>10,.0f} frames/s   "
                  f"ratio {r['ratio']:.2f} (target {ingest_target(r)[0]})   RSS {r['feed']['rss_mb']:.0f} MB "
                  f"(peak {r['feed']['peak_rss_mb']:.0f}, target < {RSS_MAX_MB:g})", flush=True)
            print("  CPU while the feed ran, % of one core: "
                  + ", ".join(f"{k} {v:.0f}%" for k, v in r["cpu_pct"].items()), flush=True)
    if what in ("all", "ingest"):
        print(f"  (other work on the machine meanwhile: {foreign.stop('ingest'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "peers"):
        from .peers import bench_peers
        print(f"peers: other clients' own Binance aggTrade consumers on the same firehose ({a.peers_python})",
              flush=True)
        res["peers"] = bench_peers(a.peer_frames, a.peers_python, log=lambda m: print("  " + m, flush=True))
        print(f"  (other work on the machine meanwhile: {foreign.stop('peers'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "polyingest"):
        from .polyingest import bench_poly_ingest
        print("polyingest: CLOB book traffic through feed_poly into its rings vs a bare websockets + orjson loop",
              flush=True)
        res["polyingest"] = bench_poly_ingest(a.poly_frames, log=lambda m: print("  " + m, flush=True))
        print(f"  (other work on the machine meanwhile: {foreign.stop('polyingest'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "tick"):
        print("compute tick at TICK_MS=100 (sim + both feeds + bus + compute on 2 cores)")
        res["tick"] = []
        for mult in (1, 10):
            r = bench_tick(a.tick_seconds, 40.0 * mult)
            res["tick"].append(r)
            if r.get("tick_p99_ms") is None:
                print(f"  {r['rate']:>5.0f} aggTrade/s: compute reported no tick statistics", flush=True)
                continue
            print(f"  {r['rate']:>5.0f} aggTrade/s ({r['trades']:,} trades): duration p50 {r['tick_p50_ms']:.2f} ms "
                  f"p99 {r['tick_p99_ms']:.2f} ms (max {r['tick_max_ms']:.1f}); jitter p50 {r['jitter_p50_ms']:.2f} ms "
                  f"p99 {r['jitter_p99_ms']:.2f} ms; overruns {r['tick_overruns']} of {r['tick_samples']} ticks",
                  flush=True)
    if what in ("all", "tick"):
        print(f"  (other work on the machine meanwhile: {foreign.stop('tick'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "polyedge"):
        from .polyedge import bench_polyedge
        r = res["polyedge"] = bench_polyedge(a.polyedge_seconds, windows=a.polyedge_windows)
        print(f"polyedge: Polymarket book update (feed receive) -> decision, TICK_MS={r['tick_ms']}, "
              f"series {','.join(r['series'])}, {r['book_updates']:,} book updates, {r['rest_answers']:,} REST answers")
        for key, label in (("bus", "book tick on the bus (baseline)"), ("edge_topic", "edge topic"),
                           ("rest", "/latest/edge")):
            x = r[key]
            if x.get("n"):
                print(f"  {label:34} n {x['n']:>6}  p50 {x['p50_ms']:7.2f} ms  p99 {x['p99_ms']:7.2f} ms  "
                      f"max {x['max_ms']:7.2f} ms", flush=True)
            else:
                print(f"  {label:34} no data", flush=True)
        print(f"  (other work on the machine meanwhile: {foreign.stop('polyedge'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "latency"):
        r = res["latency"] = bench_latency(a.seconds, a.rate)
        print(f"latency at {r['rate']:.0f} aggTrade/s asked, {r['bare']['rate_per_s']:.0f}/s delivered; "
              f"frame sent -> received (µs)")
        print(f"{'path':34} {'n':>7} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>8}")
        for name, label in (("bare", "bare websockets client"), ("zmq", "feed -> ring -> bus -> ZMQ sub")):
            x = r[name]
            print(f"{label:34} {x['n']:>7} {x['p50_us']:>8.0f} {x['p99_us']:>8.0f} {x['p999_us']:>8.0f} {x['max_us']:>8.0f}")
        print(f"p99 ratio (ours / bare): {r['ratio_p99']:.2f}  (target <= {LATENCY_MAX_RATIO})", flush=True)
    if what in ("all", "latency"):
        print(f"  (other work on the machine meanwhile: {foreign.stop('latency'):.0f}% of one core)", flush=True)
        foreign.start()
    if what in ("all", "system", "rest", "rss", "startup"):
        from .system import bench_system
        print("system: run.py --sim started by tests/support/system.py (first priced features, /health 200"
              + ("; REST and memory on the first start" if what != "startup" else "") + ")", flush=True)
        res["system"] = bench_system(
            repeats=a.starts if what in ("all", "system", "startup") else 1,
            rest=what in ("all", "system", "rest"), rss=what in ("all", "system", "rss"),
            connections=[int(c) for c in a.connections.split(",") if c], rest_seconds=a.rest_seconds, alt=not a.no_alt,
            alt_threads=a.alt_threads, rss_after_sec=a.rss_after,
            log=lambda m: print(m, flush=True))
    if what in ("all", "system", "rest", "rss", "startup"):
        print(f"  (other work on the machine meanwhile: {foreign.stop('system'):.0f}% of one core)", flush=True)
    if what == "dashboard":
        from .dashboard import bench_dashboard
        res["dashboard"] = bench_dashboard(a.clients, a.phase_seconds, log=lambda m: print(m, flush=True))
        print(f"  (other work on the machine meanwhile: {foreign.stop('dashboard'):.0f}% of one core)", flush=True)
    res["foreign_cpu_pct"] = foreign.sections
    res["machine_after"] = _machine()
    res["elapsed_s"] = time.monotonic() - t_start
    rows = summary_rows(res)
    table = format_table(rows)
    la0, la1 = res["machine_before"]["loadavg"][0], res["machine_after"]["loadavg"][0]
    print(f"\n`python run.py bench {' '.join(argv)}`".rstrip() + f"  ({res['elapsed_s']:.0f} s; "
          f"load average {la0:.2f} before, {la1:.2f} after; {res['machine_before']['cpus']} CPUs)")
    print("other work on the machine (CPU not used by this bench), % of one core: "
          + ", ".join(f"{k} {v:.0f}%" for k, v in foreign.sections.items()) + "\n")
    print(table, flush=True)
    res["table"] = [dict(zip(("measure", "value", "baseline", "ratio", "target", "result"), r)) for r in rows]
    if a.json:
        Path(a.json).write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                              | orjson.OPT_NON_STR_KEYS))
        print(f"\nwrote {a.json}")
    return 0
