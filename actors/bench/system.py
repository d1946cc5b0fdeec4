"""System-level benchmarks on the whole system (`python run.py --sim`, started by tests/support/system.py
on free ports and its own shm prefix): time to first features, resident memory per process, and
REST throughput under a concurrent load generator (actors/bench/loadgen.py).

One system run measures, in order:
1. start-up: from the `run.py --sim` spawn to the first `features.<SYMBOL>` message on a ZeroMQ
   subscriber whose futures and spot prices (last trade and book mid) are all non-null, and to the
   first `GET /health` 200 (every required actor alive, every stream fresh);
2. REST (when asked): the load generator against the API exactly as supervisord started it
   (gunicorn with its configured worker class) on `/latest/features`, the real document compute
   writes; then, for comparison, the API program is stopped and the same gunicorn command line is
   started with the other WSGI worker class (sync <-> gthread with keep-alive), over the same shm
   state — none when the API runs its ASGI worker (uvicorn), which those classes cannot serve;
3. memory (when asked): once the system has run `rss_after_sec` (and served the REST load, and a
   ZeroMQ subscriber has drained every topic meanwhile), VmRSS and VmHWM (peak) of every process
   of the session: each actor, the gunicorn master and its workers, supervisord, the sim.

Throughout, the CPU time of each process is sampled from /proc so the report can say how the two
cores were shared (load generator, API workers, everything else).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.support.system import ROOT, System
from tests.support.wait import wait_for

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc ---------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of `pid`, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            out[k] = int(v.split()[0]) / 1024
    return out


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of `pid` so far (0 if it is gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / CLK_TCK


def proc_ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])


def proc_args(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


def name_processes(pids: list[int]) -> dict[int, str]:
    """A readable name for each process of a `run.py --sim` session."""
    names: dict[int, str] = {}
    masters = set()
    for pid in pids:
        try:
            args = proc_args(pid)
        except OSError:
            continue
        if "gunicorn" in args:
            masters.add(pid)
        if args[1:3] == ["-m", "actors"] and args[3:]:      # supervisord's `python -m actors NAME`
            names[pid] = args[3]
        elif "run.py" in args:
            i = args.index("run.py")
            names[pid] = "run.py " + " ".join(args[i + 1:i + 2]) if args[i + 1:] else "run.py"
        elif "supervisor.supervisord" in args:
            names[pid] = "supervisord"
    for pid in pids:
        if pid not in names:
            try:
                args, ppid = proc_args(pid), proc_ppid(pid)
            except OSError:
                continue
            if "gunicorn" in args:
                names[pid] = "api worker" if ppid in masters else "api (gunicorn master)"
            else:
                names[pid] = " ".join(args)[:40]
    # actors by name: `run.py feed_spot` -> feed_spot; the api actor execs gunicorn (its master)
    for pid, n in list(names.items()):
        if n.startswith("run.py ") and n != "run.py --sim":
            names[pid] = n[len("run.py "):]
    # workers: numbered in pid order
    workers = sorted(p for p, n in names.items() if n == "api worker")
    for i, p in enumerate(workers, 1):
        names[p] = f"api worker {i}"
    return names


def cpu_snapshot(pids: list[int]) -> dict[int, float]:
    return {p: proc_cpu_s(p) for p in pids}


# --- first features ------------------------------------------------------------------------
def has_prices(doc: dict) -> bool:
    """A features document whose futures and spot last trade price and book mid are all set."""
    v = doc.get("venues") or {}
    for venue in ("futures", "spot"):
        x = v.get(venue) or {}
        if x.get("last_price") is None or (x.get("book") or {}).get("mid") is None:
            return False
    return True


class Drain(threading.Thread):
    """A ZeroMQ subscriber to every topic, as a strategy would be, draining in the background;
    it notes when the first features message with prices arrived (monotonic time)."""

    def __init__(self, url: str, symbol: str):
        super().__init__(daemon=True)
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 10)      # the bus is not up yet: retry often
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(url)
        self.topic = f"features.{symbol}".encode()
        self.first_any: float | None = None
        self.first_prices: float | None = None
        self.messages = 0
        self.stop_ev = threading.Event()

    def run(self) -> None:
        while not self.stop_ev.is_set():
            if not self.sock.poll(50):
                continue
            topic, payload = self.sock.recv_multipart()
            now = time.monotonic()
            self.messages += 1
            if topic == self.topic and self.first_prices is None:
                if self.first_any is None:
                    self.first_any = now
                if has_prices(orjson.loads(payload)):
                    self.first_prices = now
        self.sock.close(0)
        self.ctx.term()

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(5)


def wait_started(system: System, drain: Drain, t0: float, t0_wall_ns: int, timeout: float = 60) -> dict:
    """Wait for the first priced features message and the first /health 200; times from t0. Also
    notes, for the breakdown, when supervisord spawned the actors (its log) and when each actor's
    heartbeat says it started (after its imports, in its main)."""
    from ipc.state import Registry
    health_at = None
    client = httpx.Client(timeout=1.0)
    deadline = time.monotonic() + timeout
    reg_path = Path(system.env.get("SHM_DIR", "/dev/shm")) / f"{system.env['SHM_PREFIX']}.registry"
    registry, started = None, {}
    try:
        while time.monotonic() < deadline and (health_at is None or drain.first_prices is None):
            if health_at is None:
                try:
                    if client.get(system.http + "/health").status_code == 200:
                        health_at = time.monotonic()
                except httpx.HTTPError:
                    pass
            if registry is None and reg_path.exists():
                registry = Registry(str(reg_path.parent), system.env["SHM_PREFIX"])
            if registry is not None:
                for name, hb in registry.read_all().items():
                    started.setdefault(name, (hb["start_ns"] - t0_wall_ns) / 1e9)
            time.sleep(0.05)
    finally:
        client.close()
    if health_at is None or drain.first_prices is None:
        raise RuntimeError(f"the system did not start within {timeout} s "
                           f"(health 200: {health_at is not None}, priced features: "
                           f"{drain.first_prices is not None})\n{system.logs()}")
    return {"first_features_any_s": (drain.first_any or drain.first_prices) - t0,
            "first_features_s": drain.first_prices - t0, "health_200_s": health_at - t0,
            "supervisord_spawned_s": _supervisord_spawned(system, t0_wall_ns),
            "actor_started_s": started}


def _supervisord_spawned(system: System, t0_wall_ns: int) -> dict:
    """From supervisord's log: when it started and when it spawned its first and last program."""
    import re
    from datetime import datetime
    out = {}
    try:
        text = (system.tmp / "logs" / "supervisord.log").read_text()
    except OSError:
        return out
    stamps = []
    for line in text.splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO (spawned|supervisord started)", line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            stamps.append((m.group(2), t * 1e9 - t0_wall_ns))
    started = [t for k, t in stamps if k == "supervisord started"]
    spawned = [t for k, t in stamps if k == "spawned"]
    if started:
        out["supervisord_started"] = started[0] / 1e9
    if spawned:
        out["first_spawn"], out["last_spawn"] = spawned[0] / 1e9, spawned[-1] / 1e9
    return out


