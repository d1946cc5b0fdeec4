"""The event-time backtest on a real recording made here from the sim (sim, bus, the four feeds and
the recorder as processes): the production feed and compute code in one process, every tick of the
grid, the report equal to the batch score of the documents it streamed, results streamed while it
runs, the private shared memory gone afterwards."""
from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from actors.tools import backtest, backtest_engine
from actors.tools.backtest_score import Scorer, score
from ipc import clock, names, recording
from tests.support.stack import Stack
from tests.support.wait import wait_for

RECORD_SEC = 40
WINDOW_SEC = "20"
# the run's decisions: loose enough that the sim's books give slices (the recording is the sim's)
DECIDE = {"POLYMARKET_WINDOW_SEC": WINDOW_SEC, "EDGE_BUFFER_BPS": "0", "COOLDOWN_SEC": "0", "SLICE_USD": "5",
          "EDGE_MIN_TIME_LEFT_SEC": "1", "MAX_SLICES_PER_WINDOW": "50", "MAX_USD_PER_WINDOW": "500",
          "VOL_WARMUP_SAMPLES": "3", "POLYMARKET_MAX_SPREAD_BPS": "10000", "POLYMARKET_MIN_DEPTH": "0"}


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("btrec")
    st = Stack(tmp).start(actors=("sim", "bus", "feed_futures", "feed_spot", "feed_poly", "feed_chainlink", "recorder"),
                          RECORD_ENABLED="true", RECORD_DIR=str(tmp / "rec"), POLYMARKET_WINDOW_SEC=WINDOW_SEC,
                          SIM_TRADE_RATE="40")
    try:
        t0 = time.monotonic()
        wait_for(lambda: (st.hb("recorder").get("counters") or {}).get("frames_recorded", 0) > 0, 30,
                 "the recorder writing\n" + st.logs())
        wait_for(lambda: time.monotonic() - t0 >= RECORD_SEC, RECORD_SEC + 5, "the recording time")
    finally:
        st.stop()
    return tmp / "rec"


@pytest.fixture
def decide_env(monkeypatch):
    for k in [k for k in os.environ if k.startswith(("POLYMARKET_", "SHM_", "ZMQ_", "RECORD_"))]:
        monkeypatch.delenv(k)
    for k, v in DECIDE.items():
        monkeypatch.setenv(k, v)


def _fed_frames(rec_dir: Path) -> list[int]:
    """Receive times of the frames the engine must feed (the replay sim's: no replies, no REST)."""
    return [r["ts_recv_ns"] for _, r in recording.iter_all(rec_dir)
            if r["stream"] not in ("_ack", "_control", "_error") and r.get("conn") != "rest"]


