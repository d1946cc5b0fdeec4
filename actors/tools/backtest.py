"""`python run.py backtest DIR [--speed X] [--json OUT]`: replay a recording through the whole
system as fast as it keeps up, and report the decisions, the edge distribution and the paper PnL
per window.

The run is the real pipeline (`run.py --replay`, own ports and shared-memory prefix, so it can run
next to a live system); this module collects every `edge.<SYMBOL>` message and scores it. The
scoring is pure (`score`): a SLICE buys `SLICE_USD` of the chosen side at the asks the edge engine
walked (its `spent_usd`, `shares`, `fee_usd`); a window settles Up when its settlement price is
at or above its price to beat, both taken from the recording's Chainlink frames with the one
settlement rule of actors/decide/settlement.py (PriceToBeat; `settlement_price`: the observation at
the window end, else the last one before it, or the mean over the last `twap_lookback_sec` when the
window settles on a TWAP). The edge messages come through `ipc.bus.Subscriber`, so a message lost
on the bus is counted (`bus_lost` in the report), never silently missing from the score.

Invariants: nothing here places an order; a window whose settlement is not in the recording is
reported `unsettled`, never guessed.
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

import numpy as np
import orjson

from ipc import names, recording
from ipc.bus import Subscriber, free_tcp_port
from ipc.schema import CHAINLINK
from actors.decide.settlement import PriceToBeat, settlement_price, winner
from actors.venues.polymarket import chainlink

ROOT = Path(__file__).resolve().parents[2]
_TS, _PRICE = CHAINLINK.names.index("ts_event_ns"), CHAINLINK.names.index("price")   # in a parser's record tuple


# --- pure scoring ------------------------------------------------------------------------------
def chainlink_series(root: Path) -> list[tuple[int, float]]:
    """(observation ns, price) of every Chainlink observation in the recording, sorted, unique."""
    seen: dict[int, float] = {}
    for rec in recording.iter_venue(Path(root), names.CHAINLINK):
        if rec["stream"].startswith("_") and rec["stream"] != "_batch":
            continue
        try:
            d = chainlink.parse_frame(recording.frame_bytes(rec), rec["ts_recv_ns"])
        except ValueError:
            continue
        for rec_ in (d.recs if d.kind == names.CHAINLINK_RING.kind else ()):
            seen[int(rec_[_TS])] = float(rec_[_PRICE])
    return sorted(seen.items())


def settlements(series: list[tuple[int, float]], window_sec: int) -> dict[int, dict]:
    """Window start (s) -> price to beat (first observation at or after the start)."""
    arr = np.zeros(len(series), dtype=CHAINLINK)
    if series:
        arr["ts_event_ns"], arr["price"] = zip(*series)
    ptb = PriceToBeat(window_sec)
    ptb.update(arr)
    return {int(k): v for k, v in ptb.windows.items()}


def settle_price(series, end_ns: int, twap_sec: float | None) -> float | None:
    """The window's settlement price by the one rule, None when the recording does not cover it."""
    return settlement_price(series, end_ns, bool(twap_sec), twap_sec or 0.0)[0]


def score(edges: list[dict], series: list[tuple[int, float]], window_sec: int) -> dict:
    ptb = settlements(series, window_sec)
    ticks = len(edges)
    decisions: dict[str, int] = {}
    edge_bps: list[float] = []
    windows: dict[str, dict] = {}
    for doc in edges:
        e = doc.get("edge") or {}
        decisions[e.get("decision", "NONE")] = decisions.get(e.get("decision", "NONE"), 0) + 1
        sides = [s.get("edge_bps") for s in (e.get("sides") or {}).values() if s.get("edge_bps") is not None]
        if sides:
            edge_bps.append(max(sides))
        acc = doc.get("accumulate") or {}
        w = e.get("window") or {}
        if acc.get("action") != "SLICE" or not w:
            continue
        side = e["sides"][acc["side"]]
        row = windows.setdefault(w["slug"], {"start_ns": w["start_ns"], "end_ns": w["end_ns"], "slices": [],
                                             "twap_sec": (doc.get("fair") or {}).get("twap_lookback_sec")
                                             if (doc.get("fair") or {}).get("twap") is not None else None})
        row["slices"].append({"ts_ns": doc["ts_ns"], "side": acc["side"], "spent_usd": side["spent_usd"],
                              "shares": side["shares"], "fee_usd": side["fee_usd"],
                              "avg_price": side["avg_price"], "edge_bps": side.get("edge_bps")})
    total = 0.0
    for slug, row in windows.items():
        start_s = row["start_ns"] // 1_000_000_000
        beat = (ptb.get(start_s) or {}).get("price")
        final = settle_price(series, row["end_ns"], row.pop("twap_sec"))
        row["price_to_beat"], row["settle_price"] = beat, final
        cost = sum(s["spent_usd"] + s["fee_usd"] for s in row["slices"])
        row["cost_usd"] = cost
        if beat is None or final is None:
            row.update(outcome=None, pnl_usd=None, reason="unsettled: the recording does not cover it")
            continue
        row["outcome"] = winner(final, beat)
        payoff = sum(s["shares"] for s in row["slices"] if s["side"] == row["outcome"])
        row["pnl_usd"] = payoff - cost
        total += row["pnl_usd"]
    pct = (lambda q: float(np.percentile(edge_bps, q)) if edge_bps else None)
    return {"ticks": ticks, "decisions": decisions,
            "edge_bps": {"n": len(edge_bps), "p5": pct(5), "p25": pct(25), "p50": pct(50),
                         "p75": pct(75), "p95": pct(95), "max": max(edge_bps) if edge_bps else None},
            "slices": sum(len(r["slices"]) for r in windows.values()),
            "windows": windows, "pnl_usd": total}


