"""The command line (`tdc`, or `python run.py`): run the whole system, one actor, or a tool.

    tdc up [--sim | --live | --replay DIR [--speed X]]   the system under supervisord, in the foreground
    tdc NAME  (or tdc actor NAME)                         one actor, NAME from ipc.names.ACTORS
    tdc backtest|export|calibrate|bench|tui [ARGS]        a tool; ARGS go to the tool's own parser
    tdc ctl ARGS                                          supervisorctl for the running system
    tdc help [COMMAND]                                    this help, or COMMAND's

Invariants:
- `parse(argv)` is pure (no settings, no I/O but reading actor docstrings for the help): every
  spelling becomes one `Action`, and a stray or unknown argument is an argparse error (exit 2)
  before anything starts;
- the run.py spellings stay: no argument is `up` (live), and a leading `--sim`, `--live` or
  `--replay` is `up` with that flag (`run.py --replay DIR --speed 5` is `tdc up --replay DIR --speed 5`);
- the actors and their one-line help come from ipc.names.ACTORS and each actor module's docstring,
  never a list here; `sim` is the built-in exchange actor (what supervisord runs), not the whole
  system on it, which is `up --sim`;
- a tool's arguments are forwarded untouched to its `main(argv)` (its parser gives its help and
  refuses stray arguments), `ctl`'s to supervisorctl; a tool's module is imported only when it runs,
  so a missing one (or a missing optional dependency) is a one-line error, not a traceback.

Settings are loaded once here and handed to the actor; a bad value stops the start with a message
naming the variable, and a variable that looks like a setting but is not one is logged as a WARNING
naming the closest real setting, at every actor start and once by the foreground `up`. With `--sim`
or `--replay` the venue URLs are pointed at the sim by environment, so the same feed code runs
against the sim and the live venues.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ipc.names import ACTOR_BY_NAME, ACTORS, Actor

ROOT = Path(__file__).resolve().parents[1]        # the checkout (or site-packages, when installed)
# a checkout runs from its own directory (its .env, data/, logs/, run/), as run.py always did; an
# installed `tdc` from the directory it is started in
IS_CHECKOUT = (ROOT / "run.py").is_file() and (ROOT / "supervisord.conf").is_file()
SHARE = Path(sys.prefix) / "share" / "tdc-collector"   # pyproject's data-files, when installed

# tool -> (module whose main(argv) runs it, one line of help)
TOOLS: dict[str, tuple[str, str]] = {
    "backtest": ("actors.tools.backtest", "replay a recording through the whole system as fast as it keeps up; "
                 "decisions, edge distribution and paper PnL per window"),
    "export": ("actors.tools.export", "a recording as Parquet, for pandas, polars and DuckDB"),
    "calibrate": ("actors.tools.calibrate", "the fair probability of Up against the realised outcome, per series"),
    "bench": ("actors.bench.run", "benchmarks side by side with their baselines (needs a checkout)"),
    "tui": ("actors.tools.tui.app", "the live terminal dashboard (q quits, 1/2/3 or tab switch panels)"),
}
CTL_HELP = "supervisorctl for the running system (status, restart feed_futures, tail -f api, ...)"
SYSTEM_FLAGS = ("--sim", "--live", "--replay", "--speed")    # run.py's spellings of `up`

STACK_BUSY_EXIT = 3        # another stack holds the prefix: nothing was started or removed
NO_SPACE_EXIT = 4          # shared memory cannot hold the stack: nothing was started
REPLAY_LEAD_NS = 5_000_000_000


@dataclass(frozen=True)
class Action:
    """What one command line asks for. kind: "up" (the whole system), "actor", "tool" or "ctl"."""
    kind: str
    with_sim: bool = False             # up: the built-in exchange instead of the live venues
    replay_dir: str | None = None      # up --replay: the recording the sim serves (implies with_sim)
    speed: float = 1.0                 # up --replay: times faster than recorded
    name: str | None = None            # the actor or the tool
    args: tuple[str, ...] = ()         # tool, ctl: forwarded untouched


# --- help text -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _docstring(module: str) -> str:
    """A module's docstring, read from its source without importing it (help stays fast and
    side-effect free; an actor module pulls in numpy, zmq, ...)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def actor_summary(actor: Actor) -> str:
    """One line for the listing: the first sentence of the actor module's docstring, without its
    "The `name` actor:" lead, its parentheses and its full stop."""
    first = " ".join(_docstring(actor.module).split("\n\n")[0].split())
    first = re.sub(r"^The [^:.]*: ", "", first)
    first = re.sub(r" ?\([^()]*\)", "", first)
    sentence = re.split(r"(?<=[.:])\s+(?=[A-Z])", first, maxsplit=1)[0].rstrip(":")
    return sentence.rstrip(".") or actor.module


