"""Record a sim run under supervisord, kill -9 the recorder mid-run, then replay the recording
through the whole system: nothing missing, nothing doubled, and the same bars."""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import httpx

from ipc import names
from ipc import recording
from ipc.bus import Subscriber

from tests.support.system import System
from tests.support.wait import wait_for

FEEDS = ("feed_futures", "feed_spot", "feed_poly", "feed_chainlink")
TIMING = ("seq", "boot", "ts_ns", "pub_ts_ns")   # publish stamps: differ between any two runs

REPLAY_TAIL_NS = 10_000_000_000   # the replay's last seconds: their bars are left out of the check


class BarTap:
    """Every closed bar published on the bus, and the trade-driven features of every tick keyed by
    the last trade they include (a tick samples the stream at times that differ between runs;
    the values after a given trade must not)."""

    def __init__(self, url: str, symbol: str = "BTCUSDT"):
        self.sub = Subscriber(url, (names.BAR_PREFIX, names.features_topic(symbol)))
        self.bars: dict[tuple, dict] = {}
        self.feats: dict[tuple, dict] = {}
        self.lost = 0
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self._stop.is_set():
            ev = self.sub.recv(100)
            if ev is None:
                continue
            self.lost += ev.lost
            if ev.topic.startswith(names.FEATURES_PREFIX):
                for venue, f in ev.msg["venues"].items():
                    if f.get("last_trade_id") is not None:
                        vwap = {k: v for k, v in f["vwap"].items() if k != "age_ms"}
                        self.feats[(venue, f["last_trade_id"])] = {"cvd": f["cvd"], "vwap": vwap}
                continue
            doc = {k: v for k, v in ev.msg.items() if k not in TIMING}
            self.bars[(ev.topic, doc["start_ns"])] = doc

    def close(self):
        self._stop.set()
        self.t.join(5)
        self.sub.close()


def _state(system):
    return system.get("/state").json()


def _recorder(system):
    return _state(system)["actors"].get("recorder") or {}