def test_event_time_backtest_runs_the_grid_and_scores_what_it_streamed(rec_dir, decide_env, tmp_path, capsys):
    assert backtest.main([str(rec_dir), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "bt.json"),
                          "--progress", "off"]) == 0
    out = capsys.readouterr().out
    rep = orjson.loads((tmp_path / "bt.json").read_bytes())
    run = rep["run"]
    ts = _fed_frames(rec_dir)
    period = 100_000_000                                   # TICK_MS 100
    # every frame fed once; every tick of (first frame, last frame] on the grid, one edge doc per series
    assert run["mode"] == "event" and run["frames"] == len(ts)
    assert (run["first_ns"], run["last_ns"]) == (min(ts), max(ts))
    assert run["ticks"] == max(ts) // period - min(ts) // period == rep["ticks"] == run["edges"]
    assert run["events"] == run["frames"] + run["ticks"] and run["events_per_sec"] > 0
    assert run["rest_served"] > 0 and run["damaged_parts"] == 0, run
    # Gamma is asked the same targets on event time as it was live; the reconciler's REST /book
    # cross-check runs on its own 30 s clock, so it may check a window's books the live run never
    # checked (answered 404, as the replay sim would): those, and only those, may be missing
    missing = run["rest_missing_targets"]
    assert len(missing) <= run["rest_missing"] <= 4, run
    assert all(k.startswith("clob /book?token_id=") for k in missing), missing
    assert f"{run['events']} events in" in out and "events/s" in out and "paper PnL" in out
    docs = [orjson.loads(x) for x in (tmp_path / "out" / "edges.jsonl").read_bytes().splitlines()]
    assert len(docs) == rep["ticks"]
    assert [d["ts_ns"] for d in docs] == list(range((min(ts) // period + 1) * period, max(ts) + 1, period))
    # the report streamed equals the batch score of the same documents on the whole recording's data
    batch = score(docs, backtest.chainlink_series(rec_dir), backtest.spot_candles(rec_dir))
    assert {k: v for k, v in rep.items() if k not in ("run", "bus_lost")} == orjson.loads(orjson.dumps(batch))
    # the windows are the recording's Gamma windows; at least one settled with slices, PnL exact
    gamma = {orjson.loads(recording.frame_bytes(r))[0]["slug"] for r in recording.iter_venue(rec_dir, names.POLY)
             if r.get("conn") == "rest" and r["meta"].startswith("gamma 200 /markets?slug=")}
    r15 = rep["series"]["15m"]
    assert {d["window"] for d in docs if d.get("window")} <= gamma
    assert sum(r15["decisions"].values()) == r15["ticks"] == rep["ticks"]
    settled = [w for w in r15["windows"].values() if w["status"] == "ok"]
    assert settled and r15["slices"] == rep["slices"] > 0
    for w in settled:
        cost = sum(s["spent_usd"] + s["fee_usd"] for s in w["slices"])
        assert w["cost_usd"] == cost
        assert w["pnl_usd"] == sum(s["shares"] for s in w["slices"] if s["side"] == w["winner"]) - cost
    # the same recording, the same documents, byte for byte
    assert backtest.main([str(rec_dir), "--out", str(tmp_path / "again"), "--progress", "off"]) == 0
    assert (tmp_path / "again" / "edges.jsonl").read_bytes() == (tmp_path / "out" / "edges.jsonl").read_bytes()


def test_results_stream_to_disk_and_the_scorer_holds_only_open_windows(rec_dir, decide_env, tmp_path):
    scorer = Scorer(final_grace_ns=0)
    sink = backtest.EdgeSink(tmp_path / "edges.jsonl", scorer, flush_sec=0)
    seen = []

    def on_second(now_ns, stats):
        scorer.advance(now_ns)
        sink.tick()
        seen.append(((tmp_path / "edges.jsonl").stat().st_size, len(scorer.open), stats.edges))

    def on_frame(venue, rec, frame):
        feed = backtest.SETTLEMENT_DATA.get(venue)
        if feed is not None:
            feed(scorer, rec, frame)

    stats = backtest_engine.run(rec_dir, on_edge=sink, on_frame=on_frame, on_second=on_second,
                                decision_log_dir=tmp_path / "decisions")
    sink.close()
    sizes = [s for s, _, _ in seen]
    assert sizes == sorted(sizes) and len(set(sizes)) >= RECORD_SEC - 10     # it grew every event second
    assert sizes[-1] <= (tmp_path / "edges.jsonl").stat().st_size
    # every document streamed reached the file, one line each
    assert (tmp_path / "edges.jsonl").read_bytes().count(b"\n") == stats.edges
    # at most the current window and the one just ended (settling) are held; windows were let go
    assert max(n for _, n, _ in seen) <= 2 and scorer.finalized >= 1
    assert stats.edges == stats.ticks == seen[-1][2]


def test_an_interrupted_run_leaves_no_shared_memory_and_releases_the_clock(rec_dir, decide_env, tmp_path):
    before = {p.name for p in Path("/dev/shm").glob("bt*")}
    n = [0]

    def on_edge(doc):
        n[0] += 1
        if n[0] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backtest_engine.run(rec_dir, on_edge=on_edge, decision_log_dir=tmp_path / "d")
    assert {p.name for p in Path("/dev/shm").glob("bt*")} == before
    assert not clock.is_manual()


def test_the_cli_refuses_stray_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        backtest.main([str(tmp_path), "--bogus"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        backtest.main(["--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert all(opt in help_text for opt in ("--out", "--json", "--seed", "--progress", "--realtime", "--speed",
                                            "--timeout"))
