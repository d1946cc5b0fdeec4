"""Start the whole system (`python run.py --sim`) for real, isolated on free ports and its own shm
prefix, wait on conditions with deadlines, and stop it leaving nothing behind."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float, what: str, interval: float = 0.05):
    """Poll `cond()` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as exc:     # noqa: BLE001 - the condition may not be ready yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


@dataclass
class System:
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    @property
    def pub_url(self) -> str:
        return self.env["ZMQ_PUB_URL"]

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.http + path, timeout=5, **kw)

    def health(self) -> tuple[int, dict]:
        r = self.get("/health")
        return r.status_code, r.json()

    def settings(self):
        from config.settings import Settings
        return Settings(**{k.lower(): v for k, v in self.env.items()
                           if k.lower() in Settings.model_fields})

    def ctl(self, *args: str) -> str:
        return subprocess.run([sys.executable, "run.py", "ctl", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=30).stdout

    def start(self, args: tuple[str, ...] = ("--sim",), **overrides: str) -> "System":
        prefix = "t" + uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TDC_", "FUTURES_", "SPOT_", "ZMQ_", "SIM_", "HTTP_"))}
        env.update(
            SHM_PREFIX=prefix, LOG_DIR=str(self.tmp / "logs"), TDC_RUN_DIR=str(self.tmp / "run"),
            DECISION_LOG_DIR=str(self.tmp / "decisions"),
            HTTP_PORT=str(free_port()), SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
            SIM_POLY_PORT=str(free_port()),
            ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}",
            ZMQ_CONTROL_URL=f"tcp://127.0.0.1:{free_port()}", PYTHONUNBUFFERED="1")
        env.update(overrides)
        self.env = env
        self.proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=env,
                                     stdout=open(self.tmp / "run.out", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C, as a user would; then make sure every process of ours is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise AssertionError("run.py did not stop within the timeout after Ctrl-C")

    def session_pids(self) -> list[int]:
        """Every live process of the session run.py was started in (supervisord, actors, workers)."""
        sid = self.proc.pid
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != b"Z":      # field 6 of stat: session id
                out.append(int(d.name))
        return out

    def shm_segments(self) -> list[Path]:
        return sorted(Path("/dev/shm").glob(f"{self.env['SHM_PREFIX']}.*"))

    def logs(self) -> str:
        out = []
        for p in sorted((self.tmp / "logs").glob("*.log")) + [self.tmp / "run.out"]:
            if p.exists():
                out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:])
        return "\n".join(out)