def test_record_kill_recorder_replay(tmp_path):
    rec_dir = tmp_path / "rec"
    # --- 1. record a sim run, SIGKILL the recorder in the middle -----------------------------
    rec = System(tmp_path / "a")
    (tmp_path / "a").mkdir()
    try:
        rec.start(RECORD_ENABLED="true", RECORD_DIR=str(rec_dir), RECORD_BUFFER_SIZE="300",
                  SIM_TRADE_RATE="40", POLYMARKET_WINDOW_SEC="60")
        wait_for(lambda: rec.health()[0] == 200, 60, "/health 200\n" + rec.logs())
        tap = BarTap(rec.pub_url)
        r0 = wait_for(lambda: (lambda r: r if r.get("counters", {}).get("frames_recorded", 0) > 500
                               else None)(_recorder(rec)), 30, "the recorder writing")
        os.kill(r0["pid"], signal.SIGKILL)
        r1 = wait_for(lambda: (lambda r: r if r.get("pid") not in (None, r0["pid"]) and r.get("alive")
                               else None)(_recorder(rec)), 30, "the recorder restarted by supervisord")
        # long enough for several 5 s bars after the restart (the last 10 s are not checked)
        wait_for(lambda: len([k for k in tap.bars if k[0].startswith("bar.5s.futures")]) >= 7, 60,
                 "seven 5s futures bars")
        # stop the feeds (and context, a REST client that records too): the recorder drains
        rec.ctl("stop", *FEEDS, "context")

        def drained():
            r = _recorder(rec)
            reps = r.get("recording", {})
            ok = len(reps) == 5 and all(v["lag_frames"] == 0 and v["pending"] == 0 for v in reps.values())
            return r if ok else None
        r2 = wait_for(drained, 30, "the recorder drained every ring")
        st = _state(rec)
        tap.close()
        bars_rec, feats_rec = dict(tap.bars), dict(tap.feats)
        assert tap.lost == 0
    finally:
        rc = rec.stop()
    assert rc == 0, rec.logs()
    assert r1["pid"] != r0["pid"]

    # --- 2. counters: frames received = in the ring = recorded; nothing lost ----------------
    reps = r2["recording"]
    for venue, rep in reps.items():
        assert rep["lost"] == 0 and rep["error"] is None, (venue, rep)
        assert rep["recorded"] == rep["ring_frames"] > 0, (venue, rep)
    fut, spot, chain = (st["actors"][a]["counters"] for a in ("feed_futures", "feed_spot", "feed_chainlink"))
    assert reps["futures"]["recorded"] == fut["frames"] == fut["frames_to_recorder"]
    assert reps["spot"]["recorded"] == spot["frames"] == spot["frames_to_recorder"]
    assert reps["chainlink"]["recorded"] == chain["frames"]
    poly = st["actors"]["feed_poly"]["counters"]
    assert reps["poly"]["recorded"] == poly["frames"] + poly["rest_responses"]

    # --- 3. the files: every seq once, none missing, across the recorder's restart ------------
    for venue, rep in reps.items():
        seqs = Counter(r["seq"] for r in recording.iter_venue(rec_dir, venue))
        assert sorted(seqs) == list(range(rep["recorded"])), venue
        assert max(seqs.values()) == 1, f"{venue}: a frame recorded twice"
    # readable with plain Python: gzip + json
    import gzip, json
    f = next((rec_dir / "futures").glob("btcusdt@aggTrade/*.jsonl.gz"))
    first = json.loads(gzip.open(f, "rt").readline())
    assert set(first) >= {"seq", "ts_recv_ns", "conn", "stream", "frame"}
    assert json.loads(first["frame"])["stream"] == "btcusdt@aggTrade"

    # --- 4. replay through the whole system: the same bars ----------------------------------
    rep_sys = System(tmp_path / "b")
    (tmp_path / "b").mkdir()
    try:
        rep_sys.start(("--replay", str(rec_dir)), POLYMARKET_WINDOW_SEC="60")
        tap = BarTap(rep_sys.pub_url)
        stats_url = f"http://127.0.0.1:{rep_sys.env['SIM_PORT']}/__sim/stats"
        wait_for(lambda: httpx.get(stats_url, timeout=2).json()["replay"]["done"], 120,
                 "the replay to finish\n" + rep_sys.logs())
        # the bars a later trade of the recording closed: the replay has that trade, so it must
        # close them too (the last bar of each venue closed by time after the feeds stopped; after
        # the replay ends its close depends on what the idle feeds do: docs/limitations.md)
        last_trade_ns = {}
        for k, b in bars_rec.items():
            last_trade_ns[k[0]] = max(last_trade_ns.get(k[0], 0), b["end_ns"] if b["trades"] else 0)
        # (and, seen once under load, the bar before it as well: the trades of the replay's last
        # seconds may not reach compute either; docs/limitations.md)
        want = {k for k, b in bars_rec.items() if b["end_ns"] < last_trade_ns[k[0]] - REPLAY_TAIL_NS}
        wait_for(lambda: want <= set(tap.bars), 20,
                 "every recorded bar in the replay: missing "
                 f"{sorted(want - set(tap.bars))[:5]}")
        tap.close()
        assert tap.lost == 0
    finally:
        rc = rep_sys.stop()
    assert rc == 0, rep_sys.logs()
    # seven 5 s futures bars were tapped: at least four closed by a trade 10 s later
    assert len([k for k in want if k[0] == "bar.5s.futures.BTCUSDT"]) >= 4, sorted(want)
    for k in sorted(want):
        assert tap.bars[k] == bars_rec[k], k
    # CVD and anchored VWAP after the same trade: equal in both runs, to the last bit
    common = set(feats_rec) & set(tap.feats)
    assert len(common) >= 0.5 * len(feats_rec) and len(common) >= 50, (len(common), len(feats_rec))
    for k in sorted(common):
        assert tap.feats[k] == feats_rec[k], k

    # --- 5. Parquet export and the backtest on the same recording ---------------------------
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.dataset as ds
    from tests.support.system import ROOT
    out = tmp_path / "parquet"
    subprocess.run([sys.executable, "run.py", "export", str(rec_dir), str(out)], cwd=ROOT, check=True,
                   timeout=120, capture_output=True)
    for venue, rep in reps.items():
        frames = ds.dataset(out / "frames" / f"venue={venue}", partitioning="hive").to_table()
        assert frames.num_rows == rep["recorded"]
        series = set(frames.column("series").to_pylist())
        # Polymarket frames name the series of the stream they were recorded under; no other venue's do
        assert series <= set(names.POLY_SERIES) | {None} and (venue == names.POLY or series == {None}), (venue, series)
    table = ds.dataset(out / "records" / "kind=trade" / "venue=futures", partitioning="hive").to_table()
    assert table.schema.field("ts_event_ns").type == pa.timestamp("ns", tz="UTC")
    trades = {"trade_id": table.column("trade_id").to_pylist(),
              "ts_event_ns": table.column("ts_event_ns").cast(pa.int64()).to_pylist()}
    ids = trades["trade_id"]
    assert ids == sorted(set(ids))            # the recording's trades, each once, in order
    first_5s = min(k for k in bars_rec if k[0] == "bar.5s.futures.BTCUSDT")
    bar = bars_rec[first_5s]
    in_bar = [i for i, t in enumerate(trades["ts_event_ns"]) if bar["start_ns"] <= t < bar["end_ns"]]
    assert trades["trade_id"][in_bar[0]] == bar["first_trade_id"]
    assert trades["trade_id"][in_bar[-1]] == bar["last_trade_id"]

    import json
    env = {**os.environ, "POLYMARKET_WINDOW_SEC": "60"}
    # event time (the default) and the wall-time run (--realtime) on the same recording
    for mode, extra in (("event", ()), ("realtime", ("--realtime", "--speed", "8", "--timeout", "120"))):
        r = subprocess.run([sys.executable, "run.py", "backtest", str(rec_dir), *extra, "--out", str(tmp_path / mode),
                            "--json", str(tmp_path / f"bt-{mode}.json")],
                           cwd=ROOT, env=env, timeout=180, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        bt = json.loads((tmp_path / f"bt-{mode}.json").read_text())
        assert bt["run"]["mode"] == mode and bt["ticks"] > 20 and sum(bt["decisions"].values()) == bt["ticks"]
        assert sum(r["ticks"] for r in bt["series"].values()) == bt["ticks"] and set(bt["series"]) <= set(names.POLY_SERIES)
        assert len((tmp_path / mode / "edges.jsonl").read_bytes().splitlines()) == bt["ticks"]
        assert "paper PnL" in r.stdout
        if mode == "event":                   # every tick of the grid over the recording, one doc per series
            run = bt["run"]
            assert run["ticks"] * len(bt["series"]) == bt["ticks"] == run["edges"]
            assert run["ticks"] == run["last_ns"] // 100_000_000 - run["first_ns"] // 100_000_000
            assert "events/s" in r.stdout