# --- the run -----------------------------------------------------------------------------------
SUB_RCVHWM = 1_000_000        # a fast replay must not overflow the collector


def run_replay(rec_dir: Path, speed: float, settings, timeout_sec: float) -> tuple[list[dict], int]:
    """Start `run.py --replay` on private ports, collect edge docs until the replay ends.
    Returns (edge docs, messages lost on the bus by seq)."""
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="tdc-backtest-"))
    ports = {k: str(free_tcp_port()) for k in ("HTTP_PORT", "SIM_PORT", "SIM_SPOT_PORT", "SIM_POLY_PORT")}
    pub = f"tcp://127.0.0.1:{free_tcp_port()}"
    env = {**os.environ, **ports, "SHM_PREFIX": "bt" + uuid.uuid4().hex[:8], "ZMQ_PUB_URL": pub,
           "ZMQ_XSUB_URL": f"tcp://127.0.0.1:{free_tcp_port()}",
           "ZMQ_CONTROL_URL": f"tcp://127.0.0.1:{free_tcp_port()}", "LOG_DIR": str(tmp / "logs"),
           "TDC_RUN_DIR": str(tmp / "run"), "DECISION_LOG_DIR": str(tmp / "decisions")}
    sub = Subscriber(pub, (names.edge_topic(settings.general.symbol),), rcvhwm=SUB_RCVHWM)
    lost = 0
    proc = subprocess.Popen([sys.executable, "run.py", "--replay", str(rec_dir), "--speed", repr(speed)],
                            cwd=ROOT, env=env, stdout=open(tmp / "run.out", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    edges: list[dict] = []
    stats = f"http://127.0.0.1:{ports['SIM_PORT']}/__sim/stats"
    deadline = time.monotonic() + timeout_sec
    done_at = None
    next_check = 0.0
    try:
        while time.monotonic() < deadline:
            ev = sub.recv(100)
            if ev is not None:
                edges.append(ev.msg)
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
    return edges, lost


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py backtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--speed", type=float, default=20.0, help="replay speed factor (default 20)")
    ap.add_argument("--json", type=Path, help="also write the full report here")
    ap.add_argument("--timeout", type=float, default=3600.0)
    a = ap.parse_args(argv)
    from config.settings import load_settings
    s = load_settings()
    series = chainlink_series(a.dir)
    edges, lost = run_replay(a.dir, a.speed, s, a.timeout)
    rep = score(edges, series, s.venues.polymarket_window_sec)
    rep["bus_lost"] = lost
    if a.json:
        a.json.write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2))
    e = rep["edge_bps"]
    print(f"ticks {rep['ticks']}  decisions {rep['decisions']}  slices {rep['slices']}"
          f"  lost on the bus {lost}")
    if e["n"]:
        print(f"best-side edge bps: p5 {e['p5']:.1f}  p25 {e['p25']:.1f}  p50 {e['p50']:.1f}  "
              f"p75 {e['p75']:.1f}  p95 {e['p95']:.1f}  max {e['max']:.1f}  (n={e['n']})")
    print(f"{'window':<28} {'slices':>6} {'cost $':>9} {'beat':>11} {'settle':>11} {'won':>5} {'pnl $':>9}")
    for slug, w in sorted(rep["windows"].items()):
        pnl = f"{w['pnl_usd']:9.2f}" if w["pnl_usd"] is not None else "      n/a"
        beat, settle = (f"{x:>11.2f}" if x is not None else f"{'-':>11}"
                        for x in (w["price_to_beat"], w["settle_price"]))
        print(f"{slug:<28} {len(w['slices']):>6} {w['cost_usd']:>9.2f} {beat} {settle} "
              f"{w['outcome'] or '-':>5} {pnl}")
    print(f"paper PnL: {rep['pnl_usd']:.2f} USD")
    return 0
