"""Decision log (actors/decide/decision_log.py): one JSON line per decision, file per UTC day (rotation at
midnight on the decision's own timestamp), directory created, unwritable dir counted not raised."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import orjson

from actors.decide.decision_log import DecisionLog, day_of

NS = 1_000_000_000
MIDNIGHT = int(datetime(2026, 11, 24, tzinfo=timezone.utc).timestamp()) * NS


def lines(path):
    return [orjson.loads(l) for l in path.read_bytes().splitlines()]


def test_line_format_and_dir_created(tmp_path):
    d = tmp_path / "data" / "decisions"
    log = DecisionLog(str(d))
    rec = {"ts_ns": MIDNIGHT + 5 * NS, "decision": "BUY_UP", "vetoes": [],
           "sides": {"UP": {"edge_bps": 1378.9, "asks_top": [(0.5, 10.0)]}},
           "fair_up": np.float64(0.6), "nan": math.nan}
    assert log.write(rec)
    log.close()
    p = d / "decisions-2026-11-24.jsonl"
    raw = p.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    got = lines(p)[0]
    assert got["decision"] == "BUY_UP" and got["fair_up"] == 0.6 and got["nan"] is None
    assert got["sides"]["UP"]["asks_top"] == [[0.5, 10.0]]
    assert log.stats()["lines"] == 1 and log.errors == 0


def test_rotation_across_utc_midnight(tmp_path):
    log = DecisionLog(str(tmp_path))
    for t in (MIDNIGHT - 2 * NS, MIDNIGHT - 1):          # 23:59:58, 23:59:59.999999999
        log.write({"ts_ns": t, "k": "before"})
    assert log.path.endswith("decisions-2026-11-23.jsonl")
    log.write({"ts_ns": MIDNIGHT, "k": "after"})          # 00:00:00 exactly: the new day
    log.write({"k": "explicit ts"}, ts_ns=MIDNIGHT + 3600 * NS)
    assert log.path.endswith("decisions-2026-11-24.jsonl") and log.rotations == 1
    log.close()
    before = lines(tmp_path / "decisions-2026-11-23.jsonl")
    after = lines(tmp_path / "decisions-2026-11-24.jsonl")
    assert [r["ts_ns"] for r in before] == [MIDNIGHT - 2 * NS, MIDNIGHT - 1]
    assert [r["k"] for r in after] == ["after", "explicit ts"]
    assert day_of(MIDNIGHT - 1) == "2026-11-23" and day_of(MIDNIGHT) == "2026-11-24"


def test_each_line_flushed_and_appends_after_reopen(tmp_path):
    log = DecisionLog(str(tmp_path))
    log.write({"ts_ns": MIDNIGHT, "n": 1})
    p = tmp_path / "decisions-2026-11-24.jsonl"
    assert len(lines(p)) == 1                             # visible before close: flushed
    log.close()
    log2 = DecisionLog(str(tmp_path))                     # a restart appends, never truncates
    log2.write({"ts_ns": MIDNIGHT + NS, "n": 2})
    log2.close()
    assert [r["n"] for r in lines(p)] == [1, 2]


def test_unwritable_dir_counted_never_raises(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    log = DecisionLog(str(blocker / "decisions"))         # works even as root
    assert log.write({"ts_ns": MIDNIGHT, "x": 1}) is False
    assert log.write({"ts_ns": MIDNIGHT, "x": 2}) is False
    st = log.stats()
    assert st["errors"] == 2 and st["lines"] == 0
    assert "write to" in st["last_error"] and "afile" in st["last_error"]
    log.close()


def test_recovers_when_dir_becomes_writable(tmp_path):
    blocker = tmp_path / "d"
    blocker.write_text("x")
    log = DecisionLog(str(blocker))
    assert not log.write({"ts_ns": MIDNIGHT})
    blocker.unlink()
    assert log.write({"ts_ns": MIDNIGHT})
    assert log.errors == 1 and log.lines == 1
    log.close()


def test_unserializable_record_counted(tmp_path):
    log = DecisionLog(str(tmp_path))
    assert log.write({"ts_ns": MIDNIGHT, "bad": object()}) is False
    assert log.errors == 1 and log.last_error.startswith("serialize")
    assert log.write({"ts_ns": MIDNIGHT, "ok": True})
    log.close()
    assert lines(tmp_path / "decisions-2026-11-24.jsonl") == [{"ts_ns": MIDNIGHT, "ok": True}]


def test_edge_evaluate_result_round_trips(tmp_path):
    from actors.decide.edge import EdgeParams, evaluate
    p = EdgeParams(slice_usd=10.0, edge_buffer_bps=100.0, stale_threshold_sec=10.0,
                   max_spread_bps=500.0, min_depth_usd=50.0)
    books = {"UP": {"asks": [(0.5, 100.0)], "bids": [(0.49, 10.0)], "age_ms": 100.0},
             "DOWN": {"asks": [(0.51, 100.0)], "bids": [(0.5, 10.0)], "age_ms": 100.0}}
    r = evaluate(MIDNIGHT, None, 0.6, books, "OK", p)
    log = DecisionLog(str(tmp_path))
    assert log.write(r)
    log.close()
    got = lines(tmp_path / "decisions-2026-11-24.jsonl")[0]
    assert got["decision"] == "NONE" and got["vetoes"][0]["code"] == "no_window"
    assert got["params"]["slice_usd"] == 10.0


def test_a_series_log_is_its_own_file(tmp_path):
    """One file per series: decisions-<asset>-<series>-YYYY-MM-DD.jsonl (calibrate globs decisions-*)."""
    a, b = DecisionLog(str(tmp_path), tag="btc-15m"), DecisionLog(str(tmp_path), tag="btc-1h")
    assert a.write({"ts_ns": MIDNIGHT, "series": "15m"}) and b.write({"ts_ns": MIDNIGHT, "series": "1h"})
    a.close()
    b.close()
    assert lines(tmp_path / "decisions-btc-15m-2026-11-24.jsonl") == [{"ts_ns": MIDNIGHT, "series": "15m"}]
    assert lines(tmp_path / "decisions-btc-1h-2026-11-24.jsonl") == [{"ts_ns": MIDNIGHT, "series": "1h"}]
    assert sorted(p.name for p in tmp_path.glob("decisions-*.jsonl")) == [
        "decisions-btc-15m-2026-11-24.jsonl", "decisions-btc-1h-2026-11-24.jsonl"]
