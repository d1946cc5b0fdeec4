"""/metrics and the PromQL over it, for tests: the exposition when every family has data (over real
shm, through the API app), each sample's family type, the metric names a PromQL expression selects
and the series it rates, and the check that rate()/increase() are applied to counters (and histogram
buckets) only. Shared by test_prometheus_config.py and test_deploy.py."""
from __future__ import annotations

import re

from falcon import testing
from prometheus_client.parser import text_string_to_metric_families

from actors.api import ShmView, create_app
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram
from config.settings import load_settings
from ipc import names
from ipc.state import Heartbeat, Registry, StateBlock


def render_every_family(prefix: str) -> str:
    """/metrics' text when every family has data: a heartbeat of each kind of actor with the keys
    the real ones write (a feed, compute, context banned by the REST API, the recorder, the
    strategy), the edge and quality blocks, one API request, and this process as each actor's pid
    (so the process families read a real /proc entry). The caller unlinks `prefix`."""
    from tests.support.api import edge_doc, market_doc
    s = load_settings(shm_prefix=prefix)
    reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
    h = Histogram(DATA_AGE_BOUNDS_MS)
    h.observe_ns(1)
    starts = {"total": 1, "recent": 1, "window_sec": 300, "crash_loop": False, "backoff_sec": 0.0}
    Heartbeat(reg, "feed_futures").beat(
        {"frames": 3, "parse_errors": 1, "published": 1, "publish_dropped": 0, "publish_skipped": 2,
         "rejected": {"trade:price": 1}, "ws_failures": {"frame_too_big": 1}},
        starts=starts,
        feed={"connections": {"m": {"connected": True, "frames": 1, "bytes": 1, "reconnects": 0,
                                    "rotations": 0, "stale_rotations": 0, "silent_streams": []}},
              "streams": {"trade": {"frames": 1, "bytes": 1, "written": 1, "duplicates": 0, "id_gaps": 0,
                                    "ids_missing": 0, "gap_markers": 0, "last_recv_ns": 1_800_000_000 * 10**9,
                                    "last_event_ns": 1_800_000_000 * 10**9 - 5, "data_age": h.doc()}}})
    Heartbeat(reg, "compute").beat({"tick_overruns": 0, "ticks": 9, "tick_p99_ms": 4.5, "control_refused_auth": 1},
                                   hist={"tick_duration": h.doc()}, starts=starts,
                                   rings={names.FUTURES_RINGS["trade"].key(): 0},
                                   series={"15m": {"slices": 1, "book_records": 4}})
    Heartbeat(reg, "context").beat({"rest_requests": 4, "weight_used": 50, "throttled_ms": 20.0, "banned": True,
                                    "banned_until_ns": 1_800_000_060 * 10**9, "indicators_taapi": 0}, starts=starts)
    Heartbeat(reg, "recorder").beat({"frames_recorded": 5, "frames_lost": 0, "frames_pending": 1, "bytes_written": 10,
                                     "disk_ok": 1}, starts=starts,
                                    recording={names.FUTURES: {"recorded": 5, "lost": 0, "lag_frames": 1, "pending": 1,
                                                               "bytes_written": 10, "write_errors": 0, "flushes": 1,
                                                               "ring_bytes": 1 << 20}})
    Heartbeat(reg, "strategy").beat({"windows_settled": 1, "pnl_usd": 0.5}, series={"15m": {"settled": 1, "pnl_usd": 0.5}})
    t0 = 1_800_000_000 * 10**9
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.EDGE_BLOCK, writer=True).write(
        {"ts_ns": t0, "symbol": "BTCUSDT", "disabled": None,
         "series": {"15m": edge_doc("15m", t0, market_doc("15m", 1_799_999_100, 900))}})
    StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.QUALITY_BLOCK, writer=True).write({"mode": "OK", "reasons": []})
    c = testing.TestClient(create_app(ShmView(s), s))
    c.simulate_get("/health")
    return c.simulate_get("/metrics").text


def sample_types(text: str) -> dict[str, str]:
    """Every sample name of an exposition -> its family's type (`x_total` -> counter, `x_bucket` ->
    histogram, ...)."""
    return {smp.name: fam.type for fam in text_string_to_metric_families(text) for smp in fam.samples}


_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions (followed
    by `(`), keywords, grouping labels, label matchers, strings, ranges or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                            # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                          # range and subquery windows
    e = _GROUPING.sub("", e)
    out = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if not m.group(2) and m.group(1).lower() not in _KEYWORDS:
            out.add(m.group(1))
    return out


def rated(expr: str) -> set[str]:
    """The series rate(), irate() and increase() are applied to."""
    return set(re.findall(r"\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))


def check_rates_on_counters(expr: str, types: dict[str, str]) -> None:
    for name in rated(expr):
        ok = (name.endswith("_total") and types.get(name) == "counter") or \
             (name.endswith("_bucket") and types.get(name) == "histogram")
        assert ok, f"{expr!r}: {name} is not a counter ({types.get(name)})"