# --- REST ----------------------------------------------------------------------------------
def loadgen(url: str, connections: int, seconds: float, warmup: float, on_window=None) -> dict:
    """Run actors/bench/loadgen.py in its own process; `on_window(event)` is called as its measuring
    window opens ("start") and closes ("end")."""
    p = subprocess.Popen([sys.executable, "-m", "actors.bench.loadgen", url, "--connections", str(connections),
                          "--seconds", str(seconds), "--warmup", str(warmup)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = None
    try:
        for line in p.stdout:
            doc = orjson.loads(line)
            if "window" in doc:
                if on_window:
                    on_window(doc["window"])
            else:
                result = doc
        p.wait(seconds + warmup + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    if p.returncode != 0 or result is None:
        raise RuntimeError(f"load generator failed: {p.stderr.read()[-2000:]}")
    return result


def rest_measure(system: System, api_pids: list[int], connections: int, seconds: float,
                 warmup: float, path: str = "/latest/features") -> dict:
    """The load generator against `path`, with the CPU that the API's processes and every other
    process of the session used within its measuring window."""
    pids = sorted(set(system.session_pids()) | set(api_pids))
    snaps = {}

    def window(event: str) -> None:
        snaps[event] = (cpu_snapshot(pids), time.monotonic())

    out = loadgen(system.http + path, connections, seconds, warmup, window)
    (before, t0), (after, t1) = snaps["start"], snaps["end"]
    wall = t1 - t0
    api = sum(after[p] - before[p] for p in pids if p in api_pids)
    rest = sum(after[p] - before[p] for p in pids if p not in api_pids)
    body = httpx.get(system.http + path, timeout=5)
    out.update(body_bytes=len(body.content), api_cpu_pct=100 * api / wall,
               others_cpu_pct=100 * rest / wall, path=path)
    return out


def api_pids(system: System) -> tuple[int, list[int]]:
    """(gunicorn master, [workers]) of the running system's API."""
    master = system.get("/state").json()["actors"]["api"]["pid"]
    return master, children(master)


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if proc_ppid(int(d.name)) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError):
                pass
    return sorted(out)


def swap_worker_class(args: list[str], threads: int) -> tuple[list[str], str] | None:
    """The gunicorn command line with the other WSGI worker class: sync -> gthread (keep-alive,
    `threads` per worker), gthread -> sync; None for an ASGI worker (the API's uvicorn front:
    the WSGI classes cannot serve its app; its comparison is the README's before/after)."""
    args = list(args)
    i = args.index("--worker-class")
    current = args[i + 1]
    if current not in ("sync", "gthread"):
        return None
    if "--threads" in args:
        j = args.index("--threads")
        del args[j:j + 2]
    if current == "sync":
        args[i + 1:i + 2] = ["gthread", "--threads", str(threads)]
        return args, f"gthread, {threads} threads"
    args[i + 1] = "sync"
    return args, "sync"


def describe_worker_class(args: list[str]) -> str:
    wc = args[args.index("--worker-class") + 1].rsplit(".", 1)[-1] if "--worker-class" in args else "sync"
    workers = args[args.index("--workers") + 1] if "--workers" in args else "1"
    threads = f", {args[args.index('--threads') + 1]} threads" if "--threads" in args else ""
    return f"{workers} {wc} workers{threads}"


def bench_system(repeats: int = 3, rest: bool = True, rss: bool = True, connections: int | list[int] = 16,
                 rest_seconds: float = 10.0, warmup: float = 1.0, alt: bool = True, alt_threads: int = 2,
                 rss_after_sec: float = 20.0, log=print) -> dict:
    """`repeats` starts of the whole system on the sim; the first also measures REST and memory."""
    import shutil
    out: dict = {"startup": []}
    for run in range(repeats):
        tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-system-"))
        system = System(tmp)
        drain = None
        t0, t0_wall = time.monotonic(), time.time_ns()
        system.start(LOG_LEVEL="WARNING")
        try:
            drain = Drain(system.pub_url, system.settings().general.symbol)
            drain.start()
            st = wait_started(system, drain, t0, t0_wall)
            out["startup"].append(st)
            sp, act = st["supervisord_spawned_s"], st["actor_started_s"]
            log(f"  start {run + 1}: first features {st['first_features_any_s']:.2f} s, with prices "
                f"{st['first_features_s']:.2f} s, /health 200 {st['health_200_s']:.2f} s  (supervisord up "
                f"{sp.get('supervisord_started', float('nan')):.2f} s, spawns at {sp.get('first_spawn', float('nan')):.2f} s, "
                f"actors' main {min(act.values(), default=float('nan')):.2f}-{max(act.values(), default=float('nan')):.2f} s)")
            if run == 0 and (rest or rss):
                _measure_running(system, drain, t0, out, rest, rss, connections, rest_seconds, warmup,
                                 alt, alt_threads, rss_after_sec, log)
        finally:
            if drain is not None:
                drain.stop()
            try:
                rc = system.stop()
            except AssertionError as exc:
                rc = str(exc)
            if rc != 0:
                log(f"  warning: the system's stop returned {rc}; its logs are in {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def _measure_running(system, drain, t0, out, rest, rss, connections, rest_seconds, warmup, alt,
                     alt_threads, rss_after_sec, log, idle_cpu_sec: float = 3.0) -> None:
    master, workers = api_pids(system)
    master_args = proc_args(master)
    out["api_config"] = describe_worker_class(master_args)
    # the system's own CPU at the sim's rates (a ZeroMQ subscriber draining everything, no REST load)
    pids0 = system.session_pids()
    cpu0, c0 = cpu_snapshot(pids0), time.monotonic()
    time.sleep(idle_cpu_sec)
    cpu1, c1 = cpu_snapshot(pids0), time.monotonic()
    idle = {p: 100 * (cpu1[p] - cpu0[p]) / (c1 - c0) for p in pids0}
    out["idle_cpu_pct_total"] = sum(idle.values())
    log(f"  the system at the sim's rates uses {out['idle_cpu_pct_total']:.0f}% of one core "
        f"(over {idle_cpu_sec:g} s, {len(pids0)} processes)")
    conns = [connections] if isinstance(connections, int) else list(connections)
    if rest:
        wait_for(lambda: system.get("/latest/features").status_code == 200, 10, "/latest/features 200")
        for i, c in enumerate(conns):       # the first is the measure; any others, a sweep
            r = rest_measure(system, [master, *workers], c, rest_seconds, warmup)
            r["config"] = out["api_config"]
            if i == 0:
                out["rest"] = r
            else:
                out.setdefault("rest_sweep", []).append(r)
            log(f"  REST {r['path']} ({r['body_bytes']:,} B) on {r['config']}, {c} connections: "
                f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"p99.9 {r['p999_ms']:.2f} ms, errors {r['errors']}; CPU: loadgen {r['loadgen_cpu_pct']:.0f}%, "
                f"api {r['api_cpu_pct']:.0f}%, other processes {r['others_cpu_pct']:.0f}% (of one core)")
    if rss:
        wait = rss_after_sec - (time.monotonic() - t0)
        if wait > 0:
            time.sleep(wait)
        pids = system.session_pids()
        names = name_processes(pids)
        mem = {}
        for pid in pids:
            try:
                st = proc_status(pid)
            except OSError:
                continue
            name = names.get(pid, str(pid))
            mem[name] = {"pid": pid, "rss_mb": st["VmRSS"], "peak_rss_mb": st["VmHWM"],
                         "anon_mb": st.get("RssAnon", 0.0), "shmem_mb": st.get("RssShmem", 0.0),
                         "idle_cpu_pct": idle.get(pid)}
        out["memory"] = {"after_s": time.monotonic() - t0, "zmq_messages_drained": drain.messages,
                         "processes": mem}
        log(f"  memory after {out['memory']['after_s']:.0f} s ({drain.messages:,} ZeroMQ messages drained):")
        for name, m in sorted(mem.items()):
            log(f"    {name:24} RSS {m['rss_mb']:6.1f} MB  peak {m['peak_rss_mb']:6.1f} MB  "
                f"(anon {m['anon_mb']:5.1f}, shm {m['shmem_mb']:5.1f})  CPU at rest "
                + (f"{m['idle_cpu_pct']:4.1f}%" if m["idle_cpu_pct"] is not None else "   -"))
    swapped = swap_worker_class(master_args, alt_threads) if rest and alt else None
    if rest and alt and swapped is None:
        log(f"  REST (comparison): none for {out['api_config']} (an ASGI worker class)")
    if swapped is not None:
        alt_args, label = swapped
        system.ctl("stop", "api")
        wait_for(lambda: not _alive(master), 15, "the api to stop")
        g = subprocess.Popen(alt_args, cwd=ROOT, env=system.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: system.get("/latest/features").status_code == 200, 20, "the alternative API")
            wpids = wait_for(lambda: children(g.pid) if len(children(g.pid)) >= len(workers) else None,
                             10, "the alternative API's workers")
            r = rest_measure(system, [g.pid, *wpids], conns[0], rest_seconds, warmup)
            r["config"] = describe_worker_class(alt_args)
            out["rest_alt"] = r
            log(f"  REST (comparison) on {r['config']}, {conns[0]} connections: {r['rps']:,.0f} req/s, "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms, errors {r['errors']}; CPU: loadgen {r['loadgen_cpu_pct']:.0f}%, "
                f"api {r['api_cpu_pct']:.0f}%, other processes {r['others_cpu_pct']:.0f}%")
            out["rest_alt"]["workers_rss_mb"] = [proc_status(p)["VmRSS"] for p in wpids if _alive(p)]
        finally:
            g.send_signal(signal.SIGTERM)
            try:
                g.wait(15)
            except subprocess.TimeoutExpired:
                g.kill()
                g.wait(5)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
