"""`run.py export` streams: its peak RSS stays flat as the recording grows.

A recording of N real futures bookTicker and trade frames (the hftbacktest captures of 2024-08-08,
repeated with advancing receive times: one futures stream set recorded for hours) is exported in
a fresh subprocess, and the subprocess's peak RSS (getrusage ru_maxrss) is compared across sizes.

Run as a script for the figures of docs/export.md, against the export of any git revision too:
    .venv/bin/python -m tests.unit.test_export_memory --frames 1000000 4000000 [--old REV]
(`--old REV` measures `git show REV:actors/tools/export.py`, e.g. the list-holding export of
before issue 16, on the same recordings.)
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipc import recording
from tests.support.fixtures import BINANCE, need

ROOT = Path(__file__).resolve().parents[2]
PERIOD_SEC = 3600
MEMBER_FRAMES = 100          # the recorder's flush (RECORD_BUFFER_SIZE): one gzip member each
LEVEL = 6                    # the recorder's gzip level
RUN = "4242-1723161255000000000"
STEP_NS = 100_000_000
MEASURE = """
import resource, sys, json
sys.path.insert(0, {root!r})
{load}
s = export(Path({rec!r}), {out!r})
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
NEW = ("from pathlib import Path\nfrom actors.tools.export import export as _e\n"
       "export = lambda r, o: _e(r, o, progress=False, batch_rows={rows}, batch_mb={mb})")


def build(root: Path, n_frames: int, step_ns: int = 2_000_000) -> int:
    """N frames of the real futures bookTicker/trade captures, one every step_ns, in hourly files
    per stream as the recorder writes them; the recording's size in bytes."""
    src = []
    for name, stream in (("futures_btcusdt_bookTicker_stream_2024-08-08.log", "btcusdt@bookTicker"),
                         ("futures_btcusdt_trade_stream_2024-08-08.log", "btcusdt@trade")):
        for line in need(BINANCE / name).read_bytes().splitlines():
            ts, frame = line.split(b" ", 1)
            src.append((int(ts), stream, frame))
    src.sort()
    t0 = src[0][0]
    pending: dict[tuple[str, str], list[bytes]] = {}

    def flush(key):
        d = root / "futures" / recording.safe_stream(key[0])
        d.mkdir(parents=True, exist_ok=True)
        with open(d / key[1], "ab") as f:
            f.write(gzip.compress(b"".join(pending.pop(key)), compresslevel=LEVEL, mtime=0))

    for seq in range(n_frames):
        _, stream, frame = src[seq % len(src)]
        ts = t0 + seq * step_ns
        key = (stream, recording.period_name(ts, PERIOD_SEC))
        lines = pending.setdefault(key, [])
        lines.append(recording.encode_line(seq, ts, "market", stream, frame, "", RUN))
        if len(lines) >= MEMBER_FRAMES:
            flush(key)
    for key in list(pending):
        flush(key)
    return sum(f.stat().st_size for f in recording.venue_files(root, "futures"))


def new_export(rows: int = 65_536, mb: float = 8) -> str:
    return NEW.format(rows=rows, mb=mb)


def peak_rss_mb(rec: Path, out: str, load: str | None = None, cwd: Path = ROOT) -> float:
    load = new_export() if load is None else load
    code = MEASURE.format(root=str(cwd), load=load, rec=str(rec), out=str(out))
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(cwd)})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def test_peak_rss_is_flat_while_the_recording_grows_fourfold(tmp_path):
    pytest.importorskip("pyarrow")
    small, big = tmp_path / "small", tmp_path / "big"
    # 10 frames/s: the big one spans two hourly files per stream (the recorder's files are whole
    # hours; recording.iter_file reads one whole file per stream, the bound beside the buffers)
    b_small = build(small, 10_000, STEP_NS)
    b_big = build(big, 40_000, STEP_NS)
    assert b_big > 3.5 * b_small
    # small buffers (0.5 MB, 2048 rows a table), so that both sizes fill them: what is left is flat
    load = new_export(2048, 0.5)
    rss_small = peak_rss_mb(small, str(tmp_path / "o1"), load)
    rss_big = peak_rss_mb(big, str(tmp_path / "o2"), load)
    assert rss_big - rss_small < 6, (rss_small, rss_big)
    import pyarrow.dataset as ds
    assert ds.dataset(tmp_path / "o2/records/kind=quote", partitioning="hive").count_rows() + \
        ds.dataset(tmp_path / "o2/records/kind=trade", partitioning="hive").count_rows() == 40_000


def main(argv: list[str]) -> int:
    import tempfile
    import time
    ap = argparse.ArgumentParser(description="peak RSS of run.py export against recording size")
    ap.add_argument("--frames", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--old", metavar="REV", help="also measure `git show REV:actors/tools/export.py`")
    ap.add_argument("--step-ms", type=float, default=2.0,
                    help="receive time between frames (default 2 ms: 500 frames/s, a busy futures feed)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_load = None
        if a.old:
            src = subprocess.run(["git", "show", f"{a.old}:actors/tools/export.py"], cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout
            (tmp / "old_export.py").write_text(src)
            old_load = (f"from pathlib import Path\nsys.path.insert(0, {str(tmp)!r})\n"
                        "from old_export import export as _e\nexport = lambda r, o: _e(r, Path(o))")
        for n in a.frames:
            rec = tmp / f"rec{n}"
            size = build(rec, n, int(a.step_ms * 1e6))
            raw = sum(len(line) for f in recording.venue_files(rec, "futures") for line in gzip.open(f))
            t = time.monotonic()
            new = peak_rss_mb(rec, str(tmp / f"new{n}"))
            dt = time.monotonic() - t
            hours = n * a.step_ms / 3.6e6
            line = (f"frames {n} ({hours:.2f} h): recording {size / 2**20:.1f} MB gz "
                    f"({raw / 2**20:.1f} MB of JSON lines); export peak RSS {new:.0f} MB in {dt:.1f} s")
            if old_load:
                line += f"; old export peak RSS {peak_rss_mb(rec, str(tmp / f'old{n}'), old_load):.0f} MB"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
