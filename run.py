#!/usr/bin/env python3
"""Command line: run one actor, or the whole system under supervisord.

  python run.py --sim            every actor plus the built-in exchange, in the foreground
  python run.py                  every actor against the live venues
  python run.py <actor>          one actor (what supervisord runs; the list is printed below, from
                                 ipc.names.ACTORS)
  python run.py --replay DIR [--speed X]
                                 every actor against the sim serving a recording (original timing, or X times faster)
  python run.py backtest DIR     replay at full speed; decisions, edge distribution, paper PnL per window
  python run.py export DIR OUT   the recording as Parquet (one file per venue and stream)
  python run.py ctl <args>       supervisorctl for the running system (status, restart feed_futures, …)
  python run.py bench [...]      benchmarks (see README)
  python run.py tui              the live terminal dashboard (q quits, 1/2/3 or tab switch panels)

Settings are loaded once here and handed to the actor; a bad value stops the start with a message
naming the variable. In supervisor mode the venue URLs are pointed at the sim by environment, so
the same feed code runs against the sim and the live venues.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent

TOOLS = {
    "bench": "tests.bench.run",
    "calibrate": "actors.tools.calibrate",
    "backtest": "actors.tools.backtest",
    "export": "actors.tools.export",
    "tui": "actors.tools.tui.app",
}


def _settings():
    from config.settings import SettingsError, load_settings
    try:
        return load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2)


def sim_env(s) -> dict[str, str]:
    """Environment that points every venue URL at the built-in exchange."""
    fut, spot = f"{s.sim.host}:{s.sim.port}", f"{s.sim.host}:{s.sim.spot_port}"
    poly = f"{s.sim.host}:{s.sim.poly_port}"
    return {"FUTURES_WS": f"ws://{fut}", "FUTURES_REST": f"http://{fut}",
            "SPOT_WS": f"ws://{spot}", "SPOT_REST": f"http://{spot}",
            "POLYMARKET_GAMMA_URL": f"http://{poly}/gamma",
            "POLYMARKET_CLOB_URL": f"http://{poly}/clob",
            "POLYMARKET_CLOB_WS": f"ws://{poly}/ws/market",
            "POLYMARKET_RTDS_URL": f"ws://{poly}/rtds",
            "TAAPI_URL": f"http://{fut}/taapi"}


def supervisor_env(s, with_sim: bool) -> dict[str, str]:
    run_dir = Path(os.environ.get("TDC_RUN_DIR") or ROOT / "run" / s.ipc.shm_prefix).resolve()
    log_dir = Path(s.general.log_dir if os.path.isabs(s.general.log_dir) else ROOT / s.general.log_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if with_sim:
        env.update(sim_env(s))
    env.update(TDC_PYTHON=sys.executable, TDC_ROOT=str(ROOT), TDC_RUN_DIR=str(run_dir),
               TDC_LOG_DIR=str(log_dir), TDC_WITH_SIM="true" if with_sim else "false",
               TDC_RECORD="true" if s.record.record_enabled else "false",
               PYTHONUNBUFFERED="1")
    return env


def run_supervisor(with_sim: bool) -> int:
    s = _settings()
    env = supervisor_env(s, with_sim)
    # validate the settings the actors will see (sim URLs included) before starting anything
    os.environ.update(env)
    s = _settings()
    from ipc.shm import unlink_prefix
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-n",
                             "-c", str(ROOT / "supervisord.conf")], env=env, cwd=ROOT)

    def forward(signum, _frame):
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    _wake(Path(env["TDC_RUN_DIR"]) / "supervisor.sock", proc)
    rc = proc.wait()
    removed = unlink_prefix(s.ipc.shm_dir, s.ipc.shm_prefix)
    sock = Path(env["TDC_RUN_DIR"]) / "supervisor.sock"
    sock.unlink(missing_ok=True)
    sys.stderr.write(f"stopped (supervisord exit {rc}); removed {removed} shared-memory segments\n")
    return rc


def _wake(sock: Path, proc: subprocess.Popen, timeout_sec: float = 10.0) -> None:
    """supervisord spawns its programs only after its first one-second poll; a connection to its
    socket ends that poll at once (about a second off every start)."""
    import socket
    import time
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                with socket.socket(socket.AF_UNIX) as c:
                    c.connect(str(sock))
                return
            except OSError:
                pass
        time.sleep(0.01)


def run_ctl(args: list[str]) -> int:
    s = _settings()
    env = supervisor_env(s, with_sim=False)
    return subprocess.call([sys.executable, "-m", "supervisor.supervisorctl",
                            "-c", str(ROOT / "supervisord.conf"), *args], env=env, cwd=ROOT)


def replay_env(argv: list[str]) -> dict[str, str]:
    """`--replay DIR [--speed X]`: the sim serves DIR; every actor's data clock starts at the
    recording's first frame REPLAY_LEAD_SEC (wall) from now, so the feeds are connected by then."""
    import argparse
    import time

    from actors.sim.replay import first_frame_ns
    ap = argparse.ArgumentParser(prog="run.py --replay")
    ap.add_argument("dir")
    ap.add_argument("--speed", type=float, default=1.0)
    a = ap.parse_args(argv)
    if a.speed <= 0:
        raise SystemExit("--speed must be > 0")
    try:
        origin = first_frame_ns(Path(a.dir))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--replay: {exc}")
    return {"REPLAY_DIR": str(Path(a.dir).resolve()), "REPLAY_SPEED": repr(a.speed),
            "REPLAY_ORIGIN_NS": str(origin), "REPLAY_WALL0_NS": str(time.time_ns() + REPLAY_LEAD_NS),
            "RECORD_ENABLED": "false"}


REPLAY_LEAD_NS = 5_000_000_000


def help_text() -> str:
    """The module docstring (the modes) plus the actor and tool lists, taken from their declarations."""
    from ipc.names import ACTORS
    actors = ", ".join(a.name for a in ACTORS)
    return f"{__doc__}\nactors: {actors}\ntools: ctl, {', '.join(TOOLS)}\n"


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    if not argv or argv[0] in ("--sim", "--live"):
        return run_supervisor(with_sim=bool(argv) and argv[0] == "--sim")
    if argv[0] == "--replay":
        os.environ.update(replay_env(argv[1:]))
        return run_supervisor(with_sim=True)
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if cmd == "ctl":
        return run_ctl(rest)
    if cmd in TOOLS:
        return importlib.import_module(TOOLS[cmd]).main(rest) or 0
    from ipc.names import ACTOR_BY_NAME
    if cmd not in ACTOR_BY_NAME:
        sys.stderr.write(f"unknown command {cmd!r}; actors: {', '.join(ACTOR_BY_NAME)}; "
                         f"tools: ctl, {', '.join(TOOLS)}\n")
        return 2
    s = _settings()
    from config.logging import setup_logging
    from ipc import clock
    clock.configure_from(s)
    setup_logging(cmd, s.general.log_level)
    importlib.import_module(ACTOR_BY_NAME[cmd].module).main(s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
