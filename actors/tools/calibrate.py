"""Calibration: the fair probability of Up against the realised outcome, per window, per series.

  python run.py calibrate [--dir DECISION_LOG_DIR] [--settled FILE | --recording DIR]
                          [--series 15m] [--at last|mean] [--bins 10]

Inputs: the decision logs (`decisions-*.jsonl`: ts_ns, series, window (slug), window_start_ns,
window_end_ns, rule, price_to_beat, fair{fast, ...}) and the outcomes, either
- the strategy's settled windows (default: `<DECISION_LOG_DIR>/../strategy/settled.jsonl`: series,
  slug, window_end_ns, rule, price_to_beat, settlement, winner), or
- `--recording DIR`: each window of the decision logs labelled by ITS rule (the `rule` its lines
  carry: Chainlink point or TWAP, the Binance hourly candle, the daily 1m closes) from the
  recording's Chainlink frames and spot klines, exactly as the backtest labels them
  (actors/tools/backtest.py `windows_of` / `label`); the venue's price to beat when a line gave one.
Windows are matched by (series, slug); a line or record without a series (older logs) is matched by
slug alone. For each labelled window the prediction p is, with --at:
- last (default): the last logged `fair.fast` with ts_ns < window_end_ns;
- mean: the mean of the logged `fair.fast` values of the window (the log is written on changes, so
  this is a mean over decisions, not over time).
outcome = 1 if Up won else 0, by the one settlement module (actors/decide/settlement.py `winner`)
from the record's `settlement` and `price_to_beat` when it carries them, else its `winner` as
written. Prints, per series in names.POLY_SERIES order and then for all of them, a reliability
table (bin i holds i/bins ≤ p < (i+1)/bins, the last bin includes 1; per bin: mean predicted,
realised frequency, count) and the Brier score mean((p − outcome)²).
"""
from __future__ import annotations

import argparse
import glob
import os

import orjson

from ipc import names

from actors.decide.settlement import settled_path, winner

NO_SERIES = "?"          # a record of an older log that names no series


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


def join(decisions, settled, at: str = "last") -> dict[str, list[tuple[float, int]]]:
    """series -> [(p, outcome)], one per settled window that has at least one fair value before its
    end, in the order of `settled`."""
    fairs: dict[tuple[str | None, str], list[tuple[int, float]]] = {}
    for d in decisions:
        p = (d.get("fair") or {}).get("fast")
        if d.get("window") and p is not None:
            fairs.setdefault((d.get("series"), d["window"]), []).append((d["ts_ns"], p))
    by_slug: dict[str, list[tuple[str | None, str]]] = {}
    for key in fairs:
        by_slug.setdefault(key[1], []).append(key)
    out: dict[str, list[tuple[float, int]]] = {}
    for w in settled:
        series = w.get("series")
        keys = [(series, w["slug"])] if series is not None and (series, w["slug"]) in fairs else \
            [k for k in by_slug.get(w["slug"], ()) if series is None or k[0] is None]
        vals = sorted(x for k in keys for x in fairs[k] if x[0] < w["window_end_ns"])
        if vals:
            p = vals[-1][1] if at == "last" else sum(v for _, v in vals) / len(vals)
            name = series or next((k[0] for k in keys if k[0]), None) or NO_SERIES
            out.setdefault(name, []).append((p, outcome(w)))
    return {s: out[s] for s in sorted(out, key=_order)}


def _order(s: str):
    return (names.POLY_SERIES.index(s), s) if s in names.POLY_SERIES else (len(names.POLY_SERIES), s)


def labelled_from_recording(decisions: list[dict], rec_dir) -> list[dict]:
    """The windows of the decision logs labelled from a recording (module docstring): records
    shaped like the strategy's settled lines; windows the recording does not settle are left out."""
    from actors.tools.backtest import chainlink_series, label, spot_candles, windows_of
    obs, candles = chainlink_series(rec_dir), spot_candles(rec_dir)
    out = []
    for (series, slug), w in windows_of(decisions).items():
        lab = label(w, obs, candles)
        if lab["winner"] is not None:
            out.append({"series": series, "slug": slug, "window_start_ns": w["start_ns"],
                        "window_end_ns": w["end_ns"], "rule": w["rule"].doc(), **lab})
    return sorted(out, key=lambda r: r["window_end_ns"])


def report(pairs_by_series: dict[str, list[tuple[float, int]]], bins: int) -> list[str]:
    """The printed tables: one per series, then every series together."""
    lines = []
    groups = list(pairs_by_series.items())
    if len(groups) != 1:
        groups.append(("all series", [x for v in pairs_by_series.values() for x in v]))
    for name, pairs in groups:
        lines.append(f"[{name}] {len(pairs)} windows")
        lines.append(f"{'bin':>11} {'mean p':>8} {'freq':>6} {'n':>5}")
        for r in reliability(pairs, bins):
            mp = "-" if r["mean_p"] is None else f"{r['mean_p']:.3f}"
            fq = "-" if r["freq"] is None else f"{r['freq']:.3f}"
            lines.append(f"{r['lo']:.2f}-{r['hi']:.2f} {mp:>8} {fq:>6} {r['n']:>5}")
        b = brier(pairs)
        lines.append(f"Brier score [{name}]: " + ("-" if b is None else f"{b:.4f}"))
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="run.py calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--dir", help="decision log directory (default: DECISION_LOG_DIR)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--settled", help="settled windows JSONL (default: <dir>/../strategy/settled.jsonl)")
    src.add_argument("--recording", help="label the windows from this recording instead (Chainlink, spot klines)")
    ap.add_argument("--series", choices=names.POLY_SERIES, help="only this series")
    ap.add_argument("--at", choices=("last", "mean"), default="last")
    ap.add_argument("--bins", type=int, default=10)
    a = ap.parse_args(argv)
    if a.dir is None:
        from config.settings import load_settings
        a.dir = load_settings().decisions.decision_log_dir
    decisions = list(_lines(sorted(glob.glob(os.path.join(a.dir, "decisions-*.jsonl")))))
    if a.recording:
        settled = labelled_from_recording(decisions, a.recording)
        source = f"labelled from the recording {a.recording}"
    else:
        settled_file = a.settled or str(settled_path(a.dir))
        if not os.path.exists(settled_file):
            print(f"no settled windows file {settled_file} (run the strategy, or pass --settled or --recording)")
            return 2
        settled = list(_lines([settled_file]))
        source = f"settled by the strategy ({settled_file})"
    if a.series:
        decisions = [d for d in decisions if d.get("series") in (a.series, None)]
        settled = [w for w in settled if w.get("series") in (a.series, None)]
    by_series = join(decisions, settled, a.at)
    n = sum(len(v) for v in by_series.values())
    print(f"{n} windows with a fair value and an outcome, {source} (fair at: {a.at})")
    for line in report(by_series, a.bins):
        print(line)
    return 0
