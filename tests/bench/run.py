"""`python run.py bench [latency|ring|all] [--seconds S] [--rate R]`: measurements, never timed tests.

latency: frame sent by the sim → record in the ring → message at a ZeroMQ subscriber (through the
  real feed_futures and bus processes), side by side in the same run with a bare websockets
  client's frame-sent → frame-received latency on the same frames. Send times come from the sim's
  `on_sent` hook, taken right after each frame is handed to the transport; all clocks are this
  host's CLOCK_REALTIME.
ring: shared-memory ring write and read rates (records/s) for the trade dtype.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

from tests.e2e.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _pcts(lat_ns: np.ndarray) -> dict:
    us = lat_ns / 1e3
    return {"n": len(us), "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "p999_us": float(np.percentile(us, 99.9)), "max_us": float(us.max())}


def bench_latency(seconds: float, rate: float) -> dict:
    from config.settings import load_settings
    prefix = "bench" + uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-"))
    env = dict(os.environ, SHM_PREFIX=prefix, SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
               ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}",
               SIM_TRADE_RATE=str(rate), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
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
    market = Market(seed=s.sim_seed, trade_rate=rate, start_price=s.sim_start_price,
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
        url = f"ws://127.0.0.1:{s.sim_port}/market/stream?streams={s.symbol_lower}@aggTrade"
        recv = [subprocess.Popen([py, "-m", "tests.bench.receivers", "bare", url, str(tmp / "bare.npy"),
                                  str(seconds)], cwd=ROOT, env=env),
                subprocess.Popen([py, "-m", "tests.bench.receivers", "zmq", s.zmq_pub_url,
                                  f"tick.futures.trade.{s.symbol}", str(tmp / "zmq.npy"), str(seconds)],
                                 cwd=ROOT, env=env)]
        for p in recv:
            p.wait(seconds + 30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        th.join(10)
        _stop_all(procs)
        from ipc.shm import unlink_prefix
        unlink_prefix(s.shm_dir, prefix)
    out = {}
    for name in ("bare", "zmq"):
        keys, ts = np.load(tmp / f"{name}.npy")
        # skip the first second: connection set-up and subscription propagation
        lat = np.array([t - sent[k] for k, t in zip(keys.tolist(), ts.tolist()) if k in sent])
        skip = min(len(lat) // 10, int(rate))
        out[name] = _pcts(lat[skip:])
        out[name]["rate_per_s"] = len(ts) / ((ts.max() - ts.min()) / 1e9) if len(ts) > 1 else 0.0
    out["ratio_p99"] = out["zmq"]["p99_us"] / out["bare"]["p99_us"]
    out["rate"] = rate
    return out


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def bench_ingest(n: int, subscriber: bool = True) -> dict:
    """Frames/s through one feed process (parse + ring write + publish) vs a bare parse loop."""
    from config.settings import load_settings
    from ipc.ring import RingReader
    from ipc.schema import TRADE, ring_name
    from ipc.shm import unlink_prefix
    prefix = "bench" + uuid.uuid4().hex[:6]
    fport = free_port()
    env = dict(os.environ, SHM_PREFIX=prefix, FUTURES_WS=f"ws://127.0.0.1:{fport}",
               ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}",
               LOG_LEVEL="WARNING", FEED_STALE_SEC="120", DEPTH_ENABLED="false",
               RING_CAPACITY=str(1 << 20), PYTHONUNBUFFERED="1")
    s = load_settings(**{k.lower(): v for k, v in env.items() if k in (
        "SHM_PREFIX", "FUTURES_WS", "ZMQ_XSUB_URL", "ZMQ_PUB_URL", "RING_CAPACITY")})
    py = sys.executable
    procs = []
    out: dict = {"frames": n}
    try:
        fire = subprocess.Popen([py, "-m", "tests.bench.firehose", str(fport), str(n)], cwd=ROOT, env=env)
        procs.append(fire)
        url = f"ws://127.0.0.1:{fport}/market/stream?streams=btcusdt@aggTrade"
        deadline = time.monotonic() + 120
        while True:                         # the firehose pre-encodes its frames first
            try:
                import socket
                socket.create_connection(("127.0.0.1", fport), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("firehose did not start")
                time.sleep(0.1)
        bare = subprocess.run([py, "-m", "tests.bench.receivers", "count", url, str(n)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
        out["bare"] = orjson.loads(bare.stdout.strip().splitlines()[-1])
        procs.append(subprocess.Popen([py, "run.py", "bus"], cwd=ROOT, env=env))
        if subscriber:
            procs.append(subprocess.Popen([py, "-m", "tests.bench.receivers", "zmq", s.zmq_pub_url,
                                           "tick.futures.trade.", "/dev/null.npy", "600"], cwd=ROOT, env=env))
        feed = subprocess.Popen([py, "run.py", "feed_futures"], cwd=ROOT, env=env)
        procs.append(feed)
        ring = RingReader(s.shm_dir, ring_name(prefix, s.symbol, "futures", "trade"), TRADE)
        first_ns = last_ns = None
        got = 0
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            recs = ring.read()
            recs = recs[recs["flags"] == 0]
            if len(recs):
                if first_ns is None:
                    first_ns = int(recs["ts_recv_ns"][0])
                last_ns = int(recs["ts_recv_ns"][-1])
                got += len(recs)
            else:
                time.sleep(0.05)
        rss, peak = _rss_mb(feed.pid)
        out["feed"] = {"frames": got, "seconds": (last_ns - first_ns) / 1e9,
                       "rate": (got - 1) / ((last_ns - first_ns) / 1e9), "rss_mb": rss, "peak_rss_mb": peak,
                       "overrun": ring.overrun}
        out["ratio"] = out["feed"]["rate"] / out["bare"]["rate"]
        out["subscriber"] = subscriber
    finally:
        _stop_all(procs)
        unlink_prefix(s.shm_dir, prefix)
    return out


def bench_tick(seconds: float, rate: float) -> dict:
    """compute's tick duration and start jitter (p50/p99 over its last 4,096 ticks) with the sim,
    both feeds and the bus running at `rate` aggTrade/s."""
    from ipc.shm import unlink_prefix
    from ipc.state import Registry
    prefix = "bench" + uuid.uuid4().hex[:6]
    env = dict(os.environ, SHM_PREFIX=prefix, SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
               SIM_POLY_PORT=str(free_port()), ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}",
               ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_CONTROL_URL=f"tcp://127.0.0.1:{free_port()}",
               SIM_TRADE_RATE=str(rate), LOG_LEVEL="WARNING", TICK_MS="100",
               DECISION_LOG_DIR=tempfile.mkdtemp(prefix="tdc-bench-decisions-"))
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
    c = hb.get("counters", {})
    return {"rate": rate, "trades": trades, **{k: c.get(k) for k in (
        "tick_p50_ms", "tick_p99_ms", "jitter_p50_ms", "jitter_p99_ms", "tick_samples", "tick_overruns",
        "tick_max_ms")}}


def bench_ring(n: int = 1_000_000) -> dict:
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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py bench")
    ap.add_argument("what", nargs="?", default="all", choices=["all", "latency", "ring", "ingest", "tick"])
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--no-subscriber", action="store_true",
                    help="ingest: run the bus with no tick subscriber (PUB filters at the source)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=2000.0)
    a = ap.parse_args(argv)
    if a.what in ("all", "ring"):
        r = bench_ring()
        print(f"ring   append one: {r['append_one_per_s']:,.0f} rec/s   "
              f"append 1000 + read: {r['append_many_plus_read_per_s']:,.0f} rec/s")
    if a.what in ("all", "ingest"):
        r = bench_ingest(a.frames, subscriber=not a.no_subscriber)
        print(f"ingest ({r['frames']:,} aggTrade frames, firehose sender, "
              f"{'a ZMQ subscriber draining every tick' if r['subscriber'] else 'no tick subscriber'})")
        print(f"  bare websockets + orjson loop : {r['bare']['rate']:>10,.0f} frames/s")
        print(f"  feed_futures (parse+ring+pub) : {r['feed']['rate']:>10,.0f} frames/s   "
              f"ratio {r['ratio']:.2f} (target >= 0.8)   RSS {r['feed']['rss_mb']:.0f} MB "
              f"(peak {r['feed']['peak_rss_mb']:.0f}, target < 120)")
    if a.what in ("all", "tick"):
        print("compute tick at TICK_MS=100 (sim + both feeds + bus + compute on 2 cores)")
        for mult in (1, 10):
            r = bench_tick(max(a.seconds, 20), 40.0 * mult)
            print(f"  {r['rate']:>5.0f} aggTrade/s ({r['trades']:,} trades): duration p50 {r['tick_p50_ms']:.2f} ms "
                  f"p99 {r['tick_p99_ms']:.2f} ms (max {r['tick_max_ms']:.1f}); jitter p50 {r['jitter_p50_ms']:.2f} ms "
                  f"p99 {r['jitter_p99_ms']:.2f} ms; overruns {r['tick_overruns']} of {r['tick_samples']} ticks")
    if a.what in ("all", "latency"):
        r = bench_latency(a.seconds, a.rate)
        print(f"latency at {r['rate']:.0f} aggTrade/s asked, {r['bare']['rate_per_s']:.0f}/s delivered; "
              f"frame sent -> received (µs)")
        print(f"{'path':34} {'n':>7} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>8}")
        for name, label in (("bare", "bare websockets client"), ("zmq", "feed -> ring -> bus -> ZMQ sub")):
            x = r[name]
            print(f"{label:34} {x['n']:>7} {x['p50_us']:>8.0f} {x['p99_us']:>8.0f} {x['p999_us']:>8.0f} {x['max_us']:>8.0f}")
        print(f"p99 ratio (ours / bare): {r['ratio_p99']:.2f}  (target <= 2.0)")
    return 0
