"""`python run.py backtest DIR`: a recording through the production feed and compute code, as fast
as the machine allows, and per followed series the decisions, the edge distribution and the paper
PnL per window.

Default, event time (actors/tools/backtest_engine.py): one process feeds every recorded frame, in
recorded order, to the real feed objects (rings under a private SHM prefix) and runs the real
compute tick on the TICK_MS grid with the data clock on recording time; every edge document
compute publishes is written to `<out>/edges.jsonl` as it comes (one document per line) and scored
at once (actors/tools/backtest_score.py `Scorer`: memory bounded by the open windows). The summary
and a progress bar report events/s (frames and ticks).

`--realtime`: the old wall-time run, the whole multi-process system under `run.py --replay` at
`--speed` (own ports and prefix); its edge messages come through `ipc.bus.Subscriber`, so a message
lost on the bus is counted (`bus_lost`), and are streamed and scored the same way.

Each window is labelled by ITS rule (actors/tools/backtest_score.py `label`) on the recording's own
Chainlink frames and Binance spot klines, read with the venue parsers (`obs_of_frame`,
`candles_of_frame`; `chainlink_series` / `spot_candles` for a whole recording, shared with
calibrate `--recording`).

Invariants: nothing here places an order; a window whose settlement the recording does not cover
is reported unsettled (its status says why), never guessed; series are scored apart.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from ipc import names, recording
from ipc.bus import Subscriber, free_tcp_port
from ipc.schema import CHAINLINK, KLINE
from actors.decide import settlement
from actors.decide.settlement import Candle
from actors.tools.backtest_score import Scorer, label, latest_candles, score, window_key, windows_of
from actors.venues.binance import spot as binance_spot
from actors.venues.polymarket import chainlink

__all__ = ["Scorer", "chainlink_series", "label", "latest_candles", "main", "score", "spot_candles",
           "window_key", "windows_of"]      # the scoring lives in backtest_score; calibrate imports it here

_TS, _PRICE = CHAINLINK.names.index("ts_event_ns"), CHAINLINK.names.index("price")   # in a parser's record tuple
_KLINE_KIND = names.SPOT_RINGS["kline"].kind
_DUMPS = orjson.OPT_SERIALIZE_NUMPY
FLUSH_SEC = 1.0               # the edges file is flushed at least this often (wall)


# --- the recording's settlement data (pure but for reading the files) ---------------------------
def _is_data(rec: dict) -> bool:
    return not rec["stream"].startswith("_") or rec["stream"] == "_batch"


def obs_of_frame(rec: dict, frame: bytes) -> list[tuple[int, float]]:
    """(observation ns, price) of a recorded Chainlink frame; [] for one that is not data."""
    if not _is_data(rec):
        return []
    try:
        d = chainlink.parse_frame(frame, rec["ts_recv_ns"])
    except ValueError:
        return []
    return [(int(r[_TS]), float(r[_PRICE])) for r in (d.recs if d.kind == names.CHAINLINK_RING.kind else ())]


def candles_of_frame(rec: dict, frame: bytes) -> list[Candle]:
    """The candles of a recorded Binance spot frame (the klines hourly and daily windows settle on)."""
    if not _is_data(rec):
        return []
    try:
        d = binance_spot.parse_frame(frame, rec["ts_recv_ns"])
    except ValueError:
        return []
    return [settlement.candle_from_kline(dict(zip(KLINE.names, r))) for r in d.recs] if d.kind == _KLINE_KIND else []


def _observe(scorer: Scorer, rec: dict, frame: bytes) -> None:
    for t, px in obs_of_frame(rec, frame):
        scorer.observe(t, px)


def _candles(scorer: Scorer, rec: dict, frame: bytes) -> None:
    for c in candles_of_frame(rec, frame):
        scorer.candle(c)


# which venue's frames carry settlement data, and into the scorer how
SETTLEMENT_DATA = {names.CHAINLINK: _observe, names.SPOT: _candles}


def chainlink_series(root: Path) -> list[tuple[int, float]]:
    """(observation ns, price) of every Chainlink observation in the recording, sorted, unique."""
    seen: dict[int, float] = {}
    for rec in recording.iter_venue(Path(root), names.CHAINLINK):
        for t, px in obs_of_frame(rec, recording.frame_bytes(rec)):
            seen[t] = px
    return sorted(seen.items())


def spot_candles(root: Path) -> list[Candle]:
    """The Binance spot candles of the recording, latest update per candle, in open-time order."""
    out = []
    for rec in recording.iter_venue(Path(root), names.SPOT):
        out += candles_of_frame(rec, recording.frame_bytes(rec))
    return latest_candles(out)


def recording_span(root: Path) -> tuple[int, int]:
    """(first, last) receive time of the recording's frames: the first file and the last file of
    every stream directory (for the progress bar's total), (0, 0) when there is none."""
    first, last = None, 0
    for venue in recording.venues(Path(root)):
        by_dir: dict[Path, list[Path]] = {}
        for f in recording.venue_files(Path(root), venue):
            by_dir.setdefault(f.parent, []).append(f)
        for files in by_dir.values():
            for rec in recording.iter_file(files[0]):
                first = rec["ts_recv_ns"] if first is None else min(first, rec["ts_recv_ns"])
                break
            for rec in recording.iter_file(files[-1]):
                last = max(last, rec["ts_recv_ns"])
    return (first or 0), last


# --- the output ----------------------------------------------------------------------------------
class EdgeSink:
    """Each edge document to the JSONL file (flushed every FLUSH_SEC, or `flush_sec`) and the scorer."""

    def __init__(self, path: Path, scorer: Scorer, flush_sec: float = FLUSH_SEC):
        self.path, self.scorer, self.flush_sec = path, scorer, flush_sec
        self.f = open(path, "wb")
        self.docs = 0
        self._flushed = time.monotonic()

    def __call__(self, doc: dict) -> None:
        self.f.write(orjson.dumps(doc, option=_DUMPS) + b"\n")
        self.docs += 1
        self.scorer.add(doc)

    def tick(self) -> None:
        if time.monotonic() - self._flushed >= self.flush_sec:
            self.f.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self.f.close()


# --- the wall-time run (--realtime) -------------------------------------------------------------
SUB_RCVHWM = 1_000_000        # a fast replay must not overflow the collector


def run_replay(rec_dir: Path, speed: float, settings, timeout_sec: float, on_edge) -> int:
    """The wall-time run: `run.py --replay` on private ports; every edge document to `on_edge`
    until the replay ends. Returns the messages lost on the bus (by seq)."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="tdc-backtest-"))
    ports = {k: str(free_tcp_port()) for k in ("HTTP_PORT", "SIM_PORT", "SIM_SPOT_PORT", "SIM_POLY_PORT")}
    pub = f"tcp://127.0.0.1:{free_tcp_port()}"
    env = {**os.environ, **ports, "SHM_PREFIX": "bt" + uuid.uuid4().hex[:8], "ZMQ_PUB_URL": pub,
           "ZMQ_XSUB_URL": f"tcp://127.0.0.1:{free_tcp_port()}",
           "ZMQ_CONTROL_URL": f"tcp://127.0.0.1:{free_tcp_port()}",
           "ZMQ_BIN_URL": f"tcp://127.0.0.1:{free_tcp_port()}", "LOG_DIR": str(tmp / "logs"),
           "TDC_RUN_DIR": str(tmp / "run"), "DECISION_LOG_DIR": str(tmp / "decisions")}
    sub = Subscriber(pub, tuple(names.edge_topic(settings.general.symbol, s) for s in names.POLY_SERIES),
                     rcvhwm=SUB_RCVHWM)
    lost = 0
    proc = subprocess.Popen([sys.executable, "-m", "actors", "up", "--replay", str(Path(rec_dir).resolve()),
                             "--speed", repr(speed)], env=env, stdout=open(tmp / "run.out", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    stats = f"http://127.0.0.1:{ports['SIM_PORT']}/__sim/stats"
    deadline = time.monotonic() + timeout_sec
    done_at = None
    next_check = 0.0
    try:
        while time.monotonic() < deadline:
            ev = sub.recv(100)
            if ev is not None:
                on_edge(ev.msg)
                lost += ev.lost
                if time.monotonic() < next_check:
                    continue
            next_check = time.monotonic() + 0.5     # edges flow every tick: look up now and then
            if proc.poll() is not None:
                raise RuntimeError(f"the replay stopped early; see {tmp}")
            if done_at is None:
                try:
                    if httpx.get(stats, timeout=1).json()["replay"]["done"]:
                        done_at = time.monotonic()
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
            elif time.monotonic() - done_at > 2.0:   # the last ticks after the last frame
                break
        else:
            raise TimeoutError(f"the replay did not finish within {timeout_sec:.0f} s; see {tmp}")
    finally:
        sub.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return lost




# --- the command -------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="run.py backtest", description=__doc__.split("\n\n")[0],
        epilog="The settings come from .env and the environment, as for the system (e.g. "
               "POLYMARKET_WINDOWS, POLYMARKET_WINDOW_SEC, TICK_MS must be the recording's).")
    ap.add_argument("dir", type=Path, help="the recording (RECORD_DIR of the run that made it)")
    ap.add_argument("--out", type=Path, help="output directory: edges.jsonl (every edge document), report.json, "
                    "decisions/ (default: data/backtest/<recording>-<UTC time>)")
    ap.add_argument("--json", type=Path, help="also write the full report here")
    ap.add_argument("--seed", type=int, default=0, help="seed of the feeds' backoff jitter (event time; default 0)")
    ap.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                    help="the progress bar on stderr (auto: when stderr is a terminal)")
    ap.add_argument("--realtime", action="store_true",
                    help="the wall-time run instead: the whole system under `run.py --replay` at --speed")
    ap.add_argument("--speed", type=float, default=20.0, help="--realtime: replay speed factor (default 20)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="--realtime: give up after this many seconds")
    return ap


def event_time(a, out: Path, sink: EdgeSink) -> dict:
    from actors.tools import backtest_engine
    from actors.tools.progress import track
    first, last = recording_span(a.dir)
    total = max(1, -(-(last - first) // 1_000_000_000)) if last else None
    enabled = {"auto": None, "on": True, "off": False}[a.progress]
    scorer = sink.scorer
    with track("backtest (event s)", total, unit="s", enabled=enabled) as bar:
        shown = [first]

        def on_frame(venue: str, rec: dict, frame: bytes) -> None:
            feed = SETTLEMENT_DATA.get(venue)
            if feed is not None:
                feed(scorer, rec, frame)

        def on_second(now_ns: int, st) -> None:
            scorer.advance(now_ns)
            sink.tick()
            step = (now_ns - shown[0]) // 1_000_000_000
            if step > 0:
                bar.advance(int(step))
                shown[0] += step * 1_000_000_000
            if st.wall_sec > 0:
                bar.set(events_per_sec=f"{st.events / st.wall_sec:,.0f}", windows=scorer.finalized)

        stats = backtest_engine.run(a.dir, on_edge=sink, on_frame=on_frame, on_second=on_second,
                                    decision_log_dir=out / "decisions", seed=a.seed)
    return stats.doc()


def realtime(a, out: Path, sink: EdgeSink) -> dict:
    from config.settings import load_settings
    s = load_settings()
    t0 = time.monotonic()
    lost = run_replay(a.dir, a.speed, s, a.timeout, sink)
    wall = time.monotonic() - t0
    for t, px in chainlink_series(a.dir):
        sink.scorer.observe(t, px)
    for c in spot_candles(a.dir):
        sink.scorer.candle(c)
    return {"mode": "realtime", "speed": a.speed, "edges": sink.docs, "wall_sec": round(wall, 3), "bus_lost": lost}


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    if not a.dir.is_dir():
        raise SystemExit(f"run.py backtest: {a.dir} is not a recording directory")
    if a.speed <= 0:
        raise SystemExit("run.py backtest: --speed must be > 0")
    out = a.out or Path("data") / "backtest" / f"{a.dir.resolve().name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    sink = EdgeSink(out / "edges.jsonl", Scorer())
    try:
        run = realtime(a, out, sink) if a.realtime else {"mode": "event", **event_time(a, out, sink)}
    finally:
        sink.close()
    rep = sink.scorer.report()
    rep["bus_lost"] = run.get("bus_lost", 0)
    rep["run"] = {**run, "edges_file": str(out / "edges.jsonl")}
    body = orjson.dumps(rep, option=orjson.OPT_INDENT_2)
    (out / "report.json").write_bytes(body)
    if a.json:
        a.json.write_bytes(body)
    print_report(rep)
    return 0


def print_report(rep: dict) -> None:
    run = rep["run"]
    if run["mode"] == "event":
        print(f"event time: {run['frames']} frames + {run['ticks']} ticks = {run['events']} events in "
              f"{run['wall_sec']:.1f} s: {run['events_per_sec'] or 0:,.0f} events/s "
              f"({run['event_sec']:.0f} s of recording, {run['speedup'] or 0:,.1f}x real time)")
    else:
        print(f"wall time: speed {run['speed']:g}, {run['wall_sec']:.1f} s")
    print(f"edges -> {run['edges_file']}")
    print(f"ticks {rep['ticks']}  slices {rep['slices']}  lost on the bus {rep['bus_lost']}")
    for series, r in rep["series"].items():
        e = r["edge_bps"]
        print(f"\n[{series}] ticks {r['ticks']}  decisions {r['decisions']}  slices {r['slices']}")
        if e["n"]:
            print(f"  best-side edge bps (points·1e4): p5 {e['p5']:.1f}  p25 {e['p25']:.1f}  p50 {e['p50']:.1f}  "
                  f"p75 {e['p75']:.1f}  p95 {e['p95']:.1f}  max {e['max']:.1f}  (n={e['n']})")
        print(f"  {'window':<44} {'rule':<12} {'slices':>6} {'cost $':>9} {'beat':>11} {'src':<8} "
              f"{'settle':>11} {'won':>5} {'pnl $':>9}")
        for slug, w in sorted(r["windows"].items(), key=lambda kv: kv[1]["start_ns"]):
            pnl = f"{w['pnl_usd']:9.2f}" if w["pnl_usd"] is not None else f"{w['status']:>9}"
            beat, settle = (f"{x:>11.2f}" if x is not None else f"{'-':>11}"
                            for x in (w["price_to_beat"], w["settlement"]))
            print(f"  {slug:<44} {w['rule']['method']:<12} {len(w['slices']):>6} {w['cost_usd']:>9.2f} {beat} "
                  f"{w['price_to_beat_source'] or '-':<8} {settle} {w['winner'] or '-':>5} {pnl}")
        print(f"  paper PnL {series}: {r['pnl_usd']:.2f} USD")
    print(f"\npaper PnL, every series: {rep['pnl_usd']:.2f} USD")
