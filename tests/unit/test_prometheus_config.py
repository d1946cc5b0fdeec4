"""deploy/prometheus: the scrape configs (host and compose) and the alert rules load, have
Prometheus' structure, every metric an alert uses is one that /metrics actually renders, and
rate()/increase() are applied to counters (and histogram buckets) only. With `promtool` on PATH the
files are also checked by Prometheus' own tool, and the alerts unit-tested on synthetic series
(alerts_test.yml); promtool is not on PyPI (Debian: `apt-get install prometheus`), so without it
that part is skipped. The shared helpers are in tests/support/promql.py."""
from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from config.settings import load_settings
from ipc.shm import unlink_prefix
from tests.support.promql import check_rates_on_counters, metric_names, rated, render_every_family, sample_types

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
EXPECTED_ALERTS = {"TdcApiDown", "TdcActorDown", "TdcQualityBad", "TdcDataAgeP99High", "TdcRingOverruns",
                   "TdcParseErrors", "TdcActorCrashLoop", "TdcRecordingDiskError", "TdcRecordingLosing",
                   "TdcRestBanned"}
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
    assert targets == ["127.0.0.1:8000"]


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


@pytest.fixture(scope="module")
def rendered():
    prefix = "pc" + uuid.uuid4().hex[:8]
    try:
        return sample_types(render_every_family(prefix))
    finally:
        unlink_prefix(load_settings(shm_prefix=prefix).ipc.shm_dir, prefix)


@pytest.fixture
def rendered_names(rendered):
    return set(rendered)


def test_metric_names_of_promql():
    e = 'histogram_quantile(0.99, sum by (actor, le) (rate(tdc_x_bucket{a="b(c)", d!~"e"}[5m]))) > 1'
    assert metric_names(e) == {"tdc_x_bucket"} and rated(e) == {"tdc_x_bucket"}
    assert metric_names("time() - tdc_a_timestamp_seconds offset 5m") == {"tdc_a_timestamp_seconds"}
    assert metric_names('max by (job, actor) (tdc_b) == 1 and on (actor) up{job="tdc"}') == {"tdc_b", "up"}


def test_every_metric_in_the_rules_is_rendered(rendered_names, rendered):
    rules = _load("alerts.yml")["groups"][0]["rules"]
    used = {m for r in rules for m in metric_names(r["expr"])} - {"up"}     # `up`: Prometheus' own
    assert used, "no tdc_ metric in the rules?"
    assert used <= rendered_names, used - rendered_names
    for r in rules:
        check_rates_on_counters(r["expr"], rendered)
    # the ban of the REST API reaches Prometheus and an alert
    assert any("tdc_actor_flag" in r["expr"] and "banned" in r["expr"] for r in rules)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_them():
    for args in (["check", "config", str(DEPLOY / "prometheus.yml")],
                 ["check", "config", str(DEPLOY / "prometheus-compose.yml")],
                 ["check", "rules", str(DEPLOY / "alerts.yml")],
                 ["test", "rules", str(DEPLOY / "alerts_test.yml")]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
