"""An actor switched off by the settings (actors/feed/idle.py): `run.py context` with
CONTEXT_ENABLED=false, and run_disabled for a Polymarket feed whose SYMBOL has no up/down market,
each in its own process against a temporary SHM_DIR: it heartbeats `{"disabled": reason}`, opens
nothing else, logs the start warnings, and ends cleanly on SIGTERM/SIGINT."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from config.settings import SETTING_NAMES
from ipc.state import Registry
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _env(shm_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in SETTING_NAMES}
    env.update(SHM_DIR=str(shm_dir), SHM_PREFIX="idle" + uuid.uuid4().hex[:8], PYTHONUNBUFFERED="1", **extra)
    return env


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_context_disabled_heartbeats_and_stops(tmp_path):
    env = _env(tmp_path, CONTEXT_ENABLED="false", LOG_LEVEL="INFO", POLYMARKET_WS="wss://typo")
    proc = subprocess.Popen([sys.executable, "run.py", "context"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        reg = wait_for(lambda: (tmp_path / f"{env['SHM_PREFIX']}.registry").exists()
                       and Registry(str(tmp_path), env["SHM_PREFIX"]), 20, "the registry")
        hb = wait_for(lambda: (lambda h: h if h and "disabled" in h else None)(reg.read("context")), 20,
                      "context's own heartbeat (after the start's, run.py's supervision.begin)")
        assert (hb["counters"], hb["disabled"], hb["pid"]) == ({"disabled": "CONTEXT_ENABLED=false"},
                                                                "CONTEXT_ENABLED=false", proc.pid)
        first = hb["alive_ns"]
        wait_for(lambda: reg.read("context")["alive_ns"] > first, 10, "a second heartbeat")
        # nothing but the registry (and the prefix's lock, ipc/stacklock.py): no kline ring, no state block
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".{env['SHM_PREFIX']}.lock",
                                                              f"{env['SHM_PREFIX']}.registry"]
    finally:
        rc, err = _stop(proc, signal.SIGTERM)
    assert rc == 0, err
    assert reg.read("context")["stopped"] is True
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warnings = [(d["level"], d["actor"], d["name"], d["message"]) for d in lines if d["level"] == "WARNING"]
    assert warnings == [
        ("WARNING", "context", "settings", "POLYMARKET_WS: not a setting; did you mean POLYMARKET_WS_URL? "
                                           "(in the environment)"),
        ("WARNING", "context", "idle", "context is off: CONTEXT_ENABLED=false (heartbeat only, no connection)"),
    ]


def test_run_disabled_for_a_symbol_without_a_market(tmp_path):
    env = _env(tmp_path, SYMBOL="BNBUSDT")
    code = ("from config.settings import load_settings\n"
            "from actors.feed.idle import run_disabled\n"
            "s = load_settings()\n"
            "run_disabled(s, 'feed_poly', s.polymarket_off_reason)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reason = "SYMBOL=BNBUSDT has no Polymarket up/down market (known: BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT)"
    try:
        reg = wait_for(lambda: (tmp_path / f"{env['SHM_PREFIX']}.registry").exists()
                       and Registry(str(tmp_path), env["SHM_PREFIX"]), 20, "the registry")
        hb = wait_for(lambda: (lambda h: h if h and "disabled" in h else None)(reg.read("feed_poly")), 20,
                      "feed_poly's own heartbeat (after the start's, run.py's supervision.begin)")
        assert (hb["actor"], hb["counters"], hb["disabled"]) == ("feed_poly", {"disabled": reason}, reason)
        assert "stopped" not in hb and "feed" not in hb
    finally:
        rc, err = _stop(proc, signal.SIGINT)
    assert rc == 0, err
    assert reg.read("feed_poly")["stopped"] is True
