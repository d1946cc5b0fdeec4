"""Start the whole system (`python run.py --sim`) for real, isolated on free ports and its own shm
prefix, and stop it leaving nothing behind (`System.stop_checked`: clean exit, no process of its
session and no shared-memory segment of its prefix left)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import procs
from tests.support.ports import free_port
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


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
        from config.settings import ENV_FIELDS, Settings
        return Settings(**{k.lower(): v for k, v in self.env.items() if k.lower() in ENV_FIELDS})

    def ctl(self, *args: str) -> str:
        return subprocess.run([sys.executable, "run.py", "ctl", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=30).stdout

    def start(self, args: tuple[str, ...] = ("--sim",), command: tuple[str, ...] | None = None,
              cwd: Path = ROOT, **overrides: str) -> "System":
        """`run.py *args` in the checkout, or `command` (an installed `tdc up --sim`) in `cwd`."""
        prefix = "t" + uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TDC_", "FUTURES_", "SPOT_", "ZMQ_", "SIM_", "HTTP_"))}
        env.update(
            SHM_PREFIX=prefix, LOG_DIR=str(self.tmp / "logs"), TDC_RUN_DIR=str(self.tmp / "run"),
            DECISION_LOG_DIR=str(self.tmp / "decisions"),
            HTTP_PORT=str(free_port()), SIM_PORT=str(free_port()), SIM_SPOT_PORT=str(free_port()),
            SIM_POLY_PORT=str(free_port()),
            ZMQ_XSUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_PUB_URL=f"tcp://127.0.0.1:{free_port()}", ZMQ_BIN_URL=f"tcp://127.0.0.1:{free_port()}",
            ZMQ_CONTROL_URL=f"tcp://127.0.0.1:{free_port()}", PYTHONUNBUFFERED="1")
        env.update(overrides)
        self.env = env
        self.proc = subprocess.Popen(list(command or (sys.executable, "run.py", *args)), cwd=cwd, env=env,
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
        return procs.session_pids(self.proc.pid)

    def shm_segments(self) -> list[Path]:
        return sorted(Path("/dev/shm").glob(f"{self.env['SHM_PREFIX']}.*"))

    def logs(self) -> str:
        out = []
        for p in sorted((self.tmp / "logs").glob("*.log")) + [self.tmp / "run.out"]:
            if p.exists():
                out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def stop_checked(self) -> None:
        """Stop (if started) and assert what a clean stop leaves: exit code 0, no process of the
        session, no shared-memory segment of the prefix. Kills the session if anything failed."""
        try:
            if self.proc is None:
                return
            if self.proc.poll() is None:
                rc = self.stop()
                assert rc == 0, self.logs()
            wait_for(lambda: self.session_pids() == [], 10,
                     "no process of the system left", interval=0.05)
            leftover = self.shm_segments()
            assert leftover == [], f"shared-memory segments left behind: {leftover}"
        finally:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_system(tmp: Path, args: tuple[str, ...] = ("--sim",), command: tuple[str, ...] | None = None,
                   cwd: Path = ROOT, **env: str):
    """A started System (not yet known healthy: wait for what the test needs), stopped with
    `stop_checked` at the end; on any failure the log tails are printed."""
    tmp.mkdir(parents=True, exist_ok=True)
    sys_ = System(tmp)
    try:
        sys_.start(args, command=command, cwd=cwd, **env)
        yield sys_
        sys_.stop_checked()
    except BaseException:
        print(sys_.logs())
        raise
    finally:
        if sys_.proc is not None and sys_.proc.poll() is None:
            os.killpg(sys_.proc.pid, signal.SIGKILL)
