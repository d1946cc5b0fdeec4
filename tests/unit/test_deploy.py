"""The container deployment (Dockerfile, compose.yaml, deploy/grafana) is checked without Docker:

- compose.yaml parses, has the collector, Prometheus and Grafana with pinned images, a /dev/shm
  (`shm_size`) that holds a recording stack of the compose file's own settings (sized as
  `ipc.shm.stack_segments` does, plus the context's frame ring it leaves out) with 20 % to spare,
  ports on the host's loopback, and mounts of files that exist;
- the Grafana dashboard's every PromQL expression selects only metrics `/metrics` renders (the
  full-coverage rendering of test_prometheus_config), applies rate()/increase() to counters only,
  and (with `promtool`) parses as PromQL: the expressions go into a rules file that
  `promtool check rules` must accept.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.settings import load_settings
from ipc import framering, names
from ipc.shm import pages, stack_segments
from tests.support.promql import check_rates_on_counters, metric_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tdc.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
MB = 1 << 20
DOCKER_DEFAULT_SHM = 64 * MB
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*$")      # a release tag: not `latest`, not a major only
PLACEHOLDER_TOKEN = "t" * 32          # what an operator passes as API_TOKEN


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _interpolate(v: str) -> str:
    """compose's `${VAR:-default}` / `${VAR-default}` with VAR unset; `${VAR:?error}` as supplied."""
    def one(m):
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if op.endswith("?"):
            return PLACEHOLDER_TOKEN if name == "API_TOKEN" else "x"
        return arg if op in ("-", ":-") else ""
    return re.sub(r"\$\{(\w+)(:?[-?])?([^}]*)\}", one, str(v))


def _bytes(size: str) -> int:
    m = re.fullmatch(r"(\d+)([kmg]?)b?", str(size).strip().lower())
    assert m, size
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": MB, "g": 1 << 30}[m.group(2)]


def _settings_of(service: dict, **overrides):
    env = {k: _interpolate(v) for k, v in (service.get("environment") or {}).items()}
    fields = {k.lower(): v for k, v in env.items() if k not in ("TDC_ARGS",)}
    return load_settings(env_file=None, **{**fields, **overrides}), env


def test_compose_services_and_images(compose):
    svcs = compose["services"]
    assert set(svcs) == {"tdc", "prometheus", "grafana"}
    assert svcs["tdc"]["build"]["context"] == "." and (ROOT / "Dockerfile").is_file()
    assert svcs["tdc"]["platform"] == "linux/amd64"          # x86-64 store ordering (ipc/shm.py)
    for name in ("prometheus", "grafana"):
        assert PINNED.match(svcs[name]["image"]), svcs[name]["image"]
    assert svcs["prometheus"]["image"].startswith("prom/prometheus:")
    assert svcs["grafana"]["image"].startswith("grafana/grafana:")
    assert svcs["prometheus"]["depends_on"] == ["tdc"] and svcs["grafana"]["depends_on"] == ["prometheus"]
    # stopping waits for the recorder (supervisord gives it 30 s)
    assert int(svcs["tdc"]["stop_grace_period"].rstrip("s")) >= 30


def _need(s) -> int:
    """/dev/shm bytes a stack of `s` allocates: run.py's start check (`stack_segments`), plus the
    context's frame ring when recording (its REST answers, kept for replay), which that sizing
    leaves out: a running recording stack has five frame rings, not four."""
    segs = stack_segments(s)
    need = sum(pages(n) for _, n in segs.values())
    ctx = names.frame_ring_name(s.ipc.shm_prefix, names.venue_symbol(names.CONTEXT, s.general.symbol), names.CONTEXT)
    if s.record.record_enabled and s.context.context_enabled and ctx not in segs:
        need += pages(framering.HEADER_BYTES + s.record.record_ring_bytes)
    return need


def test_shm_size_holds_a_recording_stack(compose):
    """Docker's 64 MB /dev/shm cannot hold the stack; compose's shm_size holds the recording one
    (~507 MB at the defaults) with room to spare."""
    tdc = compose["services"]["tdc"]
    need = _need(_settings_of(tdc, record_enabled=True)[0])
    plain = _need(_settings_of(tdc, record_enabled=False)[0])
    assert DOCKER_DEFAULT_SHM < plain < need
    assert _bytes(tdc["shm_size"]) >= need * 1.2, (tdc["shm_size"], need / MB)
    # the figures the docs quote (default settings)
    assert (round(plain / MB), round(need / MB)) == (187, 507)


def test_compose_ports_env_and_scrape_target(compose):
    tdc, prom, graf = (compose["services"][k] for k in ("tdc", "prometheus", "grafana"))
    s, env = _settings_of(tdc)
    # beyond the container's loopback the API needs its token: the compose file refuses to start without one
    assert s.general.http_host == "0.0.0.0" and s.general.api_token == PLACEHOLDER_TOKEN
    assert ":?" in tdc["environment"]["API_TOKEN"]
    assert env["TDC_ARGS"] == "--sim"
    for svc, port in ((tdc, s.general.http_port), (prom, 9090), (graf, 3000)):
        assert svc["ports"] == [f"127.0.0.1:{port}:{port}"]              # the host's loopback only
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus-compose.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["job_name"] == "tdc" and job["metrics_path"] == "/metrics"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"tdc:{s.general.http_port}"]
    assert scrape["rule_files"] == ["alerts.yml"]


