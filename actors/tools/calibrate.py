"""Calibration: the fair probability of Up against the realised outcome, per window.

  python run.py calibrate [--dir DECISION_LOG_DIR] [--settled FILE] [--at last|mean] [--bins 10]

Inputs: the decision logs (`decisions-*.jsonl`: ts_ns, window (slug), fair{fast, ...}) and the
strategy's settled windows (`<DECISION_LOG_DIR>/../strategy/settled.jsonl`: slug, window_end_ns,
winner). For each settled window the prediction p is, with --at:
- last (default): the last logged `fair.fast` with ts_ns < window_end_ns;
- mean: the mean of the logged `fair.fast` values of the window (the log is written on changes, so
  this is a mean over decisions, not over time).
outcome = 1 if Up won else 0, by the one settlement rule (actors/decide/settlement.py `winner`) from
the record's `settlement` and `price_to_beat` when it carries them (the strategy's records do), else
its `winner` as written. Prints a reliability table (bin i holds i/bins ≤ p < (i+1)/bins, the
last bin includes 1; per bin: mean predicted, realised frequency, count) and the Brier score
mean((p − outcome)²).
"""
from __future__ import annotations

import argparse
import glob
import os

import orjson

from actors.decide.settlement import settled_path, winner


def reliability(pairs, bins: int = 10) -> list[dict]:
    """[(p, outcome)] -> one row per bin: lo, hi, n, mean_p, freq (None when empty)."""
    rows = [{"lo": i / bins, "hi": (i + 1) / bins, "n": 0, "sum_p": 0.0, "sum_o": 0.0} for i in range(bins)]
    for p, o in pairs:
        r = rows[min(int(p * bins), bins - 1)]
        r["n"] += 1
        r["sum_p"] += p
        r["sum_o"] += o
    return [{"lo": r["lo"], "hi": r["hi"], "n": r["n"],
             "mean_p": r["sum_p"] / r["n"] if r["n"] else None,
             "freq": r["sum_o"] / r["n"] if r["n"] else None} for r in rows]


def brier(pairs) -> float | None:
    pairs = list(pairs)
    return sum((p - o) ** 2 for p, o in pairs) / len(pairs) if pairs else None


def _lines(paths):
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue


def outcome(settled: dict) -> int:
    """1 if the window went Up, else 0 (module docstring)."""
    price, beat = settled.get("settlement"), settled.get("price_to_beat")
    won = winner(price, beat) if price is not None and beat is not None else settled["winner"]
    return 1 if won == "UP" else 0


def join(decisions, settled, at: str = "last") -> list[tuple[float, int]]:
    """(p, outcome) per settled window that has at least one fair value before its end."""
    fairs: dict[str, list[tuple[int, float]]] = {}
    for d in decisions:
        p = (d.get("fair") or {}).get("fast")
        if d.get("window") and p is not None:
            fairs.setdefault(d["window"], []).append((d["ts_ns"], p))
    out = []
    for w in settled:
        vals = sorted(x for x in fairs.get(w["slug"], []) if x[0] < w["window_end_ns"])
        if vals:
            p = vals[-1][1] if at == "last" else sum(v for _, v in vals) / len(vals)
            out.append((p, outcome(w)))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="decision log directory (default: DECISION_LOG_DIR)")
    ap.add_argument("--settled", help="settled windows JSONL (default: <dir>/../strategy/settled.jsonl)")
    ap.add_argument("--at", choices=("last", "mean"), default="last")
    ap.add_argument("--bins", type=int, default=10)
    a = ap.parse_args(argv)
    if a.dir is None:
        from config.settings import load_settings
        a.dir = load_settings().decisions.decision_log_dir
    settled_file = a.settled or str(settled_path(a.dir))
    if not os.path.exists(settled_file):
        print(f"no settled windows file {settled_file} (run the strategy, or pass --settled)")
        return 2
    pairs = join(_lines(sorted(glob.glob(os.path.join(a.dir, "decisions-*.jsonl")))),
                 list(_lines([settled_file])), a.at)
    print(f"{len(pairs)} windows with a fair value and an outcome (fair at: {a.at})")
    print(f"{'bin':>11} {'mean p':>8} {'freq':>6} {'n':>5}")
    for r in reliability(pairs, a.bins):
        mp = "-" if r["mean_p"] is None else f"{r['mean_p']:.3f}"
        fq = "-" if r["freq"] is None else f"{r['freq']:.3f}"
        print(f"{r['lo']:.2f}-{r['hi']:.2f} {mp:>8} {fq:>6} {r['n']:>5}")
    b = brier(pairs)
    print("Brier score:", "-" if b is None else f"{b:.4f}")
    return 0
