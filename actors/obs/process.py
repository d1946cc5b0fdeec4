"""Process metrics of every actor and the build's identity, for the one `/metrics` scrape.

Each actor's pid is in its heartbeat; prometheus_client's ProcessCollector reads `/proc/<pid>` (CPU
seconds, resident and virtual memory, open and max fds, start time) and its families are re-keyed
here with an `actor` label under the `tdc_process_` prefix (`tdc_process_cpu_seconds_total{actor}`).

Invariants:
- a pid that is gone, or whose `/proc` entry this process may not read (another user's fds), yields
  fewer samples, never an error: a scrape reads files only;
- the API's own gunicorn master is `actor="api"` (its heartbeat); its workers are not covered;
- `build_info()` never raises: the version comes from `actors.__version__`, else the installed
  distribution providing `actors`, else "unknown"; the commit from TDC_COMMIT (a container build
  passes it), else the checkout's `.git`, else "unknown".
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

ROOT = Path(__file__).resolve().parents[2]
PROCESS_PREFIX = "tdc"          # -> tdc_process_<what>


class ActorProcesses:
    """`families({actor: pid})`: prometheus_client's process families, one sample per actor."""

    def __init__(self, proc: str = "/proc"):
        self._pid = 0
        self._collector = ProcessCollector(namespace=PROCESS_PREFIX, pid=lambda: self._pid, proc=proc,
                                           registry=None)

    def families(self, pids: dict[str, int]) -> list:
        out: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for actor, pid in pids.items():
            if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
                continue
            self._pid = pid
            for fam in self._collector.collect():
                mine = out.get(fam.name)
                if mine is None:
                    cls = CounterMetricFamily if fam.type == "counter" else GaugeMetricFamily
                    mine = out[fam.name] = cls(fam.name, fam.documentation, labels=["actor"])
                for smp in fam.samples:
                    mine.add_metric([actor], smp.value)
        return list(out.values())


@lru_cache(maxsize=1)
def build_labels() -> dict[str, str]:
    return {"version": _version(), "python": platform.python_version(), "commit": _commit()}


def build_info() -> GaugeMetricFamily:
    fam = GaugeMetricFamily("tdc_build_info", "the running build: package version, Python version, git commit "
                            "(always 1)", labels=["version", "python", "commit"])
    b = build_labels()
    fam.add_metric([b["version"], b["python"], b["commit"]], 1.0)
    return fam


def _version() -> str:
    try:
        import actors
        v = getattr(actors, "__version__", None)
        if isinstance(v, str) and v:
            return v
        from importlib import metadata
        for dist in metadata.packages_distributions().get("actors", ()):
            return metadata.version(dist)
    except Exception:            # a broken install must not break the scrape
        pass
    return "unknown"


def _commit() -> str:
    env = os.environ.get("TDC_COMMIT", "").strip()
    if env:
        return env[:40]
    try:
        git = ROOT / ".git"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:40]
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:40]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:40]
    except OSError:
        pass
    return "unknown"