def test_compose_volumes_exist(compose):
    named = set(compose["volumes"])
    mounts = {}
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src, dst, *_ = v.split(":")
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in named, f"{name}: volume {src} not declared"
            mounts[(name, dst)] = src
    prom_cfg = compose["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom_cfg
    assert mounts[("prometheus", "/etc/prometheus/prometheus.yml")] == "./deploy/prometheus/prometheus-compose.yml"
    assert mounts[("prometheus", "/etc/prometheus/alerts.yml")] == "./deploy/prometheus/alerts.yml"
    # Grafana: the provider's path is where the dashboard is mounted, the datasource the one it names
    assert mounts[("grafana", "/etc/grafana/provisioning")] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "tdc.yml").read_text())["providers"][0]
    assert mounts[("grafana", provider["options"]["path"] + "/tdc.json")] == "./deploy/grafana/tdc.json"
    (ds,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in _panels(json.loads(DASHBOARD.read_text()))} == {ds["uid"]}


def test_dockerfile():
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())      # continuation lines joined
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    (base,) = [ln for ln in lines if ln.startswith("FROM ")]
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim(-\w+)?", base), base
    assert "RUN pip install -r requirements.txt" in lines
    (user,) = [ln for ln in lines if ln.startswith("USER ")]
    assert user.split()[1] not in ("root", "0")
    (cmd,) = [ln for ln in lines if ln.startswith("CMD ")]
    assert json.loads(cmd[4:]) == ["sh", "-c", "exec python run.py $TDC_ARGS"]
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "data", "logs", "run"} <= ignored       # secrets and local state stay out


# --- the Grafana dashboard --------------------------------------------------------------------
def _panels(dash: dict):
    for p in dash["panels"]:
        yield from (x for x in [p, *p.get("panels", [])] if x.get("type") != "row")


def _exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target; template queries as their metric selector."""
    out = [(f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]) for p in _panels(dash) for t in p["targets"]]
    for v in dash["templating"]["list"]:
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
        assert m, q
        out.append((f"variable {v['name']}", m.group(1)))
    return out


def _concrete(expr: str) -> str:
    """Grafana's variables replaced by values Prometheus would see."""
    return expr.replace("$__rate_interval", "1m").replace("$series", "15m")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_structure(dashboard):
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
    assert dashboard["uid"] and dashboard["title"]


def test_dashboard_covers_the_operations_topics(dashboard):
    used = {m for _, e in _exprs(dashboard) for m in metric_names(_concrete(e))}
    topics = {"actor up": "tdc_actor_up", "restarts": "tdc_actor_starts_total",
              "data age": "tdc_feed_data_age_seconds_bucket", "reconnects": "tdc_feed_connection_reconnects_total",
              "tick p99": "tdc_compute_tick_duration_seconds_bucket",
              "API p99": "tdc_api_request_duration_seconds_bucket", "recorder lag": "tdc_recorder_lag_frames",
              "fair": "tdc_edge_fair_probability", "market": "tdc_poly_book_best_ask", "edge": "tdc_edge_bps",
              "process CPU": "tdc_process_cpu_seconds_total"}
    assert {k: v for k, v in topics.items() if v not in used} == {}


def test_dashboard_queries_only_rendered_metrics(dashboard, rendered):
    """No panel on a metric that does not exist; rate() and increase() on counters only."""
    missing = {}
    for where, e in _exprs(dashboard):
        e = _concrete(e)
        if unknown := metric_names(e) - set(rendered):
            missing[where] = unknown
        check_rates_on_counters(e, rendered)
    assert missing == {}


@pytest.fixture(scope="module")
def rendered():
    import uuid

    from ipc.shm import unlink_prefix
    from tests.support.promql import render_every_family, sample_types
    prefix = "dp" + uuid.uuid4().hex[:8]
    try:
        return sample_types(render_every_family(prefix))
    finally:
        unlink_prefix(load_settings(shm_prefix=prefix).ipc.shm_dir, prefix)


def _promtool_check(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess:
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"tdc_dashboard:expr_{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    f = tmp_path / "dashboard_rules.yml"
    f.write_text(yaml.safe_dump(rules))
    return subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_dashboard_queries_parse_with_promtool(dashboard, tmp_path):
    """Each expression as a recording rule: `promtool check rules` parses it as Prometheus would."""
    exprs = [_concrete(e) for _, e in _exprs(dashboard)]
    r = _promtool_check(tmp_path, exprs)
    assert r.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in r.stdout, r.stdout + r.stderr
    # and the check is real: one broken expression fails it
    bad = _promtool_check(tmp_path, [*exprs, "sum by (actor (tdc_actor_up)"])
    assert bad.returncode != 0 and "parse error" in (bad.stdout + bad.stderr)
