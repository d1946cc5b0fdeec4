"""The command line (actors/cli.py, `tdc` and `python run.py`): the help lists every actor (from
ipc.names.ACTORS) and every tool, each command has its own complete help, the run.py spellings
parse to the same action as the subcommands, and a stray or unknown argument is refused with exit
2 before anything starts (real `run.py` processes on a private SHM_DIR, run and log directory)."""
from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from actors import cli
from tests.support import procs
from actors.cli import Action, parse
from ipc import names, recording
from tests.support.fixtures import BINANCE, need

ROOT = Path(__file__).resolve().parents[2]


def _flat(text: str) -> str:
    return " ".join(text.split())


# --- help --------------------------------------------------------------------------------------


def test_help_lists_every_actor_and_tool_with_one_line(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tdc [-h] COMMAND ...")
    listed = re.findall(r"^  (\S+(?: \S+)*?)(?:  +|$)", out, re.M)
    actors = [a.name for a in names.ACTORS]
    assert len(actors) >= 11
    tools = ["backtest", "export", "calibrate", "bench", "tui", "ctl ARGS", "help [COMMAND]"]
    assert [x for x in listed if not x.startswith("-")] == \
        ["COMMAND", "up", "up --sim", "up --replay DIR [--speed X]", *actors, *tools]
    for a in names.ACTORS:
        assert _flat(f"{a.name} {cli.actor_summary(a)}") in _flat(out), a.name
    for tool, (_, line) in cli.TOOLS.items():
        assert _flat(f"{tool} {line}") in _flat(out), tool
    assert cli.main(["help"]) == 0 and capsys.readouterr().out == out


def test_actor_lines_come_from_the_module_docstrings():
    by = names.ACTOR_BY_NAME
    assert cli.actor_summary(by["bus"]) == "the ZeroMQ XSUB/XPUB proxy every publisher and subscriber meets at"
    assert cli.actor_summary(by["api"]) == \
        "a Falcon ASGI app under gunicorn with uvicorn workers; it reads shared memory only"
    for a in names.ACTORS:
        line = cli.actor_summary(a)
        assert line != a.module and "\n" not in line and "(" not in line and not line.endswith("."), (a.name, line)


OWN_HELP = ["up", "actor", "help", *(a.name for a in names.ACTORS)]


@pytest.mark.parametrize("sub", OWN_HELP)
def test_each_command_has_its_own_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        parse([sub, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tdc {sub} [-h]"), out
    if sub in names.ACTOR_BY_NAME:
        a = names.ACTOR_BY_NAME[sub]
        assert f"Runs the module {a.module} in the foreground" in _flat(out)
        assert f"Run by supervisord.conf: {'yes' if a.supervised else 'no'}" in _flat(out)
    assert cli.main(["help", sub]) == 0 and capsys.readouterr().out == out


def test_up_help_names_every_mode_and_the_run_py_spellings(capsys):
    assert cli.main(["--sim", "--help"]) == 0
    out = _flat(capsys.readouterr().out)
    assert out.startswith("usage: tdc up [-h] [--live | --sim | --replay DIR] [--speed X]")
    assert "`run.py --replay DIR --speed 5` = `tdc up --replay DIR --speed 5`" in out


@pytest.mark.parametrize("tool", [*cli.TOOLS, "ctl"])
def test_a_tool_help_is_its_own_parser(tool, capfd, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("TDC_RUN_DIR", str(tmp_path / "run"))      # ctl: its supervisor environment
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    assert cli.main([tool, "--help"]) == 0
    out = capfd.readouterr().out
    if tool == "ctl":
        assert out.startswith("supervisorctl -- control applications run by supervisord"), out[:200]
    else:
        assert re.match(rf"usage: \S+ {tool} \[-h\]", out), out[:200]


@pytest.mark.parametrize("tool", cli.TOOLS)
def test_a_tool_refuses_a_stray_argument_with_its_own_parser(tool, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    positionals = {"export": ["rec", "out"], "backtest": ["rec"]}.get(tool, [])
    assert cli.main([tool, *positionals, "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"^usage: \S+ {tool} ", err, re.M) and "error: unrecognized arguments: --no-such-flag" in err, err


# --- parsing -----------------------------------------------------------------------------------

SAME = [
    ([[], ["--live"], ["up"], ["up", "--live"]], Action("up", with_sim=False)),
    ([["--sim"], ["up", "--sim"]], Action("up", with_sim=True)),
    ([["--replay", "rec", "--speed", "5"], ["up", "--replay", "rec", "--speed", "5"],
      ["--replay=rec", "--speed=5"], ["--speed", "5", "--replay", "rec"]],
     Action("up", with_sim=True, replay_dir="rec", speed=5.0)),
    ([["--replay", "rec"], ["up", "--replay", "rec"]], Action("up", with_sim=True, replay_dir="rec", speed=1.0)),
    ([["feed_futures"], ["actor", "feed_futures"]], Action("actor", name="feed_futures")),
    ([["sim"], ["actor", "sim"]], Action("actor", name="sim")),      # the exchange alone, as supervisord runs it
    ([["export", "rec", "out", "--help", "--", "-x"]], Action("tool", name="export",
                                                             args=("rec", "out", "--help", "--", "-x"))),
    ([["bench", "ring", "--json", "o.json"]], Action("tool", name="bench", args=("ring", "--json", "o.json"))),
    ([["ctl", "restart", "feed_futures"]], Action("ctl", name="ctl", args=("restart", "feed_futures"))),
    ([["tui"]], Action("tool", name="tui")),
]


@pytest.mark.parametrize("spellings,action", SAME, ids=[" ".join(s[0]) or "(none)" for s, _ in SAME])
def test_run_py_spellings_parse_to_the_same_action(spellings, action):
    for argv in spellings:
        assert parse(argv) == action, argv


def test_every_actor_parses_as_supervisord_runs_it():
    for a in names.ACTORS:
        assert parse([a.name]) == parse(["actor", a.name]) == Action("actor", name=a.name)


REFUSED = [
    (["--sim", "--bogus"], "tdc up: error: unrecognized arguments: --bogus"),
    (["--sim", "extra"], "tdc up: error: unrecognized arguments: extra"),
    (["--live", "--sim"], "tdc up: error: argument --sim: not allowed with argument --live"),
    (["--speed", "5"], "tdc up: error: --speed needs --replay DIR"),
    (["--replay"], "tdc up: error: argument --replay: expected one argument"),
    (["--replay", "rec", "--speed", "0"], "tdc up: error: argument --speed: must be a finite number > 0, not 0"),
    (["--replay", "rec", "--speed", "fast"], "tdc up: error: argument --speed: not a number: 'fast'"),
    (["feed_futures", "--bogus"], "tdc feed_futures: error: unrecognized arguments: --bogus"),
    (["actor", "compute", "x"], "tdc actor: error: unrecognized arguments: x"),
    (["actor", "nope"], "tdc actor: error: argument NAME: invalid choice: 'nope'"),
    (["nope"], "tdc: error: argument COMMAND: invalid choice: 'nope'"),
    (["--bogus"], "tdc: error: unrecognized arguments: --bogus"),
    (["help", "up", "x"], "tdc help: error: unrecognized arguments: x"),
]


@pytest.mark.parametrize("argv,message", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_parse_refuses_stray_and_unknown_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(message), err


# --- real run.py processes: refused or helped, and nothing started -------------------------------


def _session_pids(sid: int) -> list[int]:
    """The processes of session `sid` (what run.py would have left: supervisord, actors)."""
    return procs.session_pids(sid, zombies=True)


def _run_py(argv: list[str], tmp_path: Path, cwd: Path = ROOT, **env_over: str) -> subprocess.CompletedProcess:
    shm = tmp_path / "shm"
    shm.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDC_", "SHM_", "REPLAY_"))}
    env.update(SHM_DIR=str(shm), SHM_PREFIX="cli" + tmp_path.name[-8:].replace("_", ""),
               TDC_RUN_DIR=str(tmp_path / "run"), LOG_DIR=str(tmp_path / "logs"), NO_COLOR="1",
               COLUMNS="100")
    env.update(env_over)
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:          # it started something: stop its whole session
            os.killpg(p.pid, 9)
            p.wait()
    left = _session_pids(p.pid)
    for pid in left:
        os.kill(pid, 9)
    assert left == [], f"processes left by run.py {argv}: {left}"
    assert sorted(os.listdir(shm)) == [], "a lock or segment was created"
    assert not (tmp_path / "run").exists() and not (tmp_path / "logs").exists(), "a run or log dir was made"
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


@pytest.fixture
def rec_dir(tmp_path) -> Path:
    """A one-frame recording of a real futures aggTrade, after a REST frame the replay ignores."""
    frame = need(BINANCE / "futures_aggTrade.json").read_bytes().strip()
    d = tmp_path / "rec" / names.FUTURES / recording.safe_stream("btcusdt@aggTrade")
    d.mkdir(parents=True)
    lines = (recording.encode_line(0, 1_700_000_000_000_000_000, "rest", "btcusdt@aggTrade", frame, "", "f-1")
             + recording.encode_line(1, 1_700_000_000_500_000_000, "c", "btcusdt@aggTrade", frame, "", "f-1"))
    (d / ("20231114T221320Z" + recording.SUFFIX)).write_bytes(gzip.compress(lines))
    return tmp_path / "rec"


STRAY = [["--sim", "--bogus"], ["--sim", "extra"], ["--live", "--bogus"], ["--sim", "--live"],
         ["--speed", "5"], ["--replay"], ["--replay", "{rec}", "--bogus"], ["--replay", "{rec}", "--speed", "0"],
         ["up", "--sim", "x"], ["feed_futures", "--bogus"], ["sim", "--sim"], ["actor", "bus", "x"], ["nope"]]


@pytest.mark.parametrize("argv", STRAY, ids=[" ".join(a) for a in STRAY])
def test_run_py_refuses_stray_arguments_and_starts_nothing(argv, tmp_path, rec_dir):
    argv = [a.replace("{rec}", str(rec_dir)) for a in argv]
    r = _run_py(argv, tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == "" and re.search(r"^run\.py( \w+)?: error: ", r.stderr, re.M), r.stderr
    assert r.stderr.startswith("usage: run.py"), r.stderr


def test_run_py_refuses_a_directory_without_a_recording_and_starts_nothing(tmp_path):
    # DIR is the caller's: relative to the working directory run.py was started in, not the checkout's
    (tmp_path / "empty").mkdir()
    r = _run_py(["--replay", "empty", "--speed", "5"], tmp_path, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"run.py up: error: --replay: {tmp_path / 'empty'}: no recorded frames\n"


@pytest.mark.parametrize("argv", [["--sim"], ["feed_futures"]])
def test_run_py_checks_the_platform_before_starting_anything(argv, tmp_path):
    missing = tmp_path / "no-shm"
    r = _run_py(argv, tmp_path, SHM_DIR=str(missing))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"tdc cannot run on this machine:\n  - SHM_DIR={missing} does not exist (or is not a "
                        f"directory)\n(the platform requirements: docs/install.md)\n")


HELPED = [["--sim", "--help"], ["--live", "-h"], ["--replay", "{rec}", "--help"], ["feed_futures", "--help"],
          ["help", "compute"], ["--help"]]


@pytest.mark.parametrize("argv", HELPED, ids=[" ".join(a) for a in HELPED])
def test_run_py_help_prints_and_starts_nothing(argv, tmp_path, rec_dir):
    argv = [a.replace("{rec}", str(rec_dir)) for a in argv]
    r = _run_py(argv, tmp_path)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    sub = {"--sim": "up ", "--live": "up ", "--replay": "up ", "--help": "", "help": "compute "}.get(argv[0],
                                                                                                   argv[0] + " ")
    assert r.stdout.startswith(f"usage: run.py {sub}[-h]"), r.stdout[:200]


# --- running -----------------------------------------------------------------------------------


def test_replay_env_starts_the_data_clock_at_the_first_streamed_frame(rec_dir):
    env = cli.replay_env(rec_dir, 5.0, now_ns=1_000)
    assert env == {"REPLAY_DIR": str(rec_dir.resolve()), "REPLAY_SPEED": "5.0",
                   "REPLAY_ORIGIN_NS": "1700000000500000000", "REPLAY_WALL0_NS": str(1_000 + cli.REPLAY_LEAD_NS),
                   "RECORD_ENABLED": "false"}


def _tool_module(tmp_path: Path, monkeypatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_tool_gets_its_arguments_untouched_and_its_exit_code_is_returned(tmp_path, monkeypatch):
    _tool_module(tmp_path, monkeypatch, "cli_probe_tool",
                 "SEEN = []\ndef main(argv):\n    SEEN.append(list(argv))\n    return 7\n")
    monkeypatch.chdir(ROOT)
    monkeypatch.setitem(cli.TOOLS, "export", ("cli_probe_tool", "probe"))
    assert cli.main(["export", "--help", "--", "x", "--speed", "0"]) == 7
    import cli_probe_tool
    assert cli_probe_tool.SEEN == [["--help", "--", "x", "--speed", "0"]]


def test_a_missing_tool_or_dependency_is_one_clear_line(tmp_path, monkeypatch, capsys):
    assert cli.TOOLS["bench"][0] == "actors.bench.run"
    monkeypatch.chdir(ROOT)
    monkeypatch.setitem(cli.TOOLS, "bench", ("actors.bench_gone.run", "gone"))
    assert cli.main(["bench", "ring"]) == 1
    assert capsys.readouterr().err == ("tdc bench: its module actors.bench_gone.run is not in this installation "
                                       "(the bench runs from a checkout of the repository)\n")
    _tool_module(tmp_path, monkeypatch, "cli_probe_needs", "def main(argv):\n    import no_such_dep_xyz\n")
    monkeypatch.setitem(cli.TOOLS, "export", ("cli_probe_needs", "probe"))
    assert cli.main(["export", "rec", "out"]) == 1
    assert capsys.readouterr().err == "tdc export: needs the Python module 'no_such_dep_xyz', which is not installed\n"