def _actor_description(actor: Actor) -> str:
    doc = _docstring(actor.module).split("\n\n")[0].strip()
    yes = {True: "yes", False: "no"}
    note = " The whole system on the built-in exchange is `up --sim`." if actor.name == "sim" else ""
    tail = (f"Runs the module {actor.module} in the foreground until SIGTERM or SIGINT; no arguments, its "
            f"settings come from the environment and .env. Run by supervisord.conf: {yes[actor.supervised]}; "
            f"required for /health by default: {yes[actor.required]}.{note}")
    return f"{doc}\n\n{textwrap.fill(tail, 100)}"


def _listing(rows: list[tuple[str, str]], width: int) -> str:
    col = max(len(k) for k, _ in rows) + 4
    out = []
    for k, v in rows:
        out.append(textwrap.fill(v, width=max(width, col + 30), initial_indent=f"  {k:<{col - 2}}",
                                 subsequent_indent=" " * col))
    return "\n".join(out)


def _epilog(prog: str) -> str:
    width = min(max(os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else 100, 60), 120)
    system = [("up", "every actor against the live venues (also: no command, or --live)"),
              ("up --sim", "every actor plus the built-in exchange on 127.0.0.1 (also: --sim)"),
              ("up --replay DIR [--speed X]", "every actor against the sim serving the recording DIR, at the "
               "recorded pace or X times faster (also: --replay DIR [--speed X])")]
    tools = [(t, h) for t, (_, h) in TOOLS.items()] + [("ctl ARGS", CTL_HELP),
                                                       ("help [COMMAND]", "this help, or COMMAND's")]
    return (f"the system, under supervisord in the foreground (Ctrl-C stops every process):\n"
            f"{_listing(system, width)}\n\n"
            f"actors, one process each (supervisord runs `python -m actors NAME`; also `{prog} actor NAME`):\n"
            f"{_listing([(a.name, actor_summary(a)) for a in ACTORS], width)}\n\n"
            f"tools (`{prog} TOOL --help` is the tool's own help):\n{_listing(tools, width)}\n\n"
            f"`{prog} COMMAND --help` gives a command's complete help.")


