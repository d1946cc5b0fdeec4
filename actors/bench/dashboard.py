"""`run.py bench dashboard`: what the dashboard's Server-Sent Events clients cost the system, measured
on one running system (`run.py --sim`, tests/support/system.py), three phases back to back:

  A1: no /stream client;  B: N clients connected to /stream and reading;  A2: none again.

Each phase measures, over the same window:
- REST: `GET /latest/edge` latency from a paced probe (one keep-alive connection, one request every
  PROBE_INTERVAL_MS): what a poller sees in normal operation. Not the closed-loop load generator of
  `bench rest`: at saturation it would measure two cores' contention, not the dashboard's cost;
- compute's tick duration: the difference of compute's `tick_duration` histogram (its heartbeat,
  the one /metrics renders as tdc_compute_tick_duration_seconds) between the phase's start and end,
  p99 interpolated within the bucket as Prometheus' histogram_quantile does, and the exact mean
  (sum / count);
- CPU of compute and of the API workers (from /proc), and, in B, the clients' messages received.

Verdict "within noise" (per measure): the two baselines A1 and A2 bracket B in time, so their
difference is this run's own noise. B is within noise when
  B <= mean(A1, A2) + max(|A1 - A2|, NOISE_REL * mean(A1, A2), floor)
with floor REST_FLOOR_MS for REST p99 and TICK_FLOOR_MS for the tick p99 (timer and bucket
granularity at these sizes; two baselines can agree by chance, hence the relative term too).
A phase B whose clients did not all receive events throughout is void ("clients not served").
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from tests.support.system import System
from tests.support.wait import wait_for

from .system import api_pids, cpu_snapshot

PROBE_INTERVAL_MS = 20
NOISE_REL = 0.25
REST_FLOOR_MS = 1.0
TICK_FLOOR_MS = 0.5


# --- pure ----------------------------------------------------------------------------------
def hist_delta(before: dict, after: dict) -> dict:
    """The observations between two heartbeat histogram docs of one process (same bounds)."""
    if before["le_ms"] != after["le_ms"]:
        raise ValueError("histogram bounds changed between the two docs")
    counts = [b - a for a, b in zip(before["counts"], after["counts"])]
    if any(c < 0 for c in counts):
        raise ValueError("histogram counts decreased (the process restarted)")
    return {"le_ms": list(after["le_ms"]), "counts": counts, "sum_ms": after["sum_ms"] - before["sum_ms"]}


def hist_quantile_ms(doc: dict, q: float) -> float | None:
    """Prometheus' histogram_quantile on per-bucket counts: linear within the bucket holding rank
    q * total (lower bound 0 for the first); the highest finite bound if it is the +Inf bucket."""
    total = sum(doc["counts"])
    if total == 0:
        return None
    rank, acc, lower = q * total, 0, 0.0
    for le, n in zip(doc["le_ms"], doc["counts"]):
        if n and acc + n >= rank:
            return lower + (le - lower) * (rank - acc) / n
        acc += n
        lower = le
    return float(doc["le_ms"][-1])


def within_noise(a1: float, b: float, a2: float, floor: float) -> tuple[bool, float, float]:
    """(B within noise, baseline, band): see the module docstring."""
    base = (a1 + a2) / 2
    band = max(abs(a1 - a2), NOISE_REL * base, floor)
    return b <= base + band, base, band


# --- SSE clients -----------------------------------------------------------------------------
class SseClients(threading.Thread):
    """`n` raw HTTP/1.1 clients of GET /stream on one asyncio loop in a thread, each reading
    everything and counting `event:` lines (chunk boundaries tolerated with a small overlap)."""

    def __init__(self, url: str, n: int):
        super().__init__(daemon=True)
        u = urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path or "/"
        self.n = n
        self.status: list[int] = [0] * n
        self.events: list[int] = [0] * n
        self.edges: list[int] = [0] * n
        self.bytes: list[int] = [0] * n
        self.closed: list[bool] = [False] * n
        self.loop = asyncio.new_event_loop()
        self._stop_ev: asyncio.Event | None = None

    async def _client(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                         f"Accept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            self.status[i] = int(head.split(b" ", 2)[1])
            tail = b""
            stop = asyncio.ensure_future(self._stop_ev.wait())
            while not self._stop_ev.is_set():
                read = asyncio.ensure_future(reader.read(65536))
                done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    break
                chunk = read.result()
                if not chunk:
                    break
                self.bytes[i] += len(chunk)
                buf = tail + chunk
                self.events[i] += buf.count(b"event: ") - tail.count(b"event: ")
                self.edges[i] += buf.count(b"event: edge") - tail.count(b"event: edge")
                tail = buf[-16:]
        finally:
            self.closed[i] = True
            writer.close()

    async def _main(self) -> None:
        self._stop_ev = asyncio.Event()
        await asyncio.gather(*(self._client(i) for i in range(self.n)), return_exceptions=True)

    def run(self) -> None:
        self.loop.run_until_complete(self._main())

    def stop(self) -> None:
        if self._stop_ev is not None:
            self.loop.call_soon_threadsafe(self._stop_ev.set)
        self.join(10)

    def snapshot(self) -> tuple[list[int], list[int]]:
        return list(self.events), list(self.edges)


# --- the measurement -----------------------------------------------------------------------------
def probe(url: str, seconds: float) -> dict:
    """GET `url` every PROBE_INTERVAL_MS for `seconds` on one keep-alive connection."""
    lat, errors = [], 0
    with httpx.Client(timeout=5) as c:
        c.get(url)                                        # connect outside the window
        period = PROBE_INTERVAL_MS / 1e3
        t_next = time.perf_counter()
        end = t_next + seconds
        while t_next < end:
            t0 = time.perf_counter()
            try:
                r = c.get(url)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            dt = time.perf_counter() - t0
            if ok:
                lat.append(dt * 1e3)
            else:
                errors += 1
            t_next += period
            time.sleep(max(0.0, t_next - time.perf_counter()))     # paced: the schedule, not a guess
    a = np.array(lat) if lat else np.array([np.nan])
    return {"requests": len(lat) + errors, "errors": errors, "p50_ms": float(np.percentile(a, 50)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(np.max(a))}


def stream_clients(system: System) -> float:
    """Open /stream streams, from /metrics (tdc_api_stream_clients, summed over its samples)."""
    text = system.get("/metrics").text
    vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("tdc_api_stream_clients") and not line.startswith("#")]
    if not vals:
        raise RuntimeError("/metrics has no tdc_api_stream_clients")
    return sum(vals)


def no_streams(system: System, timeout: float = 10) -> None:
    wait_for(lambda: stream_clients(system) == 0, timeout, "no /stream client left (tdc_api_stream_clients 0)")


def _tick_hist(system: System) -> dict:
    from ipc.state import Registry
    hb = Registry(system.env.get("SHM_DIR", "/dev/shm"), system.env["SHM_PREFIX"]).read("compute") or {}
    doc = (hb.get("hist") or {}).get("tick_duration")
    if doc is None:
        raise RuntimeError("compute's heartbeat has no tick_duration histogram")
    return doc


def phase(system: System, label: str, seconds: float, pids: dict[str, list[int]]) -> dict:
    h0 = _tick_hist(system)
    c0, t0 = cpu_snapshot([p for ps in pids.values() for p in ps]), time.monotonic()
    rest = probe(system.http + "/latest/edge", seconds)
    c1, t1 = cpu_snapshot(list(c0)), time.monotonic()
    d = hist_delta(h0, _tick_hist(system))
    n = sum(d["counts"])
    cpu = {k: 100 * sum(c1[p] - c0[p] for p in ps) / (t1 - t0) for k, ps in pids.items()}
    return {"label": label, "seconds": t1 - t0, "rest": rest,
            "tick": {"ticks": n, "p99_ms": hist_quantile_ms(d, 0.99), "p50_ms": hist_quantile_ms(d, 0.50),
                     "mean_ms": d["sum_ms"] / n if n else None, "hist": d},
            "cpu_pct": cpu}


def bench_dashboard(clients: int = 20, seconds: float = 20.0, log=print) -> dict:
    """A1 / B (`clients` SSE clients) / A2 on one system; the verdicts of the module docstring."""
    tmp = Path(tempfile.mkdtemp(prefix="tdc-bench-dashboard-"))
    system = System(tmp)
    system.start(LOG_LEVEL="WARNING")
    sse = None
    try:
        wait_for(lambda: system.get("/health").status_code == 200, 60, "/health 200\n" + system.logs())
        wait_for(lambda: system.get("/latest/edge").status_code == 200, 30, "/latest/edge 200")
        with httpx.stream("GET", system.http + "/stream", timeout=5) as resp:
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                raise RuntimeError(f"GET /stream answered {resp.status_code} "
                                   f"{resp.headers.get('content-type')}: no SSE endpoint to measure")
        master, workers = api_pids(system)
        compute = system.get("/state").json()["actors"]["compute"]["pid"]
        pids = {"compute": [compute], "api": [master, *workers]}
        no_streams(system)    # the check's stream just closed: the hub closes its bus socket
        out = {"clients": clients, "seconds": seconds, "probe_interval_ms": PROBE_INTERVAL_MS, "phases": []}
        log(f"dashboard: /latest/edge probe every {PROBE_INTERVAL_MS} ms and compute's tick, {seconds:g} s per "
            f"phase: no client, {clients} /stream clients, no client")
        out["phases"].append(phase(system, "A1: 0 clients", seconds, pids))
        sse = SseClients(system.http + "/stream", clients)
        sse.start()
        wait_for(lambda: all(e > 0 for e in sse.events) or None, 15, f"all {clients} /stream clients to get events")
        bad = [s for s in sse.status if s != 200]
        if bad:
            raise RuntimeError(f"/stream refused clients: {bad}")
        ev0, ed0 = sse.snapshot()
        b = phase(system, f"B: {clients} clients", seconds, pids)
        ev1, ed1 = sse.snapshot()
        b["sse"] = {"events_per_client": [y - x for x, y in zip(ev0, ev1)],
                    "edge_events_per_client": [y - x for x, y in zip(ed0, ed1)],
                    "bytes_total": sum(sse.bytes), "disconnected": sum(sse.closed)}
        out["phases"].append(b)
        sse.stop()
        sse = None
        no_streams(system)    # the hub closes its bus socket once the last stream ends
        out["phases"].append(phase(system, "A2: 0 clients", seconds, pids))
        out["verdict"] = verdicts(out)
        for p in out["phases"]:
            log(f"  {p['label']:16} /latest/edge p50 {p['rest']['p50_ms']:.2f} ms p99 {p['rest']['p99_ms']:.2f} ms "
                f"({p['rest']['requests']} req, {p['rest']['errors']} errors); tick p99 "
                f"{_fmt(p['tick']['p99_ms'])} ms mean {_fmt(p['tick']['mean_ms'])} ms ({p['tick']['ticks']} ticks); "
                f"CPU compute {p['cpu_pct']['compute']:.0f}%, api {p['cpu_pct']['api']:.0f}%"
                + (f"; events/client min {min(p['sse']['events_per_client'])}" if "sse" in p else ""))
        for k, v in out["verdict"].items():
            log(f"  {k}: {v['result']} (B {_fmt(v['b'])} vs baseline {_fmt(v['baseline'])} + band {_fmt(v['band'])})")
        return out
    finally:
        if sse is not None:
            sse.stop()
        try:
            rc = system.stop()
        except AssertionError as exc:
            rc = str(exc)
        if rc == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"  warning: the system's stop returned {rc}; its logs are in {tmp}")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def verdicts(out: dict) -> dict:
    a1, b, a2 = out["phases"]
    served = "sse" in b and min(b["sse"]["edge_events_per_client"]) > 0 and b["sse"]["disconnected"] == 0
    res = {}
    for key, get, floor in (("REST /latest/edge p99", lambda p: p["rest"]["p99_ms"], REST_FLOOR_MS),
                            ("compute tick p99", lambda p: p["tick"]["p99_ms"], TICK_FLOOR_MS)):
        vals = [get(p) for p in (a1, b, a2)]
        if any(v is None for v in vals):
            res[key] = {"result": "no data", "b": vals[1], "baseline": None, "band": None}
            continue
        ok, base, band = within_noise(vals[0], vals[1], vals[2], floor)
        res[key] = {"result": ("within noise" if ok else "ABOVE noise") if served else "clients not served",
                    "a1": vals[0], "b": vals[1], "a2": vals[2], "baseline": base, "band": band, "ok": ok and served}
    return res
