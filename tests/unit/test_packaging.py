"""The package: pyproject's pins agree with the requirements files the README installs, one version,
the licence, and a wheel built for real (offline, with the pinned backend) that holds exactly the
three packages, the `tdc` console script and metadata that says what pyproject says; installed
outside the checkout, `tdc --help` runs from it."""
from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import actors
from ipc import platform as host

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
NAME = PROJECT["name"]
PACKAGES = ("actors", "ipc", "config")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(line: str) -> tuple[str, str]:
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line)
    assert m, f"not an exact pin: {line!r}"
    return _norm(m[1]), m[2]


def requirements(path: Path) -> dict[str, str]:
    """name -> version of a requirements file, following `-r` includes."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            inc = requirements(path.parent / line[3:].strip())
        else:
            inc = dict([_pin(line)])
        for k, v in inc.items():
            assert out.setdefault(k, v) == v, f"{path.name}: {k} pinned twice, {out[k]} and {v}"
    return out


def extra(name: str) -> dict[str, str]:
    """name -> version of an optional-dependency group, its references to our own extras resolved."""
    out: dict[str, str] = {}
    for req in PROJECT["optional-dependencies"][name]:
        m = re.fullmatch(rf"{re.escape(NAME)}\[([a-z,]+)\]", req)
        inc = {k: v for e in m[1].split(",") for k, v in extra(e).items()} if m else dict([_pin(req)])
        for k, v in inc.items():
            assert out.setdefault(k, v) == v, f"[{name}]: {k} pinned twice"
    return out


CORE = dict(_pin(r) for r in PROJECT["dependencies"])


def test_requirements_txt_is_the_dependencies_plus_parquet():
    assert set(CORE).isdisjoint(extra("parquet"))
    assert requirements(ROOT / "requirements.txt") == {**CORE, **extra("parquet")}
    assert extra("parquet") == {"pyarrow": "26.0.1", "fsspec": "2026.9.0"}


def test_requirements_dev_txt_is_requirements_txt_plus_research_and_dev():
    research, dev = extra("research"), extra("dev")
    assert research == {**extra("parquet"), "pandas": "3.1.1", "polars": "2.1.0", "duckdb": "2.0.1"}
    assert set(research) <= set(dev)
    assert requirements(ROOT / "requirements-dev.txt") == {**requirements(ROOT / "requirements.txt"), **dev}
    # the backend the wheel test builds with offline is the one pyproject builds with
    backend = dict(_pin(r) for r in PYPROJECT["build-system"]["requires"])
    assert backend == {"setuptools": dev["setuptools"]}


def test_python_version_license_and_script():
    assert PROJECT["requires-python"] == ">=3.11" and host.MIN_PYTHON == (3, 11)
    assert [c.rsplit(":: ", 1)[1] for c in PROJECT["classifiers"] if c.startswith("Programming Language :: Python :: 3.")] \
        == ["3.11", "3.12", "3.13"]
    assert PROJECT["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "actors.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", actors.__version__)
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    lic = (ROOT / "LICENSE").read_text().splitlines()
    assert lic[:3] == ["MIT License", "", "Copyright (c) 2026 the tdc authors"]
    assert PROJECT["scripts"] == {"tdc": "actors.cli:main"}


# ----------------------------------------------------------------------------------------------
# The wheel, built for real

_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis",
                                     "run", "logs", "data", ".env", "build", "*.egg-info")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout (so the build's own files never land in it), built by
    pip with the installed pinned setuptools and no network."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(tmp / "dist"), str(src)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl


def test_wheel_holds_the_three_packages_and_says_what_pyproject_says(wheel):
    assert wheel.name == f"tdc_collector-{actors.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    info = f"tdc_collector-{actors.__version__}.dist-info"
    data = f"tdc_collector-{actors.__version__}.data/data/share/tdc-collector/"
    assert {n for n in names if n.startswith(data)} == {data + "supervisord.conf", data + ".env.example"}
    code = {n for n in names if not n.startswith((info + "/", data))}
    assert {n.split("/", 1)[0] for n in code} == set(PACKAGES)
    source = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
              if "__pycache__" not in p.parts}
    static = ROOT / "actors" / "web" / "static"       # the dashboard's page and vendored chart library
    source |= {p.relative_to(ROOT).as_posix() for p in static.rglob("*") if p.is_file()}
    assert code == source                           # every module, the bench among them; nothing else
    assert {"actors/web/static/dashboard.html", "actors/web/static/vendor/uplot/LICENSE"} <= code
    assert "actors/bench/run.py" in code and "actors/cli.py" in code
    z = zipfile.ZipFile(wheel)
    assert z.read(f"{info}/entry_points.txt").decode().split() == ["[console_scripts]", "tdc", "=", "actors.cli:main"]
    meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
    assert (meta["Name"], meta["Version"], meta["Requires-Python"], meta["License-Expression"]) \
        == (NAME, actors.__version__, ">=3.11", "MIT")
    assert z.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    core = [d for d in meta.get_all("Requires-Dist") if ";" not in d]
    assert dict(_pin(d) for d in core) == CORE
    assert meta.get_all("Provides-Extra") == ["parquet", "research", "picows", "dev"]


def test_tdc_help_runs_from_the_installed_wheel_outside_the_checkout(wheel, tmp_path):
    # installed without dependencies next to this venv's (which has them all); run from elsewhere
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import actors, ipc, config; print(actors.__file__, "
                            "ipc.__file__, config.__file__, actors.__version__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert where.stdout.split() == [str(target / p / "__init__.py") for p in PACKAGES] + [actors.__version__]
    r = subprocess.run([str(target / "bin" / "tdc"), "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: tdc ") and "bench" in r.stdout and "export" in r.stdout


def test_the_whole_system_runs_from_the_installed_wheel_outside_the_checkout(wheel, tmp_path):
    """`tdc up --sim` from a venv with the wheel installed (its dependencies this venv's, by a .pth),
    started in an empty directory: supervisord takes the installed supervisord.conf, runs every
    actor as `python -m actors NAME` from the installed package in that directory, /health turns
    200, and Ctrl-C leaves nothing behind."""
    import sysconfig
    from tests.support.system import running_system
    from tests.support.wait import wait_for
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # the dependencies' path only after the install: when this venv has the package installed too (CI's
    # 3.13 tier runs these tests from the wheel), pip would see it there and install nothing
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    assert (venv / "share" / "tdc-collector" / "supervisord.conf").read_bytes() == (ROOT / "supervisord.conf").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    with running_system(tmp_path, command=(str(venv / "bin" / "tdc"), "up", "--sim"), cwd=work,
                        PYTHONPATH="", POLYMARKET_ENABLED="false") as system:
        wait_for(lambda: system.get("/health").status_code == 200, 90, "/health 200", interval=0.5)
        feeds = [p for p in system.session_pids()
                 if (Path("/proc", str(p), "cmdline").read_bytes().split(b"\0")[1:4]
                     == [b"-m", b"actors", b"feed_futures"])]
        assert len(feeds) == 1, system.logs()
        proc = Path("/proc", str(feeds[0]))
        assert proc.joinpath("cwd").resolve() == work
        assert os.readlink(proc / "exe") == os.path.realpath(venv / "bin" / "python")
        # what `python -m actors` imports there is the installed package, not this checkout
        out = subprocess.run([str(venv / "bin" / "python"), "-c", "import actors.cli; print(actors.cli.IS_CHECKOUT, actors.__file__)"],
                             cwd=work, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout.split()
        assert out == ["False", str(site / "actors" / "__init__.py")]