# --- parsing ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose description and epilog may be callables, evaluated only when a help
    is printed: an actor start (every supervisord spawn) must not pay for reading the docstrings."""

    def format_help(self) -> str:
        if callable(self.description):
            self.description = self.description()
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return v


def build_parser(prog: str = "tdc") -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    ap = _Parser(prog=prog, formatter_class=fmt, allow_abbrev=False, epilog=lambda: _epilog(prog),
                 description=textwrap.fill(
                     "Trading-data collector: Binance and Polymarket feeds into shared memory, features on "
                     "ZeroMQ, a REST API. Run the whole system, one actor, or a tool.", 100))
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", help="one of the commands below")
    # no help= on add_parser: the epilog is the (grouped) listing, argparse's flat one would repeat it
    up = sub.add_parser("up", prog=f"{prog} up", allow_abbrev=False, description=(
        "Run every actor under supervisord in the foreground until Ctrl-C (or SIGTERM), then remove the "
        "stack's shared-memory segments. One stack per SHM_PREFIX: a second start is refused (exit 3); a "
        "stack that does not fit in SHM_DIR is refused before anything starts (exit 4)."),
        epilog=f"run.py spellings: `run.py` = `{prog} up`, `run.py --sim` = `{prog} up --sim`, "
               f"`run.py --replay DIR --speed 5` = `{prog} up --replay DIR --speed 5`.")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="against the live venues (the default)")
    mode.add_argument("--sim", action="store_true", help="against the built-in exchange on 127.0.0.1")
    mode.add_argument("--replay", metavar="DIR", help="against the sim serving the recording DIR "
                      "(recording off; the data clock starts at its first frame)")
    up.add_argument("--speed", metavar="X", type=_positive,
                    help="with --replay: X times faster than recorded (default 1)")
    actor = sub.add_parser("actor", prog=f"{prog} actor", description="Run one actor (what supervisord does).")
    actor.add_argument("name", choices=[a.name for a in ACTORS], metavar="NAME",
                       help=f"one of: {', '.join(a.name for a in ACTORS)}")
    for a in ACTORS:
        sub.add_parser(a.name, prog=f"{prog} {a.name}", formatter_class=fmt,
                       description=functools.partial(_actor_description, a))
    for name in (*TOOLS, "ctl"):
        # a tool's arguments never reach this parser (parse() forwards them): listed for the choices only
        sub.add_parser(name, add_help=False)
    hlp = sub.add_parser("help", prog=f"{prog} help", description="The help, or a command's.")
    hlp.add_argument("topic", nargs="?", metavar="COMMAND")
    return ap


def parse(argv: list[str], prog: str = "tdc") -> Action:
    """The action a command line asks for; SystemExit(0) after printing a help, SystemExit(2) with
    argparse's message for anything stray or unknown. Starts nothing."""
    argv = list(argv)
    if not argv:
        argv = ["up"]
    elif argv[0] in SYSTEM_FLAGS or argv[0].startswith(tuple(f + "=" for f in SYSTEM_FLAGS)):
        argv = ["up", *argv]
    if argv[0] in TOOLS or argv[0] == "ctl":
        return Action("ctl" if argv[0] == "ctl" else "tool", name=argv[0], args=tuple(argv[1:]))
    ap = build_parser(prog)
    a, stray = ap.parse_known_args(argv)
    if a.command is None:           # options only (`--bogus`, `--`)
        ap.error(f"unrecognized arguments: {' '.join(stray)}" if stray else "a COMMAND is needed")
    if stray:       # refused by the command's own parser, so the message shows its usage
        _subparser(ap, a.command).error(f"unrecognized arguments: {' '.join(stray)}")
    if a.command == "help":
        if a.topic is None:
            ap.print_help()
            raise SystemExit(0)
        return parse([a.topic, "--help"], prog)
    if a.command == "up":
        if a.speed is not None and a.replay is None:
            _subparser(ap, "up").error("--speed needs --replay DIR")
        if a.replay is not None:
            return Action("up", with_sim=True, replay_dir=a.replay, speed=a.speed or 1.0)
        return Action("up", with_sim=a.sim)
    if a.command == "actor":
        return Action("actor", name=a.name)
    return Action("actor", name=a.command)


