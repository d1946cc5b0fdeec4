"""deploy/prometheus: the scrape config and the alert rules load, have Prometheus' structure, and
every metric an alert uses is one that /metrics actually renders. With `promtool` on PATH the files
are also checked by Prometheus' own tool, and the alerts unit-tested on synthetic series
(alerts_test.yml); promtool is not on PyPI (Debian: `apt-get install prometheus`), so without it
that part is skipped."""
from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from falcon import testing
from prometheus_client.parser import text_string_to_metric_families

from actors.api import ShmView, create_app
from actors.obs.histogram import DATA_AGE_BOUNDS_MS, Histogram
from config.settings import load_settings
from ipc import names
from ipc.shm import unlink_prefix
from ipc.state import Heartbeat, Registry, StateBlock

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
EXPECTED_ALERTS = {"TdcApiDown", "TdcActorDown", "TdcQualityBad", "TdcDataAgeP99High", "TdcRingOverruns",
                   "TdcParseErrors"}
DURATION = re.compile(r"^\d+[smhdwy]$")


def _load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def test_scrape_config_structure():
    cfg = _load("prometheus.yml")
    assert cfg["rule_files"] == ["alerts.yml"]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "tdc"]
    assert job["metrics_path"] == "/metrics"
    assert DURATION.match(job["scrape_interval"]) and DURATION.match(job["scrape_timeout"])
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:8080"]


def test_alert_rules_structure():
    rules = _load("alerts.yml")
    (group,) = rules["groups"]
    names = [r["alert"] for r in group["rules"]]
    assert len(names) == len(set(names)) and EXPECTED_ALERTS <= set(names)
    for r in group["rules"]:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert isinstance(r["expr"], str) and r["expr"].strip()
        assert r["expr"].count("(") == r["expr"].count(")") and r["expr"].count("{") == r["expr"].count("}")
        assert DURATION.match(r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning")
        assert r["annotations"]["summary"] and r["annotations"]["description"]


@pytest.fixture
def rendered_names():
    """Every sample name /metrics renders when every family has data."""
    prefix = "pc" + uuid.uuid4().hex[:8]
    s = load_settings(shm_prefix=prefix)
    try:
        reg = Registry(s.ipc.shm_dir, s.ipc.shm_prefix)
        h = Histogram(DATA_AGE_BOUNDS_MS)
        h.observe_ns(1)
        Heartbeat(reg, "feed_futures").beat(
            {"parse_errors": 1, "published": 1, "publish_dropped": 0},
            feed={"connections": {"m": {"connected": True, "frames": 1, "bytes": 1, "reconnects": 0,
                                        "rotations": 0, "stale_rotations": 0, "silent_streams": []}},
                  "streams": {"trade": {"written": 1, "duplicates": 0, "id_gaps": 0, "ids_missing": 0,
                                        "gap_markers": 0, "last_recv_ns": 1, "data_age": h.doc()}}})
        Heartbeat(reg, "compute").beat({"tick_overruns": 0}, hist={"tick_duration": h.doc()},
                                       rings={names.FUTURES_RINGS["trade"].key(): 0})
        StateBlock(s.ipc.shm_dir, s.ipc.shm_prefix, names.QUALITY_BLOCK, writer=True).write({"mode": "OK", "reasons": []})
        c = testing.TestClient(create_app(ShmView(s), s))
        c.simulate_get("/health")
        text = c.simulate_get("/metrics").text
        return {smp.name for fam in text_string_to_metric_families(text) for smp in fam.samples}
    finally:
        unlink_prefix(s.ipc.shm_dir, prefix)


def test_every_metric_in_the_rules_is_rendered(rendered_names):
    rules = _load("alerts.yml")["groups"][0]["rules"]
    used = {m for r in rules for m in re.findall(r"\btdc_[a-z_]+", r["expr"])}
    assert used, "no tdc_ metric in the rules?"
    assert used <= rendered_names, used - rendered_names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_them():
    for args in (["check", "config", str(DEPLOY / "prometheus.yml")],
                 ["check", "rules", str(DEPLOY / "alerts.yml")],
                 ["test", "rules", str(DEPLOY / "alerts_test.yml")]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