def _subparser(ap: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


# --- running ---------------------------------------------------------------------------------


def _exit_code(exc: SystemExit) -> int:
    """The status a SystemExit stands for, as the interpreter would exit with it."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    sys.stderr.write(f"{exc.code}\n")
    return 1


def prog_name() -> str:
    """How the user called us, for usages: `run.py` (a checkout) or `tdc` (the console script).
    A tool may take its parser's prog from it (`f"{prog_name()} export"`)."""
    return "run.py" if Path(sys.argv[0]).name == "run.py" else "tdc"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog_name()
    try:
        action = parse(argv, prog)
        return run(action, prog, argv)
    except SystemExit as exc:
        return _exit_code(exc)


def run(action: Action, prog: str = "tdc", argv: Sequence[str] = ()) -> int:
    # the caller's DIR, before the working directory becomes the checkout (settings' relative
    # paths and .env are the checkout's, as they always were for run.py; IS_CHECKOUT)
    replay_dir = Path(action.replay_dir).resolve() if action.replay_dir is not None else None
    if IS_CHECKOUT:
        os.chdir(ROOT)
    if action.kind == "up":
        _require_platform()
        if replay_dir is not None:
            env = replay_env(replay_dir, action.speed)
            if isinstance(env, str):
                sys.stderr.write(f"{prog} up: error: --replay: {env}\n")
                return 2
            os.environ.update(env)
        return run_supervisor(action.with_sim, mode=" ".join([prog, *argv]))
    if action.kind == "ctl":
        return run_ctl(list(action.args))
    if action.kind == "tool":
        return run_tool(action.name, list(action.args), prog)
    _require_platform()
    return run_actor(action.name)


def supervisord_conf() -> Path:
    """The checkout's supervisord.conf, else the installed copy (pyproject's data-files)."""
    for p in (ROOT / "supervisord.conf", SHARE / "supervisord.conf"):
        if p.is_file():
            return p
    raise SystemExit(f"supervisord.conf is neither in {ROOT} nor in {SHARE}: reinstall the package")


def _require_platform(shm_dir: str | None = None) -> None:
    """ipc/platform.py's start check (Linux, the Python version, an x86-64 CPU, and SHM_DIR once the
    settings name it): SystemExit with every problem, before anything starts."""
    from ipc import platform
    platform.require(shm_dir)


def run_tool(name: str, args: list[str], prog: str = "tdc") -> int:
    module = TOOLS[name][0]
    try:
        return importlib.import_module(module).main(args) or 0
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module == missing or module.startswith(missing + "."):
            sys.stderr.write(f"{prog} {name}: its module {module} is not in this installation"
                             f"{' (the bench runs from a checkout of the repository)' if name == 'bench' else ''}\n")
        else:
            sys.stderr.write(f"{prog} {name}: needs the Python module {missing!r}, which is not installed\n")
        return 1


def _settings():
    from config.settings import SettingsError, load_settings
    try:
        return load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2)


def warn_settings(s) -> list[str]:
    """Log one WARNING per variable of the environment or .env that looks like a setting and is
    not, and per setting that will not do what it seems to (config.settings.start_warnings)."""
    import logging
    from config.settings import start_warnings
    log = logging.getLogger("settings")
    warnings = start_warnings(s)
    for w in warnings:
        log.warning("%s", w)
    return warnings


def sim_env(s) -> dict[str, str]:
    """Environment that points every venue URL at the built-in exchange."""
    fut, spot = f"{s.sim.host}:{s.sim.port}", f"{s.sim.host}:{s.sim.spot_port}"
    poly = f"{s.sim.host}:{s.sim.poly_port}"
    return {"FUTURES_WS": f"ws://{fut}", "FUTURES_REST": f"http://{fut}",
            "SPOT_WS": f"ws://{spot}", "SPOT_REST": f"http://{spot}",
            "POLYMARKET_GAMMA_URL": f"http://{poly}/gamma",
            "POLYMARKET_CLOB_URL": f"http://{poly}/clob",
            "POLYMARKET_WS_URL": f"ws://{poly}/ws/market",
            "POLYMARKET_RTDS_URL": f"ws://{poly}/rtds",
            "TAAPI_URL": f"http://{fut}/taapi"}


def supervisor_env(s, with_sim: bool) -> dict[str, str]:
    work = Path.cwd()          # the checkout, or where an installed tdc was started (`run`)
    run_dir = Path(os.environ.get("TDC_RUN_DIR") or work / "run" / s.ipc.shm_prefix).resolve()
    log_dir = Path(s.general.log_dir if os.path.isabs(s.general.log_dir) else work / s.general.log_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if with_sim:
        sim = sim_env(s)
        # an alias of a variable set here (POLYMARKET_CLOB_WS for POLYMARKET_WS_URL) would
        # contradict it: the sim's value replaces both names
        from config.settings import ALIASES
        replaced = {ALIASES.get(k.lower(), k.lower()) for k in sim}
        for k in [k for k in env if ALIASES.get(k.lower()) in replaced]:
            del env[k]
        env.update(sim)
    env.update(TDC_PYTHON=sys.executable, TDC_ROOT=str(work), TDC_RUN_DIR=str(run_dir),
               TDC_LOG_DIR=str(log_dir), TDC_WITH_SIM="true" if with_sim else "false",
               TDC_RECORD="true" if s.record.record_enabled else "false",
               PYTHONUNBUFFERED="1")
    return env


def replay_env(replay_dir: Path, speed: float, now_ns: int | None = None) -> dict[str, str] | str:
    """`up --replay DIR [--speed X]`: the sim serves DIR; every actor's data clock starts at the
    recording's first frame REPLAY_LEAD_NS (wall) from now, so the feeds are connected by then.
    A string is why DIR cannot be replayed."""
    import time

    from actors.sim.replay import first_frame_ns
    try:
        origin = first_frame_ns(replay_dir)
    except (OSError, ValueError) as exc:
        return str(exc)
    now_ns = time.time_ns() if now_ns is None else now_ns
    return {"REPLAY_DIR": str(replay_dir.resolve()), "REPLAY_SPEED": repr(speed),
            "REPLAY_ORIGIN_NS": str(origin), "REPLAY_WALL0_NS": str(now_ns + REPLAY_LEAD_NS),
            "RECORD_ENABLED": "false"}


def run_supervisor(with_sim: bool, mode: str = "tdc up") -> int:
    s = _settings()
    _require_platform(s.ipc.shm_dir)
    env = supervisor_env(s, with_sim)
    # validate the settings the actors will see (sim URLs included) before starting anything
    for k in set(os.environ) - set(env):      # the aliases supervisor_env dropped
        del os.environ[k]
    os.environ.update(env)
    s = _settings()
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warn_settings(s)
    from ipc import stacklock
    from ipc.shm import check_space, unlink_prefix
    # one stack per prefix, held to the end: a second start must not reach the cleanup below,
    # which would unlink the running stack's segments and socket (ipc/stacklock.py)
    stack_id = stacklock.new_stack_id()
    try:
        lock = stacklock.StackLock.acquire(s.ipc.shm_dir, s.ipc.shm_prefix, {
            "stack_id": stack_id, "mode": mode, "run_dir": env["TDC_RUN_DIR"]})
    except stacklock.StackBusy as exc:
        sys.stderr.write(f"{exc}\n")
        return STACK_BUSY_EXIT
    try:
        return _supervise(s, env, lock, stack_id, check_space, unlink_prefix)
    finally:
        lock.release()


def _supervise(s, env: dict, lock, stack_id: str, check_space, unlink_prefix) -> int:
    """supervisord for the stack, under the prefix's lock; the prefix's segments removed at exit."""
    problem = check_space(s)
    if problem is not None:
        sys.stderr.write(f"{problem}\n")
        return NO_SPACE_EXIT
    from ipc.stacklock import STACK_ID_ENV
    env[STACK_ID_ENV] = stack_id       # the stack's own actors know their lock holder by it
    # supervisord holds the lock too (until a reload closes its descriptors): a run.py killed
    # with -9 leaves a stack that still refuses a second start
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-n",
                             "-c", str(supervisord_conf())], env=env,
                            pass_fds=(lock.inherit_fd(),))
    lock.update(supervisord_pid=proc.pid)

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
                            "-c", str(supervisord_conf()), *args], env=env)


def run_actor(name: str) -> int:
    s = _settings()
    _require_platform(s.ipc.shm_dir)
    from config.logging import setup_logging
    from ipc import clock
    clock.configure_from(s)
    setup_logging(name, s.general.log_level)
    warn_settings(s)
    # an actor by hand must not take over (or, on its way out, disturb) a running stack's
    # segments: refused while another stack holds the prefix (ipc/stacklock.py)
    from ipc import stacklock
    try:
        lock = stacklock.for_actor(s.ipc.shm_dir, s.ipc.shm_prefix, name)
    except stacklock.StackBusy as exc:
        sys.stderr.write(f"{exc}\n")
        return STACK_BUSY_EXIT
    try:
        # its start counted in its heartbeat; in a crash loop it backs off first (actors/supervision.py)
        from actors import supervision
        supervision.begin(s.ipc.shm_dir, s.ipc.shm_prefix, name)
        importlib.import_module(ACTOR_BY_NAME[name].module).main(s)
    finally:
        if lock is not None:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
